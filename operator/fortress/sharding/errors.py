"""Typed errors of the sharding library; the HTTP API maps each to one status code."""

from __future__ import annotations


class ShardingError(Exception):
    """Base class; ``code`` is the machine-readable error code the HTTP API returns."""

    code = "sharding_error"


class InvalidKey(ShardingError):
    code = "invalid_key"


class InvalidValue(ShardingError):
    code = "invalid_value"


class KeyNotFound(ShardingError):
    code = "not_found"

    def __init__(self, key: str) -> None:
        super().__init__(f"key {key!r} not found")
        self.key = key


class VersionConflict(ShardingError):
    code = "version_conflict"

    def __init__(self, key: str, expected: int, actual: int | None) -> None:
        found = "it does not exist" if actual is None else f"it is at version {actual}"
        super().__init__(f"key {key!r}: expected version {expected} but {found}")
        self.key, self.expected, self.actual = key, expected, actual


class ShardUnavailable(ShardingError):
    """A shard could not be reached, timed out, or is not configured."""

    code = "shard_unavailable"

    def __init__(self, shard_id: str, reason: str) -> None:
        super().__init__(f"shard {shard_id} is unavailable: {reason}")
        self.shard_id = shard_id
        self.reason = reason


def retry_delay(seconds: float) -> str:
    """A retry delay as text that never reads 0: ``12.3s``, ``40ms``, at least ``1ms``."""
    if seconds >= 0.1:
        return f"{seconds:.1f}s"
    return f"{max(1, round(seconds * 1000))}ms"


class CircuitOpen(ShardUnavailable):
    """The shard's circuit breaker refuses calls for now."""

    code = "circuit_open"

    def __init__(self, shard_id: str, retry_after: float) -> None:
        ShardingError.__init__(
            self,
            f"shard {shard_id} is unavailable: its circuit is open after repeated failures; "
            f"retry in {retry_delay(retry_after)}",
        )
        self.shard_id = shard_id
        self.reason = "circuit open"
        self.retry_after = retry_after


class ShardTimeout(ShardUnavailable):
    code = "shard_timeout"


class InsufficientFunds(ShardingError):
    code = "insufficient_funds"

    def __init__(self, key: str, balance: int, amount: int) -> None:
        super().__init__(f"key {key!r} has balance {balance}, less than the amount {amount}")
        self.key, self.balance, self.amount = key, balance, amount


class NotABalance(ShardingError):
    code = "not_a_balance"

    def __init__(self, key: str) -> None:
        super().__init__(f"key {key!r} does not hold a JSON object with an integer 'balance'")
        self.key = key


class TransactionConflict(ShardingError):
    """A lock could not be taken in time (a concurrent transaction or a move holds it); retry."""

    code = "transaction_conflict"


class TransactionAborted(ShardingError):
    """The transaction was rolled back (deadline passed, or recovery decided abort first)."""

    code = "transaction_aborted"


class PreparedTransactionsDisabled(ShardingError):
    code = "prepared_transactions_disabled"

    def __init__(self, shard_id: str) -> None:
        super().__init__(
            f"shard {shard_id} has max_prepared_transactions = 0, so it cannot take part in cross-shard "
            "transactions: set max_prepared_transactions > 0 in its postgresql.conf and restart it"
        )
        self.shard_id = shard_id


class CrashInjected(BaseException):
    """Raised by test hooks to stop a coordinator or executor as a crash would (no clean-up runs).

    A BaseException, so ``except Exception`` clean-up paths do not swallow it.
    """
