"""The generated CRDs: no drift, valid apiextensions.k8s.io/v1, structural, and what on-call needs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from fortress.api import CATEGORY, KINDS, crdgen
from fortress.paths import chart_crd_dir, examples_dir, repo_root
from tests.support.crdschema import load_crds, schema_errors

CRDS = load_crds()
INVALID = Path(__file__).parents[2] / "invalid"


def test_regenerating_changes_nothing() -> None:
    assert crdgen.drift([repo_root() / "crds", chart_crd_dir()]) == []


def test_drift_is_detected(tmp_path: Path) -> None:
    crdgen.write([tmp_path])
    target = tmp_path / crdgen.file_name(KINDS[0])
    target.write_text(target.read_text().replace("minimum: 0", "minimum: 1", 1))
    (tmp_path / "stray.yaml").write_text("{}")
    problems = crdgen.drift([tmp_path])
    assert any("differs from the models" in p for p in problems)
    assert any("stray.yaml" in p and "not generated" in p for p in problems)


@pytest.mark.parametrize("kind", [info.kind for info in KINDS])
def test_crd_is_valid_apiextensions_v1(kind: str) -> None:
    crd = CRDS[kind]
    kubernetes_validate.validate(crd, kubernetes_validate.latest_version(), strict=True)


def _walk(node: Any, path: str = "") -> list[tuple[str, dict[str, Any]]]:
    found: list[tuple[str, dict[str, Any]]] = []
    if isinstance(node, dict):
        found.append((path, node))
        for key, sub in (node.get("properties") or {}).items():
            found.extend(_walk(sub, f"{path}.{key}"))
        if isinstance(node.get("items"), dict):
            found.extend(_walk(node["items"], f"{path}[]"))
        if isinstance(node.get("additionalProperties"), dict):
            found.extend(_walk(node["additionalProperties"], f"{path}{{}}"))
    return found


@pytest.mark.parametrize("kind", [info.kind for info in KINDS])
def test_schema_is_structural_and_documented(kind: str) -> None:
    schema = CRDS[kind]["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    for path, node in _walk(schema):
        assert "$ref" not in node and "anyOf" not in node and "allOf" not in node, path
        assert "type" in node or node.get("x-kubernetes-int-or-string"), f"{path} has no type"
        assert node.get("additionalProperties") is not False, path
        if path.startswith(".spec.") and not path.endswith("[]"):
            assert node.get("description"), f"{path} has no description (kubectl explain)"


@pytest.mark.parametrize("info", KINDS, ids=lambda i: i.kind)
def test_names_columns_status_subresource(info: Any) -> None:
    spec = CRDS[info.kind]["spec"]
    assert spec["group"] == "fortress.io"
    assert spec["names"]["shortNames"] == list(info.short_names)
    assert spec["names"]["categories"] == [CATEGORY]
    version = spec["versions"][0]
    assert version["name"] == "v1alpha1"
    assert version["subresources"]["status"] == {}  # scale: test_crd_scale.py
    columns = version["additionalPrinterColumns"]
    names = [c["name"] for c in columns]
    assert "Ready" in names and "Age" in names
    assert any(c.get("priority") == 1 for c in columns), "secondary columns belong to -o wide"
    assert len([c for c in columns if not c.get("priority")]) <= 8, "too many default columns"
    status = version["schema"]["openAPIV3Schema"]["properties"]["status"]["properties"]
    assert status["observedGeneration"]["type"] == "integer"
    conditions = status["conditions"]
    assert conditions["x-kubernetes-list-type"] == "map"
    assert conditions["x-kubernetes-list-map-keys"] == ["type"]
    assert set(conditions["items"]["required"]) >= {"type", "status", "reason", "lastTransitionTime"}


def test_expected_short_names() -> None:
    assert {i.kind: i.short_names for i in KINDS} == {
        "CanaryRollout": ("cro",),
        "ShardCluster": ("shc",),
        "DRPlan": ("drp",),
        "DRRegion": ("drr",),
        "ComplianceScan": ("cscan",),
        "CreditLedger": ("cled",),
        "SyntheticDataset": ("synth",),
    }


def test_defaults_are_in_the_schema() -> None:
    spec = CRDS["ShardCluster"]["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    assert spec["properties"]["virtualNodes"]["default"] == 256
    ledger = CRDS["CreditLedger"]["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    assert ledger["properties"]["snapshotInterval"]["default"] == 100
    rollout = CRDS["CanaryRollout"]["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    stages = rollout["properties"]["strategy"]["properties"]["canary"]["properties"]["stages"]["default"]
    assert [s["weight"] for s in stages] == [1, 5, 25, 50, 100]


def _documents(directory: Path) -> list[tuple[str, dict[str, Any]]]:
    docs = []
    for path in sorted(directory.glob("*.yaml")):
        for index, doc in enumerate(yaml.safe_load_all(path.read_text())):
            if doc:
                docs.append((f"{path.name}#{index}", doc))
    return docs


EXAMPLES = _documents(examples_dir())


def test_every_kind_has_an_example() -> None:
    assert {doc["kind"] for _, doc in EXAMPLES} == {info.kind for info in KINDS}


@pytest.mark.parametrize(("name", "doc"), EXAMPLES, ids=[n for n, _ in EXAMPLES])
def test_example_validates_against_its_crd(name: str, doc: dict[str, Any]) -> None:
    assert schema_errors(doc, CRDS) == []


def _expected_field(path: Path) -> str:
    for line in path.read_text().splitlines():
        if line.startswith("# expect-field:"):
            return line.split(":", 1)[1].strip()
    raise AssertionError(f"{path} lacks a '# expect-field:' line")


SCHEMA_INVALID = sorted((INVALID / "schema").glob("*.yaml"))


@pytest.mark.parametrize("path", SCHEMA_INVALID, ids=[p.name for p in SCHEMA_INVALID])
def test_schema_rejects_invalid_resource_naming_the_field(path: Path) -> None:
    doc = yaml.safe_load(path.read_text())
    errors = schema_errors(doc, CRDS)
    field = _expected_field(path)
    assert errors, f"{path.name} was accepted"
    assert any(e.startswith(field) for e in errors), f"no error names {field}: {errors}"


def test_there_are_invalid_resources_for_every_kind() -> None:
    kinds = {yaml.safe_load(p.read_text())["kind"] for p in SCHEMA_INVALID}
    assert kinds == {info.kind for info in KINDS}
