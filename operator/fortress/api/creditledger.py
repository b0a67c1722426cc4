"""CreditLedger: an event-sourced credit ledger (CQRS) on PostgreSQL."""

from __future__ import annotations

from dataclasses import replace

from pydantic import Field

from fortress.api.common import ConnectionRef, Duration, Model, StatusBase, parse_duration
from fortress.api.kind import (
    AGE_COLUMN,
    MESSAGE_COLUMN,
    PHASE_COLUMN,
    READY_COLUMN,
    KindInfo,
    PrinterColumn,
    SpecIssue,
)

MIN_IDEMPOTENCY_TTL_SECONDS = 24 * 3600


class Projection(Model):
    """The read-model projector."""

    enabled: bool = Field(default=True, description="Run the projector daemon.")
    batch_size: int = Field(default=500, ge=1, le=50_000, description="Events applied per transaction.")
    poll_interval: Duration = Field(default="1s", description="Idle time between polls for new events.")


class Retention(Model):
    """How long auxiliary data is kept; events themselves are never deleted."""

    idempotency_key_ttl: Duration = Field(
        default="24h", description="How long idempotency keys are kept (>= 24h)."
    )
    partitions_ahead: int = Field(
        default=2, ge=1, le=24, description="Monthly event partitions created ahead."
    )
    snapshots_kept: int = Field(default=3, ge=1, le=1000, description="Snapshots kept per aggregate.")


class CreditLedgerSpec(Model):
    """The ledger database and how it is maintained."""

    database: ConnectionRef = Field(description="Connection to the ledger's PostgreSQL database.")
    snapshot_interval: int = Field(
        default=100, ge=1, le=100_000, description="Write a snapshot every this many events of an aggregate."
    )
    migrate: bool = Field(default=True, description="Apply pending migrations on reconcile.")
    projection: Projection = Field(default_factory=Projection, description="Read-model projector settings.")
    retention: Retention = Field(default_factory=Retention, description="Retention settings.")


class ProjectionStatus(Model):
    """Where the projector stands."""

    position: int = Field(default=0, ge=0, description="Global position applied to the read model.")
    lag_events: int = Field(default=0, ge=0, description="Events not yet applied.")
    lag_seconds: float = Field(default=0, ge=0, description="Age of the oldest unapplied event.")
    last_error: str | None = Field(
        default=None, description="The projector's last error; empty once it projects again."
    )


class CreditLedgerStatus(StatusBase):
    """Observed state of the ledger."""

    schema_version: int | None = Field(default=None, ge=0, description="Applied migration version.")
    events_total: int | None = Field(default=None, ge=0, description="Events in the store.")
    last_global_position: int | None = Field(default=None, ge=0, description="Highest global position.")
    projection: ProjectionStatus | None = Field(default=None, description="Projector progress.")
    snapshots: int | None = Field(default=None, ge=0, description="Snapshots stored.")


def check(spec: Model) -> list[SpecIssue]:
    """Cross-field rules of a CreditLedger spec."""
    assert isinstance(spec, CreditLedgerSpec)
    issues: list[SpecIssue] = []
    if parse_duration(spec.retention.idempotency_key_ttl).total_seconds() < MIN_IDEMPOTENCY_TTL_SECONDS:
        issues.append(SpecIssue("spec.retention.idempotencyKeyTtl", "must be at least 24h"))
    if spec.projection.batch_size < 1:  # pragma: no cover - the schema holds this
        issues.append(SpecIssue("spec.projection.batchSize", "must be positive"))
    return issues


INFO = KindInfo(
    kind="CreditLedger",
    plural="creditledgers",
    short_names=("cled",),
    spec_model=CreditLedgerSpec,
    status_model=CreditLedgerStatus,
    description="An event-sourced credit ledger (CQRS) on PostgreSQL.",
    columns=(
        PrinterColumn("Events", ".status.eventsTotal", type="integer", description="Events in the store."),
        PrinterColumn("Position", ".status.lastGlobalPosition", type="integer", description="Last position."),
        PrinterColumn("Lag", ".status.projection.lagEvents", type="integer", description="Projection lag."),
        PrinterColumn("Snapshots", ".status.snapshots", type="integer", description="Snapshots stored."),
        READY_COLUMN,
        replace(PHASE_COLUMN, priority=1),
        PrinterColumn(
            "Schema", ".status.schemaVersion", type="integer", priority=1, description="Migration."
        ),
        MESSAGE_COLUMN,
        AGE_COLUMN,
    ),
    check=check,
)
