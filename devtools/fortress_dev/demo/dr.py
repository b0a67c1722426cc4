"""Demo: three local PostgreSQL clusters in streaming replication as three clouds; kill -9 the primary.

The operator (already running) checks the plan ``demo-dr`` every second; after three failed checks
it promotes the best standby, repoints the Service, points the other standby at it and fences the
old primary, which stays read-only when it comes back.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import asyncpg
from kubernetes import client

from fortress.adapters import migrations
from fortress.adapters.kube import BlockingKube
from fortress.api import GROUP, VERSION
from fortress.dr import control
from fortress_dev.localregions import (
    THREE_CLOUDS,
    apply_local_plan,
    delete_local_plan,
    local_dsn,
    start_clusters,
)

PLAN = "demo-dr"
SECRET = "demo-dr-regions"
SERVICE = "demo-dr-db"


async def demo(ctx: Any) -> None:
    say = ctx.say
    started = time.monotonic()
    keys = [r.key for r in THREE_CLOUDS]
    clusters = await asyncio.to_thread(start_clusters, ctx.pg_factory, keys)
    primary = clusters[keys[0]]
    await migrations.up(primary.dsn(), migrations.default_migrations_dir())
    await primary.execute("CREATE TABLE demo_writes (id bigint PRIMARY KEY)")
    say(
        "DR: three regions in streaming replication: "
        + ", ".join(f"{r.provider} {r.location} :{clusters[r.key].port}" for r in THREE_CLOUDS)
        + f" (up in {time.monotonic() - started:.1f}s)"
    )
    kube = BlockingKube(ctx.cluster)
    try:
        await _fail_over(ctx, kube, clusters)
    finally:
        await asyncio.to_thread(kube.close)


async def _fail_over(ctx: Any, kube: BlockingKube, clusters: dict[str, Any]) -> None:
    """Apply the plan, kill -9 its primary under a writer, and show what the operator did."""
    say, ns = ctx.say, ctx.namespace
    keys = [r.key for r in THREE_CLOUDS]
    primary = clusters[keys[0]]
    await asyncio.to_thread(
        apply_local_plan, ctx.api, ns, clusters, plan=PLAN, secret=SECRET,
        service=SERVICE, check_interval="1s", failure_threshold=3, rto_target="15s",
    )  # fmt: skip
    report = await _until(kube, ns, lambda r: r["phase"] == "Protected", 30, "the plan to be Protected")
    say(control.render(report))

    writer = _Writer(lambda: _service_dsn(ctx.api, ns))
    writer.start()
    await asyncio.sleep(1.0)
    old = report["primaryRegion"]
    say(f"DR: kill -9 the primary ({old}) with a writer going through Service {SERVICE}")
    killed = time.monotonic()
    await asyncio.to_thread(primary.kill9)
    report = await _until(kube, ns, lambda r: r["primaryRegion"] not in (None, old), 60, "a failover")
    took = time.monotonic() - killed
    last = report["lastFailover"]
    say(
        f"DR: {last['fromRegion']} -> {last['toRegion']} {took:.1f}s after the kill: measured RTO "
        f"{last['rtoSeconds']}s (first failed check to first committed write), RPO {last['rpoBytes']} "
        f"bytes / {last['rpoSeconds']}s; Service {SERVICE} -> {report['serviceEndpoint']}"
    )
    report = await _until(kube, ns, lambda r: r["phase"] == "Protected", 30, "the other standby to follow")
    await asyncio.sleep(1.0)
    await writer.stop()
    new_key = next(k for k in keys if f"{PLAN}-{k}" == report["primaryRegion"])
    on_new = {r["id"] for r in await _fetch(clusters[new_key], "SELECT id FROM demo_writes")}
    lost = sorted(set(writer.acked) - on_new)
    say(
        f"DR: writer: {len(writer.acked)} writes acknowledged, {writer.failed} failed attempts during the "
        f"failover, {len(lost)} acknowledged writes missing on the new primary (asynchronous replication: "
        "what was not yet streamed when the primary died; the operator's RPO is a lower bound from the "
        "primary's last observed WAL position)"
    )
    await asyncio.to_thread(primary.start)
    await _until(kube, ns, lambda r: _read_only(ctx.api, ns, old), 30, "the fence on the returning primary")
    try:
        await primary.execute("INSERT INTO demo_writes (id) VALUES (-1)")
        raise RuntimeError(f"the old primary {old} accepted a write after it came back")
    except asyncpg.ReadOnlySQLTransactionError:
        say(f"DR: the old primary {old} restarted: fenced again (read-only); `fortress dr rejoin` rejoins it")
    report = await asyncio.to_thread(control.plan_report, kube, ns, PLAN)
    say(control.render(report))
    await asyncio.to_thread(delete_local_plan, ctx.api, ns, PLAN)


async def _until(kube: BlockingKube, ns: str, test: Any, timeout: float, what: str) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        report = await asyncio.to_thread(control.plan_report, kube, ns, PLAN)
        if test(report):
            return report
        if time.monotonic() > deadline:
            raise RuntimeError(f"DR demo: waited {timeout:.0f}s for {what}; plan says: {report['message']}")
        await asyncio.sleep(0.2)


def _read_only(api: client.ApiClient, ns: str, region: str) -> bool:
    obj: Any = client.CustomObjectsApi(api).get_namespaced_custom_object(
        GROUP, VERSION, ns, "drregions", region
    )
    return bool((obj.get("status") or {}).get("readOnly"))


def _service_dsn(api: client.ApiClient, ns: str) -> str:
    endpoints = client.CoreV1Api(api).read_namespaced_endpoints(SERVICE, ns)
    subset = (endpoints.subsets or [])[0]
    address, port = (subset.addresses or [])[0], (subset.ports or [])[0]
    return local_dsn(f"{address.ip}:{port.port}")  # the stand-in address is this machine's server


async def _fetch(cluster: Any, sql: str) -> list[Any]:
    conn = await cluster.connect()
    try:
        return list(await conn.fetch(sql))
    finally:
        await conn.close()


class _Writer:
    """Inserts increasing ids through the Service's current endpoint; keeps the acknowledged ones."""

    def __init__(self, target: Any) -> None:
        self.target = target
        self.acked: list[int] = []
        self.failed = 0
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        conn: Any = None
        ident = 0
        while not self._stop.is_set():
            try:
                if conn is None:
                    conn = await asyncpg.connect(await asyncio.to_thread(self.target), timeout=1)
                ident += 1
                await conn.execute("INSERT INTO demo_writes (id) VALUES ($1)", ident, timeout=2)
                self.acked.append(ident)
                await asyncio.sleep(0.01)
            except Exception:  # any failed attempt: unreachable, read-only, timed out, no endpoint yet
                self.failed += 1
                if conn is not None:
                    conn.terminate()
                    conn = None
                await asyncio.sleep(0.05)
        if conn is not None:
            conn.terminate()

    async def stop(self) -> None:
        self._stop.set()
        if self._task is not None:
            await self._task
