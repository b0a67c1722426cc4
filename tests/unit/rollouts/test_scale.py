"""spec.replicas changing mid-rollout (`kubectl scale cro/NAME`, a HorizontalPodAutoscaler): each colour
gets its share of the new count for the stage's weight, the applied weight follows once those pods are
available, and status.replicas reports what the Deployments are sized for."""

from __future__ import annotations

from typing import Any

import pytest

from fortress.rollouts.model import Observed
from fortress.rollouts.planner import decide
from fortress.rollouts.traffic.replicas import effective_weight, split
from fortress.rollouts.transitions import pods_for
from fortress.rollouts.workload import deployment, pod_selector
from tests.unit.rollouts.harness import STAGES, World, at, spec, stable_world

WEIGHTS = [stage["weight"] for stage in STAGES[:-1]]  # the stages a canary holds (10 and 50 %)
CHANGES = [(4, 8), (4, 2), (4, 1), (4, 12), (4, 5)]
ROUTERS: dict[str, dict[str, Any]] = {
    "replicas": {},
    "nginx": {"trafficRouting": {"type": "nginx", "nginx": {"stableIngress": "web"}}},
}


def _at_stage(router: str, replicas: int, index: int) -> tuple[World, float]:
    """A release of revision 2 holding stage ``index`` (its weight applied), and the clock."""
    world = stable_world(spec(replicas=replicas, **ROUTERS[router]))
    world.release(2)
    now = 10.0
    world.step(now)
    now += 1
    world.step(now)
    for _ in range(index):  # each stage holds 10 s, then the next one is entered and its pods come up
        now += 11
        world.step(now)
        now += 1
        world.step(now)
    assert world.state.current_stage == index and world.state.stage_ready_at is not None
    return world, now


def _sizes(world: World) -> tuple[int, int]:
    stable = world.state.stable_colour or "blue"
    canary = "green" if stable == "blue" else "blue"
    return world.replicas(stable), world.replicas(canary)


@pytest.mark.parametrize("router", sorted(ROUTERS))
@pytest.mark.parametrize("index", range(len(WEIGHTS)), ids=[f"{w}%" for w in WEIGHTS])
@pytest.mark.parametrize(("before", "after"), CHANGES, ids=[f"{a}to{b}" for a, b in CHANGES])
def test_each_colour_gets_its_share_of_the_new_count(
    router: str, index: int, before: int, after: int
) -> None:
    world, now = _at_stage(router, before, index)
    weight = WEIGHTS[index]
    assert _sizes(world) == pods_for(world.spec, weight)
    world.spec = world.spec.model_copy(update={"replicas": after})
    for _ in range(3):  # the scaled Deployments' pods come up one step later
        now += 1
        plan = world.step(now)
        state = plan.status
        assert state.phase == "Progressing" and state.current_stage == index, state.message
        assert state.replicas == sum(d.replicas for d in plan.deployments)
        if state.stage_ready_at is not None:  # a weight is applied only on pods that are available
            canary = world.deployments[plan.traffic.canary or ""] if plan.traffic else None
            assert canary is not None and canary.available >= pods_for(world.spec, weight)[1]
    expected = split(after, weight) if router == "replicas" else (after, -(-after * weight // 100))
    assert _sizes(world) == expected
    assert world.state.stage_ready_at is not None
    if router == "replicas":
        stable, canary = expected
        assert world.state.canary_weight == effective_weight(after, weight)
        assert world.state.canary_weight == round(100 * canary / (stable + canary))
    else:
        assert world.state.canary_weight == weight  # the router's weight does not depend on the count
    # the router is handed the stage's nominal weight (the replicas router applies it as a pod ratio)
    assert world.traffic is not None and world.traffic.weight == weight
    assert world.state.replicas == sum(expected)
    assert "RolledBack" not in world.reasons() and "Aborted" not in world.reasons()


@pytest.mark.parametrize("after", [1, 3, 6, 10])
def test_the_release_completes_at_the_new_count(after: int) -> None:
    world, now = _at_stage("replicas", 4, 0)
    world.spec = world.spec.model_copy(update={"replicas": after})
    for _ in range(12):
        now += 6
        world.step(now)
        if world.state.phase == "Succeeded":
            break
    assert world.state.phase == "Succeeded", world.state.message
    stable, other = _sizes(world)
    assert stable == after and world.state.replicas == after + other


@pytest.mark.parametrize("replicas", [0, 1, 4, 7])
def test_at_rest_status_replicas_follow_the_spec(replicas: int) -> None:
    world = stable_world(spec(replicas=4))
    world.spec = world.spec.model_copy(update={"replicas": replicas})
    world.step(5)
    plan = world.step(6)
    assert _sizes(world) == (replicas, 0)
    assert plan.status.replicas == replicas


def test_status_replicas_with_the_workload_missing_counts_what_exists() -> None:
    world = stable_world(spec(replicas=3))
    observed = Observed(
        now=at(30), desired_revision=None, deployments=dict(world.deployments), problem="no Deployment web"
    )
    assert decide(world.spec, world.state, observed).status.replicas == 3


def test_the_selector_selects_both_colours() -> None:
    text = pod_selector("web")
    key, _, value = text.partition("=")
    for colour in ("blue", "green"):
        pod_labels = deployment(
            rollout="web",
            namespace="ns",
            colour=colour,
            revision="r1",
            template={"metadata": {"labels": {"app": "web"}}},
            replicas=1,
            owner=None,
        )["spec"]["template"]["metadata"]["labels"]
        assert pod_labels[key] == value
