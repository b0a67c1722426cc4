"""What one reconcile concluded, and the status patch that records it (pure)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from fortress.core.conditions import READY, set_condition
from fortress.core.validation import Validated

INVALID_SPEC = "InvalidSpec"


@dataclass(frozen=True)
class ConditionUpdate:
    """A condition other than Ready that a reconcile sets."""

    type: str
    status: bool | str | None  # None: Unknown
    reason: str
    message: str = ""


@dataclass(frozen=True)
class EventNote:
    """A Kubernetes Event to post about the resource."""

    type: str  # Normal or Warning
    reason: str
    message: str


@dataclass(frozen=True)
class Outcome:
    """The result of a reconcile: readiness, phase, extra status fields, conditions and events.

    ``ready`` None writes ``Ready=Unknown`` (the state could not be observed, e.g. a step failed).
    """

    ready: bool | None
    reason: str
    message: str
    phase: str
    fields: Mapping[str, Any] = field(default_factory=dict)
    conditions: tuple[ConditionUpdate, ...] = ()
    events: tuple[EventNote, ...] = ()
    requeue_after: float | None = None


def invalid_outcome(validated: Validated) -> Outcome:
    """The outcome of a spec that breaks the schema or a cross-field rule."""
    message = validated.message()
    return Outcome(
        ready=False,
        reason=INVALID_SPEC,
        message=message,
        phase="Invalid",
        events=(EventNote("Warning", INVALID_SPEC, message),),
    )


def status_patch(
    outcome: Outcome, old_status: Mapping[str, Any] | None, generation: int | None, now: dt.datetime
) -> dict[str, Any]:
    """The status to merge: observedGeneration, phase, message, the outcome's fields and conditions."""
    conditions = list((old_status or {}).get("conditions") or [])
    for update in outcome.conditions:
        conditions = set_condition(
            conditions,
            type_=update.type,
            status=update.status,
            reason=update.reason,
            message=update.message,
            generation=generation,
            now=now,
        )
    conditions = set_condition(
        conditions,
        type_=READY,
        status=outcome.ready,
        reason=outcome.reason,
        message=outcome.message,
        generation=generation,
        now=now,
    )
    patch: dict[str, Any] = dict(outcome.fields)
    patch.update(
        {
            "observedGeneration": generation,
            "phase": outcome.phase,
            "message": outcome.message,
            "conditions": conditions,
        }
    )
    return patch
