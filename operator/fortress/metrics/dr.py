"""Disaster-recovery collectors: replication lag and health per region, failovers and their cost."""

from __future__ import annotations

from prometheus_client import Counter, Gauge

from fortress.metrics import REGISTRY

_REGION = ["namespace", "plan", "region"]
_PLAN = ["namespace", "plan"]

REPLICATION_LAG_SECONDS = Gauge(
    "fortress_dr_replication_lag_seconds",
    "Replication lag of a DR region behind its plan's primary, seconds (0 for the primary).",
    _REGION,
    registry=REGISTRY,
)
REPLICATION_LAG_BYTES = Gauge(
    "fortress_dr_replication_lag_bytes",
    "Replication lag of a DR region behind its plan's primary, WAL bytes (0 for the primary).",
    _REGION,
    registry=REGISTRY,
)
DR_REGION_HEALTHY = Gauge(
    "fortress_dr_region_healthy",
    "1 when the region's last check found it healthy in its role (writable primary or streaming "
    "standby), else 0.",
    _REGION,
    registry=REGISTRY,
)
DR_FAILOVERS = Counter(
    "fortress_dr_failovers_total",
    "Completed failovers and switchovers of a DR plan, by type.",
    [*_PLAN, "type"],
    registry=REGISTRY,
)
DR_LAST_RTO_SECONDS = Gauge(
    "fortress_dr_last_failover_rto_seconds",
    "Measured RTO of the plan's latest failover: failure detected to new primary accepting writes.",
    _PLAN,
    registry=REGISTRY,
)
DR_LAST_RPO_BYTES = Gauge(
    "fortress_dr_last_failover_rpo_bytes",
    "Measured RPO of the plan's latest failover: WAL bytes the new primary did not have.",
    _PLAN,
    registry=REGISTRY,
)
DR_CHECKS = Counter(
    "fortress_dr_checks_total",
    "DR plan checks by decision (Healthy, Wait, Failover, NoCandidate, ...).",
    [*_PLAN, "decision"],
    registry=REGISTRY,
)
