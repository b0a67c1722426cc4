"""Pod specs inside every workload kind, and their containers with JSON-pointer paths."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from fortress.compliance.model import Obj

WORKLOAD_KINDS = (
    "Pod",
    "Deployment",
    "StatefulSet",
    "DaemonSet",
    "ReplicaSet",
    "Job",
    "CronJob",
    "CanaryRollout",
)
CONTAINER_LISTS = ("initContainers", "containers", "ephemeralContainers")

_SPEC_PATH: dict[str, tuple[str, ...]] = {
    "Pod": ("spec",),
    "Deployment": ("spec", "template", "spec"),
    "StatefulSet": ("spec", "template", "spec"),
    "DaemonSet": ("spec", "template", "spec"),
    "ReplicaSet": ("spec", "template", "spec"),
    "Job": ("spec", "template", "spec"),
    "CronJob": ("spec", "jobTemplate", "spec", "template", "spec"),
    "CanaryRollout": ("spec", "template", "spec"),
}


@dataclass(frozen=True, slots=True)
class ContainerRef:
    """A container, which list it is in, and its path in the object."""

    container: dict[str, Any]
    list_name: str
    path: str

    @property
    def name(self) -> str:
        return str(self.container.get("name", "?"))

    @property
    def ephemeral(self) -> bool:
        return self.list_name == "ephemeralContainers"

    @property
    def init(self) -> bool:
        return self.list_name == "initContainers"


@dataclass(frozen=True, slots=True)
class PodView:
    """The pod spec of a workload object, where it is, and its containers."""

    spec: dict[str, Any]
    path: str
    metadata: dict[str, Any]
    containers: tuple[ContainerRef, ...]

    def all(self) -> Iterator[ContainerRef]:
        return iter(self.containers)

    def regular(self) -> Iterator[ContainerRef]:
        """App containers (not init or ephemeral), the ones probes and limits apply to."""
        return (c for c in self.containers if c.list_name == "containers")

    def security(self) -> dict[str, Any]:
        value = self.spec.get("securityContext")
        return value if isinstance(value, dict) else {}


def _dig(obj: Any, keys: tuple[str, ...]) -> Any:
    for key in keys:
        if not isinstance(obj, dict):
            return None
        obj = obj.get(key)
    return obj


def pod_view(obj: Obj) -> PodView | None:
    """The pod spec of a Pod or a pod template owner, or None (a CanaryRollout using workloadRef)."""
    keys = _SPEC_PATH.get(str(obj.get("kind", "")))
    if keys is None:
        return None
    spec = _dig(obj, keys)
    if not isinstance(spec, dict):
        return None
    meta = obj.get("metadata") if keys == ("spec",) else _dig(obj, (*keys[:-1], "metadata"))
    base = "/" + "/".join(keys)
    containers: list[ContainerRef] = []
    for list_name in CONTAINER_LISTS:
        items = spec.get(list_name)
        if isinstance(items, list):
            containers.extend(
                ContainerRef(c, list_name, f"{base}/{list_name}/{i}")
                for i, c in enumerate(items)
                if isinstance(c, dict)
            )
    return PodView(spec, base, meta if isinstance(meta, dict) else {}, tuple(containers))


def csc(container: ContainerRef) -> dict[str, Any]:
    """The container's securityContext (empty when unset)."""
    value = container.container.get("securityContext")
    return value if isinstance(value, dict) else {}


def effective(view: PodView, container: ContainerRef, key: str) -> Any:
    """A security setting as the kubelet sees it: the container's, else the pod's."""
    value = csc(container).get(key)
    return view.security().get(key) if value is None else value


def volumes(view: PodView) -> list[tuple[int, dict[str, Any]]]:
    items = view.spec.get("volumes")
    return [(i, v) for i, v in enumerate(items) if isinstance(v, dict)] if isinstance(items, list) else []
