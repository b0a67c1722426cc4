"""Input checks, database error mapping, bounded database work and per-account locks (pure, no I/O)."""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg
import pytest
from aiohttp.http_exceptions import BadHttpMethod, BadStatusLine, InvalidHeader, LineTooLong
from pydantic import BaseModel, ValidationError

from fortress.http.database import bounded, database_error
from fortress.http.errors import ApiError
from fortress.http.inputs import MAX_DEPTH, JsonInt, check_tree, decode_json, json_int
from fortress.http.runner import error_body
from fortress.ledger.serialize import KeyedLocks


def _refusal(call: Any, *args: Any) -> tuple[int, str, str | None]:
    with pytest.raises(ApiError) as caught:
        call(*args)
    error = caught.value
    return error.status, error.code, (error.details or [{}])[0].get("field")


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (b"[" * 100_000 + b"]" * 100_000, (400, "bad_request", "<body>")),
        (b"[" * (MAX_DEPTH + 1) + b"]" * (MAX_DEPTH + 1), (400, "bad_request", "0" + ".0" * (MAX_DEPTH - 1))),
        (b'{"a": {"b": ["x", "y\\u0000"]}}', (422, "invalid_character", "a.b.1")),
        (b'{"a\\u0000": 1}', (422, "invalid_character", "a\\u0000")),
        (b'{"a": "\\ud800"}', (422, "invalid_character", "a")),
        (b'"\\u0000"', (422, "invalid_character", "<body>")),
        (b"{not json", (400, "bad_request", None)),
        (b"\xff", (400, "bad_request", None)),
    ],
)
def test_bodies_refused_with_the_field_named(raw: bytes, expected: tuple[int, str, str | None]) -> None:
    assert _refusal(decode_json, raw) == expected


def test_acceptable_bodies_pass() -> None:
    deep = [[[[["ok"]]]]]
    check_tree(deep)
    assert decode_json(b"") is None
    assert decode_json(b'{"reason": "caf\\u00e9 \\ud83d\\ude00"}') == {"reason": "café 😀"}
    nested = b"[" * MAX_DEPTH + b"]" * MAX_DEPTH
    assert decode_json(nested) is not None


class _Numbers(BaseModel):
    amount: JsonInt
    version: json_int(ge=0, le=10) | None = None  # type: ignore[valid-type]


@pytest.mark.parametrize("value", [5, 5.0])
def test_integral_json_numbers_are_integers(value: Any) -> None:
    assert _Numbers.model_validate({"amount": value, "version": value}).amount == 5


@pytest.mark.parametrize("value", ["5", True, 5.5, None])
def test_other_json_values_are_not_integers(value: Any) -> None:
    with pytest.raises(ValidationError):
        _Numbers.model_validate({"amount": value})


def test_optional_bounded_integers_document_their_bounds() -> None:
    schema = _Numbers.model_json_schema()["properties"]["version"]["anyOf"][0]
    assert schema == {"type": "integer", "minimum": 0, "maximum": 10}
    with pytest.raises(ValidationError):
        _Numbers.model_validate({"amount": 1, "version": 11.0})


def _pg(cls: type[asyncpg.PostgresError]) -> asyncpg.PostgresError:
    return cls("boom")


@pytest.mark.parametrize(
    ("error", "status", "code"),
    [
        (_pg(asyncpg.UntranslatableCharacterError), 422, "invalid_value"),
        (_pg(asyncpg.DatetimeFieldOverflowError), 422, "invalid_value"),
        (_pg(asyncpg.DataError), 422, "invalid_value"),
        (_pg(asyncpg.ProgramLimitExceededError), 422, "invalid_value"),
        (asyncpg.exceptions._base.DataError("invalid input for query argument $1"), 422, "invalid_value"),
        (_pg(asyncpg.QueryCanceledError), 503, "database_timeout"),
        (TimeoutError(), 503, "database_timeout"),
        (ConnectionRefusedError(111, "refused"), 503, "database_unavailable"),
        (_pg(asyncpg.CannotConnectNowError), 503, "database_unavailable"),
        (_pg(asyncpg.AdminShutdownError), 503, "database_unavailable"),
        (_pg(asyncpg.TooManyConnectionsError), 503, "database_unavailable"),
        (_pg(asyncpg.SerializationError), 503, "database_unavailable"),
        (asyncpg.ConnectionDoesNotExistError("closed"), 503, "database_unavailable"),
        (_pg(asyncpg.UndefinedTableError), 503, "database_not_migrated"),
        (_pg(asyncpg.SyntaxOrAccessError), 500, "internal"),
    ],
)
def test_database_errors_are_sorted_into_client_server_and_unavailable(
    error: BaseException, status: int, code: str
) -> None:
    answer = database_error(error, "ledger database")
    assert (answer.status, answer.code) == (status, code)
    assert ("Retry-After" in answer.headers) == (status == 503)


async def test_bounded_returns_the_result_or_503_without_waiting_for_the_work() -> None:
    async def quick() -> int:
        return 7

    assert await bounded(quick, 1.0) == 7
    release = asyncio.Event()
    cancelled = asyncio.Event()

    async def stuck() -> None:
        try:
            await release.wait()
        except asyncio.CancelledError:
            cancelled.set()
            await asyncio.sleep(3600)  # like a query whose cancellation waits for a frozen server

    loop = asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises(ApiError) as caught:
        await bounded(stuck, 0.05)
    assert (caught.value.status, caught.value.code) == (503, "database_timeout")
    assert loop.time() - started < 3600
    await asyncio.wait_for(cancelled.wait(), 5)
    for task in asyncio.all_tasks():
        if task is not asyncio.current_task():
            task.cancel()


async def test_keyed_locks_serialize_one_key_and_clean_up() -> None:
    locks = KeyedLocks()
    inside: dict[str, int] = {"a": 0, "b": 0}
    peak: dict[str, int] = {"a": 0, "b": 0}

    async def work(key: str) -> None:
        async with locks.hold(key) as held:
            assert held
            inside[key] += 1
            peak[key] = max(peak[key], inside[key])
            await asyncio.sleep(0.001)
            inside[key] -= 1

    await asyncio.gather(*(work("ab"[i % 2]) for i in range(40)))
    assert peak == {"a": 1, "b": 1}
    assert len(locks) == 0


async def test_keyed_locks_are_bounded() -> None:
    locks = KeyedLocks(max_keys=1)
    async with locks.hold("a") as first, locks.hold("b") as second:
        assert first and not second and len(locks) == 1
    assert len(locks) == 0
    with pytest.raises(ValueError):
        KeyedLocks(max_keys=0)


@pytest.mark.parametrize(
    ("status", "exc", "code"),
    [
        (400, LineTooLong(b"x" * 9000, 8190), "line_too_long"),
        (400, BadHttpMethod("G(T"), "bad_method"),
        (400, InvalidHeader(b"no colon"), "invalid_header"),
        (400, BadStatusLine("junk"), "bad_request"),
        (500, RuntimeError("boom"), "internal"),
    ],
)
def test_server_errors_have_the_project_shape(status: int, exc: BaseException, code: str) -> None:
    body = error_body(status, exc)
    assert body["error"] == code and body["message"] and "x" * 300 not in body["message"]
    assert "boom" not in body["message"]
