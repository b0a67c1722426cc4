"""The ``<name>-blue`` / ``<name>-green`` Deployments: building them and reading them back (pure).

A colour's Deployment selects its pods by ``fortress.io/rollout`` and ``fortress.io/colour`` (its
selector never changes); the pods also carry ``fortress.io/revision``, the pod-template hash of the
release (``model.template_hash`` of the template as written in the spec, before these labels).
Availability counts only pods of the current template: the Deployment controller must have observed
the current generation, and old pods still running are subtracted.

A colour's Deployment rolls its own pods (when a colour is re-templated while it has pods, e.g. a new
release during a canary) with :data:`STRATEGY`: RollingUpdate, ``maxSurge`` 25 % and
``maxUnavailable`` 0, so the Deployment controller starts a new pod and waits for it to be available
before it stops an old one: the colour never has fewer available pods than its replicas.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any, Final

from fortress.rollouts.model import (
    LABEL_COLOUR,
    LABEL_MANAGED_BY,
    LABEL_REVISION,
    LABEL_ROLLOUT,
    MANAGED_BY,
    DeploymentView,
)

#: The update strategy of every colour's Deployment: surge, never fewer available pods than replicas.
STRATEGY: Final[dict[str, Any]] = {
    "type": "RollingUpdate",
    "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": 0},
}


def deployment_name(rollout: str, colour: str) -> str:
    return f"{rollout}-{colour}"


def pod_selector(rollout: str) -> str:
    """The label selector (as a string) of every pod of the rollout, both colours: the scale
    subresource's ``status.selector``."""
    return f"{LABEL_ROLLOUT}={rollout}"


def pod_template(template: Mapping[str, Any], rollout: str, colour: str, revision: str) -> dict[str, Any]:
    """The spec's pod template with the rollout's labels added (they win over the template's own)."""
    result = copy.deepcopy(dict(template))
    metadata = result.setdefault("metadata", {})
    labels = metadata.setdefault("labels", {})
    labels.update({LABEL_ROLLOUT: rollout, LABEL_COLOUR: colour, LABEL_REVISION: revision})
    return result


def deployment(
    *,
    rollout: str,
    namespace: str,
    colour: str,
    revision: str,
    template: Mapping[str, Any],
    replicas: int,
    owner: Mapping[str, Any] | None,
) -> dict[str, Any]:
    """A colour's Deployment running ``revision``."""
    metadata: dict[str, Any] = {
        "name": deployment_name(rollout, colour),
        "namespace": namespace,
        "labels": {
            LABEL_MANAGED_BY: MANAGED_BY,
            LABEL_ROLLOUT: rollout,
            LABEL_COLOUR: colour,
            LABEL_REVISION: revision,
        },
        "annotations": {LABEL_REVISION: revision},
    }
    if owner:
        metadata["ownerReferences"] = [dict(owner)]
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": metadata,
        "spec": {
            "replicas": replicas,
            "strategy": copy.deepcopy(STRATEGY),
            "selector": {"matchLabels": {LABEL_ROLLOUT: rollout, LABEL_COLOUR: colour}},
            "template": pod_template(template, rollout, colour, revision),
        },
    }


def view(colour: str, obj: Mapping[str, Any] | None) -> DeploymentView:
    """What the planner needs to know about a colour's Deployment."""
    if obj is None:
        return DeploymentView(colour=colour)
    meta = obj.get("metadata") or {}
    spec = obj.get("spec") or {}
    status = obj.get("status") or {}
    revision = (meta.get("labels") or {}).get(LABEL_REVISION)
    replicas = int(spec.get("replicas", 1) or 0)
    generation = meta.get("generation")
    observed = status.get("observedGeneration")
    current = generation is None or (observed is not None and int(observed) >= int(generation))
    available = 0
    if current:
        updated = int(status.get("updatedReplicas") or 0)
        total = int(status.get("replicas") or updated)
        old = max(0, total - updated)
        available = max(0, min(updated, int(status.get("availableReplicas") or 0) - old))
    return DeploymentView(
        colour=colour, exists=True, revision=revision, replicas=replicas, available=available
    )


def retire_reference(referenced: Mapping[str, Any] | None, *, serving: bool) -> dict[str, Any] | None:
    """The patch scaling a taken-over ``spec.workloadRef`` Deployment to 0, or None (pure).

    Only once the rollout's own colour serves and the stable Service selects it (``serving``): until
    then the referenced Deployment keeps serving as it did. Its template stays the source of new
    revisions; a Deployment scaled back up by hand is scaled down again.
    """
    if referenced is None or not serving:
        return None
    if int((referenced.get("spec") or {}).get("replicas", 1) or 0) == 0:
        return None
    return {"spec": {"replicas": 0}}


def image_of(template: Mapping[str, Any] | None) -> str | None:
    containers = ((template or {}).get("spec") or {}).get("containers") or []
    return str(containers[0].get("image")) if containers and containers[0].get("image") else None
