"""Cross-field rules: schema-valid specs the operator rejects, each naming the offending field."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from fortress.api import BY_KIND, KINDS
from fortress.api.common import parse_duration
from fortress.core.validation import validate_spec
from tests.support.crdschema import load_crds, schema_errors

INVALID = sorted((Path(__file__).parents[2] / "invalid" / "crossfield").glob("*.yaml"))
CRDS = load_crds()


def _expected_field(path: Path) -> str:
    line = next(line for line in path.read_text().splitlines() if line.startswith("# expect-field:"))
    return line.split(":", 1)[1].strip()


@pytest.mark.parametrize("path", INVALID, ids=[p.name for p in INVALID])
def test_cross_field_rule_names_the_field(path: Path) -> None:
    doc = yaml.safe_load(path.read_text())
    assert schema_errors(doc, CRDS) == [], "these files must pass the schema: only the operator rejects them"
    validated = validate_spec(BY_KIND[doc["kind"]], doc["spec"])
    assert not validated.valid
    field = _expected_field(path)
    assert any(issue.field == field for issue in validated.issues), validated.message()
    assert field in validated.message()
    for line in path.read_text().splitlines():
        if line.startswith("# expect-message:"):  # the message says what is wrong, not only where
            assert line.split(":", 1)[1].strip() in validated.message(), validated.message()


REFERENCES = sorted((Path(__file__).parents[2] / "invalid" / "references").glob("*.yaml"))


@pytest.mark.parametrize("path", REFERENCES, ids=[p.name for p in REFERENCES])
def test_a_missing_reference_case_is_a_valid_spec(path: Path) -> None:
    """These pass the schema and every cross-field rule: only the missing object makes them fail."""
    doc = yaml.safe_load(path.read_text())
    assert schema_errors(doc, CRDS) == []
    validated = validate_spec(BY_KIND[doc["kind"]], doc["spec"])
    assert validated.valid, validated.message()
    assert any(line.startswith("# expect-reason:") for line in path.read_text().splitlines())


def test_schema_errors_are_reported_with_paths_too() -> None:
    """The operator re-checks the schema (the emulator does not), with the same field paths."""
    validated = validate_spec(BY_KIND["ShardCluster"], {"shards": [{"id": "A_b", "connection": {}}]})
    fields = {issue.field for issue in validated.issues}
    assert "spec.shards[0].id" in fields
    assert "spec.shards[0].connection.secretKeyRef" in fields


def test_unknown_field_is_an_error() -> None:
    validated = validate_spec(
        BY_KIND["CreditLedger"],
        {"database": {"secretKeyRef": {"name": "a", "key": "b"}}, "snapshotIntervall": 5},
    )
    assert [issue.field for issue in validated.issues] == ["spec.snapshotIntervall"]


def test_missing_spec_is_invalid_not_a_crash() -> None:
    required = {
        "CanaryRollout": "spec.service",
        "ShardCluster": "spec.shards",
        "DRPlan": "spec.service",
        "DRRegion": "spec.planRef",
        "ComplianceScan": "spec.frameworks",
        "CreditLedger": "spec.database",
        "SyntheticDataset": "spec.kind",
    }
    for info in KINDS:
        validated = validate_spec(info, None)
        assert not validated.valid
        assert required[info.kind] in {issue.field for issue in validated.issues}


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("30s", 30), ("1m30s", 90), ("250ms", 0.25), ("2h", 7200), ("1.5s", 1.5), ("0s", 0)],
)
def test_parse_duration(text: str, seconds: float) -> None:
    assert parse_duration(text).total_seconds() == seconds


@pytest.mark.parametrize("text", ["", "30", "s", "1d", "-1s", "1 m", "1m 30s"])
def test_parse_duration_rejects(text: str) -> None:
    with pytest.raises(ValueError, match="invalid duration"):
        parse_duration(text)


def test_defaults_fill_a_minimal_spec() -> None:
    validated = validate_spec(BY_KIND["CanaryRollout"], {"service": "web", "template": {"spec": {}}})
    assert validated.valid, validated.message()
    spec = validated.spec
    assert spec is not None
    wire = spec.wire()
    assert wire["strategy"]["type"] == "canary"
    assert wire["analysis"]["missingData"] == "inconclusive"
    assert wire["trafficRouting"]["type"] == "replicas"


def test_gateway_api_alias() -> None:
    spec = {
        "service": "web",
        "template": {},
        "trafficRouting": {"type": "gatewayAPI", "gatewayAPI": {"httpRoute": "r"}},
    }
    validated = validate_spec(BY_KIND["CanaryRollout"], spec)
    assert validated.valid, validated.message()
    missing = validate_spec(BY_KIND["CanaryRollout"], {**spec, "trafficRouting": {"type": "gatewayAPI"}})
    assert [i.field for i in missing.issues] == ["spec.trafficRouting.gatewayAPI"]


def test_every_kind_has_cross_field_cases() -> None:
    kinds = {yaml.safe_load(p.read_text())["kind"] for p in INVALID}
    assert kinds == {info.kind for info in KINDS} - {"DRRegion"}  # DRRegion has no cross-field rule
