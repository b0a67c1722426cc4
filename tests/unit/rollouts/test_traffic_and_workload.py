"""Routers' pure parts (replica split, canary Ingress, HTTPRoute weights) and the colour Deployments."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from fortress.rollouts.model import Traffic, template_hash
from fortress.rollouts.traffic import router_for
from fortress.rollouts.traffic.base import selector_differs, service_ports
from fortress.rollouts.traffic.gatewayapi import weighted_rules, weights_of
from fortress.rollouts.traffic.nginx import (
    CANARY,
    CANARY_WEIGHT,
    canary_ingress,
    references_service,
    weight_of,
)
from fortress.rollouts.traffic.replicas import effective_weight, service_selector, split
from fortress.rollouts.workload import deployment, image_of, retire_reference, view
from fortress_dev.deployments import simulated_status


@pytest.mark.parametrize(
    ("replicas", "weight", "expected", "effective"),
    [
        (4, 0, (4, 0), 0),
        (4, 1, (4, 1), 20),
        (4, 25, (4, 1), 20),
        (4, 50, (4, 4), 50),
        (4, 75, (1, 4), 80),
        (4, 100, (4, 4), 100),
        (10, 10, (10, 1), 9),
        (10, 5, (10, 1), 9),
        (100, 1, (100, 1), 1),
        (1, 50, (1, 1), 50),
        (1, 99, (1, 1), 50),
        (0, 50, (0, 0), 50),
    ],
)
def test_replica_split(replicas: int, weight: int, expected: tuple[int, int], effective: int) -> None:
    assert split(replicas, weight) == expected
    assert effective_weight(replicas, weight) == effective


@pytest.mark.parametrize(
    ("traffic", "colour"),
    [
        (Traffic("blue", "green", 0), "blue"),
        (Traffic("blue", None, 0), "blue"),
        (Traffic("blue", "green", 30), None),
        (Traffic("blue", "green", 100), "green"),
        (Traffic("green", "blue", 0), "green"),
    ],
)
def test_replicas_router_selector(traffic: Traffic, colour: str | None) -> None:
    assert service_selector("web", traffic) == {"fortress.io/rollout": "web", "fortress.io/colour": colour}


def test_selector_comparison_ignores_removed_keys() -> None:
    wanted = {"fortress.io/rollout": "web", "fortress.io/colour": None}
    assert not selector_differs({"fortress.io/rollout": "web"}, wanted)
    assert selector_differs({"fortress.io/rollout": "web", "fortress.io/colour": "blue"}, wanted)
    assert selector_differs({"app": "web", "fortress.io/rollout": "web"}, wanted)


def test_service_ports_from_the_template() -> None:
    tpl = {
        "spec": {
            "containers": [
                {
                    "name": "a",
                    "ports": [
                        {"containerPort": 8080, "name": "http"},
                        {"containerPort": 9090, "protocol": "UDP"},
                    ],
                }
            ]
        }
    }
    assert service_ports(tpl) == [
        {"name": "http", "port": 8080, "targetPort": 8080, "protocol": "TCP"},
        {"name": "port-9090", "port": 9090, "targetPort": 9090, "protocol": "UDP"},
    ]
    assert service_ports(None)[0]["port"] == 80


def test_unknown_router_is_named() -> None:
    with pytest.raises(ValueError, match="unknown traffic router 'istio'"):
        router_for("istio")


STABLE_INGRESS: dict[str, Any] = {
    "apiVersion": "networking.k8s.io/v1",
    "kind": "Ingress",
    "metadata": {
        "name": "shop",
        "annotations": {
            "kubernetes.io/ingress.class": "nginx",
            "nginx.ingress.kubernetes.io/rewrite-target": "/",
            "team": "payments",
        },
        "labels": {"app": "shop"},
    },
    "spec": {
        "ingressClassName": "nginx",
        "tls": [{"hosts": ["shop.example.com"], "secretName": "shop-tls"}],
        "rules": [
            {
                "host": "shop.example.com",
                "http": {
                    "paths": [
                        {
                            "path": "/",
                            "pathType": "Prefix",
                            "backend": {"service": {"name": "shop", "port": {"number": 80}}},
                        },
                        {
                            "path": "/static",
                            "pathType": "Prefix",
                            "backend": {"service": {"name": "cdn", "port": {"number": 80}}},
                        },
                    ]
                },
            }
        ],
    },
}


def test_canary_ingress_copies_the_stable_one_with_weight_annotations() -> None:
    before = copy.deepcopy(STABLE_INGRESS)
    canary = canary_ingress(STABLE_INGRESS, service="shop", weight=25, metadata={"name": "shop-canary"})
    assert before == STABLE_INGRESS, "the stable Ingress is not modified"
    assert canary["metadata"]["annotations"] == {
        "kubernetes.io/ingress.class": "nginx",
        CANARY: "true",
        CANARY_WEIGHT: "25",
    }
    paths = canary["spec"]["rules"][0]["http"]["paths"]
    assert paths[0]["backend"]["service"] == {"name": "shop-canary", "port": {"number": 80}}
    assert paths[1]["backend"]["service"]["name"] == "cdn", "other backends unchanged"
    assert canary["spec"]["tls"] == STABLE_INGRESS["spec"]["tls"]
    assert canary["spec"]["ingressClassName"] == "nginx"
    assert weight_of(canary) == 25 and weight_of(STABLE_INGRESS) is None
    assert references_service(STABLE_INGRESS["spec"], "shop")
    assert not references_service(STABLE_INGRESS["spec"], "other")


@pytest.mark.parametrize("weight", [-5, 0, 100, 130])
def test_canary_weight_is_clamped(weight: int) -> None:
    canary = canary_ingress(STABLE_INGRESS, service="shop", weight=weight, metadata={"name": "c"})
    assert canary["metadata"]["annotations"][CANARY_WEIGHT] == str(max(0, min(100, weight)))


ROUTE_RULES: list[dict[str, Any]] = [
    {
        "matches": [
            {"path": {"type": "PathPrefix", "value": "/api"}, "headers": [{"name": "x-env", "value": "prod"}]}
        ],
        "filters": [
            {
                "type": "RequestHeaderModifier",
                "requestHeaderModifier": {"add": [{"name": "x-via", "value": "gw"}]},
            }
        ],
        "backendRefs": [
            {
                "name": "shop",
                "port": 80,
                "weight": 1,
                "filters": [
                    {
                        "type": "ResponseHeaderModifier",
                        "responseHeaderModifier": {"set": [{"name": "x-a", "value": "1"}]},
                    }
                ],
            },
        ],
        "timeouts": {"request": "10s"},
    },
    {
        "matches": [{"path": {"type": "PathPrefix", "value": "/docs"}}],
        "backendRefs": [{"name": "docs", "port": 80}],
    },
    {"backendRefs": [{"name": "shop", "kind": "Service", "group": "", "port": 8080}]},
]


def test_httproute_weights_touch_only_backendref_weights() -> None:
    before = copy.deepcopy(ROUTE_RULES)
    rules = weighted_rules(ROUTE_RULES, service="shop", namespace="ns", weight=30)
    assert before == ROUTE_RULES
    first = rules[0]
    assert first["matches"] == before[0]["matches"] and first["filters"] == before[0]["filters"]
    assert first["timeouts"] == {"request": "10s"}
    assert first["backendRefs"][0] == {**before[0]["backendRefs"][0], "weight": 70}
    assert first["backendRefs"][1] == {**before[0]["backendRefs"][0], "name": "shop-canary", "weight": 30}
    assert rules[1] == before[1], "a rule without the Service is untouched"
    assert [r["weight"] for r in rules[2]["backendRefs"]] == [70, 30]
    again = weighted_rules(rules, service="shop", namespace="ns", weight=0)
    assert len(again[0]["backendRefs"]) == 2, "the canary ref stays, at weight 0"
    assert weights_of({"spec": {"rules": again}}, "shop", "ns") == [(100, 0), (100, 0)]


def test_httproute_rule_index_limits_the_change() -> None:
    rules = weighted_rules(ROUTE_RULES, service="shop", namespace="ns", weight=50, rule_index=2)
    assert rules[0] == ROUTE_RULES[0]
    assert [r["weight"] for r in rules[2]["backendRefs"]] == [50, 50]


@pytest.mark.parametrize(
    ("service", "rule_index", "message"),
    [("nothing", None, "no backendRef to Service nothing in any rule"), ("shop", 1, "in rule 1")],
)
def test_httproute_without_the_service_is_an_error(
    service: str, rule_index: int | None, message: str
) -> None:
    with pytest.raises(LookupError, match=message):
        weighted_rules(ROUTE_RULES, service=service, namespace="ns", weight=10, rule_index=rule_index)


def test_backendref_to_another_namespace_or_kind_is_not_the_service() -> None:
    rules = [
        {"backendRefs": [{"name": "shop", "namespace": "other"}, {"name": "shop", "kind": "ServiceImport"}]}
    ]
    with pytest.raises(LookupError):
        weighted_rules(rules, service="shop", namespace="ns", weight=10)


# ---- colour Deployments ---------------------------------------------------------------------------

TEMPLATE = {
    "metadata": {"labels": {"app": "web", "fortress.io/colour": "spoofed"}},
    "spec": {"containers": [{"name": "app", "image": "web:1"}]},
}


def test_template_hash_is_deterministic_and_order_independent() -> None:
    reordered = {
        "spec": {"containers": [{"image": "web:1", "name": "app"}]},
        "metadata": {"labels": {"fortress.io/colour": "spoofed", "app": "web"}},
    }
    assert template_hash(TEMPLATE) == template_hash(reordered)
    assert len(template_hash(TEMPLATE)) == 10
    changed = copy.deepcopy(TEMPLATE)
    changed["spec"]["containers"][0]["image"] = "web:2"
    assert template_hash(changed) != template_hash(TEMPLATE)


def test_colour_deployment_body() -> None:
    owner = {"apiVersion": "fortress.io/v1alpha1", "kind": "CanaryRollout", "name": "web", "uid": "u1"}
    body = deployment(
        rollout="web",
        namespace="ns",
        colour="green",
        revision="abc",
        template=TEMPLATE,
        replicas=3,
        owner=owner,
    )
    assert body["metadata"]["name"] == "web-green"
    assert body["spec"]["selector"] == {
        "matchLabels": {"fortress.io/rollout": "web", "fortress.io/colour": "green"}
    }
    labels = body["spec"]["template"]["metadata"]["labels"]
    assert labels == {
        "app": "web",
        "fortress.io/colour": "green",
        "fortress.io/rollout": "web",
        "fortress.io/revision": "abc",
    }
    assert TEMPLATE["metadata"]["labels"]["fortress.io/colour"] == "spoofed", "input not mutated"
    assert body["metadata"]["ownerReferences"] == [owner]
    assert body["spec"]["strategy"] == {
        "type": "RollingUpdate",
        "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": 0},
    }, "a new pod is available before an old one stops"
    assert image_of(TEMPLATE) == "web:1" and image_of(None) is None


@pytest.mark.parametrize(
    ("status", "generation", "available"),
    [
        ({}, 1, 0),
        ({"observedGeneration": 1, "replicas": 3, "updatedReplicas": 3, "availableReplicas": 3}, 1, 3),
        ({"observedGeneration": 1, "replicas": 3, "updatedReplicas": 3, "availableReplicas": 3}, 2, 0),
        ({"observedGeneration": 2, "replicas": 5, "updatedReplicas": 3, "availableReplicas": 4}, 2, 2),
        ({"observedGeneration": 2, "replicas": 3, "updatedReplicas": 1, "availableReplicas": 3}, 2, 1),
        ({"observedGeneration": 2, "replicas": 3, "updatedReplicas": 3, "availableReplicas": 1}, 2, 1),
    ],
)
def test_view_counts_available_pods_of_the_current_template_only(
    status: dict[str, Any], generation: int, available: int
) -> None:
    obj = {
        "metadata": {"generation": generation, "labels": {"fortress.io/revision": "abc"}},
        "spec": {"replicas": 3},
        "status": status,
    }
    seen = view("blue", obj)
    assert (seen.exists, seen.revision, seen.replicas, seen.available) == (True, "abc", 3, available)
    assert not view("blue", None).exists


def test_simulated_status_is_what_the_view_reads_as_available() -> None:
    obj = {"metadata": {"generation": 4, "labels": {"fortress.io/revision": "r"}}, "spec": {"replicas": 2}}
    obj["status"] = simulated_status(obj)
    assert view("green", obj).serves("r", 2)


def test_a_taken_over_deployment_is_scaled_down_only_once_the_rollout_serves() -> None:
    legacy = {"metadata": {"name": "legacy"}, "spec": {"replicas": 3}}
    assert retire_reference(legacy, serving=False) is None, "it keeps serving until ours do"
    assert retire_reference(legacy, serving=True) == {"spec": {"replicas": 0}}
    assert retire_reference({"spec": {"replicas": 0}}, serving=True) is None
    assert retire_reference(None, serving=True) is None  # spec.template: nothing taken over
