"""API-server semantics Kopf relies on hold on every Kubernetes API the tests use (real or emulated)."""

from __future__ import annotations

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from fortress.api import GROUP, VERSION


def _configmap(api: client.CoreV1Api, namespace: str) -> client.V1ConfigMap:
    body = {"metadata": {"name": "semantics"}, "data": {"a": "1"}}
    return api.create_namespaced_config_map(namespace, body)


def test_json_patch_with_a_stale_resource_version_is_422(k8s: client.ApiClient, namespace: str) -> None:
    """Kopf adds finalizers with a JSON patch that tests resourceVersion and retries on 422 only."""
    api = client.CoreV1Api(k8s)
    created = _configmap(api, namespace)
    stale = created.metadata.resource_version
    api.patch_namespaced_config_map("semantics", namespace, {"data": {"a": "2"}})
    ops = [
        {"op": "test", "path": "/metadata/resourceVersion", "value": stale},
        {"op": "replace", "path": "/data/a", "value": "3"},
    ]
    with pytest.raises(ApiException) as raised:
        api.patch_namespaced_config_map("semantics", namespace, ops)
    assert raised.value.status == 422
    assert api.read_namespaced_config_map("semantics", namespace).data == {"a": "2"}


def test_json_patch_with_the_current_resource_version_applies(k8s: client.ApiClient, namespace: str) -> None:
    api = client.CoreV1Api(k8s)
    current = _configmap(api, namespace).metadata.resource_version
    ops = [
        {"op": "test", "path": "/metadata/resourceVersion", "value": current},
        {"op": "replace", "path": "/data/a", "value": "3"},
    ]
    api.patch_namespaced_config_map("semantics", namespace, ops)
    assert api.read_namespaced_config_map("semantics", namespace).data == {"a": "3"}


def test_status_patch_keeps_the_generation(k8s: client.ApiClient, namespace: str) -> None:
    api = client.CustomObjectsApi(k8s)
    body = {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "SyntheticDataset",
        "metadata": {"name": "semantics"},
        "spec": {
            "kind": "users",
            "count": 10,
            "target": {"type": "configMap", "configMap": "semantics-data"},
        },
    }
    api.create_namespaced_custom_object(GROUP, VERSION, namespace, "syntheticdatasets", body)
    patched = api.patch_namespaced_custom_object_status(
        GROUP, VERSION, namespace, "syntheticdatasets", "semantics", {"status": {"phase": "Probe"}}
    )
    assert patched["metadata"]["generation"] == 1
    assert patched["status"]["phase"] == "Probe"
