"""The blue-green state machine: preview, gates, switch, rollback, manual verbs."""

from __future__ import annotations

from typing import Any

import pytest

from fortress.api.canaryrollout import CanaryRolloutSpec
from fortress.rollouts.model import Traffic
from fortress.rollouts.planner import analysis_due
from tests.unit.rollouts.harness import REV, World, at, bad, good, stable_world, template


def bluegreen(auto: str | None = "10s", analysis: bool = False, **overrides: Any) -> CanaryRolloutSpec:
    body: dict[str, Any] = {
        "service": "pay",
        "replicas": 3,
        "template": template(1),
        "strategy": {"type": "blueGreen", "blueGreen": {"previewService": "pay-preview"}},
        "progressDeadline": "60s",
        "scaleDownDelay": "30s",
        "abortScaleDownDelay": "20s",
        "featureFlags": [{"name": "fast-pay", "enableAtStage": 0}],
    }
    if auto:
        body["strategy"]["blueGreen"]["autoPromotionAfter"] = auto
    if analysis:
        body["analysis"] = {
            "prometheusAddress": "http://prometheus:9090",
            "interval": "5s",
            "failureLimit": 0,
        }
    body.update(overrides)
    return CanaryRolloutSpec.model_validate(body)


def new_colour_up(world: World, at_seconds: float = 10.0) -> World:
    world.release(2)
    world.step(at_seconds)
    plan = world.step(at_seconds + 1)
    assert plan.status.stage_ready_at is not None, plan.status.message
    return world


def test_new_colour_comes_up_in_full_behind_the_preview() -> None:
    world = stable_world(bluegreen())
    world.release(2)
    plan = world.step(10)
    assert [(d.colour, d.revision, d.replicas) for d in plan.deployments] == [
        ("blue", REV[1], 3),
        ("green", REV[2], 3),
    ]
    assert plan.traffic == Traffic(stable="blue", canary=None, weight=0, preview="green")
    assert plan.ready and plan.status.phase == "Progressing"
    plan = world.step(11)
    assert "PreviewReady" in world.reasons() and plan.status.canary_weight == 0
    assert plan.traffic == Traffic(stable="blue", canary=None, weight=0, preview="green"), "Service unmoved"


def test_auto_promotion_switches_the_service_at_once() -> None:
    world = new_colour_up(stable_world(bluegreen()))
    assert world.step(20).status.phase == "Progressing"
    plan = world.step(21)
    assert plan.status.phase == "Succeeded" and plan.status.stable_colour == "green"
    assert plan.traffic == Traffic(stable="green", canary=None, weight=0, preview="green")
    assert plan.status.scale_down_colour == "blue"
    assert [f.enabled for f in plan.status.flags] == [True]
    world.step(51)
    assert world.replicas("blue") == 0


def test_without_auto_promotion_it_waits_until_promoted() -> None:
    world = new_colour_up(stable_world(bluegreen(auto=None)))
    plan = world.step(500)
    assert (plan.status.phase, plan.status.pause_reason, plan.ready) == ("Paused", "UntilPromoted", True)
    world.request("promote", "ship")
    plan = world.step(501)
    assert plan.status.phase == "Succeeded" and world.traffic is not None and world.traffic.stable == "green"


def test_promotion_waits_for_a_successful_analysis_after_the_colour_came_up() -> None:
    world = new_colour_up(stable_world(bluegreen(analysis=True)))
    assert analysis_due(world.spec, world.state, at(11.5))
    plan = world.step(21)
    assert plan.status.phase == "Progressing" and "successful analysis" in plan.status.message
    plan = world.step(22, good(22, REV[2]))
    assert plan.status.phase == "Succeeded"


def test_failed_analysis_rolls_back_without_ever_moving_the_service() -> None:
    world = new_colour_up(stable_world(bluegreen(analysis=True)))
    plan = world.step(13, bad(13, REV[2]))
    assert plan.rollback and plan.status.phase == "Degraded"
    assert plan.traffic == Traffic(stable="blue", canary=None, weight=0, preview="blue")
    assert world.replicas("green") == 3
    assert not plan.ready and "error-rate = 0.2 > max 0.01" in plan.status.message
    world.step(33)
    assert world.replicas("green") == 0 and world.state.phase == "RolledBack"


def test_promote_before_the_new_colour_is_available_switches_once_it_is() -> None:
    world = stable_world(bluegreen(auto=None))
    world.release(2)
    world.request("promote", "early")
    plan = world.step(10)
    assert plan.status.phase == "Promoting"
    assert plan.traffic is not None and plan.traffic.stable == "blue"
    plan = world.step(11)
    assert plan.status.phase == "Succeeded" and plan.traffic is not None and plan.traffic.stable == "green"


def test_new_colour_never_available_is_aborted_at_the_deadline() -> None:
    world = stable_world(bluegreen())
    world.held.add("green")
    world.release(2)
    world.step(10)
    plan = world.step(70)
    assert plan.rollback and plan.status.abort_reason == "ProgressDeadlineExceeded"
    assert "green had 0/3 pods available" in plan.status.message


@pytest.mark.parametrize(
    ("action", "phase", "accepted"),
    [
        ("abort", "Degraded", True),
        ("promoteFull", "Succeeded", True),
        ("retry", "Progressing", False),
        ("resume", "Progressing", False),
    ],
)
def test_manual_verbs(action: str, phase: str, accepted: bool) -> None:
    world = new_colour_up(stable_world(bluegreen(auto="1h")))
    world.events.clear()
    world.request(action, "x1")
    plan = world.step(12)
    assert plan.status.phase == phase
    assert ("ControlAccepted" in world.reasons()) is accepted


def test_paused_spec_holds_the_promotion() -> None:
    world = new_colour_up(stable_world(bluegreen()))
    world.spec = world.spec.model_copy(update={"paused": True})
    plan = world.step(100)
    assert (plan.status.phase, plan.status.pause_reason) == ("Paused", "Paused")
    world.spec = world.spec.model_copy(update={"paused": False})
    assert world.step(101).status.phase == "Succeeded"


def test_new_revision_during_preview_supersedes() -> None:
    world = new_colour_up(stable_world(bluegreen()))
    world.release(3)
    plan = world.step(12)
    assert plan.status.canary_revision == REV[3] and plan.status.stage_ready_at is None
    assert plan.status.history[0].outcome == "Superseded"
