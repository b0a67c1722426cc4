"""The per-shard circuit breaker: a pure state machine driven by an injected clock."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from fortress.sharding.breaker import (
    BreakerConfig,
    BreakerState,
    CircuitBreaker,
    State,
    before_call,
    on_failure,
    on_success,
)

CONFIG = BreakerConfig(failure_threshold=3, open_duration=10.0)


@dataclass
class Clock:
    now: float = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.mark.parametrize(
    ("events", "expected", "allowed_next"),
    [
        ([], State.CLOSED, True),
        (["fail", "fail"], State.CLOSED, True),
        (["fail", "fail", "fail"], State.OPEN, False),
        (["fail", "fail", "ok", "fail", "fail"], State.CLOSED, True),  # success resets the count
        (["fail", "fail", "fail", "wait:9.9"], State.OPEN, False),
        (["fail", "fail", "fail", "wait:10"], State.OPEN, True),  # the next call becomes the probe
        (["fail", "fail", "fail", "wait:10", "call", "ok"], State.CLOSED, True),
        (["fail", "fail", "fail", "wait:10", "call", "fail"], State.OPEN, False),
        (["fail", "fail", "fail", "wait:10", "call", "fail", "wait:10"], State.OPEN, True),
        (["fail", "fail", "fail", "wait:10", "call"], State.HALF_OPEN, False),  # one probe at a time
        (["fail", "fail", "fail", "wait:10", "call", "wait:10"], State.HALF_OPEN, True),  # lost probe
        (["fail", "fail", "fail", "fail"], State.OPEN, False),  # late failures keep it open
    ],
)
def test_transitions(events: list[str], expected: State, allowed_next: bool) -> None:
    clock = Clock()
    breaker = CircuitBreaker(CONFIG, clock)
    for event in events:
        if event == "fail":
            breaker.failure()
        elif event == "ok":
            breaker.success()
        elif event == "call":
            assert breaker.before_call().allowed
        else:
            clock.now += float(event.split(":")[1])
    assert breaker.current is expected
    assert breaker.before_call().allowed is allowed_next


def test_refusals_say_when_to_retry() -> None:
    state = BreakerState(State.OPEN, failures=3, opened_at=100.0)
    decision = before_call(CONFIG, state, 104.0)
    assert not decision.allowed and decision.retry_after == pytest.approx(6.0)
    assert decision.state == state


def test_pure_functions_do_not_mutate() -> None:
    state = BreakerState()
    failed = on_failure(CONFIG, state, 1.0)
    assert state == BreakerState() and failed.failures == 1
    assert on_success(CONFIG, failed, 2.0) == BreakerState()
    assert on_success(CONFIG, state, 2.0) is state


def test_open_failure_keeps_the_opening_time() -> None:
    opened = BreakerState(State.OPEN, failures=3, opened_at=5.0)
    assert on_failure(CONFIG, opened, 7.0) == opened


def test_threshold_of_one_opens_immediately_and_zero_open_duration_probes_at_once() -> None:
    config = BreakerConfig(failure_threshold=1, open_duration=0.0)
    state = on_failure(config, BreakerState(), 0.0)
    assert state.state is State.OPEN
    decision = before_call(config, state, 0.0)
    assert decision.allowed and decision.state.state is State.HALF_OPEN


@pytest.mark.parametrize(("threshold", "duration"), [(0, 1.0), (-1, 1.0), (1, -0.5)])
def test_invalid_configuration(threshold: int, duration: float) -> None:
    with pytest.raises(ValueError):
        BreakerConfig(failure_threshold=threshold, open_duration=duration)


def test_reconfigure_applies_to_the_next_decision() -> None:
    clock = Clock()
    breaker = CircuitBreaker(CONFIG, clock)
    for _ in range(3):
        breaker.failure()
    clock.now = 2.0
    assert not breaker.before_call().allowed
    breaker.reconfigure(BreakerConfig(failure_threshold=3, open_duration=1.0))
    assert breaker.before_call().allowed
