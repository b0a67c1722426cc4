"""CanaryRollout collectors: phase, canary weight, analysis results, release durations, rollbacks."""

from __future__ import annotations

import contextlib

from prometheus_client import Counter, Gauge, Histogram

from fortress.metrics import REGISTRY

ROLLOUT_PHASES = ("Progressing", "Paused", "Promoting", "Succeeded", "Degraded", "RolledBack")

ROLLOUT_PHASE = Gauge(
    "fortress_rollouts_phase",
    "1 for the CanaryRollout's current phase, 0 for the other phases.",
    ["namespace", "name", "phase"],
    registry=REGISTRY,
)
ROLLOUT_CANARY_WEIGHT = Gauge(
    "fortress_rollouts_canary_weight_percent",
    "Percent of traffic the canary receives (0 between releases).",
    ["namespace", "name"],
    registry=REGISTRY,
)
ROLLOUT_ANALYSIS = Counter(
    "fortress_rollouts_analysis_measurements_total",
    "Metric measurements by result (Successful, Failed, Inconclusive, Skipped).",
    ["namespace", "name", "metric", "result"],
    registry=REGISTRY,
)
ROLLOUT_METRIC_VALUE = Gauge(
    "fortress_rollouts_metric_value",
    "Last measured value of each analysis metric.",
    ["namespace", "name", "metric"],
    registry=REGISTRY,
)
ROLLOUT_DURATION = Histogram(
    "fortress_rollouts_duration_seconds",
    "Time from the start to the end of a release, by strategy and outcome.",
    ["strategy", "outcome"],
    registry=REGISTRY,
    buckets=(1, 5, 15, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200, 14400),
)
ROLLOUT_ROLLBACKS = Counter(
    "fortress_rollouts_rollbacks_total",
    "Releases rolled back, by reason (AnalysisFailed, ProgressDeadlineExceeded, Aborted).",
    ["namespace", "name", "reason"],
    registry=REGISTRY,
)
ROLLOUT_ROLLBACK_SECONDS = Histogram(
    "fortress_rollouts_rollback_latency_seconds",
    "From the failing analysis sample to traffic written back to 100 % stable.",
    registry=REGISTRY,
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 5),
)
ROLLOUT_STEP_SECONDS = Histogram(
    "fortress_rollouts_step_duration_seconds",
    "One observe-decide-execute step of a CanaryRollout.",
    registry=REGISTRY,
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)


def set_phase(namespace: str, name: str, phase: str | None) -> None:
    for candidate in ROLLOUT_PHASES:
        ROLLOUT_PHASE.labels(namespace, name, candidate).set(1 if candidate == phase else 0)


def forget(namespace: str, name: str) -> None:
    """Drop a deleted rollout's series."""
    for candidate in ROLLOUT_PHASES:
        with contextlib.suppress(KeyError):
            ROLLOUT_PHASE.remove(namespace, name, candidate)
    with contextlib.suppress(KeyError):
        ROLLOUT_CANARY_WEIGHT.remove(namespace, name)
