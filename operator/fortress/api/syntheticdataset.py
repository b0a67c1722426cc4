"""SyntheticDataset: realistic fake users, transactions and time series for deception decoys."""

from __future__ import annotations

from dataclasses import replace
from enum import StrEnum

from pydantic import Field

from fortress.api.common import ConnectionRef, Duration, Model, ResourceName, StatusBase
from fortress.api.kind import (
    AGE_COLUMN,
    MESSAGE_COLUMN,
    PHASE_COLUMN,
    READY_COLUMN,
    KindInfo,
    PrinterColumn,
    SpecIssue,
)

CONFIGMAP_MAX_RECORDS = 5_000


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
        description="Table name (lower-case identifier, created if absent).",
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

    start: str | None = Field(default=None, description="RFC 3339 start; the seed's epoch when unset.")
    interval: Duration = Field(default="1m", description="Spacing between points.")
    series: int = Field(default=1, ge=1, le=1000, description="Independent series (count is per series).")
    seasonality: Duration = Field(default="24h", description="Period of the seasonal component.")
    trend: float = Field(default=0.0, ge=-1, le=1, description="Relative drift per seasonal period.")
    noise: float = Field(default=0.1, ge=0, le=10, description="Noise relative to the level.")


class SyntheticDatasetSpec(Model):
    """What to generate, how much, from which seed and where to put it."""

    kind: DatasetKind = Field(description="users, transactions or timeseries.")
    count: int = Field(ge=1, le=10_000_000, description="Records to generate.")
    seed: int = Field(
        default=0, ge=0, le=2**53 - 1, description="Seed; same seed and spec give the same data."
    )
    locale: str = Field(default="en_US", pattern=r"^[a-z]{2}_[A-Z]{2}$", description="Locale, e.g. en_US.")
    target: Target = Field(default_factory=Target, description="Where records are written.")
    time_series: TimeSeries | None = Field(default=None, description="Settings for kind timeseries.")
    users: int | None = Field(
        default=None, ge=1, le=1_000_000, description="Distinct users transactions are spread over."
    )


class QualityReport(Model):
    """How realistic the data is, measured on the generated records."""

    unique_ratio: float | None = Field(default=None, ge=0, le=1, description="Distinct ids / records.")
    benford_deviation: float | None = Field(
        default=None, ge=0, description="MAD from Benford's law (amounts)."
    )
    valid_ratio: float | None = Field(default=None, ge=0, le=1, description="Records passing format checks.")


class SyntheticDatasetStatus(StatusBase):
    """What was generated."""

    generated: int | None = Field(default=None, ge=0, description="Records written.")
    target_ref: str | None = Field(default=None, description="Where they were written.")
    digest: str | None = Field(default=None, description="SHA-256 of the records (reproducibility check).")
    last_generated_at: str | None = Field(default=None, description="RFC 3339 time of generation.")
    quality: QualityReport | None = Field(default=None, description="Realism checks.")


def check(spec: Model) -> list[SpecIssue]:
    """Cross-field rules of a SyntheticDataset spec."""
    assert isinstance(spec, SyntheticDatasetSpec)
    issues: list[SpecIssue] = []
    if spec.target.type == "postgres" and spec.target.postgres is None:
        issues.append(SpecIssue("spec.target.postgres", "required when target.type is postgres"))
    if spec.target.type == "configMap":
        if spec.target.postgres is not None:
            issues.append(SpecIssue("spec.target.postgres", "must not be set when target.type is configMap"))
        if spec.count > CONFIGMAP_MAX_RECORDS:
            issues.append(
                SpecIssue(
                    "spec.count",
                    f"a ConfigMap holds at most {CONFIGMAP_MAX_RECORDS} records; use target.type postgres",
                )
            )
    if spec.time_series is not None and spec.kind != "timeseries":
        issues.append(SpecIssue("spec.timeSeries", "only valid when kind is timeseries"))
    if spec.users is not None and spec.kind != "transactions":
        issues.append(SpecIssue("spec.users", "only valid when kind is transactions"))
    return issues


INFO = KindInfo(
    kind="SyntheticDataset",
    plural="syntheticdatasets",
    short_names=("synth",),
    spec_model=SyntheticDatasetSpec,
    status_model=SyntheticDatasetStatus,
    description="Realistic fake users, transactions and time series for deception decoys.",
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
