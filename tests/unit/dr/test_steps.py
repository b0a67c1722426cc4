"""The pure pieces of a check's steps and of manual control, table-driven.

The Lease and the Service as JSON (kubeio), the cost of a promotion and what it records (promote),
``status.lastRequest`` (status), a pending request and the HTTP body (control, api), and the DRRegion's
own reconciler on a stand-in client.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from pydantic import ValidationError

from fortress.api import BY_KIND
from fortress.api.drregion import DRRegionSpec
from fortress.core.loop import Loops, ObjectLoop, ObjectRef, StepContext
from fortress.core.services import Services
from fortress.dr import kubeio
from fortress.dr.api import FailoverBody
from fortress.dr.control import pending_request
from fortress.dr.decision import Action, Decision, RegionState, RegionVerdict, with_verdict
from fortress.dr.lease import LeaseRecord
from fortress.dr.observe import Region
from fortress.dr.promote import lag_samples, measure, region_rows
from fortress.dr.reconciler import DRRegionReconciler, action_timeout, wake_regions
from fortress.dr.status import request_record
from fortress.dr.topology import Probe, build

NOW = dt.datetime(2026, 1, 1, 12, 0, 0, tzinfo=dt.UTC)
REGION_SPEC = {
    "planRef": "orders",
    "provider": "aws",
    "location": "us-east-1",
    "priority": 0,
    "connection": {"secretKeyRef": {"name": "s", "key": "k"}},
    "endpoint": {"host": "10.0.0.1", "port": 6000},
}


def _verdict(**kw: Any) -> RegionVerdict:
    base: dict[str, Any] = {
        "healthy": True,
        "failures": 0,
        "failing_since": None,
        "fenced": False,
        "needs_reclone": False,
        "ineligible": None,
    }
    return RegionVerdict(**(base | kw))


# --------------------------------------------------------------------------- the Lease and the Service


def test_a_lease_round_trips_through_its_json() -> None:
    record = LeaseRecord("me", 15.5, NOW, NOW + dt.timedelta(seconds=3), 2, "41")
    body = kubeio.lease_body("ns", "orders-failover", record)
    assert body["spec"]["leaseDurationSeconds"] == 16  # whole seconds, rounded up
    assert body["spec"]["renewTime"] == "2026-01-01T12:00:03.000000Z"  # MicroTime
    assert body["metadata"]["resourceVersion"] == "41"  # the write is refused if it changed since
    back = kubeio.lease_record(body)
    assert (back.holder, back.acquired_at, back.renewed_at, back.transitions) == (
        "me",
        NOW,
        record.renewed_at,
        2,
    )
    assert back.resource_version == "41" and back.duration_seconds == 16


def test_a_lease_without_times_or_version() -> None:
    body = kubeio.lease_body("ns", "l", LeaseRecord(None, 0.2))
    assert body["spec"]["leaseDurationSeconds"] == 1 and body["spec"]["renewTime"] is None
    assert "resourceVersion" not in body["metadata"]
    assert kubeio.lease_record({"metadata": {}, "spec": {}}) == LeaseRecord(None, 0.0)


@pytest.mark.parametrize(
    ("endpoints", "mode", "target"),
    [
        (
            {"subsets": [{"addresses": [{"ip": "10.0.0.2"}], "ports": [{"port": 6001}]}]},
            "Endpoints",
            "10.0.0.2:6001",
        ),
        ({"subsets": [{"addresses": [{"ip": "a"}, {"ip": "b"}], "ports": [{"port": 1}]}]}, "Endpoints", None),
        ({"subsets": [{"addresses": [{"ip": "10.0.0.2"}], "ports": []}]}, "Endpoints", None),
        ({}, "Endpoints", None),
        (None, "Endpoints", None),
    ],
)
def test_where_the_endpoints_point(endpoints: dict[str, Any] | None, mode: str, target: str | None) -> None:
    assert kubeio.endpoints_target(endpoints, mode) == target


def test_service_endpoint_per_mode_and_regions_of_a_plan() -> None:
    assert kubeio.service_endpoint("Endpoints", "10.0.0.1", 5432) == "10.0.0.1:5432"
    assert kubeio.service_endpoint("ExternalName", "db.example.com", 5432) == "db.example.com"
    items = [
        {"metadata": {"name": "b"}, "spec": {"planRef": "orders"}},
        {"metadata": {"name": "c"}, "spec": {"planRef": "other"}},
        {"metadata": {"name": "a"}, "spec": {"planRef": "orders"}},
        {"metadata": {"name": "d"}},
    ]
    assert [i["metadata"]["name"] for i in kubeio.regions_of(items, "orders")] == ["a", "b"]


# --------------------------------------------------------------------------- a promotion


@pytest.mark.parametrize(
    ("reference", "switch", "before", "lag", "rpo_bytes", "rpo_seconds"),
    [
        (1000, 1000, None, 2.5, 0, 0.0),  # the new timeline forked at the old primary's position
        (1000, 900, 950, 2.5, 100, 2.5),  # the fork point wins over the position before promotion
        (1000, None, 950, 1.0, 50, 1.0),  # no history file: the position before promotion
        (1000, None, None, 1.0, None, 1.0),  # nothing known of the target
        (None, 900, 900, None, None, None),  # nothing known of the old primary
        (900, 1000, None, 3.0, 0, 0.0),  # the target had more than was ever seen of the primary
    ],
)
def test_measure(
    reference: int | None,
    switch: int | None,
    before: int | None,
    lag: float | None,
    rpo_bytes: int | None,
    rpo_seconds: float | None,
) -> None:
    cost = measure(
        reference=reference,
        switch_lsn=switch,
        before_position=before,
        target_lag_seconds=lag,
        writable_at=NOW + dt.timedelta(seconds=4.25),
        detected=NOW,
    )
    assert (cost.rpo_bytes, cost.rpo_seconds, cost.reference) == (rpo_bytes, rpo_seconds, reference)
    assert cost.rto == 4.25


def test_measure_never_reports_a_negative_rto() -> None:
    cost = measure(
        reference=None, switch_lsn=None, before_position=None, target_lag_seconds=None,
        writable_at=NOW, detected=NOW + dt.timedelta(seconds=1),
    )  # fmt: skip
    assert cost.rto == 0.0


def _region(name: str, priority: int) -> Region:
    spec = DRRegionSpec.model_validate({**REGION_SPEC, "priority": priority})
    return Region(name, f"uid-{name}", 1, spec, RegionState(name, priority), {})


def test_region_rows_and_lag_samples_of_a_failover() -> None:
    regions = {"a": _region("a", 0), "b": _region("b", 10), "c": _region("c", 20)}
    verdicts = {"a": _verdict(fenced=True, healthy=False), "b": _verdict(healthy=False), "c": _verdict()}
    decision = Decision(Action.FAILOVER, "r", "a", verdicts, target="b", from_region="a")
    rows = {row.name: row for row in region_rows(regions, decision)}
    assert [rows[n].role for n in "abc"] == ["Fenced", "Primary", "Standby"]
    assert rows["b"].healthy is True and rows["a"].fenced_reason == "fenced by failover"
    assert rows["c"].endpoint_host == "10.0.0.1" and rows["c"].priority == 20
    probes = {
        "a": Probe.unreachable(NOW, "refused"),
        "b": Probe(NOW, True, in_recovery=True, receive_lsn=900, replay_lsn=900),
        "c": Probe(NOW, True, in_recovery=True, receive_lsn=800, replay_lsn=800),
    }
    samples = lag_samples(build(probes, "a", 1000), "a")
    assert [(s.source, s.target, s.lag_bytes, s.replay_lsn) for s in samples] == [
        ("a", "b", 100, "0/384"),
        ("a", "c", 200, "0/320"),
    ]
    assert lag_samples(build(probes, "a", 1000), None) == []


def test_with_verdict_changes_one_region_only() -> None:
    verdicts = {"a": _verdict(), "b": _verdict()}
    changed = with_verdict(verdicts, "a", fenced=True, healthy=False)
    assert changed["a"].fenced and not changed["a"].healthy and changed["b"] == verdicts["b"]
    assert not verdicts["a"].fenced  # the input is left alone


# --------------------------------------------------------------------------- manual requests


@pytest.mark.parametrize(
    ("decision", "action", "before", "expected"),
    [
        (Decision(Action.FAILOVER, "manual failover to b (request r1)", "a", target="b", request_id="r1"),
         "failover", None, ("Accepted", "failover", "manual failover to b (request r1)")),
        (Decision(Action.SWITCHOVER, "manual switchover", "a", target="b", request_id="r1"),
         None, None, ("Accepted", "switchover", "manual switchover")),
        (Decision(Action.HEALTHY, "ok", "a", request_id="r2", request_note="failover to z rejected: no"),
         "failover", "r1", ("Rejected", "failover", "failover to z rejected: no")),
        (Decision(Action.FAILOVER, "resumed", "a", target="b", request_id="r1", resume=True),
         "failover", "r1", None),  # recorded when it was first acted on
        (Decision(Action.HEALTHY, "ok", "a"), "failover", "r1", None),
    ],
)  # fmt: skip
def test_last_request_records_how_a_request_was_handled(
    decision: Decision, action: str | None, before: str | None, expected: tuple[str, str, str] | None
) -> None:
    record = request_record(decision, action, before, NOW)
    if expected is None:
        assert record is None
        return
    assert record is not None
    assert (record["outcome"], record["action"], record["message"]) == expected
    assert record["requestId"] == decision.request_id and record["at"] == "2026-01-01T12:00:00Z"


@pytest.mark.parametrize(
    ("spec", "status", "pending"),
    [
        ({}, {}, None),
        ({"request": {"action": "failover", "targetRegion": "b", "requestId": "r1"}}, {}, "r1"),
        ({"request": {"type": "failover", "targetRegion": "b", "requestId": "r1"}}, {}, "r1"),  # older name
        ({"request": {"action": "failover", "targetRegion": "b", "requestId": "r1"}},
         {"lastRequest": {"requestId": "r1", "action": "failover", "outcome": "Accepted", "at": "t"}}, None),
        ({"request": {"action": "failover", "targetRegion": "b", "requestId": "r1"}},
         {"handledRequestId": "r1"}, None),  # what older releases recorded
        ({"request": {"action": "promote", "targetRegion": "b", "requestId": "r1"}}, {}, None),
    ],
)  # fmt: skip
def test_a_pending_request(spec: dict[str, Any], status: dict[str, Any], pending: str | None) -> None:
    found = pending_request({"spec": spec, "status": status})
    assert (found.request_id if found is not None else None) == pending


@pytest.mark.parametrize(
    ("body", "wanted"),
    [
        ({}, "failover"),
        ({"action": "switchover"}, "switchover"),
        ({"type": "switchover"}, "switchover"),  # the older name, for one more release
        ({"action": "switchover", "type": "switchover"}, "switchover"),
    ],
)
def test_the_http_body_names_its_action(body: dict[str, Any], wanted: str) -> None:
    parsed = FailoverBody.model_validate({"plan": "orders", "targetRegion": "b", **body})
    assert parsed.wanted == wanted


def test_the_http_body_refuses_two_different_actions() -> None:
    with pytest.raises(ValidationError, match="differ"):
        FailoverBody.model_validate(
            {"plan": "p", "targetRegion": "b", "action": "failover", "type": "switchover"}
        )


@pytest.mark.parametrize(("interval", "timeout"), [(0.2, 0.5), (1.0, 0.5), (2.0, 1.0), (30.0, 3.0)])
def test_action_timeout(interval: float, timeout: float) -> None:
    assert action_timeout(interval) == timeout


# --------------------------------------------------------------------------- the DRRegion's reconciler


class StandInKube:
    """Answers GETs of the plans it knows."""

    def __init__(self, plans: set[str]) -> None:
        self.plans = plans

    async def get(self, resource: Any, namespace: str, name: str) -> dict[str, Any] | None:
        return {"metadata": {"name": name}} if name in self.plans else None


class Quiet:
    """A plan's reconciler that does nothing (its loop is only woken here)."""

    async def step(self, ctx: Any) -> None:
        return None

    async def close(self, deleted: bool) -> None:
        return None


def _services(plans: set[str]) -> Services:
    return Services(cluster=None, kube=StandInKube(plans), loops=Loops(), identity="me")  # type: ignore[arg-type]


async def _step(
    reconciler: DRRegionReconciler, services: Services, status: dict[str, Any] | None = None
) -> Any:
    ref = ObjectRef(BY_KIND["DRRegion"], "ns", "orders-a")
    loop = ObjectLoop(ref, reconciler, services)
    ctx = StepContext(
        ref=ref,
        body={},
        spec=DRRegionSpec.model_validate(REGION_SPEC),
        status=status or {},
        generation=1,
        uid="u",
        changed=True,
        logger=loop.logger,
        services=services,
        loop=loop,
    )
    return await reconciler.step(ctx)


async def test_a_region_whose_plan_is_missing_says_so_with_a_warning() -> None:
    services = _services(set())
    ref = ObjectRef(BY_KIND["DRRegion"], "ns", "orders-a")
    outcome = await _step(DRRegionReconciler(services, ref), services)
    assert (outcome.ready, outcome.reason, outcome.phase) == (False, "PlanNotFound", "Pending")
    assert "spec.planRef: DRPlan orders not found" in outcome.message
    assert [(e.type, e.reason) for e in outcome.events] == [("Warning", "PlanNotFound")]


async def test_a_region_whose_plan_exists_leaves_its_status_to_the_plan_and_wakes_it() -> None:
    services = _services({"orders"})
    plan_ref = ObjectRef(BY_KIND["DRPlan"], "ns", "orders")
    plan_loop = ObjectLoop(plan_ref, Quiet(), services)
    services.loops.add(plan_loop)
    ref = ObjectRef(BY_KIND["DRRegion"], "ns", "orders-a")
    reconciler = DRRegionReconciler(services, ref)
    assert await _step(reconciler, services, {"observedGeneration": 1}) is None  # checked as it is
    assert not plan_loop._wake.is_set()
    assert await _step(reconciler, services) is None  # new (or changed): the plan checks it now
    assert plan_loop._wake.is_set()
    assert reconciler.plan_ref == "orders"


async def test_a_deleted_plan_wakes_its_regions_only() -> None:
    services = _services(set())
    mine = DRRegionReconciler(services, ObjectRef(BY_KIND["DRRegion"], "ns", "a"))
    mine.plan_ref = "orders"
    other = DRRegionReconciler(services, ObjectRef(BY_KIND["DRRegion"], "ns", "b"))
    other.plan_ref = "other"
    loops = {
        name: ObjectLoop(ObjectRef(BY_KIND["DRRegion"], ns, name), reconciler, services)
        for name, ns, reconciler in (("a", "ns", mine), ("b", "ns", other), ("c", "elsewhere", mine))
    }
    for loop in loops.values():
        services.loops.add(loop)
    wake_regions(services.loops, "ns", "orders")
    assert [name for name, loop in loops.items() if loop._wake.is_set()] == ["a"]
