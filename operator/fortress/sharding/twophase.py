"""Cross-shard transactions: typed operations committed atomically with PostgreSQL two-phase commit.

Callers give typed operations (``Transfer`` of an integer amount between two keys' JSON ``balance``,
``MultiSet`` of several keys), never SQL. The coordinator:

1. acquires one connection per shard involved (in shard-id order), begins a transaction on each, locks
   every key's row (``SELECT ... FOR UPDATE``, in key order, with a lock timeout) and writes the new values;
2. a single participant just commits. Otherwise every participant runs ``PREPARE TRANSACTION gid``;
3. the decision ``commit`` is inserted into ``distributed_tx_log`` on the coordinator database (the first
   shard in id order, or the one configured), in its own transaction with ``synchronous_commit = on``,
   before any ``COMMIT PREPARED``. The insert is ``ON CONFLICT DO NOTHING``: if recovery already recorded
   ``abort`` for the gid, the coordinator rolls back instead;
4. ``COMMIT PREPARED`` on every participant, then ``completed_at`` is set.

Presumed abort: no log row is written before the prepares, so a prepared transaction without a ``commit``
row is rolled back by recovery once older than the grace period (after recovery records ``abort`` for it,
so that a late coordinator cannot commit it). A commit decision is always carried out.

gid format (``GID_PATTERN``): ``fx1:<cluster-tag>:<coordinator-shard>:<txid>:<participant-shard>``, where
cluster-tag is 8 hex digits of xxh64("namespace/name") (recovery only touches its own cluster's gids) and
txid is 32 hex digits; the log row's gid is the same without the participant part.

Participants prepare concurrently, and commit concurrently. Crash injection: with a ``hook``, those steps
run one participant at a time in shard-id order and ``hook(step)`` is awaited after each step
(``prepared:<shard>``, ``decided``, ``committed:<shard>``, ``completed``); tests raise ``CrashInjected``
(a BaseException) from it to stop the coordinator where a crash would, leaving prepared transactions
behind for recovery.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import json
import re
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import asyncpg
import xxhash

from fortress.metrics import sharding as metrics
from fortress.sharding import store
from fortress.sharding.errors import (
    InsufficientFunds,
    InvalidValue,
    KeyNotFound,
    NotABalance,
    PreparedTransactionsDisabled,
    ShardingError,
    TransactionAborted,
)
from fortress.sharding.ring import Location
from fortress.sharding.router import Record, Router, encode_value, validate_key

GID_VERSION = "fx1"
GID_PATTERN = re.compile(
    r"^fx1:(?P<tag>[0-9a-f]{8}):(?P<coordinator>[a-z0-9]([-a-z0-9]*[a-z0-9])?):(?P<txid>[0-9a-f]{32})"
    r"(:(?P<participant>[a-z0-9]([-a-z0-9]*[a-z0-9])?))?$"
)
MAX_OPERATIONS = 100
SHARD_ID = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")

Hook = Callable[[str], Awaitable[None] | None]


class TransactionInDoubt(ShardingError):
    """The decision could not be confirmed; recovery will commit or roll back every participant."""

    code = "transaction_in_doubt"


def cluster_tag(cluster: str) -> str:
    """The 8-hex-digit tag of a ShardCluster ("namespace/name") in its gids."""
    return xxhash.xxh64_hexdigest(cluster.encode())[:8]


@dataclass(frozen=True)
class Gid:
    tag: str
    coordinator: str
    txid: str
    participant: str | None = None

    @property
    def log_gid(self) -> str:
        return f"{GID_VERSION}:{self.tag}:{self.coordinator}:{self.txid}"

    def for_participant(self, shard_id: str) -> str:
        return f"{self.log_gid}:{shard_id}"

    @classmethod
    def parse(cls, text: str) -> Gid | None:
        match = GID_PATTERN.match(text)
        if match is None:
            return None
        return cls(match["tag"], match["coordinator"], match["txid"], match["participant"])


# ----------------------------------------------------------------------------- operations


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


def validate_operations(operations: Sequence[Operation]) -> list[str]:
    """Every key the operations touch, sorted; InvalidValue/InvalidKey naming the problem."""
    if not operations:
        raise InvalidValue("a transaction needs at least one operation")
    if len(operations) > MAX_OPERATIONS:
        raise InvalidValue(f"a transaction has at most {MAX_OPERATIONS} operations")
    keys: set[str] = set()
    for index, op in enumerate(operations):
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
        keys.update(op.keys())
    return sorted(keys)


def apply_operations(operations: Sequence[Operation], current: Mapping[str, Any | None]) -> dict[str, Any]:
    """The new value of every written key (pure); ``current`` maps each key to its value or None."""
    values: dict[str, Any] = {k: v for k, v in current.items()}
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


@dataclass(frozen=True)
class TxResult:
    txid: str
    participants: tuple[str, ...]
    records: Mapping[str, Record]
    two_phase: bool
    pending_commits: tuple[str, ...] = ()  # participants whose COMMIT PREPARED recovery will finish


# ----------------------------------------------------------------------------- coordinator


class Coordinator:
    """Runs typed cross-shard transactions over a router's shards."""

    def __init__(
        self,
        router: Router,
        cluster: str | None = None,
        *,
        coordinator_shard: str | None = None,
        timeout: float = 10.0,
        hook: Hook | None = None,
    ) -> None:
        self.router = router
        self.cluster = cluster if cluster is not None else router.routing.cluster
        self.tag = cluster_tag(self.cluster)
        self._coordinator_shard = coordinator_shard
        self.timeout = timeout
        self.hook = hook
        self._prepared_ok: dict[str, int] = {}

    @property
    def coordinator_shard(self) -> str:
        if self._coordinator_shard is not None:
            return self._coordinator_shard
        if not self.router.endpoints:
            raise ShardingError("no shards configured")
        return min(self.router.endpoints)

    async def _step(self, name: str) -> None:
        if self.hook is not None:
            result = self.hook(name)
            if inspect.isawaitable(result):
                await result

    async def max_prepared_transactions(self, shard_id: str) -> int:
        """The shard's ``max_prepared_transactions`` (cached once known to be > 0)."""
        if shard_id in self._prepared_ok:
            return self._prepared_ok[shard_id]
        async with self.router.connection(shard_id, "probe") as conn:
            value = int(await conn.fetchval("SHOW max_prepared_transactions"))
        if value > 0:
            self._prepared_ok[shard_id] = value
        return value

    async def require_prepared(self, shard_ids: Iterable[str]) -> None:
        for shard_id in sorted(set(shard_ids)):
            if await self.max_prepared_transactions(shard_id) == 0:
                raise PreparedTransactionsDisabled(shard_id)

    async def execute(self, operations: Sequence[Operation]) -> TxResult:
        """Run the operations atomically; typed errors for bad input and business rules."""
        started = time.perf_counter()
        try:
            result = await self._execute(operations, started)
        except TransactionInDoubt:
            metrics.TRANSACTIONS.labels("in_doubt").inc()
            raise
        except ShardingError:
            metrics.TRANSACTIONS.labels("aborted").inc()
            raise
        except Exception:
            metrics.TRANSACTIONS.labels("failed").inc()
            raise
        metrics.TRANSACTIONS.labels("committed").inc()
        metrics.TRANSACTION_SECONDS.observe(time.perf_counter() - started)
        return result

    async def _execute(self, operations: Sequence[Operation], started: float) -> TxResult:
        keys = validate_operations(operations)
        locations = {key: self.router.locate(key) for key in keys}
        involved = sorted({s for loc in locations.values() for s in (loc.owner, loc.source) if s})
        if len(involved) > 1:
            await self.require_prepared(involved)
        gid = Gid(self.tag, self.coordinator_shard, uuid.uuid4().hex)
        for shard_id in (self.coordinator_shard, *involved):
            if not SHARD_ID.match(shard_id):
                raise ShardingError(f"shard id {shard_id!r} is not a DNS label: it cannot appear in a gid")
        timeout = self.router.config.query_timeout
        prepared: list[str] = []
        participants: list[str] = []
        records: dict[str, Record] = {}
        failure: Exception | None = None
        async with self.router.connections(involved, "tx") as conns:
            try:
                records, participants = await self._write_all(operations, keys, locations, conns)
                for shard_id, conn in conns.items():
                    if shard_id not in participants:
                        await conn.execute("ROLLBACK", timeout=timeout)
                if len(participants) == 1:
                    await conns[participants[0]].execute("COMMIT", timeout=timeout)
                    return TxResult(gid.txid, tuple(participants), records, two_phase=False)

                async def prepare(shard_id: str) -> None:
                    await conns[shard_id].execute(
                        f"PREPARE TRANSACTION '{gid.for_participant(shard_id)}'", timeout=timeout
                    )
                    prepared.append(shard_id)

                await self._each(participants, prepare, "prepared")
            except Exception as error:
                failure = error
                for shard_id, conn in conns.items():
                    if shard_id not in prepared and not conn.is_closed() and conn.is_in_transaction():
                        with contextlib.suppress(Exception):
                            await conn.execute("ROLLBACK", timeout=timeout)
        if failure is not None:
            if prepared:  # connections are released first: pools are never waited on while holding one
                await self._rollback_prepared(gid, prepared)
            raise failure
        # Every participant is prepared and its connection released; now decide.
        if time.perf_counter() - started > self.timeout:
            await self._rollback_prepared(gid, participants)
            raise TransactionAborted(f"transaction {gid.txid} exceeded its {self.timeout}s deadline")
        decision = await self._decide(gid, participants)
        if decision != "commit":
            await self._rollback_prepared(gid, participants)
            raise TransactionAborted(f"transaction {gid.txid} was aborted by recovery before it committed")
        await self._step("decided")
        pending: list[str] = []

        async def commit(shard_id: str) -> None:
            try:
                async with self.router.connection(shard_id, "commit_prepared") as conn:
                    await conn.execute(f"COMMIT PREPARED '{gid.for_participant(shard_id)}'", timeout=timeout)
            except ShardingError:
                pending.append(shard_id)  # decided: recovery commits it

        await self._each(participants, commit, "committed")
        if not pending:
            with contextlib.suppress(ShardingError):
                async with self.router.connection(self.coordinator_shard, "tx_log") as conn:
                    # not waited for durably: recovery marks a completed transaction again if this is lost
                    await conn.execute(
                        "BEGIN; SET LOCAL synchronous_commit = off; UPDATE distributed_tx_log "
                        f"SET completed_at = now() WHERE gid = '{gid.log_gid}'; COMMIT",
                        timeout=timeout,
                    )
            await self._step("completed")
        return TxResult(gid.txid, tuple(participants), records, True, tuple(pending))

    async def _each(
        self, shard_ids: Sequence[str], action: Callable[[str], Awaitable[None]], step: str
    ) -> None:
        """Run ``action`` on every participant: concurrently, or in order with the hook between steps."""
        if self.hook is None:
            results = await asyncio.gather(*(action(s) for s in shard_ids), return_exceptions=True)
            for result in results:
                if isinstance(result, BaseException):
                    raise result
            return
        for shard_id in shard_ids:
            await action(shard_id)
            await self._step(f"{step}:{shard_id}")

    async def _write_all(
        self,
        operations: Sequence[Operation],
        keys: Sequence[str],
        locations: Mapping[str, Location],
        conns: Mapping[str, Any],
    ) -> tuple[dict[str, Record], list[str]]:
        """Begin on every shard, lock every key (in key order), write the new values."""
        timeout = self.router.config.query_timeout
        lock_ms = int(self.router.config.lock_timeout * 1000)
        for conn in conns.values():
            await conn.execute(f"BEGIN; SET LOCAL lock_timeout = '{lock_ms}ms'", timeout=timeout)
        where: dict[str, str] = {}
        current: dict[str, Any | None] = {}
        # Locks are taken shard by shard (in id order), each shard's keys in key order in one statement, so
        # concurrent transactions lock in the same order; a moving key is locked on its source first.
        settled = sorted((loc.owner, key) for key, loc in locations.items() if loc.source is None)
        for shard_id in sorted({shard for shard, _ in settled}):
            wanted = [key for shard, key in settled if shard == shard_id]
            rows = await store.lock_many(conns[shard_id], wanted, timeout)
            for key in wanted:
                where[key] = shard_id
                current[key] = json.loads(rows[key]) if key in rows else None
        for key in sorted(k for k, loc in locations.items() if loc.source is not None):
            loc = locations[key]
            assert loc.source is not None
            found = await store.lock(conns[loc.source], key, timeout)
            where[key] = loc.source
            if found is None:
                found = await store.lock(conns[loc.owner], key, timeout)
                where[key] = loc.owner
            current[key] = None if found is None else json.loads(found.value)
        written = apply_operations(operations, current)
        records: dict[str, Record] = {}
        for shard_id in sorted({where[k] for k in written}):
            values = {k: encode_value(v) for k, v in sorted(written.items()) if where[k] == shard_id}
            for key, stored in (await store.upsert_many(conns[shard_id], values, timeout)).items():
                records[key] = Record.of(key, stored, shard_id)
        return records, sorted({r.shard for r in records.values()})

    async def _decide(self, gid: Gid, participants: Sequence[str]) -> str:
        """Durably record ``commit`` unless recovery recorded ``abort`` first; the decision in force."""
        timeout = self.router.config.query_timeout
        try:
            async with self.router.connection(self.coordinator_shard, "tx_log") as conn:
                # One round trip. set_config(..., true) lasts until the end of this statement's transaction,
                # whose commit therefore waits for the WAL flush whatever the server's default. If the row
                # already exists (recovery recorded 'abort' first), the insert does nothing and the existing
                # decision is returned.
                decision = await conn.fetchval(
                    "WITH durable AS (SELECT set_config('synchronous_commit', 'on', true)), "
                    "inserted AS (INSERT INTO distributed_tx_log (gid, decision, participants, decided_at) "
                    "VALUES ($1, 'commit', $2, now()) ON CONFLICT (gid) DO NOTHING RETURNING decision) "
                    "SELECT coalesce((SELECT decision FROM inserted), "
                    "(SELECT decision FROM distributed_tx_log WHERE gid = $1)) FROM durable",
                    gid.log_gid,
                    list(participants),
                    timeout=timeout,
                )
        except (ShardingError, asyncpg.PostgresError) as error:
            raise TransactionInDoubt(
                f"transaction {gid.txid}: the commit decision could not be confirmed on coordinator shard "
                f"{self.coordinator_shard} ({error}); recovery will resolve it"
            ) from error
        return str(decision)

    async def _rollback_prepared(self, gid: Gid, shard_ids: Iterable[str]) -> None:
        """Roll back prepared participants; failures are left to recovery (no commit was decided)."""
        for shard_id in shard_ids:
            with contextlib.suppress(ShardingError, asyncpg.PostgresError):
                async with self.router.connection(shard_id, "rollback_prepared") as conn:
                    await conn.execute(f"ROLLBACK PREPARED '{gid.for_participant(shard_id)}'")

    async def transfer(self, source: str, target: str, amount: int) -> TxResult:
        return await self.execute([Transfer(source, target, amount)])

    async def multi_set(self, values: Mapping[str, Any]) -> TxResult:
        return await self.execute([MultiSet(dict(values))])


# ----------------------------------------------------------------------------- recovery (pure)


class Action(StrEnum):
    COMMIT = "commit"
    ROLLBACK = "rollback"
    WAIT = "wait"  # in doubt: no decision yet and younger than the grace period, or coordinator unknown


@dataclass(frozen=True)
class PreparedTx:
    """A prepared transaction found on a shard; ``age`` (seconds) as measured by that shard's clock."""

    shard: str
    gid: str
    age: float


@dataclass(frozen=True)
class LogEntry:
    gid: str
    decision: str | None
    participants: tuple[str, ...] = ()
    completed: bool = False


@dataclass(frozen=True)
class Resolution:
    shard: str
    gid: str
    action: Action
    reason: str


@dataclass(frozen=True)
class RecoveryPlan:
    resolutions: tuple[Resolution, ...] = ()
    record_abort: tuple[str, ...] = ()  # log gids to mark 'abort' before their participants roll back
    mark_completed: tuple[str, ...] = ()  # log gids with no prepared participant left

    @property
    def in_doubt(self) -> int:
        return sum(1 for r in self.resolutions if r.action is Action.WAIT)


def decide_recovery(
    prepared: Sequence[PreparedTx],
    log: Mapping[str, LogEntry],
    *,
    tag: str,
    grace: float,
    readable_coordinators: Iterable[str],
    observed_shards: Iterable[str],
) -> RecoveryPlan:
    """What recovery does with each prepared transaction of this cluster (pure).

    ``log`` maps log gids to their row on the coordinator; ``readable_coordinators`` are the coordinator
    shards whose log could be read (an unreadable log never leads to a rollback); ``observed_shards`` are the
    shards whose prepared transactions were listed (a log row is completed only when all its participants
    were observed without a prepared transaction left).
    """
    if grace < 0:
        raise ValueError(f"grace period must be >= 0 seconds, got {grace}")
    readable = set(readable_coordinators)
    observed = set(observed_shards)
    resolutions: list[Resolution] = []
    aborts: list[str] = []
    still_prepared: set[str] = set()
    for tx in sorted(prepared, key=lambda t: (t.gid, t.shard)):
        gid = Gid.parse(tx.gid)
        if gid is None or gid.tag != tag or gid.participant is None:
            continue  # not a transaction of this cluster's coordinators
        still_prepared.add(gid.log_gid)
        entry = log.get(gid.log_gid)
        if gid.coordinator not in readable:
            reason = (
                f"coordinator shard {gid.coordinator} is unreachable or unknown: cannot read the decision"
            )
            resolutions.append(Resolution(tx.shard, tx.gid, Action.WAIT, reason))
        elif entry is not None and entry.decision == "commit":
            resolutions.append(Resolution(tx.shard, tx.gid, Action.COMMIT, "decision is commit"))
        elif entry is not None and entry.decision == "abort":
            resolutions.append(Resolution(tx.shard, tx.gid, Action.ROLLBACK, "decision is abort"))
        elif entry is not None and entry.decision is not None:
            reason = f"unknown decision {entry.decision!r} in the log"
            resolutions.append(Resolution(tx.shard, tx.gid, Action.WAIT, reason))
        elif tx.age >= grace:
            if gid.log_gid not in aborts:
                aborts.append(gid.log_gid)
            reason = f"no decision after {tx.age:.0f}s (grace {grace:.0f}s): presumed abort"
            resolutions.append(Resolution(tx.shard, tx.gid, Action.ROLLBACK, reason))
        else:
            reason = f"no decision yet, {tx.age:.1f}s old (grace {grace:.0f}s)"
            resolutions.append(Resolution(tx.shard, tx.gid, Action.WAIT, reason))
    completed = [
        gid
        for gid, entry in sorted(log.items())
        if entry.decision in ("commit", "abort")
        and not entry.completed
        and gid not in still_prepared
        and set(entry.participants) <= observed
    ]
    return RecoveryPlan(tuple(resolutions), tuple(aborts), tuple(completed))


# ----------------------------------------------------------------------------- recovery (I/O)


@dataclass
class RecoveryReport:
    committed: int = 0
    rolled_back: int = 0
    in_doubt: int = 0
    completed: int = 0
    errors: list[str] = field(default_factory=list)
    waiting: list[str] = field(default_factory=list)


async def list_prepared(router: Router, shard_id: str, tag: str) -> list[PreparedTx]:
    async with router.connection(shard_id, "recovery") as conn:
        rows = await conn.fetch(
            "SELECT gid, extract(epoch FROM now() - prepared)::float8 AS age FROM pg_prepared_xacts "
            "WHERE database = current_database() AND gid LIKE $1",
            f"{GID_VERSION}:{tag}:%",
            timeout=router.config.query_timeout,
        )
    return [PreparedTx(shard_id, r["gid"], float(r["age"])) for r in rows]


async def _read_log(router: Router, tag: str, coordinator: str, gids: Sequence[str]) -> dict[str, LogEntry]:
    async with router.connection(coordinator, "recovery") as conn:
        rows = await conn.fetch(
            "SELECT gid, decision, participants, completed_at IS NOT NULL AS completed "
            "FROM distributed_tx_log WHERE gid = ANY($1::text[]) OR (completed_at IS NULL AND gid LIKE $2) "
            "ORDER BY created_at LIMIT 10000",
            list(gids),
            f"{GID_VERSION}:{tag}:{coordinator}:%",
            timeout=router.config.query_timeout,
        )
    return {
        r["gid"]: LogEntry(r["gid"], r["decision"], tuple(r["participants"] or ()), bool(r["completed"]))
        for r in rows
    }


async def recover(router: Router, cluster: str, grace: float) -> RecoveryReport:
    """Resolve this cluster's in-doubt prepared transactions on every configured shard."""
    tag = cluster_tag(cluster)
    report = RecoveryReport()
    prepared: list[PreparedTx] = []
    observed: list[str] = []
    for shard_id in sorted(router.endpoints):
        try:
            prepared.extend(await list_prepared(router, shard_id, tag))
            observed.append(shard_id)
        except ShardingError as error:
            report.errors.append(str(error))
    coordinators = {g.coordinator for g in (Gid.parse(p.gid) for p in prepared) if g is not None}
    if router.endpoints:
        coordinators.add(min(router.endpoints))  # completes the default coordinator's finished rows
    log: dict[str, LogEntry] = {}
    readable: list[str] = []

    async def read_logs() -> None:
        log.clear()
        readable.clear()
        for coordinator in sorted(coordinators):
            if coordinator not in router.endpoints:
                continue
            gids = [
                g.log_gid for g in (Gid.parse(p.gid) for p in prepared) if g and g.coordinator == coordinator
            ]
            try:
                log.update(await _read_log(router, tag, coordinator, gids))
                readable.append(coordinator)
            except ShardingError as error:
                report.errors.append(str(error))

    def plan() -> RecoveryPlan:
        return decide_recovery(
            prepared, log, tag=tag, grace=grace, readable_coordinators=readable, observed_shards=observed
        )

    await read_logs()
    first = plan()
    if first.record_abort:
        entries = {p.gid: p for p in prepared}
        for log_gid in first.record_abort:
            gid = Gid.parse(log_gid)
            assert gid is not None
            participants = sorted({p.shard for p in entries.values() if p.gid.startswith(log_gid + ":")})
            try:
                async with router.connection(gid.coordinator, "recovery") as conn, conn.transaction():
                    await conn.execute("SET LOCAL synchronous_commit = on")
                    await conn.execute(
                        "INSERT INTO distributed_tx_log (gid, decision, participants, decided_at) "
                        "VALUES ($1, 'abort', $2, now()) ON CONFLICT (gid) DO UPDATE SET decision = 'abort', "
                        "decided_at = now() WHERE distributed_tx_log.decision IS NULL",
                        log_gid,
                        participants,
                    )
            except ShardingError as error:
                report.errors.append(str(error))
        await read_logs()  # a coordinator may have recorded commit first: decide again from the log
    final = plan()
    for resolution in final.resolutions:
        if resolution.action is Action.WAIT:
            report.in_doubt += 1
            report.waiting.append(f"{resolution.shard}: {resolution.gid}: {resolution.reason}")
            continue
        verb = "COMMIT PREPARED" if resolution.action is Action.COMMIT else "ROLLBACK PREPARED"
        try:
            async with router.connection(resolution.shard, "recovery") as conn:
                await conn.execute(f"{verb} '{resolution.gid}'")
        except asyncpg.UndefinedObjectError:
            pass  # resolved concurrently (by the coordinator or another recovery run)
        except ShardingError as error:
            report.errors.append(str(error))
            report.in_doubt += 1
            continue
        if resolution.action is Action.COMMIT:
            report.committed += 1
        else:
            report.rolled_back += 1
        metrics.RECOVERED.labels(resolution.action.value).inc()
    if final.mark_completed:
        by_coordinator: dict[str, list[str]] = {}
        for log_gid in final.mark_completed:
            gid = Gid.parse(log_gid)
            if gid is not None:
                by_coordinator.setdefault(gid.coordinator, []).append(log_gid)
        for coordinator, gids in by_coordinator.items():
            try:
                async with router.connection(coordinator, "recovery") as conn:
                    status = await conn.execute(
                        "UPDATE distributed_tx_log SET completed_at = now() "
                        "WHERE gid = ANY($1::text[]) AND completed_at IS NULL",
                        gids,
                    )
                report.completed += int(status.rsplit(" ", 1)[1])
            except ShardingError as error:
                report.errors.append(str(error))
    return report
