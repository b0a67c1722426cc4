"""The running operator: a Kopf registry with one per-object loop per kind, and the loop that runs it.

Every kind gets the same two handlers: a daemon per object that runs its
:class:`~fortress.core.loop.ObjectLoop` (the only writer of its status), and a watch-event handler
that wakes the loop when the spec changes. A subsystem plugs in by convention (see
:mod:`fortress.discovery`): its ``handlers`` module maps kinds to reconciler factories
(``RECONCILERS``) and may add watches of other objects that wake loops (``register``). A kind no
subsystem serves yet gets a reconciler that reports so, never ``Ready=True``. The registry is built
per operator instance (no global state), so tests can run one in-process against any Kubernetes API.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import socket
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import kopf

from fortress import discovery, metrics
from fortress.adapters.kube import Cluster, Kube
from fortress.api import KINDS, KindInfo
from fortress.core.loop import Loops, NotImplementedReconciler, ObjectLoop, ObjectRef, ReconcilerFactory
from fortress.core.services import Services

log = logging.getLogger("fortress")

ANNOTATION_PREFIX = "fortress.io"
CANCELLATION_TIMEOUT = 10.0


@dataclass
class OperatorConfig:
    """How one operator instance runs."""

    cluster: Cluster
    namespaces: tuple[str, ...] = ()
    liveness_port: int | None = None
    metrics_port: int | None = None
    reconcilers: Mapping[str, ReconcilerFactory] = field(default_factory=dict)  # overrides, by kind
    identity: str = field(
        default_factory=lambda: f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}"
    )


ServicesGetter = Callable[[], Services]


def reconciler_factories(
    overrides: Mapping[str, ReconcilerFactory] | None = None,
) -> dict[str, ReconcilerFactory]:
    """Each kind's reconciler factory: the subsystems', then ``overrides``, else NotImplemented."""
    found: dict[str, ReconcilerFactory] = {info.kind: NotImplementedReconciler for info in KINDS}
    for module in discovery.modules("handlers"):
        found.update(getattr(module, "RECONCILERS", {}))
    found.update(overrides or {})
    return found


def kinds_not_built() -> set[str]:
    """The kinds no subsystem serves yet (their resources report NotImplemented)."""
    return {kind for kind, factory in reconciler_factories().items() if factory is NotImplementedReconciler}


def build_registry(config: OperatorConfig) -> kopf.OperatorRegistry:
    """A Kopf registry with login, settings, probes and every kind's loop."""
    registry = kopf.OperatorRegistry()
    holder: dict[str, Services] = {}
    server: list[metrics.MetricsServer] = []

    @kopf.on.login(registry=registry)
    def login(**_: Any) -> kopf.ConnectionInfo:
        return config.cluster.connection_info()

    @kopf.on.startup(registry=registry)
    async def startup(settings: kopf.OperatorSettings, **_: Any) -> None:
        settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=ANNOTATION_PREFIX)
        settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
            prefix=ANNOTATION_PREFIX, key="last-handled-configuration"
        )
        settings.posting.enabled = False  # Events are posted by the loops (adapters.kube), once
        settings.watching.server_timeout = 300
        settings.networking.error_backoffs = [1, 2, 5, 10]
        if config.metrics_port:
            server.append(await asyncio.to_thread(metrics.serve, config.metrics_port))
        holder["services"] = Services(
            cluster=config.cluster, kube=Kube(config.cluster), loops=Loops(), identity=config.identity
        )

    @kopf.on.cleanup(registry=registry)
    async def cleanup(**_: Any) -> None:
        shared = holder.pop("services", None)
        if shared is not None:
            await shared.pools.close()
            await shared.kube.close()
        for running in server:
            await asyncio.to_thread(running.stop)
        server.clear()

    @kopf.on.probe(id="kinds", registry=registry)
    def probe(**_: Any) -> int:
        return len(KINDS)

    def services() -> Services:
        if "services" not in holder:  # before start-up or after clean-up: retry, never crash
            raise kopf.TemporaryError("operator services are not running", delay=1)
        return holder["services"]

    factories = reconciler_factories(config.reconcilers)
    for module in discovery.modules("handlers"):
        if hasattr(module, "register"):
            module.register(registry, services)
    for info in KINDS:
        _register_kind(registry, info, factories[info.kind], services)
    return registry


def _register_kind(
    registry: kopf.OperatorRegistry, info: KindInfo, factory: ReconcilerFactory, services: ServicesGetter
) -> None:
    kwargs: dict[str, Any] = {"registry": registry, "group": info.group, "version": info.version}

    @kopf.daemon(plural=info.plural, id="loop", cancellation_timeout=CANCELLATION_TIMEOUT, **kwargs)
    async def run_loop(
        *,
        body: kopf.Body,
        name: str,
        namespace: str | None,
        stopped: kopf.DaemonStopped,
        logger: logging.Logger | logging.LoggerAdapter[Any],
        **_: Any,
    ) -> None:
        shared = services()
        ref = ObjectRef(info, namespace or "", name)
        loop = ObjectLoop(ref, factory(shared, ref), shared, logger)
        shared.loops.add(loop)
        try:
            await loop.run(body, stopped)
        finally:
            shared.loops.remove(loop)
            deleted = loop.gone or bool(
                stopped.reason and stopped.reason & kopf.DaemonStoppingReason.RESOURCE_DELETED
            )
            await asyncio.shield(loop.close(deleted))

    @kopf.on.event(plural=info.plural, id="wake", **kwargs)  # async: Kopf runs sync handlers in threads
    async def wake(*, body: kopf.Body, name: str, namespace: str | None, **_: Any) -> None:
        found = services().loops.get(info.kind, namespace or "", name)
        if found is not None:
            found.notice(body)


async def run(
    config: OperatorConfig,
    stop_flag: asyncio.Event | None = None,
    ready_flag: asyncio.Event | None = None,
) -> None:
    """Run the operator until ``stop_flag`` is set (or forever)."""
    registry = build_registry(config)
    liveness = f"http://0.0.0.0:{config.liveness_port}/healthz" if config.liveness_port else None
    await kopf.operator(
        registry=registry,
        standalone=True,
        clusterwide=not config.namespaces,
        namespaces=list(config.namespaces),
        liveness_endpoint=liveness,
        stop_flag=stop_flag,
        ready_flag=ready_flag,
    )
