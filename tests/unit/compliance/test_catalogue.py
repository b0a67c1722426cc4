"""The catalogue as data: every control passes on its compliant fixture and fails on its mutation."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest

from fortress.compliance.context import Context
from fortress.compliance.controls import AREAS, CATALOGUE, MANUAL
from fortress.compliance.model import Control, Framework, Source, Status
from fortress.compliance.pods import WORKLOAD_KINDS
from tests.unit.compliance import fixtures

NOW = datetime(2026, 12, 6, tzinfo=UTC)
IDS = [c.id for c in CATALOGUE]


def context(*extra: dict) -> Context:
    return Context.build([*fixtures.WORLD, *fixtures.EXTRA_WORLD, *extra], NOW)


def test_the_catalogue_is_large_and_ids_are_stable_and_unique() -> None:
    assert len(CATALOGUE) >= 150
    assert len(set(IDS)) == len(IDS)
    assert all(re.fullmatch(r"[A-Z0-9]+(-[A-Z0-9]+)+", i) for i in IDS)
    assert {c.area for c in CATALOGUE} == set(AREAS)
    assert not set(IDS) & {m.id for m in MANUAL}


def test_every_control_has_a_fixture_pair() -> None:
    missing = sorted(set(IDS) - set(fixtures.FAILING))
    unknown = sorted(set(fixtures.FAILING) - set(IDS))
    assert missing == [] and unknown == []


@pytest.mark.parametrize("control", CATALOGUE, ids=IDS)
def test_control_metadata_is_complete(control: Control) -> None:
    assert control.title and control.description and control.rationale and control.kinds
    assert control.frameworks(), "maps to no framework"
    for mapping in control.mappings:
        assert mapping.requirement and mapping.provenance.item
    soc2 = control.requirements(Framework.SOC2)
    assert all(re.fullmatch(r"(CC|A|C|PI|P)\d+\.\d+", r) for r in soc2)
    assert all(re.fullmatch(r"A\.[5-8]\.\d+", r) for r in control.requirements(Framework.ISO27001))
    assert all(re.fullmatch(r"\d+\(\d\)(\([a-f]\))?", r) for r in control.requirements(Framework.GDPR))
    assert all(re.fullmatch(r"\d+(\.\d+){1,3}", r) for r in control.requirements(Framework.PCI_DSS))


@pytest.mark.parametrize("control", CATALOGUE, ids=IDS)
def test_control_passes_on_its_compliant_fixture(control: Control) -> None:
    obj = fixtures.passing(control.id)
    assert obj["kind"] in control.kinds
    result = control.check(obj, context())
    assert result.status is Status.PASS, result


@pytest.mark.parametrize("control", CATALOGUE, ids=IDS)
def test_control_fails_on_its_violating_fixture(control: Control) -> None:
    obj = fixtures.failing(control.id)
    result = control.check(obj, context())
    assert result.status is Status.FAIL, result
    assert result.message and result.path.startswith("/")


WORKLOAD = [c for c in CATALOGUE if c.kinds == WORKLOAD_KINDS and fixtures.FAILING[c.id][0] == "Deployment"]
SPEC_ONLY = {"WL-REPLICAS", "WL-PDB", "WL-NOT-DEFAULT-NAMESPACE", "WL-INVENTORY-LABEL", "NET-WORKLOAD-POLICY"}


@pytest.mark.parametrize("kind", ["Pod", "StatefulSet", "DaemonSet", "Job", "CronJob", "CanaryRollout"])
def test_workload_controls_read_every_pod_template(kind: str) -> None:
    for control in WORKLOAD:
        if control.id in SPEC_ONLY or (kind in ("Job", "CronJob") and "PROBE" in control.id):
            continue
        good = fixtures.as_kind(kind, fixtures.passing(control.id))
        bad = fixtures.as_kind(kind, fixtures.failing(control.id))
        assert control.check(good, context()).status is Status.PASS, (control.id, kind)
        assert control.check(bad, context()).status is Status.FAIL, (control.id, kind)


@pytest.mark.parametrize("where", ["initContainers", "ephemeralContainers"])
def test_container_controls_cover_init_and_ephemeral_containers(where: str) -> None:
    obj = fixtures.passing("WL-PRIVILEGED")
    extra = fixtures.container("helper")
    extra["securityContext"]["privileged"] = True
    fixtures.pod(obj)[where] = [extra]
    result = next(c for c in CATALOGUE if c.id == "WL-PRIVILEGED").check(obj, context())
    assert result.status is Status.FAIL and f"/{where}/0" in result.path and "helper" in result.message


@pytest.mark.parametrize("kind", ["Job", "CronJob"])
def test_probes_are_not_applicable_to_jobs(kind: str) -> None:
    for control_id in ("WL-LIVENESS-PROBE", "WL-READINESS-PROBE"):
        bad = fixtures.as_kind(kind, fixtures.failing(control_id))
        control = next(c for c in CATALOGUE if c.id == control_id)
        assert control.check(bad, context()).status is Status.NOT_APPLICABLE


def test_high_uid_passes_with_a_user_namespace() -> None:
    bad = fixtures.failing("WL-HIGH-UID")
    fixtures.pod(bad)["hostUsers"] = False
    control = next(c for c in CATALOGUE if c.id == "WL-HIGH-UID")
    assert control.check(bad, context()).status is Status.PASS


def test_canary_rollout_with_a_workload_ref_is_not_applicable() -> None:
    obj = {
        "kind": "CanaryRollout",
        "metadata": {"name": "x", "namespace": "a"},
        "spec": {"workloadRef": {"name": "x"}},
    }
    for control in WORKLOAD:
        assert control.check(obj, context()).status is Status.NOT_APPLICABLE, control.id


def test_database_controls_are_not_applicable_without_an_observation() -> None:
    obj = {"kind": "PostgresServer", "metadata": {"name": "x", "namespace": "a"}, "observed": {}}
    for control in CATALOGUE:
        if control.area == "databases":
            assert control.check(obj, context()).status is Status.NOT_APPLICABLE, control.id


def test_provenance_sources_are_named() -> None:
    used = {m.provenance.source for c in CATALOGUE for m in c.mappings}
    assert {Source.CIS_K8S, Source.NSA_CISA, Source.PSS} <= used


def test_manual_controls_are_separate_and_mapped() -> None:
    assert len(MANUAL) >= 10
    for item in MANUAL:
        assert item.frameworks() and item.description
