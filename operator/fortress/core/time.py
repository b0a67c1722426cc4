"""Time as Fortress writes and reads it: RFC 3339 stamps, their parser, and bounded durations.

Every subsystem stamps status fields and records with these, so a stamp written by one is read the
same way by another. A stamp without a timezone is read as UTC (as Kubernetes writes them); a
duration is a Go-style string (``1m30s``) bounded by :data:`MAX_DURATION`, so no spec can make a
``timedelta`` overflow.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Final

# At most 4 parts of at most 7 digits: the schema alone keeps every duration far from overflowing a
# timedelta; parse_duration then enforces MAX_DURATION (the schema cannot sum the parts).
DURATION_PATTERN: Final = r"^([0-9]{1,7}(\.[0-9]{1,9})?(ms|s|m|h)){1,4}$"
_DURATION_PART: Final = re.compile(r"([0-9]+(?:\.[0-9]+)?)(ms|s|m|h)")
_UNIT_SECONDS: Final = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
MAX_DURATION: Final = dt.timedelta(days=366)
"""The longest duration any spec field accepts (a year and a day: longer is a typo, not a setting)."""
MAX_DURATION_TEXT: Final = "8784h"


def now() -> dt.datetime:
    """The current time, aware, in UTC."""
    return dt.datetime.now(dt.UTC)


def stamp(moment: dt.datetime) -> str:
    """RFC 3339 in UTC with second precision, as Kubernetes writes times (condition transitions)."""
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def stamp_ms(moment: dt.datetime) -> str:
    """RFC 3339 in UTC with milliseconds: for what is measured (RTO, stage pauses, scan times)."""
    return moment.astimezone(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def stamp_us(moment: dt.datetime) -> str:
    """RFC 3339 in UTC with microseconds (Kubernetes MicroTime, e.g. Lease renew times)."""
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse(text: str | None) -> dt.datetime | None:
    """An RFC 3339 stamp as an aware datetime (UTC when it names no zone); None if absent or malformed."""
    if not text:
        return None
    try:
        value = dt.datetime.fromisoformat(text.strip().replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        return None
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


def aware(moment: dt.datetime | None) -> dt.datetime | None:
    """The datetime with UTC attached when it has no zone (the kubernetes client returns naive ones)."""
    if moment is None:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)


def parse_duration(value: str) -> dt.timedelta:
    """A Go-style duration (``1m30s``, ``250ms``, ``2h``) as a timedelta.

    Raises ValueError, naming the value, when it is malformed or longer than :data:`MAX_DURATION`.
    """
    if not isinstance(value, str) or not re.fullmatch(DURATION_PATTERN, value):
        raise ValueError(f"invalid duration {value!r}: expected e.g. 30s, 1m30s, 250ms, 2h")
    seconds = sum(float(num) * _UNIT_SECONDS[unit] for num, unit in _DURATION_PART.findall(value))
    if seconds > MAX_DURATION.total_seconds():
        raise ValueError(f"duration {value!r} is longer than the maximum {MAX_DURATION_TEXT}")
    return dt.timedelta(seconds=seconds)


def seconds_of(value: str) -> float:
    """A duration in seconds (see :func:`parse_duration`)."""
    return parse_duration(value).total_seconds()


def readable(delta: dt.timedelta) -> str:
    """A short readable duration: 0.3s, 45s, 2m05s, 1h03m."""
    exact = max(0.0, delta.total_seconds())
    if exact < 10:
        return f"{exact:.1f}s".replace(".0s", "s")
    total = round(exact)
    if total < 60:
        return f"{total}s"
    if total < 3600:
        return f"{total // 60}m{total % 60:02d}s"
    return f"{total // 3600}h{(total % 3600) // 60:02d}m"
