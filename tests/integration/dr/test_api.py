"""The DR HTTP API and ``fortress dr`` against the Kubernetes API fixture (no operator running)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from kubernetes import client

from fortress.adapters.kube import BlockingKube, Kube
from fortress.api import GROUP, VERSION
from fortress.api.drplan import PrimaryService
from fortress.cli import main
from fortress.dr import api as dr_api
from fortress.dr import control
from fortress.dr.kubeio import PLANS, ServiceError, point_service, service_target
from fortress.http.app import create_app
from fortress.http.auth import TokenStore
from fortress.http.openapi import document
from fortress.http.server import ApiConfig
from fortress_dev.localregions import THREE_CLOUDS, plan_manifest, region_manifest
from tests.support.http import schemathesis, served
from tests.support.kubeapi import KubeTarget

TOKENS = TokenStore([("reader", "r", ["read"]), ("writer", "w", ["write"]), ("boss", "a", ["admin"])])


def _auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def plan(k8s: client.ApiClient, namespace: str) -> str:
    custom = client.CustomObjectsApi(k8s)
    custom.create_namespaced_custom_object(
        GROUP, VERSION, namespace, "drplans", plan_manifest("orders", namespace, service="orders-db")
    )
    for index, region in enumerate(THREE_CLOUDS):
        manifest = region_manifest("orders", namespace, region, "orders-regions", 5432)
        custom.create_namespaced_custom_object(GROUP, VERSION, namespace, "drregions", manifest)
        role = "Primary" if index == 0 else "Standby"
        custom.patch_namespaced_custom_object_status(
            GROUP, VERSION, namespace, "drregions", manifest["metadata"]["name"],
            {"status": {"role": role, "healthy": True, "lagBytes": 0 if index == 0 else 100 * index,
                        "conditions": [{"type": "Ready", "status": "True", "reason": role,
                                        "lastTransitionTime": "2026-01-01T00:00:00Z"}]}},
        )  # fmt: skip
    custom.patch_namespaced_custom_object_status(
        GROUP, VERSION, namespace, "drplans", "orders",
        {"status": {"phase": "Protected", "primaryRegion": "orders-aws-us-east-1", "message": "ok",
                    "lastCheckTime": "2026-01-01T00:00:00.000Z",
                    "conditions": [{"type": "Ready", "status": "True", "reason": "Protected",
                                    "lastTransitionTime": "2026-01-01T00:00:00Z"}]}},
    )  # fmt: skip
    custom.create_namespaced_custom_object(
        GROUP, VERSION, namespace, "drplans", plan_manifest("other", namespace, service="other-db")
    )
    custom.create_namespaced_custom_object(
        GROUP, VERSION, namespace, "drregions",
        region_manifest("other", namespace, THREE_CLOUDS[0], "s", 5432),
    )  # fmt: skip
    return "orders"


@pytest.fixture
async def http(kube_api: KubeTarget) -> AsyncIterator[TestClient[web.Request, web.Application]]:
    app = create_app(dr_api.ROUTES, TOKENS)
    await dr_api.setup(app, ApiConfig())
    dr_api.use_cluster(app, await asyncio.to_thread(kube_api.cluster))
    async with TestClient(TestServer(app)) as test_client:
        yield test_client


def _request_of(k8s: client.ApiClient, namespace: str) -> dict[str, Any] | None:
    obj = client.CustomObjectsApi(k8s).get_namespaced_custom_object(
        GROUP, VERSION, namespace, "drplans", "orders"
    )
    return (obj.get("spec") or {}).get("request")  # type: ignore[no-any-return]


async def test_failover_request_is_written_to_the_plan(
    http: TestClient[web.Request, web.Application], k8s: client.ApiClient, namespace: str, plan: str
) -> None:
    body = {
        "namespace": namespace,
        "plan": plan,
        "targetRegion": "orders-azure-eastus",
        "action": "switchover",
    }
    response = await http.post("/api/v1/dr/failover", json=body, headers=_auth("a"))
    assert response.status == 202, await response.text()
    accepted = await response.json()
    assert accepted["action"] == accepted["type"] == "switchover" and accepted["requestId"]
    request = await asyncio.to_thread(_request_of, k8s, namespace)
    assert request == {
        "action": "switchover",
        "targetRegion": "orders-azure-eastus",
        "force": False,
        "requestId": accepted["requestId"],
    }
    # A second request while the first is pending: 409.
    response = await http.post("/api/v1/dr/failover", json=body, headers=_auth("a"))
    assert response.status == 409 and "still pending" in (await response.json())["message"]


@pytest.mark.parametrize(
    ("token", "body", "status", "needle"),
    [
        ("w", {"plan": "orders", "targetRegion": "orders-azure-eastus"}, 403, "admin"),
        (None, {"plan": "orders", "targetRegion": "orders-azure-eastus"}, 401, "token"),
        ("a", {"plan": "orders"}, 400, "targetRegion"),
        ("a", {"plan": "Orders!", "targetRegion": "x"}, 400, "plan"),
        ("a", {"plan": "orders", "targetRegion": "x", "type": "promote"}, 400, "type"),
        ("a", {"plan": "orders", "targetRegion": "x", "action": "promote"}, 400, "action"),
        (
            "a",
            {"plan": "orders", "targetRegion": "x", "action": "failover", "type": "switchover"},
            400,
            "differ",
        ),
        ("a", {"plan": "orders", "targetRegion": "x", "sql": "DROP TABLE"}, 400, "sql"),
        ("a", {"plan": "nope", "targetRegion": "orders-azure-eastus"}, 404, "DRPlan"),
        ("a", {"plan": "orders", "targetRegion": "nope"}, 404, "DRRegion"),
        ("a", {"plan": "orders", "targetRegion": "other-aws-us-east-1"}, 422, "belongs to plan 'other'"),
        ("a", {"plan": "orders", "targetRegion": "orders-aws-us-east-1"}, 409, "already the primary"),
    ],
)
async def test_failover_errors(
    http: TestClient[web.Request, web.Application],
    namespace: str,
    plan: str,
    token: str | None,
    body: dict[str, Any],
    status: int,
    needle: str,
) -> None:
    headers = _auth(token) if token else {}
    response = await http.post("/api/v1/dr/failover", json={"namespace": namespace, **body}, headers=headers)
    assert response.status == status, await response.text()
    assert needle in await response.text()


async def test_status_and_health(
    http: TestClient[web.Request, web.Application], namespace: str, plan: str
) -> None:
    response = await http.get(f"/api/v1/dr/status?namespace={namespace}&plan={plan}", headers=_auth("r"))
    assert response.status == 200, await response.text()
    plans = (await response.json())["plans"]
    assert [p["name"] for p in plans] == ["orders"]
    assert plans[0]["primaryRegion"] == "orders-aws-us-east-1"
    assert [r["role"] for r in plans[0]["regions"]] == ["Primary", "Standby", "Standby"]

    response = await http.get(f"/api/v1/dr/health?namespace={namespace}", headers=_auth("r"))
    health = await response.json()
    assert response.status == 200 and health["healthy"] is False  # "other" has never been checked
    orders = next(p for p in health["plans"] if p["name"] == "orders")
    assert orders["ready"] is True and orders["healthyRegions"] == 3
    assert [r["lagBytes"] for r in orders["regions"]] == [0, 100, 200]

    assert (
        await http.get(f"/api/v1/dr/status?namespace={namespace}&plan=nope", headers=_auth("r"))
    ).status == 404
    assert (await http.get("/api/v1/dr/status?namespace=Bad_NS", headers=_auth("r"))).status == 400
    assert (await http.get("/api/v1/dr/health")).status == 401


async def test_cli_status_and_failover(kube_api: KubeTarget, k8s: client.ApiClient, namespace: str, plan: str,
                                       capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    kc = str(kube_api.kubeconfig)
    assert await asyncio.to_thread(main, ["dr", "--kubeconfig", kc, "status", plan, "-n", namespace]) == 0
    out = capsys.readouterr().out
    assert "orders-azure-eastus" in out and "Protected" in out
    argv = [
        "dr",
        "--kubeconfig",
        kc,
        "failover",
        plan,
        "--to",
        "orders-gcp-us-central1",
        "--force",
        "-n",
        namespace,
    ]
    assert await asyncio.to_thread(main, argv) == 0
    request = await asyncio.to_thread(_request_of, k8s, namespace)
    assert request is not None and request["force"] is True and request["action"] == "failover"
    assert await asyncio.to_thread(main, argv) == 5  # refused: still pending
    assert await asyncio.to_thread(main, ["dr", "--kubeconfig", kc, "status", "nope", "-n", namespace]) == 4


async def test_a_request_is_not_written_over_a_plan_changed_since_it_was_read(
    http: TestClient[web.Request, web.Application],
    kube_api: KubeTarget,
    k8s: client.ApiClient,
    namespace: str,
    plan: str,
) -> None:
    """Between reading the plan and writing the request, another writer changes it: 409, nothing written."""

    class Racing(BlockingKube):
        def get(self, resource: Any, namespace: str | None, name: str, subresource: str | None = None) -> Any:
            found = super().get(resource, namespace, name, subresource)
            if resource == PLANS:
                client.CustomObjectsApi(k8s).patch_namespaced_custom_object(
                    GROUP, VERSION, namespace, "drplans", name, {"metadata": {"labels": {"raced": "yes"}}}
                )
            return found

    with Racing(kube_api.cluster()) as kube, pytest.raises(control.Conflict, match="changed"):
        await asyncio.to_thread(control.request_failover, kube, namespace, plan, "orders-azure-eastus")
    assert await asyncio.to_thread(_request_of, k8s, namespace) is None
    body = {"namespace": namespace, "plan": plan, "targetRegion": "orders-azure-eastus", "type": "failover"}
    response = await http.post("/api/v1/dr/failover", json=body, headers=_auth("a"))  # the older name
    assert response.status == 202, await response.text()
    assert (await response.json())["action"] == "failover"


async def test_service_is_pointed_at_one_region_only(
    kube_api: KubeTarget, k8s: client.ApiClient, namespace: str
) -> None:
    kube = Kube(await asyncio.to_thread(kube_api.cluster))
    try:
        endpoints = PrimaryService(name="db", mode="Endpoints", port=5432)
        assert await point_service(kube, namespace, endpoints, "p", "10.0.0.1", 6000) == "10.0.0.1:6000"
        assert await point_service(kube, namespace, endpoints, "p", "10.0.0.2", 6001) == "10.0.0.2:6001"
        assert await service_target(kube, namespace, endpoints) == "10.0.0.2:6001"
        with pytest.raises(ServiceError, match="not an IP address"):
            await point_service(kube, namespace, endpoints, "p", "db.example.com", 5432)
        external = PrimaryService(name="ext", mode="ExternalName", port=5432)
        assert await point_service(kube, namespace, external, "p", "db.eastus.example.com", 5432) == (
            "db.eastus.example.com"
        )
        assert await service_target(kube, namespace, external) == "db.eastus.example.com"
        selected = {"metadata": {"name": "app"}, "spec": {"selector": {"app": "x"}, "ports": [{"port": 80}]}}
        await asyncio.to_thread(client.CoreV1Api(k8s).create_namespaced_service, namespace, selected)
        with pytest.raises(ServiceError, match="has a selector"):
            await point_service(kube, namespace, PrimaryService(name="app"), "p", "10.0.0.1", 5432)
    finally:
        await kube.close()


async def test_the_http_api_answers_409_when_the_plan_changed_under_a_failover_request(
    kube_api: KubeTarget, k8s: client.ApiClient, namespace: str, plan: str
) -> None:
    """The same race through ``POST /api/v1/dr/failover``: 409 naming the plan, nothing written."""

    class Racing(BlockingKube):
        def get(self, resource: Any, namespace: str | None, name: str, subresource: str | None = None) -> Any:
            found = super().get(resource, namespace, name, subresource)
            if resource == PLANS:
                client.CustomObjectsApi(k8s).patch_namespaced_custom_object(
                    GROUP, VERSION, namespace, "drplans", name, {"metadata": {"labels": {"raced": "http"}}}
                )
            return found

    app = create_app(dr_api.ROUTES, TOKENS)
    await dr_api.setup(app, ApiConfig())
    app[dr_api.KUBE] = dr_api._Kube(Racing(await asyncio.to_thread(kube_api.cluster)))
    async with TestClient(TestServer(app)) as http:
        body = {"namespace": namespace, "plan": plan, "targetRegion": "orders-azure-eastus"}
        response = await http.post("/api/v1/dr/failover", json=body, headers=_auth("a"))
        assert response.status == 409, await response.text()
        answer = await response.json()
        assert f"DRPlan {namespace}/{plan} changed while the request was written; retry" in answer["message"]
    assert await asyncio.to_thread(_request_of, k8s, namespace) is None


async def test_fuzzing_the_openapi_document_with_every_check(kube_api: KubeTarget, plan: str) -> None:
    app = create_app(dr_api.ROUTES, TOKENS)
    await dr_api.setup(app, ApiConfig())
    dr_api.use_cluster(app, await asyncio.to_thread(kube_api.cluster))
    async with served(app) as url:
        await schemathesis(document(dr_api.ROUTES), url, ["Authorization: Bearer a"])


async def test_failover_needs_a_json_body(http: TestClient[web.Request, web.Application], plan: str) -> None:
    body = b'{"plan": "orders", "targetRegion": "orders-gcp-europe-west1"}'
    for headers in ({"Content-Type": "text/plain"}, {}):
        response = await http.post(
            "/api/v1/dr/failover",
            data=body,
            headers={**_auth("a"), **headers},
            skip_auto_headers=["Content-Type"],
        )
        assert response.status == 415 and (await response.json())["error"] == "unsupported_media_type"
