"""Typed operations of cross-shard transactions, their validation and their effect on values (pure)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from fortress.sharding.errors import InsufficientFunds, InvalidValue, KeyNotFound, NotABalance
from fortress.sharding.router import encode_value, validate_key

MAX_OPERATIONS: Final = 100


@dataclass(frozen=True)
class Transfer:
    """Move ``amount`` from the integer ``balance`` of one key's JSON object to another's."""

    source: str
    target: str
    amount: int

    def keys(self) -> tuple[str, ...]:
        return (self.source, self.target)


@dataclass(frozen=True)
class MultiSet:
    """Set several keys at once (all or none)."""

    values: Mapping[str, Any]

    def keys(self) -> tuple[str, ...]:
        return tuple(self.values)


Operation = Transfer | MultiSet


def _validate(index: int, op: Operation) -> None:
    if isinstance(op, Transfer):
        validate_key(op.source)
        validate_key(op.target)
        if op.source == op.target:
            raise InvalidValue(f"operations[{index}]: transfer from a key to itself")
        if isinstance(op.amount, bool) or not isinstance(op.amount, int) or op.amount <= 0:
            raise InvalidValue(f"operations[{index}].amount must be a positive integer")
    elif isinstance(op, MultiSet):
        if not op.values:
            raise InvalidValue(f"operations[{index}]: set needs at least one key")
        for key, value in op.values.items():
            validate_key(key)
            encode_value(value)
    else:
        raise InvalidValue(f"operations[{index}]: unknown operation {type(op).__name__}")


def validate_operations(operations: Sequence[Operation]) -> list[str]:
    """Every key the operations touch, sorted; InvalidValue/InvalidKey naming the problem."""
    if not operations:
        raise InvalidValue("a transaction needs at least one operation")
    if len(operations) > MAX_OPERATIONS:
        raise InvalidValue(f"a transaction has at most {MAX_OPERATIONS} operations")
    keys: set[str] = set()
    for index, op in enumerate(operations):
        _validate(index, op)
        keys.update(op.keys())
    return sorted(keys)


def apply_operations(operations: Sequence[Operation], current: Mapping[str, Any | None]) -> dict[str, Any]:
    """The new value of every written key; ``current`` maps each key to its value or None."""
    values: dict[str, Any] = dict(current)
    written: dict[str, Any] = {}
    for op in operations:
        if isinstance(op, Transfer):
            for key in (op.source, op.target):
                if values.get(key) is None:
                    raise KeyNotFound(key)
                if not _is_balance(values[key]):
                    raise NotABalance(key)
            source, target = dict(values[op.source]), dict(values[op.target])
            if source["balance"] < op.amount:
                raise InsufficientFunds(op.source, source["balance"], op.amount)
            source["balance"] -= op.amount
            target["balance"] += op.amount
            values[op.source] = written[op.source] = source
            values[op.target] = written[op.target] = target
        else:
            for key, value in op.values.items():
                values[key] = written[key] = value
    return written


def _is_balance(value: Any) -> bool:
    balance = value.get("balance") if isinstance(value, dict) else None
    return isinstance(balance, int) and not isinstance(balance, bool)
