"""Every Prometheus collector Fortress exports; the only module that imports prometheus_client."""

from __future__ import annotations

import contextlib

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

REGISTRY = CollectorRegistry(auto_describe=True)

RECONCILES = Counter(
    "fortress_operator_reconciles_total",
    "Reconciles by kind and result (ok, invalid, error).",
    ["kind", "result"],
    registry=REGISTRY,
)
RECONCILE_SECONDS = Histogram(
    "fortress_operator_reconcile_duration_seconds",
    "Time spent in one reconcile, by kind.",
    ["kind"],
    registry=REGISTRY,
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
RESOURCE_READY = Gauge(
    "fortress_operator_resource_ready",
    "1 when the resource's Ready condition is True, else 0.",
    ["kind", "namespace", "name"],
    registry=REGISTRY,
)
INVALID_SPECS = Counter(
    "fortress_operator_invalid_specs_total",
    "Specs rejected by the operator's cross-field checks, by kind.",
    ["kind"],
    registry=REGISTRY,
)


class MetricsServer:
    """/metrics served from a background thread; ``stop()`` closes the port."""

    def __init__(self, port: int, address: str = "0.0.0.0") -> None:
        self._server, self._thread = start_http_server(port, addr=address, registry=REGISTRY)

    @property
    def port(self) -> int:
        return int(self._server.server_port)

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


def serve(port: int, address: str = "0.0.0.0") -> MetricsServer:
    """Start serving /metrics (binds a socket: call off the event loop)."""
    return MetricsServer(port, address)


def exported_names() -> set[str]:
    """Every metric family name as it appears in the exposition (counters with ``_total``)."""
    names: set[str] = set()
    for family in REGISTRY.collect():
        for sample in family.samples:
            names.add(sample.name)
        names.add(family.name)
    return names


HTTP_REQUESTS = Counter(
    "fortress_api_requests_total",
    "HTTP API requests by route template, method and status.",
    ["route", "method", "status"],
    registry=REGISTRY,
)
HTTP_SECONDS = Histogram(
    "fortress_api_request_duration_seconds",
    "HTTP API latency by route template and method.",
    ["route", "method"],
    registry=REGISTRY,
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
)


def _load_subsystem_collectors() -> None:
    """Import every module of this package so all collectors are registered (and listed) at once."""
    import importlib
    import pkgutil

    for module in pkgutil.iter_modules(__path__):
        importlib.import_module(f"{__name__}.{module.name}")


_load_subsystem_collectors()

STEP_ERRORS = Counter(
    "fortress_operator_step_errors_total",
    "Steps of a per-object loop that raised, by kind and error type (reported as Ready=Unknown).",
    ["kind", "error"],
    registry=REGISTRY,
)


CHECK_ERRORS = Counter(
    "fortress_operator_check_errors_total",
    "Failures of a reconciler's checks and background tasks (a DR check, 2PC recovery, a rebalance, "
    "the ledger projector, a generation), by kind, check and error type (reported as CheckFailed).",
    ["kind", "check", "error"],
    registry=REGISTRY,
)
LAST_STEP = Gauge(
    "fortress_operator_last_step_timestamp_seconds",
    "Unix time the object's loop last finished a step (whatever its result); a loop steps at least "
    "every 300 s, so an older value means the loop is stalled.",
    ["kind", "namespace", "name"],
    registry=REGISTRY,
)


def forget_resource(kind: str, namespace: str, name: str) -> None:
    """Drop a deleted object's per-object series."""
    for gauge in (RESOURCE_READY, LAST_STEP):
        with contextlib.suppress(KeyError):
            gauge.remove(kind, namespace, name)
