"""``fortress dr``: request a failover or switchover, show a plan's status, rejoin an old primary.

    fortress dr failover PLAN --to REGION [--switchover] [--force] [-n NS] [--wait SECONDS]
    fortress dr status PLAN [-n NS] [-o table|json]
    fortress dr rejoin --pgdata DIR --source-dsn DSN [--bindir DIR] [--application-name NAME]

Exit codes: 0 done, 1 the operator has not acted yet (``--wait``) or rejoin failed, 2 usage,
3 Kubernetes API error, 4 not found, 5 refused (pending request, wrong plan, already primary).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

EXIT_OK, EXIT_PENDING, EXIT_USAGE, EXIT_API, EXIT_NOT_FOUND, EXIT_REFUSED = 0, 1, 2, 3, 4, 5


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser("dr", help="disaster recovery: failover, switchover, status, rejoin")
    parser.add_argument("--kubeconfig", default=None)
    parser.add_argument("--context", default=None)
    verbs = parser.add_subparsers(dest="dr_verb", metavar="VERB")
    failover = verbs.add_parser(
        "failover", help="promote a region of a plan (a planned switchover with --switchover)"
    )
    failover.add_argument("plan")
    failover.add_argument("--to", required=True, dest="target", help="the DRRegion to promote")
    failover.add_argument("--switchover", action="store_true", help="wait for zero lag first (no data loss)")
    failover.add_argument("--force", action="store_true", help="promote even beyond the lag limit")
    failover.add_argument("-n", "--namespace", default="default")
    failover.add_argument("--wait", type=float, default=0.0, help="seconds to wait for the operator to act")
    status = verbs.add_parser("status", help="a plan's regions, roles, lag and latest failover")
    status.add_argument("plan")
    status.add_argument("-n", "--namespace", default="default")
    status.add_argument("-o", "--output", choices=["table", "json"], default="table")
    rejoin = verbs.add_parser("rejoin", help="on the region's host: make a stopped old primary a standby")
    rejoin.add_argument("--pgdata", type=Path, required=True, help="the stopped server's data directory")
    rejoin.add_argument(
        "--source-dsn",
        default=os.environ.get("FORTRESS_SOURCE_DSN"),
        help="the new primary's DSN (FORTRESS_SOURCE_DSN keeps a password off the command line)",
    )
    rejoin.add_argument("--bindir", type=Path, default=None, help="PostgreSQL binaries (default: found)")
    rejoin.add_argument("--application-name", default=None, help="the name synchronous_standby_names uses")
    rejoin.add_argument("--no-reclone", action="store_true", help="fail instead of re-cloning")
    parser.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    if args.dr_verb is None:
        print("usage: fortress dr {failover,status,rejoin} ...", file=sys.stderr)
        return EXIT_USAGE
    if args.dr_verb == "rejoin":
        return _rejoin(args)
    from fortress.adapters.kube import ApiException, BlockingKube, load_cluster
    from fortress.core.errors import describe
    from fortress.dr import control

    try:
        cluster = load_cluster(args.kubeconfig, args.context)
        with BlockingKube(cluster) as kube:
            if args.dr_verb == "status":
                report = control.plan_report(kube, args.namespace, args.plan)
                print(json.dumps(report, indent=2) if args.output == "json" else control.render(report))
                return EXIT_OK if report["ready"] == "True" else EXIT_PENDING
            request = control.request_failover(
                kube, args.namespace, args.plan, args.target, switchover=args.switchover, force=args.force
            )
            print(
                f"requested {request['action']} of {args.namespace}/{args.plan} to {args.target} "
                f"(requestId {request['requestId']})"
            )
            return _wait(kube, args, request) if args.wait > 0 else EXIT_OK
    except control.NotFound as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_NOT_FOUND
    except (control.Conflict, control.Invalid) as error:
        print(f"refused: {error}", file=sys.stderr)
        return EXIT_REFUSED
    except ApiException as error:
        print(f"error: Kubernetes API answered {describe(error)}", file=sys.stderr)
        return EXIT_API
    except Exception as error:  # configuration: no kubeconfig, unreachable server
        print(f"error: {describe(error)}", file=sys.stderr)
        return EXIT_API


def _wait(kube: Any, args: argparse.Namespace, request: dict[str, Any]) -> int:
    from fortress.dr import control

    deadline = time.monotonic() + args.wait
    while time.monotonic() < deadline:
        report = control.plan_report(kube, args.namespace, args.plan)
        if report["pendingRequest"] is None:
            last = report.get("lastFailover") or {}
            if last.get("requestId") == request["requestId"]:
                print(control.render(report))
                return EXIT_OK
            handled = report.get("lastRequest") or {}
            why = handled.get("message") if handled.get("requestId") == request["requestId"] else None
            print(f"the operator did not act: {why or report['message']}", file=sys.stderr)
            return EXIT_REFUSED
        time.sleep(0.5)
    print(f"the operator has not acted on {request['requestId']} after {args.wait:g}s", file=sys.stderr)
    return EXIT_PENDING


def _rejoin(args: argparse.Namespace) -> int:
    if not args.source_dsn:
        print("error: --source-dsn (or FORTRESS_SOURCE_DSN) is required", file=sys.stderr)
        return EXIT_USAGE
    from fortress.adapters.pgbin import find_bindir
    from fortress.core.errors import Secret, describe
    from fortress.dr.rejoin import RejoinError, bindir_runner, rejoin

    bindir = args.bindir or find_bindir()
    if bindir is None:
        print("error: PostgreSQL binaries not found: pass --bindir", file=sys.stderr)
        return EXIT_USAGE
    try:
        result = rejoin(
            args.pgdata,
            args.source_dsn,
            bindir_runner(bindir),
            application_name=args.application_name,
            allow_reclone=not args.no_reclone,
        )
    except RejoinError as error:  # the tools' output: the source DSN named, never shown
        print(f"error: {describe(error, [Secret(args.source_dsn, '<the source DSN>')])}", file=sys.stderr)
        return EXIT_PENDING
    print(
        f"rejoined with {result.method}: {result.detail}; start the server: it streams from the new primary"
    )
    return EXIT_OK
