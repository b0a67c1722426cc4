"""Retry with bounded exponential backoff and jitter, snapshot scheduling, API parsing and status (pure)."""

from __future__ import annotations

from typing import Any

import pytest

from fortress.http.errors import ApiError
from fortress.ledger import events as ev
from fortress.ledger.api import CommandRequest, to_command
from fortress.ledger.projections import Lag, fold
from fortress.ledger.status import Observed, ProjectorHealth, ready_outcome
from fortress.ledger.store import ConcurrencyError, RetryPolicy, retry_on_conflict, snapshot_due


@pytest.mark.parametrize(
    ("attempt", "rand", "expected"),
    [
        (0, 1.0, 0.002),
        (1, 1.0, 0.004),
        (3, 0.5, 0.008),
        (10, 1.0, 0.25),
        (30, 0.0, 0.0),
        (30, 0.999, 0.24975),
    ],
)
def test_backoff_is_exponential_capped_and_jittered(attempt: int, rand: float, expected: float) -> None:
    assert RetryPolicy().delay(attempt, lambda: rand) == pytest.approx(expected)


@pytest.mark.parametrize("kwargs", [{"attempts": 0}, {"base": -1.0}, {"base": 1.0, "cap": 0.5}])
def test_retry_policy_rejects_nonsense(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        RetryPolicy(**kwargs)


async def test_retry_until_success_sleeping_the_policy_delays() -> None:
    slept: list[float] = []
    calls = 0

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    async def attempt() -> str:
        nonlocal calls
        calls += 1
        if calls < 4:
            raise ConcurrencyError("t", calls)
        return "done"

    result = await retry_on_conflict(attempt, RetryPolicy(attempts=5), rand=lambda: 0.5, sleep=sleep)
    assert result == "done" and calls == 4
    assert slept == pytest.approx([0.001, 0.002, 0.004])


async def test_retry_gives_up_after_the_bound_and_other_errors_pass_through() -> None:
    async def sleep(_: float) -> None:
        return None

    async def conflict() -> None:
        raise ConcurrencyError("t", 1)

    with pytest.raises(ConcurrencyError):
        await retry_on_conflict(conflict, RetryPolicy(attempts=3), rand=lambda: 0.0, sleep=sleep)

    async def broken() -> None:
        raise KeyError("x")

    with pytest.raises(KeyError):
        await retry_on_conflict(broken, RetryPolicy(attempts=3), rand=lambda: 0.0, sleep=sleep)


@pytest.mark.parametrize(
    ("old", "new", "interval", "due"),
    [
        (0, 1, 100, False),
        (99, 100, 100, True),
        (100, 101, 100, False),
        (95, 205, 100, True),
        (5, 6, 0, False),
    ],
)
def test_snapshot_due_when_crossing_a_multiple(old: int, new: int, interval: int, due: bool) -> None:
    assert snapshot_due(old, new, interval) is due


@pytest.mark.parametrize(
    ("kind", "data", "command"),
    [
        ("purchase", {"amount": 5}, ev.Purchase(5)),
        ("refund", {"amount": 5}, ev.Refund(5)),
        ("reserve", {"reservationId": "j-1", "amount": 5}, ev.Reserve("j-1", 5)),
        ("consume", {"reservation_id": "j-1", "amount": 5}, ev.Consume("j-1", 5)),
        ("release", {"reservationId": "j-1"}, ev.Release("j-1")),
        ("adjust", {"delta": -5, "reason": "fix"}, ev.Adjust(-5, "fix")),
    ],
)
def test_requests_become_commands(kind: str, data: dict[str, Any], command: ev.Command) -> None:
    request = CommandRequest.model_validate({"aggregateId": "t", "type": kind, "data": data})
    assert to_command(request) == command


@pytest.mark.parametrize(
    ("kind", "data", "field"),
    [
        ("purchase", {}, "data.amount"),
        ("purchase", {"amount": 0}, "data.amount"),
        ("purchase", {"amount": "5"}, "data.amount"),
        ("purchase", {"amount": 5, "extra": 1}, "data.extra"),
        ("reserve", {"amount": 5}, "data.reservationId"),
        ("reserve", {"reservationId": "a b", "amount": 5}, "data.reservationId"),
        ("adjust", {"delta": 0, "reason": "x"}, "data.delta"),
        ("adjust", {"delta": 1, "reason": ""}, "data.reason"),
    ],
)
def test_malformed_data_is_a_400_naming_the_field(kind: str, data: dict[str, Any], field: str) -> None:
    request = CommandRequest.model_validate({"aggregateId": "t", "type": kind, "data": data})
    with pytest.raises(ApiError) as caught:
        to_command(request)
    assert caught.value.status == 400
    assert field in [d["field"] for d in caught.value.details or []]


def test_fold_sums_deltas_per_tenant_in_position_order() -> None:
    rows = [
        ("a", 1, 10, ev.Event(ev.CREDITS_PURCHASED, {"amount": 50})),
        ("b", 1, 11, ev.Event(ev.CREDITS_PURCHASED, {"amount": 7})),
        ("a", 2, 12, ev.Event(ev.CREDITS_RESERVED, {"reservation_id": "r", "amount": 20})),
        ("a", 3, 14, ev.Event(ev.CREDITS_CONSUMED, {"reservation_id": "r", "amount": 5})),
    ]
    folded = fold(rows)
    assert (folded["a"].balance, folded["a"].reserved, folded["a"].version, folded["a"].position) == (
        45,
        15,
        3,
        14,
    )
    assert (folded["b"].balance, folded["b"].position) == (7, 11)


def _observed(dirty: bool = False) -> Observed:
    return Observed(7, dirty, 12, 12, 1, 3, Lag(position=10, head=12, events=2, seconds=0.25))


def test_ready_outcome_reports_the_figures() -> None:
    outcome = ready_outcome(_observed(), projection_enabled=True)
    assert outcome.ready and outcome.reason == "LedgerReady" and outcome.events == ()
    assert outcome.fields["projection"] == {
        "position": 10,
        "lagEvents": 2,
        "lagSeconds": 0.25,
        "lastError": None,
    }
    assert outcome.fields["eventsTotal"] == 12 and outcome.fields["schemaVersion"] == 7
    assert outcome.requeue_after is not None and outcome.requeue_after <= 5
    dirty = ready_outcome(_observed(dirty=True), projection_enabled=True)
    assert not dirty.ready and dirty.reason == "SchemaDirty"


def test_a_projector_error_is_in_status_and_an_event() -> None:
    health = ProjectorHealth()
    health.failed("CorruptStream: bad data at position 13")
    outcome = ready_outcome(_observed(), projection_enabled=True, health=health)
    assert outcome.fields["projection"]["lastError"] == "CorruptStream: bad data at position 13"
    (event,) = outcome.events
    assert (event.type, event.reason) == ("Warning", "ProjectorError") and "position 13" in event.message


def test_projector_health_reports_each_new_error_once_and_clears() -> None:
    health = ProjectorHealth()
    assert health.failed("TimeoutError: writers in flight") is True  # new: worth a wake-up
    assert health.failed("TimeoutError: writers in flight") is False  # the same again
    assert health.failures == 2 and health.last_error == "TimeoutError: writers in flight"
    assert health.failed("CorruptStream: bad data") is True
    health.recovered()
    assert (health.last_error, health.failures) == (None, 0)
