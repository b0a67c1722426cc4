"""``decide(spec, state, observed) -> Plan``: one pure decision for a CanaryRollout.

What Ready means: the stable version serves its traffic. Ready=True while a canary waits at a stage or
for promotion (the stable revision serves, its pods available: at least 75 % of them, the
Deployment's default); Ready=False before an initial release has its pods, when the serving colour
lost its pods, and after a rollback (the spec asks for a revision that was rejected: the reason names
the failed metric and value), until a retry or a new revision. ``Progressing`` is True while a release
runs (False with reason Succeeded or RolledBack once it ended) and ``Available`` reports the pods; so
``kubectl wait --for=condition=Progressing=False`` waits for the end of a release and
``--for=jsonpath='{.status.phase}'=Succeeded`` for its success.
"""

from __future__ import annotations

import datetime as dt

from fortress.api.canaryrollout import (
    BlueGreenStrategy,
    CanaryRolloutSpec,
    CanaryRolloutStatus,
    RequestAction,
    StrategyType,
)
from fortress.core.outcome import ConditionUpdate, EventNote
from fortress.core.time import parse, parse_duration
from fortress.rollouts import bluegreen, canary
from fortress.rollouts.model import (
    ACTIVE,
    FAILED,
    Observed,
    Phase,
    Plan,
)
from fortress.rollouts.transitions import (
    POLL_SECONDS,
    Draft,
    analysis_enabled,
    minimum_available,
    stages_of,
)

IDLE_SECONDS = 30.0
TOLERANCE = dt.timedelta(milliseconds=20)


def decide(spec: CanaryRolloutSpec, state: CanaryRolloutStatus, observed: Observed) -> Plan:
    """The next state, the Deployments and traffic it needs, and what to report."""
    d = Draft(spec, state, observed)
    strategy = canary if d.canary_strategy else bluegreen
    if observed.problem is not None or observed.desired_revision is None:
        return _summarise(d, strategy, set(), problem=observed.problem or "no pod template to release")
    desired = observed.desired_revision
    request = d.take_request()
    s = d.s
    phase = d.phase
    if s.stable_revision is None:
        d.initial(desired)
    elif phase in ACTIVE and s.canary_revision:
        if desired == s.stable_revision:
            d.supersede(None)
        elif desired != s.canary_revision:
            d.supersede(desired)
    elif phase in FAILED and s.canary_revision:
        if desired == s.stable_revision:  # the spec went back to what serves: nothing left to fix
            d.event("Reverted", f"spec back to the stable revision {desired}; {s.canary_revision} dropped")
            d.clear_release()
            d.set_phase(Phase.SUCCEEDED)
        elif desired != s.canary_revision:
            d.start(desired)
        elif request is not None and request.action == RequestAction.RETRY:
            d.accept(request, f"releasing {desired} again from the first stage")
            d.start(desired)
            request = None
    elif desired != s.stable_revision:
        if s.canary_revision is None and phase in (Phase.PROGRESSING, Phase.DEGRADED):
            d.initial(desired)  # the initial release never became available: replace it
        else:
            d.start(desired)
    elif phase is None:
        d.set_phase(Phase.SUCCEEDED)

    if d.phase in ACTIVE and s.canary_revision:
        strategy.step(d, request)
        request = None
    elif s.canary_revision is None and d.phase in (Phase.PROGRESSING, Phase.DEGRADED):
        d.initial_step()
    if request is not None:
        d.ignore(request, _why_ignored(d, request.action))
    scaled_down = d.housekeeping()
    return _summarise(d, strategy, scaled_down)


def _why_ignored(d: Draft, action: str) -> str:
    if action == RequestAction.RETRY:
        return "nothing to retry: no rolled-back release"
    if d.phase in FAILED:
        return "the release was rolled back; use retry"
    return "no release in progress"


def measuring(spec: CanaryRolloutSpec, state: CanaryRolloutStatus) -> bool:
    """Whether the release is analysed in its current state: the canary receives traffic, or the new
    blue-green colour is up (with prePromotionAnalysis)."""
    if not analysis_enabled(spec) or not state.canary_revision:
        return False
    if state.phase not in (Phase.PROGRESSING.value, Phase.PAUSED.value):
        return False
    if spec.strategy.type == StrategyType.CANARY:
        return (state.canary_weight or 0) > 0
    settings = spec.strategy.blue_green or BlueGreenStrategy()
    return bool(state.stage_ready_at) and settings.pre_promotion_analysis


def analysis_due(spec: CanaryRolloutSpec, state: CanaryRolloutStatus, now: dt.datetime) -> bool:
    """Whether the canary (or the new blue-green colour) should be measured now."""
    if not measuring(spec, state):
        return False
    last = parse(state.last_analysis_at)
    return last is None or now + TOLERANCE >= last + parse_duration(spec.analysis.interval)


def _summarise(d: Draft, strategy: object, scaled_down: set[str], problem: str | None = None) -> Plan:
    s = d.s
    spec = d.spec
    if problem is not None:
        if d.phase is None:
            d.set_phase(Phase.PROGRESSING)
        s.message = problem
        s.replicas = sum(view.replicas for view in d.obs.deployments.values() if view.exists)
        return Plan(
            status=s,
            deployments=(),
            traffic=None,
            ready=False,
            reason="WorkloadNotFound",
            conditions=(
                ConditionUpdate("Progressing", False, "WorkloadNotFound", problem),
                ConditionUpdate("Available", "Unknown", "WorkloadNotFound", problem),
            ),
            events=(EventNote("Warning", "WorkloadNotFound", problem),),
            requeue_after=POLL_SECONDS,
        )
    outputs = canary.outputs if strategy is canary else bluegreen.outputs
    deployments, traffic, applied = outputs(d, scaled_down)
    d.update_flags(applied)
    s.replicas = sum(x.replicas for x in deployments)  # the scale subresource's status.replicas
    phase = d.phase or Phase.SUCCEEDED
    initial = s.canary_revision is None and phase in (Phase.PROGRESSING, Phase.DEGRADED)
    stable_need = next((x.replicas for x in deployments if x.colour == d.stable_colour), spec.replicas)
    if phase in (Phase.SUCCEEDED,) or (traffic.canary and traffic.weight >= 100):
        serving_colour = traffic.canary if traffic.canary and traffic.weight >= 100 else d.stable_colour
    else:
        serving_colour = d.stable_colour
    serving_need = spec.replicas if serving_colour != d.stable_colour else stable_need
    view = d.obs.view(serving_colour)
    available = view.exists and view.available >= minimum_available(serving_need)
    pods = f"{serving_colour}: {view.available}/{serving_need} pods available"
    available_condition = ConditionUpdate(
        "Available", available, "ServingPodsAvailable" if available else "ServingPodsUnavailable", pods
    )

    message = _message(d, phase, pods)
    s.message = message
    if phase in ACTIVE and not initial:
        progressing = ConditionUpdate("Progressing", True, _progress_reason(d, phase), message)
    elif initial and phase == Phase.PROGRESSING:
        progressing = ConditionUpdate("Progressing", True, "InitialRelease", message)
    elif phase in FAILED or phase == Phase.DEGRADED:
        progressing = ConditionUpdate("Progressing", False, s.abort_reason or "RolledBack", message)
    else:
        progressing = ConditionUpdate("Progressing", False, "Succeeded", message)

    if phase in FAILED and s.canary_revision:
        ready, reason = False, s.abort_reason or "RolledBack"
    elif initial and phase == Phase.DEGRADED:
        ready, reason = False, s.abort_reason or "ProgressDeadlineExceeded"
    elif initial:
        ready, reason = available and phase == Phase.SUCCEEDED, "WaitingForPods"
    elif not available:
        ready, reason = False, "ServingPodsUnavailable"
    else:
        ready, reason = True, _ready_reason(phase)

    return Plan(
        status=s,
        deployments=deployments,
        traffic=None if initial and not _service_may_move(d) else traffic,
        ready=ready,
        reason=reason,
        conditions=(progressing, available_condition),
        events=tuple(d.events),
        finished=tuple(d.finished),
        requeue_after=_requeue(d),
        rollback=d.rolled_back,
    )


def _service_may_move(d: Draft) -> bool:
    """An initial release points the Service at its colour only once its pods serve (takeover-safe)."""
    return d.obs.view(d.stable_colour).serves(d.s.stable_revision, d.spec.replicas)


def _progress_reason(d: Draft, phase: Phase) -> str:
    if phase == Phase.PAUSED:
        return d.s.pause_reason or "Paused"
    if phase == Phase.PROMOTING:
        return "Promoting"
    return "CanaryProgressing" if d.canary_strategy else "PreviewProgressing"


def _ready_reason(phase: Phase) -> str:
    return {
        Phase.SUCCEEDED: "StableServing",
        Phase.PROGRESSING: "StableServingCanaryProgressing",
        Phase.PAUSED: "StableServingCanaryPaused",
        Phase.PROMOTING: "Promoting",
    }.get(phase, "StableServing")


def _message(d: Draft, phase: Phase, pods: str) -> str:
    s = d.s
    stable = f"{s.stable_revision} ({d.stable_colour})"
    waiting = f"; {d.waiting}" if d.waiting else ""
    if s.canary_revision is None and phase == Phase.PROGRESSING:
        return f"initial release {stable}{waiting}"
    if s.canary_revision is None and phase == Phase.DEGRADED:
        return f"initial release {stable} not available within the progress deadline{waiting}"
    if phase in ACTIVE and s.canary_revision:
        release = f"{s.canary_revision} ({d.canary_colour})"
        if d.canary_strategy:
            stages = stages_of(d.spec)
            index = min(s.current_stage or 0, len(stages) - 1)
            where = f"stage {index + 1}/{len(stages)}, {s.canary_weight or 0} % to canary {release}"
        else:
            where = f"new colour {release}"
        return f"{phase.value}: {where}; stable {stable}{waiting}"
    if phase in FAILED and s.canary_revision:
        last = s.history[0] if s.history else None
        why = last.reason if last and last.revision == s.canary_revision and last.reason else s.abort_reason
        later = ""
        if s.scale_down_colour and s.scale_down_at:
            later = f"; {s.scale_down_colour} scales down at {s.scale_down_at}"
        return f"rolled back {s.canary_revision}: {why}; stable {stable} serves 100 %{later}"
    return f"{stable} serves 100 % ({pods})"


def _requeue(d: Draft) -> float:
    moments = list(d.wakes)
    s = d.s
    if measuring(d.spec, s):
        last = parse(s.last_analysis_at)
        moments.append(d.now if last is None else last + parse_duration(d.spec.analysis.interval))
    delay = min(((m - d.now).total_seconds() for m in moments), default=IDLE_SECONDS)
    if d.poll:
        # Waiting for pods: a Deployment watch wakes the rollout at once; polling backs off from
        # 0.25 s to POLL_SECONDS for APIs whose watch is missing or slow.
        since = parse(s.blocked_since) or d.now
        waited = max(0.0, (d.now - since).total_seconds())
        delay = min(delay, max(0.25, min(POLL_SECONDS, waited / 4)))
    return max(0.05, min(delay, IDLE_SECONDS))


__all__ = ["analysis_due", "decide", "measuring"]
