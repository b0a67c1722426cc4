"""Three local regions in streaming replication, their DRPlan and DRRegions, and checks run on demand.

A :class:`PlanDriver` runs one check of the plan at a time through the plan's own loop
(:class:`~fortress.core.loop.ObjectLoop`, the only status writer), as the operator would, but
without its timing: "three failed checks" means exactly three checks.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import asyncpg
from kubernetes import client

from fortress.adapters import migrations
from fortress.adapters.kube import Cluster, Kube
from fortress.api import GROUP, VERSION
from fortress.api.drplan import INFO as PLAN_INFO
from fortress.core.loop import Loops, ObjectLoop, ObjectRef
from fortress.core.services import Services
from fortress.dr.kubeio import PLANS
from fortress.dr.reconciler import CheckReport, DRPlanReconciler
from fortress_dev.localregions import (
    THREE_CLOUDS,
    apply_local_plan,
    start_clusters,
)
from tests.support.kubeapi import KubeTarget, wait_for
from tests.support.postgres import PgCluster, PgFactory

PLAN = "orders"
SECRET = "orders-regions"
SERVICE = "orders-db"
KEYS = tuple(r.key for r in THREE_CLOUDS)
A, B, C = KEYS  # aws (priority 0, the primary), azure (10), gcp (20)


class PlanDriver:
    """One operator replica's loop of the plan, stepped by hand: one check per call."""

    def __init__(self, cluster: Cluster, kube: Kube, namespace: str, identity: str) -> None:
        self.services = Services(cluster=cluster, kube=kube, loops=Loops(), identity=identity)
        self.ref = ObjectRef(PLAN_INFO, namespace, PLAN)
        self.reconciler = DRPlanReconciler(self.services, self.ref)
        self.loop = ObjectLoop(self.ref, self.reconciler, self.services)

    async def check_once(self) -> CheckReport:
        body = await self.services.kube.get(PLANS, self.ref.namespace, self.ref.name)
        assert body is not None, "the plan is gone"
        self.reconciler.last = None
        await self.loop.step(body)
        if self.reconciler.last is None:  # the loop reported the failed step in status
            status = await self.services.kube.get(PLANS, self.ref.namespace, self.ref.name)
            raise AssertionError(f"the check failed: {(status or {}).get('status', {}).get('message')}")
        return self.reconciler.last

    async def close(self) -> None:
        await self.loop.close(deleted=False)


@dataclass
class DrEnv:
    """The regions (by key), the plan's namespace and a driver that runs one check on demand."""

    namespace: str
    api: client.ApiClient
    clusters: dict[str, PgCluster]
    cluster: Cluster
    kube: Kube
    driver: PlanDriver
    extra: list[Any] = field(default_factory=list)
    controllers: bool = False  # the EndpointSlice mirroring controller runs

    def name(self, key: str) -> str:
        return f"{PLAN}-{key}"

    async def check(self, times: int = 1) -> CheckReport:
        report = await self.driver.check_once()
        for _ in range(times - 1):
            report = await self.driver.check_once()
        return report

    def replica(self, identity: str) -> PlanDriver:
        """Another operator replica's loop of the same plan."""
        return PlanDriver(self.cluster, self.kube, self.namespace, identity)

    def plan(self) -> dict[str, Any]:
        return client.CustomObjectsApi(self.api).get_namespaced_custom_object(  # type: ignore[no-any-return]
            GROUP, VERSION, self.namespace, "drplans", PLAN
        )

    def plan_status(self) -> dict[str, Any]:
        return self.plan().get("status") or {}

    def region_status(self, key: str) -> dict[str, Any]:
        obj = client.CustomObjectsApi(self.api).get_namespaced_custom_object(
            GROUP, VERSION, self.namespace, "drregions", self.name(key)
        )
        return obj.get("status") or {}  # type: ignore[no-any-return]

    def endpoints(self) -> list[str]:
        endpoints = client.CoreV1Api(self.api).read_namespaced_endpoints(SERVICE, self.namespace)
        return [
            f"{a.ip}:{p.port}"
            for s in endpoints.subsets or []
            for a in s.addresses or []
            for p in s.ports or []
        ]

    def mirrored(self) -> list[str]:
        """``ip:port`` of the Service's EndpointSlices, as the EndpointSlice mirroring controller
        copies them from the Endpoints the operator writes (a Service without a selector)."""
        slices = client.DiscoveryV1Api(self.api).list_namespaced_endpoint_slice(
            self.namespace, label_selector=f"kubernetes.io/service-name={SERVICE}"
        )
        return sorted(
            f"{address}:{port.port}"
            for s in slices.items
            for e in s.endpoints or []
            if e.conditions is None or e.conditions.ready is not False
            for address in e.addresses or []
            for port in s.ports or []
        )

    async def served_by(self, key: str) -> None:
        """The Service leads to ``key``'s endpoint: its Endpoints at once, and, where the controllers
        run, the EndpointSlices kube-proxy reads once the mirroring controller has copied them."""
        assert await asyncio.to_thread(self.endpoints) == [self.endpoint(key)]
        if self.controllers:
            await wait_for(lambda: self.mirrored() == [self.endpoint(key)], timeout=30)

    def endpoint(self, key: str) -> str:
        """What the Service shows when ``key`` is primary: its stand-in address and its real port."""
        host = next(r.host for r in THREE_CLOUDS if r.key == key)
        return f"{host}:{self.clusters[key].port}"

    def events(self, reason: str) -> list[Any]:
        items = client.CoreV1Api(self.api).list_namespaced_event(self.namespace).items
        return [e for e in items if e.reason == reason]

    def request(
        self,
        target_key: str,
        action: str = "failover",
        force: bool = False,
        rid: str = "r1",
        name: str = "action",
    ) -> None:
        """Write spec.request (``name="type"``: the older name of its action, still read)."""
        request = {name: action, "targetRegion": self.name(target_key), "force": force, "requestId": rid}
        client.CustomObjectsApi(self.api).patch_namespaced_custom_object(
            GROUP, VERSION, self.namespace, "drplans", PLAN, {"spec": {"request": request}}
        )


async def is_in_recovery(cluster: PgCluster) -> bool:
    return bool(await cluster.fetchval("SELECT pg_is_in_recovery()"))


async def wait_streaming(cluster: PgCluster, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while await cluster.fetchval("SELECT status FROM pg_stat_wal_receiver") != "streaming":
        if time.monotonic() > deadline:
            raise TimeoutError(f"{cluster.name} is not streaming")
        await asyncio.sleep(0.05)


async def catch_up(primary: PgCluster, *standbys: PgCluster) -> None:
    lsn = await primary.fetchval("SELECT pg_current_wal_lsn()::text")
    for standby in standbys:
        await standby.wait_for_replay(lsn)


@contextlib.asynccontextmanager
async def dr_env(
    pg_factory: PgFactory,
    kube_api: KubeTarget,
    k8s: client.ApiClient,
    namespace: str,
    *,
    synchronous: bool = False,
    **plan: Any,
) -> AsyncIterator[DrEnv]:
    """Regions a (primary), b, c (standbys) as aws, azure, gcp; the failover_events schema migrated."""
    clusters = await asyncio.to_thread(start_clusters, pg_factory, KEYS)
    cluster = await asyncio.to_thread(kube_api.cluster)
    kube = Kube(cluster)
    driver = PlanDriver(cluster, kube, namespace, "test-replica")
    try:
        primary = clusters[A]
        await migrations.up(primary.dsn(), migrations.default_migrations_dir())
        await primary.execute("CREATE TABLE writes (id bigint PRIMARY KEY, at timestamptz DEFAULT now())")
        if synchronous:
            await primary.execute(f"ALTER SYSTEM SET synchronous_standby_names = 'FIRST 1 (\"{B}\")'")
            await primary.execute("ALTER SYSTEM SET synchronous_commit = on")
            await primary.execute("SELECT pg_reload_conf()")
        await catch_up(primary, clusters[B], clusters[C])
        for standby in (clusters[B], clusters[C]):
            await wait_streaming(standby)
        apply_local_plan(
            k8s,
            namespace,
            clusters,
            plan=PLAN,
            secret=SECRET,
            service=SERVICE,
            synchronous=synchronous,
            **plan,
        )
        yield DrEnv(namespace, k8s, clusters, cluster, kube, driver, controllers=kube_api.controllers)
    finally:
        await driver.close()
        await kube.close()
        for cluster in clusters.values():
            await asyncio.to_thread(pg_factory.destroy, cluster)


class Writer:
    """Inserts increasing ids through whatever the Service points at; remembers acknowledged ones."""

    def __init__(self, target: Callable[[], Awaitable[str]]) -> None:
        self.target = target
        self.acked: list[int] = []
        self.failed = 0
        self._next = 1
        self._stop = asyncio.Event()
        self.task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        conn: Any = None
        while not self._stop.is_set():
            try:
                if conn is None:
                    conn = await asyncpg.connect(await self.target(), timeout=1)
                ident = self._next
                self._next += 1
                await conn.execute("INSERT INTO writes (id) VALUES ($1)", ident, timeout=2)
                self.acked.append(ident)
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, asyncpg.InternalClientError,
                    TimeoutError, IndexError):  # fmt: skip
                self.failed += 1
                if conn is not None:
                    conn.terminate()
                    conn = None
                await asyncio.sleep(0.02)
        if conn is not None:
            conn.terminate()

    def start(self) -> None:
        self.task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        self._stop.set()
        if self.task is not None:
            await self.task
