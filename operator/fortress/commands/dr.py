"""``fortress dr``: request a failover or switchover, show a plan's status, rejoin an old primary.

    fortress dr failover PLAN --to REGION [--switchover] [--force] [-n NS] [--wait SECONDS]
    fortress dr status PLAN [-n NS] [-o table|json]
    fortress dr rejoin --pgdata DIR --source-dsn DSN [--bindir DIR] [--application-name NAME]
    fortress dr drill [-n NS | -A] [-l SELECTOR] [--wait SECONDS]

Exit codes: 0 done, 1 the operator has not acted yet (``--wait``) or rejoin failed, 2 usage,
3 Kubernetes API error, 4 not found (``drill``: no plan carries the label), 5 refused (pending request,
wrong plan, already primary; ``drill``: a drill was refused, skipped or failed).
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
    parser = subparsers.add_parser(
        "dr", help="disaster recovery: failover, switchover, status, rejoin, drill"
    )
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
    drill = verbs.add_parser(
        "drill",
        help="a planned switchover on each plan labelled for drills; the result as an Event and exit code",
    )
    where = drill.add_mutually_exclusive_group()
    where.add_argument("-n", "--namespace", default=None, help="(default: the current namespace)")
    where.add_argument("-A", "--all-namespaces", action="store_true")
    drill.add_argument(
        "-l", "--selector", default=None, help="plans to drill (default: fortress.io/drill=true)"
    )
    drill.add_argument("--wait", type=float, default=600.0, help="seconds to wait for each switchover")
    parser.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    if args.dr_verb is None:
        print("usage: fortress dr {failover,status,rejoin,drill} ...", file=sys.stderr)
        return EXIT_USAGE
    if args.dr_verb == "rejoin":
        return _rejoin(args)
    if args.dr_verb == "drill":
        return _drill(args)
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


def _drill(args: argparse.Namespace) -> int:
    """Request a switchover drill on every labelled plan, wait for each, and post its result."""
    from fortress.adapters.kube import ApiException, BlockingKube, load_cluster, meta
    from fortress.core.errors import describe
    from fortress.core.requests import new_request_id
    from fortress.dr import control, drill
    from fortress.dr.kubeio import PLANS, REGIONS, regions_of

    selector = args.selector or drill.DEFAULT_SELECTOR
    labels = dict(part.split("=", 1) for part in selector.split(",") if "=" in part)
    if not labels or len(labels) != len(selector.split(",")):
        print(f"error: --selector takes key=value[,key=value]: {selector!r}", file=sys.stderr)
        return EXIT_USAGE
    namespace = None if args.all_namespaces else (args.namespace or "default")
    codes: list[int] = []
    try:
        with BlockingKube(load_cluster(args.kubeconfig, args.context)) as kube:
            plans = kube.list(PLANS, namespace, labels=labels)
            if not plans:
                where = "any namespace" if namespace is None else f"namespace {namespace}"
                print(f"no DRPlan in {where} is labelled {selector}: nothing to drill", file=sys.stderr)
                return EXIT_NOT_FOUND
            for plan in sorted(plans, key=lambda p: (meta(p).get("namespace"), meta(p).get("name"))):
                ns, name = str(meta(plan).get("namespace")), str(meta(plan).get("name"))
                choice = drill.choose_target(plan, regions_of(kube.list(REGIONS, ns), name))
                if choice.target is None:
                    result = (drill.SKIPPED, f"switchover drill not started: {choice.reason}")
                else:
                    request_id = new_request_id("drill", choice.target)
                    try:
                        control.request_failover(
                            kube, ns, name, choice.target, switchover=True, request_id=request_id
                        )
                        print(f"{ns}/{name}: switchover drill to {choice.target} ({choice.reason})")
                        result = _await_drill(kube, ns, name, request_id, args.wait)
                    except (control.Conflict, control.Invalid, control.NotFound) as error:
                        result = (drill.FAILED, f"switchover drill refused: {error}")
                failed = result[0] != drill.SUCCEEDED
                print(f"{ns}/{name}: {result[0]}: {result[1]}", file=sys.stderr if failed else sys.stdout)
                involved = {**meta(plan), "apiVersion": plan.get("apiVersion"), "kind": "DRPlan"}
                kube.post_event(
                    involved, "Warning" if failed else "Normal", *result, component="fortress-drill"
                )
                codes.append(
                    EXIT_PENDING if result[0] == drill.PENDING else EXIT_REFUSED if failed else EXIT_OK
                )
    except ApiException as error:
        print(f"error: Kubernetes API answered {describe(error)}", file=sys.stderr)
        return EXIT_API
    except Exception as error:  # configuration: no kubeconfig, unreachable server
        print(f"error: {describe(error)}", file=sys.stderr)
        return EXIT_API
    return max(codes, default=EXIT_OK)


def _await_drill(kube: Any, namespace: str, name: str, request_id: str, wait: float) -> tuple[str, str]:
    from fortress.dr import drill
    from fortress.dr.kubeio import PLANS

    deadline = time.monotonic() + wait
    while True:
        plan = kube.get(PLANS, namespace, name) or {}
        found = drill.outcome(plan, request_id)
        if found is not None:
            return found
        if time.monotonic() >= deadline:
            return drill.PENDING, f"switchover drill {request_id} not finished after {wait:g}s"
        time.sleep(0.5)


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
