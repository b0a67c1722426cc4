"""The ComplianceScan reconciler: list what the scan covers page by page through the shared
Kubernetes client, evaluate the catalogue on it (pure), and record scores in status.

A scan runs when the spec changes (and on the first step), then at each time of ``spec.schedule``.
It reports Ready=False (``status.NOT_COMPLETE``) whatever the scores: findings, evidence,
PolicyReports, reports, remediation and real-time rescans are not built yet.

Not wired yet: no ``handlers.py`` maps ComplianceScan to this reconciler, so the operator still
serves the kind with ``NotImplementedReconciler`` until the live side is complete.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from fortress.adapters.kube import ApiException, Kube, Resource, not_found
from fortress.api.compliancescan import ComplianceScanSpec
from fortress.compliance import exceptions, live, schedule
from fortress.compliance.context import Context
from fortress.compliance.engine import Scanner
from fortress.compliance.model import Framework, Obj
from fortress.compliance.status import outcome
from fortress.core.loop import ObjectRef, StepContext
from fortress.core.outcome import INVALID_SPEC, EventNote, Outcome
from fortress.core.services import Services
from fortress.core.time import now as utc_now
from fortress.core.time import parse

PAGE_SIZE = 500


CONTEXT_RESOURCES = (
    live.NETWORKPOLICIES,
    live.PDBS,
    live.RESOURCEQUOTAS,
    live.LIMITRANGES,
    live.DRPLANS,
    live.DRREGIONS,
)
SCANNED_RESOURCES = (
    live.NAMESPACES,
    live.PODS,
    live.DEPLOYMENTS,
    live.STATEFULSETS,
    live.DAEMONSETS,
    live.JOBS,
    live.CRONJOBS,
    live.SERVICES,
    live.INGRESSES,
    live.CONFIGMAPS,
    live.SERVICEACCOUNTS,
    live.ROLES,
    live.ROLEBINDINGS,
    live.CLUSTERROLES,
    live.CLUSTERROLEBINDINGS,
    live.CREDITLEDGERS,
    live.SHARDCLUSTERS,
    live.CANARYROLLOUTS,
    live.COMPLIANCESCANS,
)


async def scan(
    kube: Kube, spec: ComplianceScanSpec, rules: list[exceptions.Exception_], page_size: int = PAGE_SIZE
) -> tuple[Scanner, list[str]]:
    """List what ``spec`` covers page by page and evaluate it: the small context kinds first (kept),
    then every other kind a page at a time (not kept). Returns the scanner and the resources that
    could not be listed (not served, or forbidden)."""
    context = Context(now=utc_now())
    skipped: list[str] = []
    kept: list[Obj] = []
    for resource in CONTEXT_RESOURCES:
        async for page in _pages(kube, resource, spec, skipped, page_size):
            for obj in page:
                context.add(obj)
                kept.append(obj)
    scanner = Scanner(context, exceptions=rules)
    for resource in SCANNED_RESOURCES:
        async for page in _pages(kube, resource, spec, skipped, page_size):
            for obj in page:
                context.add(obj)
            scanner.evaluate(page)
            await asyncio.sleep(0)  # let other loops run between pages
    scanner.evaluate(kept)
    return scanner, skipped


async def _pages(
    kube: Kube, resource: Resource, spec: ComplianceScanSpec, skipped: list[str], page_size: int
) -> AsyncIterator[list[Obj]]:
    """Pages of ``resource`` in the scan's scope (kind and apiVersion set on each item)."""
    namespaces: list[str | None] = (
        list(spec.target_namespaces) if spec.target_namespaces and resource.namespaced else [None]
    )
    for namespace in namespaces:
        try:
            async for page in kube.pages(resource, namespace, page_size=page_size):
                items = []
                for item in page:
                    item.setdefault("kind", resource.kind)
                    item.setdefault("apiVersion", resource.api_version)
                    if live.in_scope(item, spec.target_namespaces, spec.exclude_namespaces) and not (
                        live.owned_by_controller(item)
                    ):
                        items.append(item)
                yield items
        except ApiException as error:
            if not_found(error) or error.status == 403:
                skipped.append(f"{resource.plural} ({error.status})")
                return
            raise


class ComplianceReconciler:
    """Scans on creation, spec change and schedule; keeps the last outcome between scans."""

    def __init__(self, services: Services, ref: ObjectRef) -> None:
        self.services = services
        self.ref = ref
        self.last: Outcome | None = None

    async def close(self, deleted: bool) -> None:
        return None

    async def step(self, ctx: StepContext) -> Outcome | None:
        spec = ctx.spec
        assert isinstance(spec, ComplianceScanSpec)
        now = utc_now()
        last_scan = parse(ctx.status.get("lastScanTime"))
        next_at = parse(ctx.status.get("nextScanTime"))
        scan_now = schedule.due(
            changed=ctx.changed or self.last is None,
            suspend=spec.suspend,
            schedule=spec.schedule,
            last_scan=last_scan,
            next_at=next_at,
            now=now,
        )
        if not scan_now:
            assert self.last is not None
            return _requeued(self.last, schedule.wait(next_at, now))
        try:
            rules = exceptions.parse([e.wire() for e in spec.exceptions])
        except exceptions.ExceptionError as error:
            message = str(error)
            return Outcome(
                False, INVALID_SPEC, message, "Invalid", events=(EventNote("Warning", INVALID_SPEC, message),)
            )
        scanner, skipped = await scan(self.services.kube, spec, rules)
        upcoming = None if spec.suspend else schedule.next_scan(spec.schedule, now)
        frameworks = [Framework(f) for f in spec.frameworks]
        self.last = outcome(
            scanner.result(),
            frameworks,
            spec.passing_score,
            upcoming,
            skipped,
            schedule.wait(upcoming, utc_now()),
        )
        return self.last


def _requeued(last: Outcome, seconds: float) -> Outcome:
    return Outcome(
        last.ready, last.reason, last.message, last.phase, last.fields, last.conditions, (), seconds
    )
