"""``fortress run``: run the operator."""

from __future__ import annotations

import argparse
import asyncio

from fortress import logs
from fortress.adapters.kube import load_cluster
from fortress.runtime import OperatorConfig, run
from fortress.settings import Settings


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    settings = Settings.from_env()
    parser = subparsers.add_parser("run", help="run the operator")
    parser.add_argument("--kubeconfig", default=settings.kubeconfig, help="kubeconfig (default: in-cluster)")
    parser.add_argument("--context", default=None, help="kubeconfig context")
    parser.add_argument(
        "--namespace",
        "-n",
        action="append",
        default=list(settings.namespaces),
        help="watch only these namespaces (repeatable; FORTRESS_NAMESPACES); all when absent",
    )
    parser.add_argument("--metrics-port", type=int, default=settings.metrics_port, help="0 disables")
    parser.add_argument("--liveness-port", type=int, default=settings.liveness_port, help="0 disables")
    parser.add_argument(
        "--log-format",
        choices=logs.FORMATS,
        default="text",
        help="log lines as text or JSON; a line about an object starts with [namespace/name]",
    )
    parser.add_argument("--verbose", "-v", action="store_true")
    parser.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    logs.configure(args.log_format, verbose=args.verbose)
    cluster = load_cluster(args.kubeconfig, args.context)
    config = OperatorConfig(
        cluster=cluster,
        namespaces=tuple(args.namespace or ()),
        liveness_port=args.liveness_port or None,
        metrics_port=args.metrics_port or None,
    )
    asyncio.run(run(config))
    return 0
