"""What one step of a CanaryRollout observes: the pod template, the colours' Deployments, a sample.

The colours' Deployments are kept in a :class:`DeploymentCache`: while the Deployment watch delivers a
rollout's events (and the rollout's own writes return the objects), a cached Deployment younger than
:data:`RESYNC_SECONDS` is used as is; otherwise, and before the first event, it is read again.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

import aiohttp

from fortress.adapters.kube import DEPLOYMENTS, Kube
from fortress.api.canaryrollout import CanaryRolloutSpec, CanaryRolloutStatus, StrategyType
from fortress.core.services import Services
from fortress.rollouts import analysis, workload
from fortress.rollouts.model import BLUE, COLOURS, AnalysisSample, Measurement, Raw, other
from fortress.rollouts.transitions import applied_stage_of

RESYNC_SECONDS: Final = 30.0  # cached Deployments (and applied traffic) are re-read at least this often

Objects = dict[str, dict[str, Any] | None]  # a colour's Deployment, None when it does not exist


def resource_version(obj: Mapping[str, Any] | None) -> int | None:
    """``metadata.resourceVersion`` as a number (None when absent or not a number)."""
    try:
        return int(((obj or {}).get("metadata") or {}).get("resourceVersion"))  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None


@dataclass
class DeploymentCache:
    """The colours' Deployments as last seen (a GET, a watch event or the rollout's own write), and when."""

    seen: dict[str, tuple[dict[str, Any] | None, float]] = field(default_factory=dict)
    watching: bool = False  # the watch delivered an event of this rollout's Deployments

    def remember(self, colour: str, obj: dict[str, Any] | None, now: float) -> None:
        """A watch event (None: deleted); an event older than what is cached is ignored."""
        self.watching = True
        current = self.seen.get(colour)
        old, new = resource_version(current[0] if current else None), resource_version(obj)
        if old is not None and new is not None and new < old:
            return
        self.seen[colour] = (obj, now)

    def store(self, colour: str, obj: dict[str, Any] | None, now: float) -> None:
        """What a read or a write returned."""
        self.seen[colour] = (obj, now)

    def fresh(self, colour: str, now: float) -> tuple[bool, dict[str, Any] | None]:
        """(True, the object) when the cached one can be used without a read."""
        cached = self.seen.get(colour)
        if self.watching and cached is not None and now - cached[1] < RESYNC_SECONDS:
            return True, cached[0]
        return False, None

    def clear(self) -> None:
        """Read every Deployment again next time (after a failed write)."""
        self.seen.clear()


async def deployment(
    kube: Kube, cache: DeploymentCache, namespace: str, rollout: str, colour: str
) -> dict[str, Any] | None:
    """One colour's Deployment, from the cache when it is fresh, else read."""
    found, obj = cache.fresh(colour, time.monotonic())
    if not found:
        obj = await kube.get(DEPLOYMENTS, namespace, workload.deployment_name(rollout, colour))
        cache.store(colour, obj, time.monotonic())
    return obj


async def deployments(kube: Kube, cache: DeploymentCache, namespace: str, rollout: str) -> Objects:
    """Both colours' Deployments."""
    found = await asyncio.gather(*(deployment(kube, cache, namespace, rollout, c) for c in COLOURS))
    return dict(zip(COLOURS, found, strict=True))


@dataclass(frozen=True)
class TemplateRead:
    """The pod template to release, the problem reading it, and the workloadRef Deployment."""

    template: dict[str, Any] | None
    problem: str | None = None
    referenced: dict[str, Any] | None = None


async def template(kube: Kube, spec: CanaryRolloutSpec, namespace: str) -> TemplateRead:
    """spec.template, or the pod template of the spec.workloadRef Deployment."""
    if spec.template is not None:
        return TemplateRead(dict(spec.template))
    assert spec.workload_ref is not None
    ref = spec.workload_ref.name
    found = await kube.get(DEPLOYMENTS, namespace, ref)
    if found is None:
        return TemplateRead(None, f"spec.workloadRef: Deployment {namespace}/{ref} not found")
    pod_template = (found.get("spec") or {}).get("template")
    if not isinstance(pod_template, dict):
        return TemplateRead(
            None, f"spec.workloadRef: Deployment {namespace}/{ref} has no pod template", found
        )
    return TemplateRead(pod_template, None, found)


async def measure(
    services: Services,
    session: aiohttp.ClientSession,
    spec: CanaryRolloutSpec,
    state: CanaryRolloutStatus,
    target: tuple[str, str],
    now: dt.datetime,
) -> AnalysisSample:
    """One analysis sample of the release (``target``: namespace and name of the rollout)."""
    namespace, name = target
    stage = applied_stage_of(state) if spec.strategy.type == StrategyType.CANARY else None
    found_checks = analysis.checks(spec, stage)
    revision = state.canary_revision or ""
    where = analysis.Target(namespace, name, revision, other(state.stable_colour or BLUE))
    token = None
    ref = spec.analysis.bearer_token
    if ref is not None:
        try:
            token = await services.secret(namespace, ref)
        except LookupError as error:
            failed = tuple(Measurement(c.name, Raw.ERROR, None, c.max, str(error)) for c in found_checks)
            return AnalysisSample(now, revision, failed)
    prometheus = analysis.Prometheus(spec.analysis.prometheus_address or "", session, token)
    return await prometheus.measure(found_checks, where, now)
