"""Watching what the real controllers do while a rollout runs: every state, not just samples.

:class:`Recorder` lists one kind of object (a namespace, a label selector) and then watches it in a
thread, applying each event in the order the API server sends them, so it sees every state the objects
went through; after each event it records ``measure(objects)``. :func:`sample_every` polls instead,
for those who want both views. The rest reads Pods and EndpointSlices as the controllers wrote them.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import AsyncIterator, Callable
from typing import Any, Generic, TypeVar

from kubernetes import client, watch
from kubernetes.client.exceptions import ApiException

T = TypeVar("T")
SERVICE_NAME_LABEL = "kubernetes.io/service-name"


class Recorder(Generic[T]):
    """``measure`` of one kind's objects after the initial list and after every watch event."""

    def __init__(
        self,
        list_fn: Callable[..., Any],
        namespace: str,
        measure: Callable[[dict[str, Any]], T],
        label_selector: str = "",
    ) -> None:
        self.list_fn, self.namespace, self.measure = list_fn, namespace, measure
        self.label_selector = label_selector
        self.objects: dict[str, Any] = {}
        self.seen: list[T] = []
        self.events = 0
        self.error: BaseException | None = None
        self._stop = threading.Event()
        self._version = ""
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _list(self) -> None:
        found = self.list_fn(self.namespace, label_selector=self.label_selector)
        self.objects = {o.metadata.name: o for o in found.items}
        self._version = found.metadata.resource_version
        self.seen.append(self.measure(dict(self.objects)))

    def start(self) -> Recorder[T]:
        self._list()
        self._thread.start()
        return self

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                stream = watch.Watch()
                try:
                    for event in stream.stream(
                        self.list_fn,
                        self.namespace,
                        label_selector=self.label_selector,
                        resource_version=self._version,
                        timeout_seconds=1,
                    ):
                        self._apply(event)
                        if self._stop.is_set():
                            stream.stop()
                except ApiException as error:
                    if error.status != 410:
                        raise
                    self._list()  # the watch fell too far behind: list again
        except BaseException as error:  # reported by stop()
            self.error = error

    def _apply(self, event: dict[str, Any]) -> None:
        obj = event["object"]
        name = obj.metadata.name
        if event["type"] == "DELETED":
            self.objects.pop(name, None)
        else:
            self.objects[name] = obj
        self._version = obj.metadata.resource_version
        self.events += 1
        self.seen.append(self.measure(dict(self.objects)))

    def stop(self) -> list[T]:
        """Stop watching; every measurement, the first one from the initial list."""
        self._stop.set()
        self._thread.join(10)
        if self.error is not None:
            raise self.error
        return self.seen


@contextlib.asynccontextmanager
async def sample_every(interval: float, read: Callable[[], T]) -> AsyncIterator[list[T]]:
    """Call ``read`` (off the loop) every ``interval`` seconds in a background task while the block runs."""
    samples: list[T] = []
    stop = asyncio.Event()

    async def run() -> None:
        while not stop.is_set():
            samples.append(await asyncio.to_thread(read))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), interval)

    task = asyncio.create_task(run())
    try:
        yield samples
    finally:
        stop.set()
        await task


# ---- Pods and EndpointSlices ---------------------------------------------------------------------------


def pod_ready(pod: Any) -> bool:
    """Running, not terminating, condition Ready=True."""
    if pod.metadata.deletion_timestamp is not None:
        return False
    conditions = (pod.status and pod.status.conditions) or []
    return any(c.type == "Ready" and c.status == "True" for c in conditions)


def ready_count(pods: dict[str, Any]) -> int:
    return sum(1 for p in pods.values() if pod_ready(p))


def live_count(pods: dict[str, Any]) -> int:
    """Pods not being deleted."""
    return sum(1 for p in pods.values() if p.metadata.deletion_timestamp is None)


def replica_set_total(sets: dict[str, Any]) -> int:
    """The ReplicaSets' desired pods together (what maxSurge bounds)."""
    return sum(int(rs.spec.replicas or 0) for rs in sets.values())


def selector(labels: dict[str, str]) -> str:
    return ",".join(f"{k}={v}" for k, v in sorted(labels.items()))


def pods(api: client.ApiClient, namespace: str, labels: dict[str, str]) -> list[Any]:
    return list(client.CoreV1Api(api).list_namespaced_pod(namespace, label_selector=selector(labels)).items)


def ready_pod_ips(api: client.ApiClient, namespace: str, labels: dict[str, str]) -> set[str]:
    return {p.status.pod_ip for p in pods(api, namespace, labels) if pod_ready(p) and p.status.pod_ip}


def colour_labels(rollout: str, colour: str) -> dict[str, str]:
    return {"fortress.io/rollout": rollout, "fortress.io/colour": colour}


def slice_ready_ips(slices: dict[str, Any]) -> set[str]:
    """The addresses of the endpoints the slices mark ready (an unset condition counts as ready)."""
    found: set[str] = set()
    for endpoint_slice in slices.values():
        for endpoint in endpoint_slice.endpoints or []:
            ready = endpoint.conditions.ready if endpoint.conditions else None
            if ready is None or ready:
                found.update(endpoint.addresses or [])
    return found


def service_slices(api: client.ApiClient, namespace: str, service: str) -> dict[str, Any]:
    found = client.DiscoveryV1Api(api).list_namespaced_endpoint_slice(
        namespace, label_selector=f"{SERVICE_NAME_LABEL}={service}"
    )
    return {s.metadata.name: s for s in found.items}


def serving_ips(api: client.ApiClient, namespace: str, service: str) -> set[str]:
    """The ready pod IPs the Service's EndpointSlices list (what kube-proxy would send traffic to)."""
    return slice_ready_ips(service_slices(api, namespace, service))


def endpoint_slice_recorder(api: client.ApiClient, namespace: str, service: str) -> Recorder[set[str]]:
    return Recorder(
        client.DiscoveryV1Api(api).list_namespaced_endpoint_slice,
        namespace,
        slice_ready_ips,
        f"{SERVICE_NAME_LABEL}={service}",
    )
