"""Traffic routers behind one interface (``Router.apply(ctx, traffic)``), one module each.

- ``replicas``: the canary's share is its share of the stable Service's pods (no router needed).
- ``nginx``: a canary Ingress with the ``canary-weight`` annotation.
- ``gatewayAPI``: backendRef weights of an HTTPRoute, every other field kept.
"""

from __future__ import annotations

from fortress.rollouts.traffic.base import Router, RouterContext, TrafficResult
from fortress.rollouts.traffic.gatewayapi import GatewayRouter
from fortress.rollouts.traffic.nginx import NginxRouter
from fortress.rollouts.traffic.replicas import ReplicasRouter

ROUTERS: dict[str, Router] = {
    "replicas": ReplicasRouter(),
    "nginx": NginxRouter(),
    "gatewayAPI": GatewayRouter(),
}


def router_for(kind: str) -> Router:
    """The router of a spec.trafficRouting.type."""
    try:
        return ROUTERS[kind]
    except KeyError:
        raise ValueError(f"unknown traffic router {kind!r}; expected one of {', '.join(ROUTERS)}") from None


__all__ = ["ROUTERS", "Router", "RouterContext", "TrafficResult", "router_for"]
