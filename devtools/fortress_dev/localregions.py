"""Local stand-ins for regions: a primary and streaming standbys on loopback, and their manifests.

Used by the demo, the benchmark and the tests. Every cluster has ``wal_log_hints`` and
``full_page_writes`` on, so an old primary can be rejoined with pg_rewind. The cluster-control
functions are synchronous (processes, files): call them through ``asyncio.to_thread``.
"""

from __future__ import annotations

import base64
import contextlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from fortress.api import GROUP, VERSION

# pg_rewind needs hint-bit WAL, full-page writes, and the old primary's WAL back to the last
# checkpoint before the timelines forked: a returning primary's own restart checkpoint would
# otherwise recycle it, so some WAL is kept.
REWINDABLE: dict[str, bool | int | float | str] = {
    "wal_log_hints": True,
    "full_page_writes": True,
    "wal_keep_size": "128MB",
}


@dataclass
class RegionSpec:
    """One local region: its key (DRRegion name suffix), provider, location, priority, and the
    stand-in address its endpoint gets (a real API server refuses loopback addresses in Endpoints;
    ``local_dsn`` maps it back to the local server, whose port the endpoint keeps)."""

    key: str
    provider: str
    location: str
    priority: int
    host: str


THREE_CLOUDS: tuple[RegionSpec, ...] = (
    RegionSpec("aws-us-east-1", "aws", "us-east-1", 0, "10.10.0.5"),
    RegionSpec("azure-eastus", "azure", "eastus", 10, "10.20.0.5"),
    RegionSpec("gcp-us-central1", "gcp", "us-central1", 20, "10.30.0.5"),
)


def local_dsn(endpoint: str) -> str:
    """The local server behind a stand-in endpoint ``host:port`` (same port, on loopback)."""
    port = endpoint.rsplit(":", 1)[1]
    return f"postgresql://postgres@127.0.0.1:{port}/postgres"


def start_clusters(factory: Any, keys: Sequence[str]) -> dict[str, Any]:
    """The first key's cluster is the primary, the others stream from it (application_name = key).

    The primary commits durably (synchronous_commit = on: an acknowledged commit is in its WAL), so
    what a failover loses is what replication had not shipped; fsync stays off for speed (a kill -9
    leaves the kernel's buffers intact)."""
    primary = factory.create(durable=False, synchronous_commit=True, **REWINDABLE)
    clusters = {keys[0]: primary}
    for key in keys[1:]:
        clusters[key] = factory.create_replica(primary, durable=False, application_name=key, **REWINDABLE)
    return clusters


def secret_manifest(name: str, namespace: str, dsns: Mapping[str, str]) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name, "namespace": namespace},
        "type": "Opaque",
        "data": {k: base64.b64encode(v.encode()).decode() for k, v in dsns.items()},
    }


def plan_manifest(
    name: str,
    namespace: str,
    *,
    service: str,
    check_interval: str = "1s",
    failure_threshold: int = 3,
    mode: str = "automatic",
    max_lag_bytes: int = 16 * 1024 * 1024,
    synchronous: bool = False,
    rto_target: str = "30s",
    lease_duration: str = "15s",
) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "DRPlan",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "checkInterval": check_interval,
            "failureThreshold": failure_threshold,
            "mode": mode,
            "rpoTarget": "5s",
            "rtoTarget": rto_target,
            "maxLagBytes": max_lag_bytes,
            "service": {"name": service, "mode": "Endpoints", "port": 5432},
            "fencing": "readOnly",
            "synchronous": synchronous,
            "leaseDuration": lease_duration,
        },
    }


def region_manifest(
    plan: str, namespace: str, region: RegionSpec, secret: str, port: int, host: str | None = None
) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "DRRegion",
        "metadata": {"name": f"{plan}-{region.key}", "namespace": namespace},
        "spec": {
            "planRef": plan,
            "provider": region.provider,
            "location": region.location,
            "priority": region.priority,
            "connection": {"secretKeyRef": {"name": secret, "key": region.key}},
            "endpoint": {"host": host or region.host, "port": port},
        },
    }


def apply_local_plan(
    api: client.ApiClient,
    namespace: str,
    clusters: Mapping[str, Any],
    *,
    plan: str,
    secret: str,
    **plan_options: Any,
) -> None:
    """Create the regions' Secret, the DRPlan (``plan_manifest`` options) and a DRRegion per cloud
    of ``THREE_CLOUDS`` whose cluster is in ``clusters`` (blocking: call through asyncio.to_thread)."""
    core, custom = client.CoreV1Api(api), client.CustomObjectsApi(api)
    dsns = {key: cluster.dsn() for key, cluster in clusters.items()}
    core.create_namespaced_secret(namespace, cast(Any, secret_manifest(secret, namespace, dsns)))
    body = plan_manifest(plan, namespace, **plan_options)
    custom.create_namespaced_custom_object(GROUP, VERSION, namespace, "drplans", body)
    for region in THREE_CLOUDS:
        manifest = region_manifest(plan, namespace, region, secret, clusters[region.key].port)
        custom.create_namespaced_custom_object(GROUP, VERSION, namespace, "drregions", manifest)


def delete_local_plan(api: client.ApiClient, namespace: str, plan: str) -> None:
    """Delete the regions, then the plan (which stops the operator's checks of them); absent is fine."""
    custom = client.CustomObjectsApi(api)
    for region in THREE_CLOUDS:
        with contextlib.suppress(ApiException):
            custom.delete_namespaced_custom_object(
                GROUP, VERSION, namespace, "drregions", f"{plan}-{region.key}"
            )
    with contextlib.suppress(ApiException):
        custom.delete_namespaced_custom_object(GROUP, VERSION, namespace, "drplans", plan)
