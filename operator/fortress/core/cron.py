"""Cron schedules (5 fields, UTC): what is wrong with one, naming the field (pure)."""

from __future__ import annotations

from typing import Final

from croniter import croniter

FIELDS: Final = (
    ("minute", 0, 59),
    ("hour", 0, 23),
    ("day-of-month", 1, 31),
    ("month", 1, 12),
    ("day-of-week", 0, 7),
)
SHAPE: Final = "minute hour day-of-month month day-of-week"


def _field_problems(text: str, name: str, low: int, high: int) -> list[str]:
    problems: list[str] = []
    for item in text.split(","):
        base, slash, step = item.partition("/")
        if slash and (not step.isdigit() or int(step) == 0):
            problems.append(f"{name} step {step!r} is not a positive number")
        for bound in base.split("-"):
            if bound.isdigit() and not low <= int(bound) <= high:
                problems.append(f"{name} {int(bound)} is out of range {low}-{high}")
    return problems


def problem(expression: str) -> str | None:
    """Why ``expression`` is not a 5-field cron schedule, naming the field; None when it is one."""
    fields = expression.split()
    if len(fields) != len(FIELDS):
        return f"{expression!r} has {len(fields)} field(s); a cron schedule has 5: {SHAPE}"
    found: list[str] = []
    for text, (name, low, high) in zip(fields, FIELDS, strict=True):
        found += _field_problems(text, name, low, high)
    if found:
        return f"{expression!r}: {'; '.join(found)}"
    if not croniter.is_valid(expression):
        return f"{expression!r} is not a valid cron schedule ({SHAPE}; e.g. '0 2 * * *')"
    return None
