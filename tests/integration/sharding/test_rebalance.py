"""Online rebalancing on real PostgreSQL: 100k keys under a concurrent workload, crashes, resumes, drains."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field, replace

import pytest

from fortress.sharding.errors import CrashInjected, KeyNotFound, TransactionConflict
from fortress.sharding.rebalance import Checkpoint, Phase, Progress, Rebalancer
from fortress.sharding.ring import Ring, moved_keys
from fortress.sharding.router import Router, ShardEndpoint
from tests.integration.sharding.support import contents, create_shards, load, make_router, reset
from tests.support.postgres import PgCluster, PgFactory

IDS = ("shard-a", "shard-b", "shard-c", "shard-d", "shard-e")
OLD = Ring.build(IDS[:4], virtual_nodes=256)
NEW = Ring.build(IDS, virtual_nodes=256)


@pytest.fixture(scope="module")
def shards(pg_factory: PgFactory) -> Iterator[dict[str, PgCluster]]:
    clusters = create_shards(pg_factory, 5)
    yield dict(zip(IDS, clusters, strict=True))
    for cluster in clusters:
        pg_factory.destroy(cluster)


@pytest.fixture
async def clean(shards: dict[str, PgCluster]) -> dict[str, PgCluster]:
    await reset(shards.values())
    return shards


@dataclass
class Workload:
    """Writers that each own their keys (so the latest acknowledged write is known) and readers."""

    router: Router
    keys: list[str]
    writers: int = 6
    readers: int = 3
    counters: dict[str, int] = field(default_factory=dict)  # last acknowledged version of each key
    exists: dict[str, bool] = field(default_factory=dict)
    created: list[str] = field(default_factory=list)
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    ops: int = 0
    reads: int = 0
    deletes: int = 0

    async def writer(self, index: int) -> None:
        rng = random.Random(index)
        owned = self.keys[index :: self.writers]
        for key in owned:
            self.counters.setdefault(key, 0)
            self.exists.setdefault(key, True)
        serial = 0
        while not self.stop.is_set():
            key = rng.choice(owned)
            roll = rng.random()
            try:
                if roll < 0.05 and self.exists[key]:
                    await self.router.delete(key)
                    self.exists[key] = False
                    self.deletes += 1
                elif roll < 0.10:  # a brand-new key written while keys move
                    serial += 1
                    fresh = f"new:{index}:{serial:06d}"
                    await self.router.set(fresh, {"v": 1, "k": fresh})
                    self.created.append(fresh)
                    self.counters[fresh], self.exists[fresh] = 1, True
                    key = fresh
                else:
                    await self.router.set(key, {"v": self.counters[key] + 1, "k": key})
                    self.counters[key] += 1
                    self.exists[key] = True
            except TransactionConflict:
                continue  # not acknowledged and not applied: the row lock wait timed out
            self.ops += 1
            try:
                record = await self.router.get(key)
                assert self.exists[key], f"{key} was deleted but reads {record.value}"
                assert record.value == {"v": self.counters[key], "k": key}, f"{key}: stale read {record}"
            except KeyNotFound:
                assert not self.exists[key], f"{key} lost: acknowledged version {self.counters[key]}"
            await asyncio.sleep(0)

    async def reader(self, index: int) -> None:
        rng = random.Random(1000 + index)
        while not self.stop.is_set():
            key = rng.choice(self.keys)
            before, existed = self.counters.get(key, 0), self.exists.get(key, True)
            try:
                record = await self.router.get(key)
                assert record.value["v"] >= before, (
                    f"{key}: read version {record.value['v']} < acked {before}"
                )
            except KeyNotFound:
                assert not existed or not self.exists.get(key, True), f"{key} vanished during the move"
            self.reads += 1
            await asyncio.sleep(0)

    def start(self) -> list[asyncio.Task[None]]:
        return [asyncio.create_task(self.writer(i)) for i in range(self.writers)] + [
            asyncio.create_task(self.reader(i)) for i in range(self.readers)
        ]

    async def finish(self, tasks: list[asyncio.Task[None]]) -> None:
        self.stop.set()
        await asyncio.gather(*tasks)  # re-raises any failed assertion of the workload


async def audit(shards: dict[str, PgCluster], workload: Workload, loaded: list[str]) -> dict[str, int]:
    """Every key exactly once, on its owner under NEW, with its latest acknowledged value."""
    stored = await contents(shards)
    seen: dict[str, str] = {}
    for shard_id, rows in stored.items():
        for key, value in rows.items():
            assert key not in seen, f"{key} duplicated on {seen[key]} and {shard_id}"
            seen[key] = shard_id
            assert NEW.owner(key) == shard_id, f"{key} on {shard_id}, owner {NEW.owner(key)}"
            assert value["k"] == key
    for key in loaded + workload.created:
        if workload.exists.get(key, True):
            assert key in seen, f"{key} lost"
            assert stored[seen[key]][key]["v"] == workload.counters.get(key, 0), f"{key} has an old value"
        else:
            assert key not in seen, f"deleted {key} came back"
    return {shard_id: len(rows) for shard_id, rows in stored.items()}


@pytest.fixture
async def moving_router(clean: dict[str, PgCluster]) -> AsyncIterator[Router]:
    router = make_router(clean, NEW, previous=OLD, lock_timeout=5.0)
    try:
        yield router
    finally:
        await router.close()


async def test_rebalance_100k_keys_under_a_concurrent_workload(
    clean: dict[str, PgCluster], moving_router: Router
) -> None:
    loaded = [f"key:{i:07d}" for i in range(100_000)]
    await load(clean, OLD, ((k, {"v": 0, "k": k}) for k in loaded))
    must_move = sum(1 for _ in moved_keys(OLD, NEW, loaded))
    assert must_move <= 1.15 * len(loaded) / len(IDS)  # at most 1.15 x the ideal 1/(N+1)
    workload = Workload(moving_router, [k for k in loaded if int(k[4:]) % 20 == 0])  # 5000 hot keys
    tasks = workload.start()
    saved: list[Progress] = []

    async def save(progress: Progress) -> None:
        saved.append(progress)

    rebalancer = Rebalancer(
        moving_router, OLD, NEW, batch_size=1000, max_keys_per_second=500_000, scan_size=5000, save=save
    )
    await asyncio.sleep(0.2)  # the workload runs before, during and after the moves
    result = await rebalancer.run(Progress(Phase.PLANNING, OLD.fingerprint, NEW.fingerprint))
    await asyncio.sleep(0.2)
    await workload.finish(tasks)
    assert result.phase is Phase.COMPLETED and result.checkpoint is None
    # keys the workload deleted before their batch no longer need to move
    assert must_move - workload.deletes <= result.total <= must_move
    assert result.total - workload.deletes <= result.moved <= result.total
    assert any(p.phase is Phase.MOVING and p.checkpoint for p in saved)
    assert workload.ops > 500 and workload.reads > 500
    counts = await audit(clean, workload, loaded)
    assert counts["shard-e"] > 0.8 * len(loaded) / len(IDS)
    print(
        f"moved {result.moved} of {len(loaded)} keys; workload {workload.ops} writes {workload.reads} reads"
    )


class Crash:
    """A hook that crashes the executor at ``step`` of the ``batch``-th batch."""

    def __init__(self, step: str, batch: int) -> None:
        self.step, self.batch, self.seen = step, batch, 0

    def __call__(self, step: str) -> None:
        if step == "locked":
            self.seen += 1
        if step == self.step and self.seen == self.batch:
            raise CrashInjected(f"{step} of batch {self.batch}")


@pytest.mark.parametrize("where", ["copied", "verified", "deleting", "cancel"])
async def test_killed_mid_batch_the_rebalance_resumes_from_its_checkpoint(
    clean: dict[str, PgCluster], moving_router: Router, where: str
) -> None:
    loaded = [f"key:{i:07d}" for i in range(25_000)]
    await load(clean, OLD, ((k, {"v": 0, "k": k}) for k in loaded))
    workload = Workload(moving_router, loaded[::25], writers=4, readers=2)
    tasks = workload.start()
    saved: list[Progress] = []

    async def save(progress: Progress) -> None:
        saved.append(progress)

    options = {
        "batch_size": 300,
        "max_keys_per_second": 500_000,
        "scan_size": 2000,
        "save": save,
        "save_interval": 0,
    }
    start = Progress(Phase.PLANNING, OLD.fingerprint, NEW.fingerprint)
    if where == "cancel":
        stalled = asyncio.Event()

        async def stall(step: str) -> None:
            if step == "copied" and len([p for p in saved if p.checkpoint]) >= 3:
                stalled.set()
                await asyncio.sleep(3600)  # held mid-batch, rows locked, copy committed on the target

        first = Rebalancer(moving_router, OLD, NEW, hook=stall, **options)  # type: ignore[arg-type]
        task = asyncio.create_task(first.run(start))
        await asyncio.wait_for(stalled.wait(), 60)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    else:
        crashing = Rebalancer(moving_router, OLD, NEW, hook=Crash(where, 8), **options)  # type: ignore[arg-type]
        with pytest.raises(CrashInjected):
            await crashing.run(start)
    last = saved[-1]
    assert last.phase is Phase.MOVING and last.checkpoint is not None and 0 < last.moved < last.total
    resumed_saves: list[Progress] = []

    async def save_resumed(progress: Progress) -> None:
        resumed_saves.append(progress)

    resumed = Rebalancer(moving_router, OLD, NEW, **{**options, "save": save_resumed})  # type: ignore[arg-type]
    # the operator resumes from what it persisted in status: the wire form of the last saved progress
    persisted = Progress.from_wire(last.wire())
    assert persisted is not None and persisted.checkpoint == last.checkpoint
    result = await resumed.run(persisted)
    await workload.finish(tasks)
    assert result.phase is Phase.COMPLETED
    assert result.total - workload.deletes <= result.moved <= result.total
    # it resumed at the checkpoint instead of starting over (test databases sort keys like Python: C locale)
    mark = (last.checkpoint.source, last.checkpoint.after)
    moving = [p.checkpoint for p in resumed_saves if p.phase is Phase.MOVING and p.checkpoint]
    assert moving and all((c.source, c.after) >= mark for c in moving)
    assert resumed_saves[0].moved >= last.moved - 300  # recounted: moved = total - remaining
    await audit(clean, workload, loaded)


async def test_draining_a_shard_empties_it(clean: dict[str, PgCluster]) -> None:
    four = Ring.build(IDS[:4], virtual_nodes=64)
    without_b = Ring.build(("shard-a", "shard-c", "shard-d"), virtual_nodes=64)
    loaded = [f"d:{i}" for i in range(8000)]
    await load(clean, four, ((k, {"v": 0, "k": k}) for k in loaded))
    router = make_router(clean, without_b, previous=four)
    try:
        result = await Rebalancer(router, four, without_b, batch_size=500, max_keys_per_second=100_000).run(
            Progress(Phase.PLANNING, four.fingerprint, without_b.fingerprint)
        )
        assert result.phase is Phase.COMPLETED
        assert result.total == sum(1 for k in loaded if four.owner(k) == "shard-b")
        stored = await contents(clean)
        assert stored["shard-b"] == {} and sum(len(v) for v in stored.values()) == len(loaded)
        for key in loaded[:50]:
            assert (await router.get(key)).value == {"v": 0, "k": key}
    finally:
        await router.close()


async def test_rate_limit_paces_the_moves(clean: dict[str, PgCluster]) -> None:
    loaded = [f"r:{i}" for i in range(3000)]
    await load(clean, OLD, ((k, {"v": 0, "k": k}) for k in loaded))
    router = make_router(clean, NEW, previous=OLD)
    now = [0.0]  # a clock that only the pacing moves: database time does not count

    async def sleep(seconds: float) -> None:
        now[0] += seconds

    try:
        rebalancer = Rebalancer(
            router, OLD, NEW, batch_size=50, max_keys_per_second=1000, sleep=sleep, clock=lambda: now[0]
        )
        result = await rebalancer.run(Progress(Phase.PLANNING, OLD.fingerprint, NEW.fingerprint))
        assert result.phase is Phase.COMPLETED and result.moved > 400
        # moving N keys at 1000 keys/s takes N / 1000 seconds of (paced) time
        assert now[0] == pytest.approx(result.moved / 1000, abs=0.2)
        assert result.rate is not None and result.rate <= 1000 * 1.05
    finally:
        await router.close()


async def test_shards_sharing_a_database_copy_nothing(clean: dict[str, PgCluster]) -> None:
    shared = clean["shard-a"]
    endpoints = [ShardEndpoint(s, shared.dsn()) for s in IDS[:4]] + [
        ShardEndpoint("shard-e", clean["shard-e"].dsn())
    ]
    loaded = [f"s:{i}" for i in range(4000)]
    await load({"shard-a": shared}, Ring.build(["shard-a"]), ((k, {"v": 0, "k": k}) for k in loaded))
    router = Router(endpoints, make_router({}, NEW, previous=OLD).routing)
    try:
        result = await Rebalancer(router, OLD, NEW, batch_size=500, max_keys_per_second=100_000).run(
            Progress(Phase.PLANNING, OLD.fingerprint, NEW.fingerprint)
        )
        to_e = sum(1 for k in loaded if NEW.owner(k) == "shard-e")
        assert result.moved == result.total == to_e  # only the keys leaving the shared database move
        stored = await contents({"shard-a": shared, "shard-e": clean["shard-e"]})
        assert len(stored["shard-e"]) == to_e and len(stored["shard-a"]) == len(loaded) - to_e
    finally:
        await router.close()


async def test_resume_with_a_stale_checkpoint_is_harmless(clean: dict[str, PgCluster]) -> None:
    loaded = [f"c:{i:05d}" for i in range(6000)]
    await load(clean, OLD, ((k, {"v": 0, "k": k}) for k in loaded))
    router = make_router(clean, NEW, previous=OLD)
    try:
        stale = Progress(
            Phase.MOVING,
            OLD.fingerprint,
            NEW.fingerprint,
            total=0,
            moved=0,
            checkpoint=Checkpoint("shard-c", "c:03000"),
        )
        result = await Rebalancer(router, OLD, NEW, batch_size=400, max_keys_per_second=100_000).run(stale)
        assert result.phase is Phase.COMPLETED
        stored = await contents(clean)
        assert sum(len(v) for v in stored.values()) == len(loaded)
        assert all(NEW.owner(k) == s for s, rows in stored.items() for k in rows)
        assert result == replace(result, moved=result.total)
    finally:
        await router.close()
