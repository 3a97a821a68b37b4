"""Local stand-ins for the Kubernetes API, AWS and the ClickHouse Cloud API.

Each one is a real HTTP server speaking the real wire protocol, started as its own process with
``clickhouse-privatelink-testkit standin NAME`` or from the test fixtures in ``tests/fixtures/``.
"""

from __future__ import annotations

import argparse
import importlib

_MODULES = {
    "kubernetes": "kubernetes.server",
    "clickhouse": "clickhouse_cloud",
    "aws": "aws",
    "dataplane": "data_plane",
}


def serve(which: str, *, host: str, port: int, extra: list[str]) -> int:
    """Serve one stand-in in the foreground until interrupted; return the exit code."""
    # `standin NAME --port 0` leaves --host/--port among the stand-in's own arguments: take them here.
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--host", default=host)
    common.add_argument("--port", type=int, default=port)
    known, rest = common.parse_known_args(extra)
    module = importlib.import_module(f"{__name__}.{_MODULES[which]}")
    return int(module.main(host=known.host, port=known.port, argv=rest))
