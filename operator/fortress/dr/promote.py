"""A failover or switchover, one step at a time, crash-safe.

1. Mark: the operation (``status.inProgress``, and the request it answers) and every region it
   fences are written to status before anything is touched, so a restarted operator resumes it
   (each step is idempotent) and never promotes twice.
2. Fence the old primary (and any other writable primary) while it is reachable.
3. A switchover waits until the target has replayed everything the fenced primary wrote; if it
   cannot, the old primary gets its writes back and the switchover is abandoned.
4. Promote the target and wait for its first committed write.
5. Repoint the Service and the other standbys; configure synchronous replication.
6. Measure RTO and RPO and record the failover (status, failover_events on the new primary).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from fortress.api.drplan import FailoverRecord, Operation
from fortress.core.time import parse, seconds_of, stamp_ms
from fortress.dr import actions, history, probe
from fortress.dr.decision import Action, Decision
from fortress.dr.housekeep import fence, follow, point_service
from fortress.dr.observe import Check, Region
from fortress.dr.status import Executed, Note
from fortress.dr.topology import Observation, Role, Topology, format_lsn

PROMOTE_TIMEOUT = 30.0
CHECKPOINT_TIMEOUT = 10.0


class _Abandoned(Exception):
    """The promotion cannot go on; ``lift``: the old primary was handed its writes back."""

    def __init__(self, message: str, lift: bool) -> None:
        super().__init__(message)
        self.message, self.lift = message, lift


@dataclass(frozen=True)
class Cost:
    """What a promotion cost: RTO, and RPO as WAL bytes and seconds."""

    rto: float
    rpo_bytes: int | None
    rpo_seconds: float | None
    reference: int | None  # the old primary's position the RPO is measured from


def measure(
    *,
    reference: int | None,
    switch_lsn: int | None,
    before_position: int | None,
    target_lag_seconds: float | None,
    writable_at: dt.datetime,
    detected: dt.datetime,
) -> Cost:
    """RTO from detection to the first committed write; RPO as the WAL of the old primary's (last
    known) position that the new timeline does not have (pure)."""
    end = switch_lsn if switch_lsn is not None else before_position
    rpo_bytes = max(0, reference - end) if reference is not None and end is not None else None
    rpo_seconds = 0.0 if rpo_bytes == 0 else target_lag_seconds
    rto = max(0.0, (writable_at - detected).total_seconds())
    return Cost(rto, rpo_bytes, rpo_seconds, reference)


def region_rows(regions: Mapping[str, Region], decision: Decision) -> list[history.RegionRow]:
    """Each region's role after the promotion, for cloud_regions (pure)."""
    rows = []
    for name, region in regions.items():
        verdict = decision.regions[name]
        role = "Primary" if name == decision.target else ("Fenced" if verdict.fenced else "Standby")
        rows.append(
            history.RegionRow(
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
    return rows


def lag_samples(topology: Topology, source: str | None) -> list[history.LagSample]:
    """The standbys' last lag behind the old primary, for replication_log (pure)."""
    if not source:
        return []
    return [
        history.LagSample(
            source=source,
            target=name,
            replay_lsn=format_lsn(obs.probe.replay_lsn),
            lag_bytes=obs.lag_bytes,
            lag_seconds=obs.lag_seconds,
        )
        for name, obs in topology.observations.items()
        if name != source and obs.role is Role.STANDBY
    ]


class Promotion:
    """One failover or switchover of a plan to ``decision.target``."""

    def __init__(
        self,
        check: Check,
        decision: Decision,
        service_now: str | None,
        last_request: Mapping[str, Any] | None,
    ) -> None:
        assert decision.target is not None
        self.check, self.decision, self.last_request = check, decision, last_request
        self.target, self.old = decision.target, decision.from_region
        self.kind = "switchover" if decision.action is Action.SWITCHOVER else "failover"
        self.started = check.clock()
        self.op = self._operation()
        self.detected = parse(self.op.detected_at) or decision.detected_at or self.started
        self.reasons = {  # the regions this promotion fences, and why
            name: f"fenced by the {self.kind} to {self.target} at {stamp_ms(self.started)}"
            for name, verdict in decision.regions.items()
            if verdict.fenced and not check.regions[name].status.get("fenced")
        }
        self.service = service_now
        self.errors: list[str] = []
        self.notes: list[Note] = []
        self.fenced_now: dict[str, str] = {}

    def _operation(self) -> Operation:
        resumed = self.check.in_progress() if self.decision.resume else None
        if resumed is not None:
            return resumed
        return Operation(
            type=self.kind,
            from_region=self.old,
            to_region=self.target,
            reason=self.decision.reason,
            started_at=stamp_ms(self.started),
            detected_at=stamp_ms(self.decision.detected_at or self.started),
            request_id=self.decision.request_id,
            force=self.decision.force,
        )

    async def run(self) -> Executed:
        await self.mark()
        try:
            await self.fence()
            primary_lsn = await self.wait_caught_up()
            before_position, promotion = await self.promote()
        except _Abandoned as stop:
            return self.give_up(stop.message, stop.lift)
        await self.repoint_service()
        followed = await follow(self.check, self.decision.follow, self.target, self.errors)
        await self.synchronous(followed)
        target = self.check.topology.observations.get(self.target)
        cost = measure(
            reference=primary_lsn if primary_lsn is not None else self.reference_lsn(),
            switch_lsn=promotion.switch_lsn,
            before_position=before_position,
            target_lag_seconds=target.lag_seconds if target is not None else None,
            writable_at=promotion.writable_at,
            detected=self.detected,
        )
        return await self.record(promotion, cost, followed)

    # --- the steps -------------------------------------------------------------------------------------

    async def mark(self) -> None:
        """1. Record the intent, and the regions it fences, before touching anything."""
        fields: dict[str, Any] = {"inProgress": self.op.wire()}
        if self.last_request is not None:
            fields["lastRequest"] = dict(self.last_request)
        await self.check.write_plan(fields)
        for name, why in self.reasons.items():
            await self.check.write_region(name, {"fenced": True, "fencedReason": why, "role": "Fenced"})

    async def fence(self) -> None:
        """2. Fence the old primary (and any other writable primary) while it is reachable."""
        for name in self.decision.fence:
            await fence(self.check, name, self.fenced_now, self.errors)
            if name == self.old and name not in self.fenced_now and self.kind == "switchover":
                raise _Abandoned(f"switchover to {self.target} abandoned: could not fence {self.old}", True)

    async def wait_caught_up(self) -> int | None:
        """3. A switchover: the old primary's final position, once the target has replayed it."""
        if self.kind != "switchover" or self.old is None:
            return None
        wait = seconds_of(self.check.spec.rto_target)
        try:
            return await actions.wait_caught_up(self.check.dsn(self.old), self.check.dsn(self.target), wait)
        except Exception as error:
            await self.hand_back()
            message = (
                f"switchover to {self.target} abandoned, {self.old} writable again: "
                f"{self.check.describe(error)}"
            )
            raise _Abandoned(message, True) from error

    async def promote(self) -> tuple[int | None, actions.Promotion]:
        """4. Promote the target: its WAL position before, and the promotion."""
        check = self.check
        dsn = check.dsn(self.target)
        before = await probe.probe(dsn, check.timeout, check.clock, check.secrets)
        position = Observation(self.target, before, Role.STANDBY).position if before.reachable else None
        try:
            return position, await actions.promote(dsn, timeout=PROMOTE_TIMEOUT, clock=check.clock)
        except Exception as error:
            if self.kind == "switchover" and self.old is not None:
                await self.hand_back()
            message = f"promoting {self.target} failed: {check.describe(error)}"
            raise _Abandoned(message, self.kind == "switchover") from error

    async def repoint_service(self) -> None:
        """5. Point the Service at the new primary."""
        try:
            self.service = await point_service(self.check, self.target)
        except Exception as error:
            self.errors.append(f"pointing the Service at {self.target}: {self.check.describe(error)}")

    async def synchronous(self, followed: tuple[str, ...]) -> None:
        """5. With spec.synchronous, one of the standbys that follow must confirm each commit."""
        if not self.check.spec.synchronous:
            return
        observations = self.check.topology.observations
        names = [n for n in (observations[f].probe.application_name for f in followed) if n is not None]
        try:
            value = await actions.set_synchronous(self.check.dsn(self.target), names, self.check.timeout)
            if not value:
                self.errors.append(
                    f"no standby follows {self.target} yet: it runs without a synchronous standby"
                )
        except Exception as error:
            self.errors.append(
                f"configuring synchronous replication on {self.target}: {self.check.describe(error)}"
            )

    async def record(self, promotion: actions.Promotion, cost: Cost, followed: tuple[str, ...]) -> Executed:
        """6. Record the failover (failover_events, then status) and say what it cost."""
        completed = self.check.clock()
        event_id = await self.record_event(promotion, cost, completed, followed)
        record = FailoverRecord(
            type=self.kind,
            from_region=self.old,
            to_region=self.target,
            reason=self.decision.reason,
            detected_at=stamp_ms(self.detected),
            promoted_at=stamp_ms(promotion.writable_at),
            rto_seconds=round(cost.rto, 3),
            rpo_bytes=cost.rpo_bytes,
            rpo_seconds=None if cost.rpo_seconds is None else round(cost.rpo_seconds, 3),
            request_id=self.decision.request_id,
            event_id=event_id,
        )
        with contextlib.suppress(Exception):  # after RTO: lets pg_rewind see the new timeline
            await asyncio.wait_for(actions.checkpoint(self.check.dsn(self.target)), CHECKPOINT_TIMEOUT)
        self.notes += self.completed_notes(cost)
        return Executed(
            primary=self.target,
            service_endpoint=self.service,
            record=record,
            in_progress=None,
            last_request=self.last_request,
            fenced_now=self.fenced_now,
            fence_reasons=self.reasons,
            followed=followed,
            errors=tuple(self.errors),
            notes=tuple(self.notes),
        )

    async def record_event(
        self, promotion: actions.Promotion, cost: Cost, completed: dt.datetime, followed: tuple[str, ...]
    ) -> int | None:
        """The failover as a row of failover_events on the new primary; its id (None: not recorded)."""
        event = history.FailoverEvent(
            namespace=self.check.namespace,
            plan=self.check.plan,
            type=self.kind,
            from_region=self.old,
            to_region=self.target,
            reason=self.decision.reason[:1000],
            outcome="succeeded",
            detected_at=self.detected,
            promoted_at=max(promotion.writable_at, self.detected),
            completed_at=max(completed, self.detected),
            rto_seconds=cost.rto,
            rpo_bytes=cost.rpo_bytes,
            rpo_seconds=cost.rpo_seconds,
            details={
                "oldPrimaryLsn": format_lsn(cost.reference),
                "switchLsn": format_lsn(promotion.switch_lsn),
                "timeline": promotion.timeline,
                "fenced": dict(self.fenced_now),
                "followers": list(followed),
                "force": self.decision.force,
                "requestId": self.decision.request_id,
            },
        )
        rows = region_rows(self.check.regions, self.decision)
        samples = lag_samples(self.check.topology, self.old)
        try:
            event_id = await history.record_failover(self.check.dsn(self.target), event, rows, samples)
        except Exception as error:
            self.errors.append(f"recording the {self.kind} in failover_events: {self.check.describe(error)}")
            return None
        if event_id is None:
            self.errors.append(
                f"failover_events is missing on {self.target}: "
                "run `fortress migrate up` on the region databases"
            )
        return event_id

    # --- how it ends -----------------------------------------------------------------------------------

    def completed_notes(self, cost: Cost) -> list[Note]:
        rpo_seconds = "" if cost.rpo_seconds is None else f"{cost.rpo_seconds:.2f}s"
        summary = (
            f"{self.kind} {self.old or '-'} -> {self.target}: RTO {cost.rto:.2f}s, RPO {cost.rpo_bytes} "
            f"bytes ({rpo_seconds}); {self.decision.reason}"
        )
        kind = "Normal" if self.kind == "switchover" else "Warning"
        notes = [Note(kind, f"{self.kind.capitalize()}Completed", summary)]
        for name, why in self.reasons.items():
            how = self.fenced_now.get(name, "unreachable: fence pending")
            notes.append(Note("Warning", "Fenced", f"{why} ({how})", name))
        return notes

    async def hand_back(self) -> None:
        """An abandoned switchover: the old primary writable again, and the fences unmarked."""
        if self.old is not None:
            with contextlib.suppress(Exception):
                await actions.lift_fence(self.check.dsn(self.old), self.check.timeout)
        for name in self.reasons:
            await self.check.write_region(name, {"fenced": False, "fencedReason": None})

    def give_up(self, message: str, lift: bool) -> Executed:
        self.notes.append(Note("Warning", f"{self.kind.capitalize()}Failed", message))
        return Executed(
            primary=self.old,
            service_endpoint=self.service,
            in_progress=None,
            last_request=self.last_request,
            fenced_now=self.fenced_now,
            fence_reasons={} if lift else self.reasons,
            errors=(*self.errors, message),
            notes=tuple(self.notes),
            unfenced=tuple(self.reasons) if lift else (),
        )

    def reference_lsn(self) -> int | None:
        """The old primary's last known position (what the standbys' lag was measured against)."""
        if self.old is None:
            return None
        topology = self.check.topology
        if topology.reference == self.old and topology.reference_lsn is not None:
            return topology.reference_lsn
        region = self.check.regions.get(self.old)
        return region.state.last_lsn if region is not None else None
