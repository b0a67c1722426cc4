"""The running operator serves /healthz (Kopf liveness) and /metrics (Prometheus) on its ports."""

from __future__ import annotations

import asyncio
import socket

import aiohttp
import pytest
from kubernetes import client

from fortress.api import GROUP, VERSION
from tests.support.kubeapi import KubeTarget, running_operator


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def get_when_listening(http: aiohttp.ClientSession, url: str) -> dict[str, object]:
    """GET a JSON endpoint, retrying while its server is still binding (Kopf starts it concurrently)."""
    for _ in range(100):
        try:
            async with http.get(url) as response:
                assert response.status == 200
                return await response.json()  # type: ignore[no-any-return]
        except aiohttp.ClientConnectorError:
            await asyncio.sleep(0.1)
    raise AssertionError(f"nothing listens on {url}")


async def test_liveness_and_metrics(kube_api: KubeTarget, k8s: client.ApiClient, namespace: str) -> None:
    liveness, metrics_port = free_port(), free_port()
    api = client.CustomObjectsApi(k8s)
    body = {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "ComplianceScan",
        "metadata": {"name": "probe"},
        "spec": {"frameworks": ["SOC2"], "schedule": "not a cron"},
    }
    async with (
        running_operator(
            kube_api, namespaces=(namespace,), liveness_port=liveness, metrics_port=metrics_port
        ),
        aiohttp.ClientSession() as http,
    ):
        probe = await get_when_listening(http, f"http://127.0.0.1:{liveness}/healthz")
        assert probe["kinds"] == 7
        api.create_namespaced_custom_object(GROUP, VERSION, namespace, "compliancescans", body)

        async def scrape() -> str:
            async with http.get(f"http://127.0.0.1:{metrics_port}/metrics") as response:
                assert response.status == 200
                return await response.text()

        text = ""
        labels = f'kind="ComplianceScan",name="probe",namespace="{namespace}"'
        for _ in range(600):  # this object's own series (other tests may have counted invalid scans)
            text = await scrape()
            counted = 'fortress_operator_reconciles_total{kind="ComplianceScan",result="invalid"}' in text
            if counted and f"fortress_operator_resource_ready{{{labels}}}" in text:
                break
            await asyncio.sleep(0.1)
        assert 'fortress_operator_invalid_specs_total{kind="ComplianceScan"}' in text
        assert 'fortress_operator_reconciles_total{kind="ComplianceScan",result="invalid"}' in text
        assert f"fortress_operator_resource_ready{{{labels}}} 0.0" in text
        assert "fortress_operator_reconcile_duration_seconds_bucket" in text
    # the metrics port is closed once the operator stops
    with socket.socket() as sock, pytest.raises(ConnectionRefusedError):
        sock.connect(("127.0.0.1", metrics_port))
