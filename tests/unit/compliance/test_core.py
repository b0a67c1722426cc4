"""Remediations, the planner, exceptions, evidence, scoring and PolicyReports (all pure)."""

from __future__ import annotations

import copy
import hashlib
import json
from datetime import UTC, datetime, timedelta

import pytest

from fortress.compliance import evidence, patches, policyreport
from fortress.compliance.context import Context
from fortress.compliance.controls import BY_ID, CATALOGUE
from fortress.compliance.engine import evaluate
from fortress.compliance.exceptions import ExceptionError, parse
from fortress.compliance.model import Framework, ObjectRef, Severity, Status
from fortress.compliance.remediation import REMEDIATIONS, Mode, Operation, Policy, plan, remediate
from fortress.compliance.scoring import score, scores
from tests.unit.compliance import fixtures

NOW = datetime(2026, 12, 6, tzinfo=UTC)


def context(*extra: dict) -> Context:
    return Context.build([*fixtures.WORLD, *fixtures.EXTRA_WORLD, *extra], NOW)


# ------------------------------------------------------------------ remediation


def test_there_are_at_least_forty_remediations_all_for_known_controls() -> None:
    assert len(REMEDIATIONS) >= 40
    assert set(REMEDIATIONS) <= set(BY_ID)


@pytest.mark.parametrize("control_id", sorted(REMEDIATIONS))
def test_remediation_makes_its_control_pass(control_id: str) -> None:
    control = BY_ID[control_id]
    obj = fixtures.failing(control_id)
    ctx = context()
    assert control.check(obj, ctx).status is Status.FAIL
    action = remediate(control_id, obj, ctx)
    assert action is not None
    if action.operation is Operation.PATCH:
        fixed = patches.apply(obj, list(action.ops))
        assert control.check(fixed, context()).status is Status.PASS, action.ops
    else:
        assert action.object is not None
        assert control.check(obj, context(action.object)).status is Status.PASS, action.object


def _finding_objects(objects: list[dict]) -> tuple[list, dict[ObjectRef, dict], Context]:
    result = evaluate(objects, now=NOW)
    return result.findings, {ObjectRef.of(o): o for o in objects}, Context.build(objects, NOW)


def test_planner_respects_mode_exclusions_severity_and_max_per_scan() -> None:
    bad = fixtures.failing("WL-PRIVILEGED")
    fixtures.sc(bad).update(readOnlyRootFilesystem=False, allowPrivilegeEscalation=True)
    system = copy.deepcopy(bad)
    system["metadata"]["namespace"] = "kube-system"
    findings, objects, ctx = _finding_objects([bad, system])
    assert plan(findings, objects, ctx, Policy()).actions == []
    result = plan(findings, objects, ctx, Policy(mode=Mode.AUTO, max_severity=Severity.HIGH, max_per_scan=50))
    assert all(a.target.namespace != "kube-system" for a in result.actions)
    assert all(a.control_id != "WL-PRIVILEGED" for a in result.actions)  # critical is above HIGH
    assert any(reason.startswith("namespace kube-system") for _, _, reason in result.skipped)
    ids = {a.control_id for a in result.actions}
    assert "WL-READ-ONLY-ROOT" in ids
    # still privileged (critical is above HIGH), so escalation cannot be disallowed: skipped
    assert ("WL-PRIVILEGE-ESCALATION", "Deployment/shop/web", "nothing to change") in result.skipped
    capped = plan(
        findings, objects, ctx, Policy(mode=Mode.AUTO, max_severity=Severity.CRITICAL, max_per_scan=2)
    )
    assert len(capped.actions) == 2 and capped.actions[0].control_id == "WL-PRIVILEGED"
    # every patch of one object applies in sequence and fixes what it says
    fixed, patched = bad, set()
    for action in result.actions:
        if action.target == ObjectRef.of(bad) and action.operation is Operation.PATCH:
            fixed = patches.apply(fixed, list(action.ops))
            patched.add(action.control_id)
    for cid in patched:
        if BY_ID[cid].check(bad, ctx).status is Status.FAIL:
            assert BY_ID[cid].check(fixed, ctx).status is Status.PASS, cid


def test_escalation_is_not_disallowed_on_a_privileged_container() -> None:
    bad = fixtures.failing("WL-PRIVILEGE-ESCALATION")
    fixtures.sc(bad)["privileged"] = True
    assert remediate("WL-PRIVILEGE-ESCALATION", bad, context()) is None  # the API server would refuse it
    findings, objects, ctx = _finding_objects([bad])
    result = plan(
        findings, objects, ctx, Policy(mode=Mode.AUTO, max_severity=Severity.CRITICAL, max_per_scan=50)
    )
    fixed = bad
    for action in result.actions:
        if action.operation is Operation.PATCH and action.target == ObjectRef.of(bad):
            fixed = patches.apply(fixed, list(action.ops))
    assert fixtures.sc(fixed)["privileged"] is False  # critical first: then escalation can be disallowed


def test_planner_never_touches_secrets_and_skips_suppressed() -> None:
    token = fixtures.failing("RBAC-LEGACY-TOKEN")
    findings, objects, ctx = _finding_objects([token])
    result = plan(findings, objects, ctx, Policy(mode=Mode.AUTO, max_severity=Severity.CRITICAL))
    assert result.actions == []
    rules = parse([{"controls": ["WL-*"], "reason": "legacy", "selector": {"namespaces": [fixtures.NS]}}])
    bad = fixtures.failing("WL-READ-ONLY-ROOT")
    scan = evaluate([bad], exceptions=rules, now=NOW)
    result = plan(scan.findings, {ObjectRef.of(bad): bad}, Context.build([bad], NOW), Policy(mode=Mode.AUTO))
    assert result.actions == []
    assert all("suppressed" in r for c, _, r in result.skipped if c.startswith("WL-"))


def test_planner_creates_a_shared_object_once() -> None:
    a, b = fixtures.namespace("a"), fixtures.namespace("b")
    findings, objects, ctx = _finding_objects([a, b, copy.deepcopy(a)])
    result = plan(findings, objects, ctx, Policy(mode=Mode.DRY_RUN, max_per_scan=100))
    creates = [x for x in result.actions if x.operation is Operation.CREATE]
    keys = [(x.target.kind, x.target.namespace, x.target.name) for x in creates]
    assert len(keys) == len(set(keys)) == 4  # default-deny ingress and egress in a and b


# ------------------------------------------------------------------ exceptions


def test_exceptions_suppress_until_they_expire_and_expired_ones_are_reported() -> None:
    bad = fixtures.failing("WL-READ-ONLY-ROOT")
    rules = parse(
        [
            {
                "name": "legacy",
                "controls": ["WL-READ-ONLY-ROOT"],
                "reason": "writes /var/cache",
                "selector": {
                    "kinds": ["Deployment"],
                    "names": ["we*"],
                    "matchLabels": {"app.kubernetes.io/name": "web"},
                },
                "expires": (NOW + timedelta(days=1)).isoformat(),
            },
        ]
    )
    before = evaluate([bad], exceptions=rules, now=NOW)
    assert (
        before.tallies["WL-READ-ONLY-ROOT"].suppressed == 1
        and before.tallies["WL-READ-ONLY-ROOT"].failed == 0
    )
    assert [f.suppressed_by for f in before.findings if f.control.id == "WL-READ-ONLY-ROOT"] == ["legacy"]
    after = evaluate([bad], exceptions=rules, now=NOW + timedelta(days=2))
    assert after.tallies["WL-READ-ONLY-ROOT"].failed == 1 and "legacy" in after.expired
    other = parse(
        [{"controls": ["WL-READ-ONLY-ROOT"], "reason": "x", "selector": {"namespaces": ["elsewhere"]}}]
    )
    assert evaluate([bad], exceptions=other, now=NOW).tallies["WL-READ-ONLY-ROOT"].failed == 1


def test_annotations_on_an_object_never_exempt_it() -> None:
    bad = fixtures.failing("WL-PRIVILEGED")
    bad["metadata"]["annotations"] = {"fortress.io/exempt": "WL-PRIVILEGED", "fortress.io/exceptions": "*"}
    assert evaluate([bad], now=NOW).tallies["WL-PRIVILEGED"].failed == 1


@pytest.mark.parametrize(
    ("entry", "field"),
    [
        ({"reason": "x"}, ".controls"),
        ({"controls": ["A"]}, ".reason"),
        ({"controls": ["A"], "reason": "x", "expires": "tomorrow"}, ".expires"),
        ({"controls": "A", "reason": "x"}, ".controls"),
        ({"controls": ["A"], "reason": "x", "selector": {"matchLabels": []}}, ".selector.matchLabels"),
    ],
)
def test_bad_exceptions_name_the_field(entry: dict, field: str) -> None:
    with pytest.raises(ExceptionError, match=rf"spec\.exceptions\[0\]{field.replace('.', chr(92) + '.')}"):
        parse([entry])


# ------------------------------------------------------------------ evidence


def test_evidence_never_keeps_secret_values() -> None:
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "Opaque",
        "metadata": {
            "name": "db",
            "namespace": "a",
            "annotations": {
                "kubectl.kubernetes.io/last-applied-configuration": '{"data":{"password":"aHVudGVyMg=="}}',
                "team": "x",
            },
            "managedFields": [{"manager": "kubectl"}],
        },
        "data": {"password": "aHVudGVyMg=="},
        "stringData": {"user": "admin"},
    }
    kept = evidence.redact(secret)
    text = json.dumps(kept)
    assert "aHVudGVyMg" not in text and "admin" not in text and "managedFields" not in text
    assert kept["dataKeys"] == ["password", "user"] and kept["metadata"]["annotations"] == {"team": "x"}
    assert evidence.digest(secret) == hashlib.sha256(evidence.canonical(kept)).hexdigest()
    assert secret["data"] == {"password": "aHVudGVyMg=="}  # the input is untouched


def test_evidence_digest_is_canonical() -> None:
    a = {"kind": "ConfigMap", "metadata": {"name": "x", "namespace": "y"}, "data": {"b": "1", "a": "é"}}
    b = {"data": {"a": "é", "b": "1"}, "metadata": {"namespace": "y", "name": "x"}, "kind": "ConfigMap"}
    assert evidence.digest(a) == evidence.digest(b)
    assert evidence.canonical({"b": 1, "a": [1, "é"]}) == '{"a":[1,"é"],"b":1}'.encode()
    assert evidence.digest(a) != evidence.digest({**a, "data": {"a": "x"}})


# ------------------------------------------------------------------ scoring


def test_score_is_severity_weighted_over_evaluated_controls_only() -> None:
    good = fixtures.passing("WL-PRIVILEGED")
    bad = fixtures.failing("WL-PRIVILEGED")
    result = evaluate([good, bad], now=NOW)
    soc2 = score(result, Framework.SOC2)
    evaluated = [c for c in CATALOGUE if Framework.SOC2 in c.frameworks() and result.tallies[c.id].evaluated]
    weights = {Severity.CRITICAL: 10, Severity.HIGH: 6, Severity.MEDIUM: 3, Severity.LOW: 1}
    total = sum(weights[c.severity] for c in evaluated)
    expected = sum(
        weights[c.severity] * result.tallies[c.id].passed / result.tallies[c.id].evaluated for c in evaluated
    )
    assert soc2.score == round(100 * expected / total, 2)
    assert soc2.controls_failed >= 1 and soc2.controls_passed + soc2.controls_failed == len(evaluated)
    assert soc2.controls_not_applicable > 0 and soc2.controls_manual > 0
    # not-applicable controls do not lower the score: a compliant object alone scores 100
    assert score(evaluate([good, *fixtures.WORLD], now=NOW), Framework.SOC2).score == 100.0


def test_a_framework_with_nothing_evaluated_has_no_score() -> None:
    assert all(s.score is None for s in scores(evaluate([], now=NOW)))


def test_suppressed_results_leave_the_score() -> None:
    bad = fixtures.failing("WL-PRIVILEGED")
    rules = parse([{"controls": ["WL-PRIVILEGED"], "reason": "debug"}])
    plain = score(evaluate([bad], now=NOW), Framework.PCI_DSS)
    excepted = score(evaluate([bad], exceptions=rules, now=NOW), Framework.PCI_DSS)
    assert excepted.score is not None and plain.score is not None and excepted.score > plain.score
    assert excepted.suppressed == 1


# ------------------------------------------------------------------ PolicyReports


def test_policy_reports_per_namespace_capped_with_an_exact_summary() -> None:
    objects = [fixtures.failing("WL-PRIVILEGED") for _ in range(3)]
    for i, obj in enumerate(objects):
        obj["metadata"]["name"] = f"web-{i}"
    objects.append(fixtures.failing("RBAC-NODES-PROXY"))
    result = evaluate(objects, keep_passes=True, now=NOW)
    reports = policyreport.build(
        result,
        "nightly",
        policyreport.Owner("fortress.io/v1alpha1", "ComplianceScan", "nightly", "uid-1"),
        cap=5,
    )
    kinds = [r["kind"] for r in reports]
    assert kinds == ["PolicyReport", "ClusterPolicyReport"]
    namespaced = reports[0]
    assert (
        namespaced["apiVersion"] == "wgpolicyk8s.io/v1alpha2"
        and namespaced["metadata"]["namespace"] == fixtures.NS
    )
    assert len(namespaced["results"]) == 5
    assert namespaced["results"][0]["result"] == "fail" and namespaced["results"][0]["severity"] == "critical"
    in_ns = [f for f in result.findings if f.ref.namespace == fixtures.NS]
    passes = [p for p in result.passes if p[1].namespace == fixtures.NS]
    assert namespaced["summary"] == {
        "pass": len(passes),
        "fail": len(in_ns),
        "warn": 0,
        "error": 0,
        "skip": 0,
    }
    assert namespaced["metadata"]["ownerReferences"][0]["uid"] == "uid-1"
    cluster = reports[1]
    assert "namespace" not in cluster["metadata"] and cluster["summary"]["fail"] >= 1
    assert cluster["results"][0]["resources"][0] == {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRole",
        "name": "view-x",
    }
