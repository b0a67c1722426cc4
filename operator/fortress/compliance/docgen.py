"""``docs/compliance-controls.md`` from the catalogue: ``python -m fortress.compliance.docgen [--check]``."""

from __future__ import annotations

import sys
from collections.abc import Sequence

from fortress.compliance.controls import AREAS, CATALOGUE, MANUAL
from fortress.compliance.model import WEIGHTS, Framework
from fortress.compliance.remediation import REMEDIATIONS
from fortress.paths import repo_root

TARGET = "docs/compliance-controls.md"
AREA_TITLES = {
    "workloads": "Workloads (every pod template, every container incl. init and ephemeral)",
    "rbac": "RBAC",
    "network": "Network",
    "namespaces": "Namespaces and PodDisruptionBudgets",
    "configmaps": "ConfigMaps",
    "databases": "Managed PostgreSQL (PostgresServer observations)",
    "fortress": "Fortress resources",
}


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def render() -> str:
    lines = [
        "# Compliance controls",
        "",
        "<!-- Written by `python -m fortress.compliance.docgen` from the catalogue "
        "(operator/fortress/compliance/controls/): edit the controls, not this file. -->",
        "",
        f"{len(CATALOGUE)} automated controls and {len(MANUAL)} manual controls. Severity weights in scores: "
        + ", ".join(f"{s.value} {w}" for s, w in WEIGHTS.items())
        + f". {len(REMEDIATIONS)} controls have an automatic remediation (column Fix). "
        "How scores are computed: [compliance.md](compliance.md).",
        "",
    ]
    for area in AREAS:
        controls = [c for c in CATALOGUE if c.area == area]
        lines += [f"## {AREA_TITLES[area]} ({len(controls)})", ""]
        lines += [
            "| Id | Control | Severity | Kinds | SOC 2 | ISO 27001 | GDPR | PCI DSS | Source | Fix |",
            "|---|---|---|---|---|---|---|---|---|---|",
        ]
        for c in controls:
            kinds = "pod templates" if area == "workloads" and len(c.kinds) > 3 else ", ".join(c.kinds)
            reqs = [", ".join(c.requirements(f)) or "-" for f in Framework]
            source = "; ".join(sorted({str(m.provenance) for m in c.mappings}))
            lines.append(
                f"| `{c.id}` | {_cell(c.title)}: {_cell(c.description)} | {c.severity.value} | {kinds} | "
                + " | ".join(reqs)
                + f" | {_cell(source)} | {'yes' if c.id in REMEDIATIONS else '-'} |"
            )
        lines.append("")
    lines += [f"## Manual controls ({len(MANUAL)}, never scored)", ""]
    lines += [
        "| Id | Control | SOC 2 | ISO 27001 | GDPR | PCI DSS | Evidence to attest |",
        "|---|---|---|---|---|---|---|",
    ]
    for m in MANUAL:
        reqs = [", ".join(x.requirement for x in m.mappings if x.framework is f) or "-" for f in Framework]
        lines.append(
            f"| `{m.id}` | {_cell(m.title)} | " + " | ".join(reqs) + f" | {_cell(m.evidence_hint)} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    path = repo_root() / TARGET
    text = render()
    if "--check" in args:
        if not path.exists() or path.read_text() != text:
            print(f"{TARGET} is out of date: run python -m fortress.compliance.docgen", file=sys.stderr)
            return 1
        return 0
    path.write_text(text)
    print(f"wrote {TARGET}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
