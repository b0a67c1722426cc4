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
415 body not JSON; 422 business rule (insufficient funds, not a balance), a NUL character or ``ifVersion``
above the bigint range; 503 shard unavailable, circuit open, prepared
transactions disabled on a shard, outcome in doubt, or sharding not configured. Scopes: read for GET,
write for PUT, DELETE and transactions. Keys travel percent-encoded in the path (a ``/`` as ``%2F``).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import os
from pathlib import Path
from typing import Annotated, Any, Final, Literal

from aiohttp import web
from pydantic import Field
from pydantic.config import JsonDict

from fortress.http.auth import Scope
from fortress.http.errors import ApiError, bad_request
from fortress.http.inputs import JsonInt, json_int
from fortress.http.routing import Route
from fortress.http.server import ApiConfig
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
from fortress.sharding.router import Record
from fortress.sharding.service import ShardService, Wire, build_service
from fortress.sharding.twophase import TransactionInDoubt

TAG: Final = "sharding"
CONFIG_ENV: Final = "FORTRESS_SHARD_CONFIG"
log = logging.getLogger("fortress.sharding.api")


SERVICE: Final = web.AppKey("sharding", ShardService)
MAX_VERSION: Final = 2**63 - 1  # versions are PostgreSQL bigint
# A key (see router.validate_key): 1 to 512 UTF-8 bytes, no control characters
KEY_SCHEMA: Final[JsonDict] = {
    "type": "string",
    "minLength": 1,
    "maxLength": 512,
    "pattern": r"^[^\u0000-\u001f\u007f]+$",
    "description": "At most 512 UTF-8 bytes, no control characters.",
}
_KEY_FIELD: Final[JsonDict] = {k: v for k, v in KEY_SCHEMA.items() if k == "pattern"}


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
    if_version: json_int(ge=0) | None = Field(  # type: ignore[valid-type]
        default=None,
        description="Only write when the key is at this version (0: only when absent); at most 2^63-1.",
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
    source: str = Field(
        alias="from", min_length=1, max_length=512, description="Key debited.", json_schema_extra=_KEY_FIELD
    )
    target: str = Field(
        alias="to", min_length=1, max_length=512, description="Key credited.", json_schema_extra=_KEY_FIELD
    )
    amount: JsonInt = Field(gt=0, le=2**53, description="A positive integer.")


class SetOperation(Wire):
    """Set several keys at once."""

    type: Literal["set"]
    values: dict[str, Any] = Field(
        min_length=1,
        max_length=100,
        description="Key -> JSON value.",
        json_schema_extra={"propertyNames": KEY_SCHEMA},
    )


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


def _json(model: Wire) -> web.Response:
    """``model`` as JSON keeping null values (a key may hold JSON null; the HTTP core drops nulls)."""
    return web.Response(text=model.model_dump_json(by_alias=True), content_type="application/json")


def _key(request: web.Request) -> str:
    return request.match_info["key"]


def _flag(request: web.Request, name: str) -> bool:
    raw = request.query.get(name, "false").lower()
    if raw not in ("true", "false", "1", "0"):
        raise bad_request(f"query parameter {name} must be true or false", [{"field": name, "message": raw}])
    return raw in ("true", "1")


async def get_key(request: web.Request, _: Any) -> web.Response:
    router, _coordinator = request.app[SERVICE].require()
    stale = _flag(request, "stale")
    try:
        return _json(_record(await router.get(_key(request), allow_stale=stale)))
    except ShardingError as error:
        raise _error(error) from None


async def put_key(request: web.Request, body: SetValue) -> web.Response:
    router, _coordinator = request.app[SERVICE].require()
    if body.if_version is not None and body.if_version > MAX_VERSION:
        raise ApiError(
            422,
            "out_of_range",
            f"ifVersion must be at most {MAX_VERSION}",
            [{"field": "ifVersion", "message": f"above the largest version {MAX_VERSION}"}],
        )
    try:
        record = await router.set(_key(request), body.value, expected_version=body.if_version)
        return _json(_record(record))
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


async def post_transaction(request: web.Request, body: TransactionRequest) -> web.Response:
    _router, coordinator = request.app[SERVICE].require()
    for index, op in enumerate(body.operations):
        if isinstance(op, TransferOperation) and op.source == op.target:
            raise ApiError(
                422,
                "same_key",
                f"operations[{index}]: transfer from a key to itself",
                [{"field": f"operations.{index}.to", "message": "must differ from from"}],
            )
    try:
        result = await coordinator.execute(operations_of(body))
    except ShardingError as error:
        raise _error(error) from None
    return _json(
        TransactionResult(
            txid=result.txid,
            participants=list(result.participants),
            two_phase=result.two_phase,
            records={k: _record(r) for k, r in result.records.items()},
            pending_commits=list(result.pending_commits),
        )
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
        schemas={"key": KEY_SCHEMA, "stale": {"type": "string", "enum": ["true", "false", "1", "0"]}},
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
        errors=(409, 422, 503),
        schemas={"key": KEY_SCHEMA},
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
        schemas={"key": KEY_SCHEMA},
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
