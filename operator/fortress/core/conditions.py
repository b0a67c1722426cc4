"""Conditions per the Kubernetes API conventions: set, find and summarise, without a clock of their own."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from typing import Any

from fortress.core.time import stamp

READY = "Ready"


def find(conditions: Iterable[Mapping[str, Any]] | None, type_: str) -> Mapping[str, Any] | None:
    """The condition of the given type, or None."""
    for condition in conditions or ():
        if condition.get("type") == type_:
            return condition
    return None


def is_true(conditions: Iterable[Mapping[str, Any]] | None, type_: str = READY) -> bool:
    found = find(conditions, type_)
    return found is not None and found.get("status") == "True"


def set_condition(
    conditions: Iterable[Mapping[str, Any]] | None,
    *,
    type_: str,
    status: bool | str | None,
    reason: str,
    message: str,
    generation: int | None,
    now: dt.datetime,
) -> list[dict[str, Any]]:
    """Return the conditions with ``type_`` set; ``lastTransitionTime`` moves only when status changes."""
    status_text = _status_text(status)
    result: list[dict[str, Any]] = []
    replaced = False
    for condition in conditions or ():
        if condition.get("type") != type_:
            result.append(dict(condition))
            continue
        transition = condition.get("lastTransitionTime") if condition.get("status") == status_text else None
        result.append(_condition(type_, status_text, reason, message, generation, transition or stamp(now)))
        replaced = True
    if not replaced:
        result.append(_condition(type_, status_text, reason, message, generation, stamp(now)))
    return result


def _condition(
    type_: str, status: str, reason: str, message: str, generation: int | None, transition: str
) -> dict[str, Any]:
    condition: dict[str, Any] = {
        "type": type_,
        "status": status,
        "reason": reason,
        "message": message,
        "lastTransitionTime": transition,
    }
    if generation is not None:
        condition["observedGeneration"] = generation
    return condition


def _status_text(status: bool | str | None) -> str:
    """True/False/Unknown as Kubernetes writes a condition's status (None: Unknown)."""
    if status is None:
        return "Unknown"
    if isinstance(status, str):
        return status
    return "True" if status else "False"
