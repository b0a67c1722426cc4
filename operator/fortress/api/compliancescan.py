"""ComplianceScan: scans of live cluster state against SOC 2, ISO 27001, GDPR and PCI DSS controls."""

from __future__ import annotations

from dataclasses import replace
from enum import StrEnum

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


class FrameworkScore(Model):
    """The score of one framework."""

    framework: str = Field(description="Framework name.")
    score: float = Field(ge=0, le=100, description="Weighted percent of controls passed.")
    passed: int = Field(ge=0, description="Controls passed.")
    failed: int = Field(ge=0, description="Controls failed.")


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
