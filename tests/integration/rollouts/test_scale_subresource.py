"""The CanaryRollout scale subresource on a real API server: ``kubectl scale cro/NAME`` sets
spec.replicas and both colours follow (mid-canary each gets its share), the scale subresource reports
status.replicas and the pods' selector, and an autoscaling/v2 HorizontalPodAutoscaler targeting the
CanaryRollout is accepted (and, where the controllers run, reads the scale subresource)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from kubernetes import client

from fortress.api import GROUP, VERSION
from fortress.rollouts.traffic.replicas import split
from tests.integration.core.test_realapi import kubectl
from tests.integration.rollouts import support as s
from tests.support.kubeapi import KubeTarget, running_operator, wait_for

pytestmark = pytest.mark.realapi

STAGES = [{"weight": 25, "pause": {"untilPromoted": True}}, {"weight": 100, "pause": {"duration": "1s"}}]


@pytest.fixture(autouse=True)
def _quiet_kopf(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("WARNING", logger="kopf")


def _sizes(k8s: client.ApiClient, namespace: str, name: str) -> dict[str, int]:
    sizes = {}
    for colour in ("blue", "green"):
        found = s.deployment(k8s, namespace, f"{name}-{colour}")
        sizes[colour] = int((found or {}).get("spec", {}).get("replicas") or 0)
    return sizes


async def _sizes_become(k8s: client.ApiClient, namespace: str, name: str, want: dict[str, int]) -> None:
    try:
        await wait_for(lambda: _sizes(k8s, namespace, name) == want, timeout=60)
    except TimeoutError:
        pytest.fail(f"Deployments {_sizes(k8s, namespace, name)}, expected {want}")


async def _scale_object(target: KubeTarget, namespace: str, name: str) -> dict[str, Any]:
    path = f"/apis/{GROUP}/{VERSION}/namespaces/{namespace}/canaryrollouts/{name}/scale"
    _, out, _ = await kubectl(target, "get", "--raw", path)
    return json.loads(out)  # type: ignore[no-any-return]


async def test_kubectl_scale_moves_both_colours(
    real_kube_api: KubeTarget, k8s: client.ApiClient, namespace: str
) -> None:
    name = "shop"
    body = s.rollout(name, strategy={"type": "canary", "canary": {"stages": STAGES}})
    async with (
        running_operator(real_kube_api, namespaces=(namespace,)),
        s.availability(real_kube_api, k8s, namespace),
    ):
        s.create(k8s, namespace, body)
        await s.wait_status(k8s, namespace, name, lambda st: st.get("phase") == "Succeeded")
        scale = await _scale_object(real_kube_api, namespace, name)
        assert scale["kind"] == "Scale" and scale["spec"]["replicas"] == 4
        assert scale["status"] == {"replicas": 4, "selector": f"fortress.io/rollout={name}"}

        # at rest: the stable colour follows
        await kubectl(real_kube_api, "-n", namespace, "scale", f"cro/{name}", "--replicas=6")
        assert s.get(k8s, namespace, name)["spec"]["replicas"] == 6
        await _sizes_become(k8s, namespace, name, {"blue": 6, "green": 0})
        await s.wait_status(k8s, namespace, name, lambda st: st.get("replicas") == 6)

        # mid-canary (25 %, held until promoted): each colour gets its share of the new count
        s.patch_spec(k8s, namespace, name, {"template": s.template("web:2", name)})
        stable, canary = split(6, 25)
        await _sizes_become(k8s, namespace, name, {"blue": stable, "green": canary})
        await s.wait_status(k8s, namespace, name, lambda st: st.get("pauseReason") == "UntilPromoted")
        await kubectl(real_kube_api, "-n", namespace, "scale", f"cro/{name}", "--replicas=9")
        stable, canary = split(9, 25)
        await _sizes_become(k8s, namespace, name, {"blue": stable, "green": canary})
        held = await s.wait_status(
            k8s,
            namespace,
            name,
            lambda st: st.get("replicas") == stable + canary and st.get("pauseReason") == "UntilPromoted",
        )
        assert held["phase"] == "Paused" and held["currentStage"] == 0
        assert held["canaryWeight"] == round(100 * canary / (stable + canary))
        scale = await _scale_object(real_kube_api, namespace, name)
        assert scale["spec"]["replicas"] == 9 and scale["status"]["replicas"] == stable + canary

        # promoted: the new colour serves the new count
        s.send(k8s, namespace, name, "promote", "p-1")
        await s.wait_status(k8s, namespace, name, lambda st: st.get("stableColour") == "green", timeout=60)
        await _sizes_become(k8s, namespace, name, {"blue": 0, "green": 9})


def _hpa(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": name},
        "spec": {
            "scaleTargetRef": {"apiVersion": f"{GROUP}/{VERSION}", "kind": "CanaryRollout", "name": name},
            "minReplicas": 2,
            "maxReplicas": 10,
            "metrics": [
                {
                    "type": "Resource",
                    "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 70}},
                }
            ],
        },
    }


async def test_an_hpa_targeting_the_rollout_is_accepted(
    real_kube_api: KubeTarget, k8s: client.ApiClient, namespace: str
) -> None:
    name = "api"
    autoscaling = client.AutoscalingV2Api(k8s)
    async with (
        running_operator(real_kube_api, namespaces=(namespace,)),
        s.availability(real_kube_api, k8s, namespace),
    ):
        s.create(k8s, namespace, s.rollout(name))
        await s.wait_status(k8s, namespace, name, lambda st: bool(st.get("selector")))
        autoscaling.create_namespaced_horizontal_pod_autoscaler(namespace, _hpa(name), dry_run="All")
        created = autoscaling.create_namespaced_horizontal_pod_autoscaler(namespace, _hpa(name))
        assert created.spec.scale_target_ref.kind == "CanaryRollout"
        if not real_kube_api.controllers:
            return  # accepted; no HPA controller runs to read the scale subresource

        def read_scale() -> Any:
            hpa = autoscaling.read_namespaced_horizontal_pod_autoscaler(name, namespace)
            found = {c.type: c for c in (hpa.status.conditions or [])}
            able = found.get("AbleToScale")
            return able if able is not None and able.reason == "SucceededGetScale" else None

        # the HPA controller got the scale subresource (no metrics server runs here, so it cannot
        # compute a utilisation; it does not scale, which is why the count is not asserted)
        able = await wait_for(read_scale, timeout=90, interval=1)
        assert able.status == "True"
