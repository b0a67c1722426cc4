"""What a ShardCluster's spec asks of the operator: ring, router settings, intervals, step timing (pure)."""

from __future__ import annotations

from typing import Any

import pytest

from fortress.api.shardcluster import ShardClusterSpec
from fortress.sharding.settings import (
    MIN_RECOVERY_SECONDS,
    MIN_STEP_SECONDS,
    REBALANCE_SYNC_SECONDS,
    Intervals,
    desired_ring,
    next_step_in,
    ring_configmap_name,
    router_config,
)


def spec(**overrides: Any) -> ShardClusterSpec:
    raw: dict[str, Any] = {
        "shards": [
            {"id": "a", "connection": {"secretKeyRef": {"name": "db", "key": "a"}}, "weight": 2},
            {"id": "b", "connection": {"secretKeyRef": {"name": "db", "key": "b"}}},
            {"id": "c", "connection": {"secretKeyRef": {"name": "db", "key": "c"}}, "draining": True},
        ],
        "virtualNodes": 16,
        "hashFunction": "xxh64",
    }
    raw.update(overrides)
    return ShardClusterSpec.model_validate(raw)


def test_the_desired_ring_leaves_draining_shards_out() -> None:
    ring = desired_ring(spec())
    assert ring.shard_ids == ("a", "b")
    assert {s.id: s.weight for s in ring.shards} == {"a": 2, "b": 1}
    assert (ring.virtual_nodes, ring.hash_function, ring.replication_factor) == (16, "xxh64", 1)


def test_router_config_from_the_spec() -> None:
    config = router_config(
        spec(queryTimeout="1500ms", circuitBreaker={"failureThreshold": 3, "openDuration": "1m"})
    )
    assert config.query_timeout == 1.5
    assert (config.breaker.failure_threshold, config.breaker.open_duration) == (3, 60.0)


def test_intervals_in_seconds() -> None:
    found = Intervals.of(
        spec(
            healthCheckInterval="2s",
            transactions={"recoveryInterval": "1m", "inDoubtGracePeriod": "90s", "timeout": "10s"},
            rebalance={"propagationDelay": "250ms"},
        )
    )
    assert found == Intervals(health_check=2.0, recovery=60.0, in_doubt_grace=90.0, propagation_delay=0.25)
    tiny = Intervals.of(spec(transactions={"recoveryInterval": "1ms"}))
    assert tiny.recovery == MIN_RECOVERY_SECONDS


@pytest.mark.parametrize(
    ("health", "rebalancing", "until_recovery", "expected"),
    [
        (30.0, False, 100.0, 30.0),  # the next health check
        (30.0, False, 7.0, 7.0),  # recovery comes first
        (30.0, True, 100.0, REBALANCE_SYNC_SECONDS),  # a rebalance: every 2 s at most
        (1.0, True, 100.0, 1.0),
        (30.0, False, -3.0, MIN_STEP_SECONDS),  # recovery overdue: at once, never a busy loop
    ],
)
def test_next_step_in(health: float, rebalancing: bool, until_recovery: float, expected: float) -> None:
    assert next_step_in(health, rebalancing, until_recovery) == expected


def test_ring_configmap_name() -> None:
    assert ring_configmap_name("tenants") == "tenants-ring"
