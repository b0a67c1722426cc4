"""One check of one DRPlan: observe every region, decide, act, write status (the glue).

``Checker.check_once()`` is what the operator's per-plan daemon runs every ``spec.checkInterval``;
tests and the benchmark call it directly too. The order of a promotion is crash-safe: the
operation and the old primary's fenced flag are written to status before anything is touched, so a
restarted operator resumes it (every step is idempotent) and never promotes twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from fortress.api.common import parse_duration
from fortress.api.drplan import INFO as PLAN_INFO
from fortress.api.drplan import DRPlanSpec, FailoverRecord, Operation
from fortress.api.drregion import INFO as REGION_INFO
from fortress.api.drregion import DRRegionSpec
from fortress.core.validation import validate_spec
from fortress.dr import actions, lease, probe
from fortress.dr.election import Action, Decision, LeaseView, PlanState, RegionState, decide
from fortress.dr.kube_actions import KubeActions, service_endpoint
from fortress.dr.status import (
    Executed,
    Note,
    parse_stamp,
    plan_status,
    region_state,
    region_status,
    stamp,
)
from fortress.dr.topology import Observation, Probe, Role, Topology, build, format_lsn
from fortress.metrics import dr as metrics

log = logging.getLogger("fortress.dr")
SECRET_TTL = 10.0  # seconds a region's DSN is reused before its Secret is read again
Clock = Callable[[], dt.datetime]


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@dataclass
class CheckReport:
    """What one check did (for the daemon's pacing, tests and the benchmark)."""

    plan: str
    interval: float
    skipped: str | None = None
    decision: Decision | None = None
    executed: Executed | None = None
    topology: Topology | None = None


@dataclass
class _Region:
    name: str
    body: dict[str, Any]
    spec: DRRegionSpec
    state: RegionState
    dsn: str | None = None
    dsn_error: str | None = None


@dataclass
class _Context:
    namespace: str
    plan_body: dict[str, Any]
    spec: DRPlanSpec
    regions: dict[str, _Region]
    topology: Topology
    timeout: float
    notes: list[Note] = field(default_factory=list)


class Checker:
    """Checks one plan; holds no state between checks other than its Kubernetes client."""

    def __init__(
        self,
        kube: KubeActions,
        identity: str,
        namespace: str,
        plan: str,
        clock: Clock = _now,
        logger: logging.Logger | logging.LoggerAdapter[Any] = log,
    ) -> None:
        self.kube, self.identity, self.namespace, self.plan = kube, identity, namespace, plan
        self.clock, self.log = clock, logger
        self._secrets: dict[tuple[str, str], tuple[float, str]] = {}  # (name, key) -> (read at, DSN)
        self.last_regions: list[str] = []  # region names of the latest check (to drop their metrics)

    async def _dsn(self, name: str, key: str) -> str:
        """A Secret value, re-read at most every SECRET_TTL seconds (every check would be wasteful)."""
        cached = self._secrets.get((name, key))
        if cached is not None and time.monotonic() - cached[0] < SECRET_TTL:
            return cached[1]
        value = await self.kube.secret_value(self.namespace, name, key)
        self._secrets[(name, key)] = (time.monotonic(), value)
        return value

    async def check_once(self) -> CheckReport:
        body = await self.kube.get_plan(self.namespace, self.plan)
        if body is None:
            return CheckReport(self.plan, 5.0, skipped="plan not found")
        validated = validate_spec(PLAN_INFO, body.get("spec"))
        if validated.spec is None or not validated.valid:
            return CheckReport(self.plan, 5.0, skipped=f"invalid spec: {validated.message()}")
        spec = validated.spec
        assert isinstance(spec, DRPlanSpec)
        interval = parse_duration(spec.check_interval).total_seconds()
        now = self.clock()

        held = await self._lease(spec, now)
        if held is not None:
            return CheckReport(self.plan, interval, skipped=held)

        status = body.get("status") or {}
        regions = await self._regions(spec)
        self.last_regions = list(regions)
        timeout = min(3.0, max(0.5, interval / 2))
        names = list(regions)
        probes = await asyncio.gather(*(self._probe(regions[n], timeout) for n in names))
        primary = status.get("primaryRegion")
        last_lsn = regions[primary].state.last_lsn if primary in regions else None
        topology = build(dict(zip(names, probes, strict=True)), primary, last_lsn)
        service_now = await self._service_target(spec)
        in_progress = status.get("inProgress")
        plan_state = PlanState(
            spec=spec,
            primary=primary,
            handled_request_id=status.get("handledRequestId"),
            in_progress=Operation.model_validate(in_progress) if in_progress else None,
            service_endpoint=service_now,
        )
        now = self.clock()
        decision = decide(
            plan_state, [r.state for r in regions.values()], topology, LeaseView(True, self.identity), now
        )
        ctx = _Context(self.namespace, body, spec, regions, topology, timeout)
        if decision.acts:
            executed = await self._operate(ctx, decision, service_now)
        else:
            executed = await self._housekeep(ctx, decision, service_now)
        await self._write(ctx, decision, executed)
        self._metrics(ctx, decision, executed)
        return CheckReport(self.plan, interval, decision=decision, executed=executed, topology=topology)

    # --- observe ----------------------------------------------------------------------------------------

    async def _lease(self, spec: DRPlanSpec, now: dt.datetime) -> str | None:
        """None when this replica may act; else why not."""
        name = lease.lease_name(self.plan)
        current = await self.kube.read_lease(self.namespace, name)
        duration = parse_duration(spec.lease_duration).total_seconds()
        step = lease.step(current, self.identity, now, duration)
        if not step.holds:
            return f"lease: {step.reason}"
        if step.record is not None:
            written = await self.kube.write_lease(
                self.namespace, name, step.record, exists=current is not None
            )
            if not written:
                return "lease: another replica took it first"
        return None

    async def _regions(self, spec: DRPlanSpec) -> dict[str, _Region]:
        found: dict[str, _Region] = {}
        for item in await self.kube.list_regions(self.namespace, self.plan):
            validated = validate_spec(REGION_INFO, item.get("spec"))
            if validated.spec is None or not validated.valid:
                continue  # its own reconcile reports InvalidSpec
            rspec = validated.spec
            assert isinstance(rspec, DRRegionSpec)
            name = item["metadata"]["name"]
            endpoint = service_endpoint(spec.service.mode, rspec.endpoint.host, rspec.endpoint.port)
            state = region_state(name, rspec, item.get("status") or {}, endpoint)
            region = _Region(name, item, rspec, state)
            ref = rspec.connection.secret_key_ref
            try:
                region.dsn = await self._dsn(ref.name, ref.key)
            except LookupError as error:
                region.dsn_error = str(error)
            found[name] = region
        return found

    async def _probe(self, region: _Region, timeout: float) -> Probe:
        if region.dsn is None:
            return Probe.unreachable(self.clock(), region.dsn_error or "no DSN")
        return await probe.probe(region.dsn, timeout, self.clock)

    async def _service_target(self, spec: DRPlanSpec) -> str | None:
        try:
            return await self.kube.service_target(self.namespace, spec.service)
        except Exception as error:  # observed again on the next check
            self.log.warning("reading Service %s failed: %s", spec.service.name, error)
            return None

    # --- act --------------------------------------------------------------------------------------------

    async def _point_service(self, ctx: _Context, region: str) -> str:
        endpoint = ctx.regions[region].spec.endpoint
        return await self.kube.point_service(
            self.namespace, ctx.spec.service, self.plan, endpoint.host, endpoint.port
        )

    async def _housekeep(self, ctx: _Context, decision: Decision, service_now: str | None) -> Executed:
        """Everything but a promotion: fences, rejoins, repointing standbys and the Service."""
        errors: list[str] = []
        notes: list[Note] = []
        fenced_now: dict[str, str] = {}
        reasons: dict[str, str] = {}
        primary = decision.primary
        for name in decision.fence:
            old = ctx.regions[name].body.get("status") or {}
            why = old.get("fencedReason") if old.get("fenced") else None
            reasons[name] = why or f"a second primary besides {primary}: fenced"
            await self._fence(ctx, name, fenced_now, errors)
            if name in fenced_now:
                notes.append(Note("Warning", "Fenced", f"{reasons[name]} ({fenced_now[name]})", name))
        for name in decision.lift_fence:
            try:
                await actions.lift_fence(self._region_dsn(ctx, name), ctx.timeout)
                notes.append(
                    Note("Normal", "FenceLifted", "switchover abandoned: writes allowed again", name)
                )
            except Exception as error:
                errors.append(f"lifting the fence on {name}: {error}")
        service = service_now
        if decision.service_to is not None:
            try:
                service = await self._point_service(ctx, decision.service_to)
                notes.append(
                    Note("Normal", "ServicePointed", f"Service -> {decision.service_to} ({service})")
                )
            except Exception as error:
                errors.append(f"pointing the Service at {decision.service_to}: {error}")
        followed = await self._follow(ctx, decision.follow, primary, errors)
        for name in decision.unfence:
            notes.append(
                Note("Normal", "Rejoined", f"rejoined as a standby of {primary}; fence cleared", name)
            )
        for name, verdict in decision.regions.items():
            was = bool((ctx.regions[name].body.get("status") or {}).get("needsReclone"))
            if verdict.needs_reclone and not was:
                notes.append(
                    Note("Warning", "NeedsReclone", f"cannot follow {primary}'s timeline: re-clone it", name)
                )
        if decision.request_note:
            notes.append(Note("Warning", "RequestRejected", decision.request_note))
        if decision.abandoned:
            notes.append(Note("Warning", "OperationAbandoned", decision.abandoned))
        return Executed(
            primary=primary,
            service_endpoint=service,
            in_progress=None if decision.abandoned else _operation_of(ctx),
            handled_request_id=decision.request_id,
            fenced_now=fenced_now,
            fence_reasons=reasons,
            followed=followed,
            errors=tuple(errors),
            notes=tuple(notes),
        )

    async def _operate(self, ctx: _Context, decision: Decision, service_now: str | None) -> Executed:
        """Fail over or switch over to ``decision.target``: fence, (wait), promote, repoint, record."""
        assert decision.target is not None
        target, old = decision.target, decision.from_region
        kind = "switchover" if decision.action is Action.SWITCHOVER else "failover"
        started = self.clock()
        detected = decision.detected_at or started
        op = _operation_of(ctx) if decision.resume else None
        if op is None:
            op = Operation(
                type=kind,
                from_region=old,
                to_region=target,
                reason=decision.reason,
                started_at=stamp(started),
                detected_at=stamp(detected),
                request_id=decision.request_id,
                force=decision.force,
            )
        detected = parse_stamp(op.detected_at) or detected
        reasons = {
            name: f"fenced by the {kind} to {target} at {stamp(started)}"
            for name, verdict in decision.regions.items()
            if verdict.fenced and not (ctx.regions[name].body.get("status") or {}).get("fenced")
        }
        # 1. Record the intent: the operation, and the regions it fences, before touching anything.
        plan_patch: dict[str, Any] = {"inProgress": op.wire()}
        if decision.request_id:
            plan_patch["handledRequestId"] = decision.request_id
        await self.kube.patch_status(PLAN_INFO.plural, self.namespace, self.plan, plan_patch)
        for name, why in reasons.items():
            await self.kube.patch_status(
                REGION_INFO.plural,
                self.namespace,
                name,
                {"fenced": True, "fencedReason": why, "role": "Fenced"},
            )
        errors: list[str] = []
        notes: list[Note] = []
        fenced_now: dict[str, str] = {}

        def give_up(message: str, lift: bool) -> Executed:
            notes.append(Note("Warning", f"{kind.capitalize()}Failed", message))
            return Executed(
                primary=old,
                service_endpoint=service_now,
                in_progress=None,
                handled_request_id=decision.request_id,
                fenced_now=fenced_now,
                fence_reasons={} if lift else reasons,
                errors=(*errors, message),
                notes=tuple(notes),
                unfenced=tuple(reasons) if lift else (),
            )

        # 2. Fence the old primary (and any other writable primary) while it is reachable.
        for name in decision.fence:
            await self._fence(ctx, name, fenced_now, errors)
            if name == old and name not in fenced_now and kind == "switchover":
                return give_up(f"switchover to {target} abandoned: could not fence {old}", lift=True)
        # 3. A switchover waits until the target has everything the fenced primary wrote.
        primary_lsn: int | None = None
        if kind == "switchover" and old is not None:
            wait = parse_duration(ctx.spec.rto_target).total_seconds()
            try:
                primary_lsn = await actions.wait_caught_up(
                    self._region_dsn(ctx, old), self._region_dsn(ctx, target), wait
                )
            except Exception as error:
                with contextlib.suppress(Exception):
                    await actions.lift_fence(self._region_dsn(ctx, old), ctx.timeout)
                await self._unmark(reasons)
                return give_up(f"switchover to {target} abandoned, {old} writable again: {error}", lift=True)
        # 4. Promote.
        before = await probe.probe(self._region_dsn(ctx, target), ctx.timeout, self.clock)
        before_position = Observation(target, before, Role.STANDBY).position if before.reachable else None
        try:
            promotion = await actions.promote(self._region_dsn(ctx, target), timeout=30.0, clock=self.clock)
        except Exception as error:
            if kind == "switchover" and old is not None:
                with contextlib.suppress(Exception):
                    await actions.lift_fence(self._region_dsn(ctx, old), ctx.timeout)
                await self._unmark(reasons)
            return give_up(f"promoting {target} failed: {error}", lift=kind == "switchover")
        # 5. Repoint the Service, 6. the other standbys, 7. synchronous replication.
        service = service_now
        try:
            service = await self._point_service(ctx, target)
        except Exception as error:
            errors.append(f"pointing the Service at {target}: {error}")
        followed = await self._follow(ctx, decision.follow, target, errors)
        if ctx.spec.synchronous:
            names = [
                n
                for n in (ctx.topology.observations[f].probe.application_name for f in followed)
                if n is not None
            ]
            try:
                value = await actions.set_synchronous(self._region_dsn(ctx, target), names, ctx.timeout)
                if not value:
                    errors.append(f"no standby follows {target} yet: it runs without a synchronous standby")
            except Exception as error:
                errors.append(f"configuring synchronous replication on {target}: {error}")
        # 8. Measure and record.
        reference = primary_lsn if primary_lsn is not None else self._reference_lsn(ctx, old)
        end = promotion.switch_lsn if promotion.switch_lsn is not None else before_position
        rpo_bytes = max(0, reference - end) if reference is not None and end is not None else None
        target_obs = ctx.topology.observations.get(target)
        rpo_seconds: float | None = (
            0.0 if rpo_bytes == 0 else (target_obs.lag_seconds if target_obs else None)
        )
        rto = max(0.0, (promotion.writable_at - detected).total_seconds())
        completed = self.clock()
        details = {
            "oldPrimaryLsn": format_lsn(reference),
            "switchLsn": format_lsn(promotion.switch_lsn),
            "timeline": promotion.timeline,
            "fenced": dict(fenced_now),
            "followers": list(followed),
            "force": decision.force,
            "requestId": decision.request_id,
        }
        event_id = await self._record(
            ctx,
            decision,
            kind,
            detected,
            promotion.writable_at,
            completed,
            rto,
            rpo_bytes,
            rpo_seconds,
            details,
            errors,
        )
        record = FailoverRecord(
            type=kind,
            from_region=old,
            to_region=target,
            reason=decision.reason,
            detected_at=stamp(detected),
            promoted_at=stamp(promotion.writable_at),
            rto_seconds=round(rto, 3),
            rpo_bytes=rpo_bytes,
            rpo_seconds=None if rpo_seconds is None else round(rpo_seconds, 3),
            request_id=decision.request_id,
            event_id=event_id,
        )
        with contextlib.suppress(Exception):  # after RTO: lets pg_rewind see the new timeline
            await asyncio.wait_for(actions.checkpoint(self._region_dsn(ctx, target)), timeout=10)
        summary = (
            f"{kind} {old or '-'} -> {target}: RTO {rto:.2f}s, RPO {rpo_bytes} bytes "
            f"({'' if rpo_seconds is None else f'{rpo_seconds:.2f}s'}); {decision.reason}"
        )
        notes.append(
            Note("Normal" if kind == "switchover" else "Warning", f"{kind.capitalize()}Completed", summary)
        )
        for name, why in reasons.items():
            notes.append(
                Note(
                    "Warning", "Fenced", f"{why} ({fenced_now.get(name, 'unreachable: fence pending')})", name
                )
            )
        return Executed(
            primary=target,
            service_endpoint=service,
            record=record,
            in_progress=None,
            handled_request_id=decision.request_id,
            fenced_now=fenced_now,
            fence_reasons=reasons,
            followed=followed,
            errors=tuple(errors),
            notes=tuple(notes),
        )

    async def _fence(self, ctx: _Context, name: str, fenced_now: dict[str, str], errors: list[str]) -> None:
        try:
            result = await actions.fence(self._region_dsn(ctx, name), ctx.spec.fencing, ctx.timeout)
            fenced_now[name] = result.detail
        except Exception as error:
            errors.append(f"fencing {name}: {error}")

    async def _unmark(self, reasons: Mapping[str, str]) -> None:
        for name in reasons:
            await self.kube.patch_status(
                REGION_INFO.plural, self.namespace, name, {"fenced": False, "fencedReason": None}
            )

    async def _follow(
        self, ctx: _Context, names: tuple[str, ...], upstream: str | None, errors: list[str]
    ) -> tuple[str, ...]:
        if upstream is None:
            return ()
        done: list[str] = []
        for name in names:
            try:
                await actions.follow(
                    self._region_dsn(ctx, name), self._region_dsn(ctx, upstream), ctx.timeout
                )
                done.append(name)
            except Exception as error:
                errors.append(f"pointing {name} at {upstream}: {error}")
        return tuple(done)

    async def _record(
        self,
        ctx: _Context,
        decision: Decision,
        kind: str,
        detected: dt.datetime,
        promoted: dt.datetime,
        completed: dt.datetime,
        rto: float,
        rpo_bytes: int | None,
        rpo_seconds: float | None,
        details: dict[str, Any],
        errors: list[str],
    ) -> int | None:
        assert decision.target is not None
        rows = []
        for name, region in ctx.regions.items():
            verdict = decision.regions[name]
            role = "Primary" if name == decision.target else ("Fenced" if verdict.fenced else "Standby")
            rows.append(
                actions.RegionRow(
                    name=name,
                    provider=region.spec.provider,
                    location=region.spec.location,
                    role=role,
                    endpoint_host=region.spec.endpoint.host,
                    endpoint_port=region.spec.endpoint.port,
                    priority=region.spec.priority,
                    promotable=region.spec.promotable,
                    healthy=verdict.healthy or name == decision.target,
                    fenced=verdict.fenced,
                    fenced_reason="fenced by failover" if verdict.fenced else None,
                )
            )
        samples = [
            actions.LagSample(
                source=decision.from_region,
                target=name,
                replay_lsn=format_lsn(obs.probe.replay_lsn),
                lag_bytes=obs.lag_bytes,
                lag_seconds=obs.lag_seconds,
            )
            for name, obs in ctx.topology.observations.items()
            if decision.from_region and name != decision.from_region and obs.role is Role.STANDBY
        ]
        event = actions.FailoverEvent(
            namespace=self.namespace,
            plan=self.plan,
            type=kind,
            from_region=decision.from_region,
            to_region=decision.target,
            reason=decision.reason[:1000],
            outcome="succeeded",
            detected_at=detected,
            promoted_at=max(promoted, detected),
            completed_at=max(completed, detected),
            rto_seconds=rto,
            rpo_bytes=rpo_bytes,
            rpo_seconds=rpo_seconds,
            details=details,
        )
        try:
            event_id = await actions.record_failover(
                self._region_dsn(ctx, decision.target), event, rows, samples
            )
        except Exception as error:
            errors.append(f"recording the {kind} in failover_events: {error}")
            return None
        if event_id is None:
            errors.append(
                f"failover_events is missing on {decision.target}: "
                "run `fortress migrate up` on the region databases"
            )
        return event_id

    def _region_dsn(self, ctx: _Context, name: str) -> str:
        dsn = ctx.regions[name].dsn
        if dsn is None:
            raise LookupError(ctx.regions[name].dsn_error or f"no DSN for {name}")
        return dsn

    def _reference_lsn(self, ctx: _Context, old: str | None) -> int | None:
        if old is None:
            return None
        if ctx.topology.reference == old and ctx.topology.reference_lsn is not None:
            return ctx.topology.reference_lsn
        return ctx.regions[old].state.last_lsn if old in ctx.regions else None

    # --- write ------------------------------------------------------------------------------------------

    async def _write(self, ctx: _Context, decision: Decision, executed: Executed) -> None:
        now = self.clock()
        meta = ctx.plan_body.get("metadata") or {}
        patch, notes = plan_status(
            old_status=ctx.plan_body.get("status") or {},
            generation=meta.get("generation"),
            history_limit=ctx.spec.history_limit,
            decision=decision,
            topology=ctx.topology,
            executed=executed,
            lease_holder=self.identity,
            now=now,
        )
        for name, region in ctx.regions.items():
            region_patch = region_status(
                name=name,
                old_status=region.body.get("status") or {},
                generation=(region.body.get("metadata") or {}).get("generation"),
                obs=ctx.topology.observations.get(name),
                decision=decision,
                executed=executed,
                now=now,
            )
            await self.kube.patch_status(REGION_INFO.plural, self.namespace, name, region_patch)
        await self.kube.patch_status(PLAN_INFO.plural, self.namespace, self.plan, patch)
        for note in notes:
            involved = meta if note.region is None else (ctx.regions[note.region].body.get("metadata") or {})
            kind = PLAN_INFO.kind if note.region is None else REGION_INFO.kind
            try:
                await self.kube.post_event(
                    self.namespace,
                    {"kind": kind, "name": involved.get("name"), "uid": involved.get("uid")},
                    note.type,
                    note.reason,
                    note.message,
                    now,
                )
            except Exception as error:  # an Event is best effort
                self.log.warning("posting event %s failed: %s", note.reason, error)
            (self.log.warning if note.type == "Warning" else self.log.info)(
                "%s: %s", note.reason, note.message
            )

    def _metrics(self, ctx: _Context, decision: Decision, executed: Executed) -> None:
        metrics.DR_CHECKS.labels(self.namespace, self.plan, decision.action.value).inc()
        for name, verdict in decision.regions.items():
            labels = (self.namespace, self.plan, name)
            obs = ctx.topology.observations.get(name)
            healthy = verdict.healthy or (executed.record is not None and name == executed.primary)
            metrics.DR_REGION_HEALTHY.labels(*labels).set(1 if healthy else 0)
            if obs is not None and obs.lag_bytes is not None:
                metrics.REPLICATION_LAG_BYTES.labels(*labels).set(obs.lag_bytes)
            if obs is not None and obs.lag_seconds is not None:
                metrics.REPLICATION_LAG_SECONDS.labels(*labels).set(obs.lag_seconds)
        if executed.record is not None:
            record = executed.record
            metrics.DR_FAILOVERS.labels(self.namespace, self.plan, record.type).inc()
            if record.rto_seconds is not None:
                metrics.DR_LAST_RTO_SECONDS.labels(self.namespace, self.plan).set(record.rto_seconds)
            if record.rpo_bytes is not None:
                metrics.DR_LAST_RPO_BYTES.labels(self.namespace, self.plan).set(record.rpo_bytes)


def _operation_of(ctx: _Context) -> Operation | None:
    raw = (ctx.plan_body.get("status") or {}).get("inProgress")
    return Operation.model_validate(raw) if raw else None


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


async def run_checks(checker: Checker, stopped: Callable[[], bool], wait: Callable[[float], Any]) -> None:
    """Check every interval until ``stopped()``; a failing check is logged and retried next time."""
    while not stopped():
        started = time.monotonic()
        interval = 5.0
        try:
            report = await checker.check_once()
            interval = report.interval
            action = report.decision.action.value if report.decision else report.skipped
            checker.log.debug("DR check of %s: %s in %.3fs", checker.plan, action, time.monotonic() - started)
        except Exception:
            checker.log.exception("DR check of %s/%s failed", checker.namespace, checker.plan)
        await wait(max(0.05, interval - (time.monotonic() - started)))
