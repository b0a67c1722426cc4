"""What a CreditLedger's status says, from what its database holds (pure)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

from fortress.core.outcome import EventNote, Outcome
from fortress.ledger.projections import Lag

STATUS_REFRESH_SECONDS: Final = 5.0
RETRY_SECONDS: Final = 10.0
PHASE_READY: Final = "Active"
PHASE_PENDING: Final = "Pending"


@dataclass(frozen=True)
class Observed:
    """The ledger's figures, read from its database."""

    schema_version: int | None
    dirty: bool
    events_total: int
    last_global_position: int
    snapshots: int
    aggregates: int
    lag: Lag


@dataclass
class ProjectorHealth:
    """What the projector last met: its last error (shown in status and as a Warning Event) and failures."""

    last_error: str | None = None
    failures: int = 0

    def failed(self, error: str) -> bool:
        """Record a failure; True when it differs from the previous one."""
        new = error != self.last_error
        self.last_error, self.failures = error, self.failures + 1
        return new

    def recovered(self) -> None:
        self.last_error, self.failures = None, 0


def ready_outcome(
    observed: Observed, projection_enabled: bool, health: ProjectorHealth | None = None
) -> Outcome:
    """The Ready outcome and status fields for what was observed."""
    error = health.last_error if health is not None else None
    fields: dict[str, Any] = {
        "schemaVersion": observed.schema_version,
        "eventsTotal": observed.events_total,
        "lastGlobalPosition": observed.last_global_position,
        "snapshots": observed.snapshots,
        "projection": {
            "position": observed.lag.position,
            "lagEvents": observed.lag.events,
            "lagSeconds": round(observed.lag.seconds, 3),
            "lastError": error,  # None removes it (a merge patch)
        },
    }
    events = (EventNote("Warning", "ProjectorError", error),) if error else ()
    if observed.dirty:
        return Outcome(
            ready=False,
            reason="SchemaDirty",
            message=f"the database schema is dirty at version {observed.schema_version}: "
            "a migration failed; see `fortress migrate status`",
            phase=PHASE_PENDING,
            fields=fields,
            events=events,
            requeue_after=RETRY_SECONDS,
        )
    projecting = "projector running" if projection_enabled else "projector disabled"
    message = (
        f"{observed.events_total} events in {observed.aggregates} accounts, "
        f"projection lag {observed.lag.events} events; {projecting}"
    )
    return Outcome(
        ready=True,
        reason="LedgerReady",
        message=message,
        phase=PHASE_READY,
        fields=fields,
        events=events,
        requeue_after=STATUS_REFRESH_SECONDS,
    )


def not_ready(reason: str, message: str, warn: bool = False) -> Outcome:
    """Ready=False for ``reason``; ``warn``: also a Warning Event (posted once while it holds)."""
    events = (EventNote("Warning", reason, message),) if warn else ()
    return Outcome(
        ready=False,
        reason=reason,
        message=message,
        phase=PHASE_PENDING,
        events=events,
        requeue_after=RETRY_SECONDS,
    )
