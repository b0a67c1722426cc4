"""What every router shares: the context it works in, its result, and the Services it keeps pointed."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from fortress.adapters.kube import SERVICES, Kube
from fortress.rollouts.model import (
    LABEL_COLOUR,
    LABEL_MANAGED_BY,
    LABEL_ROLLOUT,
    MANAGED_BY,
    Traffic,
    other,
)


def selector(rollout: str, colour: str | None) -> dict[str, str | None]:
    """Pods of one colour of the rollout (``colour`` None: both colours; the key is removed)."""
    return {LABEL_ROLLOUT: rollout, LABEL_COLOUR: colour}


def managed_labels(rollout: str) -> dict[str, str]:
    return {LABEL_MANAGED_BY: MANAGED_BY, LABEL_ROLLOUT: rollout}


def canary_service_name(service: str) -> str:
    return f"{service}-canary"[:253]


def service_ports(template: Mapping[str, Any] | None) -> list[dict[str, Any]]:
    """Service ports for a Service the rollout creates: the containers' ports, else port 80."""
    ports: list[dict[str, Any]] = []
    containers = ((template or {}).get("spec") or {}).get("containers") or []
    for container in containers:
        for port in container.get("ports") or []:
            number = port.get("containerPort")
            if not isinstance(number, int):
                continue
            entry: dict[str, Any] = {
                "name": str(port.get("name") or f"port-{number}"),
                "port": number,
                "targetPort": number,
                "protocol": port.get("protocol") or "TCP",
            }
            if all(p["port"] != number for p in ports):
                ports.append(entry)
    return ports or [{"name": "http", "port": 80, "targetPort": 80, "protocol": "TCP"}]


def selector_differs(current: Mapping[str, Any] | None, wanted: Mapping[str, str | None]) -> bool:
    effective = {k: v for k, v in wanted.items() if v is not None}
    return dict(current or {}) != effective


@dataclass(frozen=True)
class TrafficResult:
    """What a router applied."""

    weight: int
    changed: bool
    objects: tuple[str, ...] = ()


@dataclass
class RouterContext:
    """The rollout a router works for and the I/O it may use."""

    io: Kube
    namespace: str
    rollout: str
    service: str
    owner: Mapping[str, Any]
    template: Mapping[str, Any] | None
    routing: Any = None  # spec.trafficRouting
    writes: list[str] = field(default_factory=list)

    def owned(self, labels: Mapping[str, str] | None = None) -> dict[str, Any]:
        return {
            "labels": {**dict(labels or {}), **managed_labels(self.rollout)},
            "ownerReferences": [dict(self.owner)],
        }

    async def ensure_service_selector(
        self, name: str, wanted: Mapping[str, str | None], ports: Sequence[Mapping[str, Any]] | None = None
    ) -> bool:
        """Point a Service at the wanted pods, creating it (owned by the rollout) when missing.

        A Service that exists keeps everything but its selector, which becomes exactly ``wanted``.
        """
        current = await self.io.get(SERVICES, self.namespace, name)
        if current is None:
            body = {
                "apiVersion": "v1",
                "kind": "Service",
                "metadata": {"name": name, "namespace": self.namespace, **self.owned()},
                "spec": {
                    "selector": {k: v for k, v in wanted.items() if v is not None},
                    "ports": [dict(p) for p in (ports or service_ports(self.template))],
                },
            }
            await self.io.create(SERVICES, self.namespace, body)
            self.writes.append(f"Service/{name} created")
            return True
        selector_now = (current.get("spec") or {}).get("selector") or {}
        if not selector_differs(selector_now, wanted):
            return False
        patch: dict[str, Any] = {k: None for k in selector_now if k not in wanted}
        patch.update(wanted)
        await self.io.patch(SERVICES, self.namespace, name, {"spec": {"selector": patch}})
        self.writes.append(f"Service/{name} selector")
        return True

    async def ensure_service_exists(self, colour: str) -> bool:
        """Create the stable Service (selecting ``colour``) when missing; an existing one is left alone."""
        if await self.io.get(SERVICES, self.namespace, self.service) is not None:
            return False
        return await self.ensure_service_selector(self.service, selector(self.rollout, colour))

    async def stable_ports(self) -> list[dict[str, Any]]:
        current = await self.io.get(SERVICES, self.namespace, self.service)
        ports = ((current or {}).get("spec") or {}).get("ports") or []
        cleaned = [
            {k: v for k, v in p.items() if k in ("name", "port", "targetPort", "protocol", "appProtocol")}
            for p in ports
        ]
        return cleaned or service_ports(self.template)


class Router(Protocol):
    """Applies a traffic split; idempotent (writes only what differs)."""

    name: str

    async def apply(self, ctx: RouterContext, traffic: Traffic) -> TrafficResult: ...


async def point_services(ctx: RouterContext, traffic: Traffic) -> bool:
    """Stable Service to the stable colour and ``<service>-canary`` to the canary colour (routers)."""
    changed = await ctx.ensure_service_selector(ctx.service, selector(ctx.rollout, traffic.stable))
    ports = await ctx.stable_ports()
    canary = traffic.canary or other(traffic.stable)
    changed |= await ctx.ensure_service_selector(
        canary_service_name(ctx.service), selector(ctx.rollout, canary), ports
    )
    return changed
