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

gids are described in :mod:`fortress.sharding.gid`; recovery is :mod:`fortress.sharding.recovery`.

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
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg

from fortress.metrics import sharding as metrics
from fortress.sharding import store
from fortress.sharding.errors import PreparedTransactionsDisabled, ShardingError, TransactionAborted
from fortress.sharding.gid import SHARD_ID, Gid, cluster_tag
from fortress.sharding.operations import MultiSet, Operation, Transfer, apply_operations, validate_operations
from fortress.sharding.ring import Location
from fortress.sharding.router import Record, Router, encode_value

Hook = Callable[[str], Awaitable[None] | None]


class TransactionInDoubt(ShardingError):
    """The decision could not be confirmed; recovery will commit or roll back every participant."""

    code = "transaction_in_doubt"


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

    def _gid(self, involved: Sequence[str]) -> Gid:
        gid = Gid(self.tag, self.coordinator_shard, uuid.uuid4().hex)
        for shard_id in (self.coordinator_shard, *involved):
            if not SHARD_ID.match(shard_id):
                raise ShardingError(f"shard id {shard_id!r} is not a DNS label: it cannot appear in a gid")
        return gid

    async def _execute(self, operations: Sequence[Operation], started: float) -> TxResult:
        keys = validate_operations(operations)
        locations = {key: self.router.locate(key) for key in keys}
        involved = sorted({s for loc in locations.values() for s in (loc.owner, loc.source) if s})
        if len(involved) > 1:
            await self.require_prepared(involved)
        gid = self._gid(involved)
        written = await self._write_and_prepare(gid, operations, keys, locations, involved)
        if isinstance(written, TxResult):
            return written  # a single participant: committed in one phase
        records, participants = written
        # Every participant is prepared and its connection released; now decide.
        if time.perf_counter() - started > self.timeout:
            await self._rollback_prepared(gid, participants)
            raise TransactionAborted(f"transaction {gid.txid} exceeded its {self.timeout}s deadline")
        decision = await self._decide(gid, participants)
        if decision != "commit":
            await self._rollback_prepared(gid, participants)
            raise TransactionAborted(f"transaction {gid.txid} was aborted by recovery before it committed")
        await self._step("decided")
        pending = await self._commit_prepared(gid, participants)
        return TxResult(gid.txid, tuple(participants), records, True, tuple(pending))

    async def _write_and_prepare(
        self,
        gid: Gid,
        operations: Sequence[Operation],
        keys: Sequence[str],
        locations: Mapping[str, Location],
        involved: Sequence[str],
    ) -> TxResult | tuple[dict[str, Record], list[str]]:
        """Write on every shard involved; commit a single participant, else prepare every participant."""
        timeout = self.router.config.query_timeout
        prepared: list[str] = []
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
        return records, participants

    async def _commit_prepared(self, gid: Gid, participants: Sequence[str]) -> list[str]:
        """COMMIT PREPARED everywhere (decided); the participants left for recovery to commit."""
        timeout = self.router.config.query_timeout
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
        return pending

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
