"""SyntheticDataset with a ConfigMap target, and a spec the corpora cannot serve, against the local API."""

from __future__ import annotations

import hashlib
from typing import Any

from kubernetes import client

from fortress.api import GROUP, VERSION
from fortress.synthetic import render
from fortress.synthetic.generate import Recipe, blocks, generator
from tests.support.kubeapi import KubeTarget, running_operator, wait_for

PLURAL = "syntheticdatasets"


def _dataset(name: str, **spec: Any) -> dict[str, Any]:
    body = {"kind": "users", "count": 300, "seed": 5, "target": {"type": "configMap"}, **spec}
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "SyntheticDataset",
        "metadata": {"name": name},
        "spec": body,
    }


def _ready(api: client.CustomObjectsApi, namespace: str, name: str) -> dict[str, Any]:
    obj = api.get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name)
    return next((c for c in (obj.get("status") or {}).get("conditions") or [] if c["type"] == "Ready"), {})


async def test_a_configmap_dataset_its_digest_and_a_foreign_configmap(
    kube_api: KubeTarget, k8s: client.ApiClient, namespace: str
) -> None:
    api, core = client.CustomObjectsApi(k8s), client.CoreV1Api(k8s)
    core.create_namespaced_config_map(namespace, {"metadata": {"name": "taken"}, "data": {"mine": "yes"}})
    async with running_operator(kube_api, namespaces=(namespace,)):
        api.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, _dataset("small"))
        api.create_namespaced_custom_object(
            GROUP,
            VERSION,
            namespace,
            PLURAL,
            _dataset("clash", target={"type": "configMap", "configMap": "taken"}),
        )
        api.create_namespaced_custom_object(
            GROUP, VERSION, namespace, PLURAL, _dataset("nowhere", locale="xx_ZZ")
        )
        await wait_for(lambda: _ready(api, namespace, "small").get("status") == "True", timeout=60)
        clash = await wait_for(
            lambda: (r := _ready(api, namespace, "clash")).get("reason") == "TargetNotOwned" and r
        )
        nowhere = await wait_for(
            lambda: (r := _ready(api, namespace, "nowhere")).get("reason") == "InvalidSpec" and r
        )
    status = api.get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, "small")["status"]
    expected = hashlib.sha256(
        "".join(render.text(b) for b in blocks(generator(Recipe("users", 300, seed=5)))).encode()
    ).hexdigest()
    assert status["digest"] == expected and status["generated"] == 300
    assert status["quality"]["uniqueRecords"] == 1.0 and status["quality"]["learned"]
    data = core.read_namespaced_config_map("small-data", namespace).data["users.csv"].splitlines()
    assert data[0].startswith("id,first_name,last_name,email,age,city") and len(data) == 301
    assert "spec.target.configMap" in clash["message"] and clash["status"] == "False"
    assert core.read_namespaced_config_map("taken", namespace).data == {"mine": "yes"}
    assert "spec.locale" in nowhere["message"] and "ZZ" in nowhere["message"]
