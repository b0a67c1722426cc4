"""DR drills (pure): which region a planned switchover drill promotes, and what its result says.

A drill is an ordinary planned switchover (``spec.request`` action ``switchover``) requested on a
plan labelled for drills (``fortress dr drill``, the chart's drill CronJob). It runs only on a plan
that is ``Protected`` with no request pending, towards the plan's failover candidate when that is a
ready standby, else the ready, unfenced standby with the lowest priority (then the lowest lag).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from fortress.core.conditions import READY, find

DRILL_LABEL = "fortress.io/drill"
DEFAULT_SELECTOR = f"{DRILL_LABEL}=true"
SUCCEEDED, FAILED, SKIPPED, PENDING = "DrillSucceeded", "DrillFailed", "DrillSkipped", "DrillPending"


@dataclass(frozen=True)
class Choice:
    """The region a drill promotes, or None with the reason no drill runs."""

    target: str | None
    reason: str


def _name(obj: Mapping[str, Any]) -> str:
    return str((obj.get("metadata") or {}).get("name") or "")


def _ready_standby(region: Mapping[str, Any]) -> bool:
    status = region.get("status") or {}
    ready = (find(status.get("conditions"), READY) or {}).get("status") == "True"
    return (
        status.get("role") == "Standby"
        and ready
        and not status.get("fenced")
        and not status.get("needsReclone")
    )


def choose_target(plan: Mapping[str, Any], regions: Sequence[Mapping[str, Any]]) -> Choice:
    """Where a switchover drill of ``plan`` goes (``regions``: the plan's DRRegions)."""
    status = plan.get("status") or {}
    phase = status.get("phase")
    if phase != "Protected":
        return Choice(None, f"the plan is {phase or 'not yet observed'}, not Protected")
    standbys = [r for r in regions if _ready_standby(r)]
    if not standbys:
        return Choice(None, "no ready standby region")
    candidate = status.get("candidate")
    if candidate and candidate in {_name(r) for r in standbys}:
        return Choice(candidate, "the plan's failover candidate")

    def preference(region: Mapping[str, Any]) -> tuple[int, float, str]:
        spec, rs = region.get("spec") or {}, region.get("status") or {}
        lag = rs.get("lagBytes")
        return int(spec.get("priority", 100)), float(lag) if lag is not None else float("inf"), _name(region)

    best = min(standbys, key=preference)
    return Choice(_name(best), "the ready standby with the lowest priority")


def outcome(plan: Mapping[str, Any], request_id: str) -> tuple[str, str] | None:
    """(Event reason, message) once the drill's request has an end; None while it is pending or runs.

    Succeeded: a failover record carries the requestId. Failed: the request was rejected or ignored,
    or accepted but nothing runs any more without a record (an abandoned switchover).
    """
    status = plan.get("status") or {}
    records = [status.get("lastFailover") or {}, *(status.get("history") or [])]
    done = next((r for r in records if r.get("requestId") == request_id), None)
    if done is not None:
        rpo = done.get("rpoBytes")
        detail = f", RPO {rpo} bytes" if rpo is not None else ""
        return SUCCEEDED, f"switchover drill {request_id}: {done.get('toRegion')} is primary{detail}"
    handled = status.get("lastRequest") or {}
    if handled.get("requestId") != request_id:
        return None  # not handled yet
    why = handled.get("message") or handled.get("outcome") or "no reason given"
    if handled.get("outcome") != "Accepted":
        return FAILED, f"switchover drill {request_id} {str(handled.get('outcome')).lower()}: {why}"
    if status.get("inProgress"):
        return None
    return FAILED, f"switchover drill {request_id} accepted but not completed: {status.get('message') or why}"
