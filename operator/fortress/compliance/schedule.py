"""When a ComplianceScan scans: on creation and spec changes, then on its cron schedule (pure)."""

from __future__ import annotations

import datetime as dt

from croniter import croniter


def next_scan(schedule: str | None, after: dt.datetime) -> dt.datetime | None:
    """The first cron time strictly after ``after`` (UTC), or None without a schedule."""
    if not schedule:
        return None
    value: dt.datetime = croniter(schedule, after.astimezone(dt.UTC)).get_next(dt.datetime)
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


def due(
    *,
    changed: bool,
    suspend: bool,
    schedule: str | None,
    last_scan: dt.datetime | None,
    next_at: dt.datetime | None,
    now: dt.datetime,
) -> bool:
    """Scan now? Always after a spec change or before the first scan; then only at ``next_at`` of
    a schedule (never while suspended)."""
    if changed or last_scan is None:
        return True
    if suspend or not schedule:
        return False
    return next_at is None or now >= next_at


def wait(next_at: dt.datetime | None, now: dt.datetime, ceiling: float = 300.0) -> float:
    """Seconds to sleep before the next step (the loop wakes at least every ``ceiling`` s anyway)."""
    if next_at is None:
        return ceiling
    return max(1.0, min(ceiling, (next_at - now).total_seconds()))
