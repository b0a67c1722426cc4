"""Manual requests: ``spec.request: {action, requestId, ...}``, acted on once, then ``status.lastRequest``.

A user (or ``kubectl fortress``, or the HTTP API) writes a request with a new ``requestId``; the
kind's planner asks :func:`pending` whether it is new, acts on it, and records the outcome with
:func:`handled`. Every kind with manual actions (DRPlan, CanaryRollout, and the kinds to come) uses
these two functions, so "new request or already handled" has one answer. Pure.
"""

from __future__ import annotations

import datetime as dt
import re
import uuid
from collections.abc import Mapping
from typing import Any, Protocol, TypeVar

from fortress.api.common import LastRequest, RequestOutcome
from fortress.core.time import stamp

__all__ = ["RequestOutcome", "handled", "handled_id", "new_request_id", "pending"]


class Request(Protocol):
    """What every kind's request model has."""

    @property
    def request_id(self) -> str: ...


def handled_id(status: Mapping[str, Any] | None, legacy_field: str = "handledRequestId") -> str | None:
    """The requestId last handled, from ``status.lastRequest`` (or the field older releases wrote)."""
    status = status or {}
    last = status.get("lastRequest")
    if isinstance(last, Mapping) and last.get("requestId"):
        return str(last["requestId"])
    legacy = status.get(legacy_field)
    return str(legacy) if legacy else None


R = TypeVar("R", bound=Request)


def pending(request: R | None, last_handled: str | None) -> R | None:
    """The request when its requestId has not been handled yet, else None."""
    if request is None or request.request_id == last_handled:
        return None
    return request


def handled(
    request_id: str, action: str, outcome: RequestOutcome | str, message: str, at: dt.datetime
) -> dict[str, Any]:
    """``status.lastRequest`` recording how a request was handled (wire form)."""
    record = LastRequest(
        request_id=request_id,
        action=str(action),
        outcome=RequestOutcome(outcome),
        message=message,
        at=stamp(at),
    )
    return record.model_dump(by_alias=True, mode="json")


def new_request_id(action: str, target: str = "", now: dt.datetime | None = None) -> str:
    """A unique, readable requestId such as ``switchover-east-20261206T101500Z-3f2a1c``."""
    moment = (now or dt.datetime.now(dt.UTC)).strftime("%Y%m%dT%H%M%SZ")
    raw = "-".join(part for part in (action, target, moment, uuid.uuid4().hex[:6]) if part)
    return re.sub(r"[^A-Za-z0-9._-]", "-", raw)[-64:].lstrip("-._") or uuid.uuid4().hex
