"""Kopf glue of ShardCluster: the reconcile and a daemon per cluster (probes, 2PC recovery, rebalancing).

The reconcile (create/update/resume) and the daemon both run ``Controller.sync``; the daemon repeats it
every ``spec.healthCheckInterval`` (every 2 s while a rebalance runs), runs 2PC recovery every
``spec.transactions.recoveryInterval`` and writes the status itself, posting an Event only when a warning
first appears.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import time
from collections.abc import Callable
from typing import Any

import kopf

from fortress.api.common import parse_duration
from fortress.api.shardcluster import INFO, ShardClusterSpec
from fortress.core.outcome import Outcome, status_patch
from fortress.core.reconciler import ReconcileRequest
from fortress.core.validation import validate_spec
from fortress.sharding.controller import REBALANCE_SYNC_SECONDS, Controller

KIND = "ShardCluster"
log = logging.getLogger("fortress.sharding")
_ATTRIBUTE = "_sharding_controllers"


def controllers(services: Any) -> dict[tuple[str, str], Controller]:
    """The controllers of one operator instance (kept on its Services object)."""
    found: dict[tuple[str, str], Controller] | None = getattr(services, _ATTRIBUTE, None)
    if found is None:
        found = {}
        setattr(services, _ATTRIBUTE, found)
    return found


def controller_for(services: Any, namespace: str, name: str) -> Controller:
    registry = controllers(services)
    key = (namespace, name)
    if key not in registry:
        registry[key] = Controller(namespace, name, services.kube, services.pools)
    return registry[key]


async def reconcile(request: ReconcileRequest) -> Outcome:
    if request.services is None:
        return Outcome(False, "OperatorNotStarted", "operator services are not available", "Pending")
    assert isinstance(request.spec, ShardClusterSpec)
    ctl = controller_for(request.services, request.namespace, request.name)
    outcome = await ctl.sync(request.spec, request.body, migrate=True)
    ctl.posted = {note.reason for note in outcome.events}
    ctl.wake.set()
    return outcome


def register(registry: kopf.OperatorRegistry, services: Callable[[], Any]) -> None:
    @kopf.daemon(
        INFO.group,
        INFO.version,
        INFO.plural,
        registry=registry,
        id="sharding",
        cancellation_timeout=10,
    )
    async def drive(
        name: str, namespace: str | None, body: kopf.Body, stopped: kopf.DaemonStopped, **_: Any
    ) -> None:
        namespace = namespace or ""
        registry = controllers(services())  # captured: the services are gone when the operator exits
        ctl = controller_for(services(), namespace, name)
        next_recovery = next_sync = 0.0
        try:
            while not stopped:
                validated = validate_spec(INFO, body.get("spec"))
                if not validated.valid or not isinstance(validated.spec, ShardClusterSpec):
                    await _wait(ctl, 5.0)
                    continue
                spec = validated.spec
                now = time.monotonic()
                force = False
                if now >= next_recovery and ctl.router is not None:
                    try:
                        await ctl.recover(spec)
                    except Exception as error:  # reported; the next run retries
                        log.warning("%s: 2PC recovery failed: %s", ctl.cluster, error)
                    interval = parse_duration(spec.transactions.recovery_interval).total_seconds()
                    next_recovery = now + max(interval, 0.1)
                    force = True
                if force or ctl.wake.is_set() or now >= next_sync:
                    ctl.wake.clear()
                    await _sync_and_write(ctl, spec, body)
                    interval = parse_duration(spec.health_check_interval).total_seconds()
                    next_sync = now + (min(interval, REBALANCE_SYNC_SECONDS) if ctl.rebalancing else interval)
                    if ctl.router is not None and next_recovery == 0.0:
                        next_recovery = now  # first recovery right after the first sync
                await _wait(ctl, max(0.05, min(next_sync, next_recovery or next_sync) - time.monotonic()))
        finally:
            registry.pop((namespace, name), None)
            await ctl.stop()


async def _wait(ctl: Controller, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(ctl.wake.wait(), seconds)


async def _sync_and_write(ctl: Controller, spec: ShardClusterSpec, body: kopf.Body) -> None:
    try:
        outcome = await ctl.sync(spec, body)
    except Exception as error:
        log.warning("%s: sync failed: %s", ctl.cluster, error)
        return
    generation = (body.get("metadata") or {}).get("generation")
    patch = status_patch(outcome, body.get("status"), generation, dt.datetime.now(dt.UTC))
    await ctl.write_status(patch)
    reasons = {note.reason for note in outcome.events}
    for note in outcome.events:
        if note.reason not in ctl.posted:
            kopf.event(body, type=note.type, reason=note.reason, message=note.message)
    ctl.posted = reasons
