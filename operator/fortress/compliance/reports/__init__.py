"""Report formats: every renderer takes the report document (``compliance.report.build``)."""

from __future__ import annotations

import json
from typing import Any

FORMATS = ("json", "markdown", "html", "sarif", "pdf")


def render(document: dict[str, Any], fmt: str) -> bytes:
    """The report in ``fmt`` (json, markdown, html, sarif or pdf) as bytes."""
    if fmt == "json":  # compact: the C encoder (indenting is several times slower on large scans)
        return (json.dumps(document, separators=(",", ":")) + "\n").encode()
    if fmt == "markdown":
        from fortress.compliance.reports.markdown import markdown

        return markdown(document).encode()
    if fmt == "html":
        from fortress.compliance.reports.html import html

        return html(document).encode()
    if fmt == "sarif":
        from fortress.compliance.reports.sarif import sarif

        return (json.dumps(sarif(document), separators=(",", ":")) + "\n").encode()
    if fmt == "pdf":
        from fortress.compliance.reports.pdf import pdf

        return pdf(document)
    raise ValueError(f"unknown report format {fmt!r}; expected one of {', '.join(FORMATS)}")


def score_text(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f} %"
