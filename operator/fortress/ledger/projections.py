"""The ``credit_balances_read_model`` projection: exactly once, rebuildable, with lag in events and seconds.

Each batch runs in one transaction that locks the projection's checkpoint row (``FOR UPDATE``),
reads the events after it up to the store's safe horizon (``store.safe_position``: no event can
still appear below it), folds them into per-tenant deltas, applies them to the read model in one statement
and moves the checkpoint, then commits. Updates and checkpoint commit together, so a crash anywhere
replays nothing twice and loses nothing: the next run starts from the committed checkpoint. Two
projectors of the same name (two operator replicas, ``fortress ledger rebuild``) serialize on the
checkpoint row.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

from fortress.ledger import events as ev
from fortress.ledger.account import balance_delta
from fortress.ledger.events import Event
from fortress.ledger.store import json_value, safe_position
from fortress.metrics import ledger as metrics

log = logging.getLogger("fortress.ledger")

PROJECTION: Final = "credit_balances"

_EVENTS_SQL: Final = """
SELECT global_position, aggregate_id, version, event_type, data FROM event_store
 WHERE global_position > $1 AND global_position <= $2 AND aggregate_type = $3
 ORDER BY global_position LIMIT $4
"""

# Deltas are added to existing rows by an UPDATE; tenants seen for the first time are INSERTed with
# their deltas as the values (from zero). Not one INSERT ... ON CONFLICT DO UPDATE: PostgreSQL checks
# the proposed row's CHECK constraints before it finds the conflict, so a batch whose net `reserved`
# delta is negative (more consumed than reserved) would fail `reserved >= 0` although the updated
# row is valid. Concurrent projectors serialize on the checkpoint row, so no insert races.
_APPLY_SQL: Final = """
WITH d AS (
    SELECT * FROM unnest($1::text[], $2::bigint[], $3::bigint[], $4::bigint[], $5::bigint[])
             AS d(tenant, balance, reserved, version, position)
), updated AS (
    UPDATE credit_balances_read_model r
       SET balance = r.balance + d.balance,
           reserved = r.reserved + d.reserved,
           version = d.version,
           last_position = d.position,
           updated_at = now()
      FROM d
     WHERE r.tenant_id = d.tenant AND r.last_position < d.position
)
INSERT INTO credit_balances_read_model (tenant_id, balance, reserved, version, last_position, updated_at)
SELECT d.tenant, d.balance, d.reserved, d.version, d.position, now()
  FROM d
 WHERE NOT EXISTS (SELECT 1 FROM credit_balances_read_model r WHERE r.tenant_id = d.tenant)
"""

_LAG_SQL: Final = """
SELECT c.position,
       (SELECT count(*) FROM event_stream_versions v WHERE v.global_position > c.position) AS events,
       greatest(0, extract(epoch FROM now() - (SELECT min(v.recorded_at) FROM event_stream_versions v
                                                WHERE v.global_position > c.position)))::float8 AS seconds,
       (SELECT coalesce(max(global_position), 0) FROM event_stream_versions) AS head
  FROM (SELECT coalesce((SELECT position FROM projection_checkpoints WHERE projection = $1), 0) AS position) c
"""


@dataclass(frozen=True)
class Lag:
    """How far the projection is behind the store."""

    position: int  # last global position applied
    head: int  # highest global position in the store
    events: int  # events not yet applied
    seconds: float  # age of the oldest event not yet applied (0 when caught up)


@dataclass
class _TenantDelta:
    balance: int = 0
    reserved: int = 0
    version: int = 0
    position: int = 0


def fold(rows: list[tuple[str, int, int, Event]]) -> dict[str, _TenantDelta]:
    """Per-tenant (balance, reserved) deltas of ``(tenant, version, position, event)`` rows (pure)."""
    deltas: dict[str, _TenantDelta] = {}
    for tenant, version, position, event in rows:
        d_balance, d_reserved = balance_delta(event)
        delta = deltas.setdefault(tenant, _TenantDelta())
        delta.balance += d_balance
        delta.reserved += d_reserved
        delta.version = version
        delta.position = position
    return deltas


class BalanceProjector:
    """Keeps ``credit_balances_read_model`` up to date from the event store."""

    def __init__(
        self,
        pool: Any,
        *,
        name: str = PROJECTION,
        batch_size: int = 500,
        on_batch: Callable[[int], None] | None = None,
    ) -> None:
        self.pool = pool
        self.name = name
        self.batch_size = batch_size
        self.on_batch = on_batch  # tests: called with the applied count after each committed batch

    async def _ensure_checkpoint(self, conn: Any) -> None:
        await conn.execute(
            "INSERT INTO projection_checkpoints (projection) VALUES ($1) ON CONFLICT DO NOTHING", self.name
        )

    async def _apply_batch(self, conn: Any, horizon: int) -> tuple[int, bool]:
        """Inside a transaction holding the checkpoint: apply one batch; (applied, checkpoint moved)."""
        checkpoint = int(
            await conn.fetchval(
                "SELECT position FROM projection_checkpoints WHERE projection = $1 FOR UPDATE", self.name
            )
        )
        if checkpoint >= horizon:
            return 0, False
        rows = await conn.fetch(_EVENTS_SQL, checkpoint, horizon, ev.AGGREGATE_TYPE, self.batch_size)
        folded = fold(
            [
                (
                    str(r["aggregate_id"]),
                    int(r["version"]),
                    int(r["global_position"]),
                    Event(str(r["event_type"]), json_value(r["data"])),
                )
                for r in rows
            ]
        )
        if folded:
            tenants = list(folded)
            await conn.execute(
                _APPLY_SQL,
                tenants,
                [folded[t].balance for t in tenants],
                [folded[t].reserved for t in tenants],
                [folded[t].version for t in tenants],
                [folded[t].position for t in tenants],
            )
        # A short batch consumed everything up to the horizon (positions burnt by rollbacks included).
        new_checkpoint = int(rows[-1]["global_position"]) if len(rows) == self.batch_size else horizon
        await conn.execute(
            "UPDATE projection_checkpoints SET position = $2, updated_at = now() WHERE projection = $1",
            self.name,
            new_checkpoint,
        )
        return len(rows), True

    async def run_once(self) -> int:
        """Apply one batch (at most ``batch_size`` events); the number applied."""
        async with self.pool.acquire() as conn:
            await self._ensure_checkpoint(conn)
            horizon = await safe_position(conn)
            async with conn.transaction():
                applied, _ = await self._apply_batch(conn, horizon)
        self._count(applied)
        return applied

    async def catch_up(self) -> int:
        """Apply batches until the projection reaches the current safe horizon; the number applied."""
        total = 0
        async with self.pool.acquire() as conn:
            await self._ensure_checkpoint(conn)
            horizon = await safe_position(conn)
            while True:
                async with conn.transaction():
                    applied, moved = await self._apply_batch(conn, horizon)
                self._count(applied)
                total += applied
                if not moved:
                    return total

    async def rebuild(self) -> int:
        """Empty the read model and replay every event, in one transaction; the number applied.

        Readers keep seeing the old read model until the new one commits.
        """
        total = 0
        async with self.pool.acquire() as conn:
            await self._ensure_checkpoint(conn)
            horizon = await safe_position(conn)
            async with conn.transaction():
                await conn.fetchval(
                    "SELECT position FROM projection_checkpoints WHERE projection = $1 FOR UPDATE", self.name
                )
                await conn.execute("DELETE FROM credit_balances_read_model")
                await conn.execute(
                    "UPDATE projection_checkpoints SET position = 0, updated_at = now() "
                    "WHERE projection = $1",
                    self.name,
                )
                while True:
                    applied, moved = await self._apply_batch(conn, horizon)
                    total += applied
                    if not moved:
                        break
        self._count(total)
        return total

    async def lag(self) -> Lag:
        """The projection's position and lag, also exported as metrics."""
        row = await self.pool.fetchrow(_LAG_SQL, self.name)
        lag = Lag(int(row["position"]), int(row["head"]), int(row["events"]), float(row["seconds"] or 0.0))
        metrics.PROJECTION_POSITION.labels(self.name).set(lag.position)
        metrics.PROJECTION_LAG_EVENTS.labels(self.name).set(lag.events)
        metrics.PROJECTION_LAG_SECONDS.labels(self.name).set(lag.seconds)
        return lag

    async def run(self, stop: asyncio.Event, poll_interval: float = 1.0) -> None:
        """Project until ``stop`` is set: catch up, then poll every ``poll_interval`` seconds."""
        while not stop.is_set():
            applied = await self.catch_up()
            if applied == 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), timeout=poll_interval)

    def _count(self, applied: int) -> None:
        if applied:
            metrics.PROJECTED_EVENTS.labels(self.name).inc(applied)
        if self.on_batch is not None:
            self.on_batch(applied)
