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
from typing import Any, cast

from kubernetes import client

from fortress.adapters import migrations
from fortress.api.shardcluster import INFO
from fortress.commands.shards import collect, render
from fortress.sharding.ring import RoutingState
from fortress.sharding.router import Router, ShardEndpoint
from fortress.sharding.twophase import Coordinator

NAME = "tenants"
SECRET = "tenants-shards"
SHARDS = ("shard-a", "shard-b", "shard-c", "shard-d", "shard-e")
KEYS = 3000


async def demo(ctx: Any) -> None:
    say = ctx.say
    started = time.monotonic()
    say("")
    say("== sharding: ShardCluster tenants over five PostgreSQL shards ==")
    core, custom = client.CoreV1Api(ctx.api), client.CustomObjectsApi(ctx.api)
    secret = await asyncio.to_thread(core.read_namespaced_secret, SECRET, ctx.namespace)
    dsns = {k: base64.b64decode(v).decode() for k, v in (secret.data or {}).items() if k in SHARDS}
    fifth = await asyncio.to_thread(ctx.pg_factory.create, durable=False, max_prepared_transactions=10)
    await migrations.up(fifth.dsn(), migrations.default_migrations_dir())
    dsns["shard-e"] = fifth.dsn()
    encoded = base64.b64encode(fifth.dsn().encode()).decode()
    await asyncio.to_thread(
        core.patch_namespaced_secret, SECRET, ctx.namespace, {"data": {"shard-e": encoded}}
    )
    say(f"shard-a..shard-d are the example's servers; started shard-e on port {fifth.port}")
    await _patch(ctx, custom, {"healthCheckInterval": "2s", "rebalance": {"propagationDelay": "1s"}})
    await _wait(ctx, custom, _distinct, "the shards to be probed")

    routing = await _routing(ctx, core)
    router = Router([ShardEndpoint(s, d) for s, d in dsns.items()], routing)
    try:
        t0 = time.perf_counter()
        semaphore = asyncio.Semaphore(32)

        async def put(i: int) -> None:
            async with semaphore:
                await router.set(f"tenant:{i:05d}", {"plan": ("free", "pro", "team")[i % 3], "seats": i % 50})

        await asyncio.gather(*(put(i) for i in range(KEYS)))
        elapsed = time.perf_counter() - t0
        rate = KEYS / elapsed
        say(f"wrote {KEYS} keys through ring {routing.current.fingerprint} in {elapsed:.2f}s ({rate:,.0f}/s)")
        status = await _wait(ctx, custom, lambda s: s.get("totalKeys") == KEYS, "the key counts")
        say(f"  {_counts(status)}; imbalance {status.get('imbalance')}")

        spec = (await _get(ctx, custom))["spec"]
        fifth = {"id": "shard-e", "connection": {"secretKeyRef": {"name": SECRET, "key": "shard-e"}}}
        shards = [*spec["shards"], fifth]
        say("adding shard-e to spec.shards ...")
        await _patch(ctx, custom, {"shards": shards})
        last = ""
        deadline = time.monotonic() + 30
        while True:
            status = (await _get(ctx, custom)).get("status") or {}
            reb = status.get("rebalance") or {}
            line = f"  rebalance {reb.get('phase')}: {reb.get('moved', 0)}/{reb.get('total', 0)} keys"
            if reb.get("rate") is not None:
                line += f", {reb['rate']} keys/s, ETA {reb.get('etaSeconds', '-')}s"
            if line != last and reb.get("toRing"):
                say(line)
                last = line
            if reb.get("phase") == "Completed" and status.get("shardCount") == 5 and not _moving(status):
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"the rebalance did not complete in 30s: {status.get('message')}")
            await asyncio.sleep(0.25)
        status = await _wait(
            ctx, custom, lambda s: _rebalanced(s) and s.get("totalKeys") == KEYS, "the final counts"
        )
        say(f"rebalance converged: {_counts(status)}; imbalance {status.get('imbalance')}")

        routing = await _routing(ctx, core)
        router.update(routing=routing)
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
            say(f"  2PC transfer {amount}: {' + '.join(result.participants)} in {ms:.1f} ms -> {balances}")
    finally:
        await router.close()
    clusters_status = await asyncio.to_thread(collect, custom, ctx.namespace, NAME)
    say(render(clusters_status[0]))
    if clusters_status[0]["ready"] != "True":
        raise RuntimeError(f"ShardCluster {NAME} is not Ready: {clusters_status[0]['message']}")
    say(f"sharding demo done in {time.monotonic() - started:.1f}s")


async def _get(ctx: Any, custom: client.CustomObjectsApi) -> dict[str, Any]:
    obj = await asyncio.to_thread(
        custom.get_namespaced_custom_object, INFO.group, INFO.version, ctx.namespace, INFO.plural, NAME
    )
    return cast(dict[str, Any], obj)


async def _patch(ctx: Any, custom: client.CustomObjectsApi, spec: dict[str, Any]) -> None:
    await asyncio.to_thread(
        custom.patch_namespaced_custom_object,
        INFO.group,
        INFO.version,
        ctx.namespace,
        INFO.plural,
        NAME,
        {"spec": spec},
    )


async def _routing(ctx: Any, core: client.CoreV1Api) -> RoutingState:
    config_map = await asyncio.to_thread(core.read_namespaced_config_map, f"{NAME}-ring", ctx.namespace)
    return RoutingState.from_configmap_data(config_map.data)


async def _wait(ctx: Any, custom: client.CustomObjectsApi, check: Any, what: str, timeout: float = 20) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        obj = await _get(ctx, custom)
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
