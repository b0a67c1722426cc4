"""Exceptions: which findings a scan suppresses (controls, object selector, reason, expiry).

Exceptions live in the scan's specification only; annotations on scanned objects never exempt them,
so a workload's owner cannot exempt their own workload. An expired exception stops suppressing and
is reported as expired.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from fortress.compliance.model import ObjectRef
from fortress.core.time import parse as parse_time


class ExceptionError(ValueError):
    """An exception entry that cannot be used; the message names the field."""


@dataclass(frozen=True, slots=True)
class Exception_:
    """One exception: ``controls`` (ids, ``*`` patterns) on objects its selector matches."""

    name: str
    controls: tuple[str, ...]
    reason: str
    expires: datetime | None = None
    namespaces: tuple[str, ...] = ()
    kinds: tuple[str, ...] = ()
    names: tuple[str, ...] = ()
    match_labels: dict[str, str] = field(default_factory=dict, hash=False)

    def expired(self, now: datetime) -> bool:
        return self.expires is not None and self.expires <= now

    def covers(self, control_id: str, ref: ObjectRef, labels: dict[str, str]) -> bool:
        if not any(fnmatch.fnmatchcase(control_id, pattern) for pattern in self.controls):
            return False
        if self.namespaces and ref.namespace not in self.namespaces:
            return False
        if self.kinds and ref.kind not in self.kinds:
            return False
        if self.names and not any(fnmatch.fnmatchcase(ref.name, pattern) for pattern in self.names):
            return False
        return all(labels.get(k) == v for k, v in self.match_labels.items())


def _strings(value: Any, where: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise ExceptionError(f"{where}: expected a list of non-empty strings")
    return tuple(value)


def parse(entries: Iterable[Any], where: str = "spec.exceptions") -> list[Exception_]:
    """Exceptions from their wire form ({controls, selector: {namespaces, kinds, names, matchLabels},
    reason, expires}); raises :class:`ExceptionError` naming the field of the first problem."""
    found: list[Exception_] = []
    for index, entry in enumerate(entries):
        at = f"{where}[{index}]"
        if not isinstance(entry, dict):
            raise ExceptionError(f"{at}: expected an object")
        controls = _strings(entry.get("controls"), f"{at}.controls")
        if not controls:
            raise ExceptionError(f"{at}.controls: name at least one control (or *)")
        reason = entry.get("reason")
        if not isinstance(reason, str) or not reason.strip():
            raise ExceptionError(f"{at}.reason: a reason is required")
        expires = None
        if entry.get("expires") is not None:
            expires = parse_time(str(entry["expires"]))
            if expires is None:
                raise ExceptionError(f"{at}.expires: not an RFC 3339 time: {entry['expires']!r}")
        selector = entry.get("selector") or {}
        if not isinstance(selector, dict):
            raise ExceptionError(f"{at}.selector: expected an object")
        labels = selector.get("matchLabels")
        labels = {} if labels is None else labels
        if not isinstance(labels, dict):
            raise ExceptionError(f"{at}.selector.matchLabels: expected a map")
        found.append(
            Exception_(
                name=str(entry.get("name") or f"exception-{index}"),
                controls=controls,
                reason=reason.strip(),
                expires=expires,
                namespaces=_strings(selector.get("namespaces"), f"{at}.selector.namespaces"),
                kinds=_strings(selector.get("kinds"), f"{at}.selector.kinds"),
                names=_strings(selector.get("names"), f"{at}.selector.names"),
                match_labels={str(k): str(v) for k, v in labels.items()},
            )
        )
    return found


def suppressing(
    exceptions: Iterable[Exception_], control_id: str, ref: ObjectRef, labels: dict[str, str], now: datetime
) -> tuple[Exception_ | None, Exception_ | None]:
    """(the active exception covering the finding, an expired one that would have) - either may be None."""
    expired = None
    for item in exceptions:
        if item.covers(control_id, ref, labels):
            if not item.expired(now):
                return item, None
            expired = expired or item
    return None, expired
