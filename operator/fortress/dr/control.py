"""Manual control of DR plans through the Kubernetes API: request a failover, read status and health.

Synchronous functions on a ``kubernetes`` ApiClient, shared by ``fortress dr``, the kubectl plugin
and the HTTP API (which calls them through ``asyncio.to_thread``). A request is written to the
plan's ``spec.request`` with a unique ``requestId``; the operator acts on it once.
"""

from __future__ import annotations

import datetime as dt
import re
import uuid
from typing import Any, cast

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from fortress.api import GROUP, VERSION
from fortress.api.drplan import INFO as PLAN_INFO
from fortress.api.drplan import FailoverRequest, RequestType
from fortress.api.drregion import INFO as REGION_INFO
from fortress.core.conditions import READY, find


class NotFound(LookupError):
    """The plan or region does not exist."""


class Conflict(RuntimeError):
    """Another request is still pending, or the target is already primary."""


class Invalid(ValueError):
    """The request makes no sense for this plan (e.g. the region belongs to another plan)."""


def _get(api: client.ApiClient, namespace: str, plural: str, name: str, what: str) -> dict[str, Any]:
    try:
        return cast(
            dict[str, Any],
            client.CustomObjectsApi(api).get_namespaced_custom_object(
                GROUP, VERSION, namespace, plural, name
            ),
        )
    except ApiException as error:
        if error.status == 404:
            raise NotFound(f"{what} {namespace}/{name} not found") from error
        raise


def _regions(api: client.ApiClient, namespace: str, plan: str) -> list[dict[str, Any]]:
    listing = client.CustomObjectsApi(api).list_namespaced_custom_object(
        GROUP, VERSION, namespace, REGION_INFO.plural
    )
    items = cast(dict[str, Any], listing).get("items") or []
    return sorted(
        (i for i in items if (i.get("spec") or {}).get("planRef") == plan),
        key=lambda i: i["metadata"]["name"],
    )


def new_request_id(type_: str, target: str, now: dt.datetime | None = None) -> str:
    moment = (now or dt.datetime.now(dt.UTC)).strftime("%Y%m%dT%H%M%SZ")
    raw = f"{type_}-{target}-{moment}-{uuid.uuid4().hex[:6]}"
    return re.sub(r"[^A-Za-z0-9._-]", "-", raw)[-64:].lstrip("-._") or uuid.uuid4().hex


def request_failover(
    api: client.ApiClient,
    namespace: str,
    plan: str,
    target: str,
    *,
    switchover: bool = False,
    force: bool = False,
    request_id: str | None = None,
) -> dict[str, Any]:
    """Write ``spec.request`` on the plan; return the request as written."""
    body = _get(api, namespace, PLAN_INFO.plural, plan, "DRPlan")
    region = _get(api, namespace, REGION_INFO.plural, target, "DRRegion")
    owner = (region.get("spec") or {}).get("planRef")
    if owner != plan:
        raise Invalid(f"DRRegion {target} belongs to plan {owner!r}, not {plan!r}")
    status = body.get("status") or {}
    pending = (body.get("spec") or {}).get("request")
    if pending and pending.get("requestId") != status.get("handledRequestId"):
        raise Conflict(
            f"request {pending.get('requestId')} is still pending; wait for the operator to act on it"
        )
    if status.get("primaryRegion") == target and (status.get("phase") in ("Protected", "Unprotected")):
        raise Conflict(f"{target} is already the primary of {plan}")
    type_ = RequestType.SWITCHOVER if switchover else RequestType.FAILOVER
    request = FailoverRequest(
        type=type_,
        target_region=target,
        force=force,
        request_id=request_id or new_request_id(type_.value, target),
    ).wire()
    client.CustomObjectsApi(api).patch_namespaced_custom_object(
        GROUP, VERSION, namespace, PLAN_INFO.plural, plan, {"spec": {"request": request}}
    )
    return request


def _ready(status: dict[str, Any]) -> dict[str, Any]:
    return dict(find(status.get("conditions"), READY) or {})


def plan_report(api: client.ApiClient, namespace: str, plan: str) -> dict[str, Any]:
    """The plan and its regions as their statuses say (what ``fortress dr status`` prints)."""
    body = _get(api, namespace, PLAN_INFO.plural, plan, "DRPlan")
    return _report(body, _regions(api, namespace, plan))


def _report(body: dict[str, Any], regions: list[dict[str, Any]]) -> dict[str, Any]:
    status = body.get("status") or {}
    spec = body.get("spec") or {}
    ready = _ready(status)
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
                "ready": _ready(rs).get("status", "Unknown"),
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
        "pendingRequest": (spec.get("request") or {}).get("requestId")
        if (spec.get("request") or {}).get("requestId") != status.get("handledRequestId")
        else None,
        "regions": rows,
    }


def plans_report(api: client.ApiClient, namespace: str) -> list[dict[str, Any]]:
    """Every plan of the namespace."""
    listing = client.CustomObjectsApi(api).list_namespaced_custom_object(
        GROUP, VERSION, namespace, PLAN_INFO.plural
    )
    plans = sorted(cast(dict[str, Any], listing).get("items") or [], key=lambda i: i["metadata"]["name"])
    return [_report(p, _regions(api, namespace, p["metadata"]["name"])) for p in plans]


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
