"""The router: keyed JSON values over the shards of a ring, with a circuit breaker per shard.

One asyncpg pool per shard DSN (``fortress.adapters.postgres.PoolRegistry``); every statement has the
query timeout; a shard that fails ``failureThreshold`` times in a row has its circuit opened and calls
for its keys fail fast with ``CircuitOpen`` until a half-open probe succeeds. Reads may go to a shard's
read replicas when the caller allows staleness (falling back to the primary when a replica fails).

While a rebalance moves keys (``RoutingState.previous`` is set) a key whose owner changes may be on its
source shard S or on its new owner T. The executor (``rebalance``) locks a batch's rows on S
(``FOR UPDATE SKIP LOCKED``), copies them to T, verifies, and deletes them from S: ownership of a key
switches when that delete commits. So, for a moving key:

* get: read S; if the key is not there, read T (T got its copy before S lost it);
* set: lock the row on S (``SELECT ... FOR UPDATE``, waiting for a batch holding it); when present, S still
  owns the key and the write goes to S in the same transaction; when absent, the key has moved (or is new)
  and the write goes to T. No router ever creates a moving key on S, so "absent on S" stays true;
* delete: lock on S, delete on T (also removing any copy a crashed batch left there), delete on S.

Connections to several shards are always acquired in shard-id order, so pools cannot deadlock.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import itertools
import json
import time
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import asyncpg

from fortress.adapters.postgres import PoolRegistry
from fortress.core.errors import Secret, database, scrub
from fortress.metrics import sharding as metrics
from fortress.sharding import store
from fortress.sharding.breaker import BreakerConfig, CircuitBreaker, State
from fortress.sharding.errors import (
    CircuitOpen,
    InvalidKey,
    InvalidValue,
    KeyNotFound,
    ShardingError,
    ShardTimeout,
    ShardUnavailable,
    TransactionConflict,
    VersionConflict,
)
from fortress.sharding.ring import Location, RoutingState

MAX_KEY_BYTES = 512
MAX_VALUE_BYTES = 1024 * 1024
_CIRCUIT_GAUGE = {State.CLOSED: 0, State.HALF_OPEN: 1, State.OPEN: 2}


@dataclass(frozen=True)
class ShardEndpoint:
    """Where one shard lives: its primary's DSN and its read replicas' DSNs.

    ``labels`` name those DSNs in messages instead of showing them (the primary's, then each replica's),
    e.g. ``<Secret ns/name key k>`` as :meth:`fortress.core.errors.Secret.of` writes it.
    """

    id: str
    dsn: str
    replicas: tuple[str, ...] = ()
    labels: tuple[str, ...] = ()

    def secret(self, replica: int | None = None) -> Secret | None:
        """The primary's (or a replica's) DSN as a :class:`Secret` to name it by, when it has a label."""
        index = 0 if replica is None else replica + 1
        if index >= len(self.labels) or not self.labels[index]:
            return None
        return Secret(self.dsn if replica is None else self.replicas[replica], self.labels[index])

    def secrets(self) -> list[Secret]:
        """Every DSN of the shard that has a label."""
        found = [self.secret(None), *(self.secret(i) for i in range(len(self.replicas)))]
        return [s for s in found if s is not None]

    def hide(self, text: str, replica: int | None = None) -> str:
        """``text`` with the DSN named by its label (its Secret), never shown."""
        dsn = self.dsn if replica is None else self.replicas[replica]
        return scrub(text, [self.secret(replica) or Secret(dsn, "<the DSN>")])

    def where(self, replica: int | None = None) -> str:
        """The DSN for messages: its label and where it points, without credentials."""
        return database(self.dsn if replica is None else self.replicas[replica], self.secret(replica))


@dataclass(frozen=True)
class RouterConfig:
    query_timeout: float = 5.0  # seconds, per statement (and per pool acquire / connect)
    lock_timeout: float = 2.0  # seconds a row lock is waited for before TransactionConflict
    breaker: BreakerConfig = field(default_factory=BreakerConfig)
    pool_max_size: int = 10


@dataclass(frozen=True)
class Record:
    """A stored value and where it was found."""

    key: str
    value: Any
    version: int
    shard: str
    updated_at: dt.datetime

    @classmethod
    def of(cls, key: str, stored: store.Stored, shard: str) -> Record:
        return cls(key, json.loads(stored.value), stored.version, shard, stored.updated_at)


def validate_key(key: Any) -> str:
    """A key is a non-empty string of at most 512 UTF-8 bytes without NUL or other control characters."""
    if not isinstance(key, str) or not key:
        raise InvalidKey("key must be a non-empty string")
    if len(key.encode()) > MAX_KEY_BYTES:
        raise InvalidKey(f"key is longer than {MAX_KEY_BYTES} bytes")
    if any(ord(c) < 32 or ord(c) == 127 for c in key):
        raise InvalidKey("key must not contain control characters")
    return key


def encode_value(value: Any) -> str:
    try:
        text = json.dumps(value, separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError) as error:
        raise InvalidValue(f"value is not JSON-serialisable: {error}") from None
    if "\\u0000" in text:
        raise InvalidValue("value must not contain NUL characters (PostgreSQL jsonb cannot store them)")
    if len(text) > MAX_VALUE_BYTES:
        raise InvalidValue(f"value is larger than {MAX_VALUE_BYTES} bytes of JSON")
    return text


def unavailability(error: BaseException) -> str | None:
    """Why ``error`` means the shard itself failed (None: the request failed, the shard answered)."""
    if isinstance(error, TimeoutError | asyncpg.QueryCanceledError):
        return "timeout"
    if isinstance(error, OSError):
        return f"connection failed: {error.strerror or error}"
    if isinstance(error, asyncpg.PostgresConnectionError | asyncpg.OperatorInterventionError):
        return f"connection lost: {type(error).__name__}: {error}"
    if isinstance(error, asyncpg.InsufficientResourcesError):
        return f"server out of resources: {error}"
    if isinstance(error, asyncpg.UndefinedTableError):
        return f"schema missing ({error}); run `fortress migrate up` against the shard"
    if isinstance(error, asyncpg.InterfaceError) and "closed" in str(error):
        return f"connection closed: {error}"
    if isinstance(error, asyncpg.InvalidCatalogNameError | asyncpg.InvalidAuthorizationSpecificationError):
        return f"cannot log in: {error}"
    return None


class Router:
    """Get, set and delete keyed JSON values over the shards of a routing state."""

    def __init__(
        self,
        endpoints: Iterable[ShardEndpoint],
        routing: RoutingState,
        config: RouterConfig | None = None,
        *,
        pools: PoolRegistry | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.config = config or RouterConfig()
        self._owns_pools = pools is None
        self.pools = pools or PoolRegistry(
            min_size=1, max_size=self.config.pool_max_size, command_timeout=self.config.query_timeout
        )
        self._clock = clock
        self._breakers: dict[str, CircuitBreaker] = {}
        self._replica_turn: dict[str, Iterator[int]] = {}
        self._endpoints: dict[str, ShardEndpoint] = {e.id: e for e in endpoints}
        self._pools: dict[str, Any] = {}  # DSN -> pool, once the registry created it
        self._metric_children: dict[tuple[str, str], tuple[Any, Any]] = {}
        self._releasing: set[asyncio.Task[None]] = set()
        self._routing = routing

    # ----------------------------------------------------------------- configuration

    @property
    def routing(self) -> RoutingState:
        return self._routing

    @property
    def endpoints(self) -> Mapping[str, ShardEndpoint]:
        return self._endpoints

    def update(
        self,
        routing: RoutingState | None = None,
        endpoints: Iterable[ShardEndpoint] | None = None,
        config: RouterConfig | None = None,
    ) -> None:
        """Switch to a new routing state, endpoint set or configuration (breakers are kept).

        The pools of DSNs no endpoint names any more (a Secret changed, a shard removed) are closed."""
        if endpoints is not None:
            self._endpoints = {e.id: e for e in endpoints}
            self._close_unused()
        if routing is not None:
            self._routing = routing
        if config is not None:
            self.config = config
            for breaker in self._breakers.values():
                breaker.reconfigure(config.breaker)

    def breaker(self, name: str) -> CircuitBreaker:
        found = self._breakers.get(name)
        if found is None:
            found = self._breakers[name] = CircuitBreaker(self.config.breaker, self._clock)
        return found

    def circuit_state(self, shard_id: str) -> State:
        return self.breaker(shard_id).current

    def same_database(self, a: str, b: str) -> bool:
        """Whether two shards are configured with the same DSN (then a key never has to move)."""
        ea, eb = self._endpoints.get(a), self._endpoints.get(b)
        return ea is not None and eb is not None and ea.dsn == eb.dsn

    def locate(self, key: str) -> Location:
        location = self._routing.locate(key)
        if location.source is not None and self.same_database(location.source, location.owner):
            return Location(location.owner)
        return location

    # ----------------------------------------------------------------- connections

    def _endpoint(self, shard_id: str) -> ShardEndpoint:
        endpoint = self._endpoints.get(shard_id)
        if endpoint is None:
            raise ShardUnavailable(shard_id, "no connection is configured for it")
        return endpoint

    @contextlib.asynccontextmanager
    async def connection(self, shard_id: str, op: str, *, replica: int | None = None) -> AsyncIterator[Any]:
        """A pooled connection to a shard (or one of its replicas), guarded by its circuit breaker.

        Errors meaning the shard failed (connection, timeout, resources) count against its breaker and
        come out as ``ShardUnavailable``/``ShardTimeout``; anything else counts as a success.
        """
        endpoint = self._endpoint(shard_id)
        dsn = endpoint.dsn if replica is None else endpoint.replicas[replica]
        name = shard_id if replica is None else f"{shard_id}@replica{replica}"
        breaker = self.breaker(name)
        if breaker.state.state is not State.CLOSED:  # fast path: a closed circuit lets every call through
            decision = breaker.before_call()
            self._gauge(shard_id, name, breaker)
            if not decision.allowed:
                metrics.QUERY_ERRORS.labels(shard_id, op, "circuit").inc()
                raise CircuitOpen(name, decision.retry_after)
        counter, latency = self._metrics(shard_id, op)
        counter.inc()
        started = time.perf_counter()
        timeout = self.config.query_timeout
        try:
            try:
                pool = self._pools.get(dsn)
                if pool is None:
                    pool = self._pools[dsn] = await asyncio.wait_for(self.pools.get(dsn), timeout)
                conn = await pool.acquire(timeout=timeout)
            except Exception as error:
                why = unavailability(error) or f"{type(error).__name__}: {error}"
                raise _Unavailable(why) from error
            try:
                yield conn
            finally:
                self._release(pool, conn, timeout)
        except _Unavailable as error:
            self._fail(breaker, shard_id, name, op)
            why = f"{endpoint.hide(str(error), replica)} ({endpoint.where(replica)})"
            raise ShardUnavailable(name, why) from error.__cause__
        except ShardingError:
            self._succeed(breaker, shard_id, name)
            raise
        except Exception as error:
            reason = unavailability(error)
            if reason is None:
                self._succeed(breaker, shard_id, name)
                if isinstance(error, asyncpg.LockNotAvailableError | asyncpg.DeadlockDetectedError):
                    raise TransactionConflict(
                        f"key locked by a concurrent transaction or move on shard {name}; retry"
                    ) from error
                raise
            self._fail(breaker, shard_id, name, op)
            kind = ShardTimeout if reason == "timeout" else ShardUnavailable
            detail = f"no answer within {timeout}s" if reason == "timeout" else endpoint.hide(reason, replica)
            raise kind(name, detail) from error
        else:
            self._succeed(breaker, shard_id, name)
        finally:
            latency.observe(time.perf_counter() - started)

    def _close_unused(self) -> None:
        """Close (in the background, awaited by ``close``) the pools of DSNs no endpoint names now."""
        wanted = {dsn for e in self._endpoints.values() for dsn in (e.dsn, *e.replicas)}
        unused = [dsn for dsn in self._pools if dsn not in wanted]
        for dsn in unused:
            del self._pools[dsn]
        if not unused or not self._owns_pools:
            return

        async def close() -> None:
            for dsn in unused:
                with contextlib.suppress(Exception):
                    await self.pools.discard(dsn)

        try:
            task = asyncio.get_running_loop().create_task(close())
        except RuntimeError:  # no event loop: no pool of this router can be open either
            return
        self._releasing.add(task)
        task.add_done_callback(self._releasing.discard)

    def _release(self, pool: Any, conn: Any, timeout: float) -> None:
        """Give the connection back without waiting for its reset round trip (awaited by ``close``)."""

        async def release() -> None:
            with contextlib.suppress(Exception):
                await pool.release(conn, timeout=timeout)

        task = asyncio.get_running_loop().create_task(release())
        self._releasing.add(task)
        task.add_done_callback(self._releasing.discard)

    def _metrics(self, shard_id: str, op: str) -> tuple[Any, Any]:
        """The counter and histogram children of (shard, op), cached: ``labels()`` costs a lock and a hash."""
        found = self._metric_children.get((shard_id, op))
        if found is None:
            found = (metrics.QUERIES.labels(shard_id, op), metrics.QUERY_SECONDS.labels(shard_id, op))
            self._metric_children[(shard_id, op)] = found
        return found

    def _succeed(self, breaker: CircuitBreaker, shard_id: str, name: str) -> None:
        if breaker.state.state is not State.CLOSED or breaker.state.failures:
            breaker.success()
            self._gauge(shard_id, name, breaker)

    def _fail(self, breaker: CircuitBreaker, shard_id: str, name: str, op: str) -> None:
        breaker.failure()
        self._gauge(shard_id, name, breaker)
        metrics.QUERY_ERRORS.labels(shard_id, op, "unavailable").inc()

    @staticmethod
    def _gauge(shard_id: str, name: str, breaker: CircuitBreaker) -> None:
        if name == shard_id:
            metrics.CIRCUIT_STATE.labels(shard_id).set(_CIRCUIT_GAUGE[breaker.current])

    @contextlib.asynccontextmanager
    async def connections(self, shard_ids: Iterable[str], op: str) -> AsyncIterator[dict[str, Any]]:
        """One connection per distinct shard, acquired in shard-id order (deadlock-free)."""
        async with contextlib.AsyncExitStack() as stack:
            conns: dict[str, Any] = {}
            for shard_id in sorted(set(shard_ids)):
                conns[shard_id] = await stack.enter_async_context(self.connection(shard_id, op))
            yield conns

    async def _set_lock_timeout(self, conn: Any) -> None:
        await conn.execute(
            f"SET LOCAL lock_timeout = '{int(self.config.lock_timeout * 1000)}ms'",
            timeout=self.config.query_timeout,
        )

    # ----------------------------------------------------------------- operations

    async def get(self, key: str, *, allow_stale: bool = False) -> Record:
        """The key's value; KeyNotFound when absent."""
        validate_key(key)
        location = self.locate(key)
        if location.source is not None:
            found = await self._read(location.source, key, allow_stale)
            if found is not None:
                return found
        found = await self._read(location.owner, key, allow_stale)
        if found is None:
            raise KeyNotFound(key)
        return found

    async def _read(self, shard_id: str, key: str, allow_stale: bool) -> Record | None:
        timeout = self.config.query_timeout
        endpoint = self._endpoint(shard_id)
        if allow_stale and endpoint.replicas:
            turn = self._replica_turn.setdefault(shard_id, itertools.cycle(range(len(endpoint.replicas))))
            replica = next(turn)
            try:
                async with self.connection(shard_id, "get_replica", replica=replica) as conn:
                    stored = await store.get(conn, key, timeout)
                return None if stored is None else Record.of(key, stored, shard_id)
            except ShardUnavailable:
                pass  # fall back to the primary
        async with self.connection(shard_id, "get") as conn:
            stored = await store.get(conn, key, timeout)
        return None if stored is None else Record.of(key, stored, shard_id)

    async def set(self, key: str, value: Any, *, expected_version: int | None = None) -> Record:
        """Store ``value``; with ``expected_version`` only when the key is at that version (0: absent)."""
        validate_key(key)
        if expected_version is not None and expected_version < 0:
            raise InvalidValue("expected version must be >= 0")
        text = encode_value(value)
        location = self.locate(key)
        timeout = self.config.query_timeout
        if location.source is not None:
            async with self.connection(location.source, "set") as conn, conn.transaction():
                await self._set_lock_timeout(conn)
                current = await store.lock(conn, key, timeout)
                if current is not None:
                    stored = await self._write(conn, key, text, expected_version, current)
                    return Record.of(key, stored, location.source)
        async with self.connection(location.owner, "set") as conn:
            stored = await self._write(conn, key, text, expected_version, None)
        return Record.of(key, stored, location.owner)

    async def _write(
        self, conn: Any, key: str, text: str, expected: int | None, current: store.Stored | None
    ) -> store.Stored:
        timeout = self.config.query_timeout
        if expected is None:
            return await store.upsert(conn, key, text, timeout)
        if expected == 0:
            created = None if current is not None else await store.insert_new(conn, key, text, timeout)
            if created is None:
                found = current or await store.get(conn, key, timeout)
                raise VersionConflict(key, 0, found.version if found else None)
            return created
        updated = await store.update_if(conn, key, text, expected, timeout)
        if updated is None:
            found = await store.get(conn, key, timeout)
            raise VersionConflict(key, expected, found.version if found else None)
        return updated

    async def delete(self, key: str) -> None:
        """Delete the key; KeyNotFound when it was absent."""
        validate_key(key)
        location = self.locate(key)
        timeout = self.config.query_timeout
        if location.source is None:
            async with self.connection(location.owner, "delete") as conn:
                removed = await store.delete(conn, key, timeout)
        else:
            source, owner = location.source, location.owner
            async with self.connections((source, owner), "delete") as conns, conns[source].transaction():
                await self._set_lock_timeout(conns[source])
                current = await store.lock(conns[source], key, timeout)
                removed = await store.delete(conns[owner], key, timeout)
                if current is not None:
                    removed = await store.delete(conns[source], key, timeout) or removed
        if not removed:
            raise KeyNotFound(key)

    async def close(self) -> None:
        if self._releasing:
            await asyncio.gather(*self._releasing, return_exceptions=True)
        if self._owns_pools:
            await self.pools.close()


class _Unavailable(Exception):
    """Internal: the pool or a connection could not be obtained."""
