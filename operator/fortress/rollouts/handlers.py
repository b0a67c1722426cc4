"""Kopf glue of the CanaryRollout kind: its per-object loop runs a :class:`RolloutReconciler`.

The rollouts' Deployments wake their rollout when they change (their pods became available, a
scale-down landed), and the rollout keeps the Deployment as the event showed it, so a step reads
it again only when the watch is silent.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import kopf

from fortress.api.canaryrollout import INFO
from fortress.core.loop import ReconcilerFactory
from fortress.core.services import Services
from fortress.rollouts.model import LABEL_COLOUR, LABEL_MANAGED_BY, LABEL_ROLLOUT, MANAGED_BY
from fortress.rollouts.reconciler import RolloutReconciler

RECONCILERS: dict[str, ReconcilerFactory] = {INFO.kind: RolloutReconciler}


def register(registry: kopf.OperatorRegistry, services: Callable[[], Services]) -> None:
    """Deployment events wake the rollout they belong to (async: on the loop, as the loops' events)."""

    @kopf.on.event("apps", "v1", "deployments", labels={LABEL_MANAGED_BY: MANAGED_BY}, registry=registry)
    async def deployment_changed(*, body: kopf.Body, event: Any, **_: Any) -> None:
        labels = body.metadata.labels or {}
        rollout, colour = labels.get(LABEL_ROLLOUT), labels.get(LABEL_COLOUR)
        if not rollout or not colour:
            return
        namespace = body.metadata.namespace or ""
        shared = services()
        found = shared.loops.reconciler(INFO.kind, namespace, rollout, RolloutReconciler)
        if found is not None:
            gone = isinstance(event, dict) and event.get("type") == "DELETED"
            found.remember_deployment(colour, None if gone else dict(body))
        shared.loops.wake(INFO.kind, namespace, rollout)
