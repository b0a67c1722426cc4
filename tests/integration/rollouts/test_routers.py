"""The nginx and Gateway API routers write the right objects through a whole release, and nothing else.

Deployments become available by the real controllers, simulated only where none runs: see support.py.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest
from kubernetes import client

from tests.integration.rollouts import support as s
from tests.support.kubeapi import KubeTarget, running_operator, wait_for


@pytest.fixture(autouse=True)
def _quiet_kopf(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("WARNING", logger="kopf")


STAGES = [
    {"weight": 10, "pause": {"untilPromoted": True}},
    {"weight": 40, "pause": {"untilPromoted": True}},
    {"weight": 100, "pause": {"duration": "200ms"}},
]


def _without_weights(route: dict[str, Any]) -> dict[str, Any]:
    """The route's spec with backendRef weights and the added canary ref removed."""
    spec = copy.deepcopy(route["spec"])
    for rule in spec["rules"]:
        refs = [r for r in rule.get("backendRefs", []) if not r["name"].endswith("-canary")]
        for ref in refs:
            ref.pop("weight", None)
        rule["backendRefs"] = refs
    return spec  # type: ignore[no-any-return]


async def _walk_stages(k8s: client.ApiClient, namespace: str, name: str, observe: Any) -> list[Any]:
    """Release web:2 and promote through the untilPromoted stages, calling ``observe`` at each."""
    seen = []
    s.patch_spec(k8s, namespace, name, {"template": s.template("web:2", name)})
    for stage in (0, 1):
        await s.wait_status(
            k8s,
            namespace,
            name,
            lambda st, stage=stage: (
                st.get("currentStage") == stage and st.get("pauseReason") == "UntilPromoted"
            ),
        )
        seen.append(observe())
        s.send(k8s, namespace, name, "promote", f"promote-{stage}")
    await s.wait_status(
        k8s, namespace, name, lambda st: st.get("phase") == "Succeeded" and st.get("stableColour") == "green"
    )
    seen.append(observe())
    return seen


async def test_nginx_canary_ingress(kube_api: KubeTarget, k8s: client.ApiClient, namespace: str) -> None:
    name = "store"
    s.create_router_objects(k8s, namespace, "nginx", name)
    stable_before = s.ingress(k8s, namespace, name)
    body = s.rollout(
        name,
        strategy={"type": "canary", "canary": {"stages": STAGES}},
        trafficRouting=s.routing("nginx", name),
    )
    async with running_operator(kube_api, namespaces=(namespace,)), s.availability(kube_api, k8s, namespace):
        s.create(k8s, namespace, body)
        await s.wait_status(k8s, namespace, name, lambda st: st.get("phase") == "Succeeded")
        canary = s.ingress(k8s, namespace, f"{name}-canary")
        assert canary is not None
        annotations = canary["metadata"]["annotations"]
        assert annotations == {
            "kubernetes.io/ingress.class": "nginx",
            "nginx.ingress.kubernetes.io/canary": "true",
            "nginx.ingress.kubernetes.io/canary-weight": "0",
        }
        assert canary["spec"]["tls"] == stable_before["spec"]["tls"]  # type: ignore[index]
        paths = canary["spec"]["rules"][0]["http"]["paths"]
        assert paths[0]["backend"]["service"] == {"name": f"{name}-canary", "port": {"number": 8080}}
        assert paths[1]["backend"]["service"]["name"] == "cdn"
        assert canary["metadata"]["ownerReferences"][0]["kind"] == "CanaryRollout"

        def observe() -> tuple[str | None, dict[str, str], dict[str, str]]:
            found = s.ingress(k8s, namespace, f"{name}-canary") or {}
            weight = (
                (found.get("metadata") or {})
                .get("annotations", {})
                .get("nginx.ingress.kubernetes.io/canary-weight")
            )
            return (
                weight,
                s.service_selector(k8s, namespace, name),
                s.service_selector(k8s, namespace, f"{name}-canary"),
            )

        seen = await _walk_stages(k8s, namespace, name, observe)
        assert [w for w, _, _ in seen] == ["10", "40", "0"]
        assert seen[0][1]["fortress.io/colour"] == "blue" and seen[0][2]["fortress.io/colour"] == "green"
        assert seen[-1][1]["fortress.io/colour"] == "green", "the stable Service follows the promotion"
        stable_after = s.ingress(k8s, namespace, name)
        assert stable_after["spec"] == stable_before["spec"]  # type: ignore[index]
        assert stable_after["metadata"]["annotations"] == stable_before["metadata"]["annotations"]  # type: ignore[index]


async def test_gateway_httproute_weights_keep_everything_else(
    kube_api: KubeTarget, k8s: client.ApiClient, namespace: str, gateway_api: str
) -> None:
    name = "catalog"
    s.create_router_objects(k8s, namespace, "gatewayAPI", name)
    before = s.route(k8s, namespace, name)
    assert before is not None
    body = s.rollout(
        name,
        strategy={"type": "canary", "canary": {"stages": STAGES}},
        trafficRouting=s.routing("gatewayAPI", name),
    )
    async with running_operator(kube_api, namespaces=(namespace,)), s.availability(kube_api, k8s, namespace):
        s.create(k8s, namespace, body)
        await s.wait_status(k8s, namespace, name, lambda st: st.get("phase") == "Succeeded")

        def observe() -> dict[str, Any]:
            return s.route(k8s, namespace, name) or {}

        seen = await _walk_stages(k8s, namespace, name, observe)
        weights = [
            [(r["name"], r.get("weight")) for r in route["spec"]["rules"][0]["backendRefs"]] for route in seen
        ]
        assert weights == [
            [(name, 90), (f"{name}-canary", 10)],
            [(name, 60), (f"{name}-canary", 40)],
            [(name, 100), (f"{name}-canary", 0)],
        ]
        for route in seen:
            assert _without_weights(route) == _without_weights(before)
            assert route["spec"]["rules"][0]["filters"] == before["spec"]["rules"][0]["filters"]
            assert route["spec"]["rules"][1] == before["spec"]["rules"][1]
            assert route["spec"]["parentRefs"] == before["spec"]["parentRefs"]
            assert route["metadata"]["annotations"] == before["metadata"]["annotations"]
        canary_ref = seen[0]["spec"]["rules"][0]["backendRefs"][1]
        assert canary_ref["port"] == 8080
        assert s.service_selector(k8s, namespace, f"{name}-canary")["fortress.io/colour"] == "blue"


async def test_missing_stable_ingress_is_reported_not_hidden(
    kube_api: KubeTarget, k8s: client.ApiClient, namespace: str
) -> None:
    name = "orphan"
    body = s.rollout(name, trafficRouting=s.routing("nginx", "no-such-ingress"))
    async with running_operator(kube_api, namespaces=(namespace,)), s.availability(kube_api, k8s, namespace):
        s.create(k8s, namespace, body)
        found = await s.wait_status(
            k8s, namespace, name, lambda st: s.condition(st, "Ready").get("reason") == "ApplyFailed"
        )
        assert "stable Ingress" in found["message"] and "no-such-ingress not found" in found["message"]
        assert s.condition(found, "Ready")["status"] == "False"

        def warnings() -> list[Any]:  # posted right after the status write
            return [e for e in s.events(k8s, namespace, name) if e.reason == "ApplyFailed"]

        posted = await wait_for(warnings, timeout=30)
        assert posted[0].type == "Warning"
