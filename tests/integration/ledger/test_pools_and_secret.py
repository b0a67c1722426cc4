"""A CreditLedger's pools close when its Secret changes or it is deleted; its Secret is not read each step.

Against a real PostgreSQL (connections counted in ``pg_stat_activity`` by ``application_name``) and the
Kubernetes API fixture: the ledger's loop is stepped by hand, through a Kube client that counts the
Secret reads, with the operator's own clock replaced so no timing decides the outcome.
"""

from __future__ import annotations

import asyncio
import base64
import copy
from typing import Any

import pytest
import yaml
from kubernetes import client

from fortress.adapters.kube import Kube
from fortress.api import BY_KIND, GROUP, VERSION
from fortress.core.conditions import READY, find
from fortress.core.loop import Loops, ObjectLoop, ObjectRef
from fortress.core.services import Services
from fortress.ledger.reconciler import LedgerReconciler
from fortress.paths import examples_dir
from tests.integration.ledger.support import migrated_pool
from tests.support.kubeapi import KubeTarget
from tests.support.postgres import PgCluster

pytestmark = pytest.mark.postgres
INFO = BY_KIND["CreditLedger"]


class CountingKube(Kube):
    """The operator's Kubernetes client, counting the Secret values it reads."""

    reads = 0

    async def secret_value(self, namespace: str, name: str, key: str) -> str:
        self.reads += 1
        return await super().secret_value(namespace, name, key)


def _secret(dsn: str) -> client.V1Secret:
    return client.V1Secret(
        metadata=client.V1ObjectMeta(name="ledger-db"), data={"dsn": base64.b64encode(dsn.encode()).decode()}
    )


async def _connections(pool: Any, application: str) -> int:
    return int(
        await pool.fetchval("SELECT count(*) FROM pg_stat_activity WHERE application_name = $1", application)
    )


async def test_pools_follow_the_secret_and_close_on_delete_and_the_secret_is_read_once_per_ttl(
    kube_api: KubeTarget, k8s: client.ApiClient, namespace: str, pg: PgCluster
) -> None:
    admin = await migrated_pool(pg)
    core, api = client.CoreV1Api(k8s), client.CustomObjectsApi(k8s)
    first, second = (f"{pg.dsn()}?application_name=ledger-{n}" for n in ("first", "second"))
    await asyncio.to_thread(core.create_namespaced_secret, namespace, _secret(first))
    body = copy.deepcopy(yaml.safe_load((examples_dir() / "creditledger-main.yaml").read_text()))
    body["metadata"] = {"name": "pooled"}
    body["spec"]["database"]["secretKeyRef"] = {"name": "ledger-db", "key": "dsn"}
    body["spec"]["projection"]["pollInterval"] = "100ms"
    await asyncio.to_thread(api.create_namespaced_custom_object, GROUP, VERSION, namespace, INFO.plural, body)

    now = [0.0]
    kube = CountingKube(await asyncio.to_thread(kube_api.cluster))
    services = Services(cluster=kube.cluster, kube=kube, loops=Loops(), identity="test", clock=lambda: now[0])
    ref = ObjectRef(INFO, namespace, "pooled")
    loop = ObjectLoop(ref, LedgerReconciler(services, ref), services)

    async def step() -> dict[str, Any]:
        obj = await asyncio.to_thread(
            api.get_namespaced_custom_object, GROUP, VERSION, namespace, INFO.plural, "pooled"
        )
        await loop.step(obj)
        return obj

    try:
        await step()
        assert (find(loop._memory.status["conditions"], READY) or {}).get("status") == "True"  # type: ignore[index]
        await asyncio.wait_for(_until(lambda: _connections(admin, "ledger-first"), positive=True), 30)

        for _ in range(10):  # ten steps within the Secret's TTL: one read
            await step()
        assert kube.reads == 1
        now[0] += services.secret_ttl
        await step()
        assert kube.reads == 2

        # The Secret changes: the old pools (the steps' and the projector's) close, new ones open.
        await asyncio.to_thread(
            core.patch_namespaced_secret, "ledger-db", namespace, {"data": _secret(second).data}
        )
        now[0] += services.secret_ttl
        await step()
        assert kube.reads == 3
        await asyncio.wait_for(_until(lambda: _connections(admin, "ledger-second"), positive=True), 30)
        await asyncio.wait_for(_until(lambda: _connections(admin, "ledger-first"), positive=False), 30)
        assert not services.pools.is_open(first)
    finally:
        await loop.close(deleted=True)  # the object deleted: every pool it held closes
    try:
        await asyncio.wait_for(_until(lambda: _connections(admin, "ledger-second"), positive=False), 30)
        assert not services.pools.is_open(second)
    finally:
        await services.pools.close()
        await kube.close()
        await admin.close()


async def _until(count: Any, *, positive: bool) -> None:
    """Poll a connection count until it is above zero (``positive``) or zero."""
    while True:
        if (await count() > 0) == positive:
            return
        await asyncio.sleep(0.1)
