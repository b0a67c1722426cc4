"""What 2PC recovery does with each prepared transaction: commit, roll back or leave in doubt (pure).

Presumed abort: the coordinator writes no log row before the prepares, so a prepared transaction without
a ``commit`` row is rolled back once older than the grace period, after ``abort`` is recorded for it (so a
late coordinator cannot commit it). A commit decision is always carried out. An unreadable coordinator log
never leads to a rollback.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum

from fortress.sharding.gid import Gid


class Action(StrEnum):
    COMMIT = "commit"
    ROLLBACK = "rollback"
    WAIT = "wait"  # in doubt: no decision yet and younger than the grace period, or coordinator unknown


@dataclass(frozen=True)
class PreparedTx:
    """A prepared transaction found on a shard; ``age`` (seconds) as measured by that shard's clock."""

    shard: str
    gid: str
    age: float


@dataclass(frozen=True)
class LogEntry:
    """A row of the coordinator's ``distributed_tx_log``."""

    gid: str
    decision: str | None
    participants: tuple[str, ...] = ()
    completed: bool = False


@dataclass(frozen=True)
class Resolution:
    shard: str
    gid: str
    action: Action
    reason: str


@dataclass(frozen=True)
class RecoveryPlan:
    resolutions: tuple[Resolution, ...] = ()
    record_abort: tuple[str, ...] = ()  # log gids to mark 'abort' before their participants roll back
    mark_completed: tuple[str, ...] = ()  # log gids with no prepared participant left

    @property
    def in_doubt(self) -> int:
        return sum(1 for r in self.resolutions if r.action is Action.WAIT)


def resolve(tx: PreparedTx, gid: Gid, entry: LogEntry | None, readable: bool, grace: float) -> Resolution:
    """The action for one participant of this cluster, from its coordinator's log row."""
    if not readable:
        reason = f"coordinator shard {gid.coordinator} is unreachable or unknown: cannot read the decision"
        return Resolution(tx.shard, tx.gid, Action.WAIT, reason)
    decision = entry.decision if entry is not None else None
    if decision == "commit":
        return Resolution(tx.shard, tx.gid, Action.COMMIT, "decision is commit")
    if decision == "abort":
        return Resolution(tx.shard, tx.gid, Action.ROLLBACK, "decision is abort")
    if decision is not None:
        return Resolution(tx.shard, tx.gid, Action.WAIT, f"unknown decision {decision!r} in the log")
    if tx.age >= grace:
        reason = f"no decision after {tx.age:.0f}s (grace {grace:.0f}s): presumed abort"
        return Resolution(tx.shard, tx.gid, Action.ROLLBACK, reason)
    reason = f"no decision yet, {tx.age:.1f}s old (grace {grace:.0f}s)"
    return Resolution(tx.shard, tx.gid, Action.WAIT, reason)


def completed_rows(log: Mapping[str, LogEntry], still_prepared: set[str], observed: set[str]) -> list[str]:
    """Decided log rows whose participants were all observed without a prepared transaction left."""
    return [
        gid
        for gid, entry in sorted(log.items())
        if entry.decision in ("commit", "abort")
        and not entry.completed
        and gid not in still_prepared
        and set(entry.participants) <= observed
    ]


def decide_recovery(
    prepared: Sequence[PreparedTx],
    log: Mapping[str, LogEntry],
    *,
    tag: str,
    grace: float,
    readable_coordinators: Iterable[str],
    observed_shards: Iterable[str],
) -> RecoveryPlan:
    """What recovery does with each prepared transaction of this cluster.

    ``log`` maps log gids to their row on the coordinator; ``readable_coordinators`` are the coordinator
    shards whose log could be read; ``observed_shards`` are the shards whose prepared transactions were
    listed (a log row is completed only when all its participants were observed with none left).
    """
    if grace < 0:
        raise ValueError(f"grace period must be >= 0 seconds, got {grace}")
    readable = set(readable_coordinators)
    resolutions: list[Resolution] = []
    aborts: list[str] = []
    still_prepared: set[str] = set()
    for tx in sorted(prepared, key=lambda t: (t.gid, t.shard)):
        gid = Gid.parse(tx.gid)
        if gid is None or gid.tag != tag or gid.participant is None:
            continue  # not a transaction of this cluster's coordinators
        still_prepared.add(gid.log_gid)
        entry = log.get(gid.log_gid)
        resolution = resolve(tx, gid, entry, gid.coordinator in readable, grace)
        undecided = entry is None or entry.decision is None
        if resolution.action is Action.ROLLBACK and undecided and gid.log_gid not in aborts:
            aborts.append(gid.log_gid)
        resolutions.append(resolution)
    completed = completed_rows(log, still_prepared, set(observed_shards))
    return RecoveryPlan(tuple(resolutions), tuple(aborts), tuple(completed))
