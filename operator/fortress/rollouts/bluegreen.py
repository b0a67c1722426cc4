"""The blue-green state machine (pure): the new colour comes up in full, is checked, then takes over.

The new colour is scaled to spec.replicas; once all its pods are available (``stageReadyAt``) the
preview Service points at it and, with prePromotionAnalysis, it is analysed every interval. It is
promoted (the stable Service switches colour in one write) after autoPromotionAfter, given a
successful measurement taken after it became available, or by a promote request; without
autoPromotionAfter it waits (phase Paused, UntilPromoted). A breach, an abort or the progress deadline
rolls back: the stable Service never moved, the new colour scales down after abortScaleDownDelay.
Feature flags switch on at promotion.
"""

from __future__ import annotations

import datetime as dt

from fortress.api.canaryrollout import BlueGreenStrategy, RequestAction, RolloutRequest
from fortress.core.time import parse, readable, stamp_ms
from fortress.rollouts.canary import rest_outputs
from fortress.rollouts.model import (
    AbortReason,
    DesiredDeployment,
    PauseReason,
    Phase,
    Traffic,
)
from fortress.rollouts.transitions import Draft, analysis_enabled


def settings(d: Draft) -> BlueGreenStrategy:
    return d.spec.strategy.blue_green or BlueGreenStrategy()


def analyses(d: Draft) -> bool:
    return analysis_enabled(d.spec) and settings(d).pre_promotion_analysis


def step(d: Draft, request: RolloutRequest | None) -> None:
    """Advance an active blue-green release."""
    s = d.s
    s.current_stage = 0
    if request is not None:
        _request(d, request)
        if d.rolled_back or d.phase == Phase.SUCCEEDED:
            return
    sample = d.obs.analysis
    measured = sample is not None and sample.revision == s.canary_revision and analyses(d)
    if measured and d.phase != Phase.PROMOTING and sample is not None and d.record_analysis(sample):
        return
    view = d.obs.view(d.canary_colour)
    replicas = d.spec.replicas
    if d.phase == Phase.PROMOTING:
        if view.serves(s.canary_revision, replicas):
            d.succeed()
            return
        _wait_for_pods(d, view.available, parse(s.blocked_since) or d.now)
        return
    if d.spec.paused:
        d.set_pause(PauseReason.PAUSED)
        d.waiting = "paused (spec.paused)"
        return
    if s.pause_reason == PauseReason.PAUSED.value:
        d.set_pause(None)
    if s.stage_ready_at is None:
        if not view.serves(s.canary_revision, replicas):
            if s.pause_reason is None:
                _wait_for_pods(d, view.available, parse(s.stage_started_at) or d.now)
            return
        s.stage_ready_at = stamp_ms(d.now)
        d.step(0, 0)
        d.event("PreviewReady", f"{s.canary_revision} on {d.canary_colour} available with {replicas} pods")
    if s.pause_reason == PauseReason.INCONCLUSIVE.value:
        d.waiting = "paused: analysis inconclusive; resume, promote or abort"
        return
    auto = settings(d).auto_promotion_after
    if auto is None:
        d.set_pause(PauseReason.UNTIL_PROMOTED)
        d.waiting = "until promoted"
        return
    if s.pause_reason == PauseReason.UNTIL_PROMOTED.value:
        d.set_pause(None)
    ready = parse(s.stage_ready_at) or d.now
    end = ready + d.delay(auto)
    if d.now < end:
        d.wake(end)
        d.waiting = f"promoting automatically in {readable(end - d.now)}"
        return
    if analyses(d) and not d.analysis_ok_since(ready):
        d.waiting = "waiting for a successful analysis of the new colour"
        if d.blocked(end):
            d.rollback(
                AbortReason.DEADLINE, f"no successful analysis before promotion for {d.deadline_text()}"
            )
        return
    d.succeed()


def _wait_for_pods(d: Draft, available: int, since: dt.datetime) -> None:
    replicas = d.spec.replicas
    d.waiting = f"waiting for {replicas} pods of {d.canary_colour} ({available} available)"
    d.poll = True
    if d.blocked(since):
        d.rollback(
            AbortReason.DEADLINE,
            f"{d.canary_colour} had {available}/{replicas} pods available after {d.deadline_text()}",
        )


def _request(d: Draft, request: RolloutRequest) -> None:
    s = d.s
    action = request.action
    if action == RequestAction.ABORT:
        d.accept(request, "rolling back")
        d.rollback(AbortReason.ABORTED, f"aborted by request {request.request_id}")
    elif action in (RequestAction.PROMOTE, RequestAction.PROMOTE_FULL):
        if d.phase == Phase.PROMOTING:
            d.ignore(request, "already promoting")
        elif d.spec.paused and action == RequestAction.PROMOTE:
            d.ignore(request, "the rollout is paused (spec.paused); resume it first")
        elif s.stage_ready_at and d.obs.view(d.canary_colour).serves(s.canary_revision, d.spec.replicas):
            d.accept(request, "switching traffic")
            d.succeed()
        else:
            d.accept(request, "switching traffic once the new colour is available")
            d.begin_promoting()
    elif action == RequestAction.RESUME:
        if s.pause_reason == PauseReason.INCONCLUSIVE.value:
            d.accept(request, "resuming despite inconclusive analysis")
            s.inconclusive_measurements = 0
            d.set_pause(None)
        else:
            d.ignore(request, "not paused by analysis")
    else:
        d.ignore(request, "a release is in progress; retry applies to a rolled-back release")


def outputs(d: Draft, scaled_down: set[str]) -> tuple[tuple[DesiredDeployment, ...], Traffic, int | None]:
    """Both colours at full size during a release; the Service switches only at promotion."""
    s = d.s
    stable, canary = d.stable_colour, d.canary_colour
    if d.phase in (Phase.PROGRESSING, Phase.PAUSED, Phase.PROMOTING) and s.canary_revision:
        deployments = (
            DesiredDeployment(stable, s.stable_revision, d.spec.replicas),
            DesiredDeployment(canary, s.canary_revision, d.spec.replicas),
        )
        return deployments, Traffic(stable=stable, canary=None, weight=0, preview=canary), None
    return rest_outputs(d, scaled_down), Traffic(stable=stable, canary=None, weight=0, preview=stable), None
