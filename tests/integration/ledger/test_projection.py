"""The balance projection on real PostgreSQL: never skips under concurrent writers, exactly once, crashes."""

from __future__ import annotations

import asyncio
import random
from typing import Any

import asyncpg
import pytest

from fortress.ledger import events as ev
from fortress.ledger.account import InsufficientCredits
from fortress.ledger.projections import BalanceProjector
from fortress.ledger.store import EventStore, RetryPolicy
from tests.integration.ledger.support import (  # noqa: F401
    migrated_pool,
    pool_fixture,
    replay_from_events,
    store_fixture,
)
from tests.support.postgres import PgCluster, PgFactory

pytestmark = pytest.mark.postgres


async def read_model(pool: Any) -> dict[str, tuple[int, int, int]]:
    rows = await pool.fetch("SELECT tenant_id, balance, reserved, version FROM credit_balances_read_model")
    return {r["tenant_id"]: (r["balance"], r["reserved"], r["version"]) for r in rows}


async def replayed_model(pool: Any) -> dict[str, tuple[int, int, int]]:
    tenants = [r[0] for r in await pool.fetch("SELECT DISTINCT aggregate_id FROM event_store")]
    model = {}
    for tenant in tenants:
        state = await replay_from_events(pool, tenant)
        model[tenant] = (state.balance, state.reserved, state.version)
    return model


async def slow_writer(pool: Any, tenant: str, count: int) -> None:
    """Appends whose commits lag behind their positions: later positions become visible first."""
    for version in range(1, count + 1):
        async with pool.acquire() as conn, conn.transaction():
            await conn.execute(
                "INSERT INTO event_store (aggregate_type, aggregate_id, version, event_type, data) "
                "VALUES ('credit_account', $1, $2, 'CreditsPurchased', '{\"amount\": 3}')",
                tenant,
                version,
            )
            await conn.execute("SELECT pg_sleep(0.02)")


async def test_projector_never_skips_an_event_under_concurrent_writers(store: EventStore, pool: Any) -> None:
    projector = BalanceProjector(pool, batch_size=37)
    stop = asyncio.Event()
    policy = RetryPolicy(attempts=100, base=0.001, cap=0.02)

    async def writer(number: int) -> None:
        rng = random.Random(number)
        tenant = f"tenant-{number % 7}"
        open_reservations: list[str] = []
        for step in range(25):
            roll = rng.random()
            command: ev.Command
            if open_reservations and roll < 0.4:  # negative deltas of `reserved` (and `balance`)
                rid = open_reservations.pop(0)
                command = ev.Release(rid) if roll < 0.1 else ev.Consume(rid, 1)
            elif roll < 0.75:
                command = ev.Reserve(f"r{number}-{step}", rng.randint(1, 30))
            else:
                command = ev.Purchase(rng.randint(1, 50))
            try:
                await store.execute(tenant, command, policy=policy)
            except InsufficientCredits:
                continue
            if isinstance(command, ev.Reserve):
                open_reservations.append(command.reservation_id)

    async def project() -> None:
        while not stop.is_set():
            await projector.run_once()

    running = asyncio.create_task(project())
    await asyncio.gather(
        *(writer(n) for n in range(20)), *(slow_writer(pool, f"slow-{n}", 15) for n in range(3))
    )
    stop.set()
    await running
    await projector.catch_up()
    expected = await replayed_model(pool)
    assert len(expected) == 10
    assert await read_model(pool) == expected
    lag = await projector.lag()
    assert lag.events == 0 and lag.seconds == 0 and lag.position == lag.head


async def test_a_batch_that_lowers_reserved_applies(store: EventStore, pool: Any) -> None:
    """A batch whose net reserved delta is negative (consumed, released) updates the row."""
    projector = BalanceProjector(pool)
    await store.execute("t1", ev.Purchase(1_000))
    await store.execute("t1", ev.Reserve("job", 300))
    assert await projector.catch_up() == 2
    await store.execute("t1", ev.Consume("job", 120))
    await store.execute("t1", ev.Release("job"))
    await store.execute("t2", ev.Purchase(5))  # a new tenant in the same batch
    assert await projector.catch_up() == 3
    assert await read_model(pool) == {"t1": (880, 0, 4), "t2": (5, 0, 1)} == await replayed_model(pool)
    available = await pool.fetchval("SELECT available FROM credit_balances_read_model WHERE tenant_id = 't1'")
    assert available == 880


async def test_rebuild_from_scratch_equals_incremental(store: EventStore, pool: Any) -> None:
    for n in range(30):
        await store.execute(f"t{n % 4}", ev.Purchase(n + 1))
    projector = BalanceProjector(pool, batch_size=8)
    assert await projector.catch_up() == 30
    incremental = await read_model(pool)
    await pool.execute("UPDATE credit_balances_read_model SET balance = 0")  # a damaged read model
    assert await projector.rebuild() == 30
    assert await read_model(pool) == incremental == await replayed_model(pool)
    assert await projector.catch_up() == 0


async def test_lag_in_events_and_seconds(store: EventStore, pool: Any) -> None:
    projector = BalanceProjector(pool)
    for n in range(5):
        await store.execute("t1", ev.Purchase(n + 1))
    await asyncio.sleep(0.05)
    lag = await projector.lag()
    assert (lag.position, lag.events) == (0, 5)
    assert lag.seconds > 0.04
    await projector.catch_up()
    lag = await projector.lag()
    assert (lag.events, lag.seconds, lag.position) == (0, 0.0, lag.head)


async def test_crash_between_append_and_projection_catches_up(pg_factory: PgFactory) -> None:
    pg = await asyncio.to_thread(pg_factory.create, durable=True)  # fsync and synchronous commit on
    try:
        await _crash_and_catch_up(pg)
    finally:
        await asyncio.to_thread(pg_factory.destroy, pg)


async def _crash_and_catch_up(pg: PgCluster) -> None:
    pool = await migrated_pool(pg)
    store = EventStore(pool)
    for n in range(300):
        await store.execute(f"t{n % 5}", ev.Purchase(1 + n % 9))
    batches: list[int] = []

    def crash_after_three(applied: int) -> None:
        batches.append(applied)
        if len(batches) == 3:
            raise RuntimeError("projector process dies")

    with pytest.raises(RuntimeError):
        await BalanceProjector(pool, batch_size=40, on_batch=crash_after_three).catch_up()
    assert (await BalanceProjector(pool).lag()).position > 0
    # and the database itself crashes while a projector transaction is open
    async with pool.acquire() as conn:
        tx = conn.transaction()
        await tx.start()
        await conn.execute("SELECT position FROM projection_checkpoints FOR UPDATE")
        await conn.execute("UPDATE credit_balances_read_model SET balance = balance + 1000000")
        await asyncio.to_thread(pg.kill9)
        with pytest.raises((asyncpg.PostgresError, asyncpg.InterfaceError, OSError)):
            await tx.commit()
    await pool.close()
    await asyncio.to_thread(pg.start)
    pool = await asyncpg.create_pool(pg.dsn(), min_size=1, max_size=4)
    try:
        projector = BalanceProjector(pool, batch_size=40)
        assert await projector.catch_up() == 300 - 120
        assert await read_model(pool) == await replayed_model(pool)
        assert (await projector.lag()).events == 0
    finally:
        await pool.close()
