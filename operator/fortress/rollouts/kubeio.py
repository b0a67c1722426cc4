"""Plain-JSON Kubernetes reads and writes for the rollout adapters, run off the event loop.

Objects stay dicts end to end (no typed models), so an Ingress or HTTPRoute round-trips with every
field it had. Patches are JSON merge patches (RFC 7386): ``None`` removes a key, lists are replaced.
"""

from __future__ import annotations

import asyncio
import functools
import json
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from kubernetes import client
from kubernetes.client.exceptions import ApiException

MERGE_PATCH = "application/merge-patch+json"


@dataclass(frozen=True)
class Resource:
    """An API resource: group ("" for core), version, plural."""

    group: str
    version: str
    plural: str

    def path(self, namespace: str, name: str | None = None, subresource: str | None = None) -> str:
        base = f"/api/{self.version}" if not self.group else f"/apis/{self.group}/{self.version}"
        path = f"{base}/namespaces/{quote(namespace)}/{self.plural}"
        if name is not None:
            path += f"/{quote(name)}"
        if subresource is not None:
            path += f"/{subresource}"
        return path


DEPLOYMENTS = Resource("apps", "v1", "deployments")
SERVICES = Resource("", "v1", "services")
CONFIGMAPS = Resource("", "v1", "configmaps")
EVENTS = Resource("", "v1", "events")
INGRESSES = Resource("networking.k8s.io", "v1", "ingresses")
HTTPROUTES = Resource("gateway.networking.k8s.io", "v1", "httproutes")


class KubeIO:
    """JSON in, JSON out; every call runs in a worker thread (its own pool when ``workers`` is given)."""

    def __init__(self, api: client.ApiClient, timeout: float = 15.0, workers: int | None = None) -> None:
        self._api = api
        self._timeout = timeout
        self._pool = ThreadPoolExecutor(workers, thread_name_prefix="kubeio") if workers else None

    async def _run(self, *args: Any, **kwargs: Any) -> Any:
        if self._pool is None:
            return await asyncio.to_thread(self._call, *args, **kwargs)
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, functools.partial(self._call, *args, **kwargs))

    def close(self) -> None:
        """Stop the worker threads (blocking briefly: call off the event loop)."""
        if self._pool is not None:
            self._pool.shutdown(wait=True)

    def _call(
        self,
        method: str,
        path: str,
        body: Any = None,
        content_type: str = "application/json",
        query: list[tuple[str, str]] | None = None,
    ) -> Any:
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

    async def get(self, resource: Resource, namespace: str, name: str) -> dict[str, Any] | None:
        """The object, or None when it does not exist."""
        try:
            found = await self._run("GET", resource.path(namespace, name))
        except ApiException as error:
            if error.status == 404:
                return None
            raise
        return found if isinstance(found, dict) else None

    async def list(
        self, resource: Resource, namespace: str, labels: Mapping[str, str] | None = None
    ) -> list[dict[str, Any]]:
        """Objects of a namespace carrying every label given (also filtered here, for the emulator)."""
        query = [("labelSelector", ",".join(f"{k}={v}" for k, v in labels.items()))] if labels else []
        found = await self._run("GET", resource.path(namespace), query=query)
        items: list[dict[str, Any]] = list((found or {}).get("items") or [])
        if labels:
            items = [
                i
                for i in items
                if all(((i.get("metadata") or {}).get("labels") or {}).get(k) == v for k, v in labels.items())
            ]
        return items

    async def create(self, resource: Resource, namespace: str, body: Mapping[str, Any]) -> dict[str, Any]:
        created = await self._run("POST", resource.path(namespace), dict(body))
        return dict(created or {})

    async def patch(
        self,
        resource: Resource,
        namespace: str,
        name: str,
        patch: Mapping[str, Any],
        subresource: str | None = None,
    ) -> dict[str, Any]:
        path = resource.path(namespace, name, subresource)
        patched = await self._run("PATCH", path, dict(patch), MERGE_PATCH)
        return dict(patched or {})

    async def replace(
        self, resource: Resource, namespace: str, name: str, body: Mapping[str, Any]
    ) -> dict[str, Any]:
        replaced = await self._run("PUT", resource.path(namespace, name), dict(body))
        return dict(replaced or {})

    async def delete(self, resource: Resource, namespace: str, name: str) -> bool:
        """Delete; False when it was already gone."""
        try:
            await self._run("DELETE", resource.path(namespace, name))
        except ApiException as error:
            if error.status == 404:
                return False
            raise
        return True
