"""Collectors of the sharding subsystem: router queries, circuits, two-phase commit and rebalancing."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

from fortress.metrics import REGISTRY

QUERIES = Counter(
    "fortress_sharding_queries_total",
    "Queries sent to a shard by the router, by shard id and operation (get, set, delete, ...).",
    ["shard_id", "op"],
    registry=REGISTRY,
)
QUERY_ERRORS = Counter(
    "fortress_sharding_query_errors_total",
    "Router queries that failed, by shard id, operation and error kind (unavailable, timeout, circuit).",
    ["shard_id", "op", "kind"],
    registry=REGISTRY,
)
QUERY_SECONDS = Histogram(
    "fortress_sharding_query_duration_seconds",
    "Latency of router queries, by shard id and operation.",
    ["shard_id", "op"],
    registry=REGISTRY,
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)
CIRCUIT_STATE = Gauge(
    "fortress_sharding_circuit_state",
    "Circuit breaker state per shard: 0 closed, 1 half-open, 2 open.",
    ["shard_id"],
    registry=REGISTRY,
)
TRANSACTIONS = Counter(
    "fortress_sharding_transactions_total",
    "Cross-shard transactions by result (committed, aborted, failed).",
    ["result"],
    registry=REGISTRY,
)
TRANSACTION_SECONDS = Histogram(
    "fortress_sharding_transaction_duration_seconds",
    "Latency of cross-shard transactions (two-phase commit included).",
    registry=REGISTRY,
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
)
IN_DOUBT = Gauge(
    "fortress_sharding_in_doubt_transactions",
    "Prepared transactions without a resolution after the last recovery run, per ShardCluster.",
    ["namespace", "name"],
    registry=REGISTRY,
)
RECOVERED = Counter(
    "fortress_sharding_recovered_transactions_total",
    "In-doubt prepared transactions resolved by recovery, by action (commit, rollback).",
    ["action"],
    registry=REGISTRY,
)
REBALANCE_MOVED = Counter(
    "fortress_sharding_rebalance_keys_moved_total",
    "Keys moved between shards by rebalancing, per ShardCluster.",
    ["namespace", "name"],
    registry=REGISTRY,
)
REBALANCE_REMAINING = Gauge(
    "fortress_sharding_rebalance_keys_remaining",
    "Keys still waiting to move in the current rebalance, per ShardCluster.",
    ["namespace", "name"],
    registry=REGISTRY,
)
SHARD_KEYS = Gauge(
    "fortress_sharding_shard_keys",
    "Keys stored on each shard at the last probe, per ShardCluster.",
    ["namespace", "name", "shard_id"],
    registry=REGISTRY,
)
IMBALANCE = Gauge(
    "fortress_sharding_imbalance_ratio",
    "Max/mean keys per shard at the last probe, per ShardCluster.",
    ["namespace", "name"],
    registry=REGISTRY,
)
