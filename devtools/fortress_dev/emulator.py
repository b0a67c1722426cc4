"""The in-memory Kubernetes API (kmock's KubernetesEmulator) served from a thread of its own.

It is the last-resort Kubernetes API for the tests. The subclass adds the metadata a real API
server maintains and Kopf relies on: uid, creationTimestamp, resourceVersion and a generation that
moves only when the spec changes (never on the status subresource). A JSON patch whose ``test``
operation fails is answered 422, as a real API server does (kmock answers 500).
"""

from __future__ import annotations

import asyncio
import copy
import datetime as dt
import itertools
import threading
import uuid
from pathlib import Path
from typing import Any

import jsonpatch
import kmock
import yaml
from aiohttp import web
from kmock._internal import parsing

from fortress.api import KINDS

BUILTIN_RESOURCES: dict[str, dict[str, Any]] = {
    "v1/namespaces": {"kind": "Namespace", "namespaced": False},
    "v1/events": {"kind": "Event", "namespaced": True},
    "v1/secrets": {"kind": "Secret", "namespaced": True},
    "v1/configmaps": {"kind": "ConfigMap", "namespaced": True},
    "v1/services": {"kind": "Service", "namespaced": True},
    "v1/endpoints": {"kind": "Endpoints", "namespaced": True},
    "v1/pods": {"kind": "Pod", "namespaced": True},
    "apps/v1/deployments": {"kind": "Deployment", "namespaced": True, "subresources": {"status", "scale"}},
    "networking.k8s.io/v1/ingresses": {"kind": "Ingress", "namespaced": True},
    "gateway.networking.k8s.io/v1/httproutes": {"kind": "HTTPRoute", "namespaced": True},
    "coordination.k8s.io/v1/leases": {"kind": "Lease", "namespaced": True},
    "wgpolicyk8s.io/v1alpha2/policyreports": {"kind": "PolicyReport", "namespaced": True},
    "apiextensions.k8s.io/v1/customresourcedefinitions": {
        "kind": "CustomResourceDefinition",
        "namespaced": False,
    },
}


_parse_path = parsing.parse_path


def _parse_path_with_namespaces(path: str) -> parsing.ParsedPath:
    """kmock 0.8 reads ``/api/v1/namespaces[/NAME]`` as a namespace prefix; read it as the resource."""
    parts = path.strip("/").split("/")
    if parts[:3] == ["api", "v1", "namespaces"] and (
        len(parts) <= 4 or (len(parts) == 5 and parts[4] in ("status", "finalize"))
    ):
        name = parts[3] if len(parts) >= 4 else None
        subresource = parts[4] if len(parts) == 5 else None
        return parsing.ParsedPath("", "v1", "namespaces", None, name, subresource)
    return _parse_path(path)


parsing.parse_path = _parse_path_with_namespaces


class FortressEmulator(kmock.KubernetesEmulator):
    """KubernetesEmulator that keeps uid, creationTimestamp, resourceVersion and generation."""

    def __attrs_post_init__(self) -> None:
        super().__attrs_post_init__()
        self._versions = itertools.count(1)

    async def _handle(self, request: kmock.Request) -> Any:
        data = request.data
        if request.resource is not None and isinstance(data, dict):
            if request.action == kmock.action.CREATE:
                meta = data.setdefault("metadata", {})
                meta.setdefault("uid", str(uuid.uuid4()))
                meta.setdefault("creationTimestamp", dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"))
                meta["generation"] = 1
                meta["resourceVersion"] = str(next(self._versions))
                if request.namespace and "namespace" not in meta:
                    meta["namespace"] = request.namespace
            elif request.action == kmock.action.UPDATE and request.name is not None:
                meta = data.setdefault("metadata", {})
                key = (request.resource, request.namespace, request.name)
                stored = self._objects[key] if key in self._objects else None  # noqa: SIM401 (no .get)
                if _stale(meta.get("resourceVersion"), stored):
                    return _conflict(request)  # a precondition on resourceVersion, as the API server
                meta["resourceVersion"] = str(next(self._versions))
                if not request.subresource and "spec" in data and key in self._objects:
                    stored = self._objects[key]
                    if not stored.deleted:
                        old = stored.raw
                        new_spec = _merged(old.get("spec"), data["spec"])
                        if new_spec != old.get("spec"):
                            meta["generation"] = int(old.get("metadata", {}).get("generation", 1)) + 1
        try:
            response = await super()._handle(request)
        except (jsonpatch.JsonPatchTestFailed, jsonpatch.JsonPatchConflict) as error:
            return _unprocessable(request, error)
        if request.action == kmock.action.CREATE and response.status == 200 and not response.prepared:
            response.set_status(201)  # as a real API server answers a create
        return response


def _stale(wanted: Any, stored: Any) -> bool:
    """A write that names a resourceVersion the stored object no longer has."""
    if not wanted or stored is None or stored.deleted:
        return False
    return str((stored.raw.get("metadata") or {}).get("resourceVersion")) != str(wanted)


def _conflict(request: kmock.Request) -> web.Response:
    """409 Conflict, as a real API server answers a write with a stale resourceVersion."""
    status = {
        "apiVersion": "v1",
        "kind": "Status",
        "metadata": {},
        "status": "Failure",
        "message": f"Operation cannot be fulfilled on {request.name}: the object has been modified; "
        "please apply your changes to the latest version and try again",
        "reason": "Conflict",
        "details": {"name": request.name or ""},
        "code": 409,
    }
    return web.json_response(status, status=409)


def _unprocessable(request: kmock.Request, error: Exception) -> web.Response:
    """A JSON patch whose ``test`` fails is 422 Invalid on a real API server (Kopf retries on 422)."""
    status = {
        "apiVersion": "v1",
        "kind": "Status",
        "metadata": {},
        "status": "Failure",
        "message": f"the server rejected our request due to an error in our request: {error}",
        "reason": "Invalid",
        "details": {"name": request.name or ""},
        "code": 422,
    }
    return web.json_response(status, status=422)


def _merged(base: Any, patch: Any) -> Any:
    """JSON merge patch (RFC 7386), to predict the spec an update leads to."""
    if not isinstance(patch, dict) or not isinstance(base, dict):
        return copy.deepcopy(patch)
    result = copy.deepcopy(base)
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = _merged(result.get(key), value)
    return result


def declare_resources(emulator: kmock.KubernetesEmulator, crd_dir: Path) -> None:
    """Declare the built-in resources the operator touches and every CRD (stored as objects too)."""
    for key, builtin in BUILTIN_RESOURCES.items():
        emulator.resources[key] = kmock.ResourceInfo(**builtin)
    for info in KINDS:
        emulator.resources[f"{info.group}/{info.version}/{info.plural}"] = kmock.ResourceInfo(
            kind=info.kind,
            singular=info.singular,
            namespaced=info.namespaced,
            shortnames=set(info.short_names),
            categories={"fortress"},
            subresources={"status"},
            verbs={"get", "list", "watch", "create", "update", "patch", "delete"},
        )
    crds = kmock.resource("apiextensions.k8s.io", "v1", "customresourcedefinitions")
    for path in sorted(crd_dir.glob("*.yaml")):
        crd = yaml.safe_load(path.read_text())
        crd.setdefault("status", {})["conditions"] = [{"type": "Established", "status": "True"}]
        emulator.objects[crds, None, crd["metadata"]["name"]] = crd


class EmulatorThread:
    """Runs a FortressEmulator on a loopback port in a background thread with its own event loop."""

    def __init__(self, crd_dir: Path) -> None:
        self._crd_dir = crd_dir
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread = threading.Thread(target=self._main, name="kube-emulator", daemon=True)
        self._error: BaseException | None = None
        self.url = ""

    def start(self, timeout: float = 30.0) -> str:
        self._thread.start()
        if not self._ready.wait(timeout):
            raise RuntimeError("the Kubernetes emulator did not start")
        if self._error is not None:
            raise RuntimeError("the Kubernetes emulator failed to start") from self._error
        return self.url

    def stop(self) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(timeout=30)

    def _main(self) -> None:
        try:
            asyncio.run(self._serve())
        except BaseException as error:  # reported to start()
            self._error = error
            self._ready.set()

    async def _serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        emulator = FortressEmulator()
        declare_resources(emulator, self._crd_dir)
        async with emulator, kmock.Server(emulator) as server:
            self.url = str(server.url).rstrip("/")
            self._ready.set()
            await self._stop.wait()
