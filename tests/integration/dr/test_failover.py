"""DR checks against real PostgreSQL streaming replication (three clusters) and the Kubernetes API.

Each test steps the plan's loop itself, one check at a time (``DrEnv.check``), so "three failed
checks" means exactly three checks; the end-to-end test with the running operator is in
test_operator.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest
from kubernetes import client

from fortress.dr.decision import Action
from fortress.dr.rejoin import rejoin
from fortress_dev.localregions import local_dsn
from tests.integration.dr.support import A, B, C, DrEnv, Writer, catch_up, dr_env, is_in_recovery
from tests.support.kubeapi import KubeTarget
from tests.support.postgres import PgFactory

pytestmark = pytest.mark.postgres


async def _written(env: DrEnv, key: str) -> set[int]:
    conn = await env.clusters[key].connect()
    try:
        return {r["id"] for r in await conn.fetch("SELECT id FROM writes")}
    finally:
        await conn.close()


def _via_service(env: DrEnv) -> Any:
    async def target() -> str:
        endpoints = await asyncio.to_thread(env.endpoints)
        return local_dsn(endpoints[0])

    return target


@contextlib.asynccontextmanager
async def _stalled(env: DrEnv, *keys: str) -> AsyncIterator[None]:
    """Freeze the standbys' WAL receivers (SIGSTOP), as a stalled network would: they fall behind
    while still reported as streaming, so the operator has nothing to repair."""
    pids = []
    for key in keys:
        pid = await env.clusters[key].fetchval("SELECT pid FROM pg_stat_wal_receiver")
        assert pid, f"{key} has no WAL receiver"
        os.kill(pid, signal.SIGSTOP)
        pids.append(pid)
    try:
        yield
    finally:
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)


async def _write_mb(env: DrEnv, megabytes: int) -> None:
    await env.clusters[A].execute(
        f"INSERT INTO writes (id) SELECT g FROM generate_series(1000000, 1000000 + {megabytes * 20000}) g"
    )


async def test_kill9_promotes_best_standby_repoints_service_and_fences_old_primary(
    pg_factory: PgFactory, kube_api: KubeTarget, k8s: client.ApiClient, namespace: str
) -> None:
    async with dr_env(pg_factory, kube_api, k8s, namespace) as env:
        report = await env.check()
        assert report.decision is not None and report.decision.action is Action.HEALTHY
        status = await asyncio.to_thread(env.plan_status)
        assert status["primaryRegion"] == env.name(A)
        assert status["phase"] == "Protected", status["message"]
        await env.served_by(A)

        await asyncio.to_thread(env.clusters[A].kill9)
        for failed in (1, 2):
            report = await env.check()
            assert report.decision is not None and report.decision.action is Action.WAIT
            assert (await asyncio.to_thread(env.region_status, A))["consecutiveFailures"] == failed
        assert await is_in_recovery(env.clusters[B])

        report = await env.check()  # the third failed check
        assert report.decision is not None and report.decision.action is Action.FAILOVER
        assert report.decision.target == env.name(B)  # priority 10 beats 20
        assert not await is_in_recovery(env.clusters[B])
        await env.served_by(B)
        status = await asyncio.to_thread(env.plan_status)
        assert status["primaryRegion"] == env.name(B)
        last = status["lastFailover"]
        assert last["fromRegion"] == env.name(A) and last["toRegion"] == env.name(B)
        assert last["rtoSeconds"] > 0 and last["rpoBytes"] >= 0
        old = await asyncio.to_thread(env.region_status, A)
        assert old["fenced"] is True and old["role"] == "Fenced"
        recorded = await env.clusters[B].fetchval(
            "SELECT count(*) FROM failover_events WHERE to_region = $1", env.name(B)
        )
        assert recorded == 1
        assert env.events("FailoverCompleted")

        # The other standby follows the new primary's timeline.
        for _ in range(50):
            await env.check()
            c_status = await asyncio.to_thread(env.region_status, C)
            if c_status.get("streaming") and c_status.get("timeline") == 2:
                break
            await asyncio.sleep(0.1)
        assert c_status["streaming"] is True and c_status["timeline"] == 2, c_status
        await env.clusters[B].execute("INSERT INTO writes (id) VALUES (424242)")
        await catch_up(env.clusters[B], env.clusters[C])
        assert await env.clusters[C].fetchval("SELECT count(*) FROM writes WHERE id = 424242") == 1
        status = await asyncio.to_thread(env.plan_status)
        assert status["phase"] == "Protected", status["message"]

        # The old primary comes back: it stays fenced and refuses writes.
        await asyncio.to_thread(env.clusters[A].start)
        await env.check()
        old = await asyncio.to_thread(env.region_status, A)
        assert old["fenced"] is True and old["readOnly"] is True and old["role"] == "Fenced"
        with pytest.raises(asyncpg.ReadOnlySQLTransactionError):
            await env.clusters[A].execute("INSERT INTO writes (id) VALUES (999999999)")
        await env.served_by(B)
        assert env.events("Fenced")


async def test_one_missed_check_does_not_fail_over(
    pg_factory: PgFactory, kube_api: KubeTarget, k8s: client.ApiClient, namespace: str
) -> None:
    async with dr_env(pg_factory, kube_api, k8s, namespace) as env:
        await env.check()
        await asyncio.to_thread(env.clusters[A].kill9)
        report = await env.check()
        assert report.decision is not None and report.decision.action is Action.WAIT
        # A second operator replica stands by while the first holds the plan's lease.
        other = env.replica("replica-2")
        skipped = await other.check_once()
        assert skipped.decision is None and skipped.skipped and "held by test-replica" in skipped.skipped
        assert skipped.outcome is None  # the replica that does not hold the Lease writes nothing
        await other.close()
        status = await asyncio.to_thread(env.plan_status)
        assert status["phase"] == "Degraded" and "failed 1 consecutive" in status["message"]
        await asyncio.to_thread(env.clusters[A].start)
        report = await env.check()
        assert report.decision is not None and report.decision.action is Action.HEALTHY
        assert (await asyncio.to_thread(env.region_status, A))["consecutiveFailures"] == 0
        assert await is_in_recovery(env.clusters[B]) and await is_in_recovery(env.clusters[C])
        assert (await asyncio.to_thread(env.plan_status))["primaryRegion"] == env.name(A)


async def test_standby_beyond_lag_limit_is_never_promoted(
    pg_factory: PgFactory, kube_api: KubeTarget, k8s: client.ApiClient, namespace: str
) -> None:
    async with (
        dr_env(pg_factory, kube_api, k8s, namespace, max_lag_bytes=256 * 1024) as env,
        _stalled(env, B),  # the preferred standby falls behind
    ):
        await env.check()
        await _write_mb(env, 2)
        await catch_up(env.clusters[A], env.clusters[C])
        await env.check()
        assert (await asyncio.to_thread(env.region_status, B))["lagBytes"] > 256 * 1024
        await asyncio.to_thread(env.clusters[A].kill9)
        report = await env.check(times=3)
        assert report.decision is not None and report.decision.action is Action.FAILOVER
        assert report.decision.target == env.name(C)
        assert await is_in_recovery(env.clusters[B])
        assert not await is_in_recovery(env.clusters[C])
        assert (await asyncio.to_thread(env.plan_status))["lastFailover"]["rpoBytes"] == 0


async def test_no_eligible_candidate_means_no_promotion_and_a_reason_then_force_overrides(
    pg_factory: PgFactory, kube_api: KubeTarget, k8s: client.ApiClient, namespace: str
) -> None:
    async with dr_env(pg_factory, kube_api, k8s, namespace, max_lag_bytes=256 * 1024) as env:
        async with _stalled(env, B, C):
            await env.check()
            await _write_mb(env, 2)
            await env.check()
            await asyncio.to_thread(env.clusters[A].kill9)
            report = await env.check(times=3)
            assert report.decision is not None and report.decision.action is Action.NO_CANDIDATE
            assert await is_in_recovery(env.clusters[B]) and await is_in_recovery(env.clusters[C])
            status = await asyncio.to_thread(env.plan_status)
            ready = next(c for c in status["conditions"] if c["type"] == "Ready")
            assert ready["status"] == "False" and ready["reason"] == "NoCandidate"
            assert f"{env.name(B)}: " in status["message"]
            assert "bytes behind the primary (limit 262144)" in status["message"]
            assert env.events("NoCandidate")

            await asyncio.to_thread(env.request, B, "failover", False, "no-force")
            report = await env.check()
            assert report.decision is not None and report.decision.request_note is not None
            assert "force: true overrides the lag limit" in report.decision.request_note
            assert await is_in_recovery(env.clusters[B])
            assert env.events("RequestRejected")
        # The receivers resume and drain what the network had buffered, but the primary is gone.
        await asyncio.to_thread(env.request, B, "failover", True, "forced")
        report = await env.check()
        assert report.decision is not None and report.decision.action is Action.FAILOVER
        assert not await is_in_recovery(env.clusters[B])
        status = await asyncio.to_thread(env.plan_status)
        assert status["lastRequest"]["requestId"] == "forced"
        assert (
            status["lastRequest"]["outcome"] == "Accepted" and status["lastRequest"]["action"] == "failover"
        )
        # What it lost depends on how much the network had buffered; it is measured either way.
        assert status["lastFailover"]["rpoBytes"] >= 0


async def test_manual_mode_reports_and_does_not_act(
    pg_factory: PgFactory, kube_api: KubeTarget, k8s: client.ApiClient, namespace: str
) -> None:
    async with dr_env(pg_factory, kube_api, k8s, namespace, mode="manual") as env:
        await env.check()
        await asyncio.to_thread(env.clusters[A].kill9)
        report = await env.check(times=4)
        assert report.decision is not None and report.decision.action is Action.MANUAL
        assert await is_in_recovery(env.clusters[B]) and await is_in_recovery(env.clusters[C])
        status = await asyncio.to_thread(env.plan_status)
        assert "automatic failover is off" in status["message"] and env.name(B) in status["message"]
        await asyncio.to_thread(env.request, C, "failover", False, "take-c", "type")  # the older name
        report = await env.check()
        assert report.decision is not None and report.decision.target == env.name(C)
        assert not await is_in_recovery(env.clusters[C])


async def test_planned_switchover_loses_nothing(
    pg_factory: PgFactory, kube_api: KubeTarget, k8s: client.ApiClient, namespace: str
) -> None:
    async with dr_env(pg_factory, kube_api, k8s, namespace) as env:
        await env.check()
        writer = Writer(_via_service(env))
        writer.start()
        await asyncio.sleep(0.5)
        await asyncio.to_thread(env.request, B, "switchover", False, "planned")
        report = await env.check()
        assert report.decision is not None and report.decision.action is Action.SWITCHOVER
        await asyncio.sleep(0.5)
        await writer.stop()
        assert not await is_in_recovery(env.clusters[B])
        on_b = await _written(env, B)
        assert writer.acked and set(writer.acked) <= on_b, set(writer.acked) - on_b
        assert max(writer.acked) > min(writer.acked)
        status = await asyncio.to_thread(env.plan_status)
        assert status["lastFailover"]["type"] == "switchover" and status["lastFailover"]["rpoBytes"] == 0
        with pytest.raises(asyncpg.ReadOnlySQLTransactionError):
            await env.clusters[A].execute("INSERT INTO writes (id) VALUES (999999999)")


async def test_synchronous_replication_keeps_every_acknowledged_write(
    pg_factory: PgFactory, kube_api: KubeTarget, k8s: client.ApiClient, namespace: str
) -> None:
    async with dr_env(pg_factory, kube_api, k8s, namespace, synchronous=True) as env:
        await env.check()
        writer = Writer(_via_service(env))
        writer.start()
        await asyncio.sleep(0.5)
        await asyncio.to_thread(env.clusters[A].kill9)
        acked_before = len(writer.acked)
        report = await env.check(times=3)
        assert report.decision is not None and report.decision.action is Action.FAILOVER
        assert report.decision.target == env.name(B)
        await asyncio.sleep(0.5)
        await writer.stop()
        on_b = await _written(env, B)
        assert acked_before > 0 and set(writer.acked) <= on_b, sorted(set(writer.acked) - on_b)[:10]
        assert len(writer.acked) > acked_before  # it went on writing on the new primary
        assert (await asyncio.to_thread(env.plan_status))["lastFailover"]["rpoBytes"] == 0


async def test_failback_rejoins_old_primary_as_standby_then_switches_back(
    pg_factory: PgFactory, kube_api: KubeTarget, k8s: client.ApiClient, namespace: str
) -> None:
    async with dr_env(pg_factory, kube_api, k8s, namespace) as env:
        await env.check()
        await asyncio.to_thread(env.clusters[A].kill9)
        await env.check(times=3)
        assert not await is_in_recovery(env.clusters[B])
        await env.clusters[B].execute("INSERT INTO writes (id) VALUES (7)")

        old = env.clusters[A]
        await asyncio.to_thread(old.start)  # returns as a primary on the old timeline
        await env.check()
        assert (await asyncio.to_thread(env.region_status, A))["readOnly"] is True
        await asyncio.to_thread(old.stop)
        result = await asyncio.to_thread(
            rejoin, old.datadir, env.clusters[B].dsn(), pg_factory.run, application_name=A
        )
        assert result.method == "pg_rewind", result
        await asyncio.to_thread(old.start)
        assert await is_in_recovery(old)
        for _ in range(50):
            report = await env.check()
            a_status = await asyncio.to_thread(env.region_status, A)
            if not a_status["fenced"]:
                break
            await asyncio.sleep(0.1)
        assert a_status["fenced"] is False and a_status["role"] == "Standby", a_status
        assert env.events("Rejoined")
        await catch_up(env.clusters[B], old)
        assert await old.fetchval("SELECT count(*) FROM writes WHERE id = 7") == 1

        await asyncio.to_thread(env.request, A, "switchover", False, "failback")
        report = await env.check()
        assert report.decision is not None and report.decision.action is Action.SWITCHOVER
        assert not await is_in_recovery(old)
        await old.execute("INSERT INTO writes (id) VALUES (8)")
        status = await asyncio.to_thread(env.plan_status)
        assert status["primaryRegion"] == env.name(A) and status["lastFailover"]["rpoBytes"] == 0
        assert (await asyncio.to_thread(env.region_status, B))["fenced"] is True


async def test_switchover_to_a_standby_that_cannot_catch_up_is_abandoned(
    pg_factory: PgFactory, kube_api: KubeTarget, k8s: client.ApiClient, namespace: str
) -> None:
    async with dr_env(pg_factory, kube_api, k8s, namespace, rto_target="4s") as env, _stalled(env, B):
        await env.check()
        await _write_mb(env, 1)  # within the lag limit, but B receives nothing more
        await asyncio.to_thread(env.request, B, "switchover", False, "doomed")
        report = await env.check()
        assert report.decision is not None and report.decision.action is Action.SWITCHOVER
        assert report.executed is not None and report.executed.record is None
        assert await is_in_recovery(env.clusters[B])
        await env.clusters[A].execute("INSERT INTO writes (id) VALUES (5)")  # writable again
        status = await asyncio.to_thread(env.plan_status)
        assert status["primaryRegion"] == env.name(A) and "did not catch up" in status["message"]
        assert (await asyncio.to_thread(env.region_status, A))["fenced"] is False
        assert env.events("SwitchoverFailed")
        report = await env.check()
        assert report.decision is not None and report.decision.action is Action.HEALTHY
