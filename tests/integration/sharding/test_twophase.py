"""Cross-shard two-phase commit on real PostgreSQL: atomicity, crash injection at every step, recovery."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest

from fortress.sharding.errors import (
    CrashInjected,
    InsufficientFunds,
    KeyNotFound,
    NotABalance,
    PreparedTransactionsDisabled,
    TransactionAborted,
    TransactionConflict,
)
from fortress.sharding.operations import MultiSet, Transfer
from fortress.sharding.recovery import recover
from fortress.sharding.ring import Ring
from fortress.sharding.router import Router
from fortress.sharding.twophase import Coordinator
from tests.integration.sharding.support import (  # noqa: F401 (the shards fixture)
    FOUR_SHARDS,
    contents,
    create_shards,
    four_shards_fixture,
    make_router,
    prepared_left,
    reset,
)
from tests.support.postgres import PgCluster, PgFactory

IDS = FOUR_SHARDS
RING = Ring.build(IDS, virtual_nodes=64)
CLUSTER = "test/shards"
START = 1000


def accounts_per_shard(n: int = 5) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {s: [] for s in IDS}
    for i in range(10_000):
        key = f"acct:{i}"
        if len(found[RING.owner(key)]) < n:
            found[RING.owner(key)].append(key)
    return found


ACCOUNTS = accounts_per_shard()
ALL_ACCOUNTS = [k for keys in ACCOUNTS.values() for k in keys]


@pytest.fixture
async def router(shards: dict[str, PgCluster]) -> AsyncIterator[Router]:
    await reset(shards.values())
    created = make_router(shards, RING, lock_timeout=1.0)
    try:
        for key in ALL_ACCOUNTS:
            await created.set(key, {"balance": START, "owner": key})
        yield created
    finally:
        await created.close()


async def balances(shards: dict[str, PgCluster]) -> dict[str, int]:
    found: dict[str, int] = {}
    for rows in (await contents(shards)).values():
        for key, value in rows.items():
            if key.startswith("acct:"):
                assert key not in found, f"{key} is on two shards"
                found[key] = value["balance"]
    return found


async def test_cross_shard_transfer_commits_on_both_shards(
    router: Router, shards: dict[str, PgCluster]
) -> None:
    source, target = ACCOUNTS["shard-a"][0], ACCOUNTS["shard-c"][0]
    result = await Coordinator(router, CLUSTER).transfer(source, target, 250)
    assert result.two_phase and result.participants == ("shard-a", "shard-c") and not result.pending_commits
    assert result.records[source].value == {"balance": 750, "owner": source}
    after = await balances(shards)
    assert after[source] == 750 and after[target] == 1250 and sum(after.values()) == START * len(ALL_ACCOUNTS)
    assert await prepared_left(shards.values()) == []
    log = await shards["shard-a"].fetchval(
        "SELECT row(decision, participants, completed_at IS NOT NULL)::text FROM distributed_tx_log"
    )
    assert log == '(commit,"{shard-a,shard-c}",t)'


async def test_same_shard_transfer_needs_no_prepare(router: Router) -> None:
    a, b = ACCOUNTS["shard-b"][:2]
    result = await Coordinator(router, CLUSTER).transfer(a, b, 1)
    assert not result.two_phase and result.participants == ("shard-b",)


async def test_multi_set_is_atomic_across_shards(router: Router, shards: dict[str, PgCluster]) -> None:
    values = {f"cfg:{i}": {"i": i} for i in range(12)}
    result = await Coordinator(router, CLUSTER).multi_set(values)
    assert len(result.participants) > 1
    for key, value in values.items():
        assert (await router.get(key)).value == value


@pytest.mark.parametrize(
    ("operation", "error"),
    [
        (Transfer(ACCOUNTS["shard-a"][0], ACCOUNTS["shard-b"][0], START + 1), InsufficientFunds),
        (Transfer(ACCOUNTS["shard-a"][0], "acct:missing", 1), KeyNotFound),
        (Transfer(ACCOUNTS["shard-a"][0], "cfg:plain", 1), NotABalance),
    ],
)
async def test_business_errors_roll_everything_back(
    router: Router, shards: dict[str, PgCluster], operation: Transfer, error: type[Exception]
) -> None:
    await router.set("cfg:plain", {"x": 1})
    with pytest.raises(error):
        await Coordinator(router, CLUSTER).execute([MultiSet({"marker": 1}), operation])
    with pytest.raises(KeyNotFound):
        await router.get("marker")
    assert sum((await balances(shards)).values()) == START * len(ALL_ACCOUNTS)
    assert await prepared_left(shards.values()) == []


def three_shard_transaction() -> list[Transfer]:
    return [
        Transfer(ACCOUNTS["shard-a"][1], ACCOUNTS["shard-b"][1], 100),
        Transfer(ACCOUNTS["shard-c"][1], ACCOUNTS["shard-d"][1], 40),
    ]


STEPS = [
    ("prepared:shard-a", False),
    ("prepared:shard-b", False),
    ("prepared:shard-c", False),
    ("prepared:shard-d", False),  # every participant prepared, no decision yet
    ("decided", True),
    ("committed:shard-a", True),
    ("committed:shard-b", True),  # half-way through committing
    ("committed:shard-c", True),
    ("committed:shard-d", True),
    ("completed", True),
]


@pytest.mark.parametrize(("crash_at", "committed"), STEPS)
async def test_crash_at_every_step_then_recovery(
    router: Router, shards: dict[str, PgCluster], crash_at: str, committed: bool
) -> None:
    total = START * len(ALL_ACCOUNTS)

    def hook(step: str) -> None:
        if step == crash_at:
            raise CrashInjected(step)

    with pytest.raises(CrashInjected):
        await Coordinator(router, CLUSTER, hook=hook).execute(three_shard_transaction())
    left = await prepared_left(shards.values())
    assert left or crash_at in ("committed:shard-d", "completed")
    # before the grace period nothing without a decision is touched; decided ones are committed
    early = await recover(router, CLUSTER, grace=60.0)
    if committed:
        assert early.in_doubt == 0 and early.committed == len(left)
    else:
        assert early.in_doubt == len(left) and early.rolled_back == 0
    report = await recover(router, CLUSTER, grace=0.0)
    assert report.errors == []
    assert await prepared_left(shards.values()) == []
    after = await balances(shards)
    assert sum(after.values()) == total  # money is neither created nor destroyed
    moved = after[ACCOUNTS["shard-a"][1]] == START - 100
    assert moved is committed
    assert (after[ACCOUNTS["shard-d"][1]] == START + 40) is committed
    await recover(router, CLUSTER, grace=0.0)  # marks the log rows completed
    pending = await shards["shard-a"].fetchval(
        "SELECT count(*) FROM distributed_tx_log WHERE completed_at IS NULL"
    )
    assert pending == 0


async def test_recovery_aborting_first_makes_the_coordinator_roll_back(
    router: Router, shards: dict[str, PgCluster]
) -> None:
    async def hook(step: str) -> None:
        if step == "prepared:shard-d":  # a slow coordinator: recovery decides while it is away
            report = await recover(router, CLUSTER, grace=0.0)
            assert report.rolled_back == 4

    with pytest.raises(TransactionAborted, match="aborted by recovery"):
        await Coordinator(router, CLUSTER, hook=hook).execute(three_shard_transaction())
    assert sum((await balances(shards)).values()) == START * len(ALL_ACCOUNTS)
    assert await prepared_left(shards.values()) == []
    decision = await shards["shard-a"].fetchval("SELECT decision FROM distributed_tx_log")
    assert decision == "abort"


async def test_recovery_ignores_other_clusters(router: Router, shards: dict[str, PgCluster]) -> None:
    def crash(step: str) -> None:
        if step == "prepared:shard-b":
            raise CrashInjected(step)

    with pytest.raises(CrashInjected):
        await Coordinator(router, "other/cluster", hook=crash).transfer(
            ACCOUNTS["shard-a"][2], ACCOUNTS["shard-b"][2], 5
        )
    report = await recover(router, CLUSTER, grace=0.0)
    assert report.rolled_back == 0 and report.in_doubt == 0
    assert len(await prepared_left(shards.values())) == 2
    assert (await recover(router, "other/cluster", grace=0.0)).rolled_back == 2


async def test_concurrent_transfers_keep_the_total(router: Router, shards: dict[str, PgCluster]) -> None:
    coordinator = Coordinator(router, CLUSTER)
    rng = random.Random(5)
    outcomes: dict[str, int] = {"ok": 0, "conflict": 0, "funds": 0}

    async def worker(seed: int) -> None:
        local = random.Random(seed)
        for _ in range(15):
            a, b = local.sample(ALL_ACCOUNTS, 2)
            try:
                await coordinator.transfer(a, b, local.randint(1, 300))
                outcomes["ok"] += 1
            except TransactionConflict:
                outcomes["conflict"] += 1
            except InsufficientFunds:
                outcomes["funds"] += 1

    await asyncio.gather(*(worker(rng.randint(0, 10**6)) for _ in range(8)))
    assert outcomes["ok"] > 0
    after = await balances(shards)
    assert sum(after.values()) == START * len(ALL_ACCOUNTS) and min(after.values()) >= 0
    assert await prepared_left(shards.values()) == []


async def test_a_shard_without_prepared_transactions_is_refused_up_front(pg_factory: PgFactory) -> None:
    clusters = await asyncio.to_thread(create_shards, pg_factory, 2)
    await asyncio.to_thread(pg_factory.destroy, clusters[1])
    disabled = await asyncio.to_thread(create_shards, pg_factory, 1, max_prepared_transactions=0)
    shards = {"shard-a": clusters[0], "shard-b": disabled[0]}
    ring = Ring.build(shards, virtual_nodes=32)
    router = make_router(shards, ring)
    try:
        keys = {s: [k for k in (f"acct:{i}" for i in range(200)) if ring.owner(k) == s][:2] for s in shards}
        for group in keys.values():
            for key in group:
                await router.set(key, {"balance": 10})
        coordinator = Coordinator(router, CLUSTER)
        with pytest.raises(PreparedTransactionsDisabled, match="shard-b has max_prepared_transactions = 0"):
            await coordinator.transfer(keys["shard-a"][0], keys["shard-b"][0], 1)
        assert (await router.get(keys["shard-a"][0])).value == {"balance": 10}
        # a transaction within one shard needs no prepare and still works
        await coordinator.transfer(keys["shard-b"][0], keys["shard-b"][1], 3)
        assert (await router.get(keys["shard-b"][1])).value == {"balance": 13}
    finally:
        await router.close()
        for cluster in (clusters[0], disabled[0]):
            await asyncio.to_thread(pg_factory.destroy, cluster)


async def test_gids_follow_the_documented_format(router: Router, shards: dict[str, PgCluster]) -> None:
    seen: list[Any] = []

    async def hook(step: str) -> None:
        if step == "prepared:shard-b":
            conn = await asyncpg.connect(shards["shard-b"].dsn())
            try:
                seen.extend(r["gid"] for r in await conn.fetch("SELECT gid FROM pg_prepared_xacts"))
            finally:
                await conn.close()

    await Coordinator(router, CLUSTER, hook=hook).transfer(ACCOUNTS["shard-a"][3], ACCOUNTS["shard-b"][3], 1)
    assert len(seen) == 1
    prefix, tag, coordinator, txid, participant = seen[0].split(":")
    assert (prefix, coordinator, participant, len(tag), len(txid)) == ("fx1", "shard-a", "shard-b", 8, 32)
