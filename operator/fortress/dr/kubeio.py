"""The Kubernetes side of a DRPlan over the shared client: its plan and regions, the Lease, the Service.

Functions taking an :class:`~fortress.adapters.kube.Kube`; objects are JSON dicts. The Lease is read
as a :class:`~fortress.dr.lease.LeaseRecord` and written with the resourceVersion it was read at, so
of two replicas writing at once the API server refuses the second (409).
"""

from __future__ import annotations

import ipaddress
import math
from collections.abc import Iterable, Mapping
from typing import Any, Final

from fortress.adapters.kube import ENDPOINTS, LEASES, SERVICES, Kube, Resource, conflict, meta
from fortress.api.drplan import INFO as PLAN_INFO
from fortress.api.drplan import PrimaryService, ServiceMode
from fortress.api.drregion import INFO as REGION_INFO
from fortress.core.time import parse, stamp_us
from fortress.dr.lease import LeaseRecord

PLANS: Final = Resource(PLAN_INFO.group, PLAN_INFO.version, PLAN_INFO.plural, kind=PLAN_INFO.kind)
REGIONS: Final = Resource(REGION_INFO.group, REGION_INFO.version, REGION_INFO.plural, kind=REGION_INFO.kind)
MANAGED_BY: Final = {"app.kubernetes.io/managed-by": "fortress"}
PORT_NAME: Final = "postgres"


class ServiceError(RuntimeError):
    """The plan's Service cannot be pointed at a region (e.g. it has a selector)."""


# --------------------------------------------------------------------------- plans and regions


def regions_of(items: Iterable[Mapping[str, Any]], plan: str) -> list[dict[str, Any]]:
    """The DRRegions whose spec.planRef is ``plan``, by name (pure)."""
    mine = [dict(i) for i in items if (i.get("spec") or {}).get("planRef") == plan]
    return sorted(mine, key=lambda i: str(meta(i).get("name")))


async def list_regions(kube: Kube, namespace: str, plan: str) -> list[dict[str, Any]]:
    """The plan's DRRegions, by name."""
    return regions_of(await kube.list(REGIONS, namespace), plan)


async def get_plan(kube: Kube, namespace: str, name: str) -> dict[str, Any] | None:
    return await kube.get(PLANS, namespace, name)


# --------------------------------------------------------------------------- the Lease


def lease_record(lease: Mapping[str, Any]) -> LeaseRecord:
    """A Lease object as the fields that matter here (pure)."""
    spec = lease.get("spec") or {}
    return LeaseRecord(
        holder=spec.get("holderIdentity"),
        duration_seconds=float(spec.get("leaseDurationSeconds") or 0),
        acquired_at=parse(spec.get("acquireTime")),
        renewed_at=parse(spec.get("renewTime")),
        transitions=int(spec.get("leaseTransitions") or 0),
        resource_version=meta(lease).get("resourceVersion"),
    )


def lease_body(namespace: str, name: str, record: LeaseRecord) -> dict[str, Any]:
    """The Lease to write for ``record`` (pure); carries its resourceVersion when it has one."""
    body: dict[str, Any] = {
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": {"name": name, "namespace": namespace, "labels": dict(MANAGED_BY)},
        "spec": {
            "holderIdentity": record.holder,
            "leaseDurationSeconds": max(1, math.ceil(record.duration_seconds)),
            "acquireTime": stamp_us(record.acquired_at) if record.acquired_at else None,
            "renewTime": stamp_us(record.renewed_at) if record.renewed_at else None,
            "leaseTransitions": record.transitions,
        },
    }
    if record.resource_version is not None:
        body["metadata"]["resourceVersion"] = record.resource_version
    return body


async def read_lease(kube: Kube, namespace: str, name: str) -> LeaseRecord | None:
    found = await kube.get(LEASES, namespace, name)
    return lease_record(found) if found is not None else None


async def write_lease(kube: Kube, namespace: str, name: str, record: LeaseRecord, exists: bool) -> bool:
    """Create or update the Lease; False when another writer got there first (409)."""
    body = lease_body(namespace, name, record)
    try:
        if exists:
            await kube.patch(LEASES, namespace, name, body)
        else:
            body["metadata"].pop("resourceVersion", None)
            await kube.create(LEASES, namespace, body)
    except Exception as error:
        if conflict(error):
            return False
        raise
    return True


# --------------------------------------------------------------------------- the Service


def service_endpoint(mode: str, host: str, port: int) -> str:
    """How a region's endpoint appears in the Service: ``ip:port`` (Endpoints) or ``host``."""
    return host if mode == ServiceMode.EXTERNAL_NAME else f"{host}:{port}"


def endpoints_target(endpoints: Mapping[str, Any] | None, mode: str) -> str | None:
    """The one address an Endpoints object points at, as :func:`service_endpoint` writes it (pure)."""
    for subset in (endpoints or {}).get("subsets") or []:
        addresses = subset.get("addresses") or []
        ports = subset.get("ports") or []
        if len(addresses) == 1 and ports:
            return service_endpoint(mode, str(addresses[0].get("ip")), int(ports[0].get("port")))
    return None


async def service_target(kube: Kube, namespace: str, service: PrimaryService) -> str | None:
    """Where the plan's Service points now, as ``service_endpoint`` writes it; None if nowhere."""
    if service.mode == ServiceMode.EXTERNAL_NAME:
        found = await kube.get(SERVICES, namespace, service.name)
        spec = (found or {}).get("spec") or {}
        return spec.get("externalName") if spec.get("type") == "ExternalName" else None
    return endpoints_target(await kube.get(ENDPOINTS, namespace, service.name), service.mode)


def _ports_differ(existing: Mapping[str, Any], port: int, target: int) -> bool:
    ports = (existing.get("spec") or {}).get("ports") or []
    if len(ports) != 1:
        return True
    return bool(ports[0].get("port") != port or str(ports[0].get("targetPort")) != str(target))


def _check_pointable(
    existing: Mapping[str, Any] | None, namespace: str, service: PrimaryService, host: str
) -> None:
    if existing is not None and ((existing.get("spec") or {}).get("selector")):
        raise ServiceError(
            f"Service {namespace}/{service.name} has a selector; the plan needs a selector-less Service"
        )
    if service.mode == ServiceMode.ENDPOINTS:
        try:
            ipaddress.ip_address(host)
        except ValueError:
            raise ServiceError(
                f"endpoint host {host!r} is not an IP address: Endpoints mode needs one (or use ExternalName)"
            ) from None


async def point_service(
    kube: Kube, namespace: str, service: PrimaryService, plan: str, host: str, port: int
) -> str:
    """Point the Service at one region's endpoint only; return the new target."""
    labels = {**MANAGED_BY, "fortress.io/drplan": plan}
    existing = await kube.get(SERVICES, namespace, service.name)
    _check_pointable(existing, namespace, service, host)
    if service.mode == ServiceMode.EXTERNAL_NAME:
        spec: dict[str, Any] = {
            "type": "ExternalName",
            "externalName": host,
            "ports": [{"name": PORT_NAME, "port": service.port, "protocol": "TCP"}],
        }
        await _upsert_service(kube, namespace, service.name, labels, spec, existing)
        return service_endpoint(service.mode, host, port)
    spec = {
        "type": "ClusterIP",
        "ports": [{"name": PORT_NAME, "port": service.port, "targetPort": port, "protocol": "TCP"}],
    }
    existing_type = ((existing or {}).get("spec") or {}).get("type")
    if existing is None or existing_type != "ClusterIP" or _ports_differ(existing, service.port, port):
        await _upsert_service(kube, namespace, service.name, labels, spec, existing)
    await _point_endpoints(kube, namespace, service.name, labels, host, port)
    return service_endpoint(service.mode, host, port)


async def _point_endpoints(
    kube: Kube, namespace: str, name: str, labels: Mapping[str, str], host: str, port: int
) -> None:
    body: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Endpoints",
        "metadata": {"name": name, "namespace": namespace, "labels": dict(labels)},
        "subsets": [
            {"addresses": [{"ip": host}], "ports": [{"name": PORT_NAME, "port": port, "protocol": "TCP"}]}
        ],
    }
    current = await kube.get(ENDPOINTS, namespace, name)
    if current is None:
        await kube.create(ENDPOINTS, namespace, body)
        return
    body["metadata"]["resourceVersion"] = meta(current).get("resourceVersion")
    await kube.patch(ENDPOINTS, namespace, name, body)


async def _upsert_service(
    kube: Kube,
    namespace: str,
    name: str,
    labels: Mapping[str, str],
    spec: dict[str, Any],
    existing: Mapping[str, Any] | None,
) -> None:
    body: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": namespace, "labels": dict(labels)},
        "spec": spec,
    }
    if existing is None:
        await kube.create(SERVICES, namespace, body)
        return
    body["metadata"]["resourceVersion"] = meta(existing).get("resourceVersion")
    if spec["type"] == "ClusterIP":
        spec["externalName"] = None  # merge patch: remove what the other mode set
    else:
        spec.update({"clusterIP": None, "clusterIPs": None})
    await kube.patch(SERVICES, namespace, name, body)
