"""CanaryRollout: zero-downtime blue-green and staged canary releases with metric analysis."""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Any

from pydantic import Field

from fortress.api.common import (
    ConnectionRef,
    DnsLabel,
    Duration,
    LastRequest,
    LocalObjectReference,
    Model,
    RequestId,
    ResourceName,
    SecretKeyRef,
    StatusBase,
    parse_duration,
    preserve_unknown,
)
from fortress.api.kind import (
    AGE_COLUMN,
    MESSAGE_COLUMN,
    PHASE_COLUMN,
    READY_COLUMN,
    KindInfo,
    PrinterColumn,
    ScaleSubresource,
    SpecIssue,
)


class StrategyType(StrEnum):
    BLUE_GREEN = "blueGreen"
    CANARY = "canary"


class MissingData(StrEnum):
    FAIL = "fail"
    INCONCLUSIVE = "inconclusive"
    IGNORE = "ignore"


class RouterType(StrEnum):
    REPLICAS = "replicas"
    NGINX = "nginx"
    GATEWAY_API = "gatewayAPI"


class RequestAction(StrEnum):
    PROMOTE = "promote"
    PROMOTE_FULL = "promoteFull"
    ABORT = "abort"
    RETRY = "retry"
    RESUME = "resume"


ControlAction = RequestAction  # the name before spec.control became spec.request


# Placeholders a metric query may use; each is replaced by a safely quoted value (see rollouts.analysis).
QUERY_PLACEHOLDERS = ("Labels", "Revision", "Namespace", "Name", "Colour")
_PLACEHOLDER = re.compile(r"\{\{\s*\.?([A-Za-z]*)\s*\}\}")


def query_placeholders(query: str) -> list[str]:
    """The placeholder names used in a query, e.g. ["Labels"] for ``rate(x{ {{ .Labels }} }[1m])``."""
    return _PLACEHOLDER.findall(query)


class Thresholds(Model):
    """Limits a stage's metrics must stay within; a breach rolls the release back.

    Built-in queries over the canary's pods (window: twice the interval, at least 30 s).
    """

    max_error_rate: float | None = Field(
        default=None,
        ge=0,
        le=1,
        description=(
            "Highest acceptable error ratio (0.01 is 1 %) of the canary, metric error-rate: "
            'sum(rate(http_requests_total{<canary>,code=~"5.."}[w])) / '
            "sum(rate(http_requests_total{<canary>}[w]))."
        ),
    )
    max_p95_latency_ms: int | None = Field(
        default=None,
        ge=1,
        le=600_000,
        description=(
            "Highest acceptable p95 latency of the canary in ms, metric p95-latency-ms: 1000 * "
            "histogram_quantile(0.95, sum by (le) (rate(http_request_duration_seconds_bucket{<canary>}[w])))."
        ),
    )


class Pause(Model):
    """How long a stage holds before the next one: a duration, or until promoted by hand."""

    duration: Duration | None = Field(default=None, description="Hold the stage this long, e.g. 3m.")
    until_promoted: bool = Field(default=False, description="Hold the stage until promoted manually.")


class Stage(Model):
    """One step of a canary: the share of traffic the new version gets and how long it holds."""

    weight: int = Field(ge=0, le=100, description="Percent of traffic sent to the canary in this stage.")
    pause: Pause = Field(default_factory=lambda: Pause(duration="3m"), description="How long to hold.")
    thresholds: Thresholds | None = Field(
        default=None, description="Metric limits for this stage; defaults to the analysis thresholds."
    )


def default_stages() -> list[Stage]:
    return [Stage(weight=w, pause=Pause(duration="3m")) for w in (1, 5, 25, 50, 100)]


class CanaryStrategy(Model):
    """Staged canary: traffic moves to the new version stage by stage."""

    stages: list[Stage] = Field(
        default_factory=default_stages,
        min_length=1,
        max_length=20,
        description="Stages in order; weights rise strictly and the last is 100. Default 1/5/25/50/100 %.",
    )


class BlueGreenStrategy(Model):
    """Blue-green: the new colour is brought up in full, checked, then takes all traffic at once."""

    preview_service: ResourceName | None = Field(
        default=None, description="Service pointed at the new colour before promotion, for smoke tests."
    )
    auto_promotion_after: Duration | None = Field(
        default=None, description="Promote automatically this long after the new colour is available."
    )
    pre_promotion_analysis: bool = Field(
        default=True, description="Run the analysis against the new colour before switching traffic."
    )


class Strategy(Model):
    """How the release proceeds."""

    type: StrategyType = Field(default=StrategyType.CANARY, description="blueGreen or canary.")
    canary: CanaryStrategy | None = Field(default=None, description="Canary settings (type canary).")
    blue_green: BlueGreenStrategy | None = Field(default=None, description="Blue-green settings.")


class Metric(Model):
    """A PromQL query evaluated every interval; {{ .Labels }}, {{ .Revision }} and more are templated.

    {{ .Labels }} becomes the canary's label matchers (namespace, fortress_io_rollout and
    fortress_io_revision), {{ .Revision }}, {{ .Namespace }}, {{ .Name }} and {{ .Colour }} quoted-safe
    values. The query must return one sample (a scalar or a one-element vector).
    """

    name: DnsLabel = Field(description="Metric name as shown in status, e.g. error-rate.")
    query: str = Field(
        min_length=1, max_length=4096, description="PromQL returning one scalar or one-element vector."
    )
    max: float | None = Field(default=None, description="Fail when the value is above this.")
    min: float | None = Field(default=None, description="Fail when the value is below this.")


class Analysis(Model):
    """Metric analysis against Prometheus."""

    prometheus_address: str | None = Field(
        default=None,
        pattern=r"^https?://[^\s]+$",
        max_length=2048,
        description="Prometheus base URL, e.g. http://prometheus.monitoring:9090.",
    )
    bearer_token: SecretKeyRef | None = Field(
        default=None, description="Secret key holding a bearer token for Prometheus, if it needs one."
    )
    interval: Duration = Field(default="1m", description="How often the metrics are evaluated.")
    failure_limit: int = Field(
        default=1, ge=0, le=100, description="Failed measurements tolerated; one more rolls back."
    )
    missing_data: MissingData = Field(
        default=MissingData.INCONCLUSIVE,
        description=(
            "What an empty query result means: inconclusive (default) holds the stage and never promotes "
            "on absent data; fail counts it as a failed measurement; ignore skips it."
        ),
    )
    inconclusive_limit: int = Field(
        default=3, ge=1, le=100, description="Consecutive inconclusive measurements before pausing."
    )
    thresholds: Thresholds = Field(
        default_factory=lambda: Thresholds(max_error_rate=0.01, max_p95_latency_ms=500),
        description="Default limits for every stage: 1 % errors and 500 ms p95 unless set.",
    )
    metrics: list[Metric] = Field(
        default_factory=list, max_length=20, description="Extra metrics beyond the built-in thresholds."
    )


class NginxRouting(Model):
    """nginx ingress: a canary Ingress carrying the canary-weight annotation."""

    stable_ingress: ResourceName = Field(description="The existing Ingress that serves the stable version.")


class GatewayRouting(Model):
    """Gateway API: backendRef weights of an HTTPRoute; everything else in the route is kept."""

    http_route: ResourceName = Field(description="The HTTPRoute whose backendRefs are weighted.")
    rule_index: int | None = Field(
        default=None, ge=0, description="Rule to weight; all rules referencing the Service when unset."
    )


class TrafficRouting(Model):
    """How the traffic split is applied."""

    type: RouterType = Field(
        default=RouterType.REPLICAS, description="replicas (by pod ratio), nginx or gatewayAPI."
    )
    nginx: NginxRouting | None = Field(default=None, description="nginx settings (type nginx).")
    gateway_api: GatewayRouting | None = Field(
        default=None, alias="gatewayAPI", description="Gateway API settings (type gatewayAPI)."
    )


class FeatureFlag(Model):
    """A flag switched on when a stage is reached and off on rollback (blue-green: on at promotion).

    The rollout writes it to its ConfigMap <name>-flags and, with spec.database, to feature_flags.
    """

    name: DnsLabel = Field(description="Flag name, e.g. new-checkout.")
    enable_at_stage: int = Field(default=0, ge=0, le=19, description="Stage index that turns the flag on.")


class RolloutRequest(Model):
    """A manual request (spec.request); each distinct requestId is acted on exactly once."""

    action: RequestAction = Field(
        description=(
            "promote (next stage), promoteFull (skip the remaining stages), abort (back to 100 % stable), "
            "retry (restart a rolled-back release) or resume (leave a pause caused by inconclusive analysis)."
        )
    )
    request_id: RequestId = Field(description="Unique id of this request; a new id is a new request.")


Control = RolloutRequest  # the name before spec.control became spec.request


class CanaryRolloutSpec(Model):
    """The desired release: workload, strategy, analysis and routing."""

    template: dict[str, Any] | None = preserve_unknown(
        "Pod template of the workload (as in a Deployment). Exactly one of template and workloadRef."
    )
    workload_ref: LocalObjectReference | None = Field(
        default=None,
        description=(
            "An existing Deployment to take over: its pod template is released (and read again for new "
            "revisions); once the rollout's own pods serve and the Service selects them, it is scaled to "
            "0. Exactly one of template and workloadRef."
        ),
    )
    replicas: int = Field(
        default=2,
        ge=0,
        le=1000,
        description=(
            "Desired pods of the stable version (the scale subresource's spec.replicas: `kubectl scale` "
            "and a HorizontalPodAutoscaler set it; a canary keeps its weight as it changes)."
        ),
    )
    service: ResourceName = Field(description="The stable Service applications call.")
    strategy: Strategy = Field(default_factory=Strategy, description="blueGreen or canary and its settings.")
    analysis: Analysis = Field(default_factory=Analysis, description="Prometheus metric analysis.")
    traffic_routing: TrafficRouting = Field(default_factory=TrafficRouting, description="Traffic routing.")
    progress_deadline: Duration = Field(
        default="10m", description="A stage that makes no progress this long is aborted with the reason."
    )
    scale_down_delay: Duration = Field(
        default="30s", description="Delay before the old colour scales down after a promotion."
    )
    abort_scale_down_delay: Duration = Field(
        default="30s", description="Delay before the new colour scales down after an abort."
    )
    feature_flags: list[FeatureFlag] = Field(
        default_factory=list, max_length=50, description="Feature flags."
    )
    paused: bool = Field(
        default=False,
        description=(
            "Hold the rollout where it is: no stage advances, but analysis keeps running and a breach "
            "still rolls back."
        ),
    )
    request: RolloutRequest | None = Field(
        default=None, description="A manual promote/promoteFull/abort/retry/resume request."
    )
    control: RolloutRequest | None = Field(
        default=None, description="Deprecated name of spec.request, read for one more release; use request."
    )
    database: ConnectionRef | None = Field(
        default=None,
        description="PostgreSQL for deployment_history rows and feature_flags; none when unset.",
    )
    history_limit: int = Field(default=10, ge=1, le=100, description="Recent rollouts kept in status.")

    @property
    def manual_request(self) -> RolloutRequest | None:
        """spec.request, or its deprecated name spec.control."""
        return self.request or self.control


class MetricResult(Model):
    """The last measurement of one metric."""

    name: str = Field(description="Metric name.")
    value: float | None = Field(default=None, description="Last measured value; absent when no data.")
    limit: float | None = Field(default=None, description="The threshold it was compared with.")
    result: str = Field(description="Successful, Failed, Inconclusive or Skipped (no data, ignored).")
    measured_at: str | None = Field(default=None, description="RFC 3339 time of the measurement.")
    detail: str | None = Field(default=None, description="Why there is no value, or the comparison made.")


class FlagState(Model):
    """A feature flag as the rollout last set it."""

    name: str = Field(description="Flag name.")
    enabled: bool = Field(description="Whether the flag is on.")
    revision: str | None = Field(default=None, description="The release that switched it on.")


class StepRecord(Model):
    """One stage reached by the current release."""

    stage: int = Field(ge=0, description="Stage index.")
    weight: int = Field(ge=0, le=100, description="Canary traffic percent applied.")
    at: str = Field(description="RFC 3339 time the weight was applied.")


class RolloutRecord(Model):
    """One finished rollout in the bounded history."""

    revision: str = Field(description="Pod-template hash of the release.")
    outcome: str = Field(description="Succeeded, RolledBack or Superseded.")
    reason: str | None = Field(default=None, description="Why it ended that way.")
    started_at: str | None = Field(default=None, description="RFC 3339 start time.")
    finished_at: str | None = Field(default=None, description="RFC 3339 end time.")


class CanaryRolloutStatus(StatusBase):
    """Where the release stands."""

    current_stage: int | None = Field(default=None, ge=0, description="Index of the current stage.")
    canary_weight: int | None = Field(default=None, ge=0, le=100, description="Percent of traffic on canary.")
    stable_revision: str | None = Field(default=None, description="Pod-template hash of the stable version.")
    canary_revision: str | None = Field(default=None, description="Pod-template hash of the new version.")
    stable_colour: str | None = Field(default=None, description="blue or green.")
    stage_started_at: str | None = Field(default=None, description="When the current stage began.")
    stage_ready_at: str | None = Field(
        default=None, description="When the stage's canary pods were available and its weight applied."
    )
    rollout_started_at: str | None = Field(default=None, description="When the current release began.")
    blocked_since: str | None = Field(
        default=None,
        description="Since when the release waits outside its plan (the progress deadline counts from it).",
    )
    pause_reason: str | None = Field(
        default=None, description="Why the release is paused: UntilPromoted, Paused or InconclusiveAnalysis."
    )
    abort_reason: str | None = Field(
        default=None,
        description="Why the release was rolled back: AnalysisFailed, ProgressDeadlineExceeded or Aborted.",
    )
    metrics: list[MetricResult] = Field(default_factory=list, description="Last value of each metric.")
    failed_measurements: int | None = Field(default=None, ge=0, description="Failed measurements so far.")
    inconclusive_measurements: int | None = Field(
        default=None, ge=0, description="Consecutive inconclusive measurements."
    )
    last_analysis_at: str | None = Field(default=None, description="When the metrics were last measured.")
    scale_down_colour: str | None = Field(default=None, description="Colour waiting to be scaled down.")
    scale_down_at: str | None = Field(default=None, description="When that colour scales down.")
    flags: list[FlagState] = Field(default_factory=list, description="Feature flags as last set.")
    steps: list[StepRecord] = Field(default_factory=list, description="Stages the current release reached.")
    last_request: LastRequest | None = Field(default=None, description="The last manual request handled.")
    handled_request_id: str | None = Field(
        default=None, description="Deprecated: the requestId older releases recorded; see lastRequest."
    )
    history: list[RolloutRecord] = Field(default_factory=list, description="Recent rollouts, newest first.")
    replicas: int | None = Field(
        default=None,
        ge=0,
        description=(
            "Pods the rollout's Deployments (both colours) were sized for when last observed "
            "(the scale subresource's status.replicas)."
        ),
    )
    selector: str | None = Field(
        default=None,
        max_length=1024,
        description=(
            "Label selector of the rollout's pods, both colours (the scale subresource's selector, "
            "which a HorizontalPodAutoscaler reads its pods' metrics by)."
        ),
    )


def check(spec: Model) -> list[SpecIssue]:
    """Cross-field rules of a CanaryRollout spec that the schema cannot express."""
    assert isinstance(spec, CanaryRolloutSpec)
    issues: list[SpecIssue] = []
    if spec.request is not None and spec.control is not None and spec.request != spec.control:
        issues.append(
            SpecIssue("spec.control", "is the deprecated name of spec.request: set only spec.request")
        )
    if (spec.template is None) == (spec.workload_ref is None):
        issues.append(SpecIssue("spec.template", "set exactly one of spec.template and spec.workloadRef"))
    strategy = spec.strategy
    if strategy.type == StrategyType.CANARY:
        if strategy.blue_green is not None:
            issues.append(
                SpecIssue("spec.strategy.blueGreen", "must not be set when strategy.type is canary")
            )
        stages = (strategy.canary or CanaryStrategy()).stages
        previous = 0
        for index, stage in enumerate(stages):
            if stage.weight <= previous:
                issues.append(
                    SpecIssue(
                        f"spec.strategy.canary.stages[{index}].weight",
                        f"weights must rise strictly; {stage.weight} follows {previous}",
                    )
                )
            if stage.pause.duration is not None and stage.pause.until_promoted:
                issues.append(
                    SpecIssue(
                        f"spec.strategy.canary.stages[{index}].pause",
                        "set either duration or untilPromoted, not both",
                    )
                )
            previous = stage.weight
        if stages[-1].weight != 100:
            issues.append(
                SpecIssue(
                    f"spec.strategy.canary.stages[{len(stages) - 1}].weight", "the last stage must be 100"
                )
            )
        for index, flag in enumerate(spec.feature_flags):
            if flag.enable_at_stage >= len(stages):
                issues.append(
                    SpecIssue(
                        f"spec.featureFlags[{index}].enableAtStage",
                        f"stage {flag.enable_at_stage} does not exist (there are {len(stages)})",
                    )
                )
    elif strategy.canary is not None:
        issues.append(SpecIssue("spec.strategy.canary", "must not be set when strategy.type is blueGreen"))
    routing = spec.traffic_routing
    if routing.type == RouterType.NGINX and routing.nginx is None:
        issues.append(SpecIssue("spec.trafficRouting.nginx", "required when trafficRouting.type is nginx"))
    if routing.type == RouterType.GATEWAY_API and routing.gateway_api is None:
        issues.append(
            SpecIssue("spec.trafficRouting.gatewayAPI", "required when trafficRouting.type is gatewayAPI")
        )
    if strategy.type == StrategyType.BLUE_GREEN and routing.type != RouterType.REPLICAS:
        issues.append(SpecIssue("spec.trafficRouting.type", "blueGreen switches the Service; use replicas"))
    names = [m.name for m in spec.analysis.metrics]
    for index, name in enumerate(names):
        if names.index(name) != index:
            issues.append(
                SpecIssue(f"spec.analysis.metrics[{index}].name", f"duplicate metric name {name!r}")
            )
    for index, metric in enumerate(spec.analysis.metrics):
        if metric.min is None and metric.max is None:
            issues.append(SpecIssue(f"spec.analysis.metrics[{index}]", "set min, max or both"))
        elif metric.min is not None and metric.max is not None and metric.min > metric.max:
            issues.append(SpecIssue(f"spec.analysis.metrics[{index}].min", "min is above max"))
    if spec.analysis.metrics and spec.analysis.prometheus_address is None:
        issues.append(
            SpecIssue("spec.analysis.prometheusAddress", "required when spec.analysis.metrics are given")
        )
    for index, metric in enumerate(spec.analysis.metrics):
        unknown = sorted(set(query_placeholders(metric.query)) - set(QUERY_PLACEHOLDERS))
        if unknown:
            issues.append(
                SpecIssue(
                    f"spec.analysis.metrics[{index}].query",
                    f"unknown placeholder {{{{ .{unknown[0]} }}}}; use one of "
                    + ", ".join(f"{{{{ .{name} }}}}" for name in QUERY_PLACEHOLDERS),
                )
            )
    if parse_duration(spec.analysis.interval).total_seconds() < 1:
        issues.append(SpecIssue("spec.analysis.interval", "must be at least 1s"))
    return issues


INFO = KindInfo(
    kind="CanaryRollout",
    plural="canaryrollouts",
    short_names=("cro",),
    spec_model=CanaryRolloutSpec,
    status_model=CanaryRolloutStatus,
    description="Zero-downtime blue-green and staged canary releases with metric analysis and rollback.",
    columns=(
        PrinterColumn("Strategy", ".spec.strategy.type", description="blueGreen or canary."),
        PHASE_COLUMN,
        PrinterColumn("Stage", ".status.currentStage", type="integer", description="Current stage index."),
        PrinterColumn("Weight", ".status.canaryWeight", type="integer", description="Canary traffic %."),
        READY_COLUMN,
        PrinterColumn("Stable", ".status.stableRevision", priority=1, description="Stable revision."),
        PrinterColumn("Canary", ".status.canaryRevision", priority=1, description="Canary revision."),
        MESSAGE_COLUMN,
        AGE_COLUMN,
    ),
    check=check,
    scale=ScaleSubresource(spec_replicas="replicas", status_replicas="replicas", label_selector="selector"),
)
