"""SyntheticDataset: seeded, measurably realistic users, transactions and time series, and decoys."""

from __future__ import annotations

from dataclasses import replace
from enum import StrEnum

from pydantic import Field

from fortress.api.common import (
    ConnectionRef,
    Duration,
    LastRequest,
    Model,
    RequestId,
    ResourceName,
    StatusBase,
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
from fortress.core.time import parse, seconds_of

CONFIGMAP_MAX_RECORDS = 5_000
MAX_RECORDS = 10_000_000
MAX_API_TOKENS = 100_000


class DatasetKind(StrEnum):
    USERS = "users"
    TRANSACTIONS = "transactions"
    TIME_SERIES = "timeseries"


class TargetType(StrEnum):
    CONFIG_MAP = "configMap"
    POSTGRES = "postgres"


class PostgresTarget(Model):
    """A PostgreSQL table the records are written to (created by the operator)."""

    connection: ConnectionRef = Field(description="Connection to the target database.")
    table: str = Field(
        pattern=r"^[a-z_][a-z0-9_]{0,62}$",
        description="Table name in the connection's current schema (lower-case identifier). Created by "
        "the operator; a table of that name that the operator did not create is never overwritten.",
    )


class Target(Model):
    """Where the generated records go."""

    type: TargetType = Field(default=TargetType.CONFIG_MAP, description="configMap or postgres.")
    config_map: ResourceName | None = Field(
        default=None, description="ConfigMap name (type configMap); defaults to <name>-data."
    )
    postgres: PostgresTarget | None = Field(default=None, description="Table settings (type postgres).")


class TimeSeries(Model):
    """Shape of generated time series."""

    start: str | None = Field(
        default=None,
        max_length=64,
        description="RFC 3339 time of the first point; 2024-01-01T00:00:00Z when unset (never the "
        "current time, so the same spec gives the same data).",
    )
    interval: Duration = Field(default="1m", description="Spacing between points (at least 1ms).")
    series: int = Field(default=1, ge=1, le=1000, description="Independent series (count is per series).")
    seasonality: Duration = Field(
        default="24h", description="Period of the seasonal component (at least two intervals)."
    )
    amplitude: float = Field(default=0.3, ge=0, le=1, description="Seasonal amplitude relative to the level.")
    trend: float = Field(default=0.0, ge=-1, le=1, description="Relative drift per seasonal period.")
    noise: float = Field(default=0.1, ge=0, le=10, description="Noise relative to the level.")
    anomaly_rate: float = Field(
        default=0.0, ge=0, le=0.1, description="Share of points made anomalous and labelled so (0-0.1)."
    )


class Decoy(Model):
    """The dataset is a honeytoken set: touching it raises the alarm."""

    check_interval: Duration = Field(
        default="30s", description="How often a PostgreSQL target's read counters are checked."
    )
    api_tokens: int = Field(
        default=0,
        ge=0,
        le=MAX_API_TOKENS,
        description="Users that carry a fake Fortress API token (kind users); presenting one to the API "
        "is refused with 401 and recorded as an intrusion attempt.",
    )
    audit: ConnectionRef | None = Field(
        default=None,
        description="The Fortress database (migrations applied): audit_trail records and the registry "
        "of decoy API tokens the API checks. Required with apiTokens; otherwise a read is audited in "
        "the target database's audit_trail when it has one.",
    )


class RequestAction(StrEnum):
    REGENERATE = "regenerate"


class SyntheticRequest(Model):
    """A manual request: regenerate the dataset into a new table (or ConfigMap) and swap it in."""

    action: RequestAction = Field(description="regenerate.")
    request_id: RequestId = Field(description="A new value for each request; handled once.")


class SyntheticDatasetSpec(Model):
    """What to generate, how much, from which seed and where to put it."""

    kind: DatasetKind = Field(description="users, transactions or timeseries.")
    count: int = Field(ge=1, le=MAX_RECORDS, description="Records to generate (per series for timeseries).")
    seed: int = Field(
        default=0, ge=0, le=2**53 - 1, description="Seed; same seed and spec give the same data."
    )
    locale: str = Field(
        default="en_US",
        pattern=r"^[a-z]{2}_[A-Z]{2}$",
        description="Locale, e.g. en_US: the country most users live in (names come from the US Census "
        "corpus whatever the locale).",
    )
    target: Target = Field(default_factory=Target, description="Where records are written.")
    time_series: TimeSeries | None = Field(default=None, description="Settings for kind timeseries.")
    users: int | None = Field(
        default=None,
        ge=1,
        le=1_000_000,
        description="Distinct users transactions are spread over (default count/10); user u is user u "
        "of a users dataset with the same seed and locale.",
    )
    chunk_size: int = Field(
        default=50_000,
        ge=1_000,
        le=1_000_000,
        description="Records per COPY transaction (postgres target): the unit of progress and resume.",
    )
    retain_on_delete: bool = Field(
        default=False, description="Keep the table or ConfigMap when the SyntheticDataset is deleted."
    )
    decoy: Decoy | None = Field(default=None, description="Watch the dataset as a honeytoken set.")
    request: SyntheticRequest | None = Field(default=None, description="A manual request (regenerate).")


class LearnedScore(Model):
    """A column learned from real data, scored against the held-out part of its corpus."""

    column: str = Field(description="The column (or pair of columns).")
    metric: str = Field(description="KS complement, TV complement or correlation similarity, and of what.")
    score: float = Field(description="The generated records against held-out real data (1 is identical).")
    ceiling: float = Field(description="Training data against the same held-out data.")
    floor: float = Field(description="Uniformly random values against the same held-out data.")


class FitResult(Model):
    """A parametric column's goodness of fit to its declared distribution (not a realism score)."""

    column: str = Field(description="The column.")
    test: str = Field(description="The statistic and the declared distribution.")
    statistic: float = Field(description="The measured statistic (lower is closer).")
    threshold: float = Field(description="The largest statistic a correct generator shows at this size.")
    passed: bool = Field(description="statistic <= threshold.")


class QualityReport(Model):
    """How realistic the data is, measured on the first records (see docs/synthetic.md)."""

    sampled: int = Field(default=0, ge=0, description="Records scored (the first ones).")
    unique_records: float | None = Field(
        default=None, ge=0, le=1, description="Distinct records (without their id) / records scored."
    )
    unique_names: float | None = Field(
        default=None, ge=0, le=1, description="Distinct (first, last) names / records scored (users)."
    )
    learned: list[LearnedScore] = Field(
        default_factory=list, description="Learned columns against held-out real data."
    )
    fitted: list[FitResult] = Field(
        default_factory=list, description="Parametric columns: goodness of fit to the declared distribution."
    )


class DecoyStatus(Model):
    """What the decoy watch saw."""

    reads: int = Field(default=0, ge=0, description="Reads of the table by others since it went live.")
    relid: int | None = Field(default=None, description="OID of the table the baseline belongs to.")
    baseline_scans: int | None = Field(
        default=None, ge=0, description="seq_scan + idx_scan of the table when it went live."
    )
    last_touched_at: str | None = Field(default=None, description="RFC 3339 time reads were first seen.")
    checked_at: str | None = Field(default=None, description="RFC 3339 time of the last check.")
    tokens: int | None = Field(default=None, ge=0, description="Decoy API tokens registered.")


class SyntheticDatasetStatus(StatusBase):
    """What was generated."""

    generated: int | None = Field(default=None, ge=0, description="Records written.")
    total: int | None = Field(default=None, ge=0, description="Records the spec asks for.")
    records_per_second: float | None = Field(default=None, ge=0, description="Generation and write rate.")
    eta_seconds: float | None = Field(default=None, ge=0, description="Estimated seconds to completion.")
    target_ref: str | None = Field(default=None, description="Where they were written.")
    generation_key: str | None = Field(
        default=None, description="Hash of what decides the records (spec fields and regenerate request)."
    )
    digest: str | None = Field(
        default=None, description="SHA-256 of the canonical record stream (reproducibility check)."
    )
    last_generated_at: str | None = Field(default=None, description="RFC 3339 time of generation.")
    last_error: str | None = Field(default=None, description="The generation's last error, while it retries.")
    quality: QualityReport | None = Field(default=None, description="Realism checks.")
    decoy: DecoyStatus | None = Field(default=None, description="The decoy watch (spec.decoy).")
    last_request: LastRequest | None = Field(default=None, description="The last manual request handled.")


def check(spec: Model) -> list[SpecIssue]:
    """Cross-field rules of a SyntheticDataset spec."""
    assert isinstance(spec, SyntheticDatasetSpec)
    issues: list[SpecIssue] = []
    series = spec.time_series.series if spec.time_series is not None else 1
    total = spec.count * series if spec.kind == "timeseries" else spec.count
    if spec.target.type == "postgres" and spec.target.postgres is None:
        issues.append(SpecIssue("spec.target.postgres", "required when target.type is postgres"))
    if spec.target.type == "configMap":
        if spec.target.postgres is not None:
            issues.append(SpecIssue("spec.target.postgres", "must not be set when target.type is configMap"))
        if total > CONFIGMAP_MAX_RECORDS:
            issues.append(
                SpecIssue(
                    "spec.count",
                    f"a ConfigMap holds at most {CONFIGMAP_MAX_RECORDS} records; use target.type postgres",
                )
            )
    elif spec.target.config_map is not None:
        issues.append(SpecIssue("spec.target.configMap", "only valid when target.type is configMap"))
    if total > MAX_RECORDS:
        issues.append(
            SpecIssue("spec.count", f"count x timeSeries.series is more than {MAX_RECORDS:,} records")
        )
    if spec.time_series is not None and spec.kind != "timeseries":
        issues.append(SpecIssue("spec.timeSeries", "only valid when kind is timeseries"))
    if spec.time_series is not None:
        issues += _series_issues(spec.time_series)
    if spec.users is not None and spec.kind != "transactions":
        issues.append(SpecIssue("spec.users", "only valid when kind is transactions"))
    if spec.decoy is not None:
        tokens = spec.decoy.api_tokens
        if tokens and spec.kind != "users":
            issues.append(SpecIssue("spec.decoy.apiTokens", "only users carry API tokens (kind users)"))
        if tokens > spec.count:
            issues.append(
                SpecIssue("spec.decoy.apiTokens", f"more tokens ({tokens}) than users ({spec.count})")
            )
        if tokens and spec.decoy.audit is None:
            issues.append(
                SpecIssue(
                    "spec.decoy.audit",
                    "required with apiTokens: the Fortress database where the API finds decoy tokens",
                )
            )
        if spec.target.type == "configMap" and not tokens:
            issues.append(
                SpecIssue(
                    "spec.decoy",
                    "a ConfigMap has no read counters to watch: set decoy.apiTokens (a use of a token "
                    "raises the alarm) or use target.type postgres",
                )
            )
    return issues


def _series_issues(shape: TimeSeries) -> list[SpecIssue]:
    issues: list[SpecIssue] = []
    if shape.start is not None and parse(shape.start) is None:
        issues.append(SpecIssue("spec.timeSeries.start", f"not an RFC 3339 time: {shape.start!r}"))
    interval = seconds_of(shape.interval)
    if interval < 0.001:
        issues.append(SpecIssue("spec.timeSeries.interval", "must be at least 1ms"))
    elif seconds_of(shape.seasonality) < 2 * interval:
        issues.append(SpecIssue("spec.timeSeries.seasonality", "must be at least two intervals"))
    return issues


INFO = KindInfo(
    kind="SyntheticDataset",
    plural="syntheticdatasets",
    short_names=("synth",),
    spec_model=SyntheticDatasetSpec,
    status_model=SyntheticDatasetStatus,
    description="Seeded, measurably realistic users, transactions and time series, and decoys.",
    columns=(
        PrinterColumn("Kind", ".spec.kind", description="users, transactions or timeseries."),
        PrinterColumn("Count", ".spec.count", type="integer", description="Records requested."),
        PrinterColumn("Generated", ".status.generated", type="integer", description="Records written."),
        PrinterColumn("Target", ".status.targetRef", description="Where they went."),
        READY_COLUMN,
        replace(PHASE_COLUMN, priority=1),
        PrinterColumn("Seed", ".spec.seed", type="integer", priority=1, description="Seed."),
        MESSAGE_COLUMN,
        AGE_COLUMN,
    ),
    check=check,
)
