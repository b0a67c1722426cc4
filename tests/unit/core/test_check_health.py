"""A failing check or background task never leaves its object looking healthy.

The loop writes ``Ready=Unknown, reason=CheckFailed`` (the error described, no secret) while a check
of the reconciler fails, counts it in ``fortress_operator_check_errors_total{kind,check,error}``, posts
a Warning Event once, and clears it when the check passes. Every step stamps
``fortress_operator_last_step_timestamp_seconds``. The DR check and ShardCluster's 2PC recovery use it.
"""

from __future__ import annotations

import asyncio
import copy
from types import SimpleNamespace
from typing import Any

import pytest

from fortress import metrics
from fortress.api import BY_KIND
from fortress.core.conditions import READY, find
from fortress.core.health import CHECK_FAILED, Checks
from fortress.core.loop import Loops, ObjectLoop, ObjectRef, StepContext
from fortress.core.outcome import Outcome
from fortress.core.services import Services
from fortress.dr.reconciler import DRPlanReconciler
from fortress.sharding import reconciler as sharding
from tests.unit.core.test_loop_owned_status import FakeKube

SYNTH = BY_KIND["SyntheticDataset"]
SYNTH_SPEC = {"kind": "users", "count": 10, "target": {"type": "configMap"}}
DSN = "postgresql://app:S3CRET@db:5432/app"


class EventKube(FakeKube):
    def __init__(self) -> None:
        super().__init__()
        self.events: list[tuple[str, str, str]] = []

    async def post_event(self, _involved: Any, type_: str, reason: str, message: str, **_: Any) -> None:
        self.events.append((type_, reason, message))


def _setup(info: Any, spec: dict[str, Any], kube: FakeKube | None = None) -> tuple[Any, Services, dict]:
    kube = kube or EventKube()
    body: dict[str, Any] = {
        "metadata": {"name": "x", "namespace": "ns", "uid": "u", "generation": 1},
        "spec": spec,
    }
    kube.objects[(info.plural, "ns", "x")] = copy.deepcopy(body)
    services = Services(cluster=None, kube=kube, loops=Loops(), identity="me")  # type: ignore[arg-type]
    return kube, services, body


def _ready(kube: FakeKube, info: Any) -> dict[str, Any]:
    found = find(kube.objects[(info.plural, "ns", "x")]["status"]["conditions"], READY)
    assert found is not None
    return dict(found)


def _check_errors(kind: str, check: str, error: str) -> float:
    value = metrics.REGISTRY.get_sample_value(
        "fortress_operator_check_errors_total", {"kind": kind, "check": check, "error": error}
    )
    return value or 0.0


class WithBackground:
    """A reconciler whose background task fails until told otherwise."""

    fail = True

    def __init__(self, _services: Services, _ref: ObjectRef) -> None:
        self.task: asyncio.Task[None] | None = None

    async def step(self, ctx: StepContext) -> Outcome:
        if self.task is None:

            async def work() -> None:
                if WithBackground.fail:
                    try:
                        raise ConnectionError(f"{DSN} refused")
                    except ConnectionError as error:
                        ctx.checks.failed("projector", error)
                else:
                    ctx.checks.passed("projector")

            self.task = asyncio.create_task(work())
        return Outcome(True, "AllGood", "all good", "Ready")

    async def close(self, deleted: bool) -> None:
        return None


async def test_a_failing_background_task_makes_ready_unknown_until_it_passes() -> None:
    kube, services, body = _setup(SYNTH, SYNTH_SPEC)
    ref = ObjectRef(SYNTH, "ns", "x")
    reconciler = WithBackground(services, ref)
    loop = ObjectLoop(ref, reconciler, services)
    before = _check_errors("SyntheticDataset", "projector", "ConnectionError")
    WithBackground.fail = True

    await loop.step(body)
    assert _ready(kube, SYNTH)["status"] == "True"  # the task has not run yet
    assert reconciler.task is not None
    await reconciler.task
    assert loop._wake.is_set()  # the failure wakes the loop, which shows it
    await loop.step(body)
    ready = _ready(kube, SYNTH)
    assert (ready["status"], ready["reason"]) == ("Unknown", CHECK_FAILED)
    assert "projector failed: ConnectionError" in ready["message"] and "all good" in ready["message"]
    assert "S3CRET" not in str(kube.objects) and "S3CRET" not in str(kube.events)  # type: ignore[attr-defined]
    assert _check_errors("SyntheticDataset", "projector", "ConnectionError") == before + 1
    warnings = [e for e in kube.events if e[1] == CHECK_FAILED]  # type: ignore[attr-defined]
    assert len(warnings) == 1 and warnings[0][0] == "Warning"
    await loop.step(body)  # the same failure: no second Event
    assert len([e for e in kube.events if e[1] == CHECK_FAILED]) == 1  # type: ignore[attr-defined]

    WithBackground.fail = False
    reconciler.task = None
    await loop.step(body)  # starts the task, which passes
    assert reconciler.task is not None
    await reconciler.task
    await loop.step(body)
    assert _ready(kube, SYNTH)["status"] == "True"


async def test_every_step_stamps_the_last_step_gauge_and_deletion_drops_it() -> None:
    _, services, body = _setup(SYNTH, SYNTH_SPEC)
    ref = ObjectRef(SYNTH, "ns", "x")
    WithBackground.fail = False
    loop = ObjectLoop(ref, WithBackground(services, ref), services)
    labels = {"kind": "SyntheticDataset", "namespace": "ns", "name": "x"}
    await loop.step(body)
    first = metrics.REGISTRY.get_sample_value("fortress_operator_last_step_timestamp_seconds", labels)
    assert first is not None and first > 1e9
    await loop.close(deleted=True)
    assert metrics.REGISTRY.get_sample_value("fortress_operator_last_step_timestamp_seconds", labels) is None


def test_a_not_ready_reason_is_kept_and_the_failure_added_once() -> None:
    checks = Checks("ShardCluster")
    try:
        raise TimeoutError("recovery timed out")
    except TimeoutError as error:
        text = checks.failed("recovery", error)
    kept = checks.apply(Outcome(False, "ShardsUnavailable", "shard b down", "Degraded"))
    assert (kept.ready, kept.reason) == (False, "ShardsUnavailable")
    assert kept.message == f"shard b down; recovery failed: {text}"
    already = checks.apply(Outcome(False, "Generating", f"retrying after: {text}", "Generating"))
    assert already.message == f"retrying after: {text}"
    healthy = checks.apply(Outcome(True, "Ok", "fine", "Ready"))
    assert (healthy.ready, healthy.reason) == (None, CHECK_FAILED)
    checks.passed("recovery")
    assert checks.apply(Outcome(True, "Ok", "fine", "Ready")).ready is True


class BrokenApiKube(EventKube):
    """The Kubernetes API fails every read of one object (e.g. the plan's Lease) with a DSN in its
    text; lists (the plan's regions) still answer."""

    async def get(self, *_: Any, **__: Any) -> Any:
        raise ConnectionError(f"lost connection while reading; last DSN {DSN}")

    async def list(self, resource: Any, namespace: str | None, **_: Any) -> list[dict[str, Any]]:
        return [
            copy.deepcopy(obj)
            for (plural, ns, _name), obj in self.objects.items()
            if plural == resource.plural and ns == namespace
        ]


DRPLAN = BY_KIND["DRPlan"]
DRPLAN_SPEC = {"service": {"name": "orders-db"}, "checkInterval": "5s"}


async def test_a_dr_check_that_fails_is_check_failed_not_the_last_status() -> None:
    kube, services, body = _setup(DRPLAN, DRPLAN_SPEC, BrokenApiKube())
    status = {
        "phase": "Protected",
        "conditions": [{"type": READY, "status": "True", "reason": "Protected", "message": "ok"}],
    }
    kube.objects[(DRPLAN.plural, "ns", "x")]["status"] = status
    body["status"] = status
    region = BY_KIND["DRRegion"]
    kube.objects[(region.plural, "ns", "east")] = {
        "metadata": {"name": "east", "namespace": "ns", "generation": 1},
        "spec": {"planRef": "x"},
        "status": {**status, "phase": "Standby"},
    }
    ref = ObjectRef(DRPLAN, "ns", "x")
    loop = ObjectLoop(ref, DRPlanReconciler(services, ref), services)
    before = _check_errors("DRPlan", "check", "ConnectionError")
    delay = await loop.step(body)
    ready = _ready(kube, DRPLAN)
    assert (ready["status"], ready["reason"]) == ("Unknown", CHECK_FAILED)
    assert "check failed: ConnectionError" in ready["message"] and "S3CRET" not in ready["message"]
    assert _check_errors("DRPlan", "check", "ConnectionError") == before + 1
    assert 0 < delay <= 5
    # its regions no longer look as the last check left them either
    east = kube.objects[(region.plural, "ns", "east")]["status"]
    east_ready = find(east["conditions"], READY)
    assert east_ready is not None and (east_ready["status"], east_ready["reason"]) == (
        "Unknown",
        CHECK_FAILED,
    )
    assert "DRPlan x failed" in east_ready["message"] and "S3CRET" not in str(east)


async def test_a_failed_2pc_recovery_holds_ready_back(monkeypatch: pytest.MonkeyPatch) -> None:
    async def failing(*_: Any, **__: Any) -> Any:
        raise OSError("connection refused")

    monkeypatch.setattr(sharding, "recover", failing)
    shc = BY_KIND["ShardCluster"]
    _, services, _ = _setup(shc, {})
    ref = ObjectRef(shc, "ns", "x")
    reconciler = sharding.ShardClusterReconciler(services, ref)
    reconciler.router = SimpleNamespace(endpoints={})  # type: ignore[assignment]  # a router, no shards
    loop = ObjectLoop(ref, reconciler, services)
    ctx = StepContext(
        ref=ref,
        body={},
        spec=None,  # type: ignore[arg-type]
        status={},
        generation=1,
        uid="u",
        changed=False,
        logger=loop.logger,
        services=services,
        loop=loop,
    )
    await reconciler._recover(1.0, ctx)
    assert "recovery" in loop.checks.failing and "OSError" in loop.checks.failing["recovery"]
    outcome = loop.checks.apply(Outcome(True, "Ready", "3 shards", "Ready"))
    assert (outcome.ready, outcome.reason) == (None, CHECK_FAILED)


class FlakyKube(EventKube):
    """The first status write fails (the API server had a bad moment)."""

    def __init__(self) -> None:
        super().__init__()
        self.failures = 1

    async def patch(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        if self.failures:
            self.failures -= 1
            raise ConnectionResetError("connection reset by peer")
        return await super().patch(*args, **kwargs)


class Stopped:
    """A Kopf DaemonStopped stand-in: set after ``steps`` waits."""

    def __init__(self) -> None:
        self.flag = asyncio.Event()

    def __bool__(self) -> bool:
        return self.flag.is_set()

    async def wait(self) -> None:
        await self.flag.wait()


async def test_a_failed_status_write_does_not_end_the_loop() -> None:
    kube, services, body = _setup(SYNTH, SYNTH_SPEC, FlakyKube())
    ref = ObjectRef(SYNTH, "ns", "x")
    WithBackground.fail = False
    loop = ObjectLoop(ref, WithBackground(services, ref), services)
    stopped = Stopped()
    running = asyncio.create_task(loop.run(body, stopped))
    for _ in range(50):  # the retry follows the first backoff (1 s)
        await asyncio.sleep(0.05)
        if "status" in kube.objects[(SYNTH.plural, "ns", "x")]:
            break
    else:
        loop.wake()
        await asyncio.sleep(0.2)
    stopped.flag.set()
    await asyncio.wait_for(running, 5)
    assert _ready(kube, SYNTH)["status"] == "True"
