"""The canary state machine: every transition, table-driven where the shape repeats."""

from __future__ import annotations

from typing import Any

import pytest

from fortress.api.canaryrollout import CanaryRolloutStatus
from fortress.rollouts.model import Raw, Traffic, template_hash
from fortress.rollouts.planner import analysis_due, decide
from tests.unit.rollouts.harness import (
    REV,
    World,
    analysed,
    at,
    bad,
    good,
    measurement,
    sample,
    spec,
    stable_world,
    template,
)


def started(world: World, at_seconds: float = 10.0, version: int = 2) -> World:
    """Release ``version`` and step until its first stage's weight is applied."""
    world.release(version)
    world.step(at_seconds)
    world.step(at_seconds + 1)
    assert world.state.stage_ready_at is not None, world.state.message
    return world


# ---- initial release ------------------------------------------------------------------------------


def test_initial_release_waits_for_pods_then_succeeds() -> None:
    world = World(spec(featureFlags=[{"name": "beta", "enableAtStage": 1}]))
    plan = world.step(0)
    assert (plan.status.phase, plan.ready, plan.reason) == ("Progressing", False, "WaitingForPods")
    assert plan.traffic is None  # the Service is not pointed at pods that are not there yet
    assert [(d.colour, d.revision, d.replicas) for d in plan.deployments] == [
        ("blue", REV[1], 4),
        ("green", None, 0),
    ]
    assert plan.status.stable_revision == REV[1] and plan.status.canary_revision is None
    plan = world.step(1)
    assert (plan.status.phase, plan.ready, plan.reason) == ("Succeeded", True, "StableServing")
    assert plan.traffic == Traffic(stable="blue", canary="green", weight=0)
    assert [f.enabled for f in plan.status.flags] == [True]
    assert plan.status.history[0].outcome == "Succeeded"
    assert world.reasons() == ["InitialRelease", "Available", "FlagEnabled"]


def test_initial_release_past_deadline_is_degraded_then_recovers() -> None:
    world = World(spec())
    world.held.add("blue")
    world.step(0)
    plan = world.step(61)
    assert (plan.status.phase, plan.ready, plan.reason) == ("Degraded", False, "ProgressDeadlineExceeded")
    world.held.clear()
    world.step(62)  # the pods come up (the plan re-applies the Deployment)
    plan = world.step(63)
    assert (plan.status.phase, plan.ready) == ("Succeeded", True)


def test_initial_release_replaced_before_available() -> None:
    world = World(spec())
    world.held.add("blue")
    world.step(0)
    world.release(2)
    plan = world.step(5)
    assert plan.status.stable_revision == REV[2]
    assert plan.status.history[0].outcome == "Superseded"
    assert (plan.deployments[0].colour, plan.deployments[0].revision) == ("blue", REV[2])


# ---- stages ---------------------------------------------------------------------------------------


def test_stages_advance_only_after_pods_and_pause() -> None:
    world = stable_world()
    world.release(2)
    plan = world.step(10)
    assert plan.status.phase == "Progressing" and plan.status.current_stage == 0
    assert plan.traffic == Traffic("blue", "green", 0), "no weight before the canary pods are up"
    assert [(d.colour, d.revision, d.replicas) for d in plan.deployments] == [
        ("blue", REV[1], 4),
        ("green", REV[2], 1),
    ]
    assert plan.ready, "the stable version serves: Ready during a canary"
    plan = world.step(11)  # one canary pod of five: 20 %
    assert (plan.status.current_stage, plan.status.canary_weight) == (0, 20)
    assert plan.traffic == Traffic("blue", "green", 10)
    assert plan.requeue_after == pytest.approx(10.0)
    plan = world.step(20.9)
    assert plan.status.current_stage == 0, "the pause holds"
    plan = world.step(21)
    assert (plan.status.current_stage, plan.status.stage_ready_at) == (1, None)
    assert plan.traffic == Traffic("blue", "green", 10), "weight stays until the new pods are up"
    assert [d.replicas for d in plan.deployments] == [4, 4]
    plan = world.step(22)
    assert plan.status.canary_weight == 50
    world.step(32)
    plan = world.step(33)
    assert plan.status.canary_weight == 100 and plan.traffic == Traffic("blue", "green", 100)
    plan = world.step(43)
    assert (plan.status.phase, plan.status.stable_colour, plan.status.stable_revision) == (
        "Succeeded",
        "green",
        REV[2],
    )
    assert plan.traffic == Traffic("green", "blue", 0)
    assert plan.status.scale_down_colour == "blue" and world.replicas("blue") == 4
    plan = world.step(73)
    assert world.replicas("blue") == 0 and plan.status.scale_down_colour is None
    assert world.reasons().count("StageReached") == 3
    assert [s.weight for s in plan.status.steps] == [20, 50, 100]
    assert world.reasons()[-2:] == ["Promoted", "ScaledDown"]


@pytest.mark.parametrize(
    ("router", "replicas", "weights"),
    [
        ("replicas", 4, [20, 50, 100]),
        ("replicas", 10, [9, 50, 100]),  # one pod in eleven
        ("nginx", 4, [10, 50, 100]),
        ("gatewayAPI", 3, [10, 50, 100]),
    ],
)
def test_applied_weights_per_router(router: str, replicas: int, weights: list[int]) -> None:
    routing: dict[str, Any] = {"type": router}
    if router == "nginx":
        routing["nginx"] = {"stableIngress": "web"}
    if router == "gatewayAPI":
        routing["gatewayAPI"] = {"httpRoute": "web"}
    world = stable_world(spec(replicas=replicas, trafficRouting=routing))
    world.release(2)
    seen = []
    for t in range(10, 60):
        plan = world.step(t)
        if plan.status.canary_weight and (not seen or seen[-1] != plan.status.canary_weight):
            seen.append(plan.status.canary_weight)
    assert seen == weights
    assert world.state.phase == "Succeeded"


def test_until_promoted_stage_pauses_and_promote_is_acted_on_once() -> None:
    stages = [{"weight": 10, "pause": {"untilPromoted": True}}, {"weight": 100, "pause": {"duration": "1s"}}]
    world = stable_world(spec(strategy={"type": "canary", "canary": {"stages": stages}}))
    started(world)
    plan = world.step(100)
    assert (plan.status.phase, plan.status.pause_reason) == ("Paused", "UntilPromoted")
    assert plan.ready and "until promoted" in plan.status.message
    world.request("promote", "r1")
    plan = world.step(101)
    assert plan.status.current_stage == 1 and plan.status.last_request is not None
    assert plan.status.last_request.request_id == "r1"
    assert plan.status.phase == "Progressing"
    plan = world.step(102)  # the same request id again: nothing more happens
    assert plan.status.current_stage == 1 and world.reasons().count("ControlAccepted") == 1


def test_zero_pause_stages_run_through_in_one_step_when_pods_are_there() -> None:
    stages = [{"weight": 10, "pause": {}}, {"weight": 20, "pause": {}}, {"weight": 100, "pause": {}}]
    world = stable_world(
        spec(
            replicas=10,
            trafficRouting={"type": "nginx", "nginx": {"stableIngress": "w"}},
            strategy={"type": "canary", "canary": {"stages": stages}},
        )
    )
    world.release(2)
    world.step(10)
    plan = world.step(11)  # 1 pod for 10 %; 20 % needs 2: waits for them
    assert plan.status.current_stage == 1 and plan.status.canary_weight == 10
    plan = world.step(12)
    assert plan.status.current_stage == 2


# ---- analysis -------------------------------------------------------------------------------------


def test_failed_analysis_rolls_back_in_the_same_decision() -> None:
    world = stable_world(analysed())
    flag = {"name": "beta", "enableAtStage": 0}
    world.spec = world.spec.model_copy(update={"feature_flags": analysed(featureFlags=[flag]).feature_flags})
    started(world)
    assert world.state.flags[0].enabled and world.state.flags[0].revision == REV[2]
    plan = world.step(12, bad(12, REV[2]))
    assert plan.status.phase == "Progressing" and plan.status.failed_measurements == 1, "failureLimit 1"
    assert "AnalysisFailed" in world.reasons()
    plan = world.step(17, bad(17, REV[2], value=0.31))
    assert plan.rollback and plan.status.phase == "Degraded"
    assert plan.traffic == Traffic("blue", "green", 0), "100 % stable in the same decision"
    assert [(d.colour, d.replicas) for d in plan.deployments] == [("blue", 4), ("green", 1)]
    assert (plan.ready, plan.reason) == (False, "AnalysisFailed")
    assert "error-rate = 0.31 > max 0.01" in plan.status.message
    assert plan.status.flags[0].enabled is False, "flags of the failed release go off"
    assert plan.status.history[0].outcome == "RolledBack"
    assert plan.finished and plan.finished[0].outcome == "RolledBack"
    plan = world.step(37)  # abortScaleDownDelay 20 s later
    assert plan.status.phase == "RolledBack" and world.replicas("green") == 0
    assert "error-rate = 0.31" in plan.status.message
    progressing = {c.type: c for c in plan.conditions}["Progressing"]
    assert (progressing.status, progressing.reason) == (False, "AnalysisFailed")


def test_failure_limit_zero_rolls_back_on_the_first_failure() -> None:
    world = stable_world(analysed(analysis={"failureLimit": 0}))
    started(world)
    assert world.step(12, bad(12, REV[2])).rollback


@pytest.mark.parametrize(
    ("policy", "raw", "verdict", "advances"),
    [
        ("inconclusive", Raw.NO_DATA, "Inconclusive", False),
        ("inconclusive", Raw.ERROR, "Inconclusive", False),
        ("fail", Raw.NO_DATA, "Failed", False),
        ("fail", Raw.ERROR, "Failed", False),
        ("ignore", Raw.NO_DATA, "Skipped", True),
        ("ignore", Raw.ERROR, "Inconclusive", False),
        ("inconclusive", Raw.SUCCESSFUL, "Successful", True),
    ],
)
def test_missing_data_policy(policy: str, raw: Raw, verdict: str, advances: bool) -> None:
    world = stable_world(analysed(analysis={"missingData": policy, "failureLimit": 5}))
    started(world)
    plan = world.step(25, sample(25, REV[2], measurement(raw=raw, value=0.001)))
    assert plan.status.metrics[0].result == verdict
    assert (plan.status.current_stage == 1) is advances


def test_absent_data_never_promotes_and_pauses_after_the_limit() -> None:
    world = stable_world(analysed(analysis={"inconclusiveLimit": 2}))
    started(world)
    no_data = measurement(raw=Raw.NO_DATA)
    plan = world.step(21, sample(21, REV[2], no_data))
    assert plan.status.current_stage == 0 and plan.status.phase == "Progressing"
    assert "waiting for a successful analysis" in plan.status.message
    plan = world.step(26, sample(26, REV[2], no_data))
    assert (plan.status.phase, plan.status.pause_reason) == ("Paused", "InconclusiveAnalysis")
    plan = world.step(31, sample(31, REV[2], no_data))
    assert plan.status.phase == "Paused"
    plan = world.step(36, good(36, REV[2]))  # data is back: resumes and advances on it
    assert plan.status.current_stage == 1 and "Resumed" in world.reasons()


def test_resume_request_leaves_an_inconclusive_pause() -> None:
    world = stable_world(analysed(analysis={"inconclusiveLimit": 1}))
    started(world)
    plan = world.step(21, sample(21, REV[2], measurement(raw=Raw.ERROR)))
    assert plan.status.pause_reason == "InconclusiveAnalysis"
    world.request("resume", "go")
    plan = world.step(22)
    assert plan.status.phase == "Progressing" and plan.status.pause_reason is None
    assert plan.status.current_stage == 0, "still needs a successful measurement"


def test_promote_leaves_an_inconclusive_pause() -> None:
    world = stable_world(analysed(analysis={"inconclusiveLimit": 1}))
    started(world)
    assert world.step(21, sample(21, REV[2], measurement(raw=Raw.NO_DATA))).status.phase == "Paused"
    world.request("promote", "go-on")
    plan = world.step(22)
    status = plan.status
    assert (status.phase, status.current_stage, status.pause_reason) == ("Progressing", 1, None)


def test_measurement_before_the_weight_was_applied_does_not_count() -> None:
    world = stable_world(analysed())
    world.release(2)
    world.step(10)
    plan = world.step(11, good(11, REV[2]))  # same instant as the weight change
    assert plan.status.stage_ready_at is not None
    plan = world.step(21)
    assert plan.status.current_stage == 0, "no measurement after the stage's weight yet"
    plan = world.step(22, good(22, REV[2]))
    assert plan.status.current_stage == 1


def test_sample_of_another_revision_is_ignored() -> None:
    world = stable_world(analysed(analysis={"failureLimit": 0}))
    started(world)
    plan = world.step(12, bad(12, REV[1]))
    assert plan.status.phase == "Progressing" and plan.status.metrics == []


def test_analysis_due_only_when_the_canary_gets_traffic() -> None:
    world = stable_world(analysed())
    assert not analysis_due(world.spec, world.state, at(5))
    world.release(2)
    world.step(10)
    assert not analysis_due(world.spec, world.state, at(10.5)), "weight 0: nothing to measure"
    world.step(11)
    assert analysis_due(world.spec, world.state, at(11.1))
    world.step(12, good(12, REV[2]))
    assert not analysis_due(world.spec, world.state, at(16))
    assert analysis_due(world.spec, world.state, at(17))
    assert not analysis_due(spec(), world.state, at(17)), "no Prometheus address: no analysis"


# ---- deadlines ------------------------------------------------------------------------------------


def test_canary_pods_never_available_abort_at_the_deadline_with_the_reason() -> None:
    world = stable_world()
    world.held.add("green")
    world.release(2)
    world.step(10)
    plan = world.step(69)
    assert plan.status.phase == "Progressing" and plan.requeue_after <= 5
    plan = world.step(70)
    assert plan.rollback and plan.status.abort_reason == "ProgressDeadlineExceeded"
    assert "green had 0/1 pods available after 1m00s (progressDeadline)" in plan.status.message


def test_deadline_on_an_analysis_that_never_succeeds() -> None:
    world = stable_world(analysed(analysis={"inconclusiveLimit": 100}))
    started(world)
    no_data = measurement(raw=Raw.NO_DATA)
    for t in range(21, 81, 5):
        plan = world.step(t, sample(t, REV[2], no_data))
    assert plan.status.phase == "Progressing"
    plan = world.step(81, sample(81, REV[2], no_data))
    assert plan.rollback and "no successful analysis at stage 1" in plan.status.message


def test_deadline_does_not_count_while_paused() -> None:
    world = stable_world()
    world.held.add("green")
    world.release(2)
    world.step(10)
    world.spec = world.spec.model_copy(update={"paused": True})
    plan = world.step(20)
    assert plan.status.phase == "Paused" and plan.status.pause_reason == "Paused"
    plan = world.step(500)
    assert plan.status.phase == "Paused"
    world.spec = world.spec.model_copy(update={"paused": False})
    plan = world.step(501)
    assert plan.status.phase == "Progressing", "the deadline restarts at resume"
    plan = world.step(561)
    assert plan.rollback


def test_paused_rollout_still_rolls_back_on_a_breach() -> None:
    world = stable_world(analysed(analysis={"failureLimit": 0}))
    started(world)
    world.spec = world.spec.model_copy(update={"paused": True})
    assert world.step(20).status.phase == "Paused"
    assert world.step(30, good(30, REV[2])).status.current_stage == 0, "no progress while paused"
    plan = world.step(31, bad(31, REV[2]))
    assert plan.rollback and plan.traffic == Traffic("blue", "green", 0)


# ---- superseding ----------------------------------------------------------------------------------


def test_new_revision_mid_rollout_supersedes_it_safely() -> None:
    world = stable_world()
    started(world)
    world.step(21)
    world.step(22)  # stage 2 (50 %)
    assert world.traffic == Traffic("blue", "green", 50)
    world.release(3)
    plan = world.step(25)
    assert plan.status.canary_revision == REV[3] and plan.status.current_stage == 0
    assert plan.traffic == Traffic("blue", "green", 0), "traffic back to stable before the canary changes"
    assert [(d.colour, d.revision) for d in plan.deployments] == [("blue", REV[1]), ("green", REV[3])]
    assert plan.status.history[0].outcome == "Superseded" and plan.status.history[0].revision == REV[2]
    assert plan.status.stable_revision == REV[1]


def test_template_back_to_stable_mid_rollout_ends_it() -> None:
    world = stable_world()
    started(world)
    world.release(1)
    plan = world.step(15)
    assert (plan.status.phase, plan.status.canary_revision) == ("Succeeded", None)
    assert plan.traffic == Traffic("blue", "green", 0)
    assert plan.status.scale_down_colour == "green"
    assert plan.status.history[0].outcome == "Superseded"


def test_other_spec_changes_mid_rollout_keep_it_going() -> None:
    world = stable_world()
    started(world)
    world.spec = world.spec.model_copy(update={"replicas": 8})
    plan = world.step(12)
    assert plan.status.canary_revision == REV[2] and plan.status.current_stage == 0
    assert [d.replicas for d in plan.deployments] == [8, 1]


def test_stages_shrinking_mid_rollout_clamp_the_current_stage() -> None:
    world = stable_world()
    started(world)
    world.step(21)
    world.step(22)  # stage index 1
    short = {"type": "canary", "canary": {"stages": [{"weight": 100, "pause": {"duration": "1s"}}]}}
    world.spec = world.spec.model_copy(update={"strategy": type(world.spec.strategy).model_validate(short)})
    plan = world.step(23)
    assert plan.status.current_stage == 0
    assert plan.status.phase == "Progressing", "the new stage 0 (100 %) is entered, not skipped"
    assert plan.status.canary_weight == 100, "its 4 canary pods were already up: weight applied"
    assert plan.status.stage_ready_at == "2024-01-01T12:00:23.000Z", "and its pause starts now"
    assert world.step(23.5).status.phase == "Progressing"
    assert world.step(24).status.phase == "Succeeded"


# ---- after a rollback -----------------------------------------------------------------------------


def rolled_back() -> World:
    world = stable_world(analysed(analysis={"failureLimit": 0}))
    started(world)
    assert world.step(12, bad(12, REV[2])).rollback
    world.step(40)
    assert world.state.phase == "RolledBack"
    world.events.clear()
    return world


def test_rolled_back_release_is_not_retried_by_itself() -> None:
    world = rolled_back()
    plan = world.step(100)
    assert plan.status.phase == "RolledBack" and world.replicas("green") == 0


def test_retry_restarts_the_rolled_back_release() -> None:
    world = rolled_back()
    world.request("retry", "again")
    plan = world.step(100)
    assert (plan.status.phase, plan.status.current_stage, plan.status.failed_measurements) == (
        "Progressing",
        0,
        0,
    )
    assert plan.status.canary_revision == REV[2] and plan.ready


def test_template_back_to_stable_after_a_rollback_is_succeeded() -> None:
    world = rolled_back()
    world.release(1)
    plan = world.step(100)
    assert (plan.status.phase, plan.ready, plan.status.canary_revision) == ("Succeeded", True, None)
    assert plan.status.history[0].outcome == "RolledBack", "the release's record stays as it ended"
    assert "Reverted" in world.reasons()


def test_new_revision_after_a_rollback_starts_a_release() -> None:
    world = rolled_back()
    world.release(3)
    plan = world.step(100)
    assert plan.status.canary_revision == REV[3] and plan.status.phase == "Progressing"


# ---- manual verbs ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("action", "setup", "phase", "accepted", "check"),
    [
        ("promote", "stage0", "Progressing", True, lambda s: s.current_stage == 1),
        ("promote", "last", "Succeeded", True, lambda s: s.stable_revision == REV[2]),
        ("promoteFull", "stage0", "Promoting", True, lambda s: s.current_stage == 0),
        ("abort", "stage0", "Degraded", True, lambda s: s.abort_reason == "Aborted"),
        ("retry", "stage0", "Progressing", False, lambda s: s.current_stage == 0),
        ("resume", "stage0", "Progressing", False, lambda s: s.current_stage == 0),
        ("abort", "rest", "Succeeded", False, lambda s: s.canary_revision is None),
        ("promote", "rest", "Succeeded", False, lambda s: s.canary_revision is None),
        ("retry", "rest", "Succeeded", False, lambda s: s.canary_revision is None),
        ("promote", "paused", "Paused", False, lambda s: s.current_stage == 0),
        ("abort", "paused", "Degraded", True, lambda s: s.abort_reason == "Aborted"),
    ],
)
def test_manual_verbs(action: str, setup: str, phase: str, accepted: bool, check: Any) -> None:
    world = stable_world()
    if setup != "rest":
        started(world)
    if setup == "last":
        for t in (21, 22, 32, 33):
            world.step(t)
        assert world.state.current_stage == 2 and world.state.stage_ready_at
    if setup == "paused":
        world.spec = world.spec.model_copy(update={"paused": True})
        world.step(12)
    world.events.clear()
    world.request(action, "req-1")
    moment = 34 if setup == "last" else 15
    plan = world.step(moment)
    assert plan.status.phase == phase, plan.status.message
    last = plan.status.last_request
    assert last is not None and last.request_id == "req-1" and last.action == action
    assert last.outcome == ("Accepted" if accepted else "Ignored") and last.message
    assert last.at == f"2024-01-01T12:00:{moment:02d}Z"
    assert ("ControlAccepted" in world.reasons()) is accepted
    assert ("ControlIgnored" in world.reasons()) is not accepted
    assert check(plan.status)
    again = world.step(moment + 0.5)
    assert world.reasons().count("ControlAccepted") + world.reasons().count("ControlIgnored") == 1
    assert again.status.last_request == last, "handled once: the record stays as it was"


def test_a_request_is_handled_once_and_a_new_id_is_a_new_request() -> None:
    stages = [
        {"weight": 10, "pause": {"untilPromoted": True}},
        {"weight": 50, "pause": {"untilPromoted": True}},
    ]
    stages.append({"weight": 100, "pause": {"duration": "1s"}})
    world = stable_world(spec(strategy={"type": "canary", "canary": {"stages": stages}}))
    started(world)
    world.request("promote", "p-1")
    assert world.step(20).status.current_stage == 1
    for moment in (21, 22, 23):  # the same requestId in every later step: nothing more happens
        assert world.step(moment).status.current_stage == 1
    world.request("promote", "p-2")
    assert world.step(24).status.current_stage == 2
    assert world.reasons().count("ControlAccepted") == 2


def test_the_legacy_handled_request_id_is_respected_and_then_replaced() -> None:
    stages = [{"weight": 10, "pause": {"untilPromoted": True}}, {"weight": 100, "pause": {"duration": "1s"}}]
    world = stable_world(spec(strategy={"type": "canary", "canary": {"stages": stages}}))
    started(world)
    world.state = world.state.model_copy(update={"handled_request_id": "old-1"})  # an older release's
    world.request("promote", "old-1", field="control")
    plan = world.step(20)
    assert plan.status.current_stage == 0 and "ControlAccepted" not in world.reasons()
    assert plan.status.handled_request_id == "old-1" and plan.status.last_request is None
    world.request("promote", "new-1", field="control")  # the deprecated field is still read
    plan = world.step(21)
    assert plan.status.last_request is not None and plan.status.last_request.request_id == "new-1"
    assert plan.status.handled_request_id is None, "lastRequest replaces the legacy field"
    assert plan.status.current_stage == 1 and world.reasons().count("ControlAccepted") == 1


@pytest.mark.parametrize(
    ("action", "outcome", "message"),
    [
        ("abort", "Accepted", "rolling back"),
        ("resume", "Ignored", "the stage waits until promoted: use promote"),
        ("retry", "Ignored", "a release is in progress; retry applies to a rolled-back release"),
    ],
)
def test_accepted_and_ignored_requests_are_recorded_in_last_request(
    action: str, outcome: str, message: str
) -> None:
    stages = [{"weight": 10, "pause": {"untilPromoted": True}}, {"weight": 100, "pause": {"duration": "1s"}}]
    world = stable_world(spec(strategy={"type": "canary", "canary": {"stages": stages}}))
    started(world)
    world.request(action, "x-1")
    last = world.step(20).status.last_request
    assert last is not None
    assert last.model_dump(by_alias=True) == {
        "requestId": "x-1",
        "action": action,
        "outcome": outcome,
        "message": message,
        "at": "2024-01-01T12:00:20Z",
    }


def test_promote_full_grows_the_canary_then_takes_all_traffic() -> None:
    world = stable_world()
    started(world)
    world.request("promoteFull", "all")
    plan = world.step(12)
    assert plan.status.phase == "Promoting"
    assert [(d.colour, d.replicas) for d in plan.deployments] == [("blue", 4), ("green", 4)]
    assert plan.traffic == Traffic("blue", "green", 10), "traffic waits for the pods"
    plan = world.step(13)
    assert plan.status.phase == "Succeeded" and plan.traffic == Traffic("green", "blue", 0)


def test_abort_sends_traffic_back_and_scales_down_later() -> None:
    world = stable_world()
    started(world)
    world.request("abort", "stop")
    plan = world.step(12)
    assert plan.traffic == Traffic("blue", "green", 0) and plan.rollback
    assert "aborted by request stop" in plan.status.message
    assert world.replicas("green") == 1
    world.step(32)
    assert world.replicas("green") == 0 and world.state.phase == "RolledBack"


# ---- readiness, problems, odd input ---------------------------------------------------------------


def test_ready_false_when_the_serving_pods_are_gone() -> None:
    world = stable_world()
    world.held.add("blue")
    world.step(5)  # the plan re-applies blue with no pods available now
    plan = world.step(6)
    assert (plan.ready, plan.reason) == (False, "ServingPodsUnavailable")
    assert {c.type: c.status for c in plan.conditions}["Available"] is False


def test_workload_problem_changes_nothing() -> None:
    world = stable_world()
    before = world.state.model_copy(deep=True)
    plan = world.step(5, problem="spec.workloadRef: Deployment ns/web not found")
    assert (plan.ready, plan.reason, plan.deployments, plan.traffic) == (False, "WorkloadNotFound", (), None)
    assert plan.status.stable_revision == before.stable_revision


def test_corrupt_times_in_status_are_tolerated() -> None:
    world = stable_world()
    started(world)
    world.state.stage_ready_at = "not a time"
    world.state.blocked_since = "2024-13-45"
    plan = world.step(12)
    assert plan.status.phase in ("Progressing", "Paused")


def test_history_is_bounded() -> None:
    world = stable_world(spec(historyLimit=2))
    for version, t in ((2, 100), (3, 200), (1, 300)):
        world.release(version)
        for k in range(0, 60):
            world.step(t + k)
    assert len(world.state.history) == 2


def test_flags_stay_on_after_success_and_earlier_flags_survive_a_rollback() -> None:
    world = stable_world(
        analysed(featureFlags=[{"name": "old", "enableAtStage": 0}], analysis={"failureLimit": 0})
    )
    assert world.state.flags[0].enabled and world.state.flags[0].revision == REV[1]
    world.spec = world.spec.model_copy(
        update={
            "feature_flags": [
                *world.spec.feature_flags,
                type(world.spec.feature_flags[0])(name="new", enable_at_stage=1),
            ]
        }
    )
    started(world)
    plan = world.step(12, bad(12, REV[2]))
    assert plan.rollback
    assert {f.name: f.enabled for f in plan.status.flags} == {"old": True, "new": False}


def test_status_round_trips_through_the_wire_format() -> None:
    """What is written to status reads back into the same state (an operator restart resumes)."""
    world = stable_world(analysed())
    started(world)
    world.step(12, good(12, REV[2]))
    wire = world.state.model_dump(by_alias=True, mode="json")
    again = CanaryRolloutStatus.model_validate(wire)
    assert again == world.state
    desired = template_hash(template(2))
    plan_a = decide(world.spec, world.state, _observed(world, 25, desired))
    plan_b = decide(world.spec, again, _observed(world, 25, desired))
    assert plan_a.status == plan_b.status and plan_a.traffic == plan_b.traffic


def _observed(world: World, seconds: float, desired: str) -> Any:
    from fortress.rollouts.model import Observed

    return Observed(now=at(seconds), desired_revision=desired, deployments=dict(world.deployments))
