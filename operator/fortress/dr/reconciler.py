"""The DRPlan and DRRegion reconcilers: one check of a plan per step of its loop.

A DRPlan's step is one check: take the plan's Lease (a replica that does not hold it writes
nothing and looks again after ``spec.checkInterval``), list and probe the regions, decide
(:func:`fortress.dr.election.decide`), act (:mod:`fortress.dr.housekeep` or a
:class:`~fortress.dr.promote.Promotion`), then write each region's status and return the plan's
outcome; the next check follows ``spec.checkInterval`` later. The plan's loop owns its regions'
status; a DRRegion's own loop reports only what the plan cannot: that its plan does not exist (and
an invalid spec, which the loop reports itself).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass, replace
from typing import Final, cast

from fortress.api.common import SecretKeyRef
from fortress.api.drplan import INFO as PLAN_INFO
from fortress.api.drplan import DRPlanSpec
from fortress.api.drregion import INFO as REGION_INFO
from fortress.api.drregion import DRRegionSpec
from fortress.core.conditions import READY, find
from fortress.core.errors import Secret, describe
from fortress.core.health import CHECK_FAILED
from fortress.core.loop import Loops, ObjectRef, StepContext
from fortress.core.outcome import EventNote, Outcome, status_patch
from fortress.core.requests import handled_id
from fortress.core.services import Services
from fortress.core.time import now, seconds_of
from fortress.dr import kubeio
from fortress.dr.decision import Decision, LeaseView, PlanState
from fortress.dr.election import decide
from fortress.dr.housekeep import housekeep
from fortress.dr.observe import Check, Clock, probe_regions, read_regions, read_service, take_lease
from fortress.dr.promote import Promotion
from fortress.dr.status import Executed, plan_status, region_status, request_record
from fortress.dr.topology import Topology
from fortress.metrics import dr as metrics

SECRET_TTL: Final = 10.0  # seconds a region's DSN is reused before its Secret is read again
PLAN_NOT_FOUND: Final = "PlanNotFound"
CHECK_RETRY_SECONDS: Final = 10.0  # a failed check is retried after its interval, at most this


@dataclass
class CheckReport:
    """What one check did (for tests and the benchmark; the operator only writes the outcome)."""

    plan: str
    interval: float
    skipped: str | None = None  # why this replica did not check (another one holds the Lease)
    decision: Decision | None = None
    executed: Executed | None = None
    topology: Topology | None = None
    outcome: Outcome | None = None


def action_timeout(interval: float) -> float:
    """How long one probe or action on a region may take: half the check interval, 0.5 to 3 s."""
    return min(3.0, max(0.5, interval / 2))


class DRPlanReconciler:
    """Checks one DRPlan every ``spec.checkInterval``; the plan's loop writes what each check found."""

    def __init__(self, services: Services, ref: ObjectRef, clock: Clock = now) -> None:
        self.services, self.ref, self.clock = services, ref, clock
        self._secrets: dict[tuple[str, str], tuple[float, str]] = {}  # (name, key) -> (read at, DSN)
        self._standby: asyncio.TimerHandle | None = None
        self.regions: list[str] = []  # region names of the latest check (to drop their metrics)
        self.last: CheckReport | None = None

    async def step(self, ctx: StepContext) -> Outcome | None:
        try:
            report = await self.check(ctx)
        except Exception as error:  # the plan must not go on looking as its last check left it
            text = ctx.checks.failed("check", error, self.known_secrets())
            ctx.logger.debug("DR check of %s failed", self.ref, exc_info=error)
            await self.regions_unknown(ctx, f"the check of DRPlan {ctx.name} failed: {text}")
            interval = seconds_of(cast(DRPlanSpec, ctx.spec).check_interval)
            phase = str(ctx.status.get("phase") or "Unknown")
            return Outcome(None, CHECK_FAILED, "", phase, requeue_after=min(interval, CHECK_RETRY_SECONDS))
        if report.skipped is None:
            ctx.checks.passed("check")
        self.last = report
        return report.outcome

    async def regions_unknown(self, ctx: StepContext, message: str) -> None:
        """The plan's regions no longer look as the last check left them: Ready=Unknown (best effort)."""
        try:
            regions = await kubeio.list_regions(self.services.kube, ctx.namespace, ctx.name)
            for item in regions:
                metadata = item.get("metadata") or {}
                current = item.get("status") or {}
                found = find(current.get("conditions"), READY)
                if found is not None and found.get("reason") == CHECK_FAILED:
                    continue  # said already (its message may differ only by the error's details)
                outcome = Outcome(None, CHECK_FAILED, message, str(current.get("phase") or "Unknown"))
                patch = status_patch(outcome, current, metadata.get("generation"), now())
                ref = ObjectRef(REGION_INFO, ctx.namespace, str(metadata.get("name")))
                await ctx.write_status_of(ref, current, patch)
        except Exception as error:  # the API itself may be what failed: the plan says so already
            ctx.logger.debug("regions of %s not marked Unknown: %s", self.ref, describe(error))

    def known_secrets(self) -> list[Secret]:
        """The region DSNs read so far, to name by Secret and key in a described error."""
        namespace = self.ref.namespace
        return [Secret.of(value, namespace, name, key) for (name, key), (_, value) in self._secrets.items()]

    async def close(self, deleted: bool) -> None:
        if self._standby is not None:
            self._standby.cancel()
        if deleted:
            forget_metrics(self.ref.namespace, self.ref.name, self.regions)

    async def _secret(self, ref: SecretKeyRef) -> str:
        """A Secret value, re-read at most every SECRET_TTL seconds (every check would be wasteful)."""
        cached = self._secrets.get((ref.name, ref.key))
        if cached is not None and time.monotonic() - cached[0] < SECRET_TTL:
            return cached[1]
        value = await self.services.secret(self.ref.namespace, ref)
        self._secrets[(ref.name, ref.key)] = (time.monotonic(), value)
        return value

    async def check(self, ctx: StepContext) -> CheckReport:
        """One check of the plan: observe, decide, act, write the regions' status; the plan's outcome."""
        started = time.monotonic()
        spec = cast(DRPlanSpec, ctx.spec)
        interval = seconds_of(spec.check_interval)
        if self._standby is not None:
            self._standby.cancel()
        held = await take_lease(
            self.services.kube, ctx.namespace, ctx.name, spec, self.services.identity, self.clock()
        )
        if held is not None:  # another replica checks and writes; look again after an interval
            self._standby = asyncio.get_running_loop().call_later(interval, ctx.loop.wake)
            return CheckReport(ctx.name, interval, skipped=held)
        check = await self.observe(ctx, spec, interval)
        service_now = await read_service(self.services.kube, ctx.namespace, spec, ctx.logger)
        decision = decide(
            plan_state(check, service_now),
            [region.state for region in check.regions.values()],
            check.topology,
            LeaseView(True, self.services.identity),
            self.clock(),
        )
        request = spec.request.action if spec.request is not None else None
        recorded = request_record(decision, request, handled_id(ctx.status), self.clock())
        if decision.acts:
            executed = await Promotion(check, decision, service_now, recorded).run()
        else:
            executed = await housekeep(check, decision, service_now, recorded)
        outcome = await self.write(check, decision, executed)
        record_metrics(ctx.namespace, ctx.name, check.topology, decision, executed)
        outcome = replace(outcome, requeue_after=max(0.05, interval - (time.monotonic() - started)))
        return CheckReport(ctx.name, interval, None, decision, executed, check.topology, outcome)

    async def observe(self, ctx: StepContext, spec: DRPlanSpec, interval: float) -> Check:
        """The plan's regions, probed; what the actions of this check share."""
        regions = await read_regions(self.services.kube, ctx.namespace, ctx.name, spec, self._secret)
        self.regions = list(regions)
        timeout = action_timeout(interval)
        primary = ctx.status.get("primaryRegion")
        topology = await probe_regions(regions, ctx.namespace, primary, timeout, self.clock)
        return Check(ctx, spec, regions, topology, timeout, self.clock, self.services.kube)

    async def write(self, check: Check, decision: Decision, executed: Executed) -> Outcome:
        """Each region's status and Events; the plan's outcome (its loop writes it)."""
        at = self.clock()
        for name, region in check.regions.items():
            patch = region_status(
                name=name,
                old_status=region.status,
                generation=region.generation,
                obs=check.topology.observations.get(name),
                decision=decision,
                executed=executed,
                now=at,
            )
            await check.write_region(name, patch)
        outcome = plan_status(
            old_status=check.ctx.status,
            history_limit=check.spec.history_limit,
            decision=decision,
            topology=check.topology,
            executed=executed,
            lease_holder=self.services.identity,
            now=at,
        )
        for note in executed.notes:
            if note.region is not None:
                await check.post(note)
        for event in outcome.events:
            (check.log.warning if event.type == "Warning" else check.log.info)(
                "%s: %s", event.reason, event.message
            )
        return outcome


def plan_state(check: Check, service_now: str | None) -> PlanState:
    """What earlier checks recorded in the plan's status, and where its Service points now."""
    status = check.ctx.status
    return PlanState(
        spec=check.spec,
        primary=status.get("primaryRegion"),
        handled_request_id=handled_id(status),
        in_progress=check.in_progress(),
        service_endpoint=service_now,
    )


class DRRegionReconciler:
    """A DRRegion: its plan's loop owns its status; it says so itself only when that plan is missing.

    A region its plan has not checked since its spec changed (or ever) wakes the plan's loop.
    """

    def __init__(self, services: Services, ref: ObjectRef) -> None:
        self.services, self.ref = services, ref
        self.plan_ref: str | None = None

    async def step(self, ctx: StepContext) -> Outcome | None:
        spec = cast(DRRegionSpec, ctx.spec)
        self.plan_ref = spec.plan_ref
        if await kubeio.get_plan(self.services.kube, ctx.namespace, spec.plan_ref) is None:
            message = f"spec.planRef: DRPlan {spec.plan_ref} not found"
            return Outcome(
                ready=False,
                reason=PLAN_NOT_FOUND,
                message=message,
                phase="Pending",
                events=(EventNote("Warning", PLAN_NOT_FOUND, message),),
            )
        if ctx.status.get("observedGeneration") != ctx.generation:  # new, or changed since its last check
            self.services.loops.wake(PLAN_INFO.kind, ctx.namespace, spec.plan_ref)
        return None

    async def close(self, deleted: bool) -> None:
        return None


def wake_regions(loops: Loops, namespace: str, plan: str) -> None:
    """Wake the loops of a plan's regions (their plan is gone: they say so)."""
    for loop in loops.of_kind("DRRegion"):
        reconciler = loop.reconciler
        mine = isinstance(reconciler, DRRegionReconciler) and reconciler.plan_ref == plan
        if mine and loop.ref.namespace == namespace:
            loop.wake()


def record_metrics(
    namespace: str, plan: str, topology: Topology, decision: Decision, executed: Executed
) -> None:
    metrics.DR_CHECKS.labels(namespace, plan, decision.action.value).inc()
    for name, verdict in decision.regions.items():
        labels = (namespace, plan, name)
        obs = topology.observations.get(name)
        healthy = verdict.healthy or (executed.record is not None and name == executed.primary)
        metrics.DR_REGION_HEALTHY.labels(*labels).set(1 if healthy else 0)
        if obs is not None and obs.lag_bytes is not None:
            metrics.REPLICATION_LAG_BYTES.labels(*labels).set(obs.lag_bytes)
        if obs is not None and obs.lag_seconds is not None:
            metrics.REPLICATION_LAG_SECONDS.labels(*labels).set(obs.lag_seconds)
    record = executed.record
    if record is not None:
        metrics.DR_FAILOVERS.labels(namespace, plan, record.type).inc()
        if record.rto_seconds is not None:
            metrics.DR_LAST_RTO_SECONDS.labels(namespace, plan).set(record.rto_seconds)
        if record.rpo_bytes is not None:
            metrics.DR_LAST_RPO_BYTES.labels(namespace, plan).set(record.rpo_bytes)


def forget_metrics(namespace: str, plan: str, regions: list[str]) -> None:
    """Drop a deleted plan's series."""
    for name in regions:
        for gauge in (
            metrics.DR_REGION_HEALTHY,
            metrics.REPLICATION_LAG_BYTES,
            metrics.REPLICATION_LAG_SECONDS,
        ):
            with contextlib.suppress(KeyError):
                gauge.remove(namespace, plan, name)
