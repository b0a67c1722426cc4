"""What a DRPlan check decides about, and what it decides: the data of the election (pure).

``RegionState`` and ``PlanState`` are what earlier checks recorded (the specs and the statuses);
``RegionVerdict`` is a region after this check; ``Decision`` is what the check does about it.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from enum import StrEnum

from fortress.api.drplan import DRPlanSpec, Operation


class Action(StrEnum):
    HEALTHY = "Healthy"  # the primary is healthy: nothing to promote
    WAIT = "Wait"  # the primary failed fewer than failureThreshold checks in a row
    FAILOVER = "Failover"  # promote target now (the old primary is fenced)
    SWITCHOVER = "Switchover"  # fence the primary, wait for zero lag, promote target
    NO_CANDIDATE = "NoCandidate"  # the primary is lost and no standby may be promoted
    MANUAL = "ManualMode"  # the primary is lost; automatic failover is off: report only
    NO_PRIMARY = "NoPrimary"  # no primary recorded or observed
    SPLIT_BRAIN = "SplitBrain"  # several unfenced primaries and none recorded: act on nothing
    DUPLICATE = "DuplicateServers"  # several regions reach the same server: act on nothing
    LEASE_HELD = "LeaseHeld"  # another operator replica holds the plan's lease


@dataclass(frozen=True)
class RegionState:
    """A region's spec and what earlier checks recorded in its status."""

    name: str
    priority: int = 100
    promotable: bool = True
    endpoint: str = ""  # host:port the Service points at when it is primary
    fenced: bool = False
    needs_reclone: bool = False
    consecutive_failures: int = 0
    failing_since: dt.datetime | None = None
    last_timeline: int | None = None
    last_lsn: int | None = None  # last known WAL position (current LSN while primary)


@dataclass(frozen=True)
class PlanState:
    """The plan's spec and what earlier checks recorded in its status."""

    spec: DRPlanSpec
    primary: str | None = None
    handled_request_id: str | None = None
    in_progress: Operation | None = None
    service_endpoint: str | None = None


@dataclass(frozen=True)
class LeaseView:
    holds: bool
    holder: str | None = None


@dataclass(frozen=True)
class RegionVerdict:
    """A region after this check."""

    healthy: bool
    failures: int
    failing_since: dt.datetime | None
    fenced: bool
    needs_reclone: bool
    ineligible: str | None  # why it may not be promoted now; None when it may


@dataclass(frozen=True)
class Decision:
    action: Action
    reason: str
    primary: str | None  # the primary once the decision is carried out
    regions: Mapping[str, RegionVerdict] = field(default_factory=dict)
    target: str | None = None  # FAILOVER / SWITCHOVER: region to promote
    from_region: str | None = None  # FAILOVER / SWITCHOVER: primary being replaced
    candidate: str | None = None  # who a failover would promote now
    fence: tuple[str, ...] = ()  # apply the fence now (reachable, still writable)
    unfence: tuple[str, ...] = ()  # fenced regions that rejoined as standbys of the primary
    lift_fence: tuple[str, ...] = ()  # make writable again (an abandoned switchover)
    follow: tuple[str, ...] = ()  # point these standbys at the primary (after promotion: target)
    service_to: str | None = None  # repoint the Service to this region's endpoint
    request_id: str | None = None  # the manual request this check handled (acted on or rejected)
    request_note: str | None = None  # why it was rejected
    force: bool = False
    detected_at: dt.datetime | None = None  # when the primary's failure was first seen
    loss_bytes: int | None = None  # FAILOVER: WAL the target lacks of the primary's last known position
    resume: bool = False  # continuing an operation recorded in status
    abandoned: str | None = None  # an operation in status that was given up, and why
    duplicates: tuple[tuple[str, ...], ...] = ()  # regions reaching the same server

    @property
    def acts(self) -> bool:
        return self.action in (Action.FAILOVER, Action.SWITCHOVER)


def with_verdict(
    verdicts: Mapping[str, RegionVerdict], name: str, **changes: object
) -> dict[str, RegionVerdict]:
    """``verdicts`` with one region's verdict changed."""
    updated = dict(verdicts)
    updated[name] = replace(updated[name], **changes)  # type: ignore[arg-type]
    return updated
