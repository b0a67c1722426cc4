"""``kubectl fortress get``: owned objects as a tree, kind and name filters, and ``--watch``, against
the Kubernetes API fixture with the operator running."""

from __future__ import annotations

import asyncio
import itertools
import json
from typing import Any

import pytest
from kubernetes import client

from fortress import plugin
from fortress.api import GROUP, VERSION
from fortress_dev.controlplane import POD_NEVER_READY_LABEL
from tests.support.kubeapi import KubeTarget, running_operator, wait_for
from tests.support.reconcilers import SPEC_READY

DATASET = {
    "apiVersion": f"{GROUP}/{VERSION}",
    "kind": "SyntheticDataset",
    "spec": {"kind": "users", "count": 10},
}


def _dataset(name: str) -> dict[str, Any]:
    return {**DATASET, "metadata": {"name": name}}


def _owner(obj: dict[str, Any]) -> list[dict[str, Any]]:
    meta = obj["metadata"]
    return [{"apiVersion": obj["apiVersion"], "kind": obj["kind"], "name": meta["name"], "uid": meta["uid"]}]


def _create_owned(k8s: client.ApiClient, namespace: str, owner: dict[str, Any]) -> None:
    core, apps = client.CoreV1Api(k8s), client.AppsV1Api(k8s)
    refs = _owner(owner)
    core.create_namespaced_config_map(
        namespace,
        {"metadata": {"name": "decoys-ring", "ownerReferences": refs}, "data": {"a": "1", "b": "2"}},
    )
    core.create_namespaced_config_map(namespace, {"metadata": {"name": "unrelated"}, "data": {"x": "1"}})
    # No selector: its Endpoints are written by hand, not by an endpoints controller (where one runs).
    core.create_namespaced_service(
        namespace,
        {"metadata": {"name": "decoys", "ownerReferences": refs}, "spec": {"ports": [{"port": 80}]}},
    )
    core.create_namespaced_endpoints(
        namespace,
        {
            "metadata": {"name": "decoys", "ownerReferences": refs},
            "subsets": [{"addresses": [{"ip": "10.0.0.7"}, {"ip": "10.0.0.8"}], "ports": [{"port": 80}]}],
        },
    )
    apps.create_namespaced_deployment(
        namespace,
        {
            "metadata": {"name": "decoys-green", "ownerReferences": refs},
            "spec": {
                "replicas": 2,
                "selector": {"matchLabels": {"app": "decoys"}},
                "template": {
                    # Where controllers and kwok's nodes run, its pods run but never become Ready.
                    "metadata": {"labels": {"app": "decoys", POD_NEVER_READY_LABEL: "true"}},
                    "spec": {"containers": [{"name": "app", "image": "example/app:1"}]},
                },
            },
        },
    )


async def test_get_shows_owned_objects_as_a_tree(
    kube_api: KubeTarget, k8s: client.ApiClient, namespace: str, capsys: pytest.CaptureFixture[str]
) -> None:
    custom = client.CustomObjectsApi(k8s)
    argv = ["--kubeconfig", str(kube_api.kubeconfig), "get", "-n", namespace]
    async with running_operator(kube_api, namespaces=(namespace,), reconcilers=SPEC_READY):
        created = custom.create_namespaced_custom_object(
            GROUP, VERSION, namespace, "syntheticdatasets", _dataset("decoys")
        )
        _create_owned(k8s, namespace, created)
        await wait_for(lambda: plugin.main([*argv, "-o", "json"]) == plugin.EXIT_OK)
        capsys.readouterr()

        assert await asyncio.to_thread(plugin.main, [*argv, "-o", "json"]) == plugin.EXIT_OK
        (item,) = json.loads(capsys.readouterr().out)["items"]
        owned = {(o["kind"], o["name"]): o["status"] for o in item["owned"]}
        assert owned == {
            ("ConfigMap", "decoys-ring"): "2 keys",
            ("Deployment", "decoys-green"): "0/2 ready",
            ("Endpoints", "decoys"): "2 addresses",
            ("Service", "decoys"): owned[("Service", "decoys")],
        }
        assert owned[("Service", "decoys")].startswith("ClusterIP")
        assert item["ready"] == "True" and item["owner"] is None

        assert await asyncio.to_thread(plugin.main, argv) == plugin.EXIT_OK
        table = capsys.readouterr().out
        lines = table.splitlines()
        assert lines[0].split() == ["NAMESPACE", "NAME", "READY", "PHASE", "REASON", "AGE"]
        assert "SyntheticDataset/decoys" in lines[1] and "True" in lines[1]
        assert "├─ ConfigMap/decoys-ring" in table and "└─ Service/decoys" in table
        assert "unrelated" not in table

        assert await asyncio.to_thread(plugin.main, [*argv, "--no-owned"]) == plugin.EXIT_OK
        assert "ConfigMap" not in capsys.readouterr().out


async def test_get_filters_by_kind_and_name(
    kube_api: KubeTarget, k8s: client.ApiClient, namespace: str, capsys: pytest.CaptureFixture[str]
) -> None:
    custom = client.CustomObjectsApi(k8s)
    base = ["--kubeconfig", str(kube_api.kubeconfig), "get"]
    for name in ("one", "two"):
        custom.create_namespaced_custom_object(GROUP, VERSION, namespace, "syntheticdatasets", _dataset(name))

    def names(*args: str) -> list[str]:
        capsys.readouterr()
        plugin.main([*base, *args, "-n", namespace, "-o", "json", "--no-owned"])
        return sorted(item["name"] for item in json.loads(capsys.readouterr().out)["items"])

    assert names() == ["one", "two"]
    assert names("synth") == names("SyntheticDataset") == names("syntheticdatasets") == ["one", "two"]
    assert names("synth", "two") == ["two"]
    assert names("cro") == []
    capsys.readouterr()
    assert plugin.main([*base, "widgets"]) == plugin.EXIT_USAGE
    assert "unknown kind 'widgets'" in capsys.readouterr().err
    # Nothing reconciles these (no operator here): not Ready, exit 1.
    assert plugin.main([*base, "synth", "-n", namespace]) == plugin.EXIT_NOT_READY


async def test_watch_re_renders_on_change_until_ready(
    kube_api: KubeTarget, k8s: client.ApiClient, namespace: str, capsys: pytest.CaptureFixture[str]
) -> None:
    custom = client.CustomObjectsApi(k8s)
    argv = ["--kubeconfig", str(kube_api.kubeconfig), "get", "-n", namespace, "-o", "json"]
    argv += ["--watch", "--until-ready", "--interval", "0.2", "--timeout", "60"]
    async with running_operator(kube_api, namespaces=(namespace,), reconcilers=SPEC_READY):
        watching = asyncio.create_task(asyncio.to_thread(plugin.main, argv))
        await asyncio.sleep(1.0)
        custom.create_namespaced_custom_object(
            GROUP, VERSION, namespace, "syntheticdatasets", _dataset("late")
        )
        code = await watching
    documents = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.strip()]
    assert documents[0]["items"] == []
    assert documents[-1]["items"][0]["name"] == "late" and documents[-1]["items"][0]["ready"] == "True"
    assert len(documents) >= 2 and all(a != b for a, b in itertools.pairwise(documents))  # only changes
    assert code == plugin.EXIT_OK
