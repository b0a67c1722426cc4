"""Collectors of the credit ledger: appends, projection progress and snapshots."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

from fortress.metrics import REGISTRY

EVENTS_WRITTEN = Counter(
    "fortress_ledger_events_written_total",
    "Events appended to the event store, by event type.",
    ["event_type"],
    registry=REGISTRY,
)
APPEND_SECONDS = Histogram(
    "fortress_ledger_append_duration_seconds",
    "Latency of one append round trip (one event or a batch), by kind (single, batch).",
    ["kind"],
    registry=REGISTRY,
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
)
APPEND_CONFLICTS = Counter(
    "fortress_ledger_append_conflicts_total",
    "Appends rejected by optimistic concurrency (another writer got the version first).",
    registry=REGISTRY,
)
IDEMPOTENT_REPLAYS = Counter(
    "fortress_ledger_idempotent_replays_total",
    "Commands answered from an earlier request with the same idempotency key (nothing written).",
    registry=REGISTRY,
)
SNAPSHOTS_WRITTEN = Counter(
    "fortress_ledger_snapshots_written_total",
    "Aggregate snapshots written.",
    registry=REGISTRY,
)
PROJECTION_LAG_EVENTS = Gauge(
    "fortress_ledger_projection_lag_events",
    "Events in the store not yet applied by the projection.",
    ["projection"],
    registry=REGISTRY,
)
PROJECTION_LAG_SECONDS = Gauge(
    "fortress_ledger_projection_lag_seconds",
    "Age of the oldest event not yet applied by the projection (0 when caught up).",
    ["projection"],
    registry=REGISTRY,
)
PROJECTION_POSITION = Gauge(
    "fortress_ledger_projection_position",
    "Global position of the last event applied by the projection.",
    ["projection"],
    registry=REGISTRY,
)
PROJECTED_EVENTS = Counter(
    "fortress_ledger_projected_events_total",
    "Events applied to read models, by projection.",
    ["projection"],
    registry=REGISTRY,
)
