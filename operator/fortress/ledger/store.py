"""The event store on PostgreSQL (asyncpg), built on the tables and triggers of migration 000001.

Appends. One append (one event, a command's events, or a batch of many streams) is ONE statement in
autocommit, so one round trip and one commit: an ``INSERT ... SELECT FROM unnest(...)`` into
``event_store`` whose AFTER INSERT trigger records ``(aggregate_id, version)`` in
``event_stream_versions`` and binds idempotency keys, all in the same transaction.

Optimistic concurrency. An event's version is the stream's expected version + 1, 2, ...; the primary
key of ``event_stream_versions`` lets only one writer have a version: a concurrent writer waits for
the first, then fails with unique_violation, which surfaces here as ``ConcurrencyError``. The first
event of each stream in an append must also follow an existing version (or be version 1), so an
expected version ahead of the stream fails as well (the row is given version -1, which the table's
CHECK rejects, failing the whole statement). ``retry_on_conflict`` re-runs a load-decide-append
attempt with bounded exponential backoff and full jitter (random source and sleep injectable).

Idempotency keys. The append statement reserves the key in ``event_idempotency_keys`` with the
request's hash and ``expires_at = now() + ttl`` (ttl >= 24 h); the trigger then binds it to the
event. A key already bound fails the statement (unique_violation on the key) and nothing is written.
``EventStore.execute`` runs a keyed command in one transaction that first claims the key (inserts it
unbound), then loads, decides and appends: a concurrent request with the same key blocks on that
row until the first commits (then it answers from the first request when the hashes match, and
raises ``IdempotencyConflict`` when they differ) or rolls back (then it runs itself). So a repeat
that overlaps the original never decides on its own (no ``reservation_exists`` for a repeated
reserve). Commands without a key stay one autocommit statement. Expired keys are deleted by
``purge_expired_keys``.

Global position: no gaps for projections, no skipped events.
  ``global_position`` comes from the sequence of migration 000001, so writers never wait for each
  other's commit (their commits share WAL flushes). Positions are unique and allocated in increasing
  order, but transactions may commit out of order: position 11 may be visible while 10 is still in
  flight. A projector that stepped past 10 would skip it forever. So the projector never reads past
  the *safe horizon* computed by ``safe_position``:

  1. read ``last_value`` of the sequence: L, the highest position handed out so far;
  2. then list the transactions holding ``RowExclusiveLock`` on ``event_store`` (``pg_locks``);
  3. wait until every one of them has ended; then every event at a position <= L is final.

  Why it is safe: an INSERT locks its target table before it executes, so before ``nextval`` gives
  it a position, and keeps the lock until after its commit is visible (PostgreSQL releases locks
  after removing the transaction from the running set). A transaction holding some position p <= L
  therefore either had already ended when step 2 looked (its rows are visible to any later snapshot,
  or it rolled back), or was listed in step 2 and is waited for in step 3. Positions handed out after
  step 1 are > L, beyond the horizon. Step 1 runs before step 2 within one statement (step 2 is a
  subquery correlated to the row step 1 produced). Rolled-back appends (e.g. version conflicts) burn
  their numbers: such holes are permanent, no later commit ever fills them, and lag is counted in
  events, not in numbers. Appends must go through the parent table ``event_store`` (this module
  does) so that step 2 sees them.
  This is what the alternative, serializing appends with a transaction-scoped advisory lock (or a
  single-row counter), would also guarantee, but that makes every append wait for the previous
  append's commit and fsync; here only the projector waits, for at most the commits in flight.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import random
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, NamedTuple, TypeVar

import asyncpg

from fortress.ledger import account
from fortress.ledger import events as ev
from fortress.ledger.account import AccountState, DomainError
from fortress.ledger.events import Command, Event
from fortress.metrics import ledger as metrics

T = TypeVar("T")

MIN_IDEMPOTENCY_TTL: Final = dt.timedelta(hours=24)
DEFAULT_SNAPSHOT_INTERVAL: Final = 100
VERSION_KEY: Final = "event_stream_versions_pkey"
IDEMPOTENCY_KEY: Final = "event_idempotency_keys_pkey"
VERSION_CHECK: Final = "event_store_version_check"
MAX_KEY_LENGTH: Final = 255


class ConcurrencyError(Exception):
    """Another writer appended to the stream first (or the expected version is not the stream's)."""

    def __init__(self, aggregate_id: str, expected_version: int, detail: str = "") -> None:
        self.aggregate_id = aggregate_id
        self.expected_version = expected_version
        text = f"stream {aggregate_id!r} is not at version {expected_version}"
        super().__init__(f"{text}: {detail}" if detail else text)


class IdempotencyConflict(Exception):
    """The idempotency key was used before for a different request."""

    def __init__(self, key: str) -> None:
        self.key = key
        super().__init__(f"idempotency key {key!r} was already used for a different request")


class _KeyAlreadyBound(Exception):
    """The statement failed because its idempotency key is bound to an earlier event."""


class StoredEvent(NamedTuple):
    """An event as recorded (a named tuple: a batch creates thousands)."""

    global_position: int
    aggregate_id: str
    version: int
    type: str
    data: Mapping[str, Any]
    recorded_at: dt.datetime

    def to_json(self) -> dict[str, Any]:
        return {
            "globalPosition": self.global_position,
            "aggregateId": self.aggregate_id,
            "version": self.version,
            "type": self.type,
            "data": dict(self.data),
            "recordedAt": self.recorded_at.isoformat(),
        }


@dataclass(frozen=True)
class AppendRequest:
    """Events for one stream, following ``expected_version``, for ``append_batch``."""

    aggregate_id: str
    expected_version: int
    events: Sequence[Event]
    idempotency_key: str | None = None
    request_hash: str | None = None
    snapshot: AccountState | None = None  # the state after these events, when a snapshot is due


@dataclass(frozen=True)
class Loaded:
    """An aggregate rebuilt from the store."""

    state: AccountState
    snapshot_version: int | None  # the snapshot replay started from, if any
    events_replayed: int


@dataclass(frozen=True)
class CommandResult:
    """What ``execute`` did: the events recorded (or found, for an idempotent replay) and the state."""

    aggregate_id: str
    events: tuple[StoredEvent, ...]
    state: AccountState
    replayed: bool = False
    attempts: int = 1


@dataclass(frozen=True)
class StoreStats:
    events_total: int
    last_global_position: int
    snapshots: int
    aggregates: int


@dataclass(frozen=True)
class RetryPolicy:
    """Bounded exponential backoff with full jitter: attempt n sleeps uniform(0, min(cap, base*2**n))."""

    attempts: int = 10
    base: float = 0.002
    cap: float = 0.25

    def __post_init__(self) -> None:
        if self.attempts < 1 or self.base < 0 or self.cap < self.base:
            raise ValueError("RetryPolicy needs attempts >= 1 and 0 <= base <= cap")

    def delay(self, attempt: int, rand: Callable[[], float]) -> float:
        """The pause after failed attempt ``attempt`` (0-based); ``rand`` returns a float in [0, 1)."""
        return rand() * min(self.cap, self.base * 2.0**attempt)


async def retry_on_conflict(
    attempt: Callable[[], Awaitable[T]],
    policy: RetryPolicy = RetryPolicy(),
    *,
    rand: Callable[[], float] = random.random,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> T:
    """Run ``attempt`` until it does not raise ConcurrencyError, at most ``policy.attempts`` times."""
    for number in range(policy.attempts):
        try:
            return await attempt()
        except ConcurrencyError:
            if number + 1 >= policy.attempts:
                raise
            await sleep(policy.delay(number, rand))
    raise AssertionError("unreachable")  # pragma: no cover


def snapshot_due(old_version: int, new_version: int, interval: int) -> bool:
    """Whether the versions (old, new] cross a multiple of ``interval``."""
    return interval > 0 and old_version // interval != new_version // interval


_APPEND_SQL: Final = """
WITH keys AS (
    INSERT INTO event_idempotency_keys (key, request_hash, aggregate_id, expires_at)
    SELECT k.key, k.hash, k.agg, now() + $8::interval
      FROM unnest($6::text[], $7::text[], $1::text[]) AS k(key, hash, agg)
     WHERE k.key IS NOT NULL
    ON CONFLICT (key) DO NOTHING
), snaps AS (
    INSERT INTO aggregate_snapshots (aggregate_id, version, state)
    SELECT s.agg, s.ver, s.state FROM unnest($10::text[], $11::bigint[], $12::jsonb[]) AS s(agg, ver, state)
    ON CONFLICT (aggregate_id, version) DO NOTHING
)
INSERT INTO event_store (aggregate_type, aggregate_id, version, event_type, data, metadata, idempotency_key)
SELECT $13, a.agg,
       CASE WHEN a.first AND a.ver > 1 AND NOT EXISTS (
                 SELECT 1 FROM event_stream_versions v WHERE v.aggregate_id = a.agg AND v.version = a.ver - 1)
            THEN -1 ELSE a.ver END,
       a.typ, a.data, a.meta, a.key
  FROM unnest($1::text[], $2::bigint[], $3::text[], $4::jsonb[], $5::jsonb[], $6::text[], $9::bool[])
       AS a(agg, ver, typ, data, meta, key, first)
RETURNING global_position, aggregate_id, version, recorded_at
"""

_LOAD_SQL: Final = """
WITH target AS (
    SELECT CASE WHEN $3::timestamptz IS NULL THEN $2::bigint
                ELSE (SELECT coalesce(max(v.version), 0) FROM event_stream_versions v
                       WHERE v.aggregate_id = $1 AND v.recorded_at <= $3 AND v.version <= $2)
           END AS version
), snap AS MATERIALIZED (
    SELECT s.version, s.state FROM aggregate_snapshots s, target t
     WHERE $4 AND s.aggregate_id = $1 AND s.version <= t.version
     ORDER BY s.version DESC LIMIT 1
)
SELECT 0 AS part, NULL::text AS event_type, version, state AS data, NULL::timestamptz AS recorded_at,
       NULL::bigint AS global_position
  FROM snap
UNION ALL
SELECT 1, e.event_type, e.version, e.data, e.recorded_at, e.global_position
  FROM event_store e, target t
 WHERE e.aggregate_id = $1 AND e.version > coalesce((SELECT version FROM snap), 0) AND e.version <= t.version
ORDER BY part, version
"""

_HORIZON_SQL: Final = """
SELECT s.last,
       (SELECT coalesce(array_agg(DISTINCT l.virtualtransaction), '{}')
          FROM pg_locks l
         WHERE s.last IS NOT NULL AND l.locktype = 'relation' AND l.relation = 'event_store'::regclass
           AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
           AND l.mode = 'RowExclusiveLock' AND l.pid IS DISTINCT FROM pg_backend_pid()) AS writers
  FROM (SELECT CASE WHEN is_called THEN last_value ELSE 0 END AS last
          FROM event_store_global_position_seq) s
"""

_WRITERS_LEFT_SQL: Final = """
SELECT count(*) FROM pg_locks
 WHERE locktype = 'relation' AND relation = 'event_store'::regclass AND virtualtransaction = ANY($1::text[])
"""

_WRITERS_DETAIL_SQL: Final = """
SELECT a.pid, coalesce(a.state, '?') AS state,
       coalesce(extract(epoch FROM now() - a.xact_start), 0)::float8 AS open_seconds,
       left(coalesce(a.query, ''), 120) AS query
  FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
 WHERE l.locktype = 'relation' AND l.relation = 'event_store'::regclass
   AND l.virtualtransaction = ANY($1::text[])
"""


async def safe_position(conn: Any, poll: float = 0.001, max_wait: float = 30.0) -> int:
    """The highest global position below which no event can still appear (see the module docstring).

    Waits for the appends in flight to end (normally one commit); raises TimeoutError after
    ``max_wait`` seconds (a stuck writer), never returning a horizon that could skip an event.
    """
    row = await conn.fetchrow(_HORIZON_SQL)
    last, writers = int(row["last"]), list(row["writers"])
    deadline = time.monotonic() + max_wait
    delay = poll
    while writers:
        left = await conn.fetchval(_WRITERS_LEFT_SQL, writers)
        if not left:
            break
        if time.monotonic() > deadline:
            holders = await conn.fetch(_WRITERS_DETAIL_SQL, writers)
            described = "; ".join(
                f"pid {r['pid']} ({r['state']}, transaction open {r['open_seconds']:.0f}s: {r['query']})"
                for r in holders
            )
            raise TimeoutError(
                f"{left} event-store writers still in flight after {max_wait}s, so the projection "
                f"cannot move past position {last}: {described or 'ended meanwhile'}"
            )
        await asyncio.sleep(delay)
        delay = min(delay * 2, 0.05)
    return last


_EMPTY_JSON: Final = "{}"


_ENCODE: Final = json.JSONEncoder(separators=(",", ":"), sort_keys=True).encode  # built once, not per call


def _json(value: Any) -> str:
    return _ENCODE(value)


def json_value(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str | bytes) else value


def _stored(row: Mapping[str, Any], aggregate_id: str | None = None) -> StoredEvent:
    return StoredEvent(
        global_position=int(row["global_position"]),
        aggregate_id=aggregate_id if aggregate_id is not None else str(row["aggregate_id"]),
        version=int(row["version"]),
        type=str(row["event_type"]),
        data=json_value(row["data"]),
        recorded_at=row["recorded_at"],
    )


def _as_event(row: Mapping[str, Any]) -> Event:
    return Event(str(row["event_type"]), json_value(row["data"]))


class EventStore:
    """Appends, loads and time-travels credit accounts on an asyncpg pool."""

    def __init__(
        self,
        pool: Any,
        *,
        snapshot_interval: int = DEFAULT_SNAPSHOT_INTERVAL,
        idempotency_ttl: dt.timedelta = MIN_IDEMPOTENCY_TTL,
    ) -> None:
        if idempotency_ttl < MIN_IDEMPOTENCY_TTL:
            raise ValueError(f"idempotency keys must be kept at least 24h, got {idempotency_ttl}")
        if snapshot_interval < 0:
            raise ValueError("snapshot_interval must be >= 0 (0 disables snapshots)")
        self.pool = pool
        self.snapshot_interval = snapshot_interval
        self.idempotency_ttl = idempotency_ttl

    # --- writing -------------------------------------------------------------------------------

    async def append(
        self,
        aggregate_id: str,
        expected_version: int,
        events: Sequence[Event],
        *,
        idempotency_key: str | None = None,
        request_hash: str | None = None,
        snapshot: AccountState | None = None,
    ) -> list[StoredEvent]:
        """Append ``events`` after ``expected_version`` in one round trip; ConcurrencyError on conflict."""
        request = AppendRequest(
            aggregate_id, expected_version, events, idempotency_key, request_hash, snapshot
        )
        return (await self._append([request], "single"))[0]

    async def append_batch(self, requests: Sequence[AppendRequest]) -> list[list[StoredEvent]]:
        """Append to many streams in one statement (all or nothing); ConcurrencyError on any conflict."""
        return await self._append(requests, "batch")

    async def _append(
        self, requests: Sequence[AppendRequest], kind: str, conn: Any = None
    ) -> list[list[StoredEvent]]:
        aggs: list[str] = []
        versions: list[int] = []
        types: list[str] = []
        datas: list[str] = []
        metas: list[str] = []
        keys: list[str | None] = []
        hashes: list[str | None] = []
        firsts: list[bool] = []
        snap_aggs: list[str] = []
        snap_versions: list[int] = []
        snap_states: list[str] = []
        seen: set[str] = set()
        for request in requests:
            count = len(request.events)
            if not count:
                continue
            if request.aggregate_id in seen:
                raise ValueError(f"stream {request.aggregate_id!r} appears twice in one batch")
            seen.add(request.aggregate_id)
            rest = count - 1
            aggs.extend([request.aggregate_id] * count)
            versions.extend(range(request.expected_version + 1, request.expected_version + count + 1))
            types.extend([event.type for event in request.events])
            datas.extend([_ENCODE(event.data) for event in request.events])
            meta: dict[str, Any] = {"command_events": count}
            if request.request_hash:
                meta["request_hash"] = request.request_hash
            metas.append(_ENCODE(meta))  # the first event of a command carries its metadata
            metas.extend([_EMPTY_JSON] * rest)
            keys.append(request.idempotency_key)
            keys.extend([None] * rest)
            hashes.append(request.request_hash)
            hashes.extend([None] * rest)
            firsts.append(True)
            firsts.extend([False] * rest)
            if request.snapshot is not None:
                snap_aggs.append(request.aggregate_id)
                snap_versions.append(request.snapshot.version)
                snap_states.append(_json(request.snapshot.to_json()))
        if not aggs:
            return [[] for _ in requests]
        started = time.perf_counter()
        try:
            rows = await (conn if conn is not None else self.pool).fetch(
                _APPEND_SQL,
                aggs,
                versions,
                types,
                datas,
                metas,
                keys,
                hashes,
                self.idempotency_ttl,
                firsts,
                snap_aggs,
                snap_versions,
                snap_states,
                ev.AGGREGATE_TYPE,
            )
        except asyncpg.UniqueViolationError as error:
            if error.constraint_name == IDEMPOTENCY_KEY:
                raise _KeyAlreadyBound(str(error)) from None
            if error.constraint_name == VERSION_KEY:
                metrics.APPEND_CONFLICTS.inc()
                first_request = next(r for r in requests if r.events)
                raise ConcurrencyError(
                    first_request.aggregate_id if len(requests) == 1 else "<batch>",
                    first_request.expected_version,
                    "another writer appended first",
                ) from None
            raise
        except asyncpg.CheckViolationError as error:
            if error.constraint_name == VERSION_CHECK:
                metrics.APPEND_CONFLICTS.inc()
                first_request = next(r for r in requests if r.events)
                raise ConcurrencyError(
                    first_request.aggregate_id if len(requests) == 1 else "<batch>",
                    first_request.expected_version,
                    "the stream has no event at the expected version",
                ) from None
            raise
        metrics.APPEND_SECONDS.labels(kind).observe(time.perf_counter() - started)
        by_key = {(r["aggregate_id"], r["version"]): r for r in rows}
        results: list[list[StoredEvent]] = []
        for request in requests:
            agg, after = request.aggregate_id, request.expected_version
            stored = []
            for version, event in enumerate(request.events, after + 1):
                row = by_key[(agg, version)]
                position, recorded_at = row["global_position"], row["recorded_at"]
                stored.append(StoredEvent(position, agg, version, event.type, event.data, recorded_at))
            results.append(stored)
        for event_type, count in Counter(types).items():
            metrics.EVENTS_WRITTEN.labels(event_type).inc(count)
        if snap_aggs:
            metrics.SNAPSHOTS_WRITTEN.inc(len(snap_aggs))
        return results

    async def execute(
        self,
        aggregate_id: str,
        command: Command,
        *,
        idempotency_key: str | None = None,
        expected_version: int | None = None,
        policy: RetryPolicy = RetryPolicy(),
        rand: Callable[[], float] = random.random,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> CommandResult:
        """Load, decide, append; retried on conflicts unless the caller pinned ``expected_version``.

        Raises DomainError (refused), ConcurrencyError (pinned version is stale, or retries ran out)
        and IdempotencyConflict (key reused for another request). A repeated request with the same
        key and payload returns the first result (``replayed=True``) and writes nothing, also when it
        overlaps the first: a keyed command runs in a transaction that first claims its key (a row
        in ``event_idempotency_keys``); a concurrent request with the same key waits on that row
        until the first commits (then answers from it) or rolls back (then runs itself).
        """
        request_hash = ev.request_hash(aggregate_id, command) if idempotency_key else None
        attempts = 0

        async def attempt() -> CommandResult:
            nonlocal attempts
            attempts += 1
            if idempotency_key is None:
                return await self._decide_and_append(
                    self.pool, aggregate_id, command, expected_version, None, None, attempts
                )
            async with self.pool.acquire() as conn, conn.transaction():
                if not await self._claim(conn, idempotency_key, request_hash, aggregate_id):
                    prior = await self._prior(idempotency_key, request_hash, conn)
                    if prior is not None:
                        return prior
                    # the key had expired and _prior deleted it: claim it afresh
                    if not await self._claim(conn, idempotency_key, request_hash, aggregate_id):
                        raise ConcurrencyError(aggregate_id, -1, "idempotency key claimed meanwhile")
                return await self._decide_and_append(
                    conn, aggregate_id, command, expected_version, idempotency_key, request_hash, attempts
                )

        if expected_version is not None:
            return await attempt()
        return await retry_on_conflict(attempt, policy, rand=rand, sleep=sleep)

    async def _claim(self, conn: Any, key: str, request_hash: str | None, aggregate_id: str) -> bool:
        """Insert ``key`` unbound in the caller's transaction; False when it exists (waits for its writer)."""
        claimed = await conn.fetchval(
            """
            INSERT INTO event_idempotency_keys (key, request_hash, aggregate_id, expires_at)
            VALUES ($1, $2, $3, now() + $4::interval)
            ON CONFLICT (key) DO NOTHING RETURNING true
            """,
            key,
            request_hash,
            aggregate_id,
            self.idempotency_ttl,
        )
        return bool(claimed)

    async def _decide_and_append(
        self,
        conn: Any,
        aggregate_id: str,
        command: Command,
        expected_version: int | None,
        idempotency_key: str | None,
        request_hash: str | None,
        attempts: int,
    ) -> CommandResult:
        loaded = await self.load(aggregate_id, conn=conn)
        state = loaded.state
        if expected_version is not None and state.version != expected_version:
            metrics.APPEND_CONFLICTS.inc()
            raise ConcurrencyError(aggregate_id, expected_version, f"it is at version {state.version}")
        new_events = account.decide(command, state)
        after = account.replay(new_events, state)
        due = snapshot_due(state.version, after.version, self.snapshot_interval)
        request = AppendRequest(
            aggregate_id,
            state.version,
            new_events,
            idempotency_key,
            request_hash,
            after if due else None,
        )
        try:
            stored = (await self._append([request], "single", conn))[0]
        except _KeyAlreadyBound:  # only without a claim (a direct append with a key)
            raise ConcurrencyError(aggregate_id, state.version, "idempotency key bound meanwhile") from None
        return CommandResult(aggregate_id, tuple(stored), after, attempts=attempts)

    async def _prior(self, key: str, request_hash: str | None, conn: Any = None) -> CommandResult | None:
        """The result of the earlier request with ``key``; IdempotencyConflict when it asked otherwise."""
        db = conn if conn is not None else self.pool
        row = await db.fetchrow(
            """
            SELECT k.request_hash, k.aggregate_id, k.expires_at <= now() AS expired, v.version
              FROM event_idempotency_keys k
              LEFT JOIN event_stream_versions v ON v.global_position = k.first_position
             WHERE k.key = $1
            """,
            key,
        )
        if row is None:
            return None
        if row["expired"]:
            await db.execute("DELETE FROM event_idempotency_keys WHERE key = $1 AND expires_at <= now()", key)
            return None
        if row["version"] is None:  # reserved by a statement still in flight: treat as a conflict
            raise IdempotencyConflict(key)
        if row["request_hash"] != request_hash:
            raise IdempotencyConflict(key)
        aggregate_id, first = str(row["aggregate_id"]), int(row["version"])
        rows = await db.fetch(
            """
            SELECT global_position, version, event_type, data, recorded_at FROM event_store
             WHERE aggregate_id = $1 AND version >= $2
               AND version < $2 + coalesce((SELECT (metadata ->> 'command_events')::bigint FROM event_store
                                             WHERE aggregate_id = $1 AND version = $2), 1)
             ORDER BY version
            """,
            aggregate_id,
            first,
        )
        stored = tuple(_stored(r, aggregate_id) for r in rows)
        loaded = await self.load(aggregate_id, version=stored[-1].version if stored else first, conn=conn)
        metrics.IDEMPOTENT_REPLAYS.inc()
        return CommandResult(aggregate_id, stored, loaded.state, replayed=True, attempts=0)

    # --- reading -------------------------------------------------------------------------------

    async def load(
        self,
        aggregate_id: str,
        *,
        version: int | None = None,
        as_of: dt.datetime | None = None,
        use_snapshots: bool = True,
        conn: Any = None,
    ) -> Loaded:
        """The account at its latest version, at ``version``, or as it was at time ``as_of``."""
        limit = version if version is not None else 2**62
        rows = await (conn if conn is not None else self.pool).fetch(
            _LOAD_SQL, aggregate_id, limit, as_of, use_snapshots
        )
        state = account.INITIAL
        snapshot_version: int | None = None
        replayed = 0
        for row in rows:
            if row["part"] == 0:
                snapshot_version = int(row["version"])
                state = account.AccountState.from_json(json_value(row["data"]))
                state = account.with_version(state, snapshot_version)
                continue
            state = account.evolve(state, _as_event(row))
            replayed += 1
            if state.version != row["version"]:
                raise account.CorruptStream(
                    f"stream {aggregate_id!r}: event version {row['version']} "
                    f"follows version {state.version - 1}"
                )
        return Loaded(state, snapshot_version, replayed)

    async def history(self, aggregate_id: str, after: int = 0, limit: int = 100) -> list[StoredEvent]:
        """Up to ``limit`` events of one stream after version ``after``, oldest first."""
        rows = await self.pool.fetch(
            """
            SELECT global_position, version, event_type, data, recorded_at FROM event_store
             WHERE aggregate_id = $1 AND version > $2 ORDER BY version LIMIT $3
            """,
            aggregate_id,
            after,
            limit,
        )
        return [_stored(r, aggregate_id) for r in rows]

    async def stream_version(self, aggregate_id: str) -> int:
        """The stream's current version (0: no events)."""
        value = await self.pool.fetchval(
            "SELECT coalesce(max(version), 0) FROM event_stream_versions WHERE aggregate_id = $1",
            aggregate_id,
        )
        return int(value)

    async def stats(self) -> StoreStats:
        """Events total, highest position, snapshots and streams, for status and metrics."""
        row = await self.pool.fetchrow(
            """
            SELECT (SELECT count(*) FROM event_stream_versions) AS events,
                   (SELECT coalesce(max(global_position), 0) FROM event_stream_versions) AS last,
                   (SELECT count(*) FROM aggregate_snapshots) AS snapshots,
                   (SELECT count(*) FROM event_stream_versions WHERE version = 1) AS aggregates
            """
        )
        return StoreStats(int(row["events"]), int(row["last"]), int(row["snapshots"]), int(row["aggregates"]))

    # --- maintenance ---------------------------------------------------------------------------

    async def ensure_partitions(self, months_ahead: int) -> list[str]:
        """Create monthly event partitions up to ``months_ahead`` months ahead (names created)."""
        rows = await self.pool.fetch("SELECT ensure_event_store_partitions($1) AS name", months_ahead)
        return [str(r["name"]) for r in rows]

    async def purge_expired_keys(self) -> int:
        """Delete idempotency keys past their expiry; the number deleted."""
        result = await self.pool.execute("DELETE FROM event_idempotency_keys WHERE expires_at <= now()")
        return int(result.split()[-1])

    async def prune_snapshots(self, keep: int) -> int:
        """Keep the newest ``keep`` snapshots of each aggregate; the number deleted."""
        result = await self.pool.execute(
            """
            DELETE FROM aggregate_snapshots s USING (
                SELECT aggregate_id, version,
                       row_number() OVER (PARTITION BY aggregate_id ORDER BY version DESC) AS n
                  FROM aggregate_snapshots) o
             WHERE s.aggregate_id = o.aggregate_id AND s.version = o.version AND o.n > $1
            """,
            keep,
        )
        return int(result.split()[-1])


__all__ = [
    "AppendRequest",
    "CommandResult",
    "ConcurrencyError",
    "DomainError",
    "EventStore",
    "IdempotencyConflict",
    "Loaded",
    "RetryPolicy",
    "StoredEvent",
    "retry_on_conflict",
    "safe_position",
    "snapshot_due",
]
