"""DRPlan: health checks, automatic failover with fencing, switchover and failback across regions."""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from pydantic import Field, model_validator

from fortress.api.common import (
    Duration,
    LastRequest,
    Model,
    RequestId,
    ResourceName,
    StatusBase,
    parse_duration,
    without_required,
)
from fortress.api.kind import (
    AGE_COLUMN,
    MESSAGE_COLUMN,
    PHASE_COLUMN,
    READY_COLUMN,
    KindInfo,
    PrinterColumn,
    SpecIssue,
)


class FailoverMode(StrEnum):
    AUTOMATIC = "automatic"
    MANUAL = "manual"


class ServiceMode(StrEnum):
    ENDPOINTS = "Endpoints"
    EXTERNAL_NAME = "ExternalName"


class FencingMethod(StrEnum):
    READ_ONLY = "readOnly"
    STOP = "stop"


class RequestAction(StrEnum):
    FAILOVER = "failover"
    SWITCHOVER = "switchover"


RequestType = RequestAction  # the name before spec.request.type became spec.request.action


class PrimaryService(Model):
    """The Service applications use to reach the primary; the operator repoints it."""

    name: ResourceName = Field(description="Service name in this namespace.")
    mode: ServiceMode = Field(
        default=ServiceMode.ENDPOINTS, description="Endpoints (selector-less Service) or ExternalName."
    )
    port: int = Field(default=5432, ge=1, le=65535, description="Service port.")


class FailoverRequest(Model):
    """A manual failover or planned switchover (spec.request); each requestId is acted on once."""

    model_config = {"json_schema_extra": without_required("action")}  # `type` may stand for it

    action: RequestAction = Field(description="failover (now) or switchover (waits for zero lag).")
    type: RequestAction | None = Field(
        default=None, description="Deprecated name of action, read for one more release; use action."
    )
    target_region: ResourceName = Field(description="DRRegion to promote.")
    force: bool = Field(default=False, description="Failover even beyond the lag limit (may lose data).")
    request_id: RequestId = Field(description="Unique id of this request; a new id is a new request.")

    @model_validator(mode="before")
    @classmethod
    def _legacy_type(cls, data: Any) -> Any:
        """``type`` (the older name) stands for ``action`` when only it is given."""
        if isinstance(data, dict) and "action" not in data and data.get("type") is not None:
            return {**data, "action": data["type"]}
        return data


class DRPlanSpec(Model):
    """How regions are checked and when and how a standby takes over."""

    check_interval: Duration = Field(default="30s", description="Time between health checks.")
    failure_threshold: int = Field(
        default=3, ge=1, le=100, description="Consecutive failed checks of the primary before failing over."
    )
    mode: FailoverMode = Field(default=FailoverMode.AUTOMATIC, description="automatic or manual.")
    rpo_target: Duration = Field(default="30s", description="Most data loss (as replication delay) accepted.")
    rto_target: Duration = Field(default="2m", description="Target time from detection to writable primary.")
    max_lag_bytes: int = Field(
        default=16 * 1024 * 1024, ge=0, description="A standby further behind than this is never promoted."
    )
    service: PrimaryService = Field(description="The Service that points at the primary.")
    fencing: FencingMethod = Field(
        default=FencingMethod.READ_ONLY, description="How a reachable old primary is fenced."
    )
    synchronous: bool = Field(
        default=False, description="Expect synchronous replication (RPO 0) to the preferred standby."
    )
    lease_duration: Duration = Field(default="30s", description="Lease that serialises failovers.")
    request: FailoverRequest | None = Field(default=None, description="A manual failover or switchover.")
    history_limit: int = Field(default=10, ge=1, le=100, description="Failovers kept in status.")


class RegionSummary(Model):
    """One region as seen by the plan."""

    name: str = Field(description="DRRegion name.")
    role: str = Field(description="Primary, Standby, Fenced or Unknown.")
    healthy: bool = Field(description="Whether its last check passed.")
    lag_bytes: int | None = Field(default=None, ge=0, description="Replication lag, bytes.")
    lag_seconds: float | None = Field(default=None, ge=0, description="Replication lag, seconds.")
    fenced: bool = Field(default=False, description="Whether the region is fenced.")


class FailoverRecord(Model):
    """A failover or switchover and what it cost."""

    type: str = Field(description="failover or switchover.")
    from_region: str | None = Field(default=None, description="Old primary.")
    to_region: str = Field(description="New primary.")
    reason: str = Field(description="Why it happened.")
    detected_at: str | None = Field(default=None, description="When the failure was detected.")
    promoted_at: str | None = Field(default=None, description="When the new primary accepted writes.")
    rto_seconds: float | None = Field(default=None, ge=0, description="Measured RTO.")
    rpo_bytes: int | None = Field(
        default=None,
        ge=0,
        description="WAL bytes the new primary lacked of the old primary's last seen position (lower bound).",
    )
    rpo_seconds: float | None = Field(default=None, ge=0, description="Seconds of writes not replicated.")
    request_id: str | None = Field(default=None, description="The manual request that asked for it, if any.")
    event_id: int | None = Field(default=None, ge=0, description="Row id in failover_events (new primary).")


class Operation(Model):
    """A failover or switchover under way; kept in status so a restarted operator resumes it."""

    type: str = Field(description="failover or switchover.")
    from_region: str | None = Field(default=None, description="Primary being replaced.")
    to_region: str = Field(description="Region being promoted.")
    reason: str = Field(description="Why it was started.")
    started_at: str = Field(description="When the operator started it.")
    detected_at: str | None = Field(default=None, description="When the primary's failure was first seen.")
    request_id: str | None = Field(default=None, description="The manual request behind it, if any.")
    force: bool = Field(default=False, description="Whether the lag limit was overridden.")


class DRPlanStatus(StatusBase):
    """The plan's view of its regions and failovers."""

    primary_region: str | None = Field(default=None, description="Current primary.")
    regions: list[RegionSummary] = Field(default_factory=list, description="Regions of the plan.")
    healthy_regions: int | None = Field(default=None, ge=0, description="Regions whose last check passed.")
    last_failover: FailoverRecord | None = Field(default=None, description="The latest failover.")
    history: list[FailoverRecord] = Field(default_factory=list, description="Recent failovers, newest first.")
    last_request: LastRequest | None = Field(default=None, description="The last manual request handled.")
    handled_request_id: str | None = Field(
        default=None, description="Deprecated: the requestId older releases recorded; see lastRequest."
    )
    lease_holder: str | None = Field(default=None, description="Operator replica holding the failover lease.")
    last_check_time: str | None = Field(default=None, description="RFC 3339 time of the latest check.")
    service_endpoint: str | None = Field(
        default=None, description="Where the plan's Service points (host:port)."
    )
    candidate: str | None = Field(default=None, description="The region a failover would promote now.")
    in_progress: Operation | None = Field(default=None, description="A failover or switchover under way.")


def check(spec: Model) -> list[SpecIssue]:
    """Cross-field rules of a DRPlan spec."""
    assert isinstance(spec, DRPlanSpec)
    issues: list[SpecIssue] = []
    interval = parse_duration(spec.check_interval)
    if interval.total_seconds() < 1:
        issues.append(SpecIssue("spec.checkInterval", "must be at least 1s"))
    detection = interval * spec.failure_threshold
    if detection >= parse_duration(spec.rto_target):
        issues.append(
            SpecIssue(
                "spec.rtoTarget",
                f"cannot be met: detection alone takes checkInterval x failureThreshold = "
                f"{detection.total_seconds():g}s",
            )
        )
    if parse_duration(spec.lease_duration) < interval:
        issues.append(SpecIssue("spec.leaseDuration", "must be at least spec.checkInterval"))
    return issues


INFO = KindInfo(
    kind="DRPlan",
    plural="drplans",
    short_names=("drp",),
    spec_model=DRPlanSpec,
    status_model=DRPlanStatus,
    description="Multi-region PostgreSQL disaster recovery: health checks, failover, fencing, RPO/RTO.",
    columns=(
        PrinterColumn("Mode", ".spec.mode", description="automatic or manual."),
        PrinterColumn("Primary", ".status.primaryRegion", description="Current primary region."),
        PHASE_COLUMN,
        PrinterColumn("Healthy", ".status.healthyRegions", type="integer", description="Healthy regions."),
        READY_COLUMN,
        PrinterColumn(
            "LastRTO",
            ".status.lastFailover.rtoSeconds",
            type="number",
            priority=1,
            description="RTO of the latest failover, s.",
        ),
        PrinterColumn(
            "LastRPO",
            ".status.lastFailover.rpoBytes",
            type="integer",
            priority=1,
            description="RPO of the latest failover, bytes.",
        ),
        MESSAGE_COLUMN,
        AGE_COLUMN,
    ),
    check=check,
)
