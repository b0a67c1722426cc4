"""Building controls as data: framework mapping profiles, provenance shorthands and a constructor."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypedDict

from fortress.compliance.context import Context
from fortress.compliance.model import (
    Control,
    Framework,
    Mapping,
    Obj,
    Provenance,
    Result,
    Severity,
    Source,
)

# Framework requirements per control family. SOC 2: TSC 2017 criteria; ISO: 27001:2022 Annex A
# controls; GDPR: articles; PCI: DSS v4.0 requirements.
PROFILES: dict[str, dict[Framework, tuple[str, ...]]] = {
    # least privilege for processes and identities
    "privilege": {
        Framework.SOC2: ("CC6.1", "CC6.3"),
        Framework.ISO27001: ("A.8.2", "A.8.9"),
        Framework.GDPR: ("32(1)(b)",),
        Framework.PCI_DSS: ("2.2.1", "7.2.1"),
    },
    # isolation of workloads from the host and from each other
    "isolation": {
        Framework.SOC2: ("CC6.1", "CC6.8"),
        Framework.ISO27001: ("A.8.9", "A.8.22"),
        Framework.GDPR: ("32(1)(b)",),
        Framework.PCI_DSS: ("2.2.1", "2.2.3"),
    },
    # secure configuration / hardening
    "hardening": {
        Framework.SOC2: ("CC6.8", "CC7.1"),
        Framework.ISO27001: ("A.8.9",),
        Framework.GDPR: ("25(1)", "32(1)(b)"),
        Framework.PCI_DSS: ("2.2.1", "2.2.6"),
    },
    # unnecessary functionality removed
    "minimal": {
        Framework.SOC2: ("CC6.8",),
        Framework.ISO27001: ("A.8.9", "A.8.19"),
        Framework.GDPR: ("25(1)",),
        Framework.PCI_DSS: ("2.2.4", "2.2.5"),
    },
    # identities and access rights
    "access": {
        Framework.SOC2: ("CC6.1", "CC6.2", "CC6.3"),
        Framework.ISO27001: ("A.5.15", "A.5.18", "A.8.2"),
        Framework.GDPR: ("32(1)(b)", "25(2)"),
        Framework.PCI_DSS: ("7.2.1", "7.2.2"),
    },
    # authentication and authentication information
    "authentication": {
        Framework.SOC2: ("CC6.1", "CC6.2"),
        Framework.ISO27001: ("A.5.17", "A.8.5"),
        Framework.GDPR: ("32(1)(b)",),
        Framework.PCI_DSS: ("8.2.2", "8.3.2"),
    },
    # secrets and credentials handling
    "secrets": {
        Framework.SOC2: ("CC6.1", "CC6.7"),
        Framework.ISO27001: ("A.5.17", "A.8.24"),
        Framework.GDPR: ("32(1)(a)", "32(1)(b)"),
        Framework.PCI_DSS: ("3.6.1", "8.3.2", "8.6.2"),
    },
    # network segmentation and exposure
    "network": {
        Framework.SOC2: ("CC6.6",),
        Framework.ISO27001: ("A.8.20", "A.8.22"),
        Framework.GDPR: ("32(1)(b)",),
        Framework.PCI_DSS: ("1.2.1", "1.3.1", "1.4.1"),
    },
    # encryption in transit
    "transit": {
        Framework.SOC2: ("CC6.7",),
        Framework.ISO27001: ("A.8.20", "A.8.24"),
        Framework.GDPR: ("32(1)(a)",),
        Framework.PCI_DSS: ("4.2.1",),
    },
    # capacity and availability
    "availability": {
        Framework.SOC2: ("A1.1", "A1.2"),
        Framework.ISO27001: ("A.8.6", "A.8.14"),
        Framework.GDPR: ("32(1)(b)",),
    },
    # health monitoring of services
    "monitoring": {
        Framework.SOC2: ("CC7.2", "A1.1"),
        Framework.ISO27001: ("A.8.16",),
        Framework.GDPR: ("32(1)(b)",),
        Framework.PCI_DSS: ("10.7.2",),
    },
    # logging
    "logging": {
        Framework.SOC2: ("CC7.2",),
        Framework.ISO27001: ("A.8.15", "A.8.16"),
        Framework.GDPR: ("32(1)(d)", "33(1)"),
        Framework.PCI_DSS: ("10.2.1", "10.2.1.2"),
    },
    # software integrity and supply chain
    "integrity": {
        Framework.SOC2: ("CC7.1", "CC8.1"),
        Framework.ISO27001: ("A.8.19", "A.8.32"),
        Framework.GDPR: ("32(1)(b)",),
        Framework.PCI_DSS: ("6.3.2", "6.5.1"),
    },
    # vulnerability management
    "vulnerability": {
        Framework.SOC2: ("CC7.1",),
        Framework.ISO27001: ("A.8.8",),
        Framework.GDPR: ("32(1)(b)",),
        Framework.PCI_DSS: ("6.3.3",),
    },
    # data at rest: integrity and backup
    "data": {
        Framework.SOC2: ("A1.2", "PI1.4"),
        Framework.ISO27001: ("A.8.13", "A.5.33"),
        Framework.GDPR: ("5(1)(f)", "32(1)(b)"),
        Framework.PCI_DSS: ("11.5.2",),
    },
    # business continuity and recovery
    "continuity": {
        Framework.SOC2: ("A1.2", "A1.3"),
        Framework.ISO27001: ("A.5.30", "A.8.13", "A.8.14"),
        Framework.GDPR: ("32(1)(c)",),
        Framework.PCI_DSS: ("12.10.1",),
    },
    # change management
    "change": {
        Framework.SOC2: ("CC8.1",),
        Framework.ISO27001: ("A.8.32",),
        Framework.GDPR: ("32(1)(d)",),
        Framework.PCI_DSS: ("6.5.1", "6.5.2"),
    },
    # personal data and cardholder data
    "personal-data": {
        Framework.SOC2: ("C1.1", "P4.1"),
        Framework.ISO27001: ("A.5.34", "A.8.11", "A.8.12"),
        Framework.GDPR: ("5(1)(f)", "25(1)", "32(1)(a)"),
        Framework.PCI_DSS: ("3.3.1", "3.5.1"),
    },
    # asset inventory and ownership
    "inventory": {
        Framework.SOC2: ("CC2.1",),
        Framework.ISO27001: ("A.5.9",),
        Framework.PCI_DSS: ("12.5.1",),
    },
    # continuous compliance monitoring
    "assurance": {
        Framework.SOC2: ("CC4.1",),
        Framework.ISO27001: ("A.5.36", "A.8.34"),
        Framework.GDPR: ("32(1)(d)",),
        Framework.PCI_DSS: ("11.3.1", "12.4.2"),
    },
}


class Where(TypedDict):
    """The kinds a control reads and its catalogue area."""

    kinds: tuple[str, ...]
    area: str


def cis(item: str) -> Provenance:
    return Provenance(Source.CIS_K8S, item)


def nsa(section: str) -> Provenance:
    return Provenance(Source.NSA_CISA, section)


def pss(item: str) -> Provenance:
    return Provenance(Source.PSS, item)


def cis_pg(item: str) -> Provenance:
    return Provenance(Source.CIS_PG, item)


def direct(item: str) -> Provenance:
    return Provenance(Source.FRAMEWORK, item)


def mappings(profiles: tuple[str, ...], provenance: Provenance) -> tuple[Mapping, ...]:
    seen: list[Mapping] = []
    for profile in profiles:
        for framework, requirements in PROFILES[profile].items():
            for requirement in requirements:
                mapping = Mapping(framework, requirement, provenance)
                if mapping not in seen:
                    seen.append(mapping)
    return tuple(seen)


def control(
    id: str,
    title: str,
    *,
    severity: Severity,
    kinds: tuple[str, ...],
    check: Callable[[Obj, Context], Result],
    profiles: tuple[str, ...],
    source: Provenance,
    description: str,
    rationale: str,
    remediation: str = "",
    area: str,
) -> Control:
    return Control(
        id=id,
        title=title,
        description=description,
        rationale=rationale,
        severity=severity,
        kinds=kinds,
        check=check,
        mappings=mappings(profiles, source),
        area=area,
        remediation=remediation,
    )
