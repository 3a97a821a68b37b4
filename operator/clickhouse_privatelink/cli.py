"""Command line: run the operator, render the CRD, or diagnose one resource."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path


def _cmd_crd(args: argparse.Namespace) -> int:
    from clickhouse_privatelink.api.crd import render_crd_yaml, render_policy_crd_yaml

    text = render_policy_crd_yaml() if args.policy else render_crd_yaml()
    if args.output == "-":
        sys.stdout.write(text)
    else:
        Path(args.output).write_text(text, encoding="utf-8")
    return 0


def _cmd_run(args: argparse.Namespace) -> int:
    from clickhouse_privatelink.wiring.runner import run_operator

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


def _cmd_diagnose(args: argparse.Namespace) -> int:
    from clickhouse_privatelink.diagnose import run

    return run(args.resource, output=args.output, probe=not args.no_probe)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``clickhouse-privatelink-operator``."""
    parser = argparse.ArgumentParser(prog="clickhouse-privatelink-operator", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("crd", help="print (or write) the CRD rendered from the models")
    p.add_argument("--output", "-o", default="-", help="file to write, '-' for stdout (default)")
    p.add_argument("--policy", action="store_true", help="the ClickHousePrivateLinkPolicy CRD instead")
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
        "diagnose",
        help="run ClickHouse's PrivateLink troubleshooting checklist for one resource and name the first thing to fix",
    )
    p.add_argument("resource", metavar="NAMESPACE/NAME")
    p.add_argument("--output", "-o", choices=["text", "json"], default="text")
    p.add_argument(
        "--no-probe",
        action="store_true",
        help="skip the DNS, TCP, TLS and /ping checks (run outside the VPC)",
    )
    p.set_defaults(func=_cmd_diagnose)

    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``clickhouse-privatelink-operator`` command."""
    args = build_parser().parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    raise SystemExit(main())
