"""The status a check writes on its DRPlan and DRRegions, and the Events it posts (pure).

Ready on a DRPlan means the plan is in force: its checks run, exactly one primary is healthy and
the Service points at it, and at least one standby could be promoted now. A plan whose primary is
healthy but which has no eligible standby is ``Ready=False, reason=NoEligibleStandby`` (phase
Unprotected): it cannot survive the loss of its primary. Ready on a DRRegion means the region is
healthy in its role: a writable primary, or a standby streaming from the primary.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from fortress.api.drplan import FailoverRecord, Operation
from fortress.core.conditions import READY, find
from fortress.core.outcome import ConditionUpdate, Outcome, status_patch
from fortress.dr.election import Action, Decision, RegionState, RegionVerdict
from fortress.dr.topology import Observation, Role, Topology, format_lsn


def stamp(moment: dt.datetime) -> str:
    """RFC 3339 in UTC with milliseconds: RTO is measured from these."""
    return moment.astimezone(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_stamp(text: str | None) -> dt.datetime | None:
    if not text:
        return None
    try:
        return dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None


@dataclass(frozen=True)
class Note:
    """A Kubernetes Event to post: on the plan (region None) or on a region."""

    type: str  # Normal or Warning
    reason: str
    message: str
    region: str | None = None


@dataclass(frozen=True)
class Executed:
    """What the check actually did."""

    primary: str | None
    service_endpoint: str | None
    record: FailoverRecord | None = None  # a failover or switchover completed
    in_progress: Operation | None = None  # still under way (None clears it)
    handled_request_id: str | None = None
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


def plan_status(
    *,
    old_status: Mapping[str, Any],
    generation: int | None,
    history_limit: int,
    decision: Decision,
    topology: Topology,
    executed: Executed,
    lease_holder: str,
    now: dt.datetime,
) -> tuple[dict[str, Any], list[Note]]:
    """The plan's status patch (JSON merge patch: None removes a field) and its Events."""
    outcome = plan_outcome(decision, executed)
    candidate = None if decision.acts else decision.candidate
    conditions = (
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
    outcome = Outcome(outcome.ready, outcome.reason, outcome.message, outcome.phase, conditions=conditions)
    patch = status_patch(outcome, old_status, generation, now)
    summaries = []
    healthy = 0
    for name in sorted(decision.regions):
        verdict = verdict_after(decision, executed, name)
        obs = topology.observations.get(name)
        is_healthy = verdict.healthy or (name == executed.primary and executed.record is not None)
        healthy += 1 if is_healthy else 0
        role = role_after(name, decision, executed, obs)
        summaries.append(region_summary(name, role, is_healthy, obs, verdict.fenced))
    history = list(old_status.get("history") or [])
    if executed.record is not None:
        record = executed.record.wire()
        history = [record, *history][:history_limit]
        patch["lastFailover"] = record
    patch.update(
        {
            "primaryRegion": executed.primary,
            "regions": summaries,
            "healthyRegions": healthy,
            "history": history,
            "leaseHolder": lease_holder,
            "lastCheckTime": stamp(now),
            "serviceEndpoint": executed.service_endpoint,
            "candidate": candidate,
            "inProgress": executed.in_progress.wire() if executed.in_progress else None,
        }
    )
    if executed.handled_request_id is not None:
        patch["handledRequestId"] = executed.handled_request_id
    notes = list(executed.notes)
    old_ready = find(old_status.get("conditions"), READY) or {}
    changed = old_ready.get("reason") != outcome.reason or old_status.get("phase") != outcome.phase
    if changed and executed.record is None and not decision.acts:
        kind = "Normal" if outcome.ready else "Warning"
        notes.append(Note(kind, outcome.reason, outcome.message))
    return patch, notes


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
            "failingSince": stamp(verdict.failing_since) if verdict.failing_since else None,
            "lastCheckTime": stamp(now),
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
                "lastSeenTime": stamp(p.observed_at),
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


def region_state(name: str, spec: Any, status: Mapping[str, Any], endpoint: str) -> RegionState:
    """A region's recorded state, from its validated spec and its status as last written."""
    from fortress.dr.topology import parse_lsn

    def lsn(key: str) -> int | None:
        try:
            return parse_lsn(status.get(key))
        except ValueError:
            return None

    return RegionState(
        name=name,
        priority=spec.priority,
        promotable=spec.promotable,
        endpoint=endpoint,
        fenced=bool(status.get("fenced")),
        needs_reclone=bool(status.get("needsReclone")),
        consecutive_failures=int(status.get("consecutiveFailures") or 0),
        failing_since=parse_stamp(status.get("failingSince")),
        last_timeline=status.get("timeline"),
        last_lsn=lsn("currentLsn") if status.get("role") == "Primary" else None,
    )
