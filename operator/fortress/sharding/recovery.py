"""2PC recovery on the shards: list prepared transactions, read decisions, carry out the plan.

One run lists this cluster's prepared transactions on every configured shard, reads the decisions of
their coordinators' ``distributed_tx_log`` (and the default coordinator's unfinished rows), and carries
out :func:`~fortress.sharding.recovery_plan.decide_recovery`: ``abort`` is recorded (durably) before a
presumed-abort rollback, then the log is read and the plan made again, since a coordinator may have
recorded ``commit`` first. Decided rows with no participant left are marked completed. The state lives
in PostgreSQL only, so a run may stop anywhere and the next one carries on.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import asyncpg

from fortress.metrics import sharding as metrics
from fortress.sharding.errors import ShardingError
from fortress.sharding.gid import GID_VERSION, Gid, cluster_tag
from fortress.sharding.recovery_plan import (
    Action,
    LogEntry,
    PreparedTx,
    RecoveryPlan,
    Resolution,
    decide_recovery,
)
from fortress.sharding.router import Router


@dataclass
class RecoveryReport:
    committed: int = 0
    rolled_back: int = 0
    in_doubt: int = 0
    completed: int = 0
    errors: list[str] = field(default_factory=list)
    waiting: list[str] = field(default_factory=list)


async def list_prepared(router: Router, shard_id: str, tag: str) -> list[PreparedTx]:
    """This cluster's prepared transactions on one shard."""
    async with router.connection(shard_id, "recovery") as conn:
        rows = await conn.fetch(
            "SELECT gid, extract(epoch FROM now() - prepared)::float8 AS age FROM pg_prepared_xacts "
            "WHERE database = current_database() AND gid LIKE $1",
            f"{GID_VERSION}:{tag}:%",
            timeout=router.config.query_timeout,
        )
    return [PreparedTx(shard_id, r["gid"], float(r["age"])) for r in rows]


async def read_log(router: Router, tag: str, coordinator: str, gids: Sequence[str]) -> dict[str, LogEntry]:
    """The coordinator's rows for ``gids``, and its unfinished rows of this cluster."""
    async with router.connection(coordinator, "recovery") as conn:
        rows = await conn.fetch(
            "SELECT gid, decision, participants, completed_at IS NOT NULL AS completed "
            "FROM distributed_tx_log WHERE gid = ANY($1::text[]) OR (completed_at IS NULL AND gid LIKE $2) "
            "ORDER BY created_at LIMIT 10000",
            list(gids),
            f"{GID_VERSION}:{tag}:{coordinator}:%",
            timeout=router.config.query_timeout,
        )
    return {
        r["gid"]: LogEntry(r["gid"], r["decision"], tuple(r["participants"] or ()), bool(r["completed"]))
        for r in rows
    }


@dataclass
class Survey:
    """What one recovery run found: prepared transactions, the shards listed, the logs read."""

    router: Router
    tag: str
    grace: float
    report: RecoveryReport
    prepared: list[PreparedTx] = field(default_factory=list)
    observed: list[str] = field(default_factory=list)
    log: dict[str, LogEntry] = field(default_factory=dict)
    readable: list[str] = field(default_factory=list)

    def _gids(self) -> list[Gid]:
        return [g for g in (Gid.parse(p.gid) for p in self.prepared) if g is not None]

    async def list_shards(self) -> None:
        for shard_id in sorted(self.router.endpoints):
            try:
                self.prepared.extend(await list_prepared(self.router, shard_id, self.tag))
                self.observed.append(shard_id)
            except ShardingError as error:
                self.report.errors.append(str(error))

    async def read_logs(self) -> None:
        self.log.clear()
        self.readable.clear()
        coordinators = {g.coordinator for g in self._gids()}
        if self.router.endpoints:
            coordinators.add(min(self.router.endpoints))  # completes the default coordinator's rows
        for coordinator in sorted(coordinators & set(self.router.endpoints)):
            gids = [g.log_gid for g in self._gids() if g.coordinator == coordinator]
            try:
                self.log.update(await read_log(self.router, self.tag, coordinator, gids))
                self.readable.append(coordinator)
            except ShardingError as error:
                self.report.errors.append(str(error))

    def plan(self) -> RecoveryPlan:
        return decide_recovery(
            self.prepared,
            self.log,
            tag=self.tag,
            grace=self.grace,
            readable_coordinators=self.readable,
            observed_shards=self.observed,
        )


async def record_aborts(survey: Survey, log_gids: Sequence[str]) -> None:
    """Durably record ``abort`` for undecided transactions, unless a decision is there already."""
    for log_gid in log_gids:
        gid = Gid.parse(log_gid)
        assert gid is not None
        participants = sorted({p.shard for p in survey.prepared if p.gid.startswith(log_gid + ":")})
        try:
            async with survey.router.connection(gid.coordinator, "recovery") as conn, conn.transaction():
                await conn.execute("SET LOCAL synchronous_commit = on")
                await conn.execute(
                    "INSERT INTO distributed_tx_log (gid, decision, participants, decided_at) "
                    "VALUES ($1, 'abort', $2, now()) ON CONFLICT (gid) DO UPDATE SET decision = 'abort', "
                    "decided_at = now() WHERE distributed_tx_log.decision IS NULL",
                    log_gid,
                    participants,
                )
        except ShardingError as error:
            survey.report.errors.append(str(error))


async def carry_out(router: Router, resolution: Resolution, report: RecoveryReport) -> None:
    """Commit or roll back one prepared participant, or count it in doubt."""
    if resolution.action is Action.WAIT:
        report.in_doubt += 1
        report.waiting.append(f"{resolution.shard}: {resolution.gid}: {resolution.reason}")
        return
    verb = "COMMIT PREPARED" if resolution.action is Action.COMMIT else "ROLLBACK PREPARED"
    try:
        async with router.connection(resolution.shard, "recovery") as conn:
            await conn.execute(f"{verb} '{resolution.gid}'")
    except asyncpg.UndefinedObjectError:
        pass  # resolved concurrently (by the coordinator or another recovery run)
    except ShardingError as error:
        report.errors.append(str(error))
        report.in_doubt += 1
        return
    if resolution.action is Action.COMMIT:
        report.committed += 1
    else:
        report.rolled_back += 1
    metrics.RECOVERED.labels(resolution.action.value).inc()


async def mark_completed(router: Router, log_gids: Sequence[str], report: RecoveryReport) -> None:
    """Set ``completed_at`` on decided rows that have no prepared participant left."""
    by_coordinator: dict[str, list[str]] = {}
    for log_gid in log_gids:
        gid = Gid.parse(log_gid)
        if gid is not None:
            by_coordinator.setdefault(gid.coordinator, []).append(log_gid)
    for coordinator, gids in by_coordinator.items():
        try:
            async with router.connection(coordinator, "recovery") as conn:
                status = await conn.execute(
                    "UPDATE distributed_tx_log SET completed_at = now() "
                    "WHERE gid = ANY($1::text[]) AND completed_at IS NULL",
                    gids,
                )
            report.completed += int(status.rsplit(" ", 1)[1])
        except ShardingError as error:
            report.errors.append(str(error))


async def recover(router: Router, cluster: str, grace: float) -> RecoveryReport:
    """Resolve this cluster's in-doubt prepared transactions on every configured shard."""
    report = RecoveryReport()
    survey = Survey(router, cluster_tag(cluster), grace, report)
    await survey.list_shards()
    await survey.read_logs()
    first = survey.plan()
    if first.record_abort:
        await record_aborts(survey, first.record_abort)
        await survey.read_logs()  # a coordinator may have recorded commit first: decide again from the log
    final = survey.plan()
    for resolution in final.resolutions:
        await carry_out(router, resolution, report)
    if final.mark_completed:
        await mark_completed(router, final.mark_completed, report)
    return report
