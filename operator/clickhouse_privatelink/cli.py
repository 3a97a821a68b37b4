"""Command line: run the operator, render the CRD, start the sandbox or one stand-in."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path


def _cmd_crd(args: argparse.Namespace) -> int:
    from .crd import render_crd_yaml

    text = render_crd_yaml()
    if args.output == "-":
        sys.stdout.write(text)
    else:
        Path(args.output).write_text(text, encoding="utf-8")
    return 0


def _cmd_run(args: argparse.Namespace) -> int:
    from .runner import run_operator

    return run_operator(
        namespaces=args.namespace,
        all_namespaces=args.all_namespaces,
        standalone=args.standalone,
        peering=args.peering,
        priority=args.priority,
        liveness=args.liveness,
        metrics_port=args.metrics_port,
        verbose=args.verbose,
    )


def _cmd_sandbox(args: argparse.Namespace) -> int:
    from .sandbox import run_sandbox

    return run_sandbox(keep=args.keep, log_dir=Path(args.log_dir) if args.log_dir else None)


def _cmd_standin(args: argparse.Namespace) -> int:
    from .standins import serve

    return serve(args.which, host=args.host, port=args.port, extra=args.extra)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``clickhouse-privatelink-operator``."""
    parser = argparse.ArgumentParser(prog="clickhouse-privatelink-operator", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("crd", help="print (or write) the CRD rendered from the models")
    p.add_argument("--output", "-o", default="-", help="file to write, '-' for stdout (default)")
    p.set_defaults(func=_cmd_crd)

    p = sub.add_parser("run", help="run the operator (kopf) against the cluster in KUBECONFIG or in-cluster")
    p.add_argument("--namespace", "-n", action="append", default=[], help="watch this namespace (repeatable)")
    p.add_argument("--all-namespaces", "-A", action="store_true", help="watch all namespaces (cluster-wide)")
    p.add_argument("--standalone", action="store_true", help="no peering: assume this is the only instance")
    p.add_argument("--peering", default="clickhouse-privatelink-operator", help="kopf peering object name")
    p.add_argument("--priority", type=int, default=0, help="peering priority (highest active instance wins)")
    p.add_argument(
        "--liveness", default="http://0.0.0.0:8080/healthz", help="liveness endpoint URL, '' to disable"
    )
    p.add_argument("--metrics-port", type=int, default=9090, help="Prometheus /metrics port, 0 to disable")
    p.add_argument("--verbose", "-v", action="store_true")
    p.set_defaults(func=_cmd_run)

    p = sub.add_parser(
        "sandbox", help="start the local stand-ins and the operator, and walk a resource's life"
    )
    p.add_argument(
        "--keep", action="store_true", help="keep everything running after the walk-through (Ctrl-C ends)"
    )
    p.add_argument(
        "--log-dir", default=None, help="where the processes' logs go (default: a temporary folder)"
    )
    p.set_defaults(func=_cmd_sandbox)

    p = sub.add_parser("standin", help="serve one local stand-in: kubernetes, clickhouse or aws")
    p.add_argument("which", choices=["kubernetes", "clickhouse", "aws"])
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0, help="0 picks a free port (printed on start)")
    p.add_argument("extra", nargs=argparse.REMAINDER, help="options passed to the stand-in (see its --help)")
    p.set_defaults(func=_cmd_standin)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``clickhouse-privatelink-operator`` command."""
    args = build_parser().parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    raise SystemExit(main())
