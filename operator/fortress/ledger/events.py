"""Commands and events of a tenant's credit account (plain immutable values, no I/O).

Commands are what a caller asks for; events are the facts recorded when a command is accepted. Both
serialise to JSON objects (``data``) keyed by a snake_case ``type``; amounts are integers > 0.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

AGGREGATE_TYPE: Final = "credit_account"
MAX_AMOUNT: Final = 10**12  # one command moves at most this many credits
MAX_BALANCE: Final = 10**15  # far below bigint, so read-model sums can never overflow
ID_PATTERN: Final = r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$"


# --- commands ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Purchase:
    """Credits bought: the balance grows."""

    amount: int


@dataclass(frozen=True)
class Reserve:
    """Set credits aside for a job (``reservation_id`` is chosen by the caller)."""

    reservation_id: str
    amount: int


@dataclass(frozen=True)
class Release:
    """Give back what is left of a reservation."""

    reservation_id: str


@dataclass(frozen=True)
class Consume:
    """Spend credits out of a reservation (at most what it still holds)."""

    reservation_id: str
    amount: int


@dataclass(frozen=True)
class Refund:
    """Return consumed credits to the tenant (at most what was consumed and not yet refunded)."""

    amount: int


@dataclass(frozen=True)
class Adjust:
    """A manual correction by ``delta`` credits (non-zero, either sign), with a reason."""

    delta: int
    reason: str


Command = Purchase | Reserve | Release | Consume | Refund | Adjust

COMMAND_TYPES: Final[dict[str, type[Command]]] = {
    "purchase": Purchase,
    "reserve": Reserve,
    "release": Release,
    "consume": Consume,
    "refund": Refund,
    "adjust": Adjust,
}


def command_type(command: Command) -> str:
    """The wire name of a command (``purchase``, ``reserve``, ...)."""
    for name, cls in COMMAND_TYPES.items():
        if isinstance(command, cls):
            return name
    raise TypeError(f"not a command: {command!r}")  # pragma: no cover - the union is closed


def command_data(command: Command) -> dict[str, Any]:
    """The command's fields as a JSON object."""
    return dict(vars(command))


# --- events ------------------------------------------------------------------------------------

CREDITS_PURCHASED: Final = "CreditsPurchased"
CREDITS_RESERVED: Final = "CreditsReserved"
RESERVATION_RELEASED: Final = "ReservationReleased"
CREDITS_CONSUMED: Final = "CreditsConsumed"
CREDITS_REFUNDED: Final = "CreditsRefunded"
BALANCE_ADJUSTED: Final = "BalanceAdjusted"
EVENT_TYPES: Final = (
    CREDITS_PURCHASED,
    CREDITS_RESERVED,
    RESERVATION_RELEASED,
    CREDITS_CONSUMED,
    CREDITS_REFUNDED,
    BALANCE_ADJUSTED,
)


@dataclass(frozen=True)
class Event:
    """One fact of an account: its type and JSON data (amounts, reservation id, ...)."""

    type: str
    data: Mapping[str, Any]


def request_hash(aggregate_id: str, command: Command) -> str:
    """A stable digest of what was asked (aggregate, command type and fields) for idempotency checks."""
    canonical = json.dumps(
        {"aggregate": aggregate_id, "type": command_type(command), "data": command_data(command)},
        sort_keys=True,
        separators=(",", ":"),
    )
    return hashlib.sha256(canonical.encode()).hexdigest()
