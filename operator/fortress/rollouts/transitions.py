"""Transitions shared by the canary and blue-green planners: a draft of the next state (pure).

A ``Draft`` starts as a copy of the state read from status and is changed by the transitions below;
nothing here reads a clock or does I/O: ``now`` is the observation's.

Analysis results and the missing-data policy (``spec.analysis.missingData``):

====================  ==============  ====================  ==============
query outcome         fail            inconclusive (default)  ignore
====================  ==============  ====================  ==============
value within limits   Successful      Successful            Successful
value breaks a limit  Failed          Failed                Failed
no data (empty, NaN)  Failed          Inconclusive          Skipped
query error           Failed          Inconclusive          Inconclusive
====================  ==============  ====================  ==============

A measurement is Failed when any metric failed, else Inconclusive when any was, else Successful.
More than ``failureLimit`` failed measurements roll back. An inconclusive measurement holds the stage
(a stage never advances on absent data: it needs a successful measurement taken after its weight was
applied); ``inconclusiveLimit`` consecutive ones pause the release (phase Paused, reason
InconclusiveAnalysis) until a successful measurement or a ``resume`` request. A query error is never
"ignored": a broken query is not absence of traffic.
"""

from __future__ import annotations

import datetime as dt

from fortress.api.canaryrollout import (
    CanaryRolloutSpec,
    CanaryRolloutStatus,
    CanaryStrategy,
    FlagState,
    MetricResult,
    MissingData,
    RolloutRecord,
    RolloutRequest,
    Stage,
    StepRecord,
    StrategyType,
)
from fortress.api.common import LastRequest, RequestOutcome
from fortress.core.outcome import EventNote
from fortress.core.requests import handled, handled_id, pending
from fortress.core.time import parse, parse_duration, readable, stamp_ms
from fortress.rollouts.model import (
    ACTIVE,
    BLUE,
    FAILED,
    AbortReason,
    AnalysisSample,
    Observed,
    PauseReason,
    Phase,
    Raw,
    Verdict,
    other,
)
from fortress.rollouts.traffic.replicas import effective_weight, split

MAX_STEPS = 50
POLL_SECONDS = 5.0  # while waiting for pods; a Deployment watch wakes the rollout sooner


def stages_of(spec: CanaryRolloutSpec) -> list[Stage]:
    return list((spec.strategy.canary or CanaryStrategy()).stages)


def analysis_enabled(spec: CanaryRolloutSpec) -> bool:
    """Analysis needs a Prometheus address; without one, stages advance on their pauses alone."""
    return spec.analysis.prometheus_address is not None


def pods_for(spec: CanaryRolloutSpec, weight: int) -> tuple[int, int]:
    """(stable pods, canary pods) for a canary ``weight`` with the spec's router."""
    replicas = spec.replicas
    if spec.traffic_routing.type == "replicas":
        return split(replicas, weight)
    if weight <= 0 or replicas <= 0:
        return replicas, 0
    if weight >= 100:
        return replicas, replicas
    return replicas, max(1, -(-replicas * weight // 100))


def applied_weight(spec: CanaryRolloutSpec, weight: int) -> int:
    """The share of traffic a nominal weight really gets (the replicas router rounds to pods)."""
    if spec.traffic_routing.type == "replicas":
        return effective_weight(spec.replicas, weight)
    return weight


def minimum_available(replicas: int) -> int:
    """Pods that must be available for a colour to count as serving (Deployment default: 25 % may be down)."""
    return replicas - replicas // 4


class Draft:
    """The next state under construction, with the events and records the decision produces."""

    def __init__(self, spec: CanaryRolloutSpec, state: CanaryRolloutStatus, observed: Observed) -> None:
        self.spec = spec
        self.obs = observed
        self.now = observed.now
        self.s = state.model_copy(deep=True)
        self.events: list[EventNote] = []
        self.finished: list[RolloutRecord] = []
        self.wakes: list[dt.datetime] = []
        self.rolled_back = False
        self.waiting = ""  # what the release waits for, for the message
        self.poll = False

    # ---- basics ------------------------------------------------------------------------------------

    @property
    def phase(self) -> Phase | None:
        try:
            return Phase(self.s.phase) if self.s.phase else None
        except ValueError:
            return None

    def set_phase(self, phase: Phase) -> None:
        self.s.phase = phase.value

    @property
    def stable_colour(self) -> str:
        return self.s.stable_colour or BLUE

    @property
    def canary_colour(self) -> str:
        return other(self.stable_colour)

    @property
    def canary_strategy(self) -> bool:
        return self.spec.strategy.type == StrategyType.CANARY

    def event(self, reason: str, message: str, warning: bool = False) -> None:
        self.events.append(EventNote("Warning" if warning else "Normal", reason, message))

    def wake(self, moment: dt.datetime) -> None:
        self.wakes.append(moment)

    def delay(self, text: str) -> dt.timedelta:
        return parse_duration(text)

    # ---- manual requests ---------------------------------------------------------------------------

    def take_request(self) -> RolloutRequest | None:
        """spec.request (or spec.control) when its requestId was not handled yet; recorded as handled."""
        recorded = self.s.model_dump(by_alias=True, include={"last_request", "handled_request_id"})
        request = pending(self.spec.manual_request, handled_id(recorded))
        if request is not None:
            self.mark_handled(request, RequestOutcome.ACCEPTED, "")  # exactly once, whatever follows
        return request

    def mark_handled(self, request: RolloutRequest, outcome: RequestOutcome, message: str) -> None:
        """Record ``status.lastRequest`` (the legacy handledRequestId is dropped once it is written)."""
        record = handled(request.request_id, request.action, outcome, message, self.now)
        self.s.last_request = LastRequest.model_validate(record)
        self.s.handled_request_id = None

    def accept(self, request: RolloutRequest, what: str) -> None:
        self.mark_handled(request, RequestOutcome.ACCEPTED, what)
        self.event("ControlAccepted", f"{request.action} (request {request.request_id}): {what}")

    def ignore(self, request: RolloutRequest, why: str) -> None:
        self.mark_handled(request, RequestOutcome.IGNORED, why)
        self.event("ControlIgnored", f"{request.action} (request {request.request_id}) ignored: {why}", True)

    # ---- history -----------------------------------------------------------------------------------

    def record(self, revision: str | None, outcome: str, reason: str) -> None:
        record = RolloutRecord(
            revision=revision or "unknown",
            outcome=outcome,
            reason=reason,
            started_at=self.s.rollout_started_at,
            finished_at=stamp_ms(self.now),
        )
        self.finished.append(record)
        self.s.history = [record, *self.s.history][: self.spec.history_limit]

    def step(self, stage: int, weight: int) -> None:
        record = StepRecord(stage=stage, weight=weight, at=stamp_ms(self.now))
        self.s.steps = [*self.s.steps, record][-MAX_STEPS:]

    # ---- the release's life ------------------------------------------------------------------------

    def initial(self, revision: str) -> None:
        """First release: nothing to compare with, so the revision becomes the stable colour directly."""
        s = self.s
        if s.stable_revision is not None:
            self.record(s.stable_revision, "Superseded", f"superseded by {revision} before it was available")
        s.stable_revision = revision
        s.stable_colour = s.stable_colour or BLUE
        s.canary_revision = None
        s.rollout_started_at = stamp_ms(self.now)
        s.blocked_since = stamp_ms(self.now)
        s.abort_reason = None
        s.pause_reason = None
        s.steps = []
        self.set_phase(Phase.PROGRESSING)
        pods = self.spec.replicas
        self.event("InitialRelease", f"releasing {revision} on {self.stable_colour} ({pods} pods)")

    def initial_step(self) -> None:
        """An initial release waits for its pods; past the deadline it is Degraded (no stable to go to)."""
        s = self.s
        view = self.obs.view(self.stable_colour)
        if view.serves(s.stable_revision, self.spec.replicas):
            self.record(s.stable_revision, "Succeeded", "initial release available")
            self.set_phase(Phase.SUCCEEDED)
            s.blocked_since = None
            s.abort_reason = None
            colour = self.stable_colour
            self.event("Available", f"{s.stable_revision} on {colour} serves with {view.available} pods")
            return
        pods, colour = self.spec.replicas, self.stable_colour
        self.waiting = f"waiting for {pods} pods of {colour} ({view.available} available)"
        self.poll = True
        started = parse(s.rollout_started_at) or self.now
        if self.phase == Phase.PROGRESSING and self.blocked(started):
            self.set_phase(Phase.DEGRADED)
            s.abort_reason = AbortReason.DEADLINE.value
            self.event(
                AbortReason.DEADLINE.value,
                f"{self.stable_colour} had {view.available}/{self.spec.replicas} pods available after "
                f"{readable(self.delay(self.spec.progress_deadline))}",
                warning=True,
            )

    def start(self, revision: str) -> None:
        """A new release of ``revision`` on the colour that is not stable."""
        s = self.s
        colour = self.canary_colour
        s.canary_revision = revision
        s.current_stage = 0
        s.stage_started_at = stamp_ms(self.now)
        s.stage_ready_at = None
        s.rollout_started_at = stamp_ms(self.now)
        s.blocked_since = stamp_ms(self.now)
        s.pause_reason = None
        s.abort_reason = None
        s.failed_measurements = 0
        s.inconclusive_measurements = 0
        s.metrics = []
        s.last_analysis_at = None
        s.steps = []
        s.canary_weight = 0
        if s.scale_down_colour == colour:
            s.scale_down_colour = None
            s.scale_down_at = None
        self.set_phase(Phase.PROGRESSING)
        self.event(
            "RolloutStarted",
            f"releasing {revision} on {colour} ({self.spec.strategy.type}); "
            f"stable {s.stable_revision} on {self.stable_colour}",
        )

    def supersede(self, revision: str | None) -> None:
        """The spec changed mid-release: end it (traffic back to stable) and start ``revision`` if any."""
        s = self.s
        old = s.canary_revision
        by = f"revision {revision}" if revision else f"the stable revision {s.stable_revision}"
        self.record(old, "Superseded", f"superseded by {by}")
        self.event("Superseded", f"release of {old} superseded by {by}; traffic back to stable first")
        if revision is not None:
            self.start(revision)
            return
        self.clear_release()
        self.schedule_scale_down(self.canary_colour, self.spec.abort_scale_down_delay)
        self.set_phase(Phase.SUCCEEDED)

    def clear_release(self) -> None:
        s = self.s
        s.canary_revision = None
        s.current_stage = None
        s.stage_started_at = None
        s.stage_ready_at = None
        s.blocked_since = None
        s.pause_reason = None
        s.abort_reason = None
        s.canary_weight = None

    def schedule_scale_down(self, colour: str, delay: str) -> None:
        at = self.now + self.delay(delay)
        self.s.scale_down_colour = colour
        self.s.scale_down_at = stamp_ms(at)
        self.wake(at)

    def rollback(self, reason: AbortReason, detail: str) -> None:
        """Traffic back to 100 % stable now; the canary colour scales down after abortScaleDownDelay."""
        s = self.s
        revision = s.canary_revision
        self.record(revision, "RolledBack", f"{reason.value}: {detail}")
        s.abort_reason = reason.value
        s.pause_reason = None
        s.blocked_since = None
        s.canary_weight = 0
        self.set_phase(Phase.DEGRADED)
        self.schedule_scale_down(self.canary_colour, self.spec.abort_scale_down_delay)
        self.rolled_back = True
        self.event(
            "RolledBack",
            f"{revision} rolled back ({reason.value}): {detail}; {s.stable_revision} on {self.stable_colour} "
            f"serves 100 %; {self.canary_colour} scales down in {self.spec.abort_scale_down_delay}",
            warning=True,
        )

    def succeed(self) -> None:
        """Promotion: the canary colour becomes stable; the old colour scales down after scaleDownDelay."""
        s = self.s
        old_colour, new_colour = self.stable_colour, self.canary_colour
        started = parse(s.rollout_started_at)
        took = f" in {readable(self.now - started)}" if started else ""
        revision = s.canary_revision
        self.record(revision, "Succeeded", f"promoted{took}")
        s.stable_revision = revision
        s.stable_colour = new_colour
        self.clear_release()
        self.schedule_scale_down(old_colour, self.spec.scale_down_delay)
        self.set_phase(Phase.SUCCEEDED)
        self.event(
            "Promoted",
            f"{revision} on {new_colour} promoted{took}: serves 100 %; {old_colour} scales down in "
            f"{self.spec.scale_down_delay}",
        )

    def begin_promoting(self) -> None:
        self.set_phase(Phase.PROMOTING)
        self.s.pause_reason = None
        self.s.blocked_since = stamp_ms(self.now)
        self.event(
            "Promoting",
            f"promoting {self.s.canary_revision} fully: {self.canary_colour} to {self.spec.replicas} pods, "
            "then all traffic",
        )

    def set_pause(self, reason: PauseReason | None) -> None:
        s = self.s
        old = s.pause_reason
        wanted = reason.value if reason else None
        if old == wanted:
            if reason is not None:
                self.set_phase(Phase.PAUSED)
            return
        s.pause_reason = wanted
        if reason is not None:
            self.set_phase(Phase.PAUSED)
            self.event("Paused", f"paused at stage {(s.current_stage or 0) + 1}: {_PAUSE_TEXT[reason]}")
        else:
            self.set_phase(Phase.PROGRESSING)
            s.blocked_since = stamp_ms(self.now)  # the progress deadline restarts after a pause
            self.event("Resumed", f"resumed at stage {(s.current_stage or 0) + 1}")

    def blocked(self, since: dt.datetime) -> bool:
        """The release waits on something outside its plan since ``since``; True past the deadline."""
        start = since
        current = parse(self.s.blocked_since)
        if current is not None and current > start:
            start = current
        self.s.blocked_since = stamp_ms(start)
        deadline = self.delay(self.spec.progress_deadline)
        if self.now - start >= deadline:
            return True
        self.wake(start + deadline)
        return False

    def deadline_text(self) -> str:
        return f"{readable(self.delay(self.spec.progress_deadline))} (progressDeadline)"

    # ---- analysis ----------------------------------------------------------------------------------

    def record_analysis(self, sample: AnalysisSample) -> bool:
        """Record one measurement; True when it rolled the release back."""
        s = self.s
        policy = self.spec.analysis.missing_data
        results = []
        for m in sample.measurements:
            verdict = _verdict(m.raw, policy)
            results.append(
                MetricResult(
                    name=m.name,
                    value=m.value,
                    limit=m.limit,
                    result=verdict.value,
                    measured_at=stamp_ms(sample.at),
                    detail=m.detail or None,
                )
            )
        s.metrics = results
        s.last_analysis_at = stamp_ms(sample.at)
        failed = [r for r in results if r.result == Verdict.FAILED]
        if failed:
            s.failed_measurements = (s.failed_measurements or 0) + 1
            s.inconclusive_measurements = 0
            limit = self.spec.analysis.failure_limit
            what = "; ".join(f"{r.name} {r.detail or 'failed'}" for r in failed)
            where = self.where()
            if s.failed_measurements > limit:
                self.rollback(
                    AbortReason.ANALYSIS_FAILED,
                    f"{what} {where} ({s.failed_measurements} failed measurements, failureLimit {limit})",
                )
                return True
            tolerated = f"({s.failed_measurements} of {limit} tolerated)"
            self.event("AnalysisFailed", f"{what} {where} {tolerated}", warning=True)
        elif any(r.result == Verdict.INCONCLUSIVE for r in results):
            s.inconclusive_measurements = (s.inconclusive_measurements or 0) + 1
            limit = self.spec.analysis.inconclusive_limit
            if s.inconclusive_measurements >= limit and self.phase == Phase.PROGRESSING:
                self.set_pause(PauseReason.INCONCLUSIVE)
        else:
            s.inconclusive_measurements = 0
            if s.pause_reason == PauseReason.INCONCLUSIVE.value:
                self.set_pause(None)
        return False

    def analysis_ok_since(self, moment: dt.datetime) -> bool:
        """The latest measurement is successful and was taken after ``moment`` (or analysis is off)."""
        if not analysis_enabled(self.spec):
            return True
        last = parse(self.s.last_analysis_at)
        if last is None or last <= moment:
            return False
        return all(r.result in (Verdict.SUCCESSFUL, Verdict.SKIPPED) for r in self.s.metrics)

    def where(self) -> str:
        s = self.s
        if self.canary_strategy and s.current_stage is not None:
            stages = stages_of(self.spec)
            index = min(s.current_stage, len(stages) - 1)
            return f"at stage {index + 1}/{len(stages)} ({s.canary_weight or 0} %)"
        return "before promotion"

    # ---- housekeeping ------------------------------------------------------------------------------

    def housekeeping(self) -> set[str]:
        """Colours whose scale-down is due now (cleared from the state)."""
        s = self.s
        due: set[str] = set()
        at = parse(s.scale_down_at)
        if s.scale_down_colour and at is not None:
            if self.now >= at:
                due.add(s.scale_down_colour)
                self.event("ScaledDown", f"{s.scale_down_colour} scaled down to 0 pods")
                s.scale_down_colour = None
                s.scale_down_at = None
                if self.phase == Phase.DEGRADED and s.canary_revision:
                    self.set_phase(Phase.ROLLED_BACK)
            else:
                self.wake(at)
        elif s.scale_down_colour or s.scale_down_at:
            s.scale_down_colour = None
            s.scale_down_at = None
        return due

    def update_flags(self, applied_stage: int | None) -> None:
        """Flags on at their stage (blue-green: at promotion), kept after success, off on rollback."""
        s = self.s
        phase = self.phase
        previous = {f.name: f for f in s.flags}
        flags = []
        for flag in self.spec.feature_flags:
            before = previous.get(flag.name)
            was_on = before.enabled if before else False
            revision = before.revision if before else None
            if phase == Phase.SUCCEEDED:
                want = True
                revision = revision if was_on else s.stable_revision
            elif phase in ACTIVE and s.canary_revision:
                stage = applied_stage if self.canary_strategy else None
                reached = stage is not None and stage >= flag.enable_at_stage
                want = was_on or reached
                if not was_on and reached:
                    revision = s.canary_revision
            elif phase in FAILED and s.canary_revision:
                want = was_on and revision != s.canary_revision
            else:
                want = was_on
            if want != was_on:
                state = "on" if want else "off"
                self.event("FlagEnabled" if want else "FlagDisabled", f"feature flag {flag.name} {state}")
            flags.append(FlagState(name=flag.name, enabled=want, revision=revision if want else None))
        s.flags = flags


_PAUSE_TEXT = {
    PauseReason.UNTIL_PROMOTED: "until promoted",
    PauseReason.PAUSED: "spec.paused is true",
    PauseReason.INCONCLUSIVE: "analysis inconclusive (no data or query errors)",
}


def _verdict(raw: Raw, policy: str) -> Verdict:
    if raw == Raw.SUCCESSFUL:
        return Verdict.SUCCESSFUL
    if raw == Raw.FAILED:
        return Verdict.FAILED
    if policy == MissingData.FAIL:
        return Verdict.FAILED
    if raw == Raw.NO_DATA and policy == MissingData.IGNORE:
        return Verdict.SKIPPED
    return Verdict.INCONCLUSIVE


def applied_stage_of(state: CanaryRolloutStatus) -> int | None:
    """The stage whose weight is applied: the current one once ready, else the one before."""
    if state.current_stage is None:
        return None
    index = state.current_stage if state.stage_ready_at else state.current_stage - 1
    return index if index >= 0 else None


__all__ = ["Draft", "analysis_enabled", "applied_stage_of", "pods_for", "stages_of"]
