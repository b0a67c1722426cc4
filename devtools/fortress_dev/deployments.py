"""Deployment status for Kubernetes APIs without a Deployment controller (the demo, tests, benchmarks).

The in-memory emulator and a bare kube-apiserver + etcd run no controllers: a Deployment never gets
pods, so ``status.availableReplicas`` stays empty and a release would wait forever. The simulator
here patches the status of the rollouts' Deployments (label ``app.kubernetes.io/managed-by=fortress``)
as a Deployment controller would once every pod is available; those who use it say so. It runs with
the user's credentials, never the operator's (fortress.rbac): the operator never writes Deployment
status. Never point it at a real cluster, whose controller writes that status itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any

from kubernetes import client

from fortress.adapters.kube import DEPLOYMENTS, BlockingKube, Cluster, Resource, not_found
from fortress.rollouts.model import LABEL_MANAGED_BY, MANAGED_BY

REPLICA_SETS = Resource("apps", "v1", "replicasets", kind="ReplicaSet")


class ControllerPresent(RuntimeError):
    """A Deployment controller runs in this API: simulating its status would fight it."""


def simulated_status(obj: Mapping[str, Any]) -> dict[str, Any]:
    """The status a Deployment controller would report once every pod is available.

    For Kubernetes APIs without controllers (the in-memory emulator, a bare kube-apiserver), where
    tests and the demo patch it in; on a real cluster the Deployment controller writes it.
    """
    replicas = int((obj.get("spec") or {}).get("replicas", 1) or 0)
    generation = (obj.get("metadata") or {}).get("generation") or 1
    return {
        "observedGeneration": generation,
        "replicas": replicas,
        "updatedReplicas": replicas,
        "readyReplicas": replicas,
        "availableReplicas": replicas,
    }


log = logging.getLogger("fortress_dev.deployments")


class AvailabilitySimulator:
    """Marks the rollouts' Deployments in one namespace available, ``delay`` seconds after each change."""

    def __init__(
        self,
        api: client.ApiClient,
        namespace: str,
        *,
        interval: float = 0.25,
        delay: float = 0.0,
        hold: Callable[[str], bool] | None = None,
    ) -> None:
        self.kube = BlockingKube(Cluster(api.configuration), connections=2)
        self.namespace = namespace
        self.interval = interval
        self.delay = delay
        self.hold = hold or (lambda _name: False)
        self.patched = 0
        self._seen: dict[tuple[str, Any], float] = {}

    async def sync_once(self) -> int:
        """Patch every managed Deployment whose status lags its spec; the number patched."""
        patched = 0
        labels = {LABEL_MANAGED_BY: MANAGED_BY}
        items = await asyncio.to_thread(self.kube.list, DEPLOYMENTS, self.namespace, labels)
        if items:
            await self._refuse_beside_a_controller({str((o.get("metadata") or {}).get("uid")) for o in items})
        now = time.monotonic()
        for obj in items:
            meta = obj.get("metadata") or {}
            name = str(meta.get("name"))
            if self.hold(name):
                continue
            wanted = simulated_status(obj)
            key = (name, (meta.get("generation"), wanted["replicas"]))
            first = self._seen.setdefault(key, now)
            if now - first < self.delay:
                continue
            current = obj.get("status") or {}
            if all(current.get(k) == v for k, v in wanted.items()):
                continue
            status = {"status": wanted}
            await asyncio.to_thread(self.kube.patch, DEPLOYMENTS, self.namespace, name, status, "status")
            patched += 1
        self.patched += patched
        return patched

    async def _refuse_beside_a_controller(self, uids: set[str]) -> None:
        """Raise ``ControllerPresent`` when a ReplicaSet is owned by one of these Deployments."""
        try:
            sets = await asyncio.to_thread(self.kube.list, REPLICA_SETS, self.namespace)
        except Exception as error:  # an API that does not serve ReplicaSets runs no Deployment controller
            if not_found(error):
                return
            raise
        for rs in sets:
            owners = (rs.get("metadata") or {}).get("ownerReferences") or []
            if any(o.get("kind") == "Deployment" and o.get("uid") in uids for o in owners):
                raise ControllerPresent(
                    f"namespace {self.namespace}: ReplicaSet {rs['metadata'].get('name')} is owned by a "
                    "managed Deployment, so a Deployment controller runs here; the availability "
                    "simulator is only for APIs without controllers"
                )

    async def run(self, stop: asyncio.Event) -> None:
        """Sync until ``stop`` is set, then close the connections; ``ControllerPresent`` ends it at once."""
        last_error = ""
        try:
            while not stop.is_set():
                try:
                    await self.sync_once()
                except ControllerPresent:
                    raise
                except Exception as error:  # retried on the next pass; said once per distinct error
                    if str(error) != last_error:
                        log.warning("availability simulator, namespace %s: %s", self.namespace, error)
                    last_error = str(error)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), self.interval)
        finally:
            await asyncio.to_thread(self.kube.close)


@contextlib.asynccontextmanager
async def simulated_availability(
    api: client.ApiClient, namespace: str, **options: Any
) -> AsyncIterator[AvailabilitySimulator]:
    """Run an ``AvailabilitySimulator`` for the duration of the block."""
    simulator = AvailabilitySimulator(api, namespace, **options)
    stop = asyncio.Event()
    task = asyncio.create_task(simulator.run(stop))
    try:
        yield simulator
    finally:
        stop.set()
        await task


def make_available(api: client.ApiClient, namespace: str, name: str) -> None:
    """Patch one Deployment's status as its controller would once all its pods are available."""
    apps = client.AppsV1Api(api)
    found = apps.read_namespaced_deployment(name, namespace)
    meta, spec = found.metadata, found.spec
    obj = {"metadata": {"generation": meta and meta.generation}, "spec": {"replicas": spec and spec.replicas}}
    apps.patch_namespaced_deployment_status(name, namespace, {"status": simulated_status(obj)})
