"""ComplianceScan: scans of live cluster state against SOC 2, ISO 27001, GDPR and PCI DSS controls."""

from __future__ import annotations

from dataclasses import replace
from enum import StrEnum
from typing import Annotated

from pydantic import Field

from fortress.api.common import DnsLabel, Model, StatusBase
from fortress.api.kind import (
    AGE_COLUMN,
    MESSAGE_COLUMN,
    PHASE_COLUMN,
    READY_COLUMN,
    KindInfo,
    PrinterColumn,
    SpecIssue,
)
from fortress.core import cron
from fortress.core.time import parse as parse_time


class Framework(StrEnum):
    SOC2 = "SOC2"
    ISO27001 = "ISO27001"
    GDPR = "GDPR"
    PCI_DSS = "PCI_DSS"


class RemediationMode(StrEnum):
    NONE = "none"
    DRY_RUN = "dryRun"
    AUTO = "auto"


class Severity(StrEnum):
    CRITICAL = "critical"
    HIGH = "high"
    MEDIUM = "medium"
    LOW = "low"


class ReportFormat(StrEnum):
    JSON = "json"
    MARKDOWN = "markdown"
    HTML = "html"


class Remediation(Model):
    """What the operator may change to fix findings."""

    mode: RemediationMode = Field(
        default=RemediationMode.NONE, description="none, dryRun (report the patch) or auto (apply it)."
    )
    controls: list[str] = Field(
        default_factory=list, max_length=500, description="Only these control ids; all remediable when empty."
    )
    max_severity: Severity = Field(
        default=Severity.HIGH, description="Remediate findings up to this severity automatically."
    )
    max_per_scan: int = Field(default=10, ge=1, le=1000, description="At most this many changes per scan.")


LabelValue = Annotated[str, Field(max_length=63, description="The label's value.")]


class ExceptionSelector(Model):
    """Which objects an exception covers; every given field must match (all objects when empty)."""

    namespaces: list[DnsLabel] = Field(default_factory=list, max_length=100, description="Namespaces.")
    kinds: list[str] = Field(default_factory=list, max_length=50, description="Kinds, e.g. DaemonSet.")
    names: list[str] = Field(
        default_factory=list, max_length=100, description="Object names; * and ? patterns allowed."
    )
    match_labels: dict[str, LabelValue] = Field(
        default_factory=dict, description="Labels the object must carry."
    )


class ComplianceException(Model):
    """Suppresses matching findings until it expires; annotations on objects never exempt them."""

    name: str | None = Field(default=None, max_length=63, description="Name shown in reports.")
    controls: list[str] = Field(
        min_length=1, max_length=200, description="Control ids; * patterns allowed (e.g. WL-HOST-PATH*)."
    )
    selector: ExceptionSelector = Field(default_factory=ExceptionSelector, description="Objects covered.")
    reason: str = Field(min_length=1, max_length=1024, description="Why the exception is accepted.")
    expires: str | None = Field(
        default=None, max_length=64, description="RFC 3339 time after which it stops suppressing."
    )


class ComplianceScanSpec(Model):
    """What to scan, against which frameworks, how often, and what to do about findings."""

    frameworks: list[Framework] = Field(
        min_length=1,
        max_length=4,
        description="Frameworks to score: SOC2, ISO27001, GDPR, PCI_DSS.",
        json_schema_extra={"x-kubernetes-list-type": "set"},
    )
    schedule: str | None = Field(
        default=None, max_length=128, description="Cron schedule (5 fields, UTC); one scan when unset."
    )
    target_namespaces: list[DnsLabel] = Field(
        default_factory=list, max_length=500, description="Namespaces to scan; all when empty."
    )
    exclude_namespaces: list[DnsLabel] = Field(
        default_factory=lambda: ["kube-system", "kube-public", "kube-node-lease"],
        max_length=500,
        description="Namespaces never scanned.",
    )
    remediation: Remediation = Field(default_factory=Remediation, description="Auto-remediation settings.")
    passing_score: int = Field(
        default=90, ge=0, le=100, description="Score (%) at or above which a framework passes."
    )
    policy_reports: bool = Field(default=True, description="Write wgpolicyk8s.io PolicyReports.")
    report_formats: list[ReportFormat] = Field(
        default_factory=lambda: [ReportFormat.JSON],
        max_length=3,
        description="Report formats kept in a ConfigMap (a set: each at most once).",
        json_schema_extra={"x-kubernetes-list-type": "set"},
    )
    suspend: bool = Field(default=False, description="Skip scheduled scans.")
    exceptions: list[ComplianceException] = Field(
        default_factory=list, max_length=200, description="Accepted findings, suppressed until they expire."
    )


class FrameworkScore(Model):
    """The score of one framework."""

    framework: str = Field(description="Framework name.")
    score: float | None = Field(
        default=None, ge=0, le=100, description="Weighted percent passed; unset when nothing was evaluated."
    )
    passed: int = Field(ge=0, description="Controls passed.")
    failed: int = Field(ge=0, description="Controls failed.")
    not_applicable: int | None = Field(default=None, ge=0, description="Controls evaluated on no object.")
    manual: int | None = Field(default=None, ge=0, description="Manual controls (never scored).")
    suppressed: int | None = Field(default=None, ge=0, description="Results suppressed by exceptions.")


class FindingCounts(Model):
    """Open findings by severity."""

    critical: int = Field(default=0, ge=0, description="Critical findings.")
    high: int = Field(default=0, ge=0, description="High findings.")
    medium: int = Field(default=0, ge=0, description="Medium findings.")
    low: int = Field(default=0, ge=0, description="Low findings.")


class ComplianceScanStatus(StatusBase):
    """Results of the latest scan."""

    last_scan_time: str | None = Field(default=None, description="RFC 3339 time of the latest scan.")
    next_scan_time: str | None = Field(default=None, description="RFC 3339 time of the next scheduled scan.")
    score: float | None = Field(default=None, ge=0, le=100, description="Lowest framework score, percent.")
    scores: list[FrameworkScore] = Field(default_factory=list, description="Score per framework.")
    findings: FindingCounts | None = Field(default=None, description="Open findings by severity.")
    remediated: int | None = Field(default=None, ge=0, description="Findings fixed by remediation.")
    objects_scanned: int | None = Field(default=None, ge=0, description="Objects the latest scan evaluated.")
    checks: int | None = Field(default=None, ge=0, description="Control evaluations of the latest scan.")
    report_config_map: str | None = Field(default=None, description="ConfigMap holding the reports.")


def check(spec: Model) -> list[SpecIssue]:
    """Cross-field rules of a ComplianceScan spec."""
    assert isinstance(spec, ComplianceScanSpec)
    issues: list[SpecIssue] = []
    for index, framework in enumerate(spec.frameworks):
        if spec.frameworks.index(framework) != index:
            issues.append(SpecIssue(f"spec.frameworks[{index}]", f"duplicate framework {framework}"))
    for index, fmt in enumerate(spec.report_formats):
        if spec.report_formats.index(fmt) != index:
            issues.append(SpecIssue(f"spec.reportFormats[{index}]", f"duplicate report format {fmt}"))
    schedule_problem = cron.problem(spec.schedule) if spec.schedule is not None else None
    if schedule_problem is not None:
        issues.append(SpecIssue("spec.schedule", schedule_problem))
    for index, item in enumerate(spec.exceptions):
        if item.expires is not None and parse_time(item.expires) is None:
            issues.append(
                SpecIssue(f"spec.exceptions[{index}].expires", f"{item.expires!r} is not an RFC 3339 time")
            )
    overlap = sorted(set(spec.target_namespaces) & set(spec.exclude_namespaces))
    if overlap:
        issues.append(
            SpecIssue("spec.excludeNamespaces", f"excludes targeted namespace(s) {', '.join(overlap)}")
        )
    return issues


INFO = KindInfo(
    kind="ComplianceScan",
    plural="compliancescans",
    short_names=("cscan",),
    spec_model=ComplianceScanSpec,
    status_model=ComplianceScanStatus,
    description="Scans live cluster state against SOC 2, ISO 27001, GDPR and PCI DSS controls.",
    columns=(
        PrinterColumn("Score", ".status.score", type="number", description="Lowest framework score, %."),
        PrinterColumn(
            "Critical", ".status.findings.critical", type="integer", description="Critical findings."
        ),
        PrinterColumn("High", ".status.findings.high", type="integer", description="High findings."),
        PrinterColumn("LastScan", ".status.lastScanTime", type="date", description="Latest scan."),
        READY_COLUMN,
        replace(PHASE_COLUMN, priority=1),
        PrinterColumn("Schedule", ".spec.schedule", priority=1, description="Cron schedule."),
        MESSAGE_COLUMN,
        AGE_COLUMN,
    ),
    check=check,
)
