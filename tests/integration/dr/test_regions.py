"""A DRRegion and its plan in the running operator: the plan's loop owns the region's status, and the
region says so itself when its plan does not exist (before it is created, and once it is deleted)."""

from __future__ import annotations

from typing import Any

from kubernetes import client

from fortress.api import GROUP, VERSION
from fortress_dev.localregions import THREE_CLOUDS, plan_manifest, region_manifest
from tests.support.kubeapi import KubeTarget, running_operator, wait_for


def _ready(api: client.CustomObjectsApi, namespace: str) -> dict[str, Any]:
    obj = api.get_namespaced_custom_object(GROUP, VERSION, namespace, "drregions", "ghost-aws-us-east-1")
    for condition in (obj.get("status") or {}).get("conditions") or []:
        if condition.get("type") == "Ready":
            return dict(condition)
    return {}


def _warnings(core: client.CoreV1Api, namespace: str, reason: str) -> list[Any]:
    items = core.list_namespaced_event(namespace).items
    return [e for e in items if e.reason == reason and e.type == "Warning"]


async def test_a_region_says_when_its_plan_is_missing(
    kube_api: KubeTarget, k8s: client.ApiClient, namespace: str
) -> None:
    api, core = client.CustomObjectsApi(k8s), client.CoreV1Api(k8s)
    region = region_manifest("ghost", namespace, THREE_CLOUDS[0], "no-such-secret", 5432)
    async with running_operator(kube_api, namespaces=(namespace,)):
        api.create_namespaced_custom_object(GROUP, VERSION, namespace, "drregions", region)
        missing = await wait_for(lambda: (r := _ready(api, namespace)).get("reason") == "PlanNotFound" and r)
        assert missing["status"] == "False" and "DRPlan ghost not found" in missing["message"]
        assert await wait_for(lambda: _warnings(core, namespace, "PlanNotFound"), timeout=10)

        # the plan's checks write the region's status (here: its Secret is missing)
        plan = plan_manifest("ghost", namespace, service="ghost-db")
        api.create_namespaced_custom_object(GROUP, VERSION, namespace, "drplans", plan)
        checked = await wait_for(lambda: (r := _ready(api, namespace)).get("reason") == "Unreachable" and r)
        assert "Secret" in checked["message"] and "no-such-secret" in checked["message"]

        # the plan is deleted: the region says so again (the same outcome as before the plan existed)
        api.delete_namespaced_custom_object(GROUP, VERSION, namespace, "drplans", "ghost")
        again = await wait_for(lambda: (r := _ready(api, namespace)).get("reason") == "PlanNotFound" and r)
        assert again["status"] == "False"
