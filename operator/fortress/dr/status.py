"""The status a check writes on its DRPlan and DRRegions, and the Events it posts (pure).

Ready on a DRPlan means the plan is in force: its checks run, exactly one primary is healthy and
the Service points at it, and at least one standby could be promoted now. A plan whose primary is
healthy but which has no eligible standby is ``Ready=False, reason=NoEligibleStandby`` (phase
Unprotected): it cannot survive the loss of its primary. Ready on a DRRegion means the region is
healthy in its role: a writable primary, or a standby streaming from the primary.

The plan's status is the :class:`~fortress.core.outcome.Outcome` of the plan's loop step
(:func:`plan_status`); each region's is a merge patch the same loop writes (:func:`region_status`).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from fortress.api.common import RequestOutcome
from fortress.api.drplan import FailoverRecord, Operation
from fortress.api.drregion import DRRegionSpec
from fortress.core.conditions import READY, find
from fortress.core.outcome import ConditionUpdate, EventNote, Outcome, status_patch
from fortress.core.requests import handled
from fortress.core.time import parse, stamp_ms
from fortress.dr.decision import Action, Decision, RegionState, RegionVerdict
from fortress.dr.topology import Observation, Role, Topology, format_lsn, parse_lsn


@dataclass(frozen=True)
class Note:
    """A Kubernetes Event to post: on the plan (region None) or on a region."""

    type: str  # Normal or Warning
    reason: str
    message: str
    region: str | None = None

    def event(self) -> EventNote:
        return EventNote(self.type, self.reason, self.message)


@dataclass(frozen=True)
class Executed:
    """What the check actually did."""

    primary: str | None
    service_endpoint: str | None
    record: FailoverRecord | None = None  # a failover or switchover completed
    in_progress: Operation | None = None  # still under way (None clears it)
    last_request: Mapping[str, Any] | None = None  # status.lastRequest, when this check handled one
    fenced_now: Mapping[str, str] = field(default_factory=dict)  # region -> how the fence was applied
    fence_reasons: Mapping[str, str] = field(default_factory=dict)  # region -> why it is fenced
    followed: tuple[str, ...] = ()  # standbys repointed at the primary
    errors: tuple[str, ...] = ()
    notes: tuple[Note, ...] = ()
    unfenced: tuple[str, ...] = ()  # an abandoned switchover handed these their writes back


def verdict_after(decision: Decision, executed: Executed, name: str) -> RegionVerdict:
    """A region's verdict, corrected by what the check did (an abandoned switchover unfences)."""
    verdict = decision.regions[name]
    if name in executed.unfenced and verdict.fenced:
        return replace(verdict, fenced=False)
    return verdict


_PLAN_OUTCOMES: dict[Action, tuple[bool, str, str]] = {
    Action.WAIT: (False, "PrimaryCheckFailed", "Degraded"),
    Action.NO_CANDIDATE: (False, "NoCandidate", "PrimaryLost"),
    Action.MANUAL: (False, "AwaitingManualFailover", "PrimaryLost"),
    Action.NO_PRIMARY: (False, "NoPrimary", "NoPrimary"),
    Action.SPLIT_BRAIN: (False, "SplitBrain", "SplitBrain"),
    Action.DUPLICATE: (False, "DuplicateServers", "Misconfigured"),
}


def plan_outcome(decision: Decision, executed: Executed) -> Outcome:
    """Readiness, phase and message of the plan after this check."""
    errors = "; ".join(executed.errors)
    if executed.record is not None:
        r = executed.record
        message = (
            f"{r.type} {r.from_region or '-'} -> {r.to_region} done: RTO {r.rto_seconds:.2f}s, "
            f"RPO {r.rpo_bytes} bytes / {r.rpo_seconds}s; verifying standbys on the next check"
        )
        if errors:
            message += f"; {errors}"
        reason = "FailedOver" if r.type == "failover" else "SwitchedOver"
        return Outcome(False, reason, message, "FailedOver")
    if decision.acts:
        message = f"{decision.action.lower()} to {decision.target} did not complete: {errors or 'see events'}"
        return Outcome(False, f"{decision.action}Incomplete", message, "FailingOver")
    if decision.action is Action.HEALTHY:
        message = decision.reason + (f"; {errors}" if errors else "")
        if decision.candidate is None:
            return Outcome(False, "NoEligibleStandby", message, "Unprotected")
        if executed.service_endpoint is None:
            return Outcome(False, "ServiceNotPointed", message, "Degraded")
        return Outcome(True, "Protected", message, "Protected")
    ready, reason, phase = _PLAN_OUTCOMES.get(decision.action, (False, decision.action.value, "Unknown"))
    return Outcome(ready, reason, decision.reason + (f"; {errors}" if errors else ""), phase)


def region_summary(
    name: str, role: str, healthy: bool, obs: Observation | None, fenced: bool
) -> dict[str, Any]:
    summary: dict[str, Any] = {"name": name, "role": role, "healthy": healthy, "fenced": fenced}
    if obs is not None and obs.lag_bytes is not None:
        summary["lagBytes"] = obs.lag_bytes
    if obs is not None and obs.lag_seconds is not None:
        summary["lagSeconds"] = round(obs.lag_seconds, 3)
    return summary


def role_after(name: str, decision: Decision, executed: Executed, obs: Observation | None) -> str:
    verdict = verdict_after(decision, executed, name) if name in decision.regions else None
    if name == executed.primary:
        return "Primary"
    if verdict is not None and verdict.fenced:
        return "Fenced"
    if obs is not None and obs.reachable and obs.role is Role.STANDBY:
        return "Standby"
    return "Unknown"


def plan_conditions(decision: Decision, executed: Executed) -> tuple[ConditionUpdate, ...]:
    """PrimaryAvailable and FailoverReady."""
    candidate = None if decision.acts else decision.candidate
    return (
        ConditionUpdate(
            "PrimaryAvailable",
            executed.primary is not None
            and decision.action in (Action.HEALTHY, Action.FAILOVER, Action.SWITCHOVER),
            "Primary" if executed.primary else "NoPrimary",
            f"primary {executed.primary}" if executed.primary else "no primary",
        ),
        ConditionUpdate(
            "FailoverReady",
            candidate is not None,
            "CandidateAvailable" if candidate else "NoCandidate",
            f"a failover would promote {candidate}" if candidate else "no standby may be promoted now",
        ),
    )


def region_summaries(decision: Decision, topology: Topology, executed: Executed) -> list[dict[str, Any]]:
    """``status.regions`` of the plan: each region's role, health and lag."""
    summaries = []
    for name in sorted(decision.regions):
        verdict = verdict_after(decision, executed, name)
        obs = topology.observations.get(name)
        healthy = verdict.healthy or (name == executed.primary and executed.record is not None)
        role = role_after(name, decision, executed, obs)
        summaries.append(region_summary(name, role, healthy, obs, verdict.fenced))
    return summaries


def plan_status(
    *,
    old_status: Mapping[str, Any],
    history_limit: int,
    decision: Decision,
    topology: Topology,
    executed: Executed,
    lease_holder: str,
    now: dt.datetime,
) -> Outcome:
    """The plan's outcome: readiness, conditions, status fields (None removes one) and its Events.

    The state's own Event is posted when the state changes; the notes of what the check did (on the
    plan) always are. Notes on regions are posted by the check itself.
    """
    outcome = plan_outcome(decision, executed)
    summaries = region_summaries(decision, topology, executed)
    history = list(old_status.get("history") or [])
    fields: dict[str, Any] = {
        "primaryRegion": executed.primary,
        "regions": summaries,
        "healthyRegions": sum(1 for summary in summaries if summary["healthy"]),
        "leaseHolder": lease_holder,
        "lastCheckTime": stamp_ms(now),
        "serviceEndpoint": executed.service_endpoint,
        "candidate": None if decision.acts else decision.candidate,
        "inProgress": executed.in_progress.wire() if executed.in_progress else None,
    }
    if executed.record is not None:
        record = executed.record.wire()
        history = [record, *history][:history_limit]
        fields["lastFailover"] = record
    fields["history"] = history
    if executed.last_request is not None:
        fields["lastRequest"] = dict(executed.last_request)
    notes = [note.event() for note in executed.notes if note.region is None]
    old_ready = find(old_status.get("conditions"), READY) or {}
    changed = old_ready.get("reason") != outcome.reason or old_status.get("phase") != outcome.phase
    if changed and executed.record is None and not decision.acts:
        notes.append(EventNote("Normal" if outcome.ready else "Warning", outcome.reason, outcome.message))
    return replace(
        outcome, fields=fields, conditions=plan_conditions(decision, executed), events=tuple(notes)
    )


def request_record(
    decision: Decision, action: str | None, handled_before: str | None, now: dt.datetime
) -> dict[str, Any] | None:
    """``status.lastRequest`` for the manual request this decision handles (None: none, or recorded)."""
    request_id = decision.request_id
    if request_id is None or request_id == handled_before:
        return None
    if decision.request_note is not None:
        return handled(request_id, action or "", RequestOutcome.REJECTED, decision.request_note, now)
    if decision.acts:
        kind = action or decision.action.lower()
        return handled(request_id, kind, RequestOutcome.ACCEPTED, decision.reason, now)
    return None


def region_outcome(
    name: str, role: str, obs: Observation | None, decision: Decision, executed: Executed
) -> Outcome:
    verdict = verdict_after(decision, executed, name)
    duplicates = [g for g in decision.duplicates if name in g]
    if duplicates:
        others = ", ".join(n for n in duplicates[0] if n != name)
        return Outcome(
            False, "DuplicateServer", f"reaches the same PostgreSQL server as {others}", "Misconfigured"
        )
    promotable = ConditionUpdate(
        "Promotable",
        verdict.ineligible is None,
        "Eligible" if verdict.ineligible is None else "NotEligible",
        verdict.ineligible or "may be promoted",
    )
    conditions = (promotable,)
    if verdict.fenced:
        why = executed.fence_reasons.get(name) or "fenced"
        return Outcome(
            False,
            "Fenced",
            f"{why}; never promoted automatically; rejoin it as a standby (fortress dr rejoin) to clear",
            "Fenced",
            conditions=conditions,
        )
    if verdict.needs_reclone:
        return Outcome(
            False,
            "NeedsReclone",
            "cannot follow the primary's timeline: re-clone it (fortress dr rejoin)",
            "NeedsReclone",
            conditions=conditions,
        )
    if obs is None or not obs.reachable:
        error = obs.probe.error if obs is not None else "not observed"
        return Outcome(False, "Unreachable", f"unreachable: {error}", "Unreachable", conditions=conditions)
    if role == "Primary":
        lsn = format_lsn(obs.probe.current_lsn)
        ready = verdict.healthy or executed.record is not None
        return Outcome(
            ready,
            "Primary",
            f"primary on timeline {obs.probe.timeline}, WAL at {lsn}",
            "Primary",
            conditions=conditions,
        )
    if verdict.healthy:
        lag = f"{obs.lag_bytes} bytes" if obs.lag_bytes is not None else "unknown lag"
        if obs.lag_seconds is not None:
            lag += f" / {obs.lag_seconds:.2f}s"
        state = "streaming" if obs.probe.streaming else "not streaming (primary unreachable)"
        return Outcome(True, "Standby", f"standby {state}, {lag} behind", "Standby", conditions=conditions)
    return Outcome(
        False,
        "NotStreaming",
        f"standby not streaming from the primary (timeline {obs.probe.timeline}); being repointed",
        "Standby",
        conditions=conditions,
    )


def region_status(
    *,
    name: str,
    old_status: Mapping[str, Any],
    generation: int | None,
    obs: Observation | None,
    decision: Decision,
    executed: Executed,
    now: dt.datetime,
) -> dict[str, Any]:
    """One region's status patch; WAL positions of an unreachable region keep their last values."""
    verdict = verdict_after(decision, executed, name)
    role = role_after(name, decision, executed, obs)
    outcome = region_outcome(name, role, obs, decision, executed)
    patch = status_patch(outcome, old_status, generation, now)
    reachable = obs is not None and obs.reachable
    patch.update(
        {
            "role": role,
            "reachable": reachable,
            "healthy": verdict.healthy,
            "consecutiveFailures": verdict.failures,
            "failingSince": stamp_ms(verdict.failing_since) if verdict.failing_since else None,
            "lastCheckTime": stamp_ms(now),
            "fenced": verdict.fenced,
            "fencedReason": (executed.fence_reasons.get(name) or old_status.get("fencedReason") or "fenced")
            if verdict.fenced
            else None,
            "needsReclone": verdict.needs_reclone,
            "error": None if reachable else (obs.probe.error if obs is not None else "not observed"),
        }
    )
    if obs is not None and obs.reachable:
        p = obs.probe
        patch.update(
            {
                "lastSeenTime": stamp_ms(p.observed_at),
                "timeline": p.timeline,
                "currentLsn": format_lsn(p.current_lsn),
                "receiveLsn": format_lsn(p.receive_lsn),
                "replayLsn": format_lsn(p.replay_lsn),
                "lagBytes": obs.lag_bytes,
                "lagSeconds": None if obs.lag_seconds is None else round(obs.lag_seconds, 3),
                "streaming": p.streaming,
                "readOnly": True if name in executed.fenced_now else p.read_only,
            }
        )
    return patch


def _lsn(status: Mapping[str, Any], key: str) -> int | None:
    try:
        return parse_lsn(status.get(key))
    except ValueError:
        return None


def region_state(name: str, spec: DRRegionSpec, status: Mapping[str, Any], endpoint: str) -> RegionState:
    """A region's recorded state, from its validated spec and its status as last written."""
    return RegionState(
        name=name,
        priority=spec.priority,
        promotable=spec.promotable,
        endpoint=endpoint,
        fenced=bool(status.get("fenced")),
        needs_reclone=bool(status.get("needsReclone")),
        consecutive_failures=int(status.get("consecutiveFailures") or 0),
        failing_since=parse(status.get("failingSince")),
        last_timeline=status.get("timeline"),
        last_lsn=_lsn(status, "currentLsn") if status.get("role") == "Primary" else None,
    )
