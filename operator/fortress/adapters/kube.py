"""The one Kubernetes client of Fortress: plain JSON in and out, off the event loop, and Events.

Objects stay dicts end to end (no typed models), so an Ingress or an HTTPRoute round-trips with every
field it had. Patches are JSON merge patches (RFC 7386): ``None`` removes a key, lists are replaced.
:class:`BlockingKube` makes the calls (for the CLI and the kubectl plugin, which may block);
:class:`Kube` runs the same calls on a thread pool of its own, for the operator and the HTTP API,
so no call ever blocks the event loop. Subsystems extend it only with typed helpers of their own
that take a ``Kube``; no other module builds a Kubernetes client.
"""

from __future__ import annotations

import asyncio
import base64
import copy
import functools
import json
import uuid
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Final, TypeVar
from urllib.parse import quote

import kopf
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from fortress.core.time import now as utc_now
from fortress.core.time import stamp, stamp_us

MERGE_PATCH: Final = "application/merge-patch+json"
JSON_PATCH: Final = "application/json-patch+json"
DEFAULT_TIMEOUT: Final = 15.0
DEFAULT_WORKERS: Final = 16
PAGE_SIZE: Final = 500
EVENT_MESSAGE_LIMIT: Final = 1024

T = TypeVar("T")
Objects = list[dict[str, Any]]  # a listing (an alias: the classes below have a method named list)

__all__ = ["ApiException", "BlockingKube", "Cluster", "Kube", "Resource", "load_cluster"]


# --------------------------------------------------------------------------- clusters


@dataclass(frozen=True)
class Cluster:
    """How to reach one Kubernetes API server."""

    configuration: client.Configuration

    @property
    def server(self) -> str:
        return str(self.configuration.host)

    def connection_info(self) -> kopf.ConnectionInfo:
        """The same credentials in the form Kopf's login handler returns."""
        c = self.configuration
        token = (c.api_key or {}).get("authorization") or (c.api_key or {}).get("BearerToken")
        scheme = None
        if token and " " in token:
            scheme, token = token.split(" ", 1)
        return kopf.ConnectionInfo(
            server=c.host,
            ca_path=c.ssl_ca_cert or None,
            insecure=not c.verify_ssl,
            certificate_path=c.cert_file or None,
            private_key_path=c.key_file or None,
            scheme=scheme,
            token=token or None,
        )


def load_cluster(kubeconfig: str | None = None, context: str | None = None) -> Cluster:
    """Load a kubeconfig (or the in-cluster service account when none is given and none is found).

    Synchronous file I/O: call it before the event loop starts or via ``asyncio.to_thread``.
    """
    configuration = client.Configuration()
    try:
        config.load_kube_config(  # type: ignore[no-untyped-call]
            config_file=kubeconfig, context=context, client_configuration=configuration
        )
    except config.ConfigException:
        if kubeconfig is not None:
            raise
        config.load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
    return Cluster(configuration)


# --------------------------------------------------------------------------- resources


@dataclass(frozen=True)
class Resource:
    """An API resource: group ("" for core), version, plural, and whether it lives in namespaces."""

    group: str
    version: str
    plural: str
    namespaced: bool = True
    kind: str = ""

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    def path(
        self, namespace: str | None = None, name: str | None = None, subresource: str | None = None
    ) -> str:
        """The URL path; ``namespace`` None lists across all namespaces."""
        base = f"/api/{self.version}" if not self.group else f"/apis/{self.group}/{self.version}"
        if self.namespaced and namespace is not None:
            base += f"/namespaces/{quote(namespace, safe='')}"
        path = f"{base}/{self.plural}"
        if name is not None:
            path += f"/{quote(name, safe='')}"
        if subresource is not None:
            path += f"/{subresource}"
        return path


SECRETS: Final = Resource("", "v1", "secrets", kind="Secret")
CONFIGMAPS: Final = Resource("", "v1", "configmaps", kind="ConfigMap")
SERVICES: Final = Resource("", "v1", "services", kind="Service")
ENDPOINTS: Final = Resource("", "v1", "endpoints", kind="Endpoints")
EVENTS: Final = Resource("", "v1", "events", kind="Event")
DEPLOYMENTS: Final = Resource("apps", "v1", "deployments", kind="Deployment")
LEASES: Final = Resource("coordination.k8s.io", "v1", "leases", kind="Lease")
INGRESSES: Final = Resource("networking.k8s.io", "v1", "ingresses", kind="Ingress")
HTTPROUTES: Final = Resource("gateway.networking.k8s.io", "v1", "httproutes", kind="HTTPRoute")


def custom(group: str, version: str, plural: str, kind: str = "") -> Resource:
    """A namespaced custom resource, e.g. a Fortress kind (group, version, plural of its KindInfo)."""
    return Resource(group, version, plural, True, kind)


def not_found(error: BaseException) -> bool:
    return isinstance(error, ApiException) and error.status == 404


def conflict(error: BaseException) -> bool:
    return isinstance(error, ApiException) and error.status == 409


def meta(obj: Mapping[str, Any] | None) -> Mapping[str, Any]:
    """``obj.metadata`` or an empty mapping."""
    found = (obj or {}).get("metadata")
    return found if isinstance(found, Mapping) else {}


def owner_reference(api_version: str, kind: str, name: str, uid: str) -> dict[str, Any]:
    """A controller ownerReference: the owned object is garbage-collected with its owner."""
    return {
        "apiVersion": api_version,
        "kind": kind,
        "name": name,
        "uid": uid,
        "controller": True,
        "blockOwnerDeletion": True,
    }


def event_body(
    involved: Mapping[str, Any], type_: str, reason: str, message: str, component: str, when: Any = None
) -> dict[str, Any]:
    """A core/v1 Event about ``involved`` (apiVersion, kind, name, namespace, uid): the one Event shape."""
    moment = when if when is not None else utc_now()
    namespace = str(involved.get("namespace") or "default")
    return {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"name": f"{involved['name']}.{uuid.uuid4().hex[:16]}", "namespace": namespace},
        "involvedObject": {
            "apiVersion": involved.get("apiVersion"),
            "kind": involved.get("kind"),
            "name": involved.get("name"),
            "namespace": namespace,
            "uid": involved.get("uid"),
        },
        "type": type_,
        "reason": reason,
        "message": message[:EVENT_MESSAGE_LIMIT],
        "firstTimestamp": stamp(moment),
        "lastTimestamp": stamp(moment),
        "eventTime": stamp_us(moment),
        "count": 1,
        "source": {"component": component},
        "reportingComponent": component,
        "reportingInstance": component,
        "action": reason,
    }


# --------------------------------------------------------------------------- the calls


class BlockingKube:
    """Kubernetes calls that block the calling thread: for the CLI, the plugin, and :class:`Kube`."""

    def __init__(self, cluster: Cluster, timeout: float = DEFAULT_TIMEOUT, connections: int = 4) -> None:
        configuration = copy.copy(cluster.configuration)
        configuration.connection_pool_maxsize = max(1, connections)
        self.cluster = cluster
        self._api = client.ApiClient(configuration)
        self._timeout = timeout

    def close(self) -> None:
        self._api.close()  # type: ignore[no-untyped-call]

    def __enter__(self) -> BlockingKube:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        content_type: str = "application/json",
        query: list[tuple[str, str]] | None = None,
    ) -> Any:
        """One HTTP call to the API server; the decoded JSON answer (ApiException when not 2xx)."""
        headers = {"Accept": "application/json", "Content-Type": content_type}
        serialized = self._api.param_serialize(
            method=method,
            resource_path=path,
            query_params=query or [],
            header_params=headers,
            body=body,
            auth_settings=["BearerToken"],
        )
        method_, url, headers_, body_, post = serialized
        response = self._api.call_api(method_, url, headers_, body_, post, _request_timeout=self._timeout)
        data = response.read()  # type: ignore[no-untyped-call]
        if not 200 <= response.status < 300:
            error = ApiException(status=response.status, reason=response.reason)
            error.body = data.decode(errors="replace") if isinstance(data, bytes) else data
            raise error
        return json.loads(data) if data else None

    def get(
        self, resource: Resource, namespace: str | None, name: str, subresource: str | None = None
    ) -> dict[str, Any] | None:
        """The object, or None when it does not exist."""
        try:
            found = self.request("GET", resource.path(namespace, name, subresource))
        except ApiException as error:
            if error.status == 404:
                return None
            raise
        return found if isinstance(found, dict) else None

    def pages(
        self,
        resource: Resource,
        namespace: str | None = None,
        labels: Mapping[str, str] | None = None,
        fields: Mapping[str, str] | None = None,
        page_size: int = PAGE_SIZE,
    ) -> Iterator[Objects]:
        """The objects a selector matches, one page (``limit``/``continue``) at a time.

        ``namespace`` None lists every namespace. Labels are also filtered here, for APIs that ignore
        the selector (the in-memory emulator).
        """
        query: list[tuple[str, str]] = [("limit", str(page_size))]
        if labels:
            query.append(("labelSelector", ",".join(f"{k}={v}" for k, v in labels.items())))
        if fields:
            query.append(("fieldSelector", ",".join(f"{k}={v}" for k, v in fields.items())))
        token: str | None = None
        while True:
            found = self.request(
                "GET", resource.path(namespace), query=query + ([("continue", token)] if token else [])
            )
            items = [i for i in (found or {}).get("items") or [] if _labelled(i, labels)]
            yield items
            token = ((found or {}).get("metadata") or {}).get("continue") or None
            if not token:
                return

    def list(
        self,
        resource: Resource,
        namespace: str | None = None,
        labels: Mapping[str, str] | None = None,
        fields: Mapping[str, str] | None = None,
    ) -> Objects:
        """Every object a selector matches (all pages)."""
        return [item for page in self.pages(resource, namespace, labels, fields) for item in page]

    def create(self, resource: Resource, namespace: str | None, body: Mapping[str, Any]) -> dict[str, Any]:
        return dict(self.request("POST", resource.path(namespace), dict(body)) or {})

    def patch(
        self,
        resource: Resource,
        namespace: str | None,
        name: str,
        patch: Any,
        subresource: str | None = None,
        content_type: str = MERGE_PATCH,
    ) -> dict[str, Any]:
        """A merge patch (a JSON patch with ``content_type=JSON_PATCH``); the object as patched."""
        path = resource.path(namespace, name, subresource)
        return dict(self.request("PATCH", path, patch, content_type) or {})

    def replace(
        self, resource: Resource, namespace: str | None, name: str, body: Mapping[str, Any]
    ) -> dict[str, Any]:
        return dict(self.request("PUT", resource.path(namespace, name), dict(body)) or {})

    def delete(self, resource: Resource, namespace: str | None, name: str) -> bool:
        """Delete; False when it was already gone."""
        try:
            self.request("DELETE", resource.path(namespace, name))
        except ApiException as error:
            if error.status == 404:
                return False
            raise
        return True

    def secret_value(self, namespace: str, name: str, key: str) -> str:
        """The decoded value of one Secret key; LookupError naming the Secret and key when missing."""
        secret = self.get(SECRETS, namespace, name)
        if secret is None:
            raise LookupError(f"Secret {namespace}/{name} not found")
        data = secret.get("data") or {}
        if key not in data:
            raise LookupError(f"Secret {namespace}/{name} has no key {key!r}")
        return base64.b64decode(data[key]).decode()

    def post_event(
        self, involved: Mapping[str, Any], type_: str, reason: str, message: str, component: str = "fortress"
    ) -> None:
        """Post an Event about ``involved`` (apiVersion, kind, name, namespace, uid)."""
        body = event_body(involved, type_, reason, message, component)
        self.create(EVENTS, body["metadata"]["namespace"], body)


def _labelled(item: Mapping[str, Any], labels: Mapping[str, str] | None) -> bool:
    if not labels:
        return True
    found = meta(item).get("labels") or {}
    return all(found.get(k) == v for k, v in labels.items())


class Kube:
    """The operator's Kubernetes client: :class:`BlockingKube`'s calls, each on a worker thread."""

    def __init__(
        self, cluster: Cluster, workers: int = DEFAULT_WORKERS, timeout: float = DEFAULT_TIMEOUT
    ) -> None:
        self.cluster = cluster
        self.blocking = BlockingKube(cluster, timeout=timeout, connections=workers)
        self._pool = ThreadPoolExecutor(max(1, workers), thread_name_prefix="kube")

    async def _run(self, call: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, functools.partial(call, *args, **kwargs))

    async def close(self) -> None:
        """Stop the worker threads and close the connections."""
        await asyncio.to_thread(self._shutdown)

    def _shutdown(self) -> None:
        self._pool.shutdown(wait=True)
        self.blocking.close()

    async def get(
        self, resource: Resource, namespace: str | None, name: str, subresource: str | None = None
    ) -> dict[str, Any] | None:
        """The object, or None when it does not exist."""
        return await self._run(self.blocking.get, resource, namespace, name, subresource)

    async def list(
        self,
        resource: Resource,
        namespace: str | None = None,
        labels: Mapping[str, str] | None = None,
        fields: Mapping[str, str] | None = None,
    ) -> Objects:
        """Every object a selector matches (all pages)."""
        return await self._run(self.blocking.list, resource, namespace, labels, fields)

    async def pages(
        self,
        resource: Resource,
        namespace: str | None = None,
        labels: Mapping[str, str] | None = None,
        page_size: int = PAGE_SIZE,
    ) -> AsyncIterator[Objects]:
        """An async iterator over the pages of a listing (memory stays at one page)."""
        pages = self.blocking.pages(resource, namespace, labels, page_size=page_size)
        while True:
            page = await self._run(next, pages, None)
            if page is None:
                return
            yield page

    async def create(
        self, resource: Resource, namespace: str | None, body: Mapping[str, Any]
    ) -> dict[str, Any]:
        return await self._run(self.blocking.create, resource, namespace, body)

    async def patch(
        self,
        resource: Resource,
        namespace: str | None,
        name: str,
        patch: Any,
        subresource: str | None = None,
        content_type: str = MERGE_PATCH,
    ) -> dict[str, Any]:
        """A merge patch (a JSON patch with ``content_type=JSON_PATCH``); the object as patched."""
        return await self._run(
            self.blocking.patch, resource, namespace, name, patch, subresource, content_type
        )

    async def replace(
        self, resource: Resource, namespace: str | None, name: str, body: Mapping[str, Any]
    ) -> dict[str, Any]:
        return await self._run(self.blocking.replace, resource, namespace, name, body)

    async def delete(self, resource: Resource, namespace: str | None, name: str) -> bool:
        """Delete; False when it was already gone."""
        return await self._run(self.blocking.delete, resource, namespace, name)

    async def secret_value(self, namespace: str, name: str, key: str) -> str:
        """The decoded value of one Secret key; LookupError naming the Secret and key when missing."""
        return await self._run(self.blocking.secret_value, namespace, name, key)

    async def post_event(
        self, involved: Mapping[str, Any], type_: str, reason: str, message: str, component: str = "fortress"
    ) -> None:
        """Post an Event about ``involved`` (apiVersion, kind, name, namespace, uid)."""
        await self._run(self.blocking.post_event, involved, type_, reason, message, component)
