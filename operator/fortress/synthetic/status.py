"""What a SyntheticDataset's status says (pure): generating, ready, refused, and the decoy watch."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from fortress.core.outcome import ConditionUpdate, EventNote, Outcome
from fortress.core.time import readable
from fortress.synthetic.plan import DecoyVerdict

PROGRESSING: Final = "Progressing"
DECOY_TOUCHED: Final = "DecoyTouched"
RETRY_SECONDS: Final = 10.0
PROGRESS_SECONDS: Final = 5.0
READY_SECONDS: Final = 300.0


@dataclass(frozen=True)
class Progress:
    """A running generation: records written of the total, the rate, and its last error."""

    generated: int
    total: int
    rate: float | None
    last_error: str | None = None

    @property
    def eta(self) -> float | None:
        if not self.rate:
            return None
        return max(0.0, (self.total - self.generated) / self.rate)

    def fields(self) -> dict[str, Any]:
        eta = self.eta
        return {
            "generated": self.generated,
            "total": self.total,
            "recordsPerSecond": round(self.rate, 1) if self.rate is not None else None,
            "etaSeconds": round(eta, 1) if eta is not None else None,
            "lastError": self.last_error,
        }


def generating(progress: Progress, target: str, extra: Mapping[str, Any] | None = None) -> Outcome:
    rate = f", {progress.rate:,.0f} records/s" if progress.rate else ""
    eta = progress.eta
    left = f", about {readable_seconds(eta)} left" if eta is not None and progress.generated else ""
    message = f"generating into {target}: {progress.generated:,} of {progress.total:,} records{rate}{left}"
    events: tuple[EventNote, ...] = ()
    if progress.last_error:
        message += f"; retrying after: {progress.last_error}"
        events = (EventNote("Warning", "GenerationFailed", progress.last_error),)
    return Outcome(
        ready=False,
        reason="Generating",
        message=message,
        phase="Generating",
        fields={**progress.fields(), "targetRef": target, **(extra or {})},
        conditions=(ConditionUpdate(PROGRESSING, True, "Generating", message),),
        events=events,
        requeue_after=PROGRESS_SECONDS,
    )


def readable_seconds(seconds: float) -> str:
    import datetime as dt

    return readable(dt.timedelta(seconds=seconds))


def ready(
    records: int,
    target: str,
    fields: Mapping[str, Any],
    decoy: tuple[ConditionUpdate, tuple[EventNote, ...]] | None = None,
    requeue_after: float = READY_SECONDS,
) -> Outcome:
    message = f"{records:,} records in {target}"
    conditions = [ConditionUpdate(PROGRESSING, False, "Complete", message)]
    events: tuple[EventNote, ...] = ()
    if decoy is not None:
        conditions.append(decoy[0])
        events = decoy[1]
        if decoy[0].status is True:
            message += f"; {decoy[0].message}"
    return Outcome(
        ready=True,
        reason="Generated",
        message=message,
        phase="Ready",
        fields={
            "generated": records,
            "total": records,
            "etaSeconds": None,
            "lastError": None,
            "targetRef": target,
            **fields,
        },
        conditions=tuple(conditions),
        events=events,
        requeue_after=requeue_after,
    )


def decoy_condition(
    verdict: DecoyVerdict, target: str, since: str | None
) -> tuple[ConditionUpdate, tuple[EventNote, ...]]:
    """The DecoyTouched condition and, while reads are seen, a Warning Event (new for each new count)."""
    if verdict.reads <= 0:
        return ConditionUpdate(DECOY_TOUCHED, False, "NoReads", f"no read of {target} by others"), ()
    message = (
        f"{verdict.reads} read{'s' if verdict.reads != 1 else ''} of decoy {target} by another session "
        f"since {since or 'it went live'} (pg_stat_user_tables)"
    )
    return ConditionUpdate(DECOY_TOUCHED, True, "ReadsSeen", message), (
        EventNote("Warning", DECOY_TOUCHED, message),
    )


def not_ready(reason: str, message: str, warn: bool = False, requeue_after: float = RETRY_SECONDS) -> Outcome:
    events = (EventNote("Warning", reason, message),) if warn else ()
    return Outcome(
        ready=False,
        reason=reason,
        message=message,
        phase="Pending" if not warn else "Failed",
        conditions=(ConditionUpdate(PROGRESSING, False, reason, message),),
        events=events,
        requeue_after=requeue_after,
    )


def invalid(field: str, message: str) -> Outcome:
    """A spec the schema accepts but the corpora cannot serve (e.g. a locale without cities)."""
    text = f"{field}: {message}"
    return Outcome(
        ready=False,
        reason="InvalidSpec",
        message=text,
        phase="Invalid",
        events=(EventNote("Warning", "InvalidSpec", text),),
    )
