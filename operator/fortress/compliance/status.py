"""A live scan's outcome (pure): scores and counts in status, Compliant against passingScore, and
Ready=False naming what the live side does not do yet."""

from __future__ import annotations

import datetime as dt
from typing import Any

from fortress.compliance.engine import ScanResult
from fortress.compliance.model import Framework, Severity
from fortress.compliance.scoring import lowest, scores
from fortress.core.outcome import ConditionUpdate, EventNote, Outcome
from fortress.core.time import stamp

NOT_COMPLETE = "LiveScanIncomplete"
MISSING = (
    "findings and evidence in PostgreSQL, PolicyReports, stored reports, remediation and real-time "
    "rescans are not built yet"
)


def outcome(
    result: ScanResult,
    frameworks: list[Framework],
    passing_score: int,
    next_at: dt.datetime | None,
    skipped: list[str],
    requeue_after: float,
) -> Outcome:
    """The status a scan writes. Never Ready=True: the scan scores, but the rest of the live side
    (``MISSING``) does not exist yet."""
    per = scores(result, frameworks)
    low = lowest(per)
    open_by_severity = {s.value: 0 for s in Severity}
    for finding in result.open_findings():
        open_by_severity[finding.control.severity.value] += 1
    fields: dict[str, Any] = {
        "lastScanTime": stamp(result.scanned_at),
        "nextScanTime": stamp(next_at) if next_at else None,
        "score": low,
        "scores": [
            {
                "framework": s.framework.value,
                "score": s.score,
                "passed": s.controls_passed,
                "failed": s.controls_failed,
                "notApplicable": s.controls_not_applicable,
                "manual": s.controls_manual,
                "suppressed": s.suppressed,
            }
            for s in per
        ],
        "findings": open_by_severity,
        "objectsScanned": result.objects,
        "checks": result.checks,
    }
    if low is None:
        compliant = ConditionUpdate(
            "Compliant", None, "NothingEvaluated", "no control was evaluated on any object"
        )
    elif low >= passing_score:
        compliant = ConditionUpdate(
            "Compliant", True, "ScoreAtOrAbovePassing", f"lowest score {low:.2f} % >= {passing_score} %"
        )
    else:
        worst = min((s for s in per if s.score is not None), key=lambda s: s.score or 0.0)
        compliant = ConditionUpdate(
            "Compliant",
            False,
            "ScoreBelowPassing",
            f"{worst.framework.value} scores {low:.2f} % < {passing_score} %",
        )
    score_text = "no score" if low is None else f"lowest score {low:.2f} %"
    message = f"scanned {result.objects} objects ({result.checks} checks), {score_text}; {MISSING}"
    if skipped:
        message += f"; not listed: {', '.join(skipped)}"
    events = []
    if result.expired:
        names = ", ".join(sorted(result.expired))
        events.append(
            EventNote("Warning", "ExceptionExpired", f"expired exceptions no longer suppress: {names}")
        )
    return Outcome(
        ready=False,
        reason=NOT_COMPLETE,
        message=message,
        phase="Scanned",
        fields=fields,
        conditions=(compliant,),
        events=tuple(events),
        requeue_after=requeue_after,
    )
