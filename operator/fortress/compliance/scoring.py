"""Scores per framework: severity-weighted over the controls that were evaluated.

For a framework F, each automated control c mapped to F that passed or failed on at least one object
(suppressed results are left out) scores s_c = passed_c / (passed_c + failed_c); the framework scores

    score_F = 100 * sum(w_c * s_c) / sum(w_c)      w: critical 10, high 6, medium 3, low 1

Controls evaluated on no object (not applicable) and manual controls are excluded and counted apart.
A framework with no evaluated control has no score (None), never 100.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from fortress.compliance.controls import MANUAL
from fortress.compliance.engine import ScanResult
from fortress.compliance.model import WEIGHTS, Framework, Severity


@dataclass(frozen=True, slots=True)
class FrameworkScore:
    framework: Framework
    score: float | None
    controls_passed: int
    controls_failed: int
    controls_not_applicable: int
    controls_manual: int
    findings: dict[str, int]
    suppressed: int

    @property
    def evaluated(self) -> int:
        return self.controls_passed + self.controls_failed


def score(result: ScanResult, framework: Framework) -> FrameworkScore:
    weighted = total = 0.0
    passed = failed = not_applicable = suppressed = 0
    findings: Counter[str] = Counter({s.value: 0 for s in Severity})
    for control in result.controls:
        if framework not in control.frameworks():
            continue
        tally = result.tallies[control.id]
        suppressed += tally.suppressed
        if tally.evaluated == 0:
            not_applicable += 1
            continue
        weight = WEIGHTS[control.severity]
        weighted += weight * tally.passed / tally.evaluated
        total += weight
        if tally.failed:
            failed += 1
            findings[control.severity.value] += tally.failed
        else:
            passed += 1
    manual = sum(1 for m in MANUAL if framework in m.frameworks())
    value = round(100.0 * weighted / total, 2) if total else None
    return FrameworkScore(
        framework, value, passed, failed, not_applicable, manual, dict(findings), suppressed
    )


def scores(result: ScanResult, frameworks: list[Framework] | None = None) -> list[FrameworkScore]:
    return [score(result, f) for f in (frameworks or list(Framework))]


def lowest(items: list[FrameworkScore]) -> float | None:
    values = [s.score for s in items if s.score is not None]
    return min(values) if values else None
