"""The ShardCluster handlers against the Kubernetes API fixture and real PostgreSQL shards."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import Iterator
from typing import Any, cast

import pytest
from kubernetes import client

from fortress import cli
from fortress.adapters.kube import BlockingKube
from fortress.api import GROUP, VERSION
from fortress.commands.shards import collect, render
from fortress.sharding.errors import CrashInjected
from fortress.sharding.ring import RoutingState
from fortress.sharding.router import Router, ShardEndpoint
from fortress.sharding.twophase import Coordinator
from tests.integration.sharding.support import contents, create_shards, load, prepared_left, reset
from tests.support.kubeapi import KubeTarget, running_operator, wait_for
from tests.support.postgres import PgCluster, PgFactory

PLURAL = "shardclusters"


@pytest.fixture(scope="module")
def clusters(pg_factory: PgFactory) -> Iterator[dict[str, PgCluster]]:
    created = create_shards(pg_factory, 4)
    no_prepare = create_shards(pg_factory, 1, max_prepared_transactions=0)
    found = dict(zip(("shard-a", "shard-b", "shard-c", "shard-d"), created, strict=True))
    found["no-prepare"] = no_prepare[0]
    yield found
    for cluster in found.values():
        pg_factory.destroy(cluster)


@pytest.fixture(autouse=True)
def _quiet_kopf(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("WARNING", logger="kopf")


def secret(k8s: client.ApiClient, namespace: str, name: str, data: dict[str, str]) -> None:
    body = client.V1Secret(
        metadata=client.V1ObjectMeta(name=name, namespace=namespace),
        data={k: base64.b64encode(v.encode()).decode() for k, v in data.items()},
    )
    client.CoreV1Api(k8s).create_namespaced_secret(namespace, body)


def shard_cluster(name: str, shard_ids: list[str], secret_name: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "ShardCluster",
        "metadata": {"name": name},
        "spec": {
            "virtualNodes": 64,
            "shards": [
                {"id": s, "connection": {"secretKeyRef": {"name": secret_name, "key": s}}} for s in shard_ids
            ],
            "healthCheckInterval": "1s",
            "rebalance": {"maxKeysPerSecond": 100000, "batchSize": 500, "propagationDelay": "0s"},
            "transactions": {"recoveryInterval": "1s", "inDoubtGracePeriod": "2s", "timeout": "1s"},
            **spec,
        },
    }


def get(k8s: client.ApiClient, namespace: str, name: str) -> dict[str, Any]:
    found = client.CustomObjectsApi(k8s).get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name)
    return cast(dict[str, Any], found)


def condition(obj: dict[str, Any], type_: str) -> dict[str, Any] | None:
    for found in (obj.get("status") or {}).get("conditions") or []:
        if found["type"] == type_:
            return found  # type: ignore[no-any-return]
    return None


def ring_of(k8s: client.ApiClient, namespace: str, name: str) -> tuple[RoutingState, Any]:
    config_map = client.CoreV1Api(k8s).read_namespaced_config_map(f"{name}-ring", namespace)
    return RoutingState.from_configmap_data(config_map.data), config_map


async def test_shard_cluster_gets_ready_publishes_its_ring_and_rebalances_when_a_shard_is_added(
    kube_api: KubeTarget,
    k8s: client.ApiClient,
    namespace: str,
    clusters: dict[str, PgCluster],
    capsys: pytest.CaptureFixture[str],
) -> None:
    await reset(clusters.values())
    secret(k8s, namespace, "shards", {s: c.dsn() for s, c in clusters.items()})
    custom = client.CustomObjectsApi(k8s)
    async with running_operator(kube_api, namespaces=(namespace,)):
        custom.create_namespaced_custom_object(
            GROUP,
            VERSION,
            namespace,
            PLURAL,
            shard_cluster("alpha", ["shard-a", "shard-b", "shard-c"], "shards"),
        )

        def ready() -> dict[str, Any] | None:
            obj = get(k8s, namespace, "alpha")
            cond = condition(obj, "Ready")
            return obj if cond and cond["status"] == "True" else None

        obj = await wait_for(ready, timeout=60)
        status = obj["status"]
        assert status["phase"] == "Ready" and status["shardCount"] == 3
        assert status["ringConfigMap"] == "alpha-ring" and status["coordinator"] == "shard-a"
        assert [s["id"] for s in status["shards"]] == ["shard-a", "shard-b", "shard-c"]
        assert all(s["healthy"] and s["circuit"] == "Closed" for s in status["shards"])
        assert all(s["preparedTransactionsEnabled"] for s in status["shards"])
        assert condition(obj, "PreparedTransactions")["status"] == "True"  # type: ignore[index]
        routing, config_map = ring_of(k8s, namespace, "alpha")
        assert routing.current.fingerprint == status["ringFingerprint"] and not routing.moving
        assert routing.cluster == f"{namespace}/alpha"
        owner = config_map.metadata.owner_references[0]
        assert (owner.kind, owner.name, owner.uid) == ("ShardCluster", "alpha", obj["metadata"]["uid"])

        # data written through the published ring (as any client would), then a fourth shard is added
        keys = [f"tenant:{i:05d}" for i in range(6000)]
        shard_map = {s: clusters[s] for s in ("shard-a", "shard-b", "shard-c", "shard-d")}
        await load(shard_map, routing.current, ((k, {"k": k}) for k in keys))

        def counted() -> bool:
            return (get(k8s, namespace, "alpha").get("status") or {}).get("totalKeys") == 6000

        await wait_for(counted, timeout=30)
        # an in-doubt transaction left by a crashed coordinator: the daemon's recovery resolves it
        router = Router([ShardEndpoint(s, c.dsn()) for s, c in shard_map.items()], routing)
        try:

            def crash(step: str) -> None:
                if step == "prepared:shard-b":
                    raise CrashInjected(step)

            a = next(k for k in keys if routing.current.owner(k) == "shard-a")
            b = next(k for k in keys if routing.current.owner(k) == "shard-b")
            await router.set(a, {"k": a, "balance": 5})
            await router.set(b, {"k": b, "balance": 5})
            with pytest.raises(CrashInjected):
                await Coordinator(router, routing.cluster, hook=crash).transfer(a, b, 1)
            assert len(await prepared_left(clusters.values())) == 2
        finally:
            await router.close()

        async def resolved() -> bool:
            return not await prepared_left(clusters.values())

        for _ in range(100):
            if await resolved():
                break
            await asyncio.sleep(0.2)
        assert await resolved()

        custom.patch_namespaced_custom_object(
            GROUP,
            VERSION,
            namespace,
            PLURAL,
            "alpha",
            {"spec": shard_cluster("alpha", ["shard-a", "shard-b", "shard-c", "shard-d"], "shards")["spec"]},
        )

        def rebalanced() -> dict[str, Any] | None:
            obj = get(k8s, namespace, "alpha")
            status = obj.get("status") or {}
            cond = condition(obj, "Rebalanced")
            done = (status.get("rebalance") or {}).get("phase") == "Completed" and status.get(
                "shardCount"
            ) == 4
            return obj if done and cond and cond["status"] == "True" else None

        obj = await wait_for(rebalanced, timeout=60)
        status = obj["status"]
        assert status["rebalance"]["moved"] == status["rebalance"]["total"] > 0
        assert status["inDoubtTransactions"] == 0 and status["totalKeys"] == 6000
        assert status["imbalance"] < 1.5
        routing, _ = ring_of(k8s, namespace, "alpha")
        assert not routing.moving and routing.current.shard_ids == (
            "shard-a",
            "shard-b",
            "shard-c",
            "shard-d",
        )
        stored = await contents(shard_map)
        assert sum(len(v) for v in stored.values()) == 6000
        assert all(routing.current.owner(k) == s for s, rows in stored.items() for k in rows)
        # what `fortress shards status` (and the kubectl plugin) shows
        argv = [
            "shards",
            "status",
            "alpha",
            "-n",
            namespace,
            "--kubeconfig",
            str(kube_api.kubeconfig),
            "-o",
            "json",
        ]
        assert await asyncio.to_thread(cli.main, argv) == 0
        shown = json.loads(capsys.readouterr().out)[0]
        assert shown["rebalance"]["percent"] == 100.0 and len(shown["shards"]) == 4
        with BlockingKube(await asyncio.to_thread(kube_api.cluster)) as kube:
            shown_text = render((await asyncio.to_thread(collect, kube, namespace, "alpha"))[0])
        assert "rebalance Completed: [####" in shown_text

        # removing a shard without draining it first is refused
        custom.patch_namespaced_custom_object(
            GROUP,
            VERSION,
            namespace,
            PLURAL,
            "alpha",
            {"spec": shard_cluster("alpha", ["shard-a", "shard-b", "shard-c"], "shards")["spec"]},
        )

        def refused() -> dict[str, Any] | None:
            obj = get(k8s, namespace, "alpha")
            cond = condition(obj, "Ready")
            return cond if cond and cond["reason"] == "ShardRemovalRefused" else None

        cond = await wait_for(refused, timeout=30)
        assert cond["status"] == "False" and "shard-d" in cond["message"] and "draining" in cond["message"]
        assert sum(len(v) for v in (await contents(shard_map)).values()) == 6000

        if kube_api.controllers:  # the garbage collector follows the ring ConfigMap's ownerReference
            custom.delete_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, "alpha")
            core = client.CoreV1Api(k8s)
            names = lambda: {m.metadata.name for m in core.list_namespaced_config_map(namespace).items}  # noqa: E731
            await wait_for(lambda: "alpha-ring" not in names(), timeout=60)


async def test_a_shard_without_prepared_transactions_is_reported(
    kube_api: KubeTarget, k8s: client.ApiClient, namespace: str, clusters: dict[str, PgCluster]
) -> None:
    secret(
        k8s,
        namespace,
        "mixed",
        {"shard-a": clusters["shard-a"].dsn(), "no-prepare": clusters["no-prepare"].dsn()},
    )
    async with running_operator(kube_api, namespaces=(namespace,)):
        client.CustomObjectsApi(k8s).create_namespaced_custom_object(
            GROUP, VERSION, namespace, PLURAL, shard_cluster("mixed", ["shard-a", "no-prepare"], "mixed")
        )

        def reported() -> dict[str, Any] | None:
            obj = get(k8s, namespace, "mixed")
            cond = condition(obj, "PreparedTransactions")
            return obj if cond and cond["status"] == "False" else None

        obj = await wait_for(reported, timeout=60)
        cond = condition(obj, "PreparedTransactions")
        assert cond is not None and cond["reason"] == "PreparedTransactionsDisabled"
        assert "no-prepare" in cond["message"] and "max_prepared_transactions" in cond["message"]
        shard = next(s for s in obj["status"]["shards"] if s["id"] == "no-prepare")
        assert shard["preparedTransactionsEnabled"] is False

        def warning() -> list[Any]:
            events = client.CoreV1Api(k8s).list_namespaced_event(namespace).items
            return [e for e in events if e.reason == "PreparedTransactionsDisabled" and e.type == "Warning"]

        events = await wait_for(warning, timeout=30)
        assert "no-prepare" in events[0].message


async def test_a_missing_secret_is_reported(
    kube_api: KubeTarget, k8s: client.ApiClient, namespace: str
) -> None:
    async with running_operator(kube_api, namespaces=(namespace,)):
        client.CustomObjectsApi(k8s).create_namespaced_custom_object(
            GROUP, VERSION, namespace, PLURAL, shard_cluster("lost", ["shard-a"], "nowhere")
        )

        def not_ready() -> dict[str, Any] | None:
            cond = condition(get(k8s, namespace, "lost"), "Ready")
            return cond if cond and cond["status"] == "False" else None

        cond = await wait_for(not_ready, timeout=30)
        assert cond["reason"] == "SecretNotFound" and "nowhere" in cond["message"]


async def test_an_unreachable_shard_is_named_by_its_secret_never_its_password(
    kube_api: KubeTarget, k8s: client.ApiClient, namespace: str, clusters: dict[str, PgCluster]
) -> None:
    down = "postgresql://app:S3CRET-pw@127.0.0.1:1/shards"
    secret(k8s, namespace, "broken", {"shard-a": clusters["shard-a"].dsn(), "down": down})
    async with running_operator(kube_api, namespaces=(namespace,)):
        client.CustomObjectsApi(k8s).create_namespaced_custom_object(
            GROUP, VERSION, namespace, PLURAL, shard_cluster("broken", ["shard-a", "down"], "broken")
        )

        def unavailable() -> dict[str, Any] | None:
            obj = get(k8s, namespace, "broken")
            cond = condition(obj, "Ready")
            return obj if cond and cond["reason"] == "ShardUnavailable" else None

        obj = await wait_for(unavailable, timeout=60)
        shard = next(s for s in obj["status"]["shards"] if s["id"] == "down")
        assert shard["healthy"] is False
        assert f"<Secret {namespace}/broken key down> (127.0.0.1:1/shards)" in shard["lastError"]
        assert "down:" in condition(obj, "Ready")["message"]  # type: ignore[index]
        events = client.CoreV1Api(k8s).list_namespaced_event(namespace).items
        assert "S3CRET" not in json.dumps(obj) and not [e for e in events if "S3CRET" in (e.message or "")]
