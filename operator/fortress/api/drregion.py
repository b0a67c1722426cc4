"""DRRegion: one region of a multi-region PostgreSQL deployment, observed by its DRPlan."""

from __future__ import annotations

from enum import StrEnum

from pydantic import Field

from fortress.api.common import ConnectionRef, Model, ResourceName, StatusBase
from fortress.api.kind import AGE_COLUMN, MESSAGE_COLUMN, READY_COLUMN, KindInfo, PrinterColumn, SpecIssue


class Provider(StrEnum):
    AWS = "aws"
    AZURE = "azure"
    GCP = "gcp"
    OTHER = "other"


class RegionRole(StrEnum):
    PRIMARY = "Primary"
    STANDBY = "Standby"
    FENCED = "Fenced"
    UNKNOWN = "Unknown"


class Endpoint(Model):
    """The address applications use to reach this region's database once it is primary."""

    host: str = Field(
        min_length=1,
        max_length=253,
        pattern=r"^[A-Za-z0-9]([-A-Za-z0-9.:]*[A-Za-z0-9])?$",
        description="IP address (for Endpoints) or DNS name (for ExternalName).",
    )
    port: int = Field(default=5432, ge=1, le=65535, description="TCP port.")


class DRRegionSpec(Model):
    """Where the region is, how to reach it, and how much it is preferred."""

    plan_ref: ResourceName = Field(
        description="Name of the DRPlan, in this namespace, this region belongs to."
    )
    provider: Provider = Field(description="Cloud provider: aws, azure, gcp or other.")
    location: str = Field(
        min_length=1, max_length=63, pattern=r"^[a-z0-9][-a-z0-9]*$", description="e.g. us-east-1, eastus."
    )
    priority: int = Field(default=100, ge=0, le=1000, description="Failover preference; lower is preferred.")
    connection: ConnectionRef = Field(description="Connection to this region's PostgreSQL.")
    endpoint: Endpoint = Field(
        description="Address the plan's Service points to when this region is primary."
    )
    promotable: bool = Field(
        default=True, description="Whether this region may ever be promoted (false for read-only DR copies)."
    )


class DRRegionStatus(StatusBase):
    """Observed state of the region on the latest check."""

    role: RegionRole | None = Field(default=None, description="Primary, Standby, Fenced or Unknown.")
    reachable: bool | None = Field(default=None, description="Whether the last check connected.")
    timeline: int | None = Field(default=None, ge=0, description="PostgreSQL timeline id.")
    current_lsn: str | None = Field(default=None, description="Primary's current WAL position.")
    receive_lsn: str | None = Field(default=None, description="Standby's last received WAL position.")
    replay_lsn: str | None = Field(default=None, description="Standby's last replayed WAL position.")
    lag_bytes: int | None = Field(default=None, ge=0, description="Bytes behind the primary.")
    lag_seconds: float | None = Field(default=None, ge=0, description="Seconds behind the primary.")
    consecutive_failures: int | None = Field(default=None, ge=0, description="Failed checks in a row.")
    failing_since: str | None = Field(default=None, description="First failed check in a row (RFC 3339).")
    last_check_time: str | None = Field(default=None, description="RFC 3339 time of the last check.")
    last_seen_time: str | None = Field(default=None, description="Last successful check (RFC 3339).")
    healthy: bool | None = Field(default=None, description="Healthy in its role at the last check.")
    streaming: bool | None = Field(default=None, description="Standby: WAL receiver is streaming.")
    read_only: bool | None = Field(default=None, description="Refuses writes by default (fence in place).")
    error: str | None = Field(default=None, description="Why the last check failed, if it did.")
    fenced: bool | None = Field(default=None, description="Fenced regions are never promoted automatically.")
    fenced_reason: str | None = Field(default=None, description="Why the region was fenced.")
    needs_reclone: bool | None = Field(default=None, description="Must be re-cloned to rejoin as standby.")


def check(spec: Model) -> list[SpecIssue]:
    """DRRegion has no cross-field rules beyond the schema."""
    assert isinstance(spec, DRRegionSpec)
    return []


INFO = KindInfo(
    kind="DRRegion",
    plural="drregions",
    short_names=("drr",),
    spec_model=DRRegionSpec,
    status_model=DRRegionStatus,
    description="A region of a multi-region PostgreSQL deployment under a DRPlan.",
    columns=(
        PrinterColumn("Plan", ".spec.planRef", description="The DRPlan."),
        PrinterColumn("Provider", ".spec.provider", description="Cloud provider."),
        PrinterColumn("Location", ".spec.location", description="Region location."),
        PrinterColumn("Priority", ".spec.priority", type="integer", description="Lower is preferred."),
        PrinterColumn("Role", ".status.role", description="Primary, Standby or Fenced."),
        PrinterColumn("Lag", ".status.lagBytes", type="integer", description="Replication lag, bytes."),
        READY_COLUMN,
        PrinterColumn("Timeline", ".status.timeline", type="integer", priority=1, description="Timeline."),
        PrinterColumn("LastCheck", ".status.lastCheckTime", priority=1, description="Last check."),
        MESSAGE_COLUMN,
        AGE_COLUMN,
    ),
    check=check,
)
