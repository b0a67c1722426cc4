"""PolicyReports (wgpolicyk8s.io/v1alpha2): one PolicyReport per namespace, one ClusterPolicyReport for
cluster-scoped objects. Results are capped per report (failures first, by severity); the summary
always counts every result."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from fortress.compliance.engine import ScanResult
from fortress.compliance.model import SEVERITY_ORDER, Control, Finding, ObjectRef

API_VERSION = "wgpolicyk8s.io/v1alpha2"
SOURCE = "fortress"
DEFAULT_CAP = 1000


@dataclass(frozen=True, slots=True)
class Owner:
    """The ComplianceScan owning the reports (so they are garbage collected with it)."""

    api_version: str
    kind: str
    name: str
    uid: str


def _resource(ref: ObjectRef) -> dict[str, Any]:
    out = {"apiVersion": ref.api_version, "kind": ref.kind, "name": ref.name}
    if ref.namespace:
        out["namespace"] = ref.namespace
    if ref.uid:
        out["uid"] = ref.uid
    return out


def _result(control: Control, ref: ObjectRef, outcome: str, message: str, seconds: int) -> dict[str, Any]:
    frameworks = ",".join(sorted(f.value for f in control.frameworks()))
    return {
        "source": SOURCE,
        "policy": control.id,
        "rule": control.id,
        "category": control.area,
        "severity": control.severity.value,
        "result": outcome,
        "scored": True,
        "message": message[:1024] or control.title,
        "resources": [_resource(ref)],
        "timestamp": {"seconds": seconds, "nanos": 0},
        "properties": {"frameworks": frameworks, "title": control.title},
    }


def build(
    scan: ScanResult, name: str, owner: Owner | None = None, cap: int = DEFAULT_CAP
) -> list[dict[str, Any]]:
    """The reports of a scan: PolicyReports (one per namespace) then the ClusterPolicyReport."""
    seconds = int(scan.scanned_at.timestamp())
    per: dict[str, list[tuple[int, dict[str, Any]]]] = defaultdict(list)
    summary: dict[str, dict[str, int]] = defaultdict(
        lambda: {"pass": 0, "fail": 0, "warn": 0, "error": 0, "skip": 0}
    )
    finding: Finding
    for finding in scan.findings:
        outcome = "skip" if finding.suppressed_by else "fail"
        message = finding.result.message + (
            f" (suppressed by {finding.suppressed_by})" if finding.suppressed_by else ""
        )
        rank = -SEVERITY_ORDER[finding.control.severity] if outcome == "fail" else 10
        per[finding.ref.namespace].append(
            (rank, _result(finding.control, finding.ref, outcome, message, seconds))
        )
    for control, ref in scan.passes:
        per[ref.namespace].append((20, _result(control, ref, "pass", "", seconds)))
    for namespace, counts in scan.by_namespace.items():
        for key in ("pass", "fail", "skip"):
            summary[namespace][key] += counts.get(key, 0)
    reports = []
    for namespace in sorted(set(per) | {ns for ns, c in scan.by_namespace.items() if sum(c.values())}):
        results = [r for _, r in sorted(per.get(namespace, []), key=lambda item: item[0])][:cap]
        metadata: dict[str, Any] = {
            "name": f"fortress-{name}"[:253],
            "labels": {"app.kubernetes.io/managed-by": "fortress", "fortress.io/compliancescan": name[:63]},
        }
        if namespace:
            metadata["namespace"] = namespace
        if owner is not None:
            metadata["ownerReferences"] = [
                {
                    "apiVersion": owner.api_version,
                    "kind": owner.kind,
                    "name": owner.name,
                    "uid": owner.uid,
                    "controller": True,
                    "blockOwnerDeletion": False,
                }
            ]
        report: dict[str, Any] = {
            "apiVersion": API_VERSION,
            "kind": "PolicyReport" if namespace else "ClusterPolicyReport",
            "metadata": metadata,
            "summary": dict(summary[namespace]),
            "results": results,
        }
        reports.append(report)
    reports.sort(key=lambda r: (r["kind"] == "ClusterPolicyReport", str(r["metadata"].get("namespace", ""))))
    return reports
