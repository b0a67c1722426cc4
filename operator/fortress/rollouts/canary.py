"""The staged canary state machine (pure): stages, pauses, analysis gates, promotion, rollback.

One stage's life: entered (canary scaled to its pods, traffic still at the previous weight) -> the
canary pods are available, the stage's weight is applied (``stageReadyAt``) -> the pause holds (a
duration, or until promoted) -> the latest measurement, taken after the weight was applied, is
successful -> the next stage, or promotion after the last (100 %). Traffic never points at pods that
are not available; a rollback sends it back to 100 % stable in the same decision.

Manual requests (spec.request, once per requestId): promote = next stage now (from the last stage:
promotion), promoteFull = scale the canary to full size and promote without more stages or analysis,
abort = rollback, resume = leave a pause caused by inconclusive analysis. spec.paused freezes progress
(not analysis: a breach while paused still rolls back). The progress deadline counts only while the
release waits on something outside its plan (pods, a conclusive analysis), never during pauses.
"""

from __future__ import annotations

import datetime as dt

from fortress.api.canaryrollout import RequestAction, RolloutRequest
from fortress.core.time import parse, readable, stamp_ms
from fortress.rollouts.model import (
    AbortReason,
    DesiredDeployment,
    PauseReason,
    Phase,
    Traffic,
)
from fortress.rollouts.transitions import Draft, applied_stage_of, applied_weight, pods_for, stages_of


def step(d: Draft, request: RolloutRequest | None) -> None:
    """Advance an active canary release (phase Progressing, Paused or Promoting)."""
    stages = stages_of(d.spec)
    s = d.s
    index = min(max(s.current_stage or 0, 0), len(stages) - 1)
    moved = index != s.current_stage
    s.current_stage = index
    if s.stage_ready_at and (moved or s.canary_weight != applied_weight(d.spec, stages[index].weight)):
        # stages, weights or replicas changed under the stage: enter it again (pods first, then weight)
        s.stage_ready_at = None
        s.stage_started_at = stamp_ms(d.now)
        s.blocked_since = stamp_ms(d.now)
    if request is not None:
        _request(d, request)
        if d.rolled_back:
            return
    sample = d.obs.analysis
    measured = sample is not None and sample.revision == s.canary_revision and d.phase != Phase.PROMOTING
    if measured and sample is not None and d.record_analysis(sample):
        return
    if d.phase == Phase.PROMOTING:
        promoting(d)
        return
    for _ in range(len(stages) + 1):  # a stage whose pods are already there is applied at once
        if not _stage(d):
            return


def _request(d: Draft, request: RolloutRequest) -> None:
    s = d.s
    stages = stages_of(d.spec)
    index = s.current_stage or 0
    action = request.action
    if action == RequestAction.ABORT:
        d.accept(request, "rolling back")
        d.rollback(AbortReason.ABORTED, f"aborted by request {request.request_id}")
    elif action == RequestAction.PROMOTE_FULL:
        if d.phase == Phase.PROMOTING:
            d.ignore(request, "already promoting")
        else:
            d.accept(request, "skipping the remaining stages")
            d.begin_promoting()
    elif action == RequestAction.PROMOTE:
        if d.phase == Phase.PROMOTING:
            d.ignore(request, "already promoting")
        elif d.spec.paused:
            d.ignore(request, "the rollout is paused (spec.paused); resume it first")
        elif index + 1 < len(stages):
            d.accept(request, f"to stage {index + 2}/{len(stages)}")
            enter(d, index + 1)
        elif s.stage_ready_at:
            d.accept(request, "promoting")
            d.succeed()
        else:
            d.accept(request, "promoting fully")
            d.begin_promoting()
    elif action == RequestAction.RESUME:
        if s.pause_reason == PauseReason.INCONCLUSIVE.value:
            d.accept(request, "resuming despite inconclusive analysis")
            s.inconclusive_measurements = 0
            d.set_pause(None)
        elif s.pause_reason == PauseReason.UNTIL_PROMOTED.value:
            d.ignore(request, "the stage waits until promoted: use promote")
        elif d.spec.paused:
            d.ignore(request, "spec.paused is true: set it to false")
        else:
            d.ignore(request, "not paused")
    else:
        d.ignore(request, "a release is in progress; retry applies to a rolled-back release")


def enter(d: Draft, index: int) -> None:
    s = d.s
    stages = stages_of(d.spec)
    s.current_stage = index
    s.stage_started_at = stamp_ms(d.now)
    s.blocked_since = stamp_ms(d.now)
    s.stage_ready_at = None
    if s.pause_reason in (PauseReason.UNTIL_PROMOTED.value, PauseReason.INCONCLUSIVE.value):
        s.inconclusive_measurements = 0
        d.set_pause(None)  # a new stage (a promote, or the plan) leaves a stage's pause behind
    weight = stages[index].weight
    _, pods = pods_for(d.spec, weight)
    d.event("StageStarted", f"stage {index + 1}/{len(stages)} ({weight} %): {d.canary_colour} to {pods} pods")


def _stage(d: Draft) -> bool:
    """One pass over the current stage; True when it advanced and the next stage should be looked at."""
    s = d.s
    spec = d.spec
    stages = stages_of(spec)
    index = s.current_stage or 0
    stage = stages[index]
    if spec.paused:
        d.set_pause(PauseReason.PAUSED)
        d.waiting = "paused (spec.paused)"
        return False
    if s.pause_reason == PauseReason.PAUSED.value:
        d.set_pause(None)
    if s.stage_ready_at is None:
        _, pods = pods_for(spec, stage.weight)
        view = d.obs.view(d.canary_colour)
        if not view.serves(s.canary_revision, pods):
            d.waiting = f"waiting for {pods} pods of {d.canary_colour} ({view.available} available)"
            d.poll = True
            started = parse(s.stage_started_at) or d.now
            if s.pause_reason is None and d.blocked(started):
                d.rollback(
                    AbortReason.DEADLINE,
                    f"{d.canary_colour} had {view.available}/{pods} pods available after {d.deadline_text()}",
                )
            return False
        s.stage_ready_at = stamp_ms(d.now)
        s.canary_weight = applied_weight(spec, stage.weight)
        d.step(index, s.canary_weight)
        d.event(
            "StageReached",
            f"stage {index + 1}/{len(stages)}: {s.canary_weight} % of traffic to {s.canary_revision} "
            f"on {d.canary_colour}",
        )
    if s.pause_reason == PauseReason.INCONCLUSIVE.value:
        d.waiting = "paused: analysis inconclusive; resume, promote or abort"
        return False
    if stage.pause.until_promoted:
        d.set_pause(PauseReason.UNTIL_PROMOTED)
        d.waiting = "until promoted"
        return False
    if s.pause_reason == PauseReason.UNTIL_PROMOTED.value:
        d.set_pause(None)
    ready = parse(s.stage_ready_at) or d.now
    end = ready + (d.delay(stage.pause.duration) if stage.pause.duration else dt.timedelta(0))
    if d.now < end:
        d.wake(end)
        d.waiting = f"holding {readable(end - d.now)} more"
        return False
    if not d.analysis_ok_since(ready):
        d.waiting = "waiting for a successful analysis taken at this stage"
        if d.blocked(end):
            d.rollback(
                AbortReason.DEADLINE,
                f"no successful analysis at stage {index + 1} for {d.deadline_text()}",
            )
        return False
    if index + 1 < len(stages):
        enter(d, index + 1)
        return True
    d.succeed()
    return False


def promoting(d: Draft) -> None:
    """Full promotion: the canary grows to full size, then takes all traffic."""
    s = d.s
    view = d.obs.view(d.canary_colour)
    if view.serves(s.canary_revision, d.spec.replicas):
        d.succeed()
        return
    d.waiting = f"waiting for {d.spec.replicas} pods of {d.canary_colour} ({view.available} available)"
    d.poll = True
    if d.blocked(parse(s.blocked_since) or d.now):
        have = f"{view.available}/{d.spec.replicas}"
        detail = f"{d.canary_colour} had {have} pods available after {d.deadline_text()}"
        d.rollback(AbortReason.DEADLINE, detail)


def outputs(d: Draft, scaled_down: set[str]) -> tuple[tuple[DesiredDeployment, ...], Traffic, int | None]:
    """Deployments and traffic the state asks for, and the stage whose weight is applied."""
    s = d.s
    spec = d.spec
    stable, canary = d.stable_colour, d.canary_colour
    phase = d.phase
    if phase in (Phase.PROGRESSING, Phase.PAUSED, Phase.PROMOTING) and s.canary_revision:
        stages = stages_of(spec)
        applied = applied_stage_of(s)
        applied_w = stages[min(applied, len(stages) - 1)].weight if applied is not None else 0
        stable_pods, _ = pods_for(spec, applied_w)
        if phase == Phase.PROMOTING:
            canary_pods = spec.replicas
        else:
            _, canary_pods = pods_for(spec, stages[s.current_stage or 0].weight)
        deployments = (
            DesiredDeployment(stable, s.stable_revision, stable_pods),
            DesiredDeployment(canary, s.canary_revision, canary_pods),
        )
        return deployments, Traffic(stable=stable, canary=canary, weight=applied_w), applied
    return rest_outputs(d, scaled_down), Traffic(stable=stable, canary=canary, weight=0), None


def rest_outputs(d: Draft, scaled_down: set[str]) -> tuple[DesiredDeployment, ...]:
    """No release in progress: the stable colour at full size; the other one held until its scale-down."""
    s = d.s
    canary = d.canary_colour
    if s.scale_down_colour == canary and canary not in scaled_down:
        other_pods = d.obs.view(canary).replicas
    else:
        other_pods = 0
    return (
        DesiredDeployment(d.stable_colour, s.stable_revision, d.spec.replicas),
        DesiredDeployment(canary, None, other_pods),
    )
