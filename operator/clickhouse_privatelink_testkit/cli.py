"""Command line of the test kit: serve one stand-in, or walk the sandbox end to end."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path


def _cmd_sandbox(args: argparse.Namespace) -> int:
    from clickhouse_privatelink_testkit.sandbox import run_sandbox

    return run_sandbox(keep=args.keep, log_dir=Path(args.log_dir) if args.log_dir else None)


def _cmd_standin(args: argparse.Namespace) -> int:
    from clickhouse_privatelink_testkit.standins import serve

    return serve(args.which, host=args.host, port=args.port, extra=args.extra)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``clickhouse-privatelink-testkit``."""
    parser = argparse.ArgumentParser(prog="clickhouse-privatelink-testkit", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser(
        "sandbox", help="start the local stand-ins and the operator, and walk resources through their life"
    )
    p.add_argument(
        "--keep", action="store_true", help="keep everything running after the walk-through (Ctrl-C ends)"
    )
    p.add_argument(
        "--log-dir", default=None, help="where the processes' logs go (default: a temporary folder)"
    )
    p.set_defaults(func=_cmd_sandbox)

    p = sub.add_parser("standin", help="serve one local stand-in: kubernetes, clickhouse, aws or dataplane")
    p.add_argument("which", choices=["kubernetes", "clickhouse", "aws", "dataplane"])
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0, help="0 picks a free port (printed on start)")
    p.add_argument("extra", nargs=argparse.REMAINDER, help="options passed to the stand-in (see its --help)")
    p.set_defaults(func=_cmd_standin)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``clickhouse-privatelink-testkit`` command."""
    args = build_parser().parse_args(argv)
    return int(args.func(args))
