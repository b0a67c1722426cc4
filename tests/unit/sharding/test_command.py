"""``fortress shards status``: the summary of a ShardCluster's status and its table rendering."""

from __future__ import annotations

from typing import Any

from fortress.commands.shards import render, summary

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
