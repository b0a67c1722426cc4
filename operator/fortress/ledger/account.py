"""A tenant's credit account: ``decide(command, state) -> events`` and ``evolve(state, event) -> state``.

Pure functions, no I/O. Invariants held by ``decide`` (and checked again by ``evolve`` so a corrupt
stream is noticed rather than folded): amounts are integers > 0; the balance is never negative;
reserved <= balance; a consumption takes at most what its reservation still holds; a refund returns
at most what was consumed and not yet refunded. A rejected command raises a ``DomainError``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Any, Final

from fortress.ledger import events as ev
from fortress.ledger.events import Command, Event

_ID = re.compile(ev.ID_PATTERN)
MAX_REASON: Final = 200


class DomainError(Exception):
    """A command the account refuses; ``code`` is machine-readable (``insufficient_credits``)."""

    code = "domain_error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidCommand(DomainError):
    """The command itself is malformed (amount not a positive integer, bad id, empty reason)."""

    code = "invalid_command"


class InsufficientCredits(DomainError):
    code = "insufficient_credits"


class BalanceLimitExceeded(DomainError):
    code = "balance_limit_exceeded"


class UnknownReservation(DomainError):
    code = "unknown_reservation"


class ReservationExists(DomainError):
    code = "reservation_exists"


class ExceedsReservation(DomainError):
    code = "exceeds_reservation"


class RefundExceedsConsumed(DomainError):
    code = "refund_exceeds_consumed"


class CorruptStream(Exception):
    """A stored event cannot be folded (unknown type, bad data, or it breaks an invariant)."""


_EMPTY: Mapping[str, int] = MappingProxyType({})


@dataclass(frozen=True, slots=True)
class AccountState:
    """The account after ``version`` events."""

    version: int = 0
    balance: int = 0
    reserved: int = 0
    consumed: int = 0
    refunded: int = 0
    reservations: Mapping[str, int] = field(default_factory=lambda: _EMPTY)  # open id -> credits left

    @property
    def available(self) -> int:
        return self.balance - self.reserved

    def to_json(self) -> dict[str, Any]:
        """The state as a JSON object (snapshots, API)."""
        return {
            "version": self.version,
            "balance": self.balance,
            "reserved": self.reserved,
            "available": self.available,
            "consumed": self.consumed,
            "refunded": self.refunded,
            "reservations": dict(sorted(self.reservations.items())),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> AccountState:
        """The inverse of ``to_json``; raises CorruptStream on anything unexpected."""
        try:
            reservations = {str(k): _int(v) for k, v in dict(data.get("reservations") or {}).items()}
            state = cls(
                version=_int(data["version"]),
                balance=_int(data["balance"]),
                reserved=_int(data["reserved"]),
                consumed=_int(data.get("consumed", 0)),
                refunded=_int(data.get("refunded", 0)),
                reservations=MappingProxyType(reservations),
            )
        except (KeyError, TypeError, ValueError) as error:
            raise CorruptStream(f"snapshot state is malformed: {error}") from None
        problem = invariant_violation(state)
        if problem:
            raise CorruptStream(f"snapshot state breaks an invariant: {problem}")
        return state


INITIAL = AccountState()


def _int(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"expected an integer, got {value!r}")
    return value


def invariant_violation(state: AccountState) -> str | None:
    """The first invariant ``state`` breaks, or None."""
    if state.balance < 0:
        return f"balance {state.balance} is negative"
    if state.reserved < 0:
        return f"reserved {state.reserved} is negative"
    if state.reserved > state.balance:
        return f"reserved {state.reserved} exceeds balance {state.balance}"
    if sum(state.reservations.values()) != state.reserved:
        return "open reservations do not add up to reserved"
    if any(v <= 0 for v in state.reservations.values()):
        return "an open reservation holds no credits"
    if state.refunded > state.consumed:
        return f"refunded {state.refunded} exceeds consumed {state.consumed}"
    return None


def _amount(value: Any, name: str = "amount") -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidCommand(f"{name} must be an integer, got {value!r}")
    if value <= 0:
        raise InvalidCommand(f"{name} must be greater than 0, got {value}")
    if value > ev.MAX_AMOUNT:
        raise InvalidCommand(f"{name} must be at most {ev.MAX_AMOUNT}, got {value}")
    return value


def _reservation_id(value: Any) -> str:
    if not isinstance(value, str) or not _ID.fullmatch(value):
        raise InvalidCommand(f"reservation_id must match {ev.ID_PATTERN}, got {value!r}")
    return value


def _headroom(state: AccountState, amount: int) -> None:
    if state.balance + amount > ev.MAX_BALANCE:
        raise BalanceLimitExceeded(
            f"balance {state.balance} + {amount} would exceed the limit of {ev.MAX_BALANCE} credits"
        )


def decide(command: Command, state: AccountState) -> list[Event]:
    """The events that accepting ``command`` in ``state`` records; raises DomainError when refused."""
    if isinstance(command, ev.Purchase):
        amount = _amount(command.amount)
        _headroom(state, amount)
        return [Event(ev.CREDITS_PURCHASED, {"amount": amount})]
    if isinstance(command, ev.Reserve):
        rid, amount = _reservation_id(command.reservation_id), _amount(command.amount)
        if rid in state.reservations:
            raise ReservationExists(f"reservation {rid!r} is already open")
        if amount > state.available:
            raise InsufficientCredits(
                f"cannot reserve {amount} credits: {state.available} available "
                f"(balance {state.balance}, reserved {state.reserved})"
            )
        return [Event(ev.CREDITS_RESERVED, {"reservation_id": rid, "amount": amount})]
    if isinstance(command, ev.Release):
        rid = _reservation_id(command.reservation_id)
        if rid not in state.reservations:
            raise UnknownReservation(f"no open reservation {rid!r}")
        return [Event(ev.RESERVATION_RELEASED, {"reservation_id": rid, "amount": state.reservations[rid]})]
    if isinstance(command, ev.Consume):
        rid, amount = _reservation_id(command.reservation_id), _amount(command.amount)
        if rid not in state.reservations:
            raise UnknownReservation(f"no open reservation {rid!r}")
        left = state.reservations[rid]
        if amount > left:
            raise ExceedsReservation(f"cannot consume {amount} credits: reservation {rid!r} holds {left}")
        return [Event(ev.CREDITS_CONSUMED, {"reservation_id": rid, "amount": amount})]
    if isinstance(command, ev.Refund):
        amount = _amount(command.amount)
        refundable = state.consumed - state.refunded
        if amount > refundable:
            raise RefundExceedsConsumed(
                f"cannot refund {amount} credits: {refundable} consumed and not refunded"
            )
        _headroom(state, amount)
        return [Event(ev.CREDITS_REFUNDED, {"amount": amount})]
    if isinstance(command, ev.Adjust):
        delta = command.delta
        if isinstance(delta, bool) or not isinstance(delta, int) or delta == 0:
            raise InvalidCommand(f"delta must be a non-zero integer, got {delta!r}")
        _amount(abs(delta), "delta")
        reason = command.reason
        if not isinstance(reason, str) or not reason.strip() or len(reason) > MAX_REASON:
            raise InvalidCommand(f"reason must be 1 to {MAX_REASON} characters")
        if delta > 0:
            _headroom(state, delta)
        elif state.balance + delta < state.reserved:
            raise InsufficientCredits(
                f"cannot adjust by {delta}: balance {state.balance} "
                f"would fall below reserved {state.reserved}"
            )
        return [Event(ev.BALANCE_ADJUSTED, {"delta": delta, "reason": reason})]
    raise InvalidCommand(f"unknown command {command!r}")


def balance_delta(event: Event) -> tuple[int, int]:
    """How ``event`` moves (balance, reserved): all the read model needs."""
    kind, data = event.type, event.data
    try:
        if kind == ev.CREDITS_PURCHASED or kind == ev.CREDITS_REFUNDED:
            return _int(data["amount"]), 0
        if kind == ev.CREDITS_RESERVED:
            return 0, _int(data["amount"])
        if kind == ev.RESERVATION_RELEASED:
            return 0, -_int(data["amount"])
        if kind == ev.CREDITS_CONSUMED:
            amount = _int(data["amount"])
            return -amount, -amount
        if kind == ev.BALANCE_ADJUSTED:
            return _int(data["delta"]), 0
    except (KeyError, TypeError, ValueError) as error:
        raise CorruptStream(f"{kind} event has malformed data {dict(data)!r}: {error}") from None
    raise CorruptStream(f"unknown event type {kind!r}")


def evolve(state: AccountState, event: Event) -> AccountState:
    """The account after ``event``; raises CorruptStream when the event cannot follow ``state``."""
    d_balance, d_reserved = balance_delta(event)
    reservations = state.reservations
    consumed, refunded = state.consumed, state.refunded
    data = event.data
    if event.type in (ev.CREDITS_RESERVED, ev.RESERVATION_RELEASED, ev.CREDITS_CONSUMED):
        rid = data.get("reservation_id")
        if not isinstance(rid, str):
            raise CorruptStream(f"{event.type} event without a reservation_id: {dict(data)!r}")
        changed = dict(reservations)
        if event.type == ev.CREDITS_RESERVED:
            if rid in changed:
                raise CorruptStream(f"reservation {rid!r} opened twice")
            changed[rid] = d_reserved
        else:
            left = changed.get(rid, 0) + d_reserved
            if rid not in changed or left < 0 or (event.type == ev.RESERVATION_RELEASED and left != 0):
                raise CorruptStream(f"{event.type} does not match reservation {rid!r}")
            if left:
                changed[rid] = left
            else:
                del changed[rid]
            if event.type == ev.CREDITS_CONSUMED:
                consumed += -d_balance
        reservations = MappingProxyType(changed)
    elif event.type == ev.CREDITS_REFUNDED:
        refunded += d_balance
    new = AccountState(
        version=state.version + 1,
        balance=state.balance + d_balance,
        reserved=state.reserved + d_reserved,
        consumed=consumed,
        refunded=refunded,
        reservations=reservations,
    )
    if new.balance < 0 or new.reserved > new.balance or new.refunded > new.consumed:
        raise CorruptStream(f"{event.type} at version {new.version} breaks an invariant")
    return new


def replay(events: Iterable[Event], state: AccountState = INITIAL) -> AccountState:
    """Fold ``events`` onto ``state``."""
    for event in events:
        state = evolve(state, event)
    return state


def with_version(state: AccountState, version: int) -> AccountState:
    """``state`` labelled with a stream version (used when the stream, not the fold, knows it)."""
    return replace(state, version=version)
