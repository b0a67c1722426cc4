"""CanaryRollout against the real Deployment, ReplicaSet, EndpointSlice and garbage-collector controllers.

These tests need the full local control plane (or a cluster): kube-controller-manager, kube-scheduler
and kwok's fake nodes make the Pods, their readiness and pod IPs, and the EndpointSlices. They skip,
with the reason, where no controller runs (and fail instead under ``CI=true``, see
tests/support/kubeapi.py). Pods that must never become ready carry the label kwok's Fortress stage
acts on (``fortress_dev.controlplane.POD_NEVER_READY_LABEL``).
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from kubernetes import client

from fortress.rollouts.model import template_hash
from fortress.rollouts.workload import STRATEGY
from fortress_dev.controlplane import POD_NEVER_READY_LABEL
from tests.integration.rollouts import observers as o
from tests.integration.rollouts import support as s
from tests.support.kubeapi import KubeTarget, running_operator, wait_for


@pytest.fixture(autouse=True)
def _quiet_kopf(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("WARNING", logger="kopf")


def _phase(*phases: str) -> Any:
    return lambda st: st.get("phase") in phases


async def _serving(k8s: client.ApiClient, namespace: str, service: str, ips: set[str]) -> set[str]:
    """Wait until the Service's EndpointSlices list exactly ``ips`` as ready; they."""
    await wait_for(lambda: o.serving_ips(k8s, namespace, service) == ips, timeout=30)
    return ips


async def _colour_serves(
    k8s: client.ApiClient, namespace: str, name: str, colour: str, pods: int
) -> set[str]:
    """The ready pod IPs of a colour once it has ``pods`` of them."""
    labels = o.colour_labels(name, colour)
    found: set[str] = await wait_for(
        lambda: (ips := o.ready_pod_ips(k8s, namespace, labels)) and len(ips) == pods and ips, timeout=30
    )
    return found


async def test_canary_pods_that_never_become_ready_hit_the_deadline_and_roll_back(
    controllers_kube_api: KubeTarget, k8s: client.ApiClient, namespace: str
) -> None:
    name = "stuck"
    body = s.rollout(name, replicas=2, progressDeadline="4s", abortScaleDownDelay="300ms")
    async with running_operator(controllers_kube_api, namespaces=(namespace,)):
        s.create(k8s, namespace, body)
        await s.wait_status(k8s, namespace, name, _phase("Succeeded"))
        blue_ips = await _colour_serves(k8s, namespace, name, "blue", 2)
        broken = s.template("web:2", name)
        broken["metadata"]["labels"][POD_NEVER_READY_LABEL] = "true"
        s.patch_spec(k8s, namespace, name, {"template": broken})

        # the canary's pod runs, with an IP, but kwok never marks it ready
        green = o.colour_labels(name, "green")
        stuck = await wait_for(lambda: [p for p in o.pods(k8s, namespace, green) if p.status.pod_ip])
        assert stuck[0].status.phase == "Running" and not o.pod_ready(stuck[0])

        failed = await s.wait_status(
            k8s, namespace, name, lambda st: st.get("abortReason") == "ProgressDeadlineExceeded"
        )
        assert failed["phase"] in ("Degraded", "RolledBack") and failed["stableColour"] == "blue"
        assert "green had 0/1 pods available after 4s (progressDeadline)" in failed["message"]
        assert s.service_selector(k8s, namespace, name)["fortress.io/colour"] == "blue"
        assert await _serving(k8s, namespace, name, blue_ips) == blue_ips, "only the stable pods serve"
        await s.wait_status(k8s, namespace, name, _phase("RolledBack"))
        # the canary colour is scaled down after abortScaleDownDelay and its pods go
        await wait_for(lambda: not o.pods(k8s, namespace, green), timeout=30)
        assert (s.deployment_raw(k8s, namespace, f"{name}-green") or {})["spec"]["replicas"] == 0
        rolled = [e for e in s.events(k8s, namespace, name) if e.reason == "RolledBack"]
        assert rolled and rolled[0].type == "Warning", [(e.reason, e.message) for e in rolled]


async def test_a_colour_rolls_its_pods_with_surge_and_never_below_its_replicas(
    controllers_kube_api: KubeTarget, k8s: client.ApiClient, namespace: str
) -> None:
    """A new release while the green preview runs 4 pods re-templates green: the Deployment controller
    rolls it with the operator's strategy (maxSurge 25 %: 1 pod, maxUnavailable 0)."""
    name, replicas = "surge", 4
    body = s.rollout(
        name,
        replicas=replicas,
        strategy={"type": "blueGreen", "blueGreen": {"previewService": f"{name}-preview"}},
    )
    async with running_operator(controllers_kube_api, namespaces=(namespace,)):
        s.create(k8s, namespace, body)
        await s.wait_status(k8s, namespace, name, _phase("Succeeded"))
        s.patch_spec(k8s, namespace, name, {"template": s.template("web:2", name)})
        await s.wait_status(k8s, namespace, name, lambda st: st.get("pauseReason") == "UntilPromoted")
        await _colour_serves(k8s, namespace, name, "green", replicas)
        green = s.deployment_raw(k8s, namespace, f"{name}-green") or {}
        rolling = {"maxSurge": "25%", "maxUnavailable": 0}
        assert green["spec"]["strategy"] == STRATEGY == {"type": "RollingUpdate", "rollingUpdate": rolling}

        labels = o.selector(o.colour_labels(name, "green"))
        apps, core = client.AppsV1Api(k8s), client.CoreV1Api(k8s)
        sets = o.Recorder(apps.list_namespaced_replica_set, namespace, o.replica_set_total, labels).start()
        ready = o.Recorder(core.list_namespaced_pod, namespace, o.ready_count, labels).start()
        live = o.Recorder(core.list_namespaced_pod, namespace, o.live_count, labels).start()
        try:
            web3 = s.template("web:3", name)
            revision = template_hash(web3)
            s.patch_spec(k8s, namespace, name, {"template": web3})
            await s.wait_status(
                k8s,
                namespace,
                name,
                lambda st: (
                    st.get("canaryRevision") == revision
                    and st.get("pauseReason") == "UntilPromoted"
                    and st.get("stageReadyAt")
                ),
            )
            labelled = {**o.colour_labels(name, "green"), "fortress.io/revision": revision}
            await wait_for(lambda: len(o.ready_pod_ips(k8s, namespace, labelled)) == replicas, timeout=30)
            await wait_for(lambda: len(o.pods(k8s, namespace, o.colour_labels(name, "green"))) == replicas)
        finally:
            totals, readiness, alive = await asyncio.to_thread(
                lambda: (sets.stop(), ready.stop(), live.stop())
            )
        assert sets.events > 0 and ready.events > 0, "the watches saw the update"
        assert max(totals) == replicas + 1, f"maxSurge 25 % of {replicas}: one pod more, no more: {totals}"
        assert min(readiness) >= replicas, f"maxUnavailable 0: never fewer ready pods: {readiness}"

        def sizes() -> list[int]:
            found = apps.list_namespaced_replica_set(namespace, label_selector=labels).items
            return sorted(int(rs.spec.replicas or 0) for rs in found)

        # green's ReplicaSets: web:2's scaled to 0 (the controller's last write), web:3's with every pod
        await wait_for(lambda: sizes() == [0, replicas], timeout=30)
        assert max(alive) >= replicas + 1, "a surge pod ran beside the old ones"


async def test_deleting_a_rollout_collects_everything_it_owns(
    controllers_kube_api: KubeTarget, k8s: client.ApiClient, namespace: str
) -> None:
    name = "gone"
    body = s.rollout(
        name,
        replicas=2,
        strategy={"type": "blueGreen", "blueGreen": {"previewService": f"{name}-preview"}},
        featureFlags=[{"name": "beta"}],
    )
    apps, core = client.AppsV1Api(k8s), client.CoreV1Api(k8s)
    mine, preview = o.selector({"fortress.io/rollout": name}), f"{name}-preview"

    def owned() -> dict[str, list[str]]:
        def names(items: Any) -> list[str]:
            return sorted(x.metadata.name for x in items)

        services = {x.metadata.name for x in core.list_namespaced_service(namespace).items}
        maps = {x.metadata.name for x in core.list_namespaced_config_map(namespace).items}
        slices = [*o.service_slices(k8s, namespace, name), *o.service_slices(k8s, namespace, preview)]
        return {
            "deployments": names(apps.list_namespaced_deployment(namespace, label_selector=mine).items),
            "replicasets": names(apps.list_namespaced_replica_set(namespace, label_selector=mine).items),
            "pods": names(core.list_namespaced_pod(namespace, label_selector=mine).items),
            "services": sorted(services & {name, f"{name}-preview"}),
            "configmaps": sorted(maps & {f"{name}-flags"}),
            "endpointslices": sorted(slices),
        }

    async with running_operator(controllers_kube_api, namespaces=(namespace,)):
        s.create(k8s, namespace, body)
        await s.wait_status(k8s, namespace, name, _phase("Succeeded"))
        s.patch_spec(k8s, namespace, name, {"template": s.template("web:2", name)})
        await s.wait_status(k8s, namespace, name, lambda st: st.get("pauseReason") == "UntilPromoted")
        await _colour_serves(k8s, namespace, name, "green", 2)
        before = owned()
        assert {k: len(v) for k, v in before.items()} == {
            "deployments": 2,
            "replicasets": 2,
            "pods": 4,
            "services": 2,
            "configmaps": 1,
            "endpointslices": 2,
        }, before
        s.custom(k8s).delete_namespaced_custom_object(s.GROUP, s.VERSION, namespace, s.PLURAL, name)
        # the garbage collector follows the ownerReferences: rollout -> Deployments, Services,
        # ConfigMap; Deployment -> ReplicaSets -> Pods; Service -> EndpointSlices
        after = await wait_for(lambda: (found := owned()) and not any(found.values()) and found, timeout=60)
        assert not any(after.values())
        assert s.deployment_raw(k8s, namespace, f"{name}-blue") is None


async def test_taking_over_a_live_deployment_never_leaves_the_service_without_endpoints(
    controllers_kube_api: KubeTarget, k8s: client.ApiClient, namespace: str
) -> None:
    name, app = "legacy", "legacy-app"
    apps, core = client.AppsV1Api(k8s), client.CoreV1Api(k8s)
    service = {
        "metadata": {"name": name},
        "spec": {"selector": {"app": name}, "ports": [{"port": 8080, "targetPort": 8080}]},
    }
    core.create_namespaced_service(namespace, service)
    existing = {
        "metadata": {"name": app},
        "spec": {
            "replicas": 3,
            "selector": {"matchLabels": {"app": name}},
            "template": s.template("legacy:7", name),
        },
    }
    apps.create_namespaced_deployment(namespace, existing)
    legacy_ips = await wait_for(
        lambda: (ips := o.ready_pod_ips(k8s, namespace, {"app": name})) and len(ips) == 3 and ips
    )
    await _serving(k8s, namespace, name, legacy_ips)

    body = s.rollout(name)
    del body["spec"]["template"]
    body["spec"]["workloadRef"] = {"name": app}
    watched = o.endpoint_slice_recorder(k8s, namespace, name).start()
    try:
        async with (
            o.sample_every(0.05, lambda: o.serving_ips(k8s, namespace, name)) as samples,
            running_operator(controllers_kube_api, namespaces=(namespace,)),
        ):
            s.create(k8s, namespace, body)
            await s.wait_status(k8s, namespace, name, _phase("Succeeded"))
            await wait_for(lambda: (s.deployment_raw(k8s, namespace, app) or {})["spec"]["replicas"] == 0)
            # until the taken-over pods are gone and only the rollout's serve
            await wait_for(
                lambda: (
                    not [
                        p
                        for p in o.pods(k8s, namespace, {"app": name})
                        if "fortress.io/rollout" not in (p.metadata.labels or {})
                    ]
                )
            )
            blue_ips = await _colour_serves(k8s, namespace, name, "blue", 4)
            await _serving(k8s, namespace, name, blue_ips)
            await asyncio.sleep(0.2)  # a few samples of the final state
    finally:
        states = await asyncio.to_thread(watched.stop)
    assert watched.events > 0 and samples  # both observers ran (how many samples depends on load)
    assert states[0] == legacy_ips and samples[0] == legacy_ips
    assert all(states), f"a state of the EndpointSlices without a ready endpoint: {states}"
    assert all(samples), "a sample without a ready endpoint"
    assert states[-1] == blue_ips and not (blue_ips & legacy_ips)
    assert s.service_selector(k8s, namespace, name) == o.colour_labels(name, "blue")


async def test_the_stable_service_endpoints_follow_promotion_and_abort(
    controllers_kube_api: KubeTarget, k8s: client.ApiClient, namespace: str
) -> None:
    name = "follow"
    stages = [{"weight": 50, "pause": {"duration": "1h"}}, {"weight": 100, "pause": {"duration": "200ms"}}]
    body = s.rollout(name, replicas=2, scaleDownDelay="300ms", abortScaleDownDelay="300ms")
    async with running_operator(controllers_kube_api, namespaces=(namespace,)):
        s.create(k8s, namespace, body)
        await s.wait_status(k8s, namespace, name, _phase("Succeeded"))
        blue = await _colour_serves(k8s, namespace, name, "blue", 2)
        await _serving(k8s, namespace, name, blue)

        s.patch_spec(k8s, namespace, name, {"template": s.template("web:2", name)})
        promoted = await s.wait_status(
            k8s,
            namespace,
            name,
            lambda st: st.get("phase") == "Succeeded" and st.get("stableColour") == "green",
        )
        green = await _colour_serves(k8s, namespace, name, "green", 2)
        assert await _serving(k8s, namespace, name, green) == green, "after promotion: green's pods"
        await wait_for(lambda: not o.pods(k8s, namespace, o.colour_labels(name, "blue")), timeout=30)
        assert o.serving_ips(k8s, namespace, name) == green

        s.patch_spec(
            k8s,
            namespace,
            name,
            {
                "template": s.template("web:3", name),
                "strategy": {"type": "canary", "canary": {"stages": stages}},
            },
        )
        running = await s.wait_status(k8s, namespace, name, lambda st: (st.get("canaryWeight") or 0) > 0)
        assert running["canaryRevision"] != promoted["stableRevision"]
        # the replicas router at 50 %: the stable colour keeps its 2 pods, the canary gets as many,
        # and the Service selects both colours' ready pods
        canary = await _colour_serves(k8s, namespace, name, "blue", 2)
        assert await _serving(k8s, namespace, name, green | canary) == green | canary
        s.patch_spec(k8s, namespace, name, {"request": {"action": "abort", "requestId": "stop"}})
        await s.wait_status(k8s, namespace, name, lambda st: st.get("abortReason") == "Aborted")
        await s.wait_status(k8s, namespace, name, _phase("RolledBack"))
        await wait_for(lambda: not o.pods(k8s, namespace, o.colour_labels(name, "blue")), timeout=30)
        assert await _colour_serves(k8s, namespace, name, "green", 2) == green, "the stable pods stayed"
        assert await _serving(k8s, namespace, name, green) == green, "after the abort: green's pods only"
        assert s.service_selector(k8s, namespace, name)["fortress.io/colour"] == "green"
