"""The router against real PostgreSQL shards: values, versions, replicas, timeouts and circuit breakers."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import asyncpg
import pytest

from fortress import metrics
from fortress.sharding.breaker import BreakerConfig, State
from fortress.sharding.errors import (
    CircuitOpen,
    InvalidKey,
    InvalidValue,
    KeyNotFound,
    ShardTimeout,
    ShardUnavailable,
    VersionConflict,
)
from fortress.sharding.ring import Ring
from fortress.sharding.router import Router, ShardEndpoint
from tests.integration.sharding.support import (  # noqa: F401 (the shards fixture)
    FOUR_SHARDS,
    contents,
    create_shards,
    four_shards_fixture,
    make_router,
    reset,
)
from tests.support.postgres import PgCluster, PgFactory

IDS = FOUR_SHARDS
RING = Ring.build(IDS, virtual_nodes=64)


@pytest.fixture
async def router(shards: dict[str, PgCluster]) -> AsyncIterator[Router]:
    await reset(shards.values())
    created = make_router(shards, RING)
    try:
        yield created
    finally:
        await created.close()


async def test_set_get_delete_round_trip_lands_on_the_owner(
    router: Router, shards: dict[str, PgCluster]
) -> None:
    values = {f"user:{i}": {"name": f"u{i}", "tags": [i, "x"], "nested": {"n": None}} for i in range(200)}
    for key, value in values.items():
        record = await router.set(key, value)
        assert record.version == 1 and record.shard == RING.owner(key)
    for key, value in values.items():
        record = await router.get(key)
        assert record.value == value and record.shard == RING.owner(key)
    stored = await contents(shards)
    for shard_id, rows in stored.items():
        assert all(RING.owner(k) == shard_id for k in rows)
    assert sum(len(rows) for rows in stored.values()) == 200
    assert len([s for s, rows in stored.items() if rows]) == 4  # spread over every shard
    await router.delete("user:7")
    with pytest.raises(KeyNotFound, match="user:7"):
        await router.get("user:7")
    with pytest.raises(KeyNotFound):
        await router.delete("user:7")


async def test_versions_and_optimistic_concurrency(router: Router) -> None:
    assert (await router.set("k", 1, expected_version=0)).version == 1  # create-only
    with pytest.raises(VersionConflict, match="expected version 0 but it is at version 1"):
        await router.set("k", 2, expected_version=0)
    assert (await router.set("k", 2, expected_version=1)).version == 2
    with pytest.raises(VersionConflict, match="expected version 1 but it is at version 2"):
        await router.set("k", 3, expected_version=1)
    with pytest.raises(VersionConflict, match="it does not exist"):
        await router.set("absent", 3, expected_version=4)
    assert (await router.set("k", [3])).version == 3
    assert (await router.get("k")).value == [3]


@pytest.mark.parametrize(
    ("key", "value", "error"),
    [
        ("", 1, InvalidKey),
        ("x" * 513, 1, InvalidKey),
        ("a\nb", 1, InvalidKey),
        ("ok", float("inf"), InvalidValue),
        ("ok", {"s": "nul\x00"}, InvalidValue),
        ("ok", {1, 2}, InvalidValue),
    ],
)
async def test_bad_keys_and_values_are_refused_before_any_query(
    router: Router, key: str, value: object, error: type[Exception]
) -> None:
    with pytest.raises(error):
        await router.set(key, value)


async def test_unicode_keys(router: Router) -> None:
    for key in ("ünïcödé", "emoji-🚀", "slash/and:colon", "x" * 512):
        await router.set(key, {"k": key})
        assert (await router.get(key)).value == {"k": key}


async def test_stale_reads_go_to_a_replica(pg_factory: PgFactory, shards: dict[str, PgCluster]) -> None:
    await reset(shards.values())
    primary = shards["shard-a"]
    replica = await asyncio.to_thread(pg_factory.create_replica, primary)
    try:
        ring = Ring.build(["shard-a"], virtual_nodes=8)
        router = Router(
            [ShardEndpoint("shard-a", primary.dsn(), (replica.dsn(),))], make_router({}, ring).routing
        )
        try:
            await router.set("r", {"v": 1})
            lsn = await primary.fetchval("SELECT pg_current_wal_insert_lsn()::text")
            await replica.wait_for_replay(lsn)
            before = (
                metrics.REGISTRY.get_sample_value(
                    "fortress_sharding_queries_total", {"shard_id": "shard-a", "op": "get_replica"}
                )
                or 0.0
            )
            assert (await router.get("r", allow_stale=True)).value == {"v": 1}
            after = metrics.REGISTRY.get_sample_value(
                "fortress_sharding_queries_total", {"shard_id": "shard-a", "op": "get_replica"}
            )
            assert after == before + 1
            await asyncio.to_thread(replica.stop, "immediate")
            # a failed replica falls back to the primary
            assert (await router.get("r", allow_stale=True)).value == {"v": 1}
        finally:
            await router.close()
    finally:
        await asyncio.to_thread(pg_factory.destroy, replica)


async def test_one_shard_down_opens_its_circuit_and_the_others_keep_serving(pg_factory: PgFactory) -> None:
    # synchronous_commit on: an acknowledged write survives the kill -9 (fsync stays off: the OS lives on)
    started = await asyncio.to_thread(create_shards, pg_factory, 4, synchronous_commit=True)
    clusters = dict(zip(IDS, started, strict=True))
    router = make_router(clusters, RING, breaker=BreakerConfig(failure_threshold=3, open_duration=0.5))
    try:
        keys = {
            shard: [k for k in (f"k{i}" for i in range(500)) if RING.owner(k) == shard][:10] for shard in IDS
        }
        for shard_keys in keys.values():
            for key in shard_keys:
                await router.set(key, {"v": key})
        victim = clusters["shard-c"]
        await asyncio.to_thread(victim.kill9)
        errors = []
        for key in keys["shard-c"][:5]:
            with pytest.raises(ShardUnavailable) as caught:
                await router.get(key)
            errors.append(caught.value)
        assert not isinstance(errors[0], CircuitOpen) and "shard shard-c is unavailable" in str(errors[0])
        assert any(isinstance(e, CircuitOpen) for e in errors[3:])
        assert "circuit is open" in str(errors[-1]) and errors[-1].shard_id == "shard-c"
        assert router.circuit_state("shard-c") is State.OPEN
        circuit = {"shard_id": "shard-c"}
        assert metrics.REGISTRY.get_sample_value("fortress_sharding_circuit_state", circuit) == 2
        # every other shard keeps serving reads and writes
        for shard in ("shard-a", "shard-b", "shard-d"):
            for key in keys[shard]:
                assert (await router.get(key)).value == {"v": key}
                await router.set(key, {"v": "again"})
            assert router.circuit_state(shard) is State.CLOSED
        # the shard comes back: after openDuration a half-open probe closes the circuit
        await asyncio.to_thread(victim.start)
        await asyncio.sleep(0.6)
        assert (await router.get(keys["shard-c"][0])).value == {"v": keys["shard-c"][0]}
        assert router.circuit_state("shard-c") is State.CLOSED
    finally:
        await router.close()
        for cluster in clusters.values():
            await asyncio.to_thread(pg_factory.destroy, cluster)


async def test_query_timeout_is_a_clear_error(router: Router, shards: dict[str, PgCluster]) -> None:
    key = next(k for k in (f"t{i}" for i in range(100)) if RING.owner(k) == "shard-b")
    await router.set(key, 1)
    fast = make_router(shards, RING, query_timeout=0.3, lock_timeout=5.0)
    locker = await shards["shard-b"].connect()
    try:
        await locker.execute("BEGIN; LOCK TABLE shard_data IN ACCESS EXCLUSIVE MODE")
        with pytest.raises(ShardTimeout, match=r"no answer within 0\.3s"):
            await fast.get(key)
    finally:
        await locker.close()
        await fast.close()
    assert (await router.get(key)).value == 1


async def test_unconfigured_and_unmigrated_shards_are_reported(pg: PgCluster) -> None:
    ring = Ring.build(["bare"], virtual_nodes=4)
    router = Router([ShardEndpoint("bare", pg.dsn())], make_router({}, ring).routing)
    try:
        with pytest.raises(ShardUnavailable, match=r"schema missing.*fortress migrate up"):
            await router.get("x")
    finally:
        await router.close()
    nowhere = Router([], make_router({}, ring).routing)
    with pytest.raises(ShardUnavailable, match="no connection is configured"):
        await nowhere.get("x")


async def test_a_changed_shard_dsn_closes_the_old_pool(pg: PgCluster) -> None:
    """A shard's Secret changes (another DSN): the router closes the old pool; its connections end."""
    ring = Ring.build(["bare"], virtual_nodes=4)
    old, new = (f"{pg.dsn()}?application_name=shard-{n}" for n in ("old", "new"))
    router = Router([ShardEndpoint("bare", old)], make_router({}, ring).routing)
    admin = await asyncpg.connect(pg.dsn(), timeout=10)

    async def count(application: str) -> int:
        sql = "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1"
        return int(await admin.fetchval(sql, application))

    try:
        with pytest.raises(ShardUnavailable, match="schema missing"):  # a query opens the pool
            await router.get("x")
        assert await count("shard-old") >= 1
        router.update(endpoints=[ShardEndpoint("bare", new)])
        for _ in range(100):
            if await count("shard-old") == 0:
                break
            await asyncio.sleep(0.05)
        assert await count("shard-old") == 0
        with pytest.raises(ShardUnavailable, match="schema missing"):
            await router.get("x")
        assert await count("shard-new") >= 1
    finally:
        await router.close()
        await admin.close()
