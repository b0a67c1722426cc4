"""The control catalogue: every automated control (one module per area) and the manual controls."""

from __future__ import annotations

from collections import defaultdict

from fortress.compliance.controls import (
    configmaps,
    databases,
    fortress_resources,
    manual,
    namespaces,
    network,
    rbac,
    workloads,
)
from fortress.compliance.model import Control, ManualControl

AREAS = ("workloads", "rbac", "network", "namespaces", "configmaps", "databases", "fortress")

CATALOGUE: tuple[Control, ...] = (
    *workloads.CONTROLS,
    *rbac.CONTROLS,
    *network.CONTROLS,
    *namespaces.CONTROLS,
    *configmaps.CONTROLS,
    *databases.CONTROLS,
    *fortress_resources.CONTROLS,
)
MANUAL: tuple[ManualControl, ...] = manual.CONTROLS

BY_ID: dict[str, Control] = {c.id: c for c in CATALOGUE}
MANUAL_BY_ID: dict[str, ManualControl] = {c.id: c for c in MANUAL}


def by_kind(controls: tuple[Control, ...] = CATALOGUE) -> dict[str, tuple[Control, ...]]:
    """Kind -> the controls that read it, in catalogue order."""
    found: dict[str, list[Control]] = defaultdict(list)
    for item in controls:
        for kind in item.kinds:
            found[kind].append(item)
    return {kind: tuple(items) for kind, items in found.items()}
