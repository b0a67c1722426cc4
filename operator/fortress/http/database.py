"""Database failures as HTTP answers, and database work bounded in time.

``database_error`` sorts an exception raised while serving a request:
* the request's data cannot be stored or compared (SQLSTATE class 22, e.g. a timestamp out of range,
  or asyncpg refusing to encode an argument; class 54, e.g. a value too deeply nested): 422
  ``invalid_value``, so a client never retries its own bad input;
* the database did not answer in time (statement timeout, connect timeout): 503 ``database_timeout``;
* the database is down, restarting, out of connections, or aborted the transaction to resolve a
  conflict: 503 ``database_unavailable``; the schema is missing: 503 ``database_not_migrated``;
every 503 carrying ``Retry-After``. Anything else is a bug: logged, and 500.

``bounded`` runs database work as a task and answers 503 when it has not finished in time, without
waiting for the task: with the server frozen (SIGSTOP) even cancelling a query waits for it, so the
task is cancelled and left to finish in the background.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Final, TypeVar

import asyncpg

from fortress.http.errors import ApiError, unavailable

T = TypeVar("T")
log = logging.getLogger("fortress.http")

_UNAVAILABLE: Final = (
    OSError,
    asyncpg.PostgresConnectionError,  # class 08
    asyncpg.InsufficientResourcesError,  # class 53: too many connections, disk full
    asyncpg.OperatorInterventionError,  # class 57: shutdown, cannot connect now
    asyncpg.TransactionRollbackError,  # class 40: serialization failure, deadlock
    asyncpg.LockNotAvailableError,
    asyncpg.InterfaceError,  # connection closed or lost
)
_NOT_MIGRATED: Final = (asyncpg.UndefinedTableError, asyncpg.UndefinedFunctionError)


def is_database_error(error: BaseException) -> bool:
    return isinstance(error, OSError | TimeoutError | asyncpg.PostgresError | asyncpg.InterfaceError)


def timeout_error(what: str, seconds: float) -> ApiError:
    return unavailable("database_timeout", f"{what} did not answer within {seconds:g}s")


def database_error(error: BaseException, what: str = "database") -> ApiError:
    """The HTTP answer to ``error`` (see the module docstring)."""
    state = getattr(error, "sqlstate", None) or ""
    if isinstance(error, asyncpg.InterfaceError) and isinstance(error, ValueError):
        return ApiError(422, "invalid_value", f"a value in the request cannot be stored: {error}")
    if state.startswith("22") or state.startswith("54"):
        message = getattr(error, "message", None) or str(error)
        return ApiError(422, "invalid_value", f"a value in the request cannot be stored: {message}")
    if isinstance(error, TimeoutError | asyncpg.QueryCanceledError):
        return unavailable("database_timeout", f"{what} did not answer in time ({type(error).__name__})")
    if isinstance(error, _NOT_MIGRATED):
        return unavailable("database_not_migrated", f"{what} has no schema: run `fortress migrate up`")
    if isinstance(error, _UNAVAILABLE):
        return unavailable("database_unavailable", f"{what} unavailable: {type(error).__name__}")
    log.error("unexpected %s error", what, exc_info=error)
    return ApiError(500, "internal", "internal error; see the server log")


def _drain(task: asyncio.Task[object]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.debug("abandoned database work ended with %r", task.exception())


async def bounded(work: Callable[[], Awaitable[T]], seconds: float, what: str = "database") -> T:
    """``await work()``, or 503 ``database_timeout`` after ``seconds`` (the work is cancelled)."""
    task: asyncio.Task[T] = asyncio.ensure_future(work())
    try:
        done, _ = await asyncio.wait({task}, timeout=seconds)
    except asyncio.CancelledError:
        task.cancel()
        raise
    if task not in done:
        task.cancel()
        task.add_done_callback(_drain)
        raise timeout_error(what, seconds)
    return task.result()
