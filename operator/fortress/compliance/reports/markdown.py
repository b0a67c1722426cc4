"""The report as Markdown."""

from __future__ import annotations

from typing import Any

from fortress.compliance.reports import score_text

MAX_FINDINGS = 500


def _cell(text: Any) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def markdown(doc: dict[str, Any]) -> str:
    lines = [
        f"# Compliance report: {doc['name']}",
        "",
        f"Scanned {doc['objects']} objects at {doc['scannedAt']} ({doc['checks']} checks, "
        f"fortress {doc['tool']['version']}). Lowest score: **{score_text(doc['score'])}**.",
        "",
        "## Scores",
        "",
        "| Framework | Score | Controls passed | failed | not applicable | manual | Suppressed |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for f in doc["frameworks"]:
        c = f["controls"]
        lines.append(
            f"| {f['title']} | {score_text(f['score'])} | {c['passed']} | {c['failed']} "
            f"| {c['notApplicable']} | {c['manual']} | {f['suppressed']} |"
        )
    failed = [c for c in doc["controls"] if c["status"] == "failed"]
    lines += ["", f"## Failed controls ({len(failed)})", ""]
    if failed:
        lines += ["| Control | Severity | Failed objects | Requirements |", "|---|---|---:|---|"]
        for c in failed:
            reqs = "; ".join(f"{k} {', '.join(v)}" for k, v in c["requirements"].items())
            lines.append(
                f"| {c['id']}: {_cell(c['title'])} | {c['severity']} | {c['failed']} | {_cell(reqs)} |"
            )
    else:
        lines.append("None.")
    findings = doc["findings"]
    lines += ["", f"## Findings ({len(findings)})", ""]
    for item in findings[:MAX_FINDINGS]:
        where = f" ({item['source']['file']}:{item['source']['line']})" if "source" in item else ""
        status = f" - suppressed by {item['suppressedBy']}" if item["status"] == "suppressed" else ""
        lines.append(
            f"- **{item['severity']}** `{item['control']}` {item['object']}{where}: {item['message']}"
            f" at `{item['path']}`{status}. Fix: {item['remediation']} (evidence sha256 "
            f"`{item['evidence']['sha256'][:16]}`)"
        )
    if len(findings) > MAX_FINDINGS:
        lines.append(f"- ... and {len(findings) - MAX_FINDINGS} more (see the JSON report)")
    lines += ["", f"## Manual controls ({len(doc['manual'])}, not scored)", ""]
    for m in doc["manual"]:
        reqs = "; ".join(f"{k} {', '.join(v)}" for k, v in m["requirements"].items())
        lines.append(f"- `{m['id']}` {m['title']} ({reqs}). Evidence: {m['evidence']}.")
    if doc["expiredExceptions"]:
        lines += ["", "## Expired exceptions", ""]
        lines += [f"- {e['name']} (expired {e['expires']}): {e['reason']}" for e in doc["expiredExceptions"]]
    return "\n".join(lines) + "\n"
