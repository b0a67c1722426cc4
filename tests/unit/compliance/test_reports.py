"""Report formats (JSON, Markdown, HTML, SARIF 2.1.0, PDF), manifest loading and ``fortress scan``."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from fortress.cli import main
from fortress.compliance import engine, manifests, report, reports
from fortress.compliance.controls import CATALOGUE
from fortress.compliance.model import Framework
from tests.unit.compliance import fixtures

NOW = datetime(2026, 12, 6, tzinfo=UTC)

# The parts of the SARIF 2.1.0 schema (OASIS sarif-schema-2.1.0.json) a consumer relies on:
# required members, enums and types of the sarifLog, run, tool, reportingDescriptor, result,
# message, location and suppression objects.
_MESSAGE = {
    "type": "object",
    "anyOf": [{"required": ["text"]}, {"required": ["id"]}],
    "properties": {"text": {"type": "string"}},
}
SARIF_STRUCTURE: dict[str, Any] = {
    "type": "object",
    "required": ["version", "runs"],
    "properties": {
        "$schema": {"type": "string", "format": "uri"},
        "version": {"const": "2.1.0"},
        "runs": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["tool"],
                "properties": {
                    "tool": {
                        "type": "object",
                        "required": ["driver"],
                        "properties": {
                            "driver": {
                                "type": "object",
                                "required": ["name"],
                                "properties": {
                                    "name": {"type": "string"},
                                    "version": {"type": "string"},
                                    "rules": {
                                        "type": "array",
                                        "uniqueItems": True,
                                        "items": {
                                            "type": "object",
                                            "required": ["id"],
                                            "properties": {
                                                "id": {"type": "string"},
                                                "shortDescription": _MESSAGE,
                                                "fullDescription": _MESSAGE,
                                                "defaultConfiguration": {
                                                    "type": "object",
                                                    "properties": {
                                                        "level": {
                                                            "enum": ["none", "note", "warning", "error"]
                                                        }
                                                    },
                                                },
                                                "properties": {"type": "object"},
                                            },
                                        },
                                    },
                                },
                            }
                        },
                    },
                    "results": {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "required": ["message"],
                            "properties": {
                                "ruleId": {"type": "string"},
                                "ruleIndex": {"type": "integer", "minimum": -1},
                                "level": {"enum": ["none", "note", "warning", "error"]},
                                "message": _MESSAGE,
                                "locations": {
                                    "type": "array",
                                    "items": {
                                        "type": "object",
                                        "properties": {
                                            "physicalLocation": {
                                                "type": "object",
                                                "properties": {
                                                    "artifactLocation": {
                                                        "type": "object",
                                                        "properties": {"uri": {"type": "string"}},
                                                    },
                                                    "region": {
                                                        "type": "object",
                                                        "properties": {
                                                            "startLine": {"type": "integer", "minimum": 1}
                                                        },
                                                    },
                                                },
                                            },
                                            "logicalLocations": {
                                                "type": "array",
                                                "items": {"type": "object"},
                                            },
                                        },
                                    },
                                },
                                "partialFingerprints": {
                                    "type": "object",
                                    "additionalProperties": {"type": "string"},
                                },
                                "suppressions": {
                                    "type": "array",
                                    "items": {
                                        "type": "object",
                                        "required": ["kind"],
                                        "properties": {"kind": {"enum": ["inSource", "external"]}},
                                    },
                                },
                            },
                        },
                    },
                },
            },
        },
    },
}


def _document(objects: list[dict]) -> dict[str, Any]:
    result = engine.evaluate(objects, now=NOW)
    return report.build(result, name="t")


def _mixed() -> list[dict]:
    bad = fixtures.failing("WL-PRIVILEGED")
    bad["metadata"]["name"] = "<script>alert(1)</script>"
    return [bad, fixtures.failing("RBAC-NODES-PROXY"), *fixtures.WORLD]


def test_json_report_has_scores_controls_findings_and_manual_controls() -> None:
    doc = json.loads(reports.render(_document(_mixed()), "json"))
    assert [f["framework"] for f in doc["frameworks"]] == ["SOC2", "ISO27001", "GDPR", "PCI_DSS"]
    assert doc["score"] == min(f["score"] for f in doc["frameworks"])
    privileged = next(c for c in doc["controls"] if c["id"] == "WL-PRIVILEGED")
    assert privileged["status"] == "failed" and privileged["requirements"]["SOC2"] == [
        "CC6.1",
        "CC6.3",
        "CC6.8",
    ]
    finding = next(f for f in doc["findings"] if f["control"] == "WL-PRIVILEGED")
    assert len(finding["evidence"]["sha256"]) == 64 and finding["remediation"]
    assert doc["manual"] and all("evidence" in m for m in doc["manual"])


def test_a_single_framework_report_keeps_only_its_controls() -> None:
    result = engine.evaluate(_mixed(), now=NOW)
    doc = report.build(result, [Framework.PCI_DSS])
    assert [f["framework"] for f in doc["frameworks"]] == ["PCI_DSS"]
    assert all(set(c["requirements"]) == {"PCI_DSS"} for c in doc["controls"])
    ids = {c.id for c in CATALOGUE if Framework.PCI_DSS not in c.frameworks()}
    assert ids and not ids & {c["id"] for c in doc["controls"]}


def test_markdown_and_html_reports() -> None:
    doc = _document(_mixed())
    text = reports.render(doc, "markdown").decode()
    assert "| PCI DSS v4.0 |" in text and "WL-PRIVILEGED" in text and "## Manual controls" in text
    page = reports.render(doc, "html").decode()
    assert page.startswith("<!DOCTYPE html>") and "<script>alert" not in page and "&lt;script&gt;" in page


def test_sarif_is_structurally_valid_2_1_0() -> None:
    log = json.loads(reports.render(_document(_mixed()), "sarif"))
    jsonschema.validate(log, SARIF_STRUCTURE)
    run = log["runs"][0]
    rules = run["tool"]["driver"]["rules"]
    for result in run["results"]:
        assert rules[result["ruleIndex"]]["id"] == result["ruleId"]
    assert {r["level"] for r in run["results"]} <= {"error", "warning", "note"}


def test_pdf_report_is_a_pdf_with_a_section_per_framework() -> None:
    data = reports.render(_document(_mixed()), "pdf")
    assert data.startswith(b"%PDF-") and data.rstrip().endswith(b"%%EOF")
    assert b"/Title (Compliance report: t)" in data
    assert data.count(b"/Type /Page\n") + data.count(b"/Type /Page ") + data.count(b"/Type /Page>") >= 5


def test_unknown_format_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown report format"):
        reports.render({}, "docx")


# ------------------------------------------------------------------ manifests and the command


def _write(tmp_path: Path) -> Path:
    (tmp_path / "app").mkdir()
    bad = fixtures.failing("WL-PRIVILEGED")
    good = fixtures.passing("WL-PRIVILEGED")
    good["metadata"]["name"] = "good"
    (tmp_path / "app" / "bad.yaml").write_text(
        "# comment\n---\n" + yaml.safe_dump(good) + "---\n" + yaml.safe_dump(bad)
    )
    listing = {"apiVersion": "v1", "kind": "List", "items": fixtures.WORLD[:4]}
    (tmp_path / "world.json").write_text(json.dumps(listing))
    (tmp_path / "notes.txt").write_text("not a manifest")
    return tmp_path


def test_manifests_are_read_from_directories_lists_and_documents(tmp_path: Path) -> None:
    found = manifests.load([_write(tmp_path)])
    assert found.files == 2 and found.errors == []
    assert len(found.objects) == 6
    origins = {ref.name: origin for ref, origin in found.origins.items() if ref.kind == "Deployment"}
    assert origins["web"].path.endswith("bad.yaml") and origins["web"].line > origins["good"].line > 1


def test_scan_command_writes_reports_and_exits_on_thresholds(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = _write(tmp_path)
    out = tmp_path / "r.json"
    assert main(["scan", "-f", str(root), "-o", "json", "--output-file", str(out)]) == 0
    doc = json.loads(out.read_text())
    finding = next(f for f in doc["findings"] if f["control"] == "WL-PRIVILEGED")
    assert finding["source"]["file"].endswith("bad.yaml")
    assert (
        main(["scan", "-f", str(root), "-o", "sarif", "--output-file", str(out), "--fail-on", "critical"])
        == 1
    )
    assert "at or above critical" in capsys.readouterr().err
    assert main(["scan", "-f", str(root), "--output-file", str(out), "--fail-under", "99.99"]) == 1
    assert (
        main(
            [
                "scan",
                "-f",
                str(root),
                "--output-file",
                str(out),
                "--fail-under",
                "1",
                "--fail-on",
                "critical",
                "--framework",
                "GDPR",
            ]
        )
        == 1
    )
    pdf = tmp_path / "soc2.pdf"
    assert main(["scan", "-f", str(root), "-o", "pdf", "--framework", "SOC2", "--output-file", str(pdf)]) == 0
    assert pdf.read_bytes().startswith(b"%PDF-")


def test_scan_command_exceptions_and_proposed_fixes(tmp_path: Path) -> None:
    root = _write(tmp_path)
    rules = tmp_path / "exceptions.yaml"
    rules.write_text(
        yaml.safe_dump(
            [{"controls": ["WL-PRIVILEGED"], "reason": "node agent", "selector": {"names": ["web"]}}]
        )
    )
    out = tmp_path / "r.json"
    args = [
        "scan",
        "-f",
        str(root / "app"),
        "-f",
        str(root / "world.json"),
        "-o",
        "json",
        "--output-file",
        str(out),
    ]
    assert main([*args, "--exceptions", str(rules), "--fail-on", "critical", "--propose-fixes"]) == 0
    doc = json.loads(out.read_text())
    suppressed = [f for f in doc["findings"] if f["control"] == "WL-PRIVILEGED"]
    assert suppressed and all(f["status"] == "suppressed" for f in suppressed)
    assert all("proposedChange" not in f for f in suppressed)
    assert main([*args, "--propose-fixes"]) == 0
    doc = json.loads(out.read_text())
    change = next(f["proposedChange"] for f in doc["findings"] if f["control"] == "WL-PRIVILEGED")
    assert change["operation"] == "patch" and change["patch"][0]["value"] is False


def test_scan_command_usage_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["scan"]) == 2
    assert main(["scan", "-f", str(tmp_path / "missing")]) == 2
    bad = tmp_path / "x.yaml"
    bad.write_text("a: [\n")
    assert main(["scan", "-f", str(bad)]) == 2
    rules = tmp_path / "e.yaml"
    rules.write_text(yaml.safe_dump([{"controls": ["X"]}]))
    assert main(["scan", "-f", str(tmp_path), "--exceptions", str(rules)]) == 2
    assert "reason" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["scan", "-f", str(tmp_path), "--fail-under", "120"])
