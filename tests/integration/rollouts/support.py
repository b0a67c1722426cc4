"""Helpers of the CanaryRollout integration tests: objects, reads and waits against the test API.

On the full local control plane (and a cluster) the real Deployment controller, scheduler and kwok's
simulated nodes give Deployments their ReplicaSets, Pods and status. Only where no controller runs
(the in-memory emulator, a bare kube-apiserver) is ``status.availableReplicas`` simulated, with
``fortress_dev.deployments``: ``availability`` picks, and the simulator refuses to run beside a
Deployment controller.
"""

from __future__ import annotations

import base64
import contextlib
import copy
from collections.abc import AsyncIterator
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from fortress.adapters.kube import DEPLOYMENTS, BlockingKube, Cluster
from fortress.api import GROUP, VERSION
from fortress.commands import rollout as rollout_cli
from fortress.core.conditions import find
from fortress_dev.deployments import AvailabilitySimulator, simulated_availability
from tests.support.kubeapi import KubeTarget, wait_for

PLURAL = "canaryrollouts"


@contextlib.asynccontextmanager
async def availability(
    kube_api: KubeTarget, k8s: client.ApiClient, namespace: str, **options: Any
) -> AsyncIterator[AvailabilitySimulator | None]:
    """Deployments become available: by the real controllers where they run (None), else simulated."""
    if kube_api.controllers:
        yield None
        return
    async with simulated_availability(k8s, namespace, **options) as simulator:
        yield simulator


def template(image: str, app: str = "web") -> dict[str, Any]:
    return {
        "metadata": {"labels": {"app": app}},
        "spec": {"containers": [{"name": "app", "image": image, "ports": [{"containerPort": 8080}]}]},
    }


def rollout(name: str, image: str = "web:1", **spec: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "CanaryRollout",
        "metadata": {"name": name},
        "spec": {
            "service": name,
            "replicas": 4,
            "template": template(image, name),
            "strategy": {
                "type": "canary",
                "canary": {
                    "stages": [
                        {"weight": 25, "pause": {"duration": "300ms"}},
                        {"weight": 50, "pause": {"duration": "300ms"}},
                        {"weight": 100, "pause": {"duration": "300ms"}},
                    ]
                },
            },
            "scaleDownDelay": "500ms",
            "abortScaleDownDelay": "500ms",
            "progressDeadline": "1m",
        },
    }
    body["spec"].update(copy.deepcopy(spec))
    return body


def custom(api: client.ApiClient) -> client.CustomObjectsApi:
    return client.CustomObjectsApi(api)


def create(api: client.ApiClient, namespace: str, body: dict[str, Any]) -> dict[str, Any]:
    return custom(api).create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, body)  # type: ignore[no-any-return]


def get(api: client.ApiClient, namespace: str, name: str) -> dict[str, Any]:
    return custom(api).get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name)  # type: ignore[no-any-return]


def status(api: client.ApiClient, namespace: str, name: str) -> dict[str, Any]:
    return get(api, namespace, name).get("status") or {}


def patch_spec(api: client.ApiClient, namespace: str, name: str, spec: dict[str, Any]) -> None:
    custom(api).patch_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name, {"spec": spec})


def send(api: client.ApiClient, namespace: str, name: str, verb: str, request_id: str) -> str:
    """What ``fortress rollout <verb>`` writes (spec.request), as the CLI writes it."""
    with BlockingKube(Cluster(api.configuration)) as kube:
        return rollout_cli.send(kube, namespace, name, verb, request_id)


def last_request(state: dict[str, Any]) -> dict[str, Any]:
    """status.lastRequest ({} before any request was handled)."""
    return dict(state.get("lastRequest") or {})


def condition(state: dict[str, Any], type_: str) -> dict[str, Any]:
    return dict(find(state.get("conditions"), type_) or {})


async def wait_status(
    api: client.ApiClient, namespace: str, name: str, predicate: Any, timeout: float = 60.0
) -> dict[str, Any]:
    """Poll the rollout's status until ``predicate(status)`` holds; the status."""

    def check() -> dict[str, Any] | None:
        current = status(api, namespace, name)
        return current if predicate(current) else None

    return await wait_for(check, timeout=timeout, interval=0.2)  # type: ignore[no-any-return]


def deployment(api: client.ApiClient, namespace: str, name: str) -> dict[str, Any] | None:
    try:
        return client.AppsV1Api(api).read_namespaced_deployment(name, namespace).to_dict()  # type: ignore[no-any-return]
    except ApiException as error:
        if error.status == 404:
            return None
        raise


def raw(api: client.ApiClient, path: str) -> dict[str, Any] | None:
    """GET a path as JSON (any group), None on 404."""
    try:
        response = api.call_api(*api.param_serialize("GET", path, auth_settings=["BearerToken"]))
    except ApiException as error:
        if error.status == 404:
            return None
        raise
    data = response.read()
    if response.status == 404:
        return None
    import json

    return json.loads(data)  # type: ignore[no-any-return]


def deployment_raw(api: client.ApiClient, namespace: str, name: str) -> dict[str, Any] | None:
    return raw(api, DEPLOYMENTS.path(namespace, name))


def service_selector(api: client.ApiClient, namespace: str, name: str) -> dict[str, str]:
    service = client.CoreV1Api(api).read_namespaced_service(name, namespace)
    return dict(service.spec.selector or {})


def events(api: client.ApiClient, namespace: str, name: str) -> list[Any]:
    items = client.CoreV1Api(api).list_namespaced_event(namespace).items
    return sorted(
        (e for e in items if e.involved_object and e.involved_object.name == name),
        key=lambda e: ((e.event_time or e.first_timestamp).isoformat(), e.metadata.name),
    )


def secret(api: client.ApiClient, namespace: str, name: str, data: dict[str, str]) -> None:
    body = client.V1Secret(
        metadata=client.V1ObjectMeta(name=name, namespace=namespace),
        data={k: base64.b64encode(v.encode()).decode() for k, v in data.items()},
    )
    client.CoreV1Api(api).create_namespaced_secret(namespace, body)


def routing(kind: str, name: str) -> dict[str, Any]:
    """spec.trafficRouting for a router, pointing at the objects ``create_router_objects`` makes."""
    if kind == "nginx":
        return {"type": "nginx", "nginx": {"stableIngress": name}}
    if kind == "gatewayAPI":
        return {"type": "gatewayAPI", "gatewayAPI": {"httpRoute": name}}
    return {"type": "replicas"}


def stable_ingress(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "Ingress",
        "metadata": {
            "name": name,
            "labels": {"team": "shop"},
            "annotations": {"kubernetes.io/ingress.class": "nginx", "example.com/owner": "shop-team"},
        },
        "spec": {
            "tls": [{"hosts": [f"{name}.example.com"], "secretName": f"{name}-tls"}],
            "rules": [
                {
                    "host": f"{name}.example.com",
                    "http": {
                        "paths": [
                            {
                                "path": "/",
                                "pathType": "Prefix",
                                "backend": {"service": {"name": name, "port": {"number": 8080}}},
                            },
                            {
                                "path": "/assets",
                                "pathType": "Prefix",
                                "backend": {"service": {"name": "cdn", "port": {"number": 80}}},
                            },
                        ]
                    },
                }
            ],
        },
    }


def http_route(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "HTTPRoute",
        "metadata": {"name": name, "annotations": {"example.com/owner": "shop-team"}},
        "spec": {
            "parentRefs": [{"name": "public-gateway", "namespace": "infra", "sectionName": "https"}],
            "hostnames": [f"{name}.example.com"],
            "rules": [
                {
                    "matches": [{"path": {"type": "PathPrefix", "value": "/"}}],
                    "filters": [
                        {
                            "type": "RequestHeaderModifier",
                            "requestHeaderModifier": {"add": [{"name": "x-edge", "value": "gw"}]},
                        }
                    ],
                    "backendRefs": [{"name": name, "port": 8080, "weight": 1}],
                    "timeouts": {"request": "15s"},
                },
                {
                    "matches": [{"path": {"type": "PathPrefix", "value": "/assets"}}],
                    "backendRefs": [{"name": "cdn", "port": 80}],
                },
            ],
        },
    }


def create_router_objects(api: client.ApiClient, namespace: str, kind: str, name: str) -> None:
    if kind == "nginx":
        client.NetworkingV1Api(api).create_namespaced_ingress(namespace, stable_ingress(name))
    elif kind == "gatewayAPI":
        custom(api).create_namespaced_custom_object(
            "gateway.networking.k8s.io", "v1", namespace, "httproutes", http_route(name)
        )


def ingress(api: client.ApiClient, namespace: str, name: str) -> dict[str, Any] | None:
    return raw(api, f"/apis/networking.k8s.io/v1/namespaces/{namespace}/ingresses/{name}")


def route(api: client.ApiClient, namespace: str, name: str) -> dict[str, Any] | None:
    return raw(api, f"/apis/gateway.networking.k8s.io/v1/namespaces/{namespace}/httproutes/{name}")


def canary_share(api: client.ApiClient, namespace: str, kind: str, name: str) -> int | None:
    """The canary's share of traffic as the router's objects say (None: cannot tell)."""
    from fortress.rollouts.traffic.gatewayapi import weights_of
    from fortress.rollouts.traffic.nginx import weight_of

    if kind == "nginx":
        return weight_of(ingress(api, namespace, f"{name}-canary"))
    if kind == "gatewayAPI":
        found = route(api, namespace, name)
        weights = weights_of(found or {}, name, namespace)
        return weights[0][1] if weights else None
    selector = service_selector(api, namespace, name)
    colour = selector.get("fortress.io/colour")
    return (
        None if colour is None else (0 if colour == status(api, namespace, name).get("stableColour") else 100)
    )


def gateway_api_served(api: client.ApiClient) -> bool:
    """Whether the API server serves HTTPRoutes in gateway.networking.k8s.io/v1."""
    found = raw(api, "/apis/gateway.networking.k8s.io/v1")
    resources = (found or {}).get("resources")
    # the emulator answers the group path without a resource list; a real server lists its resources
    return found is not None and (resources is None or any(r.get("name") == "httproutes" for r in resources))


def require_router(request: Any, kind: str) -> None:
    """Make sure the API server serves the router's resources (the ``gateway_api`` fixture)."""
    if kind == "gatewayAPI":
        request.getfixturevalue("gateway_api")
