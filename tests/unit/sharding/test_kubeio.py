"""The ring ConfigMap: its body (pure), and reading and publishing it through a stand-in Kube."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from kubernetes.client.exceptions import ApiException

from fortress.adapters.kube import CONFIGMAPS, Resource
from fortress.sharding.kubeio import read_ring, ring_configmap, write_ring
from fortress.sharding.ring import Ring, RingError, RingSpec, RoutingState

ROUTING = RoutingState(Ring(RingSpec.of(["a", "b"], virtual_nodes=8)), None, "ns/tenants")


def test_the_configmap_is_owned_by_its_shard_cluster() -> None:
    body = ring_configmap("ns", "tenants", "uid-1", ROUTING)
    meta = body["metadata"]
    assert (meta["name"], meta["namespace"]) == ("tenants-ring", "ns")
    assert meta["labels"] == {
        "app.kubernetes.io/managed-by": "fortress",
        "fortress.io/shardcluster": "tenants",
    }
    owner = meta["ownerReferences"][0]
    assert (owner["kind"], owner["name"], owner["uid"], owner["controller"]) == (
        "ShardCluster",
        "tenants",
        "uid-1",
        True,
    )
    assert RoutingState.from_configmap_data(body["data"]) == ROUTING
    assert "ownerReferences" not in ring_configmap("ns", "tenants", None, ROUTING)["metadata"]


class FakeKube:
    """What kubeio calls of ``adapters.kube.Kube``, on a dict of ConfigMaps."""

    def __init__(self) -> None:
        self.objects: dict[tuple[str, str], dict[str, Any]] = {}
        self.calls: list[str] = []

    async def get(self, resource: Resource, namespace: str, name: str) -> dict[str, Any] | None:
        assert resource == CONFIGMAPS
        return self.objects.get((namespace, name))

    async def patch(
        self, resource: Resource, namespace: str, name: str, body: dict[str, Any]
    ) -> dict[str, Any]:
        self.calls.append("patch")
        if (namespace, name) not in self.objects:
            raise ApiException(status=404, reason="Not Found")
        self.objects[(namespace, name)].update(body)
        return self.objects[(namespace, name)]

    async def create(self, resource: Resource, namespace: str, body: dict[str, Any]) -> dict[str, Any]:
        self.calls.append("create")
        self.objects[(namespace, body["metadata"]["name"])] = dict(body)
        return body


def test_publishing_creates_then_patches_and_reading_gives_it_back() -> None:
    kube = FakeKube()

    async def scenario() -> None:
        assert await read_ring(kube, "ns", "tenants") is None  # type: ignore[arg-type]
        await write_ring(kube, "ns", "tenants", "uid-1", ROUTING)  # type: ignore[arg-type]
        moving = RoutingState(
            Ring(RingSpec.of(["a", "b", "c"], virtual_nodes=8)), ROUTING.current, "ns/tenants"
        )
        await write_ring(kube, "ns", "tenants", "uid-1", moving)  # type: ignore[arg-type]
        assert await read_ring(kube, "ns", "tenants") == moving  # type: ignore[arg-type]

    asyncio.run(scenario())
    assert kube.calls == ["patch", "create", "patch"]


def test_an_unreadable_ring_is_an_error() -> None:
    kube = FakeKube()
    kube.objects[("ns", "tenants-ring")] = {"data": {"ring.json": "{not json"}}
    with pytest.raises(RingError):
        asyncio.run(read_ring(kube, "ns", "tenants"))  # type: ignore[arg-type]


def test_other_api_errors_are_raised() -> None:
    class Forbidden(FakeKube):
        async def patch(self, *args: Any) -> dict[str, Any]:
            raise ApiException(status=403, reason="Forbidden")

    with pytest.raises(ApiException):
        asyncio.run(write_ring(Forbidden(), "ns", "tenants", None, ROUTING))  # type: ignore[arg-type]
