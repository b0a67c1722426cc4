"""Manual control of DR plans through the Kubernetes API: request a failover, read status and health.

Synchronous functions on a :class:`~fortress.adapters.kube.BlockingKube`, shared by ``fortress dr``,
the kubectl plugin and the HTTP API (which calls them through ``asyncio.to_thread``). A request is
written to the plan's ``spec.request`` with a unique ``requestId`` and ``metadata.resourceVersion``
(so a plan changed since it was read is refused, never overwritten); the operator acts on it once
and records it in ``status.lastRequest``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError

from fortress.adapters.kube import BlockingKube, Resource, conflict, meta
from fortress.api.drplan import FailoverRequest, RequestAction
from fortress.core.conditions import READY, find
from fortress.core.requests import handled_id, new_request_id, pending
from fortress.dr.kubeio import PLANS, REGIONS, regions_of


class NotFound(LookupError):
    """The plan or region does not exist."""


class Conflict(RuntimeError):
    """Another request is still pending, the target is already primary, or the plan changed meanwhile."""


class Invalid(ValueError):
    """The request makes no sense for this plan (e.g. the region belongs to another plan)."""


def _get(kube: BlockingKube, resource: Resource, namespace: str, name: str) -> dict[str, Any]:
    found = kube.get(resource, namespace, name)
    if found is None:
        raise NotFound(f"{resource.kind} {namespace}/{name} not found")
    return found


def _regions(kube: BlockingKube, namespace: str, plan: str) -> list[dict[str, Any]]:
    return regions_of(kube.list(REGIONS, namespace), plan)


def pending_request(body: Mapping[str, Any]) -> FailoverRequest | None:
    """The plan's ``spec.request`` when the operator has not handled it yet (pure)."""
    raw = (body.get("spec") or {}).get("request")
    if not raw:
        return None
    try:
        request = FailoverRequest.model_validate(raw)
    except ValidationError:
        return None  # not a request the operator would act on
    return pending(request, handled_id(body.get("status")))


def request_failover(
    kube: BlockingKube,
    namespace: str,
    plan: str,
    target: str,
    *,
    switchover: bool = False,
    force: bool = False,
    request_id: str | None = None,
) -> dict[str, Any]:
    """Write ``spec.request`` on the plan (refused if it changed since read); the request as written."""
    body = _get(kube, PLANS, namespace, plan)
    region = _get(kube, REGIONS, namespace, target)
    owner = (region.get("spec") or {}).get("planRef")
    if owner != plan:
        raise Invalid(f"DRRegion {target} belongs to plan {owner!r}, not {plan!r}")
    waiting = pending_request(body)
    if waiting is not None:
        raise Conflict(f"request {waiting.request_id} is still pending; wait for the operator to act on it")
    status = body.get("status") or {}
    if status.get("primaryRegion") == target and (status.get("phase") in ("Protected", "Unprotected")):
        raise Conflict(f"{target} is already the primary of {plan}")
    action = RequestAction.SWITCHOVER if switchover else RequestAction.FAILOVER
    request = FailoverRequest(
        action=action,
        target_region=target,
        force=force,
        request_id=request_id or new_request_id(action.value, target),
    ).wire()
    patch = {
        "metadata": {"resourceVersion": meta(body).get("resourceVersion")},
        "spec": {"request": {**request, "type": None}},  # the older name of action goes
    }
    try:
        kube.patch(PLANS, namespace, plan, patch)
    except Exception as error:
        if conflict(error):
            raise Conflict(
                f"DRPlan {namespace}/{plan} changed while the request was written; retry"
            ) from None
        raise
    return request


def plan_report(kube: BlockingKube, namespace: str, plan: str) -> dict[str, Any]:
    """The plan and its regions as their statuses say (what ``fortress dr status`` prints)."""
    body = _get(kube, PLANS, namespace, plan)
    return _report(body, _regions(kube, namespace, plan))


def _report(body: dict[str, Any], regions: list[dict[str, Any]]) -> dict[str, Any]:
    status = body.get("status") or {}
    spec = body.get("spec") or {}
    ready = find(status.get("conditions"), READY) or {}
    waiting = pending_request(body)
    rows = []
    for item in regions:
        rs = item.get("status") or {}
        rspec = item.get("spec") or {}
        rows.append(
            {
                "name": item["metadata"]["name"],
                "provider": rspec.get("provider"),
                "location": rspec.get("location"),
                "priority": rspec.get("priority"),
                "role": rs.get("role") or "Unknown",
                "ready": (find(rs.get("conditions"), READY) or {}).get("status", "Unknown"),
                "reachable": rs.get("reachable"),
                "healthy": rs.get("healthy"),
                "fenced": bool(rs.get("fenced")),
                "needsReclone": bool(rs.get("needsReclone")),
                "timeline": rs.get("timeline"),
                "lsn": rs.get("currentLsn") if rs.get("role") == "Primary" else rs.get("replayLsn"),
                "lagBytes": rs.get("lagBytes"),
                "lagSeconds": rs.get("lagSeconds"),
                "consecutiveFailures": rs.get("consecutiveFailures"),
                "lastCheckTime": rs.get("lastCheckTime"),
                "message": rs.get("message"),
            }
        )
    return {
        "namespace": body["metadata"].get("namespace"),
        "name": body["metadata"]["name"],
        "mode": spec.get("mode"),
        "phase": status.get("phase"),
        "ready": ready.get("status", "Unknown"),
        "reason": ready.get("reason"),
        "message": status.get("message"),
        "primaryRegion": status.get("primaryRegion"),
        "candidate": status.get("candidate"),
        "serviceEndpoint": status.get("serviceEndpoint"),
        "lastCheckTime": status.get("lastCheckTime"),
        "lastFailover": status.get("lastFailover"),
        "history": status.get("history") or [],
        "pendingRequest": waiting.request_id if waiting is not None else None,
        "lastRequest": status.get("lastRequest"),
        "regions": rows,
    }


def plans_report(kube: BlockingKube, namespace: str) -> list[dict[str, Any]]:
    """Every plan of the namespace."""
    plans = sorted(kube.list(PLANS, namespace), key=lambda i: str(meta(i).get("name")))
    regions = kube.list(REGIONS, namespace)
    return [_report(p, regions_of(regions, str(meta(p).get("name")))) for p in plans]


def render(report: dict[str, Any]) -> str:
    """A plan report as text: a summary line, the regions' table, the latest failover."""
    lines = [
        f"DRPlan {report['namespace']}/{report['name']}: {report['phase'] or '-'} (Ready={report['ready']}, "
        f"{report['reason'] or '-'}); primary {report['primaryRegion'] or '-'}; "
        f"Service -> {report['serviceEndpoint'] or '-'}; mode {report['mode']}",
        f"  {report['message'] or ''}",
    ]
    headers = [
        "REGION",
        "PROVIDER",
        "LOCATION",
        "PRIO",
        "ROLE",
        "READY",
        "TL",
        "LSN",
        "LAG(B)",
        "LAG(S)",
        "FAILS",
    ]
    keys = [
        "name",
        "provider",
        "location",
        "priority",
        "role",
        "ready",
        "timeline",
        "lsn",
        "lagBytes",
        "lagSeconds",
        "consecutiveFailures",
    ]
    cells = [["-" if r.get(k) is None else str(r.get(k)) for k in keys] for r in report["regions"]]
    widths = [max([len(h)] + [len(c[i]) for c in cells]) for i, h in enumerate(headers)]
    lines.append("  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip())
    lines += ["  ".join(c.ljust(w) for c, w in zip(cell, widths, strict=True)).rstrip() for cell in cells]
    last = report.get("lastFailover")
    if last:
        lines.append(
            f"last {last.get('type')}: {last.get('fromRegion') or '-'} -> {last.get('toRegion')}, "
            f"RTO {last.get('rtoSeconds')}s, RPO {last.get('rpoBytes')} bytes / {last.get('rpoSeconds')}s "
            f"(detected {last.get('detectedAt')})"
        )
    if report.get("pendingRequest"):
        lines.append(f"pending request: {report['pendingRequest']}")
    return "\n".join(lines)
