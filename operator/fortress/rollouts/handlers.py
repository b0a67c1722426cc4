"""Kopf glue for CanaryRollout: a step on every spec change, a daemon per rollout, Deployment wake-ups.

The daemon runs a step whenever the plan asks (a pause ends, an analysis is due, a scale-down is due)
or a Deployment of the rollout changes (its pods became available), and at least every 30 s. All the
state is in status, so an operator restarted mid-rollout resumes where it was.
"""

from __future__ import annotations

import asyncio
import copy
import logging
import weakref
from collections.abc import Callable
from typing import Any

import kopf
from kubernetes import client

from fortress.api.canaryrollout import INFO
from fortress.core.outcome import Outcome
from fortress.core.reconciler import ReconcileRequest
from fortress.rollouts.driver import Driver
from fortress.rollouts.model import LABEL_COLOUR, LABEL_MANAGED_BY, LABEL_ROLLOUT, MANAGED_BY

KIND = "CanaryRollout"
log = logging.getLogger("fortress.rollouts")

_DRIVERS: weakref.WeakKeyDictionary[Any, Driver] = weakref.WeakKeyDictionary()
VERIFY_AFTER = 1.0  # seconds: a step after each handler step catches a status write that landed late
ERROR_BACKOFF = 2.0


WORKERS = 16  # threads (and API connections) for the rollouts' Kubernetes calls


def driver_for(services: Any) -> Driver:
    """The driver of one operator instance (keyed by its Kube adapter), with an API client of its own."""
    kube = services.kube
    found = _DRIVERS.get(kube)
    if found is None:
        configuration = copy.copy(services.cluster.configuration)
        configuration.connection_pool_maxsize = WORKERS
        api = client.ApiClient(configuration)
        found = Driver(
            api, pools=services.pools, secret_value=kube.secret_value, workers=WORKERS, owns_api=True
        )
        _DRIVERS[kube] = found
    return found


async def reconcile(request: ReconcileRequest) -> Outcome:
    """A spec change (or the operator starting): one step now."""
    driver = driver_for(request.services)
    result = await driver.step(request.namespace, request.name, request.body)
    if result is None:
        return Outcome(
            ready=False, reason="NotFound", message="the rollout is being deleted", phase="Deleting"
        )
    asyncio.get_running_loop().call_later(VERIFY_AFTER, driver.wake, request.namespace, request.name)
    return result.outcome


def register(registry: kopf.OperatorRegistry, services: Callable[[], Any]) -> None:
    """The per-rollout daemon, Deployment wake-ups, and the driver's clean-up."""
    used: set[Driver] = set()  # this operator's drivers, closed at clean-up

    @kopf.daemon(
        INFO.group,
        INFO.version,
        INFO.plural,
        id="rollout-driver",
        registry=registry,
        cancellation_timeout=10.0,
    )
    async def drive(
        *,
        name: str,
        namespace: str | None,
        body: kopf.Body,
        stopped: kopf.DaemonStopped,
        logger: logging.Logger | logging.LoggerAdapter[Any],
        **_: Any,
    ) -> None:
        namespace = namespace or ""
        driver = driver_for(services())
        used.add(driver)
        driver.entry(namespace, name)
        while not stopped:
            try:
                result = await driver.step(namespace, name, body)
                delay = result.delay if result is not None else 30.0
            except asyncio.CancelledError:
                raise
            except Exception as error:
                logger.warning("rollout step failed, retrying in %.0fs: %s", ERROR_BACKOFF, error)
                delay = ERROR_BACKOFF
            await driver.sleep(namespace, name, delay, stopped)

    @kopf.on.delete(
        INFO.group, INFO.version, INFO.plural, id="rollout-forget", registry=registry, optional=True
    )
    async def forget(*, name: str, namespace: str | None, **_: Any) -> None:
        driver_for(services()).forget(namespace or "", name)

    @kopf.on.event("apps", "v1", "deployments", labels={LABEL_MANAGED_BY: MANAGED_BY}, registry=registry)
    async def deployment_changed(*, body: kopf.Body, event: Any, **_: Any) -> None:
        labels = body.metadata.labels or {}
        rollout, colour = labels.get(LABEL_ROLLOUT), labels.get(LABEL_COLOUR)
        if rollout and colour:
            driver = driver_for(services())
            namespace = body.metadata.namespace or ""
            gone = isinstance(event, dict) and event.get("type") == "DELETED"
            driver.remember_deployment(namespace, rollout, colour, None if gone else dict(body))
            driver.wake(namespace, rollout)

    @kopf.on.cleanup(registry=registry)
    async def close(**_: Any) -> None:
        for driver in list(used):
            await driver.close()
        used.clear()
