"""Conditions and the status patch a reconcile writes."""

from __future__ import annotations

import datetime as dt

from fortress.api import BY_KIND
from fortress.core.conditions import find, is_true, set_condition
from fortress.core.outcome import ConditionUpdate, Outcome, invalid_outcome, status_patch
from fortress.core.validation import validate_spec

T0 = dt.datetime(2026, 1, 1, 12, 0, tzinfo=dt.UTC)
T1 = T0 + dt.timedelta(minutes=5)


def test_set_condition_adds_then_keeps_transition_time_when_status_unchanged() -> None:
    first = set_condition([], type_="Ready", status=True, reason="A", message="m", generation=1, now=T0)
    assert first[0]["lastTransitionTime"] == "2026-01-01T12:00:00Z"
    second = set_condition(first, type_="Ready", status=True, reason="B", message="n", generation=2, now=T1)
    assert second[0]["lastTransitionTime"] == "2026-01-01T12:00:00Z"
    assert second[0]["reason"] == "B" and second[0]["observedGeneration"] == 2
    third = set_condition(second, type_="Ready", status=False, reason="C", message="", generation=2, now=T1)
    assert third[0]["lastTransitionTime"] == "2026-01-01T12:05:00Z"
    assert len(third) == 1


def test_set_condition_leaves_other_types_alone() -> None:
    conditions = set_condition(
        [], type_="Progressing", status=True, reason="A", message="", generation=1, now=T0
    )
    conditions = set_condition(
        conditions, type_="Ready", status="Unknown", reason="B", message="", generation=1, now=T0
    )
    assert [c["type"] for c in conditions] == ["Progressing", "Ready"]
    assert find(conditions, "Ready")["status"] == "Unknown"  # type: ignore[index]
    assert not is_true(conditions) and is_true(conditions, "Progressing")
    assert find(None, "Ready") is None


def test_status_patch_always_has_ready_and_generation() -> None:
    outcome = Outcome(
        ready=True,
        reason="Ok",
        message="fine",
        phase="Running",
        fields={"shardCount": 3},
        conditions=(ConditionUpdate("Available", True, "Up"),),
    )
    patch = status_patch(outcome, {"conditions": []}, 4, T0)
    assert patch["observedGeneration"] == 4
    assert patch["phase"] == "Running" and patch["shardCount"] == 3
    assert [c["type"] for c in patch["conditions"]] == ["Available", "Ready"]
    assert all(c["observedGeneration"] == 4 for c in patch["conditions"])


def test_invalid_outcome_has_warning_event_and_field() -> None:
    validated = validate_spec(
        BY_KIND["DRPlan"],
        {"service": {"name": "db"}, "checkInterval": "1m", "failureThreshold": 5, "rtoTarget": "2m"},
    )
    outcome = invalid_outcome(validated)
    assert outcome.reason == "InvalidSpec" and not outcome.ready
    assert outcome.events[0].type == "Warning"
    assert "spec.rtoTarget" in outcome.events[0].message
    patch = status_patch(outcome, None, 1, T0)
    assert patch["conditions"][0]["reason"] == "InvalidSpec"
