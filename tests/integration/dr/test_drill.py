"""``fortress dr drill`` (what the chart's drill CronJob runs) for real: three PostgreSQL regions, the
plan labelled for drills, the command in its own process against the Kubernetes API fixture while the
plan's loop checks it; the planned switchover happens, the result is an Event on the plan and the
exit code."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import pytest
from kubernetes import client

from fortress.api import GROUP, VERSION
from tests.integration.dr.support import PLAN, A, B, DrEnv, dr_env, is_in_recovery
from tests.support.kubeapi import KubeTarget
from tests.support.postgres import PgFactory

pytestmark = pytest.mark.postgres


async def drill(kubeconfig: Path, *args: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "fortress",
        "dr",
        "--kubeconfig",
        str(kubeconfig),
        "drill",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )


async def finish(process: asyncio.subprocess.Process, env: DrEnv | None = None) -> tuple[int, str]:
    """Wait for the drill, running the plan's checks meanwhile (the operator's part)."""
    waiting = asyncio.ensure_future(process.communicate())
    for _ in range(240):
        if waiting.done():
            break
        if env is not None:
            await env.check()
        await asyncio.sleep(0.25)
    out, _ = await asyncio.wait_for(waiting, timeout=30)
    return process.returncode or 0, out.decode()


def _label(k8s: client.ApiClient, namespace: str, labels: dict[str, str | None]) -> None:
    client.CustomObjectsApi(k8s).patch_namespaced_custom_object(
        GROUP, VERSION, namespace, "drplans", PLAN, {"metadata": {"labels": labels}}
    )


async def test_a_drill_switches_over_and_records_the_result(
    pg_factory: PgFactory, kube_api: KubeTarget, k8s: client.ApiClient, namespace: str
) -> None:
    async with dr_env(pg_factory, kube_api, k8s, namespace) as env:
        # nothing labelled: the drill says so and fails the Job
        code, out = await finish(await drill(kube_api.kubeconfig, "-n", namespace, "--wait=5"))
        assert code == 4 and "nothing to drill" in out, out

        await env.check()
        await asyncio.to_thread(_label, k8s, namespace, {"fortress.io/drill": "true"})
        process = await drill(kube_api.kubeconfig, "-n", namespace, "--wait=60")
        code, out = await finish(process, env)
        assert code == 0, out
        assert f"switchover drill to {env.name(B)}" in out and "DrillSucceeded" in out
        status = await asyncio.to_thread(env.plan_status)
        assert status["primaryRegion"] == env.name(B)
        assert status["lastFailover"]["type"] == "switchover" and status["lastFailover"]["rpoBytes"] == 0
        assert status["lastFailover"]["requestId"].startswith("drill-")
        assert not await is_in_recovery(env.clusters[B])
        (event,) = await asyncio.to_thread(env.events, "DrillSucceeded")
        assert event.type == "Normal" and event.involved_object.name == PLAN
        assert event.involved_object.kind == "DRPlan" and env.name(B) in event.message

        # a request is still pending: the drill is refused, a Warning Event, and the Job fails
        await asyncio.to_thread(env.request, A, "switchover", False, "by-hand")
        code, out = await finish(await drill(kube_api.kubeconfig, "-n", namespace, "--wait=5"))
        assert code == 5 and "DrillFailed" in out and "by-hand is still pending" in out, out
        (failed,) = await asyncio.to_thread(env.events, "DrillFailed")
        assert failed.type == "Warning" and failed.involved_object.name == PLAN


async def test_a_bad_selector_is_a_usage_error(kube_api: KubeTarget) -> None:
    code, out = await finish(await drill(kube_api.kubeconfig, "--selector", "drill", "--wait=1"))
    assert code == 2 and "key=value" in out
