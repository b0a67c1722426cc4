"""Restarts, manual verbs through the CLI, blue-green, and the rows in PostgreSQL.

Deployments become available by the real controllers, simulated only where none runs: see support.py.
"""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg
import pytest
from kubernetes import client

from fortress.adapters import migrations
from fortress.cli import main as fortress_main
from fortress.plugin import main as kubectl_fortress_main
from fortress.rollouts import store
from fortress_dev.postgres import PgCluster
from tests.integration.rollouts import support as s
from tests.support.kubeapi import KubeTarget, running_operator, wait_for


@pytest.fixture(autouse=True)
def _quiet_kopf(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("WARNING", logger="kopf")


UNTIL_PROMOTED = [
    {"weight": 20, "pause": {"duration": "200ms"}},
    {"weight": 50, "pause": {"untilPromoted": True}},
    {"weight": 100, "pause": {"duration": "200ms"}},
]


async def cli(kube_api: KubeTarget, *args: str) -> int:
    """The ``fortress rollout`` command, off the event loop (the operator runs on it)."""
    return await asyncio.to_thread(
        fortress_main, ["rollout", *args, "--kubeconfig", str(kube_api.kubeconfig)]
    )


async def kubectl_fortress(kube_api: KubeTarget, *args: str) -> int:
    """``kubectl fortress ...`` (the plugin, which delegates ``rollout`` to the same command)."""
    return await asyncio.to_thread(kubectl_fortress_main, ["--kubeconfig", str(kube_api.kubeconfig), *args])


async def test_restart_mid_rollout_resumes_at_the_same_stage(
    kube_api: KubeTarget, k8s: client.ApiClient, namespace: str, capsys: pytest.CaptureFixture[str]
) -> None:
    name = "orders"
    body = s.rollout(name, strategy={"type": "canary", "canary": {"stages": UNTIL_PROMOTED}})
    async with s.availability(kube_api, k8s, namespace):
        async with running_operator(kube_api, namespaces=(namespace,)):
            s.create(k8s, namespace, body)
            await s.wait_status(k8s, namespace, name, lambda st: st.get("phase") == "Succeeded")
            s.patch_spec(k8s, namespace, name, {"template": s.template("web:2", name)})
            before = await s.wait_status(
                k8s, namespace, name, lambda st: st.get("pauseReason") == "UntilPromoted"
            )
        # the operator is gone; the state is in status
        assert (before["currentStage"], before["canaryWeight"], before["phase"]) == (1, 50, "Paused")
        s.patch_spec(k8s, namespace, name, {"historyLimit": 5})  # a spec change while it is down
        async with running_operator(kube_api, namespaces=(namespace,)):
            await s.wait_status(k8s, namespace, name, lambda st: st.get("observedGeneration") == 3)
            after = s.status(k8s, namespace, name)
            for key in (
                "currentStage",
                "canaryWeight",
                "phase",
                "stageStartedAt",
                "stageReadyAt",
                "rolloutStartedAt",
                "canaryRevision",
                "stableRevision",
                "steps",
            ):
                assert after[key] == before[key], key
            assert s.service_selector(k8s, namespace, name) == {"fortress.io/rollout": name}, (
                "both colours serve"
            )
            assert await cli(kube_api, "promote", name, "-n", namespace, "--wait", "20") == 0
            assert "promote requested" in capsys.readouterr().out
            done = await s.wait_status(k8s, namespace, name, lambda st: st.get("phase") == "Succeeded")
            assert done["stableColour"] == "green" and [x["weight"] for x in done["steps"]] == [20, 50, 100]


async def test_cli_verbs_pause_resume_abort_and_retry(
    kube_api: KubeTarget, k8s: client.ApiClient, namespace: str, capsys: pytest.CaptureFixture[str]
) -> None:
    name = "billing"
    stages = [{"weight": 20, "pause": {"duration": "1h"}}, {"weight": 100, "pause": {"duration": "1s"}}]
    body = s.rollout(
        name, strategy={"type": "canary", "canary": {"stages": stages}}, abortScaleDownDelay="300ms"
    )
    async with running_operator(kube_api, namespaces=(namespace,)), s.availability(kube_api, k8s, namespace):
        s.create(k8s, namespace, body)
        await s.wait_status(k8s, namespace, name, lambda st: st.get("phase") == "Succeeded")
        s.patch_spec(k8s, namespace, name, {"template": s.template("web:2", name)})
        await s.wait_status(k8s, namespace, name, lambda st: (st.get("canaryWeight") or 0) > 0)
        assert await cli(kube_api, "pause", name, "-n", namespace, "--wait", "20") == 0
        await s.wait_status(k8s, namespace, name, lambda st: st.get("phase") == "Paused")
        assert await cli(kube_api, "resume", name, "-n", namespace, "--wait", "20") == 0
        resumed = await s.wait_status(k8s, namespace, name, lambda st: st.get("phase") == "Progressing")
        assert s.get(k8s, namespace, name)["spec"]["paused"] is False and resumed["currentStage"] == 0
        assert await cli(kube_api, "abort", name, "-n", namespace, "--wait", "20") == 0
        aborted = await s.wait_status(
            k8s, namespace, name, lambda st: st.get("phase") in ("Degraded", "RolledBack")
        )
        assert (
            aborted["abortReason"] == "Aborted"
            and s.service_selector(k8s, namespace, name)["fortress.io/colour"] == "blue"
        )
        await s.wait_status(k8s, namespace, name, lambda st: st.get("phase") == "RolledBack")
        assert (
            await cli(kube_api, "retry", name, "-n", namespace, "--wait", "20", "--request-id", "retry-1")
            == 0
        )
        retried = await s.wait_status(
            k8s, namespace, name, lambda st: s.last_request(st).get("requestId") == "retry-1"
        )
        assert retried["phase"] == "Progressing" and retried["canaryRevision"] == aborted["canaryRevision"]
        assert s.last_request(retried)["outcome"] == "Accepted" and "handledRequestId" not in retried
        assert s.get(k8s, namespace, name)["spec"]["request"] == {"action": "retry", "requestId": "retry-1"}
        full = ("rollout", "promote", "--full", name, "-n", namespace, "--wait", "20")
        assert await kubectl_fortress(kube_api, *full) == 0
        done = await s.wait_status(k8s, namespace, name, lambda st: st.get("phase") == "Succeeded")
        assert done["stableColour"] == "green"
        out = capsys.readouterr().out
        assert out.count("requested for CanaryRollout") == 5
        expected = {"Paused", "Resumed", "RolledBack", "ControlAccepted", "Promoting", "Promoted"}
        await wait_for(lambda: expected <= {e.reason for e in s.events(k8s, namespace, name)})
    assert await cli(kube_api, "promote", "nothing-here", "-n", namespace) == 3
    assert "not found" in capsys.readouterr().err


async def test_blue_green_with_preview_and_manual_promotion(
    kube_api: KubeTarget, k8s: client.ApiClient, namespace: str
) -> None:
    name = "payments"
    body = s.rollout(
        name,
        replicas=3,
        strategy={"type": "blueGreen", "blueGreen": {"previewService": f"{name}-preview"}},
        featureFlags=[{"name": "instant-pay"}],
    )
    async with running_operator(kube_api, namespaces=(namespace,)), s.availability(kube_api, k8s, namespace):
        s.create(k8s, namespace, body)
        first = await s.wait_status(k8s, namespace, name, lambda st: st.get("phase") == "Succeeded")
        assert s.condition(first, "Ready")["status"] == "True"
        s.patch_spec(k8s, namespace, name, {"template": s.template("web:2", name)})
        waiting = await s.wait_status(
            k8s, namespace, name, lambda st: st.get("pauseReason") == "UntilPromoted"
        )
        assert s.service_selector(k8s, namespace, f"{name}-preview")["fortress.io/colour"] == "green"
        assert s.service_selector(k8s, namespace, name)["fortress.io/colour"] == "blue"
        assert s.condition(waiting, "Ready")["status"] == "True", "the stable version serves"
        assert s.condition(waiting, "Progressing")["status"] == "True"
        # spec.control, the deprecated name of spec.request, is still acted on
        s.patch_spec(k8s, namespace, name, {"control": {"action": "promote", "requestId": "bg-1"}})
        done = await s.wait_status(
            k8s,
            namespace,
            name,
            lambda st: st.get("phase") == "Succeeded" and st.get("stableColour") == "green",
        )
        assert s.service_selector(k8s, namespace, name)["fortress.io/colour"] == "green"
        assert s.condition(done, "Progressing")["status"] == "False"
        assert s.condition(done, "Progressing")["reason"] == "Succeeded"
        assert s.last_request(done)["requestId"] == "bg-1" and s.last_request(done)["outcome"] == "Accepted"


async def test_workload_ref_missing_is_reported_then_taken_over(
    kube_api: KubeTarget, k8s: client.ApiClient, namespace: str
) -> None:
    name, app = "legacy", "legacy-app"
    body = s.rollout(name)
    del body["spec"]["template"]
    body["spec"]["workloadRef"] = {"name": app}
    service = {
        "metadata": {"name": name},
        "spec": {"selector": {"app": name}, "ports": [{"port": 8080, "targetPort": 8080}]},
    }
    client.CoreV1Api(k8s).create_namespaced_service(namespace, service)
    async with running_operator(kube_api, namespaces=(namespace,)), s.availability(kube_api, k8s, namespace):
        s.create(k8s, namespace, body)
        found = await s.wait_status(
            k8s, namespace, name, lambda st: s.condition(st, "Ready").get("reason") == "WorkloadNotFound"
        )
        assert s.service_selector(k8s, namespace, name) == {"app": name}, "nothing moves meanwhile"
        assert "spec.workloadRef: Deployment" in found["message"] and f"{app} not found" in found["message"]
        assert s.deployment_raw(k8s, namespace, f"{name}-blue") is None
        # the Deployment to take over appears (the Service selects its pods by their own labels)
        existing = {
            "metadata": {"name": app},
            "spec": {
                "replicas": 3,
                "selector": {"matchLabels": {"app": name}},
                "template": s.template("legacy:7", name),
            },
        }
        client.AppsV1Api(k8s).create_namespaced_deployment(namespace, existing)
        done = await s.wait_status(k8s, namespace, name, lambda st: st.get("phase") == "Succeeded")
        assert s.condition(done, "Ready")["status"] == "True"
        blue = s.deployment_raw(k8s, namespace, f"{name}-blue") or {}
        assert blue["spec"]["template"]["spec"]["containers"][0]["image"] == "legacy:7"
        assert s.service_selector(k8s, namespace, name) == {
            "fortress.io/rollout": name,
            "fortress.io/colour": "blue",
        }
        await wait_for(lambda: (s.deployment_raw(k8s, namespace, app) or {})["spec"]["replicas"] == 0)
        taken = await wait_for(
            lambda: [e for e in s.events(k8s, namespace, name) if e.reason == "WorkloadTakenOver"]
        )
        assert f"Deployment {app} scaled from 3 to 0 pods" in taken[0].message


async def test_history_and_flags_in_postgresql(
    kube_api: KubeTarget, k8s: client.ApiClient, namespace: str, pg: PgCluster
) -> None:
    dsn = pg.dsn()
    await migrations.up(dsn, migrations.default_migrations_dir())
    s.secret(k8s, namespace, "rollouts-db", {"dsn": dsn})
    name = "ledger-ui"
    stages = [{"weight": 50, "pause": {"duration": "1h"}}, {"weight": 100, "pause": {"duration": "200ms"}}]
    body = s.rollout(
        name,
        strategy={"type": "canary", "canary": {"stages": stages}},
        database={"secretKeyRef": {"name": "rollouts-db", "key": "dsn"}},
        featureFlags=[{"name": "dark-mode", "enableAtStage": 1}],
    )
    pool = await asyncpg.create_pool(dsn, min_size=1, max_size=2)
    try:
        await pool.execute(
            "INSERT INTO feature_flags (namespace, name, enabled) VALUES ($1, 'dark-mode', false)",
            "elsewhere",
        )
        async with (
            running_operator(kube_api, namespaces=(namespace,)),
            s.availability(kube_api, k8s, namespace),
        ):
            s.create(k8s, namespace, body)
            await s.wait_status(k8s, namespace, name, lambda st: st.get("phase") == "Succeeded")
            s.patch_spec(k8s, namespace, name, {"template": s.template("web:2", name)})
            await s.wait_status(
                k8s,
                namespace,
                name,
                lambda st: st.get("currentStage") == 0 and (st.get("canaryWeight") or 0) > 0,
            )

            async def open_rows() -> list[Any]:
                return [r for r in await store.history(pool, namespace, name) if r["outcome"] is None]

            rows = []
            for _ in range(50):  # the rows are written right after the status
                rows = await open_rows()
                if rows:
                    break
                await asyncio.sleep(0.1)
            assert len(rows) == 1 and rows[0]["image"] == "web:2" and rows[0]["previous_revision"]
            s.patch_spec(k8s, namespace, name, {"request": {"action": "abort", "requestId": "stop-1"}})
            await s.wait_status(k8s, namespace, name, lambda st: st.get("abortReason") == "Aborted")
            s.patch_spec(k8s, namespace, name, {"template": s.template("web:3", name)})
            await s.wait_status(k8s, namespace, name, lambda st: (st.get("canaryWeight") or 0) > 0)
            s.patch_spec(k8s, namespace, name, {"request": {"action": "promoteFull", "requestId": "ship-3"}})
            await s.wait_status(
                k8s,
                namespace,
                name,
                lambda st: st.get("phase") == "Succeeded" and st.get("stableColour") == "green",
            )

            async def settled() -> list[Any]:
                rows = await store.history(pool, namespace, name)
                return rows if rows and rows[0]["outcome"] == "Succeeded" else []

            rows = []
            for _ in range(50):
                rows = await settled()
                if rows:
                    break
                await asyncio.sleep(0.1)
        outcomes = [(r["image"], r["outcome"]) for r in rows]
        assert [o for _, o in outcomes] == ["Succeeded", "RolledBack", "Succeeded"]
        assert rows[1]["reason"].startswith("Aborted: aborted by request stop-1")
        assert [step["weight"] for step in rows[0]["steps"]] == [50], "promoted fully from the first stage"
        assert rows[0]["image"] == "web:3" and rows[2]["previous_revision"] is None
        assert await store.flags(pool, namespace, name) == {"dark-mode": True}
        other = await pool.fetchval("SELECT enabled FROM feature_flags WHERE namespace = 'elsewhere'")
        assert other is False, "a flag of another namespace is not touched"
    finally:
        await pool.close()
