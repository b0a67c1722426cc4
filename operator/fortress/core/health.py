"""The named checks and background tasks of one object's reconciler, and how they show in its status.

A reconciler does some of its work outside the step that returns its outcome (a projector, a
rebalance, a generation task) or inside a step but without raising (a 2PC recovery run, a DR check
that must still write its regions). When such a piece fails, the object must not go on looking
healthy: :meth:`Checks.failed` records the error (described, secrets named), counts it in
``fortress_operator_check_errors_total{kind,check,error}`` and wakes the loop; until
:meth:`Checks.passed` clears it, the loop writes ``Ready=Unknown, reason=CheckFailed`` (or keeps a
``Ready=False`` reason, adding the failure to its message) and posts a Warning Event once.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import replace
from typing import Final

from fortress import metrics
from fortress.core.errors import Secret, describe
from fortress.core.outcome import EventNote, Outcome

CHECK_FAILED: Final = "CheckFailed"


class Checks:
    """Which of one object's checks fail now, each with its described error."""

    def __init__(self, kind: str, wake: Callable[[], None] | None = None) -> None:
        self.kind = kind
        self._wake = wake
        self._failing: dict[str, str] = {}

    @property
    def failing(self) -> dict[str, str]:
        """Check name -> the error it failed with (secrets named, never shown)."""
        return dict(self._failing)

    def failed(self, check: str, error: BaseException, secrets: Iterable[Secret] = ()) -> str:
        """Record that ``check`` failed with ``error``; the described error."""
        text = describe(error, secrets)
        metrics.CHECK_ERRORS.labels(self.kind, check, type(error).__name__).inc()
        changed = self._failing.get(check) != text
        self._failing[check] = text
        if changed and self._wake is not None:
            self._wake()  # the next step shows it
        return text

    def passed(self, check: str) -> None:
        """``check`` ran without error: it no longer holds the object's Ready back."""
        if self._failing.pop(check, None) is not None and self._wake is not None:
            self._wake()

    def summary(self) -> str:
        return "; ".join(f"{check} failed: {text}" for check, text in sorted(self._failing.items()))

    def apply(self, outcome: Outcome) -> Outcome:
        """The outcome as written while a check fails: never Ready=True; a Warning Event per failure."""
        if not self._failing:
            return outcome
        summary = self.summary()
        events = outcome.events + tuple(
            EventNote("Warning", CHECK_FAILED, f"{check} failed: {text}")
            for check, text in sorted(self._failing.items())
        )
        if outcome.ready is False:  # already not Ready, for a reason of its own: keep it, add ours
            new = [
                f"{check} failed: {text}"
                for check, text in sorted(self._failing.items())
                if text not in outcome.message
            ]
            message = "; ".join([outcome.message, *new] if outcome.message else new)
            return replace(outcome, message=message, events=events)
        message = f"{summary}; {outcome.message}" if outcome.message else summary
        return replace(outcome, ready=None, reason=CHECK_FAILED, message=message, events=events)
