"""``fortress shards status``: the summary of a ShardCluster's status and its table rendering."""

from __future__ import annotations

from typing import Any

import pytest

from fortress.adapters.kube import Resource
from fortress.commands.shards import SHARD_CLUSTERS, collect, render, summary

OBJ: dict[str, Any] = {
    "metadata": {"namespace": "prod", "name": "tenants"},
    "status": {
        "phase": "Rebalancing",
        "message": "serving 1000 keys; rebalancing",
        "ringFingerprint": "abcd",
        "ringConfigMap": "tenants-ring",
        "coordinator": "shard-a",
        "shardCount": 3,
        "totalKeys": 1000,
        "imbalance": 1.05,
        "inDoubtTransactions": 0,
        "conditions": [{"type": "Ready", "status": "True", "reason": "Rebalancing"}],
        "shards": [
            {
                "id": "shard-a",
                "healthy": True,
                "circuit": "Closed",
                "keys": 400,
                "preparedTransactionsEnabled": True,
            },
            {"id": "shard-b", "healthy": False, "circuit": "Open", "lastError": "connection refused"},
        ],
        "rebalance": {
            "phase": "Moving",
            "moved": 50,
            "total": 200,
            "rate": 25.0,
            "etaSeconds": 6,
            "fromRing": "1111",
            "toRing": "abcd",
            "checkpoint": "shard-a:tenant:9",
        },
    },
}


def test_summary_flattens_the_status() -> None:
    found = summary(OBJ)
    assert (found["namespace"], found["name"], found["ready"], found["reason"]) == (
        "prod",
        "tenants",
        "True",
        "Rebalancing",
    )
    assert found["rebalance"]["percent"] == 25.0 and found["totalKeys"] == 1000
    empty = summary({"metadata": {"name": "new"}})
    assert empty["ready"] == "Unknown" and empty["rebalance"] == {"phase": "Idle", "percent": 100.0}


def test_render_shows_progress_and_shards() -> None:
    text = render(summary(OBJ))
    assert "ShardCluster prod/tenants: Rebalancing" in text
    assert "[#######.......................] 50/200 (25.0%), 25.0 keys/s, ETA 6s, ring 1111 -> abcd" in text
    assert "checkpoint shard-a:tenant:9" in text
    lines = text.splitlines()
    header = next(i for i, line in enumerate(lines) if "SHARD" in line)
    assert "shard-a" in lines[header + 1] and "400" in lines[header + 1]
    assert (
        "NO" in lines[header + 2]
        and "Open" in lines[header + 2]
        and "connection refused" in lines[header + 2]
    )


class FakeKube:
    """What ``collect`` calls of ``adapters.kube.BlockingKube``."""

    def __init__(self, objects: list[dict[str, Any]]) -> None:
        self.objects = objects

    def get(self, resource: Resource, namespace: str, name: str) -> dict[str, Any] | None:
        assert resource == SHARD_CLUSTERS
        meta = [(o["metadata"]["namespace"], o["metadata"]["name"]) for o in self.objects]
        return self.objects[meta.index((namespace, name))] if (namespace, name) in meta else None

    def list(self, resource: Resource, namespace: str | None = None) -> list[dict[str, Any]]:
        assert resource == SHARD_CLUSTERS
        return [o for o in self.objects if namespace in (None, o["metadata"]["namespace"])]


def test_collect_one_cluster_or_all_of_them_sorted() -> None:
    other = {"metadata": {"namespace": "dev", "name": "b"}}
    kube = FakeKube([OBJ, other])
    assert [c["name"] for c in collect(kube, None, None)] == ["b", "tenants"]  # type: ignore[arg-type]
    assert [c["name"] for c in collect(kube, "prod", None)] == ["tenants"]  # type: ignore[arg-type]
    assert collect(kube, "prod", "tenants")[0]["totalKeys"] == 1000  # type: ignore[arg-type]
    with pytest.raises(LookupError, match="ShardCluster prod/missing not found"):
        collect(kube, "prod", "missing")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="needs --namespace"):
        collect(kube, None, "tenants")  # type: ignore[arg-type]
