"""The pure parts of the live scan: when to scan, what is in scope, and the status it writes."""

from __future__ import annotations

import datetime as dt

from fortress.compliance import live, schedule
from fortress.compliance.engine import evaluate
from fortress.compliance.exceptions import parse
from fortress.compliance.model import Framework
from fortress.compliance.status import NOT_COMPLETE, outcome
from tests.unit.compliance import fixtures

NOW = dt.datetime(2026, 12, 6, 1, 30, tzinfo=dt.UTC)


def test_scans_run_on_change_first_step_and_schedule() -> None:
    later = NOW + dt.timedelta(minutes=30)
    common = {"suspend": False, "schedule": "0 2 * * *", "now": NOW}
    assert schedule.due(changed=True, last_scan=NOW, next_at=later, **common)
    assert schedule.due(changed=False, last_scan=None, next_at=None, **common)
    assert not schedule.due(changed=False, last_scan=NOW, next_at=later, **common)
    assert schedule.due(changed=False, last_scan=NOW, next_at=NOW, **common)
    assert not schedule.due(
        changed=False, last_scan=NOW, next_at=NOW, suspend=True, schedule="0 2 * * *", now=NOW
    )
    assert not schedule.due(changed=False, last_scan=NOW, next_at=None, suspend=False, schedule=None, now=NOW)


def test_next_scan_and_wait() -> None:
    assert schedule.next_scan("0 2 * * *", NOW) == dt.datetime(2026, 12, 6, 2, 0, tzinfo=dt.UTC)
    assert schedule.next_scan(None, NOW) is None
    assert schedule.wait(NOW + dt.timedelta(seconds=42), NOW) == 42
    assert schedule.wait(NOW + dt.timedelta(hours=5), NOW) == 300
    assert schedule.wait(NOW - dt.timedelta(hours=5), NOW) == 1
    assert schedule.wait(None, NOW) == 300


def test_scope_and_owned_objects() -> None:
    deploy = fixtures.deployment()
    assert live.in_scope(deploy, [], ["kube-system"])
    assert not live.in_scope(deploy, ["other"], [])
    assert not live.in_scope(deploy, [], [fixtures.NS])
    assert not live.in_scope(fixtures.namespace("kube-system"), [], ["kube-system"])
    assert live.in_scope({"kind": "ClusterRole", "metadata": {"name": "x"}}, ["a"], ["b"])
    pod = fixtures.as_kind("Pod", deploy)
    assert not live.owned_by_controller(pod)
    pod["metadata"]["ownerReferences"] = [{"kind": "ReplicaSet", "name": "web-1", "controller": True}]
    assert live.owned_by_controller(pod)
    assert not live.owned_by_controller({**deploy, "metadata": pod["metadata"]})  # Deployments always scanned


def test_status_scores_compliant_and_never_ready() -> None:
    good = evaluate([fixtures.deployment(), *fixtures.WORLD], now=NOW)
    result = outcome(good, [Framework.SOC2, Framework.GDPR], 90, NOW, [], 60.0)
    assert result.ready is False and result.reason == NOT_COMPLETE
    assert "not built yet" in result.message and result.requeue_after == 60.0
    assert result.fields["score"] == 100.0 and [s["framework"] for s in result.fields["scores"]] == [
        "SOC2",
        "GDPR",
    ]
    assert result.conditions[0].type == "Compliant" and result.conditions[0].status is True
    assert result.fields["nextScanTime"] == "2026-12-06T01:30:00Z"
    bad = evaluate([fixtures.failing("WL-PRIVILEGED")], now=NOW)
    failing = outcome(bad, [Framework.PCI_DSS], 100, None, ["ingresses (404)"], 300.0)
    assert failing.conditions[0].status is False and failing.conditions[0].reason == "ScoreBelowPassing"
    assert failing.fields["findings"]["critical"] == 1 and "ingresses (404)" in failing.message
    empty = outcome(evaluate([], now=NOW), [Framework.SOC2], 90, None, [], 300.0)
    assert empty.fields["score"] is None and empty.conditions[0].status is None


def test_expired_exceptions_are_a_warning_event() -> None:
    rules = parse([{"name": "old", "controls": ["*"], "reason": "x", "expires": "2026-01-01T00:00:00Z"}])
    result = evaluate([fixtures.failing("WL-PRIVILEGED")], exceptions=rules, now=NOW)
    events = outcome(result, [Framework.SOC2], 90, None, [], 300.0).events
    assert [e.reason for e in events] == ["ExceptionExpired"] and "old" in events[0].message
