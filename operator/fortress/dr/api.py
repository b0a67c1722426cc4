"""The DR HTTP API: request a failover or switchover, read plans' status and health.

``POST /api/v1/dr/failover`` (admin) writes the plan's ``spec.request`` through the Kubernetes API,
refused if the plan changed since it was read; the operator acts on it at once (202 Accepted).
``GET /api/v1/dr/status`` and ``GET /api/v1/dr/health`` (read) report what the latest checks wrote.
404 unknown plan or region, 409 a request is pending, the target is already primary or the plan
changed meanwhile, 422 the region belongs to another plan, 503 no Kubernetes API configured or
reachable.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from typing import Any, Final, Literal

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic.alias_generators import to_camel

from fortress.adapters.kube import ApiException, BlockingKube, Cluster, load_cluster
from fortress.api.common import DNS_LABEL_PATTERN, DNS_SUBDOMAIN_PATTERN
from fortress.core.errors import describe
from fortress.dr import control
from fortress.http.auth import Scope
from fortress.http.errors import bad_request, conflict, not_found, unavailable, unprocessable
from fortress.http.routing import Route
from fortress.http.server import ApiConfig

TAG: Final = "dr"


class Wire(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")


def _differing(action: str, other: str) -> dict[str, Any]:
    return {
        "required": ["action", "type"],
        "properties": {"action": {"const": action}, "type": {"const": other}},
    }


class FailoverBody(Wire):
    """A manual failover (now) or planned switchover (after zero lag) to one region of a plan."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
        # action and its deprecated name type must agree when both are given (400)
        json_schema_extra={
            "not": {"anyOf": [_differing("failover", "switchover"), _differing("switchover", "failover")]}
        },
    )

    namespace: str = Field(
        default="default", pattern=DNS_LABEL_PATTERN, max_length=63, description="Namespace of the plan."
    )
    plan: str = Field(pattern=DNS_SUBDOMAIN_PATTERN, max_length=253, description="DRPlan name.")
    target_region: str = Field(
        pattern=DNS_SUBDOMAIN_PATTERN, max_length=253, description="DRRegion to promote."
    )
    action: Literal["failover", "switchover"] | None = Field(
        default=None, description="failover (the default) or switchover."
    )
    type: Literal["failover", "switchover"] | None = Field(
        default=None, description="Deprecated name of action, read for one more release; use action."
    )
    force: bool = Field(
        default=False, description="Promote even beyond the plan's lag limit (may lose data)."
    )

    @model_validator(mode="after")
    def _one_action(self) -> FailoverBody:
        if self.action is not None and self.type is not None and self.action != self.type:
            raise ValueError("action and its deprecated name type differ; give action only")
        return self

    @property
    def wanted(self) -> str:
        return self.action or self.type or "failover"


class FailoverAccepted(Wire):
    namespace: str
    plan: str
    target_region: str
    action: str
    type: str = Field(description="Deprecated: the same as action, for one more release.")
    force: bool
    request_id: str = Field(description="The operator acts on this request once; see status.lastRequest.")


class RegionHealth(Wire):
    name: str
    role: str
    healthy: bool
    fenced: bool = False
    lag_bytes: int | None = None
    lag_seconds: float | None = None


class PlanHealth(Wire):
    namespace: str
    name: str
    ready: bool
    phase: str | None = None
    primary_region: str | None = None
    healthy_regions: int = 0
    last_check_time: str | None = None
    regions: list[RegionHealth] = Field(default_factory=list)


class Health(Wire):
    healthy: bool = Field(description="Every plan Ready (in force: one healthy primary and a candidate).")
    plans: list[PlanHealth]


class RegionStatus(Wire):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="allow")
    name: str


class PlanStatus(Wire):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="allow")
    namespace: str | None = None
    name: str
    regions: list[RegionStatus] = Field(default_factory=list)


class StatusList(Wire):
    plans: list[PlanStatus]


class _Kube:
    """A Kubernetes client made on first use (the API may serve other subsystems without one)."""

    def __init__(self, kube: BlockingKube | None = None) -> None:
        self.kube = kube
        self._lock = asyncio.Lock()

    async def get(self) -> BlockingKube:
        async with self._lock:
            if self.kube is None:
                from fortress.settings import Settings

                try:
                    cluster = await asyncio.to_thread(load_cluster, Settings.from_env().kubeconfig)
                except Exception as error:
                    raise unavailable(
                        "kubernetes_unavailable", f"no Kubernetes API configured: {describe(error)}"
                    ) from None
                self.kube = BlockingKube(cluster)
            return self.kube

    async def close(self) -> None:
        if self.kube is not None:
            await asyncio.to_thread(self.kube.close)


KUBE: web.AppKey[_Kube] = web.AppKey("dr_kube", _Kube)


def use_cluster(app: web.Application, cluster: Cluster) -> None:
    """Serve from this cluster instead of the environment's kubeconfig (tests, embedding)."""
    app[KUBE] = _Kube(BlockingKube(cluster))


async def _call(request: web.Request, fn: Any, *args: Any, **kwargs: Any) -> Any:
    kube = await request.app[KUBE].get()
    try:
        return await asyncio.to_thread(fn, kube, *args, **kwargs)
    except control.NotFound as error:
        raise not_found(str(error)) from None
    except control.Conflict as error:
        raise conflict("conflict", str(error)) from None
    except control.Invalid as error:
        raise unprocessable("wrong_plan", str(error)) from None
    except ApiException as error:
        raise unavailable("kubernetes_error", f"Kubernetes API answered {describe(error)}") from None
    except (OSError, TimeoutError) as error:
        raise unavailable(
            "kubernetes_unavailable", f"Kubernetes API unreachable: {describe(error)}"
        ) from None


def _namespace(request: web.Request) -> str:
    namespace = request.query.get("namespace", "default")
    if not re.fullmatch(DNS_LABEL_PATTERN, namespace) or len(namespace) > 63:
        raise bad_request(
            "invalid query parameter", [{"field": "namespace", "message": "not a namespace name"}]
        )
    return namespace


async def failover(request: web.Request, body: FailoverBody) -> FailoverAccepted:
    written = await _call(
        request,
        control.request_failover,
        body.namespace,
        body.plan,
        body.target_region,
        switchover=body.wanted == "switchover",
        force=body.force,
    )
    return FailoverAccepted(
        namespace=body.namespace,
        plan=body.plan,
        target_region=body.target_region,
        action=written["action"],
        type=written["action"],
        force=written.get("force", False),
        request_id=written["requestId"],
    )


async def dr_status(request: web.Request, _: Any) -> StatusList:
    namespace = _namespace(request)
    plan = request.query.get("plan")
    if plan is not None:
        if not re.fullmatch(DNS_SUBDOMAIN_PATTERN, plan):
            raise bad_request(
                "invalid query parameter", [{"field": "plan", "message": "not a resource name"}]
            )
        reports = [await _call(request, control.plan_report, namespace, plan)]
    else:
        reports = await _call(request, control.plans_report, namespace)
    return StatusList.model_validate({"plans": reports})


async def dr_health(request: web.Request, _: Any) -> Health:
    namespace = _namespace(request)
    reports = await _call(request, control.plans_report, namespace)
    plans = []
    for report in reports:
        regions = [
            RegionHealth(
                name=r["name"],
                role=r["role"],
                healthy=bool(r["healthy"]),
                fenced=r["fenced"],
                lag_bytes=r["lagBytes"],
                lag_seconds=r["lagSeconds"],
            )
            for r in report["regions"]
        ]
        plans.append(
            PlanHealth(
                namespace=report["namespace"] or namespace,
                name=report["name"],
                ready=report["ready"] == "True",
                phase=report["phase"],
                primary_region=report["primaryRegion"],
                healthy_regions=sum(1 for r in regions if r.healthy),
                last_check_time=report["lastCheckTime"],
                regions=regions,
            )
        )
    return Health(healthy=all(p.ready for p in plans), plans=plans)


_QUERY = {"namespace": "Namespace of the plans (default: default)."}
_NAMESPACE = {"type": "string", "pattern": DNS_LABEL_PATTERN, "maxLength": 63}
_PLAN = {"type": "string", "pattern": DNS_SUBDOMAIN_PATTERN, "maxLength": 253}

ROUTES: list[Route] = [
    Route(
        "POST",
        "/api/v1/dr/failover",
        Scope.ADMIN,
        failover,
        "Request a failover or planned switchover of a DR plan to one of its regions",
        TAG,
        body=FailoverBody,
        response=FailoverAccepted,
        status=202,
        errors=(404, 409, 422, 503),
    ),
    Route(
        "GET",
        "/api/v1/dr/status",
        Scope.READ,
        dr_status,
        "DR plans with their regions' roles, WAL positions, lag and latest failover",
        TAG,
        response=StatusList,
        errors=(400, 404, 503),
        query={**_QUERY, "plan": "One plan (default: every plan of the namespace)."},
        schemas={"namespace": _NAMESPACE, "plan": _PLAN},
    ),
    Route(
        "GET",
        "/api/v1/dr/health",
        Scope.READ,
        dr_health,
        "Whether every DR plan is in force, with each region's health and lag",
        TAG,
        response=Health,
        errors=(400, 503),
        query=_QUERY,
        schemas={"namespace": _NAMESPACE},
    ),
]


async def setup(app: web.Application, config: ApiConfig) -> None:
    """The Kubernetes client is loaded on first request, from KUBECONFIG or the service account."""
    if KUBE not in app:
        app[KUBE] = _Kube()

    async def close(app: web.Application) -> None:
        with contextlib.suppress(Exception):
            await app[KUBE].close()

    app.on_cleanup.append(close)
