"""What one step of a CanaryRollout changes, in the order that keeps traffic on available pods.

Creations and scale-ups first, then traffic, then template changes and scale-downs (skipped when the
traffic write failed); then the feature flags' ConfigMap, and a taken-over ``spec.workloadRef``
Deployment is scaled to 0 once the rollout's own pods serve. Each function returns what failed
(described, never raised), so one failed write does not stop the others and the step reports it.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from fortress.adapters.kube import CONFIGMAPS, DEPLOYMENTS, Kube
from fortress.api.canaryrollout import CanaryRolloutSpec
from fortress.core.errors import describe
from fortress.core.outcome import EventNote
from fortress.rollouts import workload
from fortress.rollouts.model import BLUE, LABEL_REVISION, Plan
from fortress.rollouts.observe import RESYNC_SECONDS, DeploymentCache, Objects
from fortress.rollouts.traffic import RouterContext, router_for
from fortress.rollouts.traffic.base import managed_labels, selector

EARLY: Final = "early"  # before the traffic moves: creations and scale-ups
LATE: Final = "late"  # after it moved: template changes and scale-downs


@dataclass(frozen=True)
class Release:
    """The rollout one step acts for: where, its owner reference, the spec and the template it releases."""

    namespace: str
    name: str
    owner: Mapping[str, Any]
    spec: CanaryRolloutSpec
    template: Mapping[str, Any] | None
    desired: str | None  # the template's hash


@dataclass(frozen=True)
class DeploymentWrite:
    """One write of a colour's Deployment: a creation of ``body``, or ``body`` as a merge patch."""

    colour: str
    name: str
    when: str  # EARLY or LATE
    body: dict[str, Any]
    patch: bool = False


@dataclass
class Applied:
    """What the rollout last wrote, so unchanged traffic and flags are not written again."""

    traffic: tuple[Any, float] | None = None  # the wanted traffic and when it was applied
    flags: tuple[tuple[str, bool], ...] | None = None


def flags_configmap(rollout: str) -> str:
    return f"{rollout}-flags"


def replacing(current: Any, wanted: Mapping[str, Any]) -> dict[str, Any]:
    """A merge patch turning ``current`` into ``wanted`` (keys absent from ``wanted`` removed)."""
    if not isinstance(current, dict):
        return dict(wanted)
    patch: dict[str, Any] = {k: None for k in current if k not in wanted}
    for key, value in wanted.items():
        if isinstance(value, dict) and isinstance(current.get(key), dict):
            patch[key] = replacing(current[key], value)
        else:
            patch[key] = value
    return patch


def deployment_writes(plan: Plan, release: Release, objects: Objects) -> list[DeploymentWrite]:
    """The writes that bring the colours' Deployments to the plan, each early or late (pure)."""
    writes: list[DeploymentWrite] = []
    for wanted in plan.deployments:
        obj = objects.get(wanted.colour)
        name = workload.deployment_name(release.name, wanted.colour)
        body = None
        if (
            wanted.revision is not None
            and wanted.revision == release.desired
            and release.template is not None
        ):
            body = workload.deployment(
                rollout=release.name,
                namespace=release.namespace,
                colour=wanted.colour,
                revision=wanted.revision,
                template=release.template,
                replicas=wanted.replicas,
                owner=release.owner,
            )  # the Deployment this colour should run (it is re-templated to it)
        if obj is None:
            if body is not None and wanted.replicas > 0:
                writes.append(DeploymentWrite(wanted.colour, name, EARLY, body))
            continue
        revision = ((obj.get("metadata") or {}).get("labels") or {}).get(LABEL_REVISION)
        replicas = int((obj.get("spec") or {}).get("replicas", 1) or 0)
        if body is not None and revision != release.desired:
            meta = body["metadata"]
            template = replacing((obj.get("spec") or {}).get("template"), body["spec"]["template"])
            patch = {
                "metadata": {"labels": meta["labels"], "annotations": meta["annotations"]},
                "spec": {
                    "replicas": wanted.replicas,
                    "strategy": body["spec"]["strategy"],
                    "template": template,
                },
            }
            writes.append(DeploymentWrite(wanted.colour, name, LATE, patch, patch=True))
        elif replicas != wanted.replicas:
            when = EARLY if wanted.replicas > replicas else LATE
            writes.append(
                DeploymentWrite(wanted.colour, name, when, {"spec": {"replicas": wanted.replicas}}, True)
            )
    return writes


async def write_deployments(
    kube: Kube, cache: DeploymentCache, namespace: str, writes: list[DeploymentWrite]
) -> list[str]:
    """Make the writes in order; what failed (the cache is then dropped: read again next time)."""
    errors: list[str] = []
    for write in writes:
        try:
            if write.patch:
                written = await kube.patch(DEPLOYMENTS, namespace, write.name, write.body)
            else:
                written = await kube.create(DEPLOYMENTS, namespace, write.body)
        except Exception as error:
            cache.clear()
            errors.append(describe(error))
            continue
        if written:
            cache.store(write.colour, written, time.monotonic())
    return errors


def traffic_wanted(plan: Plan, spec: CanaryRolloutSpec) -> tuple[Any, ...]:
    """What the traffic write depends on: unchanged, it is not written again until the resync."""
    preview = spec.strategy.blue_green.preview_service if spec.strategy.blue_green else None
    return (plan.traffic, plan.status.stable_colour, spec.service, preview, spec.traffic_routing)


async def apply_traffic(kube: Kube, applied: Applied, plan: Plan, release: Release) -> str | None:
    """Point the Services (and the router's objects) as the plan says; what failed, if anything."""
    spec = release.spec
    wanted = traffic_wanted(plan, spec)
    now = time.monotonic()
    if (
        applied.traffic is not None
        and applied.traffic[0] == wanted
        and now - applied.traffic[1] < RESYNC_SECONDS
    ):
        return None
    ctx = RouterContext(
        io=kube,
        namespace=release.namespace,
        rollout=release.name,
        service=spec.service,
        owner=release.owner,
        template=release.template,
        routing=spec.traffic_routing,
    )
    preview = wanted[3]
    try:
        if plan.traffic is not None:
            await router_for(spec.traffic_routing.type).apply(ctx, plan.traffic)
            if preview and plan.traffic.preview:
                ports = await ctx.stable_ports()
                await ctx.ensure_service_selector(
                    preview, selector(release.name, plan.traffic.preview), ports
                )
        else:
            await ctx.ensure_service_exists(plan.status.stable_colour or BLUE)
    except Exception as error:
        applied.traffic = None
        return f"traffic: {describe(error)}"
    applied.traffic = (wanted, now)
    return None


async def converge(
    kube: Kube, cache: DeploymentCache, applied: Applied, plan: Plan, release: Release, objects: Objects
) -> list[str]:
    """Deployments and traffic in the safe order; what failed. Nothing moves without a workload."""
    if not plan.deployments:
        return []  # the workload cannot be read: nothing is created or moved until it can
    writes = deployment_writes(plan, release, objects)
    errors = await write_deployments(kube, cache, release.namespace, [w for w in writes if w.when == EARLY])
    failed = await apply_traffic(kube, applied, plan, release)
    if failed is not None:
        return [*errors, failed]
    return errors + await write_deployments(
        kube, cache, release.namespace, [w for w in writes if w.when == LATE]
    )


def flags_data(plan: Plan) -> dict[str, str]:
    """The flags ConfigMap's data for the plan's flags (pure)."""
    return {f.name: "true" if f.enabled else "false" for f in plan.status.flags}


async def write_flags(kube: Kube, applied: Applied, plan: Plan, release: Release) -> list[str]:
    """The ``<name>-flags`` ConfigMap as the plan's flags say (written when they changed)."""
    wanted = tuple((f.name, f.enabled) for f in plan.status.flags)
    if wanted == applied.flags:
        return []
    data = flags_data(plan)
    name = flags_configmap(release.name)
    try:
        current = await kube.get(CONFIGMAPS, release.namespace, name)
        if current is None:
            meta = {
                "name": name,
                "namespace": release.namespace,
                "labels": managed_labels(release.name),
                "ownerReferences": [dict(release.owner)],
            }
            body = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta, "data": data}
            await kube.create(CONFIGMAPS, release.namespace, body)
        elif (current.get("data") or {}) != data:
            removed = {k: None for k in (current.get("data") or {}) if k not in data}
            await kube.patch(CONFIGMAPS, release.namespace, name, {"data": {**removed, **data}})
    except Exception as error:
        return [f"ConfigMap {name}: {describe(error)}"]
    applied.flags = wanted
    return []


async def retire_reference(
    kube: Kube, plan: Plan, release: Release, referenced: Mapping[str, Any] | None, errors: list[str]
) -> list[EventNote]:
    """Scale the taken-over workloadRef Deployment to 0 once the rollout's own pods serve.

    Nothing happens while another write of the step failed; a failure of its own joins ``errors``.
    """
    patch = workload.retire_reference(referenced, serving=plan.ready and plan.traffic is not None)
    if patch is None or errors or referenced is None:
        return []
    ref = str((referenced.get("metadata") or {}).get("name"))
    try:
        await kube.patch(DEPLOYMENTS, release.namespace, ref, patch)
    except Exception as error:
        errors.append(f"workloadRef Deployment {ref}: {describe(error)}")
        return []
    before = int((referenced.get("spec") or {}).get("replicas", 1) or 0)
    colour = plan.status.stable_colour or BLUE
    message = (
        f"Deployment {ref} scaled from {before} to 0 pods: the rollout's {colour} pods serve "
        f"Service {release.spec.service}; {ref} stays the source of the pod template"
    )
    return [EventNote("Normal", "WorkloadTakenOver", message)]
