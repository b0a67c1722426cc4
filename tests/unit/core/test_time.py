"""core.time: stamps, their parser, and bounded durations."""

from __future__ import annotations

import datetime as dt

import pytest

from fortress.core.time import (
    MAX_DURATION,
    parse,
    parse_duration,
    readable,
    seconds_of,
    stamp,
    stamp_ms,
    stamp_us,
)

MOMENT = dt.datetime(2026, 12, 6, 10, 15, 30, 123456, tzinfo=dt.UTC)


def test_stamps_are_utc_with_the_stated_precision() -> None:
    assert stamp(MOMENT) == "2026-12-06T10:15:30Z"
    assert stamp_ms(MOMENT) == "2026-12-06T10:15:30.123Z"
    assert stamp_us(MOMENT) == "2026-12-06T10:15:30.123456Z"
    plus_two = MOMENT.astimezone(dt.timezone(dt.timedelta(hours=2)))
    assert stamp(plus_two) == stamp(MOMENT) and stamp_ms(plus_two) == stamp_ms(MOMENT)


@pytest.mark.parametrize("writer", [stamp, stamp_ms, stamp_us])
def test_every_stamp_parses_back(writer: object) -> None:
    text = writer(MOMENT)  # type: ignore[operator]
    parsed = parse(text)
    assert parsed is not None and parsed.tzinfo is not None
    assert abs((parsed - MOMENT).total_seconds()) < 1


def test_a_stamp_without_a_zone_is_utc_and_garbage_is_none() -> None:
    assert parse("2026-12-06T10:15:30") == dt.datetime(2026, 12, 6, 10, 15, 30, tzinfo=dt.UTC)
    assert parse("2026-12-06T12:15:30+02:00") == dt.datetime(2026, 12, 6, 10, 15, 30, tzinfo=dt.UTC)
    for bad in (None, "", "yesterday", "2026-13-40T00:00:00Z"):
        assert parse(bad) is None


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("30s", 30), ("1m30s", 90), ("250ms", 0.25), ("2h", 7200), ("1.5s", 1.5), ("8784h", 8784 * 3600)],
)
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration(text).total_seconds() == pytest.approx(seconds)
    assert seconds_of(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "30", "s", "1d", "-5s", "1 m", "99999999999999h", "8785h", "527041m"])
def test_bad_or_unbounded_durations_raise_naming_the_value(text: str) -> None:
    with pytest.raises(ValueError, match=repr(text).replace("(", r"\(")):
        parse_duration(text)


def test_the_bound_is_a_year_and_a_day() -> None:
    assert dt.timedelta(days=366) == MAX_DURATION


@pytest.mark.parametrize(
    ("seconds", "text"), [(0.3, "0.3s"), (2, "2s"), (45, "45s"), (125, "2m05s"), (3780, "1h03m"), (-1, "0s")]
)
def test_readable(seconds: float, text: str) -> None:
    assert readable(dt.timedelta(seconds=seconds)) == text
