"""The Kubernetes side of a DRPlan: plans, regions, Secrets, the Service, the Lease, Events, status.

Thin calls on the synchronous ``kubernetes`` client, each run through ``asyncio.to_thread``.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import ipaddress
import json
import math
import uuid
from typing import Any, cast

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from fortress.adapters.kube import Cluster, Kube
from fortress.api import GROUP, VERSION
from fortress.api.drplan import INFO as PLAN_INFO
from fortress.api.drplan import PrimaryService, ServiceMode
from fortress.api.drregion import INFO as REGION_INFO
from fortress.dr.lease import LeaseRecord

MANAGED_BY = {"app.kubernetes.io/managed-by": "fortress"}
PORT_NAME = "postgres"
# Merge patches carrying metadata.resourceVersion: the API server refuses them if the object changed.
MERGE_PATCH = "application/merge-patch+json"


class ServiceError(RuntimeError):
    """The plan's Service cannot be pointed at a region (e.g. it has a selector)."""


def service_endpoint(mode: str, host: str, port: int) -> str:
    """How a region's endpoint appears in the Service: ``ip:port`` (Endpoints) or ``host``."""
    return host if mode == ServiceMode.EXTERNAL_NAME else f"{host}:{port}"


def _micro_time(moment: dt.datetime | None) -> str | None:
    if moment is None:
        return None
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _aware(moment: dt.datetime | None) -> dt.datetime | None:
    if moment is None:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)


class KubeActions(Kube):
    """Every Kubernetes call the DR subsystem makes, on a client of its own (``Kube`` plus Leases)."""

    def __init__(self, cluster: Cluster) -> None:
        super().__init__(cluster)
        self.coordination = client.CoordinationV1Api(self._api)

    # --- plans and regions ------------------------------------------------------------------------------

    async def get_plan(self, namespace: str, name: str) -> dict[str, Any] | None:
        try:
            return cast(
                dict[str, Any],
                await asyncio.to_thread(
                    self.custom.get_namespaced_custom_object,
                    GROUP,
                    VERSION,
                    namespace,
                    PLAN_INFO.plural,
                    name,
                ),
            )
        except ApiException as error:
            if error.status == 404:
                return None
            raise

    async def list_plans(self, namespace: str) -> list[dict[str, Any]]:
        listing = await asyncio.to_thread(
            self.custom.list_namespaced_custom_object, GROUP, VERSION, namespace, PLAN_INFO.plural
        )
        return list(cast(dict[str, Any], listing).get("items") or [])

    async def list_regions(self, namespace: str, plan: str) -> list[dict[str, Any]]:
        """The DRRegions whose spec.planRef is ``plan``, by name."""
        listing = await asyncio.to_thread(
            self.custom.list_namespaced_custom_object, GROUP, VERSION, namespace, REGION_INFO.plural
        )
        items = cast(dict[str, Any], listing).get("items") or []
        mine = [i for i in items if (i.get("spec") or {}).get("planRef") == plan]
        return sorted(mine, key=lambda i: i["metadata"]["name"])

    async def patch_status(self, plural: str, namespace: str, name: str, status: dict[str, Any]) -> None:
        """Merge ``status`` into the object's status (None removes a field)."""
        try:
            await asyncio.to_thread(
                self.custom.patch_namespaced_custom_object_status,
                GROUP,
                VERSION,
                namespace,
                plural,
                name,
                {"status": status},
            )
        except ApiException as error:
            if error.status != 404:  # deleted meanwhile
                raise

    async def patch_plan_spec(self, namespace: str, name: str, spec: dict[str, Any]) -> dict[str, Any]:
        return cast(
            dict[str, Any],
            await asyncio.to_thread(
                self.custom.patch_namespaced_custom_object,
                GROUP,
                VERSION,
                namespace,
                PLAN_INFO.plural,
                name,
                {"spec": spec},
            ),
        )

    # --- the Lease --------------------------------------------------------------------------------------

    async def read_lease(self, namespace: str, name: str) -> LeaseRecord | None:
        try:
            lease = await asyncio.to_thread(self.coordination.read_namespaced_lease, name, namespace)
        except ApiException as error:
            if error.status == 404:
                return None
            raise
        spec = lease.spec
        return LeaseRecord(
            holder=spec.holder_identity if spec else None,
            duration_seconds=float((spec.lease_duration_seconds if spec else None) or 0),
            acquired_at=_aware(spec.acquire_time if spec else None),
            renewed_at=_aware(spec.renew_time if spec else None),
            transitions=int((spec.lease_transitions if spec else None) or 0),
            resource_version=lease.metadata.resource_version if lease.metadata else None,
        )

    async def write_lease(self, namespace: str, name: str, record: LeaseRecord, exists: bool) -> bool:
        """Create or replace the Lease; False when another writer got there first (409)."""
        body: Any = {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {"name": name, "namespace": namespace, "labels": dict(MANAGED_BY)},
            "spec": {
                "holderIdentity": record.holder,
                "leaseDurationSeconds": max(1, math.ceil(record.duration_seconds)),
                "acquireTime": _micro_time(record.acquired_at),
                "renewTime": _micro_time(record.renewed_at),
                "leaseTransitions": record.transitions,
            },
        }
        try:
            if exists:
                body["metadata"]["resourceVersion"] = record.resource_version
                await asyncio.to_thread(
                    self.coordination.patch_namespaced_lease, name, namespace, body, _content_type=MERGE_PATCH
                )
            else:
                await asyncio.to_thread(self.coordination.create_namespaced_lease, namespace, body)
        except ApiException as error:
            if error.status == 409:
                return False
            raise
        return True

    # --- the Service ------------------------------------------------------------------------------------

    async def service_target(self, namespace: str, service: PrimaryService) -> str | None:
        """Where the plan's Service points now, as ``service_endpoint`` writes it; None if nowhere."""
        if service.mode == ServiceMode.EXTERNAL_NAME:
            svc = await self._read(self.core.read_namespaced_service, service.name, namespace)
            if svc is None or svc.spec is None or svc.spec.type != "ExternalName":
                return None
            return cast(str | None, svc.spec.external_name)
        endpoints = await self._read(self.core.read_namespaced_endpoints, service.name, namespace)
        for subset in (endpoints.subsets if endpoints is not None else None) or []:
            addresses = subset.addresses or []
            ports = subset.ports or []
            if len(addresses) == 1 and ports:
                return service_endpoint(service.mode, addresses[0].ip, ports[0].port)
        return None

    async def point_service(
        self, namespace: str, service: PrimaryService, plan: str, host: str, port: int
    ) -> str:
        """Point the Service at one region's endpoint only; return the new target."""
        labels = {**MANAGED_BY, "fortress.io/drplan": plan}
        existing = await self._read(self.core.read_namespaced_service, service.name, namespace)
        if existing is not None and existing.spec is not None and existing.spec.selector:
            raise ServiceError(
                f"Service {namespace}/{service.name} has a selector; the plan needs a selector-less Service"
            )
        if service.mode == ServiceMode.EXTERNAL_NAME:
            spec: dict[str, Any] = {
                "type": "ExternalName",
                "externalName": host,
                "ports": [{"name": PORT_NAME, "port": service.port, "protocol": "TCP"}],
            }
            await self._upsert_service(namespace, service.name, labels, spec, existing)
            return service_endpoint(service.mode, host, port)
        try:
            ipaddress.ip_address(host)
        except ValueError:
            raise ServiceError(
                f"endpoint host {host!r} is not an IP address: Endpoints mode needs one (or use ExternalName)"
            ) from None
        spec = {
            "type": "ClusterIP",
            "ports": [{"name": PORT_NAME, "port": service.port, "targetPort": port, "protocol": "TCP"}],
        }
        if (
            existing is None
            or existing.spec is None
            or existing.spec.type != "ClusterIP"
            or _ports_differ(existing, service.port, port)
        ):
            await self._upsert_service(namespace, service.name, labels, spec, existing)
        body: Any = {
            "apiVersion": "v1",
            "kind": "Endpoints",
            "metadata": {"name": service.name, "namespace": namespace, "labels": labels},
            "subsets": [
                {"addresses": [{"ip": host}], "ports": [{"name": PORT_NAME, "port": port, "protocol": "TCP"}]}
            ],
        }
        current = await self._read(self.core.read_namespaced_endpoints, service.name, namespace)
        if current is None:
            await asyncio.to_thread(self.core.create_namespaced_endpoints, namespace, body)
        else:
            body["metadata"]["resourceVersion"] = current.metadata.resource_version
            await asyncio.to_thread(
                self.core.patch_namespaced_endpoints, service.name, namespace, body, _content_type=MERGE_PATCH
            )
        return service_endpoint(service.mode, host, port)

    async def _upsert_service(
        self, namespace: str, name: str, labels: dict[str, str], spec: dict[str, Any], existing: Any
    ) -> None:
        body: Any = {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": name, "namespace": namespace, "labels": labels},
            "spec": spec,
        }
        if existing is None:
            await asyncio.to_thread(self.core.create_namespaced_service, namespace, body)
            return
        body["metadata"]["resourceVersion"] = existing.metadata.resource_version
        if spec["type"] == "ClusterIP":
            spec["externalName"] = None  # merge patch: remove what the other mode set
        else:
            spec.update({"clusterIP": None, "clusterIPs": None})
        await asyncio.to_thread(
            self.core.patch_namespaced_service, name, namespace, body, _content_type=MERGE_PATCH
        )

    async def _read(self, method: Any, name: str, namespace: str) -> Any:
        try:
            return await asyncio.to_thread(method, name, namespace)
        except ApiException as error:
            if error.status == 404:
                return None
            raise

    # --- Events -----------------------------------------------------------------------------------------

    async def post_event(
        self,
        namespace: str,
        involved: dict[str, Any],
        type_: str,
        reason: str,
        message: str,
        now: dt.datetime,
    ) -> None:
        """A core/v1 Event about ``involved`` (kind, name, uid)."""
        stamp = now.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        body: Any = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"name": f"{involved['name']}.{uuid.uuid4().hex[:16]}", "namespace": namespace},
            "involvedObject": {
                "apiVersion": f"{GROUP}/{VERSION}",
                "kind": involved["kind"],
                "name": involved["name"],
                "namespace": namespace,
                "uid": involved.get("uid"),
            },
            "type": type_,
            "reason": reason,
            "message": message[:1024],
            "firstTimestamp": stamp,
            "lastTimestamp": stamp,
            "count": 1,
            "source": {"component": "fortress-dr"},
            "reportingComponent": "fortress-dr",
        }
        await asyncio.to_thread(self.core.create_namespaced_event, namespace, body)


def describe(error: ApiException) -> str:
    """The API server's own message (e.g. why it refused an object), not the whole response."""
    try:
        body = json.loads(error.body or "{}")
    except (TypeError, ValueError):
        body = {}
    message = body.get("message") if isinstance(body, dict) else None
    return f"{error.status} {message or error.reason}"


def _ports_differ(existing: Any, port: int, target: int) -> bool:
    ports = (existing.spec.ports if existing.spec is not None else None) or []
    if len(ports) != 1:
        return True
    return bool(ports[0].port != port or str(ports[0].target_port) != str(target))
