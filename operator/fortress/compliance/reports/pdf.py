"""The report as PDF (reportlab): a section per framework with its score, control counts, failed
controls and their findings; then the manual controls."""

from __future__ import annotations

import io
from typing import Any
from xml.sax.saxutils import escape

from fortress.compliance.reports import score_text

MAX_FINDINGS_PER_FRAMEWORK = 300


def pdf(doc: dict[str, Any]) -> bytes:
    from reportlab.lib import colors
    from reportlab.lib.pagesizes import A4
    from reportlab.lib.styles import getSampleStyleSheet
    from reportlab.lib.units import mm
    from reportlab.platypus import PageBreak, Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle

    styles = getSampleStyleSheet()
    small = styles["BodyText"].clone("small", fontSize=8, leading=10)
    buffer = io.BytesIO()
    page = SimpleDocTemplate(
        buffer,
        pagesize=A4,
        title=f"Compliance report: {doc['name']}",
        author="fortress",
        leftMargin=15 * mm,
        rightMargin=15 * mm,
        topMargin=15 * mm,
        bottomMargin=15 * mm,
    )
    grid = TableStyle(
        [
            ("GRID", (0, 0), (-1, -1), 0.25, colors.grey),
            ("BACKGROUND", (0, 0), (-1, 0), colors.HexColor("#e8e8e8")),
            ("FONTSIZE", (0, 0), (-1, -1), 8),
            ("VALIGN", (0, 0), (-1, -1), "TOP"),
        ]
    )

    def p(text: str, style: Any = small) -> Paragraph:
        return Paragraph(escape(text), style)

    story: list[Any] = [
        Paragraph(escape(f"Compliance report: {doc['name']}"), styles["Title"]),
        p(
            f"{doc['objects']} objects scanned at {doc['scannedAt']}; {doc['checks']} checks; "
            f"lowest score {score_text(doc['score'])}.",
            styles["BodyText"],
        ),
        Spacer(1, 4 * mm),
    ]
    rows = [["Framework", "Score", "Passed", "Failed", "N/A", "Manual"]]
    for f in doc["frameworks"]:
        c = f["controls"]
        rows.append(
            [f["title"], score_text(f["score"]), c["passed"], c["failed"], c["notApplicable"], c["manual"]]
        )
    story += [Table(rows, style=grid, hAlign="LEFT"), PageBreak()]
    for f in doc["frameworks"]:
        framework = f["framework"]
        story.append(Paragraph(escape(f"{f['title']}: {score_text(f['score'])}"), styles["Heading1"]))
        failed = [c for c in doc["controls"] if c["status"] == "failed" and framework in c["requirements"]]
        story.append(Paragraph(escape(f"Failed controls ({len(failed)})"), styles["Heading2"]))
        if failed:
            rows = [[p("Control"), p("Severity"), p("Failed"), p("Requirements")]]
            rows += [
                [
                    p(f"{c['id']}: {c['title']}"),
                    p(c["severity"]),
                    p(str(c["failed"])),
                    p(", ".join(c["requirements"][framework])),
                ]
                for c in failed
            ]
            story.append(
                Table(rows, colWidths=[80 * mm, 20 * mm, 15 * mm, 60 * mm], style=grid, hAlign="LEFT")
            )
        ids = {c["id"] for c in failed}
        findings = [x for x in doc["findings"] if x["control"] in ids]
        story.append(Paragraph(escape(f"Findings ({len(findings)})"), styles["Heading2"]))
        if findings:
            rows = [[p("Control"), p("Object"), p("Message and remediation"), p("Evidence")]]
            for x in findings[:MAX_FINDINGS_PER_FRAMEWORK]:
                note = f" (suppressed by {x['suppressedBy']})" if x["status"] == "suppressed" else ""
                rows.append(
                    [
                        p(x["control"]),
                        p(x["object"]),
                        p(f"{x['message']}{note}. {x['remediation']}"),
                        p(x["evidence"]["sha256"][:16]),
                    ]
                )
            story.append(
                Table(
                    rows,
                    colWidths=[38 * mm, 45 * mm, 70 * mm, 27 * mm],
                    style=grid,
                    hAlign="LEFT",
                    repeatRows=1,
                )
            )
            if len(findings) > MAX_FINDINGS_PER_FRAMEWORK:
                story.append(
                    p(f"... and {len(findings) - MAX_FINDINGS_PER_FRAMEWORK} more in the JSON report.")
                )
        manual = [m for m in doc["manual"] if framework in m["requirements"]]
        story.append(Paragraph(escape(f"Manual controls ({len(manual)}, not scored)"), styles["Heading2"]))
        rows = [[p("Control"), p("Requirements"), p("Evidence to attest")]]
        rows += [
            [p(f"{m['id']}: {m['title']}"), p(", ".join(m["requirements"][framework])), p(m["evidence"])]
            for m in manual
        ]
        story += [Table(rows, colWidths=[80 * mm, 35 * mm, 65 * mm], style=grid, hAlign="LEFT"), PageBreak()]
    page.build(story)
    return buffer.getvalue()
