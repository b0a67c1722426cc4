"""What a ShardCluster's spec asks of the operator: the ring, the router's settings, the intervals (pure)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from fortress.api.shardcluster import ShardClusterSpec
from fortress.core.time import seconds_of
from fortress.sharding.breaker import BreakerConfig
from fortress.sharding.ring import RingSpec, ShardWeight
from fortress.sharding.router import RouterConfig

REBALANCE_SYNC_SECONDS: Final = 2.0  # the longest wait between steps while a rebalance runs
MIN_STEP_SECONDS: Final = 0.05
MIN_RECOVERY_SECONDS: Final = 0.1


def ring_configmap_name(name: str) -> str:
    """The ConfigMap holding a ShardCluster's published ring."""
    return f"{name}-ring"


def desired_ring(spec: ShardClusterSpec) -> RingSpec:
    """The ring of the spec: every shard that is not draining."""
    return RingSpec.of(
        [ShardWeight(s.id, s.weight) for s in spec.shards if not s.draining],
        virtual_nodes=spec.virtual_nodes,
        hash_function=str(spec.hash_function),
        replication_factor=spec.replication_factor,
    )


def router_config(spec: ShardClusterSpec) -> RouterConfig:
    return RouterConfig(
        query_timeout=seconds_of(spec.query_timeout),
        breaker=BreakerConfig(
            failure_threshold=spec.circuit_breaker.failure_threshold,
            open_duration=seconds_of(spec.circuit_breaker.open_duration),
        ),
    )


@dataclass(frozen=True)
class Intervals:
    """The spec's durations in seconds."""

    health_check: float
    recovery: float
    in_doubt_grace: float
    propagation_delay: float

    @classmethod
    def of(cls, spec: ShardClusterSpec) -> Intervals:
        return cls(
            health_check=seconds_of(spec.health_check_interval),
            recovery=max(seconds_of(spec.transactions.recovery_interval), MIN_RECOVERY_SECONDS),
            in_doubt_grace=seconds_of(spec.transactions.in_doubt_grace_period),
            propagation_delay=seconds_of(spec.rebalance.propagation_delay),
        )


def next_step_in(health_check: float, rebalancing: bool, until_recovery: float) -> float:
    """Seconds to the next step: the next health check (2 s at most while rebalancing) or recovery run."""
    check = min(health_check, REBALANCE_SYNC_SECONDS) if rebalancing else health_check
    return max(MIN_STEP_SECONDS, min(check, until_recovery))
