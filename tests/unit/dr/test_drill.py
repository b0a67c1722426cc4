"""DR drills (pure): the region a switchover drill promotes, and the result read back from the plan."""

from __future__ import annotations

from typing import Any

import pytest

from fortress.dr.drill import FAILED, SUCCEEDED, choose_target, outcome


def region(
    name: str, role: str = "Standby", ready: str = "True", priority: int = 100, **status: Any
) -> dict[str, Any]:
    conditions = [{"type": "Ready", "status": ready}]
    return {
        "metadata": {"name": name},
        "spec": {"priority": priority},
        "status": {"role": role, "conditions": conditions, **status},
    }


def plan(phase: str | None = "Protected", **status: Any) -> dict[str, Any]:
    return {"metadata": {"name": "orders"}, "status": {"phase": phase, **status} if phase else {}}


PRIMARY = region("a", role="Primary")


@pytest.mark.parametrize(
    ("the_plan", "regions", "target", "why"),
    [
        (plan(), [PRIMARY, region("b", priority=10), region("c", priority=5)], "c", "lowest priority"),
        (plan(candidate="b"), [PRIMARY, region("b", priority=10), region("c", priority=5)], "b", "candidate"),
        (plan(candidate="c"), [PRIMARY, region("b"), region("c", ready="False")], "b", "lowest priority"),
        (plan(), [PRIMARY, region("b", lagBytes=900), region("c", lagBytes=10)], "c", "lowest priority"),
        (
            plan(),
            [PRIMARY, region("b", fenced=True), region("c", needsReclone=True)],
            None,
            "no ready standby",
        ),
        (plan(), [PRIMARY, region("b", role="Unknown")], None, "no ready standby"),
        (plan(), [PRIMARY], None, "no ready standby"),
        (plan("Degraded"), [PRIMARY, region("b")], None, "Degraded, not Protected"),
        (plan("FailingOver"), [PRIMARY, region("b")], None, "not Protected"),
        (plan(None), [PRIMARY, region("b")], None, "not yet observed"),
    ],
)
def test_choose_target(
    the_plan: dict[str, Any], regions: list[dict[str, Any]], target: str | None, why: str
) -> None:
    choice = choose_target(the_plan, regions)
    assert choice.target == target and why in choice.reason


def _record(request_id: str | None, to: str = "b", rpo: int | None = 0) -> dict[str, Any]:
    return {
        "type": "switchover",
        "toRegion": to,
        "reason": "requested",
        "requestId": request_id,
        "rpoBytes": rpo,
    }


def _handled(request_id: str, outcome_: str, message: str = "") -> dict[str, Any]:
    return {
        "requestId": request_id,
        "action": "switchover",
        "outcome": outcome_,
        "message": message,
        "at": "t",
    }


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        ({}, None),
        ({"lastRequest": _handled("older", "Accepted")}, None),
        (
            {
                "lastRequest": _handled("d1", "Accepted"),
                "inProgress": {"type": "switchover", "toRegion": "b"},
            },
            None,
        ),
        ({"lastFailover": _record("d1", rpo=0)}, (SUCCEEDED, "b is primary, RPO 0 bytes")),
        ({"lastFailover": _record("d1", rpo=None)}, (SUCCEEDED, "b is primary")),
        (
            {"lastFailover": _record("later"), "history": [_record("later"), _record("d1", to="c")]},
            (SUCCEEDED, "c is primary"),
        ),
        ({"lastRequest": _handled("d1", "Rejected", "b lags 3 MB")}, (FAILED, "rejected: b lags 3 MB")),
        (
            {"lastRequest": _handled("d1", "Ignored", "a request is running")},
            (FAILED, "ignored: a request is running"),
        ),
        (
            {
                "lastRequest": _handled("d1", "Accepted"),
                "message": "switchover to b abandoned: b cannot catch up",
            },
            (FAILED, "accepted but not completed: switchover to b abandoned"),
        ),
    ],
)
def test_outcome(status: dict[str, Any], expected: tuple[str, str] | None) -> None:
    found = outcome({"status": status}, "d1")
    if expected is None:
        assert found is None
    else:
        assert found is not None and found[0] == expected[0] and expected[1] in found[1], found
