"""The credit account's pure decide/evolve: every command, every refusal, invariants and snapshots."""

from __future__ import annotations

from types import MappingProxyType
from typing import Any

import pytest

from fortress.ledger import account as acc
from fortress.ledger import events as ev
from fortress.ledger.events import Event


def state(**fields: Any) -> acc.AccountState:
    reservations = fields.pop("reservations", {})
    return acc.AccountState(reservations=MappingProxyType(reservations), **fields)


FUNDED = state(version=3, balance=100, reserved=30, consumed=20, reservations={"job": 30})

ACCEPTED = [
    (ev.Purchase(5), acc.INITIAL, Event(ev.CREDITS_PURCHASED, {"amount": 5})),
    (ev.Reserve("r2", 70), FUNDED, Event(ev.CREDITS_RESERVED, {"reservation_id": "r2", "amount": 70})),
    (ev.Release("job"), FUNDED, Event(ev.RESERVATION_RELEASED, {"reservation_id": "job", "amount": 30})),
    (ev.Consume("job", 30), FUNDED, Event(ev.CREDITS_CONSUMED, {"reservation_id": "job", "amount": 30})),
    (ev.Consume("job", 1), FUNDED, Event(ev.CREDITS_CONSUMED, {"reservation_id": "job", "amount": 1})),
    (ev.Refund(20), FUNDED, Event(ev.CREDITS_REFUNDED, {"amount": 20})),
    (ev.Adjust(-70, "fix"), FUNDED, Event(ev.BALANCE_ADJUSTED, {"delta": -70, "reason": "fix"})),
    (ev.Adjust(9, "bonus"), FUNDED, Event(ev.BALANCE_ADJUSTED, {"delta": 9, "reason": "bonus"})),
]


@pytest.mark.parametrize(("command", "before", "event"), ACCEPTED)
def test_accepted_commands_record_one_event_and_keep_invariants(
    command: ev.Command, before: acc.AccountState, event: Event
) -> None:
    events = acc.decide(command, before)
    assert events == [event]
    after = acc.replay(events, before)
    assert after.version == before.version + 1
    assert acc.invariant_violation(after) is None


REFUSED = [
    (ev.Purchase(0), acc.INITIAL, acc.InvalidCommand),
    (ev.Purchase(-1), acc.INITIAL, acc.InvalidCommand),
    (ev.Purchase(True), acc.INITIAL, acc.InvalidCommand),
    (ev.Purchase(ev.MAX_AMOUNT + 1), acc.INITIAL, acc.InvalidCommand),
    (ev.Purchase(10), state(balance=ev.MAX_BALANCE - 5), acc.BalanceLimitExceeded),
    (ev.Reserve("r", 71), FUNDED, acc.InsufficientCredits),
    (ev.Reserve("job", 1), FUNDED, acc.ReservationExists),
    (ev.Reserve("bad id", 1), FUNDED, acc.InvalidCommand),
    (ev.Reserve("r", 1), acc.INITIAL, acc.InsufficientCredits),
    (ev.Release("nope"), FUNDED, acc.UnknownReservation),
    (ev.Consume("nope", 1), FUNDED, acc.UnknownReservation),
    (ev.Consume("job", 31), FUNDED, acc.ExceedsReservation),
    (ev.Consume("job", 0), FUNDED, acc.InvalidCommand),
    (ev.Refund(21), FUNDED, acc.RefundExceedsConsumed),
    (ev.Refund(1), acc.INITIAL, acc.RefundExceedsConsumed),
    (ev.Adjust(0, "x"), FUNDED, acc.InvalidCommand),
    (ev.Adjust(-71, "x"), FUNDED, acc.InsufficientCredits),
    (ev.Adjust(5, ""), FUNDED, acc.InvalidCommand),
    (ev.Adjust(5, "x" * (acc.MAX_REASON + 1)), FUNDED, acc.InvalidCommand),
]


@pytest.mark.parametrize(("command", "before", "error"), REFUSED)
def test_refused_commands_raise_a_domain_error(
    command: ev.Command, before: acc.AccountState, error: type[acc.DomainError]
) -> None:
    with pytest.raises(error) as caught:
        acc.decide(command, before)
    assert caught.value.code == error.code and caught.value.message


def test_partial_consumption_keeps_the_rest_reserved_and_full_closes_it() -> None:
    partial = acc.replay(acc.decide(ev.Consume("job", 10), FUNDED), FUNDED)
    assert (partial.balance, partial.reserved, dict(partial.reservations)) == (90, 20, {"job": 20})
    closed = acc.replay(acc.decide(ev.Consume("job", 20), partial), partial)
    assert (closed.balance, closed.reserved, dict(closed.reservations), closed.consumed) == (70, 0, {}, 50)


CORRUPT = [
    Event("Unknown", {}),
    Event(ev.CREDITS_PURCHASED, {}),
    Event(ev.CREDITS_PURCHASED, {"amount": "5"}),
    Event(ev.CREDITS_CONSUMED, {"reservation_id": "nope", "amount": 1}),
    Event(ev.CREDITS_RESERVED, {"reservation_id": "job", "amount": 1}),
    Event(ev.RESERVATION_RELEASED, {"reservation_id": "job", "amount": 5}),
    Event(ev.BALANCE_ADJUSTED, {"delta": -1000, "reason": "x"}),
    Event(ev.CREDITS_RESERVED, {"amount": 1}),
]


@pytest.mark.parametrize("event", CORRUPT)
def test_evolve_refuses_events_that_cannot_follow(event: Event) -> None:
    with pytest.raises(acc.CorruptStream):
        acc.evolve(FUNDED, event)


def test_balance_delta_is_what_the_read_model_needs() -> None:
    assert acc.balance_delta(Event(ev.CREDITS_CONSUMED, {"reservation_id": "j", "amount": 4})) == (-4, -4)
    assert acc.balance_delta(Event(ev.RESERVATION_RELEASED, {"reservation_id": "j", "amount": 4})) == (0, -4)
    assert acc.balance_delta(Event(ev.BALANCE_ADJUSTED, {"delta": -3, "reason": "x"})) == (-3, 0)


def test_snapshot_json_round_trip_and_validation() -> None:
    assert acc.AccountState.from_json(FUNDED.to_json()) == FUNDED
    with pytest.raises(acc.CorruptStream):
        acc.AccountState.from_json({"version": 1})
    with pytest.raises(acc.CorruptStream):
        acc.AccountState.from_json({**FUNDED.to_json(), "reserved": 500})
    with pytest.raises(acc.CorruptStream):
        acc.AccountState.from_json({**FUNDED.to_json(), "balance": "100"})


def test_request_hash_depends_on_aggregate_type_and_fields_only() -> None:
    assert ev.request_hash("a", ev.Purchase(1)) == ev.request_hash("a", ev.Purchase(1))
    assert ev.request_hash("a", ev.Purchase(1)) != ev.request_hash("b", ev.Purchase(1))
    assert ev.request_hash("a", ev.Purchase(1)) != ev.request_hash("a", ev.Refund(1))
    assert ev.request_hash("a", ev.Purchase(1)) != ev.request_hash("a", ev.Purchase(2))
