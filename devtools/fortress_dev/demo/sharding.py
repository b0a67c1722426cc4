"""``make demo`` step: the example ShardCluster ``tenants``, a fifth shard, a rebalance, cross-shard 2PC.

The demo gives the Secret ``tenants-shards`` four PostgreSQL servers (shard-a..shard-d) and ``tenants`` is
Ready on them (the operator migrated them). This step writes keys through the published ring, starts a
fifth server, adds shard-e to the Secret and to spec.shards, follows the rebalance in the status, runs
cross-shard transfers and prints the final per-shard key counts and imbalance.
"""

from __future__ import annotations

import asyncio
import base64
import time
from typing import Any

from fortress.adapters import migrations
from fortress.adapters.kube import CONFIGMAPS, SECRETS, Kube
from fortress.commands.shards import SHARD_CLUSTERS, collect, render
from fortress.sharding.ring import RoutingState
from fortress.sharding.router import Router, ShardEndpoint
from fortress.sharding.twophase import Coordinator

NAME = "tenants"
SECRET = "tenants-shards"
SHARDS = ("shard-a", "shard-b", "shard-c", "shard-d", "shard-e")
KEYS = 3000


async def demo(ctx: Any) -> None:
    kube = Kube(ctx.cluster, workers=4)
    try:
        await _demo(ctx, kube)
    finally:
        await kube.close()


async def _demo(ctx: Any, kube: Kube) -> None:
    say = ctx.say
    started = time.monotonic()
    say("")
    say("== sharding: ShardCluster tenants over five PostgreSQL shards ==")
    secret = await kube.get(SECRETS, ctx.namespace, SECRET) or {}
    dsns = {k: base64.b64decode(v).decode() for k, v in (secret.get("data") or {}).items() if k in SHARDS}
    fifth = await asyncio.to_thread(ctx.pg_factory.create, durable=False, max_prepared_transactions=10)
    await migrations.up(fifth.dsn(), migrations.default_migrations_dir())
    dsns["shard-e"] = fifth.dsn()
    encoded = base64.b64encode(fifth.dsn().encode()).decode()
    await kube.patch(SECRETS, ctx.namespace, SECRET, {"data": {"shard-e": encoded}})
    say(f"shard-a..shard-d are the example's servers; started shard-e on port {fifth.port}")
    await _patch(ctx, kube, {"healthCheckInterval": "2s", "rebalance": {"propagationDelay": "1s"}})
    await _wait(ctx, kube, _distinct, "the shards to be probed")

    routing = await _routing(ctx, kube)
    router = Router([ShardEndpoint(s, d) for s, d in dsns.items()], routing)
    try:
        await _write_keys(ctx, kube, router, routing)
        await _add_fifth_shard(ctx, kube)
        routing = await _routing(ctx, kube)
        router.update(routing=routing)
        await _transfers(ctx, router, routing)
    finally:
        await router.close()
    clusters_status = await asyncio.to_thread(collect, kube.blocking, ctx.namespace, NAME)
    say(render(clusters_status[0]))
    if clusters_status[0]["ready"] != "True":
        raise RuntimeError(f"ShardCluster {NAME} is not Ready: {clusters_status[0]['message']}")
    say(f"sharding demo done in {time.monotonic() - started:.1f}s")


async def _write_keys(ctx: Any, kube: Kube, router: Router, routing: RoutingState) -> None:
    t0 = time.perf_counter()
    semaphore = asyncio.Semaphore(32)

    async def put(i: int) -> None:
        async with semaphore:
            await router.set(f"tenant:{i:05d}", {"plan": ("free", "pro", "team")[i % 3], "seats": i % 50})

    await asyncio.gather(*(put(i) for i in range(KEYS)))
    elapsed = time.perf_counter() - t0
    rate = KEYS / elapsed
    ctx.say(f"wrote {KEYS} keys through ring {routing.current.fingerprint} in {elapsed:.2f}s ({rate:,.0f}/s)")
    status = await _wait(ctx, kube, lambda s: s.get("totalKeys") == KEYS, "the key counts")
    ctx.say(f"  {_counts(status)}; imbalance {status.get('imbalance')}")


async def _add_fifth_shard(ctx: Any, kube: Kube) -> None:
    spec = (await _get(ctx, kube))["spec"]
    fifth = {"id": "shard-e", "connection": {"secretKeyRef": {"name": SECRET, "key": "shard-e"}}}
    ctx.say("adding shard-e to spec.shards ...")
    await _patch(ctx, kube, {"shards": [*spec["shards"], fifth]})
    last = ""
    deadline = time.monotonic() + 30
    while True:
        status = (await _get(ctx, kube)).get("status") or {}
        reb = status.get("rebalance") or {}
        line = f"  rebalance {reb.get('phase')}: {reb.get('moved', 0)}/{reb.get('total', 0)} keys"
        if reb.get("rate") is not None:
            line += f", {reb['rate']} keys/s, ETA {reb.get('etaSeconds', '-')}s"
        if line != last and reb.get("toRing"):
            ctx.say(line)
            last = line
        if reb.get("phase") == "Completed" and status.get("shardCount") == 5 and not _moving(status):
            break
        if time.monotonic() > deadline:
            raise RuntimeError(f"the rebalance did not complete in 30s: {status.get('message')}")
        await asyncio.sleep(0.25)
    status = await _wait(
        ctx, kube, lambda s: _rebalanced(s) and s.get("totalKeys") == KEYS, "the final counts"
    )
    ctx.say(f"rebalance converged: {_counts(status)}; imbalance {status.get('imbalance')}")


async def _transfers(ctx: Any, router: Router, routing: RoutingState) -> None:
    coordinator = Coordinator(router, routing.cluster)
    source = next(f"acct:{i}" for i in range(1000) if routing.current.owner(f"acct:{i}") == "shard-a")
    target = next(f"acct:{i}" for i in range(1000) if routing.current.owner(f"acct:{i}") == "shard-e")
    await router.set(source, {"balance": 1000})
    await router.set(target, {"balance": 0})
    for amount in (100, 250, 50):
        t0 = time.perf_counter()
        result = await coordinator.transfer(source, target, amount)
        ms = (time.perf_counter() - t0) * 1000
        balances = ", ".join(f"{k}={r.value['balance']}" for k, r in sorted(result.records.items()))
        ctx.say(f"  2PC transfer {amount}: {' + '.join(result.participants)} in {ms:.1f} ms -> {balances}")


async def _get(ctx: Any, kube: Kube) -> dict[str, Any]:
    found = await kube.get(SHARD_CLUSTERS, ctx.namespace, NAME)
    if found is None:
        raise RuntimeError(f"ShardCluster {ctx.namespace}/{NAME} not found")
    return found


async def _patch(ctx: Any, kube: Kube, spec: dict[str, Any]) -> None:
    await kube.patch(SHARD_CLUSTERS, ctx.namespace, NAME, {"spec": spec})


async def _routing(ctx: Any, kube: Kube) -> RoutingState:
    config_map = await kube.get(CONFIGMAPS, ctx.namespace, f"{NAME}-ring") or {}
    return RoutingState.from_configmap_data(config_map.get("data"))


async def _wait(ctx: Any, kube: Kube, check: Any, what: str, timeout: float = 20) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        obj = await _get(ctx, kube)
        status = obj.get("status") or {}
        if status.get("observedGeneration") == obj["metadata"].get("generation") and check(status):
            return status
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what}: {status.get('message')}")
        await asyncio.sleep(0.25)


def _condition(status: dict[str, Any], type_: str) -> dict[str, Any]:
    return next((c for c in status.get("conditions") or [] if c.get("type") == type_), {})


def _distinct(status: dict[str, Any]) -> bool:
    return _condition(status, "DistinctDatabases").get("status") == "True"


def _moving(status: dict[str, Any]) -> bool:
    return _condition(status, "Rebalanced").get("status") != "True"


def _rebalanced(status: dict[str, Any]) -> bool:
    return not _moving(status) and status.get("shardCount") == 5


def _counts(status: dict[str, Any]) -> str:
    return ", ".join(f"{s['id']}={s.get('keys', '-')}" for s in status.get("shards") or [])
