"""The ``replicas`` router: no router at all; the canary's share is its share of the Service's pods.

The stable Service selects the stable colour at rest, both colours while a canary holds a weight between
0 and 100 %, and the canary colour alone at 100 %. The stable colour keeps all its pods as long as the
canary can reach its share with at most as many pods, so a rollback never waits for a scale-up; above
50 % the stable colour shrinks (never below one pod) and is scaled back up in the same reconcile as a
rollback. Small Deployments cannot hit small weights exactly (1 % of 4 pods is one pod in five, 20 %):
status.canaryWeight reports the share actually applied.
"""

from __future__ import annotations

from fortress.rollouts.model import Traffic
from fortress.rollouts.traffic.base import RouterContext, TrafficResult, selector


def _half_up(value: float) -> int:
    return int(value + 0.5)


def split(replicas: int, weight: int) -> tuple[int, int]:
    """(stable pods, canary pods) so that canary / (stable + canary) comes closest to ``weight`` %."""
    if weight <= 0:
        return replicas, 0
    if weight >= 100:
        return replicas, replicas
    if replicas <= 0:
        return 0, 0
    canary = max(1, _half_up(replicas * weight / (100 - weight)))
    if canary <= replicas:
        return replicas, canary
    return max(1, _half_up(replicas * (100 - weight) / weight)), replicas


def effective_weight(replicas: int, weight: int) -> int:
    """The canary's actual share of the pods for a nominal ``weight``."""
    if weight <= 0 or weight >= 100 or replicas <= 0:
        return max(0, min(100, weight))
    stable, canary = split(replicas, weight)
    return _half_up(100 * canary / (stable + canary))


def service_selector(rollout: str, traffic: Traffic) -> dict[str, str | None]:
    """The stable Service's selector (a merge patch: None removes the colour key)."""
    if traffic.canary is None or traffic.weight <= 0:
        return selector(rollout, traffic.stable)
    if traffic.weight >= 100:
        return selector(rollout, traffic.canary)
    return selector(rollout, None)


class ReplicasRouter:
    """Weights by pod ratio through the stable Service's selector."""

    name = "replicas"

    async def apply(self, ctx: RouterContext, traffic: Traffic) -> TrafficResult:
        changed = await ctx.ensure_service_selector(ctx.service, service_selector(ctx.rollout, traffic))
        return TrafficResult(weight=traffic.weight, changed=changed, objects=(f"Service/{ctx.service}",))
