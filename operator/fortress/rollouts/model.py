"""The planner's vocabulary: what is observed, what a plan asks for, colours and phases (pure)."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from fortress.api.canaryrollout import CanaryRolloutStatus, RolloutRecord
from fortress.core.outcome import ConditionUpdate, EventNote

BLUE, GREEN = "blue", "green"
COLOURS = (BLUE, GREEN)

LABEL_ROLLOUT = "fortress.io/rollout"
LABEL_COLOUR = "fortress.io/colour"
LABEL_REVISION = "fortress.io/revision"
LABEL_MANAGED_BY = "app.kubernetes.io/managed-by"
MANAGED_BY = "fortress"


def other(colour: str) -> str:
    """The other colour."""
    return GREEN if colour == BLUE else BLUE


class Phase(StrEnum):
    PROGRESSING = "Progressing"
    PAUSED = "Paused"
    PROMOTING = "Promoting"
    SUCCEEDED = "Succeeded"
    DEGRADED = "Degraded"
    ROLLED_BACK = "RolledBack"


ACTIVE = frozenset({Phase.PROGRESSING, Phase.PAUSED, Phase.PROMOTING})
FAILED = frozenset({Phase.DEGRADED, Phase.ROLLED_BACK})


class PauseReason(StrEnum):
    UNTIL_PROMOTED = "UntilPromoted"
    PAUSED = "Paused"  # spec.paused
    INCONCLUSIVE = "InconclusiveAnalysis"


class AbortReason(StrEnum):
    ANALYSIS_FAILED = "AnalysisFailed"
    DEADLINE = "ProgressDeadlineExceeded"
    ABORTED = "Aborted"


class Raw(StrEnum):
    """How the analysis adapter classified one query result, before the missing-data policy."""

    SUCCESSFUL = "Successful"
    FAILED = "Failed"
    NO_DATA = "NoData"  # empty result or NaN (e.g. 0/0: no traffic)
    ERROR = "Error"  # Prometheus unreachable, HTTP or PromQL error, several series


class Verdict(StrEnum):
    """A metric's result as recorded in status."""

    SUCCESSFUL = "Successful"
    FAILED = "Failed"
    INCONCLUSIVE = "Inconclusive"
    SKIPPED = "Skipped"


# ---- revisions -------------------------------------------------------------------------------------


def template_hash(template: Mapping[str, Any]) -> str:
    """The pod-template hash of a revision: sha256 of the canonical JSON, 10 hex digits (deterministic)."""
    canonical = json.dumps(template, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()[:10]


# ---- observations ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class DeploymentView:
    """One colour's Deployment as observed; ``available`` counts pods of its current template only."""

    colour: str
    exists: bool = False
    revision: str | None = None
    replicas: int = 0
    available: int = 0

    def serves(self, revision: str | None, replicas: int) -> bool:
        """All ``replicas`` pods of ``revision`` are available."""
        return self.exists and self.revision == revision and self.available >= replicas


@dataclass(frozen=True)
class Measurement:
    """One metric measured once."""

    name: str
    raw: Raw
    value: float | None = None
    limit: float | None = None
    detail: str = ""


@dataclass(frozen=True)
class AnalysisSample:
    """Every metric of one analysis run against one revision."""

    at: dt.datetime
    revision: str
    measurements: tuple[Measurement, ...]


@dataclass(frozen=True)
class Observed:
    """Everything the planner sees besides the spec and the state in status."""

    now: dt.datetime
    desired_revision: str | None
    deployments: Mapping[str, DeploymentView] = field(default_factory=dict)
    analysis: AnalysisSample | None = None
    problem: str | None = None  # e.g. the workloadRef Deployment is missing

    def view(self, colour: str | None) -> DeploymentView:
        if colour is None:
            return DeploymentView(colour="")
        return self.deployments.get(colour) or DeploymentView(colour=colour)


# ---- plans -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DesiredDeployment:
    """What one colour's Deployment should be: ``revision`` None means keep whatever template it has."""

    colour: str
    revision: str | None
    replicas: int


@dataclass(frozen=True)
class Traffic:
    """Where requests go: the stable colour, the canary colour and the canary's share in percent."""

    stable: str
    canary: str | None = None
    weight: int = 0
    preview: str | None = None  # colour the blue-green preview Service selects


@dataclass(frozen=True)
class Plan:
    """One decision: the new state, the objects to converge, and what to tell people."""

    status: CanaryRolloutStatus
    deployments: tuple[DesiredDeployment, ...]
    traffic: Traffic | None  # None: leave routing as it is (an initial release not yet available)
    ready: bool
    reason: str
    conditions: tuple[ConditionUpdate, ...]
    events: tuple[EventNote, ...] = ()
    finished: tuple[RolloutRecord, ...] = ()
    requeue_after: float | None = None
    rollback: bool = False  # this decision sent traffic back to stable
