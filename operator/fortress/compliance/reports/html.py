"""The report as a self-contained HTML page (every value escaped)."""

from __future__ import annotations

from html import escape
from typing import Any

from fortress.compliance.reports import score_text

MAX_FINDINGS = 2000
STYLE = (
    "body{font-family:system-ui,sans-serif;margin:2em;color:#222}table{border-collapse:collapse;margin:1em 0}"
    "td,th{border:1px solid #ccc;padding:4px 8px;text-align:left;vertical-align:top}"
    ".critical{color:#a00;font-weight:bold}.high{color:#c50}.medium{color:#a80}.low{color:#555}"
    "code{font-size:90%}"
)


def _row(cells: list[str], header: bool = False) -> str:
    tag = "th" if header else "td"
    return "<tr>" + "".join(f"<{tag}>{c}</{tag}>" for c in cells) + "</tr>"


def html(doc: dict[str, Any]) -> str:
    e = escape
    parts = [
        "<!DOCTYPE html><html lang=en><head><meta charset=utf-8>",
        f"<title>Compliance report: {e(doc['name'])}</title><style>{STYLE}</style></head><body>",
        f"<h1>Compliance report: {e(doc['name'])}</h1>",
        f"<p>Scanned {doc['objects']} objects at {e(doc['scannedAt'])} ({doc['checks']} checks). "
        f"Lowest score: <b>{e(score_text(doc['score']))}</b>.</p>",
        "<h2>Scores</h2><table>",
        _row(["Framework", "Score", "Passed", "Failed", "Not applicable", "Manual", "Suppressed"], True),
    ]
    for f in doc["frameworks"]:
        c = f["controls"]
        cells = [
            f["title"],
            score_text(f["score"]),
            c["passed"],
            c["failed"],
            c["notApplicable"],
            c["manual"],
        ]
        parts.append(_row([e(str(x)) for x in [*cells, f["suppressed"]]]))
    parts.append("</table><h2>Controls</h2><table>")
    parts.append(_row(["Control", "Severity", "Status", "Passed", "Failed", "Requirements"], True))
    for c in doc["controls"]:
        reqs = "; ".join(f"{k} {', '.join(v)}" for k, v in c["requirements"].items())
        parts.append(
            _row(
                [
                    f"<code>{e(c['id'])}</code> {e(c['title'])}",
                    f"<span class={e(c['severity'])}>{e(c['severity'])}</span>",
                    e(c["status"]),
                    str(c["passed"]),
                    str(c["failed"]),
                    e(reqs),
                ]
            )
        )
    parts.append(f"</table><h2>Findings ({len(doc['findings'])})</h2><table>")
    parts.append(_row(["Severity", "Control", "Object", "Message", "Remediation", "Evidence"], True))
    for item in doc["findings"][:MAX_FINDINGS]:
        status = f" (suppressed by {item['suppressedBy']})" if item["status"] == "suppressed" else ""
        parts.append(
            _row(
                [
                    f"<span class={e(item['severity'])}>{e(item['severity'])}</span>",
                    f"<code>{e(item['control'])}</code>",
                    e(item["object"]),
                    e(item["message"] + status) + f"<br><code>{e(item['path'])}</code>",
                    e(item["remediation"]),
                    f"<code>{e(item['evidence']['sha256'][:16])}</code>",
                ]
            )
        )
    parts.append(f"</table><h2>Manual controls ({len(doc['manual'])}, not scored)</h2><ul>")
    parts += [
        f"<li><code>{e(m['id'])}</code> {e(m['title'])}: {e(m['evidence'])}</li>" for m in doc["manual"]
    ]
    parts.append("</ul></body></html>")
    return "\n".join(parts) + "\n"
