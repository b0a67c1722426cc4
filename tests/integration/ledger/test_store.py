"""The event store on real PostgreSQL: concurrency, idempotency, snapshots, time travel, batches."""

from __future__ import annotations

import asyncio
import datetime as dt
import random
from typing import Any

import asyncpg
import pytest

from fortress.ledger import events as ev
from fortress.ledger.account import InsufficientCredits, invariant_violation
from fortress.ledger.events import Event
from fortress.ledger.store import (
    AppendRequest,
    ConcurrencyError,
    EventStore,
    IdempotencyConflict,
    RetryPolicy,
    safe_position,
)
from tests.integration.ledger.support import pool_fixture, replay_from_events, store_fixture  # noqa: F401

pytestmark = pytest.mark.postgres


async def test_append_load_and_typed_version_conflict(store: EventStore) -> None:
    first = await store.append("t1", 0, [Event(ev.CREDITS_PURCHASED, {"amount": 50})])
    assert [e.version for e in first] == [1]
    with pytest.raises(ConcurrencyError) as caught:
        await store.append("t1", 0, [Event(ev.CREDITS_PURCHASED, {"amount": 5})])
    assert caught.value.aggregate_id == "t1" and caught.value.expected_version == 0
    # an expected version ahead of the stream is a conflict too, and writes nothing
    with pytest.raises(ConcurrencyError, match="no event at the expected version"):
        await store.append("t1", 5, [Event(ev.CREDITS_PURCHASED, {"amount": 5})])
    loaded = await store.load("t1")
    assert (loaded.state.version, loaded.state.balance) == (1, 50)
    assert await store.stream_version("t1") == 1


async def test_append_only_is_enforced_by_the_database(store: EventStore, pool: Any) -> None:
    await store.append("t1", 0, [Event(ev.CREDITS_PURCHASED, {"amount": 50})])
    with pytest.raises(asyncpg.PostgresError, match="append-only"):
        await pool.execute("UPDATE event_store SET data = '{}'")
    with pytest.raises(asyncpg.PostgresError, match="append-only"):
        await pool.execute("DELETE FROM event_store")


async def test_idempotency_same_payload_replays_and_different_payload_conflicts(
    store: EventStore, pool: Any
) -> None:
    first = await store.execute("t1", ev.Purchase(100), idempotency_key="k-1")
    again = await store.execute("t1", ev.Purchase(100), idempotency_key="k-1")
    assert not first.replayed and again.replayed
    assert again.events == first.events and again.state == first.state
    assert await pool.fetchval("SELECT count(*) FROM event_store") == 1
    with pytest.raises(IdempotencyConflict):
        await store.execute("t1", ev.Purchase(999), idempotency_key="k-1")
    with pytest.raises(IdempotencyConflict):
        await store.execute("t2", ev.Purchase(100), idempotency_key="k-1")
    assert await pool.fetchval("SELECT count(*) FROM event_store") == 1
    expires = await pool.fetchval(
        "SELECT expires_at - created_at FROM event_idempotency_keys WHERE key='k-1'"
    )
    assert expires == dt.timedelta(hours=24)


async def test_idempotency_ttl_is_configurable_and_at_least_a_day(pool: Any) -> None:
    with pytest.raises(ValueError, match="24h"):
        EventStore(pool, idempotency_ttl=dt.timedelta(hours=23))
    longer = EventStore(pool, idempotency_ttl=dt.timedelta(hours=48))
    await longer.execute("t1", ev.Purchase(1), idempotency_key="k")
    ttl = await pool.fetchval("SELECT expires_at - created_at FROM event_idempotency_keys WHERE key='k'")
    assert ttl == dt.timedelta(hours=48)
    assert await longer.purge_expired_keys() == 0


async def test_concurrent_requests_with_one_key_write_once(store: EventStore, pool: Any) -> None:
    results = await asyncio.gather(
        *(store.execute("t1", ev.Purchase(7), idempotency_key="same") for _ in range(10))
    )
    assert sum(not r.replayed for r in results) == 1
    assert all(r.events == results[0].events for r in results)
    assert await pool.fetchval("SELECT count(*) FROM event_store") == 1


async def test_fifty_concurrent_writers_on_one_tenant(store: EventStore, pool: Any) -> None:
    """No lost update, no duplicated idempotent request, invariants hold; balance equals the replay."""
    await store.execute("hot", ev.Purchase(1000))
    policy = RetryPolicy(attempts=200, base=0.001, cap=0.05)
    accepted: list[int] = []
    rejected = 0

    async def writer(number: int) -> None:
        nonlocal rejected
        rng = random.Random(number)
        for step in range(6):
            key = f"w{number}-{step}"
            choice = rng.choice(["purchase", "reserve", "consume"])
            if choice == "purchase":
                command: ev.Command = ev.Purchase(rng.randint(1, 20))
            elif choice == "reserve":
                command = ev.Reserve(f"r{number}-{step}", rng.randint(1, 60))
            else:
                command = ev.Reserve(f"c{number}-{step}", rng.randint(1, 30))
            try:
                result = await store.execute("hot", command, idempotency_key=key, policy=policy)
            except InsufficientCredits:
                rejected += 1
                continue
            accepted.append(result.events[0].version)
            # the client retries the same request (e.g. after a timeout): answered, not written again
            retry = await store.execute("hot", command, idempotency_key=key, policy=policy)
            assert retry.replayed and retry.events == result.events
            if choice == "consume":
                spent = await store.execute(
                    "hot", ev.Consume(f"c{number}-{step}", 1), idempotency_key=key + "-c", policy=policy
                )
                accepted.append(spent.events[0].version)

    await asyncio.gather(*(writer(n) for n in range(50)))
    total = await pool.fetchval("SELECT count(*) FROM event_store WHERE aggregate_id = 'hot'")
    assert total == 1 + len(accepted)
    assert sorted(accepted) == list(range(2, total + 1))  # every accepted command got its own version
    keys = await pool.fetchval("SELECT count(*) FROM event_idempotency_keys")
    assert keys == len(accepted)
    replayed = await replay_from_events(pool, "hot")
    assert invariant_violation(replayed) is None
    loaded = await store.load("hot")
    assert loaded.state == replayed
    assert replayed.version == total


async def test_snapshots_every_interval_and_replay_equal_without(store: EventStore, pool: Any) -> None:
    await store.execute("t1", ev.Purchase(10_000))
    for n in range(34):
        await store.execute("t1", ev.Reserve(f"r{n}", 10 + n))
        if n % 2:
            await store.execute("t1", ev.Consume(f"r{n}", 5))
    versions = [r["version"] for r in await pool.fetch("SELECT version FROM aggregate_snapshots ORDER BY 1")]
    assert versions == [10, 20, 30, 40, 50]
    with_snap = await store.load("t1")
    without = await store.load("t1", use_snapshots=False)
    assert with_snap.state == without.state
    assert with_snap.snapshot_version == 50 and with_snap.events_replayed == without.state.version - 50
    assert without.snapshot_version is None
    for version in (0, 1, 9, 10, 11, 35, 50):
        a = await store.load("t1", version=version)
        b = await store.load("t1", version=version, use_snapshots=False)
        assert a.state == b.state and a.state.version == version
    assert await store.prune_snapshots(keep=2) == 3
    assert (await store.load("t1")).state == without.state


async def test_time_travel_by_version_and_timestamp(store: EventStore, pool: Any) -> None:
    await store.execute("t1", ev.Purchase(100))
    await store.execute("t1", ev.Reserve("a", 40))
    middle = await pool.fetchval("SELECT clock_timestamp()")
    await asyncio.sleep(0.01)
    await store.execute("t1", ev.Consume("a", 40))
    await store.execute("t1", ev.Purchase(5))
    then = await store.load("t1", as_of=middle)
    assert (then.state.version, then.state.balance, then.state.reserved) == (2, 100, 40)
    at1 = await store.load("t1", version=1)
    assert (at1.state.balance, at1.state.reserved) == (100, 0)
    before = await store.load("t1", as_of=middle - dt.timedelta(days=1))
    assert before.state.version == 0
    now = await store.load("t1", as_of=dt.datetime.now(dt.UTC) + dt.timedelta(minutes=1))
    assert (now.state.version, now.state.balance) == (4, 65)


async def test_batch_append_is_one_statement_all_or_nothing(store: EventStore, pool: Any) -> None:
    batch = [
        AppendRequest(f"b{n}", 0, [Event(ev.CREDITS_PURCHASED, {"amount": n + 1})] * 3) for n in range(100)
    ]
    stored = await store.append_batch(batch)
    assert [len(s) for s in stored] == [3] * 100
    positions = [e.global_position for s in stored for e in s]
    assert len(set(positions)) == 300
    # one conflicting stream fails the whole batch
    bad = [
        AppendRequest("new", 0, [Event(ev.CREDITS_PURCHASED, {"amount": 1})]),
        AppendRequest("b1", 0, batch[1].events),
    ]
    with pytest.raises(ConcurrencyError):
        await store.append_batch(bad)
    assert await pool.fetchval("SELECT count(*) FROM event_store WHERE aggregate_id = 'new'") == 0


async def test_safe_position_waits_for_writers_in_flight(store: EventStore, pool: Any) -> None:
    await store.append("t1", 0, [Event(ev.CREDITS_PURCHASED, {"amount": 1})])
    async with pool.acquire() as writer, pool.acquire() as reader:
        tx = writer.transaction()
        await tx.start()
        await writer.execute(
            "INSERT INTO event_store (aggregate_type, aggregate_id, version, event_type, data) "
            "VALUES ('credit_account', 'slow', 1, 'CreditsPurchased', '{\"amount\": 1}')"
        )
        await store.append("t2", 0, [Event(ev.CREDITS_PURCHASED, {"amount": 1})])  # commits position 3
        waiting = asyncio.create_task(safe_position(reader))
        await asyncio.sleep(0.2)
        assert not waiting.done()  # position 2 is in flight: no horizon may pass it yet
        await tx.commit()
        assert await asyncio.wait_for(waiting, 5) == 3


async def test_safe_position_names_a_stuck_writer(store: EventStore, pool: Any) -> None:
    async with pool.acquire() as writer, pool.acquire() as reader:
        tx = writer.transaction()
        await tx.start()
        await writer.execute(
            "INSERT INTO event_store (aggregate_type, aggregate_id, version, event_type, data) "
            "VALUES ('credit_account', 'stuck', 1, 'CreditsPurchased', '{\"amount\": 1}')"
        )
        pid = writer.get_server_pid()
        with pytest.raises(TimeoutError) as raised:
            await safe_position(reader, max_wait=0.3)
        await tx.rollback()
    assert f"pid {pid} (idle in transaction" in str(raised.value)
    assert "cannot move past position 1" in str(raised.value)


async def test_one_idempotency_key_twice_in_a_batch_writes_nothing(store: EventStore, pool: Any) -> None:
    purchase = [Event(ev.CREDITS_PURCHASED, {"amount": 5})]
    batch = [
        AppendRequest("a", 0, purchase, idempotency_key="dup", request_hash="h1"),
        AppendRequest("b", 0, purchase, idempotency_key="dup", request_hash="h1"),
    ]
    with pytest.raises(asyncpg.UniqueViolationError, match="more than one event of the same append"):
        await pool.execute(
            "INSERT INTO event_store (aggregate_type, aggregate_id, version, event_type, idempotency_key) "
            "VALUES ('credit_account', 'a', 1, 'CreditsPurchased', 'dup'), "
            "('credit_account', 'b', 1, 'CreditsPurchased', 'dup')"
        )
    with pytest.raises(Exception, match="dup"):
        await store.append_batch(batch)
    assert await pool.fetchval("SELECT count(*) FROM event_store") == 0
    assert await pool.fetchval("SELECT count(*) FROM event_stream_versions") == 0


async def test_a_batch_binding_many_keys_records_each_once(store: EventStore, pool: Any) -> None:
    purchase = [Event(ev.CREDITS_PURCHASED, {"amount": 5})]
    batch = [
        AppendRequest(f"s{n}", 0, purchase, idempotency_key=f"key-{n}", request_hash="h") for n in range(50)
    ]
    stored = await store.append_batch(batch)
    bound = await pool.fetch(
        "SELECT key, first_position, aggregate_id FROM event_idempotency_keys ORDER BY key"
    )
    assert len(bound) == 50
    positions = {f"key-{n}": events[0].global_position for n, events in enumerate(stored)}
    assert {r["key"]: r["first_position"] for r in bound} == positions
    assert all(r["aggregate_id"] == r["key"].replace("key-", "s") for r in bound)
    with pytest.raises(Exception, match="key-7"):
        await store.append_batch(
            [AppendRequest("other", 0, purchase, idempotency_key="key-7", request_hash="h")]
        )
    assert await pool.fetchval("SELECT count(*) FROM event_store WHERE aggregate_id = 'other'") == 0


async def test_partitions_are_created_ahead(store: EventStore) -> None:
    created = await store.ensure_partitions(5)
    assert all(name.startswith("event_store_20") for name in created)
    assert await store.ensure_partitions(5) == []
