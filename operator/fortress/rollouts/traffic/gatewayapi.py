"""The ``gatewayAPI`` router: backendRef weights of an existing HTTPRoute.

In every rule with a backendRef to the stable Service (or only in spec.trafficRouting.gatewayAPI.ruleIndex)
the stable ref gets weight ``100 - w`` and a ref to ``<service>-canary`` gets ``w``; the canary ref is
added as a copy of the stable ref (same port, same filters) when the rule has none. Nothing else in the
route changes: matches, filters, hostnames, parentRefs, other rules and unknown fields are written back
exactly as read.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from typing import Any

from fortress.adapters.kube import HTTPROUTES
from fortress.rollouts.model import Traffic
from fortress.rollouts.traffic.base import RouterContext, TrafficResult, canary_service_name, point_services


def _refers_to(ref: Mapping[str, Any], service: str, namespace: str) -> bool:
    return (
        ref.get("name") == service
        and (ref.get("kind") or "Service") == "Service"
        and (ref.get("group") or "") == ""
        and ref.get("namespace") in (None, namespace)
    )


def weighted_rules(
    rules: Sequence[Mapping[str, Any]],
    *,
    service: str,
    namespace: str,
    weight: int,
    rule_index: int | None = None,
) -> list[dict[str, Any]]:
    """The route's rules with the stable/canary weights set (pure); LookupError if no rule matches."""
    canary = canary_service_name(service)
    weight = max(0, min(100, weight))
    result = [copy.deepcopy(dict(rule)) for rule in rules]
    touched = 0
    for index, rule in enumerate(result):
        if rule_index is not None and index != rule_index:
            continue
        refs = rule.get("backendRefs")
        if not isinstance(refs, list):
            continue
        stable_refs = [r for r in refs if isinstance(r, dict) and _refers_to(r, service, namespace)]
        if not stable_refs:
            continue
        touched += 1
        for ref in stable_refs:
            ref["weight"] = 100 - weight
        canary_refs = [r for r in refs if isinstance(r, dict) and _refers_to(r, canary, namespace)]
        for ref in canary_refs:
            ref["weight"] = weight
        if not canary_refs:
            for ref in stable_refs:
                clone = copy.deepcopy(ref)
                clone["name"] = canary
                clone["weight"] = weight
                refs.append(clone)
    if not touched:
        where = f"rule {rule_index}" if rule_index is not None else "any rule"
        raise LookupError(f"HTTPRoute has no backendRef to Service {service} in {where}")
    return result


def weights_of(route: Mapping[str, Any], service: str, namespace: str) -> list[tuple[int, int]]:
    """(stable weight, canary weight) of each rule that references the stable Service."""
    canary = canary_service_name(service)
    found = []
    for rule in (route.get("spec") or {}).get("rules") or []:
        refs = rule.get("backendRefs") or []
        stable = [r.get("weight", 1) for r in refs if _refers_to(r, service, namespace)]
        if stable:
            canary_w = [r.get("weight", 1) for r in refs if _refers_to(r, canary, namespace)]
            found.append((int(stable[0]), int(canary_w[0]) if canary_w else 0))
    return found


class GatewayRouter:
    """Writes backendRef weights into the HTTPRoute's rules and nothing else."""

    name = "gatewayAPI"

    async def apply(self, ctx: RouterContext, traffic: Traffic) -> TrafficResult:
        routing = ctx.routing.gateway_api if ctx.routing is not None else None
        if routing is None:
            raise ValueError("spec.trafficRouting.gatewayAPI is required for the gatewayAPI router")
        changed = await point_services(ctx, traffic)
        route = await ctx.io.get(HTTPROUTES, ctx.namespace, routing.http_route)
        if route is None:
            raise LookupError(f"HTTPRoute {ctx.namespace}/{routing.http_route} not found")
        rules = (route.get("spec") or {}).get("rules") or []
        wanted = weighted_rules(
            rules,
            service=ctx.service,
            namespace=ctx.namespace,
            weight=traffic.weight,
            rule_index=routing.rule_index,
        )
        if wanted != rules:
            await ctx.io.patch(HTTPROUTES, ctx.namespace, routing.http_route, {"spec": {"rules": wanted}})
            ctx.writes.append(f"HTTPRoute/{routing.http_route} weight {traffic.weight} %")
            changed = True
        return TrafficResult(
            weight=traffic.weight,
            changed=changed,
            objects=(f"Service/{ctx.service}", f"HTTPRoute/{routing.http_route}"),
        )
