"""CanaryRollout end to end: the operator in-process against the test Kubernetes API.

Deployments become available by the real controllers on the local control plane, and are simulated
only where no controller runs: see ``tests/integration/rollouts/support.py``.
"""

from __future__ import annotations

import asyncio
import re
from typing import Any

import pytest
from kubernetes import client

from fortress.rollouts.model import template_hash
from tests.integration.rollouts import support as s
from tests.support.kubeapi import KubeTarget, running_operator, wait_for


@pytest.fixture(autouse=True)
def _quiet_kopf(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("WARNING", logger="kopf")


def _phase(*phases: str) -> Any:
    return lambda st: st.get("phase") in phases


async def test_full_canary_to_success(kube_api: KubeTarget, k8s: client.ApiClient, namespace: str) -> None:
    name = "shop"
    body = s.rollout(name, featureFlags=[{"name": "new-cart", "enableAtStage": 1}])
    async with (
        running_operator(kube_api, namespaces=(namespace,)),
        s.availability(kube_api, k8s, namespace) as simulator,
    ):
        s.create(k8s, namespace, body)
        first = await s.wait_status(k8s, namespace, name, _phase("Succeeded"))
        assert s.condition(first, "Ready")["status"] == "True"
        assert first["stableColour"] == "blue"
        v1 = first["stableRevision"]
        assert s.service_selector(k8s, namespace, name) == {
            "fortress.io/rollout": name,
            "fortress.io/colour": "blue",
        }

        s.patch_spec(k8s, namespace, name, {"template": s.template("web:2", name)})
        seen: list[tuple[int | None, int | None, str | None]] = []

        def progress(st: dict[str, Any]) -> bool:
            point = (st.get("currentStage"), st.get("canaryWeight"), st.get("phase"))
            if not seen or seen[-1] != point:
                seen.append(point)
            return st.get("phase") == "Succeeded" and st.get("stableRevision") != v1

        done = await s.wait_status(k8s, namespace, name, progress, timeout=30)
        assert done["stableColour"] == "green"
        assert done["history"][0]["outcome"] == "Succeeded"
        weights = [w for stage, w, phase in seen if phase == "Progressing" and w]
        assert weights == sorted(weights) and weights[-1] == 100
        assert s.service_selector(k8s, namespace, name)["fortress.io/colour"] == "green"
        # the old colour scales down after scaleDownDelay (500ms)
        await s.wait_status(
            k8s,
            namespace,
            name,
            lambda st: (s.deployment_raw(k8s, namespace, f"{name}-blue") or {})["spec"]["replicas"] == 0,
        )
        reasons = [e.reason for e in s.events(k8s, namespace, name)]
        assert reasons.count("StageReached") == 3
        assert "Promoted" in reasons and "FlagEnabled" in reasons
        flags = client.CoreV1Api(k8s).read_namespaced_config_map(f"{name}-flags", namespace).data
        assert flags == {"new-cart": "true"}
        if simulator is not None:
            assert simulator.patched >= 3
        else:  # the real Deployment controller made the green pods: a ReplicaSet per template, all ready
            green = s.deployment_raw(k8s, namespace, f"{name}-green") or {}
            assert (green.get("status") or {}).get("readyReplicas") == green["spec"]["replicas"]
    await asyncio.sleep(0)


ROUTERS = ["replicas", "nginx", "gatewayAPI"]


@pytest.mark.parametrize("router", ROUTERS)
async def test_failed_analysis_rolls_back_and_traffic_is_stable_at_the_status_update(
    router: str,
    kube_api: KubeTarget,
    k8s: client.ApiClient,
    namespace: str,
    promlab: Any,
    request: pytest.FixtureRequest,
) -> None:
    name = "cart"
    s.require_router(request, router)
    s.create_router_objects(k8s, namespace, router, name)
    stages = [{"weight": 25, "pause": {"duration": "1m"}}, {"weight": 100, "pause": {"duration": "1m"}}]
    body = s.rollout(
        name,
        strategy={"type": "canary", "canary": {"stages": stages}},
        trafficRouting=s.routing(router, name),
        analysis={
            "prometheusAddress": promlab.url,
            "interval": "1s",
            "failureLimit": 0,
            "thresholds": {"maxErrorRate": 0.05, "maxP95LatencyMs": 500},
        },
        featureFlags=[{"name": "fast-cart", "enableAtStage": 0}],
        abortScaleDownDelay="1s",
    )
    v2 = template_hash(s.template("web:2", name))
    promlab.app.set(v2, error_rate=0.0, latency_ms=20, namespace=namespace, rollout=name)
    async with (
        running_operator(kube_api, namespaces=(namespace,)),
        s.availability(kube_api, k8s, namespace),
    ):
        s.create(k8s, namespace, body)
        await s.wait_status(k8s, namespace, name, _phase("Succeeded"))
        s.patch_spec(k8s, namespace, name, {"template": s.template("web:2", name)})
        measured = await s.wait_status(
            k8s, namespace, name, lambda st: any(m["result"] == "Successful" for m in st.get("metrics") or [])
        )
        assert measured["canaryWeight"] > 0 and measured["phase"] == "Progressing"
        assert s.canary_share(k8s, namespace, router, name) not in (None, 0) or router == "replicas"
        promlab.app.set(v2, error_rate=0.4, latency_ms=20, namespace=namespace, rollout=name)
        failed = await s.wait_status(k8s, namespace, name, _phase("Degraded", "RolledBack"), timeout=60)
        # read the traffic objects right at the status update that reports the rollback
        selector = s.service_selector(k8s, namespace, name)
        assert selector == {"fortress.io/rollout": name, "fortress.io/colour": "blue"}
        if router != "replicas":
            assert s.canary_share(k8s, namespace, router, name) == 0
        assert failed["canaryWeight"] == 0 and failed["abortReason"] == "AnalysisFailed"
        assert re.search(r"error-rate = 0\.\d+ > max 0\.05 at stage 1/2", failed["message"]), failed[
            "message"
        ]
        assert s.condition(failed, "Ready")["status"] == "False"
        assert s.condition(failed, "Ready")["reason"] == "AnalysisFailed"
        flags = client.CoreV1Api(k8s).read_namespaced_config_map(f"{name}-flags", namespace).data
        assert flags == {"fast-cart": "true"}, "the flag was on since the first release: stays on"
        await s.wait_status(k8s, namespace, name, _phase("RolledBack"), timeout=15)
        green = s.deployment_raw(k8s, namespace, f"{name}-green") or {}
        assert green["spec"]["replicas"] == 0
        # Events are posted right after the status write that reports them
        await wait_for(
            lambda: {"RolledBack", "ScaledDown"} <= {e.reason for e in s.events(k8s, namespace, name)}
        )
    promlab.app.forget(v2, namespace=namespace, rollout=name)
