"""Manual controls: policies and processes no object shows. Never scored; reported and attested."""

from __future__ import annotations

from fortress.compliance.model import Framework, ManualControl, Mapping, Provenance, Source

_P = Provenance(Source.FRAMEWORK, "requirement text")
S, ISO, G, P = Framework.SOC2, Framework.ISO27001, Framework.GDPR, Framework.PCI_DSS


def _m(*pairs: tuple[Framework, str]) -> tuple[Mapping, ...]:
    return tuple(Mapping(framework, requirement, _P) for framework, requirement in pairs)


def manual(
    id: str, title: str, description: str, evidence: str, *pairs: tuple[Framework, str]
) -> ManualControl:
    return ManualControl(id, title, description, _m(*pairs), evidence)


CONTROLS: tuple[ManualControl, ...] = (
    manual(
        "MAN-SECURITY-POLICY",
        "An information security policy is approved and published",
        "Management approves, publishes and reviews yearly an information security policy.",
        "the signed policy and its last review date",
        (S, "CC5.3"),
        (ISO, "A.5.1"),
        (G, "24(2)"),
        (P, "12.1.1"),
    ),
    manual(
        "MAN-AWARENESS-TRAINING",
        "Staff complete security and privacy training",
        "Everyone with access completes security awareness and data protection training yearly.",
        "training completion records",
        (S, "CC2.2"),
        (ISO, "A.6.3"),
        (G, "39(1)(b)"),
        (P, "12.6.1"),
    ),
    manual(
        "MAN-SCREENING",
        "Personnel are screened before access",
        "Background checks precede access to production and personal or cardholder data.",
        "screening records",
        (S, "CC1.4"),
        (ISO, "A.6.1"),
        (P, "12.7.1"),
    ),
    manual(
        "MAN-INCIDENT-RESPONSE",
        "An incident response plan exists and is tested",
        "A documented plan assigns roles, and is exercised at least yearly.",
        "the plan and the last exercise report",
        (S, "CC7.4"),
        (ISO, "A.5.24"),
        (ISO, "A.5.26"),
        (G, "33(1)"),
        (P, "12.10.1"),
    ),
    manual(
        "MAN-BREACH-NOTIFICATION",
        "Personal data breaches are notified within 72 hours",
        "A procedure notifies the supervisory authority and data subjects as required.",
        "the procedure and its log",
        (S, "CC7.3"),
        (ISO, "A.5.26"),
        (G, "33(1)"),
        (G, "34(1)"),
    ),
    manual(
        "MAN-VENDOR-MANAGEMENT",
        "Suppliers and processors are assessed",
        "Service providers handling data are assessed and bound by contract.",
        "supplier register and contracts",
        (S, "CC9.2"),
        (ISO, "A.5.19"),
        (G, "28(1)"),
        (P, "12.8.1"),
    ),
    manual(
        "MAN-RISK-ASSESSMENT",
        "Risks are assessed yearly",
        "A risk assessment (and DPIA where required) is performed and acted on.",
        "the risk register and DPIAs",
        (S, "CC3.2"),
        (ISO, "A.5.7"),
        (G, "35(1)"),
        (P, "12.3.1"),
    ),
    manual(
        "MAN-ACCESS-REVIEW",
        "Access rights are reviewed periodically",
        "Owners review user and service access at least every six months.",
        "review sign-offs",
        (S, "CC6.2"),
        (ISO, "A.5.18"),
        (G, "32(1)(d)"),
        (P, "7.2.4"),
    ),
    manual(
        "MAN-ACCESS-REVOCATION",
        "Access is revoked on leaving",
        "Leavers lose all access within one business day.",
        "leaver tickets and revocation timestamps",
        (S, "CC6.2"),
        (ISO, "A.5.18"),
        (ISO, "A.6.5"),
        (P, "8.2.5"),
    ),
    manual(
        "MAN-RECORDS-OF-PROCESSING",
        "Records of processing activities are kept",
        "A record lists purposes, categories of data and recipients.",
        "the record of processing",
        (G, "30(1)"),
        (ISO, "A.5.34"),
        (S, "P1.1"),
    ),
    manual(
        "MAN-DATA-SUBJECT-RIGHTS",
        "Data subject requests are handled",
        "Access, rectification, erasure and portability requests are answered within a month.",
        "the request log",
        (G, "15(1)"),
        (G, "17(1)"),
        (G, "12(3)"),
        (S, "P5.1"),
    ),
    manual(
        "MAN-DPO",
        "A data protection officer is designated where required",
        "The DPO's contact details are published and communicated to the authority.",
        "the designation",
        (G, "37(1)"),
        (ISO, "A.5.34"),
    ),
    manual(
        "MAN-PENETRATION-TEST",
        "Penetration tests run yearly and after significant change",
        "External and internal penetration tests are performed and findings fixed.",
        "test reports and remediation tickets",
        (S, "CC4.1"),
        (ISO, "A.8.8"),
        (G, "32(1)(d)"),
        (P, "11.4.1"),
    ),
    manual(
        "MAN-RESTORE-TEST",
        "Backups are restored in tests",
        "Backups are restored to a test environment at least quarterly.",
        "restore test records",
        (S, "A1.3"),
        (ISO, "A.8.13"),
        (G, "32(1)(c)"),
        (P, "12.10.2"),
    ),
    manual(
        "MAN-PHYSICAL-SECURITY",
        "Data centres are physically secured",
        "Physical access to facilities with production systems is controlled and logged.",
        "the provider's attestation (e.g. SOC 2 report)",
        (S, "CC6.4"),
        (ISO, "A.7.1"),
        (P, "9.1.1"),
    ),
    manual(
        "MAN-CHANGE-APPROVAL",
        "Production changes are approved",
        "Changes are reviewed and approved by someone other than their author.",
        "pull request reviews",
        (S, "CC8.1"),
        (ISO, "A.8.32"),
        (P, "6.5.1"),
    ),
)
