"""The sharding HTTP API: keyed JSON values and typed cross-shard transactions of one ShardCluster.

The API process serves one ShardCluster, configured by a YAML/JSON file named by ``ApiConfig.shard_config``
or ``$FORTRESS_SHARD_CONFIG`` (mount it from a Secret, since it holds DSNs)::

    ring:
      file: /etc/fortress/ring/ring.json   # the ConfigMap <name>-ring mounted as a volume
      refreshSeconds: 2                    # re-read when the file changes (a rebalance publishes both rings)
    shards:                                # every shard id of the ring(s), with its DSN
      shard-a: {dsn: "postgresql://...", replicas: ["postgresql://..."]}
      shard-b: {dsnFile: /etc/fortress/shards/shard-b}   # or a file holding the DSN
    queryTimeout: 5s
    lockTimeout: 2s
    transactionTimeout: 10s
    circuitBreaker: {failureThreshold: 5, openDuration: 30s}
    coordinator: shard-a                   # optional; default: the first shard id

Status codes: 200 OK; 400 malformed key, value or body; 401/403 from the HTTP core; 404 unknown key (or
a transfer naming one); 409 ``ifVersion`` mismatch, lock conflict or a transaction aborted (retry);
422 business rule (insufficient funds, not a balance); 503 shard unavailable, circuit open, prepared
transactions disabled on a shard, outcome in doubt, or sharding not configured. Scopes: read for GET,
write for PUT, DELETE and transactions. Keys travel percent-encoded in the path (a ``/`` as ``%2F``).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Final, Literal

import yaml
from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, StrictInt, StringConstraints
from pydantic.alias_generators import to_camel

from fortress.api.common import DNS_LABEL_PATTERN, DURATION_PATTERN, parse_duration
from fortress.http.auth import Scope
from fortress.http.errors import ApiError, bad_request
from fortress.http.routing import Route
from fortress.http.server import ApiConfig
from fortress.sharding.breaker import BreakerConfig
from fortress.sharding.errors import (
    InsufficientFunds,
    InvalidKey,
    InvalidValue,
    KeyNotFound,
    NotABalance,
    PreparedTransactionsDisabled,
    ShardingError,
    ShardUnavailable,
    TransactionAborted,
    TransactionConflict,
    VersionConflict,
)
from fortress.sharding.operations import MultiSet, Operation, Transfer
from fortress.sharding.ring import RingError, RoutingState
from fortress.sharding.router import Record, Router, RouterConfig, ShardEndpoint
from fortress.sharding.twophase import Coordinator, TransactionInDoubt

TAG: Final = "sharding"
CONFIG_ENV: Final = "FORTRESS_SHARD_CONFIG"
log = logging.getLogger("fortress.sharding.api")


class Wire(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")


# ----------------------------------------------------------------------------- configuration


class ShardConnection(Wire):
    dsn: str | None = Field(default=None, description="libpq URI of the shard's primary.")
    dsn_file: str | None = Field(default=None, description="File holding the DSN (a mounted Secret key).")
    replicas: list[str] = Field(default_factory=list, description="DSNs of read replicas.")


class RingSource(Wire):
    file: str = Field(description="The ring document (ConfigMap <name>-ring, key ring.json) as a file.")
    refresh_seconds: float = Field(default=2.0, gt=0, le=3600, description="How often the file is checked.")


class CircuitBreakerConfig(Wire):
    failure_threshold: int = Field(default=5, ge=1, le=1000)
    open_duration: str = Field(default="30s", pattern=DURATION_PATTERN)


class ShardApiConfig(Wire):
    """The API process's view of one ShardCluster."""

    ring: RingSource
    shards: dict[Annotated[str, StringConstraints(pattern=DNS_LABEL_PATTERN)], ShardConnection] = Field(
        min_length=1, description="Shard id (a DNS label, as in spec.shards) -> connection."
    )
    query_timeout: str = Field(default="5s", pattern=DURATION_PATTERN)
    lock_timeout: str = Field(default="2s", pattern=DURATION_PATTERN)
    transaction_timeout: str = Field(default="10s", pattern=DURATION_PATTERN)
    circuit_breaker: CircuitBreakerConfig = Field(default_factory=CircuitBreakerConfig)
    coordinator: str | None = None


def load_config(path: Path) -> tuple[ShardApiConfig, list[ShardEndpoint]]:
    """Parse the config file and resolve DSNs (blocking file reads: call through ``asyncio.to_thread``)."""
    text = path.read_text()
    document = json.loads(text) if text.lstrip().startswith("{") else yaml.safe_load(text)
    config = ShardApiConfig.model_validate(document)
    endpoints = []
    for shard_id, connection in sorted(config.shards.items()):
        dsn = connection.dsn
        if dsn is None and connection.dsn_file:
            dsn = Path(connection.dsn_file).read_text().strip()
        if not dsn:
            raise ValueError(f"shards.{shard_id}: give dsn or dsnFile")
        endpoints.append(ShardEndpoint(shard_id, dsn, tuple(connection.replicas)))
    if config.coordinator is not None and config.coordinator not in config.shards:
        raise ValueError(f"coordinator {config.coordinator!r} is not one of the configured shards")
    return config, endpoints


def read_ring(path: Path) -> tuple[float, RoutingState]:
    """The ring file's mtime and routing state (blocking)."""
    mtime = path.stat().st_mtime
    return mtime, RoutingState.from_document(json.loads(path.read_text()))


@dataclass
class ShardService:
    """What the routes use: a router and a coordinator over the configured cluster (None: not configured)."""

    router: Router | None = None
    coordinator: Coordinator | None = None
    ring_file: Path | None = None
    refresh_seconds: float = 2.0
    ring_mtime: float = 0.0
    problem: str = "sharding is not configured: set FORTRESS_SHARD_CONFIG (see fortress.sharding.api)"
    tasks: list[asyncio.Task[None]] = field(default_factory=list)

    def require(self) -> tuple[Router, Coordinator]:
        if self.router is None or self.coordinator is None:
            raise ApiError(503, "sharding_not_configured", self.problem)
        return self.router, self.coordinator

    async def refresh(self) -> None:
        """Pick up a new ring document (the operator rewrites it when a rebalance starts or ends)."""
        if self.ring_file is None or self.router is None:
            return
        try:
            mtime = (await asyncio.to_thread(self.ring_file.stat)).st_mtime
            if mtime == self.ring_mtime:
                return
            self.ring_mtime, routing = await asyncio.to_thread(read_ring, self.ring_file)
        except (OSError, ValueError, RingError) as error:
            log.warning("ring file %s unreadable, keeping the current ring: %s", self.ring_file, error)
            return
        self.router.update(routing=routing)
        log.info("ring updated: %s", routing.to_document()["phase"])

    async def watch(self) -> None:
        while True:
            await asyncio.sleep(self.refresh_seconds)
            await self.refresh()


SERVICE: Final = web.AppKey("sharding", ShardService)


async def build_service(path: Path) -> ShardService:
    config, endpoints = await asyncio.to_thread(load_config, path)
    ring_file = Path(config.ring.file)
    mtime, routing = await asyncio.to_thread(read_ring, ring_file)
    missing = sorted(set(routing.shard_ids()) - {e.id for e in endpoints})
    if missing:
        raise ValueError(f"the ring names shard(s) {', '.join(missing)} that the config has no DSN for")
    router = Router(
        endpoints,
        routing,
        RouterConfig(
            query_timeout=parse_duration(config.query_timeout).total_seconds(),
            lock_timeout=parse_duration(config.lock_timeout).total_seconds(),
            breaker=BreakerConfig(
                failure_threshold=config.circuit_breaker.failure_threshold,
                open_duration=parse_duration(config.circuit_breaker.open_duration).total_seconds(),
            ),
        ),
    )
    coordinator = Coordinator(
        router,
        routing.cluster,
        coordinator_shard=config.coordinator,
        timeout=parse_duration(config.transaction_timeout).total_seconds(),
    )
    return ShardService(router, coordinator, ring_file, config.ring.refresh_seconds, mtime)


async def setup(app: web.Application, config: ApiConfig) -> None:
    path = config.shard_config or (Path(p) if (p := os.environ.get(CONFIG_ENV)) else None)
    if path is None:
        app[SERVICE] = ShardService()
        return
    service = await build_service(path)  # a broken configuration stops the API at start-up
    app[SERVICE] = service
    service.tasks.append(asyncio.create_task(service.watch()))

    async def cleanup(_: web.Application) -> None:
        for task in service.tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if service.router is not None:
            await service.router.close()

    app.on_cleanup.append(cleanup)


# ----------------------------------------------------------------------------- wire models


class SetValue(Wire):
    """The value to store under a key."""

    value: Any = Field(description="Any JSON value.")
    if_version: StrictInt | None = Field(
        default=None, ge=0, description="Only write when the key is at this version (0: only when absent)."
    )


class KeyRecord(Wire):
    key: str = Field(description="The key.")
    value: Any = Field(description="Its JSON value.")
    version: int = Field(description="Goes up by one on every write.")
    shard: str = Field(description="The shard it was read from or written to.")
    updated_at: dt.datetime = Field(description="Time of the last write.")


class Deleted(Wire):
    key: str
    deleted: bool = True


class TransferOperation(Wire):
    """Move ``amount`` from the integer ``balance`` of one key's JSON object to another's."""

    type: Literal["transfer"]
    source: str = Field(alias="from", min_length=1, max_length=512, description="Key debited.")
    target: str = Field(alias="to", min_length=1, max_length=512, description="Key credited.")
    amount: StrictInt = Field(gt=0, le=2**53, description="A positive integer.")


class SetOperation(Wire):
    """Set several keys at once."""

    type: Literal["set"]
    values: dict[str, Any] = Field(min_length=1, max_length=100, description="Key -> JSON value.")


class TransactionRequest(Wire):
    """Typed operations committed together (two-phase commit when they span shards)."""

    operations: list[Annotated[TransferOperation | SetOperation, Field(discriminator="type")]] = Field(
        min_length=1, max_length=100, description="Applied in order; all or none take effect."
    )


class TransactionResult(Wire):
    txid: str = Field(description="Transaction id (the gid's txid part).")
    participants: list[str] = Field(description="Shards written.")
    two_phase: bool = Field(description="Whether PREPARE TRANSACTION / COMMIT PREPARED was used.")
    records: dict[str, KeyRecord] = Field(description="The new value of every written key.")
    pending_commits: list[str] = Field(
        default_factory=list,
        description="Participants whose COMMIT PREPARED recovery finishes (decided: commit).",
    )


# ----------------------------------------------------------------------------- handlers


def _record(record: Record) -> KeyRecord:
    return KeyRecord(
        key=record.key,
        value=record.value,
        version=record.version,
        shard=record.shard,
        updated_at=record.updated_at,
    )


def _error(error: ShardingError) -> ApiError:
    if isinstance(error, InvalidKey | InvalidValue):
        return bad_request(str(error))
    if isinstance(error, KeyNotFound):
        return ApiError(404, "not_found", str(error))
    if isinstance(error, VersionConflict | TransactionConflict | TransactionAborted):
        return ApiError(409, error.code, str(error))
    if isinstance(error, InsufficientFunds | NotABalance):
        return ApiError(422, error.code, str(error))
    if isinstance(error, ShardUnavailable | PreparedTransactionsDisabled | TransactionInDoubt):
        return ApiError(503, error.code, str(error))
    return ApiError(503, error.code, str(error))


def _key(request: web.Request) -> str:
    return request.match_info["key"]


def _flag(request: web.Request, name: str) -> bool:
    raw = request.query.get(name, "false").lower()
    if raw not in ("true", "false", "1", "0"):
        raise bad_request(f"query parameter {name} must be true or false", [{"field": name, "message": raw}])
    return raw in ("true", "1")


async def get_key(request: web.Request, _: Any) -> KeyRecord:
    router, _coordinator = request.app[SERVICE].require()
    stale = _flag(request, "stale")
    try:
        return _record(await router.get(_key(request), allow_stale=stale))
    except ShardingError as error:
        raise _error(error) from None


async def put_key(request: web.Request, body: SetValue) -> KeyRecord:
    router, _coordinator = request.app[SERVICE].require()
    try:
        return _record(await router.set(_key(request), body.value, expected_version=body.if_version))
    except ShardingError as error:
        raise _error(error) from None


async def delete_key(request: web.Request, _: Any) -> Deleted:
    router, _coordinator = request.app[SERVICE].require()
    try:
        await router.delete(_key(request))
    except ShardingError as error:
        raise _error(error) from None
    return Deleted(key=_key(request))


def operations_of(body: TransactionRequest) -> list[Operation]:
    found: list[Operation] = []
    for op in body.operations:
        if isinstance(op, TransferOperation):
            found.append(Transfer(op.source, op.target, op.amount))
        else:
            found.append(MultiSet(dict(op.values)))
    return found


async def post_transaction(request: web.Request, body: TransactionRequest) -> TransactionResult:
    _router, coordinator = request.app[SERVICE].require()
    try:
        result = await coordinator.execute(operations_of(body))
    except ShardingError as error:
        raise _error(error) from None
    return TransactionResult(
        txid=result.txid,
        participants=list(result.participants),
        two_phase=result.two_phase,
        records={k: _record(r) for k, r in result.records.items()},
        pending_commits=list(result.pending_commits),
    )


KEY_PATH: Final = "/api/v1/shard/key/{key}"
ROUTES: list[Route] = [
    Route(
        "GET",
        KEY_PATH,
        Scope.READ,
        get_key,
        "Read a key's JSON value (from a read replica with ?stale=true)",
        TAG,
        response=KeyRecord,
        errors=(400, 404, 503),
        query={"stale": "true: a read replica may answer (possibly behind the primary)"},
    ),
    Route(
        "PUT",
        KEY_PATH,
        Scope.WRITE,
        put_key,
        "Store a JSON value under a key (optionally only at a given version)",
        TAG,
        body=SetValue,
        response=KeyRecord,
        errors=(409, 503),
    ),
    Route(
        "DELETE",
        KEY_PATH,
        Scope.WRITE,
        delete_key,
        "Delete a key",
        TAG,
        response=Deleted,
        errors=(400, 404, 503),
    ),
    Route(
        "POST",
        "/api/v1/shard/transaction",
        Scope.WRITE,
        post_transaction,
        "Apply typed operations (transfer, set) atomically across shards",
        TAG,
        body=TransactionRequest,
        response=TransactionResult,
        errors=(404, 409, 422, 503),
    ),
]
