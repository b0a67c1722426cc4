"""The report as SARIF 2.1.0 (one run; a rule per control; a result per finding)."""

from __future__ import annotations

from typing import Any

SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
LEVELS = {"critical": "error", "high": "error", "medium": "warning", "low": "note"}
SECURITY_SEVERITY = {"critical": "9.5", "high": "8.0", "medium": "5.5", "low": "2.0"}


def sarif(doc: dict[str, Any]) -> dict[str, Any]:
    rules: list[dict[str, Any]] = []
    index: dict[str, int] = {}
    for control in doc["controls"]:
        index[control["id"]] = len(rules)
        tags = ["security", "compliance", control["area"]]
        tags += [f"{fw}:{req}" for fw, reqs in control["requirements"].items() for req in reqs]
        rules.append(
            {
                "id": control["id"],
                "name": control["id"].replace("-", ""),
                "shortDescription": {"text": control["title"]},
                "fullDescription": {"text": control["title"]},
                "help": {"text": "; ".join(control["provenance"])},
                "defaultConfiguration": {"level": LEVELS[control["severity"]]},
                "properties": {"tags": tags, "security-severity": SECURITY_SEVERITY[control["severity"]]},
            }
        )
    results = []
    for item in doc["findings"]:
        location: dict[str, Any] = {
            "logicalLocations": [
                {"name": item["name"], "kind": "object", "fullyQualifiedName": item["object"] + item["path"]}
            ]
        }
        if "source" in item:
            location["physicalLocation"] = {
                "artifactLocation": {"uri": item["source"]["file"]},
                "region": {"startLine": max(1, int(item["source"]["line"]))},
            }
        result: dict[str, Any] = {
            "ruleId": item["control"],
            "ruleIndex": index[item["control"]],
            "level": LEVELS[item["severity"]],
            "message": {"text": f"{item['object']}: {item['message']}. {item['remediation']}".strip()},
            "locations": [location],
            "partialFingerprints": {"objectControl/v1": f"{item['control']}:{item['object']}"},
            "properties": {"evidenceSha256": item["evidence"]["sha256"], "path": item["path"]},
        }
        if item["status"] == "suppressed":
            result["suppressions"] = [
                {"kind": "external", "justification": f"exception {item['suppressedBy']}"}
            ]
        results.append(result)
    return {
        "$schema": SCHEMA,
        "version": "2.1.0",
        "runs": [
            {
                "tool": {
                    "driver": {
                        "name": "fortress",
                        "version": doc["tool"]["version"],
                        "informationUri": "https://fortress.io/docs/compliance",
                        "rules": rules,
                    }
                },
                "results": results,
                "properties": {
                    "scores": {f["framework"]: f["score"] for f in doc["frameworks"]},
                    "scannedAt": doc["scannedAt"],
                },
            }
        ],
    }
