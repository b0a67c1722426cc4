"""Per-shard circuit breaker: a pure state machine, plus a small holder with an injected clock.

Closed: calls pass; ``failure_threshold`` consecutive failures open the circuit. Open: calls are refused
until ``open_duration`` has passed since it opened; the next call then moves it to HalfOpen and is let
through as the single probe. HalfOpen: other calls are refused while the probe is in flight; a success
closes the circuit, a failure opens it again for another ``open_duration``. A probe that never reports
(its caller was cancelled) is given up after ``open_duration`` and another probe is allowed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from enum import StrEnum


class State(StrEnum):
    CLOSED = "Closed"
    OPEN = "Open"
    HALF_OPEN = "HalfOpen"


@dataclass(frozen=True)
class BreakerConfig:
    failure_threshold: int = 5
    open_duration: float = 30.0  # seconds

    def __post_init__(self) -> None:
        if self.failure_threshold < 1:
            raise ValueError(f"failure_threshold must be >= 1, got {self.failure_threshold}")
        if self.open_duration < 0:
            raise ValueError(f"open_duration must be >= 0 seconds, got {self.open_duration}")


@dataclass(frozen=True)
class BreakerState:
    state: State = State.CLOSED
    failures: int = 0  # consecutive failures while closed
    opened_at: float | None = None  # when it last opened
    probe_started: float | None = None  # when the half-open probe was let through


@dataclass(frozen=True)
class Decision:
    allowed: bool
    state: BreakerState
    retry_after: float = 0.0  # seconds until a call may be let through, when refused


def before_call(config: BreakerConfig, state: BreakerState, now: float) -> Decision:
    """Whether a call may proceed now, and the state after deciding."""
    if state.state is State.CLOSED:
        return Decision(True, state)
    if state.state is State.OPEN:
        opened = state.opened_at if state.opened_at is not None else now
        if now - opened >= config.open_duration:
            return Decision(True, replace(state, state=State.HALF_OPEN, probe_started=now))
        return Decision(False, state, retry_after=config.open_duration - (now - opened))
    started = state.probe_started if state.probe_started is not None else now
    if now - started >= config.open_duration:  # the probe never reported: allow another one
        return Decision(True, replace(state, probe_started=now))
    return Decision(False, state, retry_after=config.open_duration - (now - started))


def on_success(config: BreakerConfig, state: BreakerState, now: float) -> BreakerState:
    """A call succeeded: close (or stay closed) and forget past failures."""
    del config, now
    if state.state is State.CLOSED and state.failures == 0:
        return state
    return BreakerState()


def on_failure(config: BreakerConfig, state: BreakerState, now: float) -> BreakerState:
    """A call failed because the shard is unavailable: count it, open when the threshold is reached."""
    if state.state is State.HALF_OPEN:
        return BreakerState(State.OPEN, failures=state.failures, opened_at=now)
    if state.state is State.OPEN:
        return state  # a call admitted before it opened: keep the original opening time
    failures = state.failures + 1
    if failures >= config.failure_threshold:
        return BreakerState(State.OPEN, failures=failures, opened_at=now)
    return replace(state, failures=failures)


class CircuitBreaker:
    """The state machine above with its state held, reading time from ``clock`` (monotonic seconds)."""

    def __init__(self, config: BreakerConfig, clock: Callable[[], float]) -> None:
        self.config = config
        self._clock = clock
        self.state = BreakerState()

    def before_call(self) -> Decision:
        decision = before_call(self.config, self.state, self._clock())
        self.state = decision.state
        return decision

    def success(self) -> None:
        self.state = on_success(self.config, self.state, self._clock())

    def failure(self) -> None:
        self.state = on_failure(self.config, self.state, self._clock())

    @property
    def current(self) -> State:
        """The state as a caller would find it now (Open turns HalfOpen-eligible after open_duration)."""
        return self.state.state

    def reconfigure(self, config: BreakerConfig) -> None:
        self.config = config
