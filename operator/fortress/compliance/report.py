"""The report of a scan as one document (the JSON report); the other formats render it."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from fortress import __version__
from fortress.compliance.controls import MANUAL
from fortress.compliance.engine import ScanResult
from fortress.compliance.manifests import Origin
from fortress.compliance.model import FRAMEWORK_TITLES, SEVERITY_ORDER, Framework, ObjectRef
from fortress.compliance.remediation import Action
from fortress.compliance.scoring import lowest, scores
from fortress.core.time import stamp

SCHEMA = "fortress.io/compliance-report/v1"


def build(
    result: ScanResult,
    frameworks: list[Framework] | None = None,
    *,
    origins: dict[ObjectRef, Origin] | None = None,
    actions: Iterable[Action] = (),
    name: str = "scan",
) -> dict[str, Any]:
    """The report: per framework scores and control counts, controls, findings (with remediation
    advice, the dry-run patch when there is one, the evidence digest), manual controls."""
    chosen = frameworks or list(Framework)
    framework_scores = scores(result, chosen)
    patches = {(a.control_id, a.target if a.operation.value == "patch" else None): a for a in actions}
    creates = {a.control_id: a for a in actions if a.operation.value == "create"}
    in_scope = [c for c in result.controls if c.frameworks() & set(chosen)]
    controls = []
    for control in in_scope:
        tally = result.tallies[control.id]
        status = "failed" if tally.failed else "passed" if tally.passed else "not-applicable"
        controls.append(
            {
                "id": control.id,
                "title": control.title,
                "area": control.area,
                "severity": control.severity.value,
                "status": status,
                "passed": tally.passed,
                "failed": tally.failed,
                "suppressed": tally.suppressed,
                "notApplicable": tally.not_applicable,
                "requirements": {f.value: control.requirements(f) for f in chosen if control.requirements(f)},
                "provenance": sorted({str(m.provenance) for m in control.mappings}),
            }
        )
    scoped = {c.id for c in in_scope}
    findings = []
    for finding in sorted(
        (f for f in result.findings if f.control.id in scoped),
        key=lambda f: (-SEVERITY_ORDER[f.control.severity], f.control.id, f.ref.display()),
    ):
        entry: dict[str, Any] = {
            "control": finding.control.id,
            "title": finding.control.title,
            "severity": finding.control.severity.value,
            "status": "suppressed" if finding.suppressed_by else "open",
            "object": finding.ref.display(),
            "apiVersion": finding.ref.api_version,
            "kind": finding.ref.kind,
            "namespace": finding.ref.namespace,
            "name": finding.ref.name,
            "message": finding.result.message,
            "path": finding.result.path,
            "evidence": {"sha256": finding.evidence},
            "remediation": finding.control.remediation,
        }
        if finding.suppressed_by:
            entry["suppressedBy"] = finding.suppressed_by
        origin = (origins or {}).get(finding.ref)
        if origin is not None:
            entry["source"] = {"file": origin.path, "line": origin.line}
        action = patches.get((finding.control.id, finding.ref)) or (
            creates.get(finding.control.id) if finding.ref.kind == "Namespace" else None
        )
        if action is not None:
            entry["proposedChange"] = action.wire()
        findings.append(entry)
    manual = [
        {
            "id": m.id,
            "title": m.title,
            "description": m.description,
            "evidence": m.evidence_hint,
            "requirements": {
                f.value: [x.requirement for x in m.mappings if x.framework is f]
                for f in chosen
                if f in m.frameworks()
            },
        }
        for m in MANUAL
        if m.frameworks() & set(chosen)
    ]
    return {
        "schema": SCHEMA,
        "tool": {"name": "fortress", "version": __version__},
        "name": name,
        "scannedAt": stamp(result.scanned_at),
        "objects": result.objects,
        "checks": result.checks,
        "score": lowest(framework_scores),
        "frameworks": [
            {
                "framework": s.framework.value,
                "title": FRAMEWORK_TITLES[s.framework],
                "score": s.score,
                "controls": {
                    "passed": s.controls_passed,
                    "failed": s.controls_failed,
                    "notApplicable": s.controls_not_applicable,
                    "manual": s.controls_manual,
                },
                "findings": s.findings,
                "suppressed": s.suppressed,
            }
            for s in framework_scores
        ],
        "controls": controls,
        "findings": findings,
        "manual": manual,
        "expiredExceptions": [
            {"name": e.name, "reason": e.reason, "expires": stamp(e.expires) if e.expires else None}
            for e in result.expired.values()
        ],
    }
