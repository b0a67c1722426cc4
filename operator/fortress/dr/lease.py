"""Who may act for a plan: a coordination.k8s.io/v1 Lease ``<plan>-failover`` (the decision is pure).

The replica holding a fresh lease checks, decides, acts and writes status; every other replica
waits until the lease expires. The holder renews it on its checks, so a failover is never run twice
by two replicas: the write that takes the lease carries the resourceVersion it read, and the API
server refuses the second of two concurrent writers.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, replace
from enum import StrEnum


def lease_name(plan: str) -> str:
    return f"{plan}-failover"


@dataclass(frozen=True)
class LeaseRecord:
    """The fields of a Lease that matter here."""

    holder: str | None
    duration_seconds: float
    acquired_at: dt.datetime | None = None
    renewed_at: dt.datetime | None = None
    transitions: int = 0
    resource_version: str | None = None

    def expires_at(self) -> dt.datetime | None:
        if self.renewed_at is None:
            return None
        return self.renewed_at + dt.timedelta(seconds=self.duration_seconds)


class LeaseAction(StrEnum):
    ACQUIRE = "Acquire"  # write: absent, expired or released
    RENEW = "Renew"  # write: ours, renewal due
    KEEP = "Keep"  # ours and fresh: nothing to write
    WAIT = "Wait"  # another replica's and fresh


@dataclass(frozen=True)
class LeaseStep:
    action: LeaseAction
    holds: bool  # whether this replica may act once the write (if any) succeeded
    holder: str | None
    record: LeaseRecord | None  # what to write for ACQUIRE and RENEW
    reason: str


def step(
    current: LeaseRecord | None,
    me: str,
    now: dt.datetime,
    duration_seconds: float,
    renew_after_seconds: float | None = None,
) -> LeaseStep:
    """What this replica does with the lease on this check."""
    if not me:
        raise ValueError("lease holder identity must not be empty")
    if duration_seconds <= 0:
        raise ValueError(f"lease duration must be positive, got {duration_seconds}")
    renew_after = duration_seconds / 3 if renew_after_seconds is None else renew_after_seconds
    if current is None:
        record = LeaseRecord(me, duration_seconds, now, now, 0)
        return LeaseStep(LeaseAction.ACQUIRE, True, me, record, "no lease yet")
    if current.holder == me:
        due = current.renewed_at is None or (now - current.renewed_at).total_seconds() >= renew_after
        if due or current.duration_seconds != duration_seconds:
            record = replace(current, renewed_at=now, duration_seconds=duration_seconds)
            return LeaseStep(LeaseAction.RENEW, True, me, record, "renewing our lease")
        return LeaseStep(LeaseAction.KEEP, True, me, None, "we hold the lease")
    expires = current.expires_at()
    if not current.holder or expires is None or expires <= now:
        why = "released" if not current.holder else f"{current.holder}'s lease expired"
        record = LeaseRecord(
            me, duration_seconds, now, now, current.transitions + 1, current.resource_version
        )
        return LeaseStep(LeaseAction.ACQUIRE, True, me, record, why)
    left = (expires - now).total_seconds()
    return LeaseStep(
        LeaseAction.WAIT, False, current.holder, None, f"held by {current.holder} for {left:.0f}s more"
    )
