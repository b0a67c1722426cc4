"""End to end: the operator (in-process, its own per-plan daemon, checkInterval 1s) fails over."""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg
import pytest
from kubernetes import client

from tests.integration.dr.support import A, B, C, DrEnv, dr_env
from tests.support.kubeapi import KubeTarget, running_operator, wait_for
from tests.support.postgres import PgFactory

pytestmark = pytest.mark.postgres


def _ready(obj: dict[str, Any]) -> str | None:
    for condition in (obj.get("status") or {}).get("conditions") or []:
        if condition.get("type") == "Ready":
            return str(condition.get("status"))
    return None


async def test_operator_fails_over_on_kill9_and_keeps_the_old_primary_fenced(
    pg_factory: PgFactory, kube_api: KubeTarget, k8s: client.ApiClient, namespace: str
) -> None:
    async with (
        dr_env(pg_factory, kube_api, k8s, namespace) as env,
        running_operator(kube_api, namespaces=(namespace,)),
    ):
        protected = await wait_for(lambda: env.plan_status().get("phase") == "Protected", timeout=30)
        assert protected
        status = await asyncio.to_thread(env.plan_status)
        assert status["primaryRegion"] == env.name(A)
        assert await asyncio.to_thread(_ready, await asyncio.to_thread(env.plan)) == "True"
        for key in (A, B, C):
            region = await asyncio.to_thread(env.region_status, key)
            assert region["healthy"] is True and region["lastCheckTime"], (key, region)

        await asyncio.to_thread(env.clusters[A].kill9)

        def failed_over() -> dict[str, Any] | None:
            current = env.plan_status()
            return current if current.get("primaryRegion") == env.name(B) else None

        status = await wait_for(failed_over, timeout=60, interval=0.2)
        assert status["lastFailover"]["toRegion"] == env.name(B)
        assert status["lastFailover"]["rtoSeconds"] is not None
        await env.served_by(B)
        assert not await env.clusters[B].fetchval("SELECT pg_is_in_recovery()")

        def c_follows_or_reclone() -> dict[str, Any] | None:
            region = env.region_status(C)
            following = region.get("streaming") and region.get("timeline") == 2
            return region if following or region.get("needsReclone") else None

        region_c = await wait_for(c_follows_or_reclone, timeout=30)
        assert region_c.get("streaming") or region_c.get("needsReclone")

        await asyncio.to_thread(env.clusters[A].start)
        fenced = await wait_for(lambda: env.region_status(A).get("readOnly") is True, timeout=30)
        assert fenced
        region_a = await asyncio.to_thread(env.region_status, A)
        assert region_a["fenced"] is True and region_a["role"] == "Fenced"
        with pytest.raises(asyncpg.ReadOnlySQLTransactionError):
            await env.clusters[A].execute("INSERT INTO writes (id) VALUES (1)")
        await env.served_by(B)
        await _no_second_failover(env)


async def _no_second_failover(env: DrEnv) -> None:
    """A few more checks change nothing: one failover, recorded once."""
    await asyncio.sleep(2.5)
    status = await asyncio.to_thread(env.plan_status)
    assert status["primaryRegion"] == env.name(B)
    assert len(status["history"]) == 1
    assert await env.clusters[B].fetchval("SELECT count(*) FROM failover_events") == 1
