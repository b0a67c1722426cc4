"""What a CanaryRollout does when little is said: the defaults, the colours, the Events of each stage."""

from __future__ import annotations

import itertools

from fortress.api.canaryrollout import CanaryRolloutSpec, MissingData
from fortress.core.time import parse_duration
from fortress.rollouts import workload
from fortress.rollouts.model import Traffic
from fortress.rollouts.transitions import stages_of
from tests.unit.rollouts.harness import REV, spec, stable_world, template

NGINX = {"type": "nginx", "nginx": {"stableIngress": "web"}}


def minimal() -> CanaryRolloutSpec:
    return CanaryRolloutSpec.model_validate({"service": "web", "template": template(1)})


def test_defaults() -> None:
    found = minimal()
    assert found.strategy.type == "canary"
    assert found.strategy.canary is None  # the planner's and the schema's default stages apply
    stages = stages_of(found)
    assert [s.weight for s in stages] == [1, 5, 25, 50, 100]
    assert {parse_duration(s.pause.duration or "0s").total_seconds() for s in stages} == {180.0}
    assert not any(s.pause.until_promoted for s in stages)
    analysis = found.analysis
    assert analysis.missing_data == MissingData.INCONCLUSIVE, "absent data never promotes by default"
    assert (analysis.failure_limit, analysis.inconclusive_limit, analysis.interval) == (1, 3, "1m")
    assert (analysis.thresholds.max_error_rate, analysis.thresholds.max_p95_latency_ms) == (0.01, 500)
    assert found.traffic_routing.type == "replicas"
    assert (found.progress_deadline, found.scale_down_delay, found.abort_scale_down_delay) == (
        "10m",
        "30s",
        "30s",
    )
    assert (found.history_limit, found.paused, found.control) == (10, False, None)


def test_default_stages_hold_three_minutes_each_with_events_at_every_stage_change() -> None:
    routing = spec(trafficRouting=NGINX).traffic_routing  # exact weights (replicas rounds to pods)
    world = stable_world(minimal().model_copy(update={"traffic_routing": routing}))
    world.release(2)
    t = 10.0
    plan = world.step(t)
    reached: list[tuple[int, float]] = []
    for _ in range(100):  # each step when the plan asks to be woken, as the daemon does
        if plan.status.phase == "Succeeded":
            break
        t += plan.requeue_after or 1.0
        plan = world.step(t)
        weight = plan.status.canary_weight
        if plan.status.stage_ready_at and weight and (not reached or reached[-1][0] != weight):
            reached.append((weight, t))
    assert [w for w, _ in reached] == [1, 5, 25, 50, 100]
    holds = [later - earlier for (_, earlier), (_, later) in itertools.pairwise(reached)]
    assert all(180 <= hold <= 181 for hold in holds), holds
    reasons = world.reasons()
    assert reasons.count("StageReached") == 5 and reasons.count("StageStarted") == 4
    assert reasons[0] == "RolloutStarted" and reasons[-1] == "Promoted"
    assert world.state.phase == "Succeeded" and world.state.stable_revision == REV[2]


def test_colours_alternate_per_revision() -> None:
    world = stable_world(
        spec(strategy={"type": "canary", "canary": {"stages": [{"weight": 100, "pause": {}}]}})
    )
    assert world.state.stable_colour == "blue"
    colours = ["blue"]
    t = 10.0
    for version in (2, 3, 1):
        world.release(version)
        plan = world.step(t)
        canary = plan.deployments[1]
        assert (canary.colour, canary.revision) == (
            {"blue": "green", "green": "blue"}[colours[-1]],
            REV[version],
        )
        while world.state.phase != "Succeeded" or world.state.stable_revision != REV[version]:
            t += 1
            world.step(t)
            assert t < 1000, world.state.message
        colours.append(world.state.stable_colour or "")
        assert world.traffic == Traffic(stable=colours[-1], canary=colours[-2], weight=0)
        t += 60  # past scaleDownDelay: the old colour scales down
        world.step(t)
        assert world.replicas(colours[-2]) == 0 and world.replicas(colours[-1]) == 4
    assert colours == ["blue", "green", "blue", "green"]
    assert [workload.deployment_name("web", c) for c in ("blue", "green")] == ["web-blue", "web-green"]
    assert [r.outcome for r in world.state.history[:3]] == ["Succeeded"] * 3
