"""Kopf glue of DRPlan and DRRegion: each loop runs its reconciler; a deleted plan wakes its regions."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import kopf

from fortress.api.drplan import INFO as PLAN_INFO
from fortress.api.drregion import INFO as REGION_INFO
from fortress.core.loop import ReconcilerFactory
from fortress.core.services import Services
from fortress.dr.reconciler import DRPlanReconciler, DRRegionReconciler, wake_regions

RECONCILERS: dict[str, ReconcilerFactory] = {
    PLAN_INFO.kind: DRPlanReconciler,
    REGION_INFO.kind: DRRegionReconciler,
}


def register(registry: kopf.OperatorRegistry, services: Callable[[], Services]) -> None:
    """A deleted DRPlan wakes its regions' loops, which then report that their plan is missing."""

    @kopf.on.event(PLAN_INFO.group, PLAN_INFO.version, PLAN_INFO.plural, registry=registry, id="wake-regions")
    def plan_deleted(*, type: str, name: str, namespace: str | None, **_: Any) -> None:
        if type == "DELETED":
            wake_regions(services().loops, namespace or "", name)
