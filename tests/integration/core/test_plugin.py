"""``kubectl fortress get`` against the Kubernetes API fixture, with the operator running."""

from __future__ import annotations

import asyncio
import json

import pytest
from kubernetes import client

from fortress import plugin
from fortress.api import GROUP, VERSION
from tests.support.kubeapi import KubeTarget, running_operator, wait_for
from tests.support.reconcilers import SPEC_READY


async def test_get_lists_resources_and_exit_codes(
    kube_api: KubeTarget, k8s: client.ApiClient, namespace: str, capsys: pytest.CaptureFixture[str]
) -> None:
    api = client.CustomObjectsApi(k8s)
    good = {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "SyntheticDataset",
        "metadata": {"name": "good"},
        "spec": {"kind": "users", "count": 10},
    }
    bad = {**good, "metadata": {"name": "bad"}, "spec": {"kind": "users", "count": 10, "users": 5}}
    argv = ["--kubeconfig", str(kube_api.kubeconfig), "get", "-n", namespace]
    async with running_operator(kube_api, namespaces=(namespace,), reconcilers=SPEC_READY):
        api.create_namespaced_custom_object(GROUP, VERSION, namespace, "syntheticdatasets", good)
        await wait_for(lambda: plugin.main([*argv, "-o", "json"]) == plugin.EXIT_OK)
        capsys.readouterr()
        assert await asyncio.to_thread(plugin.main, argv) == plugin.EXIT_OK
        table = capsys.readouterr().out
        assert "SyntheticDataset" in table and "good" in table and "Accepted" in table

        api.create_namespaced_custom_object(GROUP, VERSION, namespace, "syntheticdatasets", bad)
        await wait_for(lambda: plugin.main([*argv, "-o", "json"]) == plugin.EXIT_NOT_READY)
        capsys.readouterr()
        assert await asyncio.to_thread(plugin.main, [*argv, "-o", "json"]) == plugin.EXIT_NOT_READY
        rows = {r["name"]: r for r in json.loads(capsys.readouterr().out)["items"]}
        assert rows["bad"]["reason"] == "InvalidSpec" and rows["good"]["ready"] == "True"


def test_usage_and_api_errors(tmp_path: object, capsys: pytest.CaptureFixture[str]) -> None:
    assert plugin.main([]) == plugin.EXIT_USAGE
    assert plugin.main(["--kubeconfig", "/nonexistent/kubeconfig", "get"]) == plugin.EXIT_API
    assert "error:" in capsys.readouterr().err
