"""The credits HTTP API: commands in, balances (read model), history and replay out.

Status codes: 201 command recorded (or answered again for a repeated ``Idempotency-Key``, with
``Idempotent-Replayed: true``, also when the repeat overlaps the first request); 400 malformed input
(naming the field); 401/403 from the HTTP core; 404 unknown tenant; 409 ``expectedVersion`` not the
account's version, or idempotency key reused for another request; 415 body not JSON; 422 business
rule (insufficient credits, unknown reservation, ...) or a value that cannot be stored (NUL
character, ``asOf`` out of range); 503 (with ``Retry-After``) ledger database not configured, down,
or not answering within the statement timeout, or contention that outlasted the retries.
Scopes: read for GETs, write for ``POST /api/v1/events``, admin for replay.

Commands on one account run one at a time in this process (``KeyedLocks``); a command without
``expectedVersion`` that still meets a writer of another process is retried with jittered backoff,
so clients never see 409 for contention they did not ask about.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import re
from collections.abc import Awaitable, Callable
from typing import Any, Final, Literal

import asyncpg
from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, StrictBool, ValidationError, field_validator
from pydantic.alias_generators import to_camel

from fortress.adapters.postgres import open_pool
from fortress.api.common import parse_duration
from fortress.http.app import validation_details
from fortress.http.auth import Scope
from fortress.http.database import bounded, database_error, is_database_error
from fortress.http.errors import ApiError, bad_request, conflict, not_found, unavailable, unprocessable
from fortress.http.inputs import JsonInt, json_int
from fortress.http.routing import Route
from fortress.http.server import ApiConfig
from fortress.ledger import events as ev
from fortress.ledger.account import MAX_REASON, AccountState, DomainError, InvalidCommand
from fortress.ledger.serialize import KeyedLocks
from fortress.ledger.store import (
    DEFAULT_SNAPSHOT_INTERVAL,
    MIN_IDEMPOTENCY_TTL,
    ConcurrencyError,
    EventStore,
    IdempotencyConflict,
    RetryPolicy,
    StoredEvent,
)

TAG: Final = "ledger"
IDEMPOTENCY_HEADER: Final = "Idempotency-Key"
REPLAYED_HEADER: Final = "Idempotent-Replayed"
SNAPSHOT_INTERVAL_ENV: Final = "FORTRESS_LEDGER_SNAPSHOT_INTERVAL"
IDEMPOTENCY_TTL_ENV: Final = "FORTRESS_LEDGER_IDEMPOTENCY_TTL"
_ID = re.compile(ev.ID_PATTERN)
_KEY = re.compile(r"^[\x21-\x7e]{1,255}$")
_INT = re.compile(r"^-?[0-9]{1,19}$")
MAX_VERSION: Final = 2**53
HISTORY_LIMIT: Final = 1000
DB_ERRORS: Final = (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError)
# PostgreSQL's timestamptz range is wider than Python's; these keep asOf convertible both ways
MIN_AS_OF: Final = dt.datetime(1, 1, 2, tzinfo=dt.UTC)
MAX_AS_OF: Final = dt.datetime(9999, 12, 30, tzinfo=dt.UTC)
# Contention between API processes: retried quickly (in-process writers are already serialized)
CONTENTION_RETRIES: Final = RetryPolicy(attempts=200, base=0.001, cap=0.05)


class Wire(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")


# --- request bodies ----------------------------------------------------------------------------

Amount = JsonInt


def _command_variants(schema: dict[str, Any]) -> None:
    """The documented schema: one variant per command type, each with the exact shape of its data."""
    common = {k: v for k, v in schema.pop("properties").items() if k not in ("type", "data")}
    schema.pop("required", None)
    schema.pop("additionalProperties", None)
    schema["oneOf"] = [
        {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                **common,
                "type": {"enum": list(types)},
                "data": model.model_json_schema(by_alias=True),
            },
            "required": ["aggregateId", "type", "data"],
        }
        for types, model in (
            (("purchase", "refund"), _AmountData),
            (("reserve", "consume"), _ReservationAmountData),
            (("release",), _ReservationData),
            (("adjust",), _AdjustData),
        )
    ]


NO_NUL: Final = r"^[^\u0000]*$"  # documents the 422 for NUL characters (fortress.http.inputs)


class CommandRequest(Wire):
    """A command for one tenant's account."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
        json_schema_extra=lambda schema: _command_variants(schema),
    )

    aggregate_id: str = Field(pattern=ev.ID_PATTERN, description="The tenant whose account this is for.")
    type: Literal["purchase", "reserve", "release", "consume", "refund", "adjust"] = Field(
        description="The command."
    )
    data: dict[str, Any] = Field(
        default_factory=dict,
        description="purchase/refund: {amount}; reserve/consume: {reservationId, amount}; "
        "release: {reservationId}; adjust: {delta, reason}. Amounts are integers > 0.",
    )
    expected_version: json_int(ge=0, le=MAX_VERSION) | None = Field(  # type: ignore[valid-type]
        default=None, description="Fail with 409 unless the account is at this version."
    )


class _AmountData(Wire):
    amount: Amount = Field(gt=0, le=ev.MAX_AMOUNT)


class _ReservationData(Wire):
    reservation_id: str = Field(pattern=ev.ID_PATTERN)


class _ReservationAmountData(_ReservationData):
    amount: Amount = Field(gt=0, le=ev.MAX_AMOUNT)


class _AdjustData(Wire):
    delta: JsonInt = Field(ge=-ev.MAX_AMOUNT, le=ev.MAX_AMOUNT, json_schema_extra={"not": {"const": 0}})
    reason: str = Field(min_length=1, max_length=MAX_REASON, json_schema_extra={"pattern": NO_NUL})


def to_command(request: CommandRequest) -> ev.Command:
    """The domain command of a request; ApiError 400 naming ``data.<field>`` when malformed."""
    try:
        if request.type == "purchase":
            return ev.Purchase(_AmountData.model_validate(request.data).amount)
        if request.type == "refund":
            return ev.Refund(_AmountData.model_validate(request.data).amount)
        if request.type == "reserve":
            d = _ReservationAmountData.model_validate(request.data)
            return ev.Reserve(d.reservation_id, d.amount)
        if request.type == "consume":
            d = _ReservationAmountData.model_validate(request.data)
            return ev.Consume(d.reservation_id, d.amount)
        if request.type == "release":
            return ev.Release(_ReservationData.model_validate(request.data).reservation_id)
        adjust = _AdjustData.model_validate(request.data)
        if adjust.delta == 0:
            raise bad_request(
                "data.delta must not be 0", [{"field": "data.delta", "message": "must not be 0"}]
            )
        return ev.Adjust(adjust.delta, adjust.reason)
    except ValidationError as error:
        details = [{**d, "field": f"data.{d['field']}"} for d in validation_details(error)]
        raise bad_request(f"data is invalid for a {request.type} command", details) from None


class ReplayRequest(Wire):
    """Which state of an account to rebuild from its events."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
        json_schema_extra={  # asOf or version, not both (400)
            "not": {
                "required": ["asOf", "version"],
                "properties": {"asOf": {"type": "string"}, "version": {"type": "integer"}},
            }
        },
    )

    aggregate_id: str = Field(pattern=ev.ID_PATTERN, description="The tenant's account.")
    as_of: dt.datetime | None = Field(
        default=None,
        description="The state as it was at this time (RFC 3339, 0001-01-02 to 9999-12-30 UTC).",
    )
    version: json_int(ge=0, le=MAX_VERSION) | None = Field(  # type: ignore[valid-type]
        default=None, description="The state at this version."
    )
    use_snapshots: StrictBool = Field(default=True, description="Start from the latest usable snapshot.")

    @field_validator("as_of", mode="before")
    @classmethod
    def _as_of_is_text(cls, value: Any) -> Any:
        if value is not None and not isinstance(value, str):
            raise ValueError("asOf must be an RFC 3339 date-time string")
        return value


# --- responses ---------------------------------------------------------------------------------


class EventOut(Wire):
    global_position: int
    aggregate_id: str
    version: int
    type: str
    data: dict[str, Any]
    recorded_at: dt.datetime

    @classmethod
    def of(cls, event: StoredEvent) -> EventOut:
        return cls(
            global_position=event.global_position,
            aggregate_id=event.aggregate_id,
            version=event.version,
            type=event.type,
            data=dict(event.data),
            recorded_at=event.recorded_at,
        )


class AccountOut(Wire):
    version: int
    balance: int
    reserved: int
    available: int
    consumed: int
    refunded: int
    reservations: dict[str, int] = Field(description="Open reservations: id -> credits still held.")

    @classmethod
    def of(cls, state: AccountState) -> AccountOut:
        return cls.model_validate(state.to_json())


class CommandResponse(Wire):
    aggregate_id: str
    version: int
    events: list[EventOut]
    state: AccountOut
    idempotent_replay: bool = Field(description="True when answered from an earlier request with this key.")


class BalanceResponse(Wire):
    tenant_id: str
    balance: int
    reserved: int
    available: int
    version: int
    last_position: int
    updated_at: dt.datetime


class HistoryResponse(Wire):
    tenant_id: str
    events: list[EventOut]
    next_after: int | None = Field(
        default=None, description="Pass as ?after= for the next page; absent on the last page."
    )


class ReplayResponse(Wire):
    aggregate_id: str
    state: AccountOut
    as_of: dt.datetime | None = Field(default=None, description="The asOf asked for, in UTC.")
    snapshot_version: int | None = Field(
        default=None, description="The snapshot the replay started from; absent when none."
    )
    events_replayed: int


# --- the service behind the routes -------------------------------------------------------------


class LedgerService:
    """The ledger database of the API process, connected on first use.

    Concurrent requests share one connection attempt (each waits at most ``connect_timeout``), so
    an unreachable database answers every waiting request within that time instead of one after
    another. ``statement_timeout`` bounds a request's time in the database (server side too).
    """

    def __init__(
        self,
        dsn: str | None,
        snapshot_interval: int,
        idempotency_ttl: dt.timedelta,
        *,
        connect_timeout: float = 5.0,
        statement_timeout: float = 10.0,
    ) -> None:
        self.dsn = dsn
        self.snapshot_interval = snapshot_interval
        self.idempotency_ttl = idempotency_ttl
        self.connect_timeout = connect_timeout
        self.statement_timeout = statement_timeout
        self.locks = KeyedLocks()
        self._store: EventStore | None = None
        self._connecting: asyncio.Task[EventStore] | None = None

    async def _connect(self) -> EventStore:
        assert self.dsn is not None
        pool = await open_pool(
            self.dsn,
            min_size=1,
            max_size=10,
            timeout=self.connect_timeout,
            command_timeout=self.statement_timeout,
            server_settings={"statement_timeout": str(int(self.statement_timeout * 1000))},
        )
        return EventStore(
            pool, snapshot_interval=self.snapshot_interval, idempotency_ttl=self.idempotency_ttl
        )

    async def store(self) -> EventStore:
        if self._store is not None:
            return self._store
        if self.dsn is None:
            raise unavailable("ledger_not_configured", "no ledger database: start the API with --dsn")
        if self._connecting is None or self._connecting.done():
            self._connecting = asyncio.ensure_future(self._connect())
        task = self._connecting
        done, _ = await asyncio.wait({task}, timeout=self.connect_timeout * 1.5)
        if task not in done:
            raise unavailable(
                "database_timeout",
                f"ledger database did not accept a connection within {self.connect_timeout:g}s",
            )
        try:
            self._store = self._store or task.result()
        except (*DB_ERRORS, ValueError) as error:
            raise unavailable(
                "database_unavailable", f"ledger database unreachable: {type(error).__name__}"
            ) from None
        return self._store

    async def close(self) -> None:
        if self._connecting is not None and not self._connecting.done():
            self._connecting.cancel()
        if self._store is not None:
            await self._store.pool.close()
            self._store = None


LEDGER: Final = web.AppKey("ledger", LedgerService)


async def _with_store(request: web.Request, action: Callable[[EventStore], Awaitable[Any]]) -> Any:
    """``action`` on the store, within the statement timeout; database errors as HTTP answers."""
    service = request.app[LEDGER]
    store = await service.store()

    async def run() -> Any:
        try:
            return await action(store)
        except ApiError:
            raise
        except Exception as error:
            if is_database_error(error):
                raise database_error(error, "ledger database") from None
            raise

    return await bounded(run, service.statement_timeout, "ledger database")


def _tenant(request: web.Request) -> str:
    tenant = request.match_info["tenant"]
    if not _ID.fullmatch(tenant):
        raise bad_request(
            f"tenant must match {ev.ID_PATTERN}", [{"field": "tenant", "message": "invalid tenant id"}]
        )
    return tenant


def _int_query(request: web.Request, name: str, default: int, low: int, high: int) -> int:
    raw = request.query.get(name)
    if raw is None:
        return default
    value = int(raw) if _INT.fullmatch(raw) else low - 1
    if not low <= value <= high:
        raise bad_request(
            f"query parameter {name} must be an integer from {low} to {high}",
            [{"field": name, "message": f"expected an integer from {low} to {high}, got {raw!r}"}],
        )
    return value


# --- handlers ----------------------------------------------------------------------------------


async def post_event(request: web.Request, body: CommandRequest) -> web.Response:
    key = request.headers.get(IDEMPOTENCY_HEADER)
    if key is not None and not _KEY.fullmatch(key):
        raise bad_request(
            f"{IDEMPOTENCY_HEADER} must be 1 to 255 visible ASCII characters",
            [{"field": IDEMPOTENCY_HEADER, "message": "invalid idempotency key"}],
        )
    command = to_command(body)

    async def run(store: EventStore) -> Any:
        async with request.app[LEDGER].locks.hold(body.aggregate_id):
            return await store.execute(
                body.aggregate_id,
                command,
                idempotency_key=key,
                expected_version=body.expected_version,
                policy=CONTENTION_RETRIES,
            )

    try:
        result = await _with_store(request, run)
    except InvalidCommand as error:
        raise bad_request(error.message) from None
    except DomainError as error:
        raise unprocessable(error.code, error.message) from None
    except ConcurrencyError as error:
        if body.expected_version is None:  # the caller did not ask: contention outlasted the retries
            raise unavailable("contention", f"account busy, try again: {error}") from None
        raise conflict("version_conflict", str(error)) from None
    except IdempotencyConflict as error:
        raise conflict("idempotency_conflict", str(error)) from None
    response = CommandResponse(
        aggregate_id=result.aggregate_id,
        version=result.state.version,
        events=[EventOut.of(e) for e in result.events],
        state=AccountOut.of(result.state),
        idempotent_replay=result.replayed,
    )
    headers = {REPLAYED_HEADER: "true"} if result.replayed else {}
    return web.Response(
        status=201,
        text=response.model_dump_json(by_alias=True),
        content_type="application/json",
        headers=headers,
    )


async def get_credits(request: web.Request, _: Any) -> BalanceResponse:
    tenant = _tenant(request)

    async def read(store: EventStore) -> Any:
        return await store.pool.fetchrow(
            "SELECT tenant_id, balance, reserved, available, version, last_position, updated_at "
            "FROM credit_balances_read_model WHERE tenant_id = $1",
            tenant,
        )

    row = await _with_store(request, read)
    if row is None:
        raise not_found(f"unknown tenant {tenant!r} (no projected events yet)")
    return BalanceResponse.model_validate(dict(row))


async def get_history(request: web.Request, _: Any) -> HistoryResponse:
    tenant = _tenant(request)
    after = _int_query(request, "after", 0, 0, MAX_VERSION)
    limit = _int_query(request, "limit", 100, 1, HISTORY_LIMIT)

    async def read(store: EventStore) -> tuple[list[StoredEvent], int]:
        return await store.history(tenant, after, limit), await store.stream_version(tenant)

    events, version = await _with_store(request, read)
    if version == 0:
        raise not_found(f"unknown tenant {tenant!r}")
    last = events[-1].version if events else None
    return HistoryResponse(
        tenant_id=tenant,
        events=[EventOut.of(e) for e in events],
        next_after=last if last is not None and last < version else None,
    )


def _as_of(value: dt.datetime | None) -> dt.datetime | None:
    """``asOf`` in UTC; 422 naming it when outside the range the database can compare."""
    if value is None:
        return None
    as_of = value if value.tzinfo is not None else value.replace(tzinfo=dt.UTC)
    try:
        in_range = MIN_AS_OF <= as_of <= MAX_AS_OF
        as_of = as_of.astimezone(dt.UTC)
    except (OverflowError, ValueError):
        in_range = False
    if not in_range:
        raise ApiError(
            422,
            "out_of_range",
            f"asOf must be from {MIN_AS_OF.isoformat()} to {MAX_AS_OF.isoformat()}",
            [{"field": "asOf", "message": "outside the supported time range"}],
        )
    return as_of


async def replay(request: web.Request, body: ReplayRequest) -> ReplayResponse:
    if body.as_of is not None and body.version is not None:
        raise bad_request(
            "give asOf or version, not both", [{"field": "asOf", "message": "conflicts with version"}]
        )
    as_of = _as_of(body.as_of)

    async def run(store: EventStore) -> Any:
        if await store.stream_version(body.aggregate_id) == 0:
            raise not_found(f"unknown tenant {body.aggregate_id!r}")
        return await store.load(
            body.aggregate_id, version=body.version, as_of=as_of, use_snapshots=body.use_snapshots
        )

    loaded = await _with_store(request, run)
    return ReplayResponse(
        aggregate_id=body.aggregate_id,
        state=AccountOut.of(loaded.state),
        as_of=as_of,
        snapshot_version=loaded.snapshot_version,
        events_replayed=loaded.events_replayed,
    )


TENANT_SCHEMA: Final = {"type": "string", "pattern": ev.ID_PATTERN}
ROUTES: list[Route] = [
    Route(
        "POST",
        "/api/v1/events",
        Scope.WRITE,
        post_event,
        "Record a command on a tenant's credit account",
        TAG,
        body=CommandRequest,
        response=CommandResponse,
        status=201,
        errors=(404, 409, 422, 503),
        headers={IDEMPOTENCY_HEADER: "Repeat a request safely: same key and body returns the first result."},
        schemas={IDEMPOTENCY_HEADER: {"type": "string", "pattern": _KEY.pattern}},
    ),
    Route(
        "GET",
        "/api/v1/credits/{tenant}",
        Scope.READ,
        get_credits,
        "A tenant's balance from the read model",
        TAG,
        response=BalanceResponse,
        errors=(400, 404, 503),
        schemas={"tenant": TENANT_SCHEMA},
    ),
    Route(
        "GET",
        "/api/v1/credits/{tenant}/history",
        Scope.READ,
        get_history,
        "A tenant's events, oldest first",
        TAG,
        response=HistoryResponse,
        errors=(400, 404, 503),
        query={"after": "Only events after this version (default 0).", "limit": "Page size, 1 to 1000."},
        schemas={
            "tenant": TENANT_SCHEMA,
            "after": {"type": "integer", "minimum": 0, "maximum": MAX_VERSION},
            "limit": {"type": "integer", "minimum": 1, "maximum": HISTORY_LIMIT},
        },
    ),
    Route(
        "POST",
        "/api/v1/events/replay",
        Scope.ADMIN,
        replay,
        "Rebuild one account's state from its events, optionally as of a time or version",
        TAG,
        body=ReplayRequest,
        response=ReplayResponse,
        errors=(404, 503),
    ),
]


def _settings() -> tuple[int, dt.timedelta]:
    interval = int(os.environ.get(SNAPSHOT_INTERVAL_ENV) or DEFAULT_SNAPSHOT_INTERVAL)
    ttl = os.environ.get(IDEMPOTENCY_TTL_ENV)
    return interval, parse_duration(ttl) if ttl else MIN_IDEMPOTENCY_TTL


async def setup(app: web.Application, config: ApiConfig) -> None:
    """Attach the ledger service (connected lazily) and close its pool on cleanup."""
    interval, ttl = _settings()
    service = LedgerService(
        config.database_dsn,
        interval,
        ttl,
        connect_timeout=config.connect_timeout,
        statement_timeout=config.statement_timeout,
    )
    app[LEDGER] = service

    async def close(_: web.Application) -> None:
        await service.close()

    app.on_cleanup.append(close)


__all__ = ["LEDGER", "ROUTES", "LedgerService", "setup"]
