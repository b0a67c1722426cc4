"""``fortress demo``: the local demo (a command of the dev tools; needs PostgreSQL binaries)."""

from __future__ import annotations

import argparse
import asyncio
import logging


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser("demo", help="run the local demo end to end and stop everything")
    parser.add_argument("--kubeconfig", default=None, help="use this cluster instead of a local API")
    parser.add_argument("--timeout", type=float, default=90.0, help="seconds to wait for Ready")
    parser.add_argument(
        "--only",
        action="append",
        default=[],
        metavar="SUBSYSTEM",
        help="run only this capability's demo step after the examples are Ready (repeatable), "
        "e.g. ledger, sharding, dr, rollouts (disaster: an alias of dr, accepted for one more release)",
    )
    parser.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from fortress_dev.demo.runner import run_demo

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("kopf").setLevel(logging.ERROR)
    return asyncio.run(run_demo(kubeconfig=args.kubeconfig, wait_seconds=args.timeout, only=args.only))
