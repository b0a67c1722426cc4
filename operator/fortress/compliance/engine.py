"""Evaluation: every control that reads an object's kind, on every object; tallies, findings, evidence.

Passing results are counted (per control, per namespace) and kept as (control, object) pairs only when
asked (PolicyReports list them); failing and suppressed results are kept as findings.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from fortress.compliance import evidence
from fortress.compliance.context import Context
from fortress.compliance.controls import CATALOGUE, by_kind
from fortress.compliance.exceptions import Exception_, suppressing
from fortress.compliance.model import Control, Finding, Obj, ObjectRef, Status


@dataclass
class Tally:
    """Per-object verdicts of one control."""

    passed: int = 0
    failed: int = 0
    suppressed: int = 0
    not_applicable: int = 0

    @property
    def evaluated(self) -> int:
        return self.passed + self.failed


@dataclass
class ScanResult:
    """What a scan saw: tallies per control, findings (failed and suppressed), passes when kept."""

    controls: tuple[Control, ...]
    tallies: dict[str, Tally]
    findings: list[Finding]
    passes: list[tuple[Control, ObjectRef]]
    by_namespace: dict[str, Counter[str]]
    objects: int
    checks: int
    evidence: dict[ObjectRef, str]
    expired: dict[str, Exception_] = field(default_factory=dict)
    scanned_at: datetime = field(default_factory=lambda: datetime.now(UTC))

    def open_findings(self) -> list[Finding]:
        return [f for f in self.findings if f.failed]


def _labels(obj: Obj) -> dict[str, str]:
    return dict((obj.get("metadata") or {}).get("labels") or {})


class Scanner:
    """Evaluation fed in batches (pages of a listing) against one context; memory holds the tallies
    and findings, never the objects already evaluated."""

    def __init__(
        self,
        context: Context,
        controls: tuple[Control, ...] = CATALOGUE,
        *,
        exceptions: Iterable[Exception_] = (),
        keep_passes: bool = False,
        evidence_for_passes: bool = False,
    ) -> None:
        self.ctx = context
        self.controls = controls
        self.rules = list(exceptions)
        self.keep_passes = keep_passes
        self.evidence_for_passes = evidence_for_passes
        self.table = by_kind(controls)
        self.tallies = {c.id: Tally() for c in controls}
        self.findings: list[Finding] = []
        self.passes: list[tuple[Control, ObjectRef]] = []
        self.by_namespace: dict[str, Counter[str]] = defaultdict(Counter)
        self.digests: dict[ObjectRef, str] = {}
        self.expired: dict[str, Exception_] = {}
        self.objects = 0
        self.checks = 0

    def evaluate(self, objects: Iterable[Obj]) -> None:
        moment, rules, table, tallies = self.ctx.now, self.rules, self.table, self.tallies
        fail_status, pass_status = Status.FAIL, Status.PASS
        checks = 0
        for obj in objects:
            self.objects += 1
            relevant = table.get(str(obj.get("kind", "")))
            if not relevant:
                continue
            ref = ObjectRef.of(obj)
            labels = _labels(obj)
            digest = ""
            if self.evidence_for_passes:
                digest = self.digests[ref] = evidence.digest(obj)
            counts = self.by_namespace[ref.namespace]
            for item in relevant:
                result = item.check(obj, self.ctx)
                checks += 1
                tally = tallies[item.id]
                status = result.status
                if status is pass_status:
                    tally.passed += 1
                    counts["pass"] += 1
                    if self.keep_passes:
                        self.passes.append((item, ref))
                elif status is fail_status:
                    if not digest:
                        digest = self.digests[ref] = evidence.digest(obj)
                    active, lapsed = (
                        suppressing(rules, item.id, ref, labels, moment) if rules else (None, None)
                    )
                    if lapsed is not None:
                        self.expired[lapsed.name] = lapsed
                    if active is not None:
                        tally.suppressed += 1
                        counts["skip"] += 1
                    else:
                        tally.failed += 1
                        counts["fail"] += 1
                    self.findings.append(
                        Finding(item, ref, result, digest, active.name if active else None, labels)
                    )
                else:
                    tally.not_applicable += 1
        self.checks += checks

    def result(self) -> ScanResult:
        return ScanResult(
            self.controls,
            self.tallies,
            self.findings,
            self.passes,
            dict(self.by_namespace),
            self.objects,
            self.checks,
            self.digests,
            self.expired,
            self.ctx.now,
        )


def evaluate(
    objects: Sequence[Obj],
    controls: tuple[Control, ...] = CATALOGUE,
    *,
    exceptions: Iterable[Exception_] = (),
    now: datetime | None = None,
    keep_passes: bool = False,
    evidence_for_passes: bool = False,
    context: Context | None = None,
) -> ScanResult:
    """Run ``controls`` on ``objects`` (plain dicts as the API returns them). Pure: no I/O, no clock
    beyond ``now`` (or the context's)."""
    ctx = context or Context.build(objects, now or datetime.now(UTC))
    scanner = Scanner(
        ctx, controls, exceptions=exceptions, keep_passes=keep_passes, evidence_for_passes=evidence_for_passes
    )
    scanner.evaluate(objects)
    return scanner.result()
