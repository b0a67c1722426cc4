"""What a CanaryRollout's status says: the state read back from it, and a plan's outcome (pure).

The state of a release lives in ``.status`` (the planner's :class:`CanaryRolloutStatus`); the
per-object loop writes it and is its only writer, so the status it hands a step is the state to
decide from. Readiness, phase, message and conditions are the loop's to write from the outcome.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Final

from pydantic import ValidationError

from fortress.api.canaryrollout import CanaryRolloutStatus
from fortress.core.outcome import EventNote, Outcome
from fortress.rollouts.model import Plan

IDLE_SECONDS: Final = 30.0
RETRY_SECONDS: Final = 1.0  # after a failed write (traffic above all): retried soon
APPLY_FAILED: Final = "ApplyFailed"
UNREADABLE: Final = "StatusUnreadable"

_LOOP_FIELDS: Final = ("observed_generation", "phase", "message", "conditions")  # written by the loop
_STATE_FIELDS: Final = {
    name: info.alias or name
    for name, info in CanaryRolloutStatus.model_fields.items()
    if name not in _LOOP_FIELDS
}
_READ_KEYS: Final = {*_STATE_FIELDS.values(), *_STATE_FIELDS, "phase", "message", "observedGeneration"}
RETIRED_FIELDS: Final = ("stateVersion",)  # written by older releases; removed on the next write


def parse_state(raw: Mapping[str, Any]) -> CanaryRolloutStatus:
    """The state kept in status (conditions and other keys ignored); ValidationError when unreadable."""
    return CanaryRolloutStatus.model_validate({k: v for k, v in raw.items() if k in _READ_KEYS})


def state_fields(state: CanaryRolloutStatus) -> dict[str, Any]:
    """The state as status fields: each set field's wire value, None for the unset ones (removed)."""
    wire = state.model_dump(by_alias=True, mode="json", exclude_none=True, exclude=set(_LOOP_FIELDS))
    fields: dict[str, Any] = {alias: wire.get(alias) for alias in _STATE_FIELDS.values()}
    fields.update(dict.fromkeys(RETIRED_FIELDS))
    return fields


def outcome(plan: Plan, errors: Sequence[str], notes: Sequence[EventNote] = ()) -> Outcome:
    """The outcome of a step that acted on ``plan``: a failed write makes it Ready=False, ApplyFailed."""
    state = plan.status
    message = state.message or ""
    ready, reason = plan.ready, plan.reason
    events = [*plan.events, *notes]
    delay = plan.requeue_after or IDLE_SECONDS
    if errors:
        failed = "; ".join(errors)
        ready, reason = False, APPLY_FAILED
        message = f"{message}; could not apply: {failed}"
        events.append(EventNote("Warning", APPLY_FAILED, failed))
        delay = min(delay, RETRY_SECONDS)
    return Outcome(
        ready=ready,
        reason=reason,
        message=message,
        phase=state.phase or "Succeeded",
        fields=state_fields(state),
        conditions=plan.conditions,
        events=tuple(events),
        requeue_after=delay,
    )


def unreadable(error: ValidationError) -> Outcome:
    """A status the planner cannot read: nothing is changed, and the status says why."""
    message = f"status unreadable, nothing changed: {error.errors()[0]['msg']}"
    return Outcome(
        ready=False, reason=UNREADABLE, message=message, phase="Degraded", requeue_after=IDLE_SECONDS
    )
