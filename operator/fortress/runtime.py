"""The running operator: a Kopf registry with every kind's handlers, and the loop that runs it.

Handlers only glue: validate the spec (pure), call the kind's reconciler, write the status patch
and post Events. The registry is built per operator instance (no global state), so tests can run
one in-process against any Kubernetes API.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import kopf

from fortress import discovery, metrics
from fortress.adapters.kube import Cluster, Kube
from fortress.adapters.postgres import PoolRegistry
from fortress.api import KINDS, KindInfo
from fortress.api.common import SecretKeyRef
from fortress.core.conditions import READY, is_true
from fortress.core.outcome import Outcome, invalid_outcome, status_patch
from fortress.core.reconciler import Reconciler, ReconcileRequest, accept
from fortress.core.validation import validate_spec

log = logging.getLogger("fortress")


ANNOTATION_PREFIX = "fortress.io"


@dataclass
class Services:
    """Adapters shared by every handler of one operator instance."""

    cluster: Cluster
    kube: Kube
    pools: PoolRegistry = field(default_factory=PoolRegistry)
    metrics_server: metrics.MetricsServer | None = None

    async def secret_dsn(self, namespace: str, ref: SecretKeyRef) -> str:
        """The DSN a ``secretKeyRef`` points to (LookupError naming the Secret when absent)."""
        return await self.kube.secret_value(namespace, ref.name, ref.key)


@dataclass
class OperatorConfig:
    """How one operator instance runs."""

    cluster: Cluster
    namespaces: tuple[str, ...] = ()
    liveness_port: int | None = None
    metrics_port: int | None = None
    reconcilers: Mapping[str, Reconciler] = field(default_factory=dict)


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


async def reconcile_once(
    info: KindInfo,
    reconciler: Reconciler,
    body: Mapping[str, Any],
    services: Services | None,
    logger: logging.Logger | logging.LoggerAdapter[Any],
) -> tuple[Outcome, dict[str, Any]]:
    """Validate and reconcile one object; return the outcome and the status patch it implies."""
    meta = body.get("metadata", {})
    status = body.get("status") or {}
    generation = meta.get("generation")
    now = _now()
    validated = validate_spec(info, body.get("spec"))
    if not validated.valid or validated.spec is None:
        outcome = invalid_outcome(validated)
    else:
        request = ReconcileRequest(
            info=info,
            spec=validated.spec,
            name=meta.get("name", ""),
            namespace=meta.get("namespace", ""),
            generation=generation,
            body=body,
            status=status,
            now=now,
            logger=logger,
            services=services,
        )
        outcome = await reconciler(request)
    return outcome, status_patch(outcome, status, generation, now)


def build_registry(config: OperatorConfig) -> kopf.OperatorRegistry:
    """A Kopf registry with login, settings, probes and every kind's handlers."""
    registry = kopf.OperatorRegistry()
    services: dict[str, Services] = {}

    @kopf.on.login(registry=registry)
    def login(**_: Any) -> kopf.ConnectionInfo:
        return config.cluster.connection_info()

    @kopf.on.startup(registry=registry)
    async def startup(settings: kopf.OperatorSettings, **_: Any) -> None:
        settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=ANNOTATION_PREFIX)
        settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
            prefix=ANNOTATION_PREFIX, key="last-handled-configuration"
        )
        settings.posting.level = logging.WARNING
        settings.watching.server_timeout = 300
        settings.networking.error_backoffs = [1, 2, 5, 10]
        server = await asyncio.to_thread(metrics.serve, config.metrics_port) if config.metrics_port else None
        services["default"] = Services(
            cluster=config.cluster, kube=Kube(config.cluster), metrics_server=server
        )

    @kopf.on.cleanup(registry=registry)
    async def cleanup(**_: Any) -> None:
        if "default" in services:
            shared = services.pop("default")
            await shared.kube.close()
            await shared.pools.close()
            if shared.metrics_server is not None:
                await asyncio.to_thread(shared.metrics_server.stop)

    @kopf.on.probe(id="kinds", registry=registry)
    def probe(**_: Any) -> int:
        return len(KINDS)

    def shared() -> Services:
        if "default" not in services:  # before start-up or after clean-up: retry, never crash
            raise kopf.TemporaryError("operator services are not running", delay=1)
        return services["default"]

    reconcilers: dict[str, Reconciler] = {}
    # Each subsystem's handlers module exposes KIND and reconcile (or RECONCILERS), and may expose
    # register(registry, services) to add daemons or timers (see fortress.discovery).
    for module in discovery.modules("handlers"):
        if hasattr(module, "KIND"):
            reconcilers[module.KIND] = module.reconcile
        reconcilers.update(getattr(module, "RECONCILERS", {}))  # a module serving several kinds
        if hasattr(module, "register"):
            module.register(registry, shared)
    reconcilers.update(config.reconcilers)
    for info in KINDS:
        _register_kind(registry, info, reconcilers.get(info.kind, accept), services)
    return registry


def _register_kind(
    registry: kopf.OperatorRegistry, info: KindInfo, reconciler: Reconciler, services: dict[str, Services]
) -> None:
    async def handle(
        *, body: kopf.Body, patch: kopf.Patch, logger: logging.Logger | logging.LoggerAdapter[Any], **_: Any
    ) -> None:
        started = time.perf_counter()
        try:
            outcome, status = await reconcile_once(info, reconciler, body, services.get("default"), logger)
        except Exception:
            metrics.RECONCILES.labels(info.kind, "error").inc()
            raise
        finally:
            metrics.RECONCILE_SECONDS.labels(info.kind).observe(time.perf_counter() - started)
        result = "ok" if outcome.ready else ("invalid" if outcome.phase == "Invalid" else "notready")
        metrics.RECONCILES.labels(info.kind, result).inc()
        if outcome.phase == "Invalid":
            metrics.INVALID_SPECS.labels(info.kind).inc()
        namespace, name = body.metadata.namespace or "", body.metadata.name or ""
        metrics.RESOURCE_READY.labels(info.kind, namespace, name).set(
            1 if is_true(status.get("conditions"), READY) else 0
        )
        for key, value in status.items():
            patch.status[key] = value
        for note in outcome.events:
            (kopf.warn if note.type == "Warning" else kopf.info)(
                body, reason=note.reason, message=note.message
            )
        if outcome.requeue_after is not None and outcome.ready is False and outcome.phase != "Invalid":
            raise kopf.TemporaryError(outcome.message, delay=outcome.requeue_after)

    kwargs: dict[str, Any] = {"registry": registry, "group": info.group, "version": info.version}
    kopf.on.create(plural=info.plural, id="reconcile", **kwargs)(handle)
    kopf.on.update(plural=info.plural, id="reconcile", field="spec", **kwargs)(handle)
    kopf.on.resume(plural=info.plural, id="reconcile", **kwargs)(handle)

    @kopf.on.delete(plural=info.plural, id="forget", optional=True, **kwargs)
    def forget(body: kopf.Body, **_: Any) -> None:
        metrics.RESOURCE_READY.remove(info.kind, body.metadata.namespace or "", body.metadata.name or "")


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
