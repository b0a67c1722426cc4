"""The shapes of the catalogue: controls, their framework mappings and provenance, and check results."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Any, TypeAlias

if TYPE_CHECKING:
    from fortress.compliance.context import Context

Obj: TypeAlias = dict[str, Any]


class Framework(StrEnum):
    SOC2 = "SOC2"
    ISO27001 = "ISO27001"
    GDPR = "GDPR"
    PCI_DSS = "PCI_DSS"


FRAMEWORK_TITLES: dict[Framework, str] = {
    Framework.SOC2: "SOC 2 (AICPA Trust Services Criteria 2017)",
    Framework.ISO27001: "ISO/IEC 27001:2022 Annex A",
    Framework.GDPR: "GDPR (Regulation (EU) 2016/679)",
    Framework.PCI_DSS: "PCI DSS v4.0",
}


class Severity(StrEnum):
    CRITICAL = "critical"
    HIGH = "high"
    MEDIUM = "medium"
    LOW = "low"


SEVERITY_ORDER: dict[Severity, int] = {
    Severity.LOW: 0,
    Severity.MEDIUM: 1,
    Severity.HIGH: 2,
    Severity.CRITICAL: 3,
}
WEIGHTS: dict[Severity, int] = {Severity.CRITICAL: 10, Severity.HIGH: 6, Severity.MEDIUM: 3, Severity.LOW: 1}


class Source(StrEnum):
    """Where a control (and so each of its mappings) comes from."""

    CIS_K8S = "CIS Kubernetes Benchmark v1.9.0"
    NSA_CISA = "NSA/CISA Kubernetes Hardening Guidance v1.2"
    PSS = "Kubernetes Pod Security Standards"
    CIS_PG = "CIS PostgreSQL 16 Benchmark v1.0.0"
    FRAMEWORK = "the framework requirement itself"


@dataclass(frozen=True, slots=True)
class Provenance:
    """The benchmark item a control derives from, e.g. CIS Kubernetes Benchmark 5.2.2."""

    source: Source
    item: str

    def __str__(self) -> str:
        return f"{self.source.value} {self.item}"


@dataclass(frozen=True, slots=True)
class Mapping:
    """One framework requirement a control evidences, and the benchmark item it comes through."""

    framework: Framework
    requirement: str
    provenance: Provenance


class Status(StrEnum):
    PASS = "pass"
    FAIL = "fail"
    NOT_APPLICABLE = "not-applicable"


@dataclass(frozen=True, slots=True)
class Result:
    """The verdict of one check on one object: pass, fail (message, path) or not-applicable."""

    status: Status
    message: str = ""
    path: str = ""


PASS = Result(Status.PASS)
NOT_APPLICABLE = Result(Status.NOT_APPLICABLE)


def fail(message: str, path: str = "") -> Result:
    return Result(Status.FAIL, message, path)


def passed(ok: bool, message: str, path: str = "") -> Result:
    """PASS when ``ok``, else a failure with ``message`` at ``path``."""
    return PASS if ok else Result(Status.FAIL, message, path)


Check: TypeAlias = "Callable[[Obj, Context], Result]"


@dataclass(frozen=True, slots=True)
class Control:
    """An automated control: a pure check over objects of ``kinds``, mapped to framework requirements."""

    id: str
    title: str
    description: str
    rationale: str
    severity: Severity
    kinds: tuple[str, ...]
    check: Callable[[Obj, Context], Result]
    mappings: tuple[Mapping, ...]
    area: str = ""
    remediation: str = ""

    def frameworks(self) -> set[Framework]:
        return {mapping.framework for mapping in self.mappings}

    def requirements(self, framework: Framework) -> list[str]:
        return [m.requirement for m in self.mappings if m.framework is framework]


@dataclass(frozen=True, slots=True)
class ManualControl:
    """A control no object can show (a policy, a process): never scored, reported separately, attested."""

    id: str
    title: str
    description: str
    mappings: tuple[Mapping, ...]
    evidence_hint: str = ""
    area: str = "manual"

    def frameworks(self) -> set[Framework]:
        return {mapping.framework for mapping in self.mappings}


@dataclass(frozen=True, slots=True)
class ObjectRef:
    """Which object a result is about (cluster-scoped objects have namespace "")."""

    api_version: str
    kind: str
    namespace: str
    name: str
    uid: str = ""

    @classmethod
    def of(cls, obj: Obj) -> ObjectRef:
        meta = obj.get("metadata") or {}
        return cls(
            str(obj.get("apiVersion", "")),
            str(obj.get("kind", "")),
            str(meta.get("namespace") or ""),
            str(meta.get("name") or ""),
            str(meta.get("uid") or ""),
        )

    def display(self) -> str:
        return f"{self.kind}/{self.namespace}/{self.name}" if self.namespace else f"{self.kind}/{self.name}"


@dataclass(frozen=True, slots=True)
class Finding:
    """One evaluated (control, object) pair, with its exception when one suppresses it."""

    control: Control
    ref: ObjectRef
    result: Result
    evidence: str = ""
    suppressed_by: str | None = None
    labels: dict[str, str] = field(default_factory=dict, compare=False, hash=False)

    @property
    def failed(self) -> bool:
        return self.result.status is Status.FAIL and self.suppressed_by is None
