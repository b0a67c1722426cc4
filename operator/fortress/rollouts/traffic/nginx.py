"""The ``nginx`` router: a canary Ingress next to the stable one, weighted by annotation.

The canary Ingress ``<stableIngress>-canary`` is a copy of spec.trafficRouting.nginx.stableIngress
(rules, TLS, class, default backend) whose backends naming the stable Service name ``<service>-canary``
instead, with ``nginx.ingress.kubernetes.io/canary: "true"`` and ``canary-weight``. The stable Ingress
is never written. The canary Ingress is owned by the rollout and stays at weight 0 between releases.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from fortress.adapters.kube import INGRESSES
from fortress.rollouts.model import Traffic
from fortress.rollouts.traffic.base import RouterContext, TrafficResult, canary_service_name, point_services

CANARY = "nginx.ingress.kubernetes.io/canary"
CANARY_WEIGHT = "nginx.ingress.kubernetes.io/canary-weight"
CLASS_ANNOTATION = "kubernetes.io/ingress.class"  # the legacy class annotation must match the stable's


def canary_ingress_name(stable_ingress: str) -> str:
    return f"{stable_ingress}-canary"[:253]


def _rename_backends(node: Any, service: str, canary_service: str) -> Any:
    """Every ``backend.service.name == service`` becomes ``canary_service``; nothing else changes."""
    if isinstance(node, list):
        return [_rename_backends(item, service, canary_service) for item in node]
    if not isinstance(node, dict):
        return node
    result = {}
    for key, value in node.items():
        if key == "service" and isinstance(value, dict) and value.get("name") == service:
            value = {**value, "name": canary_service}
        result[key] = _rename_backends(value, service, canary_service)
    return result


def references_service(spec: Mapping[str, Any], service: str) -> bool:
    found: list[bool] = []

    def walk(node: Any) -> None:
        if isinstance(node, list):
            for item in node:
                walk(item)
        elif isinstance(node, dict):
            if isinstance(node.get("service"), dict) and node["service"].get("name") == service:
                found.append(True)
            for value in node.values():
                walk(value)

    walk(spec)
    return bool(found)


def canary_ingress(
    stable: Mapping[str, Any],
    *,
    service: str,
    weight: int,
    metadata: Mapping[str, Any],
) -> dict[str, Any]:
    """The canary Ingress derived from the stable one (pure)."""
    stable_meta = stable.get("metadata") or {}
    annotations = {k: v for k, v in (stable_meta.get("annotations") or {}).items() if k == CLASS_ANNOTATION}
    annotations[CANARY] = "true"
    annotations[CANARY_WEIGHT] = str(max(0, min(100, weight)))
    spec = _rename_backends(copy.deepcopy(stable.get("spec") or {}), service, canary_service_name(service))
    meta = copy.deepcopy(dict(metadata))
    meta["annotations"] = annotations
    return {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": meta, "spec": spec}


def weight_of(ingress: Mapping[str, Any] | None) -> int | None:
    """The canary weight an Ingress carries, if it is a canary Ingress."""
    annotations = ((ingress or {}).get("metadata") or {}).get("annotations") or {}
    if annotations.get(CANARY) != "true":
        return None
    try:
        return int(annotations.get(CANARY_WEIGHT, "0"))
    except ValueError:
        return None


class NginxRouter:
    """Writes the canary Ingress; the stable Ingress is only read."""

    name = "nginx"

    async def apply(self, ctx: RouterContext, traffic: Traffic) -> TrafficResult:
        routing = ctx.routing.nginx if ctx.routing is not None else None
        if routing is None:
            raise ValueError("spec.trafficRouting.nginx is required for the nginx router")
        stable_name = routing.stable_ingress
        changed = await point_services(ctx, traffic)
        stable = await ctx.io.get(INGRESSES, ctx.namespace, stable_name)
        if stable is None:
            raise LookupError(f"stable Ingress {ctx.namespace}/{stable_name} not found")
        if not references_service(stable.get("spec") or {}, ctx.service):
            raise LookupError(f"Ingress {stable_name} has no backend for Service {ctx.service}")
        name = canary_ingress_name(stable_name)
        metadata = {"name": name, "namespace": ctx.namespace, **ctx.owned()}
        wanted = canary_ingress(stable, service=ctx.service, weight=traffic.weight, metadata=metadata)
        current = await ctx.io.get(INGRESSES, ctx.namespace, name)
        if current is None:
            await ctx.io.create(INGRESSES, ctx.namespace, wanted)
            ctx.writes.append(f"Ingress/{name} created at {traffic.weight} %")
            changed = True
        elif _differs(current, wanted):
            current_annotations = (current.get("metadata") or {}).get("annotations") or {}
            removed = {k: None for k in current_annotations if k not in wanted["metadata"]["annotations"]}
            gone = {k: None for k in (current.get("spec") or {}) if k not in wanted["spec"]}
            patch = {
                "metadata": {"annotations": {**removed, **wanted["metadata"]["annotations"]}},
                "spec": {**gone, **wanted["spec"]},
            }
            await ctx.io.patch(INGRESSES, ctx.namespace, name, patch)
            ctx.writes.append(f"Ingress/{name} weight {traffic.weight} %")
            changed = True
        return TrafficResult(
            weight=traffic.weight,
            changed=changed,
            objects=(f"Service/{ctx.service}", f"Ingress/{name}"),
        )


def _differs(current: Mapping[str, Any], wanted: Mapping[str, Any]) -> bool:
    annotations = (current.get("metadata") or {}).get("annotations") or {}
    return bool(
        annotations != wanted["metadata"]["annotations"] or (current.get("spec") or {}) != wanted["spec"]
    )
