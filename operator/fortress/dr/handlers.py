"""Kopf glue for DRPlan and DRRegion: reconciles that report, and one check daemon per plan.

The reconciles (on create, spec change and resume) validate and restate what the latest check
found; the per-plan daemon runs ``Checker.check_once`` every ``spec.checkInterval`` and writes the
status of the plan and of each of its regions.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import socket
from collections.abc import Callable, Mapping
from typing import Any

import kopf

from fortress.api.drplan import INFO as PLAN_INFO
from fortress.api.drregion import INFO as REGION_INFO
from fortress.api.drregion import DRRegionSpec
from fortress.core.conditions import READY, find
from fortress.core.outcome import INVALID_SPEC, Outcome
from fortress.core.reconciler import Reconciler, ReconcileRequest
from fortress.dr.check import Checker, forget_metrics, run_checks
from fortress.dr.kube_actions import KubeActions

KIND = PLAN_INFO.kind


def restate(status: Mapping[str, Any], waiting: str) -> Outcome:
    """The outcome a reconcile reports: what the latest check wrote, else that a check is pending."""
    ready = find(status.get("conditions"), READY)
    if ready is None or ready.get("reason") == INVALID_SPEC or not status.get("lastCheckTime"):
        return Outcome(False, "AwaitingCheck", waiting, "Pending")
    return Outcome(
        ready.get("status") == "True",
        str(ready.get("reason") or "Checked"),
        str(status.get("message") or ready.get("message") or ""),
        str(status.get("phase") or "Checked"),
    )


async def reconcile(request: ReconcileRequest) -> Outcome:
    """DRPlan: the spec is valid (checked before this runs); the daemon's checks drive the rest."""
    return restate(request.status, "the first check runs within spec.checkInterval")


async def reconcile_region(request: ReconcileRequest) -> Outcome:
    """DRRegion: the plan it names must exist; its plan's checks write the rest of its status."""
    spec = request.spec
    assert isinstance(spec, DRRegionSpec)
    services = request.services
    if services is not None:
        try:
            await services.kube.get_custom(
                PLAN_INFO.group, PLAN_INFO.version, request.namespace, PLAN_INFO.plural, spec.plan_ref
            )
        except Exception as error:
            if getattr(error, "status", None) == 404:
                return Outcome(
                    False, "PlanNotFound", f"spec.planRef: DRPlan {spec.plan_ref} not found", "Pending"
                )
            raise
    return restate(request.status, f"waiting for DRPlan {spec.plan_ref}'s first check")


RECONCILERS: dict[str, Reconciler] = {REGION_INFO.kind: reconcile_region}


def identity() -> str:
    """This operator instance's name in the failover Leases."""
    return f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}"


def register(registry: kopf.OperatorRegistry, services: Callable[[], Any]) -> None:
    """One check daemon per DRPlan."""
    me = identity()

    @kopf.daemon(
        PLAN_INFO.group,
        PLAN_INFO.version,
        PLAN_INFO.plural,
        registry=registry,
        id="dr-checks",
        cancellation_timeout=10.0,
    )
    async def checks(
        stopped: kopf.DaemonStopped,
        name: str,
        namespace: str | None,
        logger: logging.Logger | logging.LoggerAdapter[Any],
        **_: Any,
    ) -> None:
        kube = KubeActions(services().cluster)
        checker = Checker(kube, me, namespace or "", name, logger=logger)

        async def wait(seconds: float) -> None:
            await stopped.wait(seconds)

        try:
            await run_checks(checker, lambda: bool(stopped), wait)
        finally:
            forget_metrics(namespace or "", name, checker.last_regions)
            await asyncio.shield(kube.close())
