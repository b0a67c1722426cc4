"""ShardCluster: consistent-hash sharding over PostgreSQL shards, rebalancing and two-phase commit."""

from __future__ import annotations

from dataclasses import replace
from enum import StrEnum

from pydantic import Field

from fortress.api.common import ConnectionRef, DnsLabel, Duration, Model, StatusBase, parse_duration
from fortress.api.kind import (
    AGE_COLUMN,
    MESSAGE_COLUMN,
    PHASE_COLUMN,
    READY_COLUMN,
    KindInfo,
    PrinterColumn,
    SpecIssue,
)


class HashFunction(StrEnum):
    XXH3_64 = "xxh3_64"
    XXH64 = "xxh64"


class CircuitState(StrEnum):
    CLOSED = "Closed"
    OPEN = "Open"
    HALF_OPEN = "HalfOpen"


class Replica(Model):
    """A read replica of a shard."""

    connection: ConnectionRef = Field(description="Connection to the replica.")


class Shard(Model):
    """One PostgreSQL shard of the ring."""

    id: DnsLabel = Field(description="Stable shard id; it is hashed into the ring, so never reuse one.")
    connection: ConnectionRef = Field(description="Connection to the shard's primary.")
    weight: int = Field(
        default=1, ge=1, le=100, description="Relative capacity: weight w gets w x virtualNodes points."
    )
    replicas: list[Replica] = Field(
        default_factory=list, max_length=8, description="Read replicas used when a caller allows staleness."
    )
    draining: bool = Field(
        default=False, description="Move every key off this shard; it may be removed once empty."
    )


class Rebalance(Model):
    """How keys move when the ring changes."""

    max_keys_per_second: int = Field(default=5000, ge=1, le=1_000_000, description="Rate limit of moves.")
    batch_size: int = Field(default=500, ge=1, le=50_000, description="Keys copied per batch.")
    paused: bool = Field(default=False, description="Hold the rebalance at its checkpoint.")
    propagation_delay: Duration = Field(
        default="5s",
        description=(
            "Wait between publishing a new ring (ConfigMap <name>-ring, holding both rings) and moving the "
            "first key, so that every router has picked up the transition; at least the routers' refresh "
            "interval."
        ),
    )


class Transactions(Model):
    """Cross-shard two-phase commit settings."""

    recovery_interval: Duration = Field(
        default="30s", description="How often in-doubt transactions are resolved."
    )
    in_doubt_grace_period: Duration = Field(
        default="60s", description="A prepared transaction with no decision older than this is rolled back."
    )
    timeout: Duration = Field(default="10s", description="Deadline of one distributed transaction.")


class CircuitBreaker(Model):
    """Per-shard circuit breaker."""

    failure_threshold: int = Field(default=5, ge=1, le=1000, description="Consecutive failures that open it.")
    open_duration: Duration = Field(default="30s", description="Time open before a half-open probe.")


class ShardClusterSpec(Model):
    """The shards and how keys are spread, moved and committed across them."""

    shards: list[Shard] = Field(
        min_length=1,
        max_length=256,
        description="The shards of the ring, keyed by id.",
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["id"]},
    )
    virtual_nodes: int = Field(default=256, ge=1, le=4096, description="Virtual nodes per unit of weight.")
    hash_function: HashFunction = Field(default=HashFunction.XXH3_64, description="xxh3_64 or xxh64.")
    replication_factor: int = Field(
        default=1, ge=1, le=5, description="Distinct shards in each key's preference list."
    )
    rebalance: Rebalance = Field(default_factory=Rebalance, description="Rebalancing settings.")
    transactions: Transactions = Field(default_factory=Transactions, description="Two-phase commit settings.")
    circuit_breaker: CircuitBreaker = Field(default_factory=CircuitBreaker, description="Circuit breaker.")
    query_timeout: Duration = Field(default="5s", description="Timeout of a single query on a shard.")
    health_check_interval: Duration = Field(default="30s", description="How often shards are probed.")
    migrate: bool = Field(
        default=True,
        description="Apply pending migrations (shard_data, distributed_tx_log) to every shard on reconcile.",
    )


class ShardStatus(Model):
    """Observed state of one shard."""

    id: str = Field(description="Shard id.")
    healthy: bool = Field(description="Whether the last probe succeeded.")
    circuit: CircuitState = Field(default=CircuitState.CLOSED, description="Closed, Open or HalfOpen.")
    keys: int | None = Field(default=None, ge=0, description="Keys stored on the shard.")
    prepared_transactions_enabled: bool | None = Field(
        default=None, description="Whether max_prepared_transactions > 0."
    )
    last_error: str | None = Field(default=None, description="Last probe error.")


class RebalanceStatus(Model):
    """Progress of the current rebalance."""

    phase: str = Field(description="Idle, Planning, Moving, Verifying, Completed or Paused.")
    moved: int = Field(default=0, ge=0, description="Keys moved so far.")
    total: int = Field(default=0, ge=0, description="Keys that must move.")
    rate: float | None = Field(default=None, ge=0, description="Keys per second over the last batch.")
    eta_seconds: int | None = Field(default=None, ge=0, description="Estimated seconds left.")
    from_ring: str | None = Field(default=None, description="Fingerprint of the ring being left.")
    to_ring: str | None = Field(default=None, description="Fingerprint of the target ring.")
    checkpoint: str | None = Field(default=None, description="Last key moved (resume point).")


class ShardClusterStatus(StatusBase):
    """Observed state of the cluster."""

    shards: list[ShardStatus] = Field(default_factory=list, description="Per-shard state.")
    shard_count: int | None = Field(default=None, ge=0, description="Shards in the active ring.")
    total_keys: int | None = Field(default=None, ge=0, description="Keys over all shards.")
    imbalance: float | None = Field(
        default=None, ge=0, description="Max/mean keys per shard, per unit of weight (1.0 is perfect)."
    )
    ring_config_map: str | None = Field(default=None, description="ConfigMap holding the ring layout.")
    ring_fingerprint: str | None = Field(default=None, description="Hash of the active ring layout.")
    rebalance: RebalanceStatus | None = Field(default=None, description="Rebalance progress.")
    in_doubt_transactions: int | None = Field(
        default=None, ge=0, description="Prepared, undecided transactions."
    )
    coordinator: str | None = Field(
        default=None, description="Shard whose distributed_tx_log records two-phase-commit decisions."
    )


def check(spec: Model) -> list[SpecIssue]:
    """Cross-field rules of a ShardCluster spec."""
    assert isinstance(spec, ShardClusterSpec)
    issues: list[SpecIssue] = []
    seen: dict[str, int] = {}
    for index, shard in enumerate(spec.shards):
        if shard.id in seen:
            issues.append(SpecIssue(f"spec.shards[{index}].id", f"duplicate shard id {shard.id!r}"))
        seen.setdefault(shard.id, index)
    active = [s for s in spec.shards if not s.draining]
    if not active:
        issues.append(SpecIssue("spec.shards", "at least one shard must not be draining"))
    if spec.replication_factor > len(active):
        issues.append(
            SpecIssue(
                "spec.replicationFactor",
                f"{spec.replication_factor} exceeds the {len(active)} shard(s) that are not draining",
            )
        )
    grace = parse_duration(spec.transactions.in_doubt_grace_period)
    timeout = parse_duration(spec.transactions.timeout)
    if grace <= timeout:
        issues.append(
            SpecIssue(
                "spec.transactions.inDoubtGracePeriod",
                "must exceed spec.transactions.timeout, or live transactions would be rolled back",
            )
        )
    return issues


INFO = KindInfo(
    kind="ShardCluster",
    plural="shardclusters",
    short_names=("shc",),
    spec_model=ShardClusterSpec,
    status_model=ShardClusterStatus,
    description="Consistent-hash sharding over PostgreSQL shards with online rebalancing and 2PC.",
    columns=(
        PrinterColumn("Shards", ".status.shardCount", type="integer", description="Shards in the ring."),
        PrinterColumn("Keys", ".status.totalKeys", type="integer", description="Keys over all shards."),
        PrinterColumn("Imbalance", ".status.imbalance", type="number", description="Max/mean keys."),
        PrinterColumn("Rebalance", ".status.rebalance.phase", description="Rebalance phase."),
        PrinterColumn("InDoubt", ".status.inDoubtTransactions", type="integer", description="In-doubt 2PC."),
        READY_COLUMN,
        replace(PHASE_COLUMN, priority=1),
        MESSAGE_COLUMN,
        AGE_COLUMN,
    ),
    check=check,
)
