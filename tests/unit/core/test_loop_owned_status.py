"""A loop that owns another object's status (a DRPlan its DRRegions) and that object's own loop.

Both write through the same writer; when the owner writes, the owned object's loop takes that as the
status now, so its next own write (e.g. the plan is gone) is computed against what is really there.
"""

from __future__ import annotations

import copy
from typing import Any

from fortress.adapters.kube import Resource
from fortress.api import BY_KIND
from fortress.core import merge
from fortress.core.conditions import READY, find
from fortress.core.loop import Loops, ObjectLoop, ObjectRef, StepContext
from fortress.core.outcome import Outcome
from fortress.core.services import Services

REGION = BY_KIND["DRRegion"]
SPEC = {
    "planRef": "orders",
    "provider": "aws",
    "location": "us-east-1",
    "connection": {"secretKeyRef": {"name": "s", "key": "k"}},
    "endpoint": {"host": "10.0.0.1"},
}


class FakeKube:
    """Status patches of objects kept in memory."""

    def __init__(self) -> None:
        self.objects: dict[tuple[str, str, str], dict[str, Any]] = {}

    async def patch(
        self, resource: Resource, namespace: str, name: str, patch: Any, subresource: str | None = None
    ) -> dict[str, Any]:
        found = self.objects[(resource.plural, namespace, name)]
        found["status"] = merge.apply(found.get("status"), patch["status"])
        return copy.deepcopy(found)

    async def post_event(self, *_: Any, **__: Any) -> None:
        return None


class Missing:
    """The owned object's own reconciler: it reports a problem of its own."""

    def __init__(self, _services: Services, _ref: ObjectRef) -> None:
        return None

    async def step(self, ctx: StepContext) -> Outcome:
        return Outcome(ready=False, reason="PlanNotFound", message="no plan", phase="Pending")

    async def close(self, deleted: bool) -> None:
        return None


async def test_the_owned_loop_writes_against_what_the_owner_wrote() -> None:
    kube = FakeKube()
    body: dict[str, Any] = {"metadata": {"name": "r", "uid": "u1", "generation": 1}, "spec": SPEC}
    kube.objects[(REGION.plural, "ns", "r")] = copy.deepcopy(body)
    services = Services(cluster=None, kube=kube, loops=Loops(), identity="me")  # type: ignore[arg-type]
    region = ObjectRef(REGION, "ns", "r")
    own = ObjectLoop(region, Missing(services, region), services)
    owner = ObjectLoop(ObjectRef(BY_KIND["DRPlan"], "ns", "orders"), Missing(services, region), services)
    services.loops.add(own)
    services.loops.add(owner)

    await own.step(body)
    assert find(kube.objects[(REGION.plural, "ns", "r")]["status"]["conditions"], READY)["reason"] == (  # type: ignore[index]
        "PlanNotFound"
    )
    current = kube.objects[(REGION.plural, "ns", "r")]["status"]
    ready = {"type": READY, "status": "True", "reason": "Standby", "message": "streaming"}
    await owner.write_other(region, current, {"phase": "Standby", "conditions": [ready]})
    assert kube.objects[(REGION.plural, "ns", "r")]["status"]["phase"] == "Standby"

    await own.step(body)  # the same outcome as before: written again, since the owner changed it
    status = kube.objects[(REGION.plural, "ns", "r")]["status"]
    assert status["phase"] == "Pending"
    assert find(status["conditions"], READY)["reason"] == "PlanNotFound"  # type: ignore[index]
