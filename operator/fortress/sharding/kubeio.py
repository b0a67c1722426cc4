"""The ring ConfigMap ``<name>-ring`` through the shared Kubernetes client (``adapters.kube.Kube``)."""

from __future__ import annotations

from typing import Any

from fortress.adapters.kube import CONFIGMAPS, Kube, not_found, owner_reference
from fortress.api.shardcluster import INFO
from fortress.sharding.ring import RoutingState
from fortress.sharding.settings import ring_configmap_name

MANAGED_BY = {"app.kubernetes.io/managed-by": "fortress"}
CLUSTER_LABEL = "fortress.io/shardcluster"


def ring_configmap(namespace: str, name: str, uid: str | None, routing: RoutingState) -> dict[str, Any]:
    """The ConfigMap publishing ``routing``, owned by the ShardCluster (so deleted with it)."""
    metadata: dict[str, Any] = {
        "name": ring_configmap_name(name),
        "namespace": namespace,
        "labels": {**MANAGED_BY, CLUSTER_LABEL: name},
    }
    if uid:
        api_version = f"{INFO.group}/{INFO.version}"
        metadata["ownerReferences"] = [owner_reference(api_version, INFO.kind, name, uid)]
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": metadata,
        "data": routing.to_configmap_data(),
    }


async def read_ring(kube: Kube, namespace: str, name: str) -> RoutingState | None:
    """The published routing state; None before the first publication (RingError when unreadable)."""
    found = await kube.get(CONFIGMAPS, namespace, ring_configmap_name(name))
    return None if found is None else RoutingState.from_configmap_data(found.get("data"))


async def write_ring(kube: Kube, namespace: str, name: str, uid: str | None, routing: RoutingState) -> None:
    """Publish ``routing``: update the ConfigMap, or create it."""
    body = ring_configmap(namespace, name, uid, routing)
    try:
        await kube.patch(CONFIGMAPS, namespace, body["metadata"]["name"], body)
    except Exception as error:
        if not not_found(error):
            raise
        await kube.create(CONFIGMAPS, namespace, body)
