"""One step's pieces outside the planner: the state in status, the outcome, the writes and their order,
the Deployment cache, and the history recorder's fingerprint and problems (no Kubernetes API here)."""

from __future__ import annotations

import dataclasses
import logging
from typing import Any

import pytest
from pydantic import ValidationError

from fortress.adapters.kube import CONFIGMAPS, DEPLOYMENTS, SERVICES, Resource
from fortress.api.canaryrollout import CanaryRolloutSpec, CanaryRolloutStatus, FlagState, MetricResult
from fortress.core import merge
from fortress.core.outcome import ConditionUpdate, EventNote, Outcome
from fortress.rollouts import act, history, observe, status
from fortress.rollouts.model import DesiredDeployment, Plan, Traffic
from tests.unit.rollouts.harness import REV, template

OWNER = {"apiVersion": "fortress.io/v1alpha1", "kind": "CanaryRollout", "name": "web", "uid": "u1"}


def spec(**overrides: Any) -> CanaryRolloutSpec:
    return CanaryRolloutSpec.model_validate(
        {"service": "web", "replicas": 4, "template": template(2), **overrides}
    )


def plan(
    deployments: tuple[DesiredDeployment, ...] = (),
    traffic: Traffic | None = None,
    **state: Any,
) -> Plan:
    return Plan(
        status=CanaryRolloutStatus.model_validate({"phase": "Progressing", "stableColour": "blue", **state}),
        deployments=deployments,
        traffic=traffic,
        ready=True,
        reason="StableServing",
        conditions=(ConditionUpdate("Available", True, "ServingPodsAvailable"),),
        events=(EventNote("Normal", "StageReached", "stage 1"),),
        requeue_after=5.0,
    )


def release(s: CanaryRolloutSpec | None = None) -> act.Release:
    s = s or spec()
    return act.Release("shop", "web", OWNER, s, s.template, REV[2])


def deployment(colour: str, revision: str, replicas: int, version: str = "1") -> dict[str, Any]:
    return {
        "metadata": {
            "name": f"web-{colour}",
            "resourceVersion": version,
            "labels": {"fortress.io/revision": revision},
        },
        "spec": {"replicas": replicas, "template": {"metadata": {"labels": {"old": "x"}}}},
    }


# ---- the state in status and the outcome -------------------------------------------------------------


def test_state_fields_remove_unset_fields_and_write_no_nested_nulls() -> None:
    state = CanaryRolloutStatus(
        phase="Progressing",
        stable_revision="a",
        metrics=[MetricResult(name="error-rate", result="Inconclusive", detail="no data")],
    )
    fields = status.state_fields(state)
    assert fields["stableRevision"] == "a" and fields["canaryRevision"] is None
    assert fields["metrics"] == [{"name": "error-rate", "result": "Inconclusive", "detail": "no data"}]
    assert fields["stateVersion"] is None, "the field older releases wrote is removed"
    assert not {"phase", "message", "conditions", "observedGeneration"} & set(fields)
    # the API server drops nulls, so what it stores is the fields without them: a second write is empty
    stored = {k: v for k, v in fields.items() if v is not None}
    assert merge.changes(stored, status.state_fields(state)) == {}
    assert merge.changes({**stored, "stateVersion": 7}, fields) == {"stateVersion": None}


def test_parse_state_ignores_conditions_and_unknown_keys() -> None:
    raw = {
        "phase": "Paused",
        "currentStage": 1,
        "conditions": [{"type": "Ready", "status": "True", "bogus": 1}],
        "stateVersion": 4,
    }
    state = status.parse_state(raw)
    assert (state.phase, state.current_stage, state.conditions) == ("Paused", 1, [])
    with pytest.raises(ValidationError):
        status.parse_state({"currentStage": "three"})


def test_outcome_of_a_plan_and_of_a_failed_write() -> None:
    done = status.outcome(plan(message="stage 1/3"), [], [EventNote("Normal", "WorkloadTakenOver", "x")])
    assert (done.ready, done.reason, done.message, done.phase) == (
        True,
        "StableServing",
        "stage 1/3",
        "Progressing",
    )
    assert [e.reason for e in done.events] == ["StageReached", "WorkloadTakenOver"]
    assert done.requeue_after == 5.0 and done.fields["stableColour"] == "blue"
    failed = status.outcome(plan(message="stage 1/3"), ["traffic: HTTP 403: forbidden", "ConfigMap x: y"])
    assert (failed.ready, failed.reason) == (False, "ApplyFailed")
    assert failed.message == "stage 1/3; could not apply: traffic: HTTP 403: forbidden; ConfigMap x: y"
    assert failed.events[-1] == EventNote(
        "Warning", "ApplyFailed", "traffic: HTTP 403: forbidden; ConfigMap x: y"
    )
    assert failed.requeue_after == status.RETRY_SECONDS
    idle = status.outcome(dataclasses.replace(plan(), requeue_after=None), [])
    assert idle.requeue_after == status.IDLE_SECONDS


def test_an_unreadable_status_changes_nothing_and_says_why() -> None:
    with pytest.raises(ValidationError) as caught:
        status.parse_state({"currentStage": "three"})
    found = status.unreadable(caught.value)
    assert (found.ready, found.reason, found.phase, found.fields) == (
        False,
        "StatusUnreadable",
        "Degraded",
        {},
    )
    assert found.message.startswith("status unreadable, nothing changed: ")


# ---- the writes of the colours' Deployments (pure) ---------------------------------------------------


def _writes(p: Plan, objects: dict[str, Any]) -> list[tuple[str, str, bool, dict[str, Any]]]:
    return [(w.colour, w.when, w.patch, w.body) for w in act.deployment_writes(p, release(), objects)]


def test_a_missing_colour_is_created_early_only_with_pods() -> None:
    wanted = (DesiredDeployment("green", REV[2], 2), DesiredDeployment("blue", REV[2], 0))
    (colour, when, patch, body), *rest = _writes(plan(wanted), {"blue": None, "green": None})
    assert (colour, when, patch, rest) == ("green", act.EARLY, False, [])
    assert body["metadata"]["ownerReferences"] == [OWNER] and body["spec"]["replicas"] == 2


@pytest.mark.parametrize(
    ("current", "wanted", "expected"),
    [
        ((REV[2], 1), (REV[2], 3), (act.EARLY, {"spec": {"replicas": 3}})),  # scale-up before traffic
        ((REV[2], 3), (REV[2], 1), (act.LATE, {"spec": {"replicas": 1}})),  # scale-down after it
        ((REV[2], 3), (REV[2], 3), None),  # as wanted: no write
        ((REV[1], 3), (None, 3), None),  # keep whatever template it has
        ((REV[1], 3), (REV[3], 3), None),  # a revision that is not the template's cannot be written
    ],
)
def test_a_colour_is_scaled_in_the_safe_order(
    current: tuple[str, int], wanted: tuple[str | None, int], expected: tuple[str, dict[str, Any]] | None
) -> None:
    found = _writes(plan((DesiredDeployment("green", *wanted),)), {"green": deployment("green", *current)})
    assert [(w[1], w[3]) for w in found] == ([expected] if expected else [])


def test_a_new_template_is_written_late_replacing_the_old_one() -> None:
    found = _writes(plan((DesiredDeployment("green", REV[2], 2),)), {"green": deployment("green", REV[1], 0)})
    [(_, when, patch, body)] = found
    assert (when, patch) == (act.LATE, True)
    assert body["metadata"]["labels"]["fortress.io/revision"] == REV[2]
    assert body["spec"]["replicas"] == 2
    assert body["spec"]["strategy"]["rollingUpdate"] == {"maxSurge": "25%", "maxUnavailable": 0}
    assert body["spec"]["template"]["metadata"]["labels"]["old"] is None, "the old template's keys go"


def test_traffic_wanted_and_flags_data() -> None:
    p = plan(
        traffic=Traffic("blue", "green", 25),
        flags=[{"name": "a", "enabled": True}, {"name": "b", "enabled": False}],
    )
    blue_green = spec(strategy={"type": "blueGreen", "blueGreen": {"previewService": "web-preview"}})
    assert act.traffic_wanted(p, spec())[:4] == (Traffic("blue", "green", 25), "blue", "web", None)
    assert act.traffic_wanted(p, blue_green)[3] == "web-preview"
    assert act.flags_data(p) == {"a": "true", "b": "false"}
    assert act.flags_configmap("web") == "web-flags"


# ---- the writes against a recording Kubernetes ---------------------------------------------------------


class FakeKube:
    """Objects by (plural, name); every write recorded in order; ``fail`` makes a plural's writes fail."""

    def __init__(self, objects: dict[tuple[str, str], dict[str, Any]] | None = None) -> None:
        self.objects = dict(objects or {})
        self.calls: list[tuple[str, str, str]] = []
        self.fail: set[str] = set()

    async def get(self, resource: Resource, namespace: str | None, name: str) -> dict[str, Any] | None:
        return self.objects.get((resource.plural, name))

    async def create(self, resource: Resource, namespace: str | None, body: dict[str, Any]) -> dict[str, Any]:
        return self._write("create", resource, body["metadata"]["name"], body)

    async def patch(self, resource: Resource, namespace: str | None, name: str, patch: Any) -> dict[str, Any]:
        return self._write(
            "patch", resource, name, merge.apply(self.objects.get((resource.plural, name)), patch)
        )

    def _write(self, verb: str, resource: Resource, name: str, body: dict[str, Any]) -> dict[str, Any]:
        self.calls.append((verb, resource.plural, name))
        if resource.plural in self.fail:
            raise PermissionError(f"{verb} {resource.plural}/{name} denied")
        self.objects[(resource.plural, name)] = body
        return body


async def test_converge_scales_up_then_moves_traffic_then_retemplates() -> None:
    objects = {"blue": deployment("blue", REV[1], 2), "green": deployment("green", REV[1], 0)}
    kube: Any = FakeKube({(DEPLOYMENTS.plural, f"web-{c}"): o for c, o in objects.items() if o})
    cache = observe.DeploymentCache()
    wanted = (DesiredDeployment("blue", None, 4), DesiredDeployment("green", REV[2], 1))
    p = plan(wanted, Traffic("blue", "green", 20))
    errors = await act.converge(kube, cache, act.Applied(), p, release(), objects)
    assert errors == []
    assert kube.calls == [
        ("patch", "deployments", "web-blue"),  # scale-up first
        ("create", "services", "web"),  # then traffic
        ("patch", "deployments", "web-green"),  # then the new template
    ]
    assert cache.seen["green"][0]["metadata"]["labels"]["fortress.io/revision"] == REV[2]


async def test_a_failed_traffic_write_holds_the_late_writes_and_is_reported() -> None:
    objects = {"blue": deployment("blue", REV[1], 4), "green": deployment("green", REV[1], 4)}
    kube: Any = FakeKube({(DEPLOYMENTS.plural, f"web-{c}"): o for c, o in objects.items()})
    kube.fail.add(SERVICES.plural)
    applied = act.Applied()
    wanted = (DesiredDeployment("blue", None, 4), DesiredDeployment("green", REV[2], 4))
    errors = await act.converge(
        kube, observe.DeploymentCache(), applied, plan(wanted, Traffic("blue")), release(), objects
    )
    assert errors == ["traffic: PermissionError: create services/web denied"]
    assert ("patch", "deployments", "web-green") not in kube.calls and applied.traffic is None
    assert await act.converge(kube, observe.DeploymentCache(), applied, plan(), release(), objects) == []


async def test_applied_traffic_is_not_written_again_until_it_changes() -> None:
    kube: Any = FakeKube()
    applied = act.Applied()
    p = plan((DesiredDeployment("blue", None, 4),), Traffic("blue"))
    for _ in range(3):
        assert await act.converge(kube, observe.DeploymentCache(), applied, p, release(), {}) == []
    assert [c for c in kube.calls if c[1] == "services"] == [("create", "services", "web")]
    p2 = plan((DesiredDeployment("blue", None, 4),), Traffic("green"))
    await act.converge(kube, observe.DeploymentCache(), applied, p2, release(), {})
    assert kube.calls[-1] == ("patch", "services", "web")


async def test_flags_are_written_when_they_change_and_failures_are_described() -> None:
    kube: Any = FakeKube()
    applied = act.Applied()
    on = plan(flags=[{"name": "a", "enabled": True}, {"name": "b", "enabled": True}])
    assert await act.write_flags(kube, applied, on, release()) == []
    assert kube.objects[(CONFIGMAPS.plural, "web-flags")]["data"] == {"a": "true", "b": "true"}
    assert await act.write_flags(kube, applied, on, release()) == [] and len(kube.calls) == 1
    fewer = plan(flags=[{"name": "a", "enabled": False}])
    await act.write_flags(kube, applied, fewer, release())
    assert kube.objects[(CONFIGMAPS.plural, "web-flags")]["data"] == {"a": "false"}
    kube.fail.add(CONFIGMAPS.plural)
    failed = await act.write_flags(kube, applied, on, release())
    assert failed == ["ConfigMap web-flags: PermissionError: patch configmaps/web-flags denied"]
    assert applied.flags == (("a", False),), "retried on the next step"


async def test_a_taken_over_workload_is_retired_once_the_rollout_serves() -> None:
    referenced = {"metadata": {"name": "legacy"}, "spec": {"replicas": 3}}
    kube: Any = FakeKube({(DEPLOYMENTS.plural, "legacy"): referenced})
    serving = plan(traffic=Traffic("blue"))
    assert await act.retire_reference(kube, serving, release(), referenced, ["earlier failure"]) == []
    assert kube.calls == [], "nothing while another write failed"
    [note] = await act.retire_reference(kube, serving, release(), referenced, [])
    assert note.reason == "WorkloadTakenOver" and "scaled from 3 to 0 pods" in note.message
    assert kube.objects[(DEPLOYMENTS.plural, "legacy")]["spec"]["replicas"] == 0
    kube.fail.add(DEPLOYMENTS.plural)
    errors: list[str] = []
    assert await act.retire_reference(kube, serving, release(), referenced, errors) == []
    assert errors == ["workloadRef Deployment legacy: PermissionError: patch deployments/legacy denied"]


# ---- the Deployment cache ------------------------------------------------------------------------------


def test_the_deployment_cache_trusts_the_watch_and_newer_versions() -> None:
    cache = observe.DeploymentCache()
    cache.store("blue", deployment("blue", "a", 1, "5"), now=0.0)
    assert cache.fresh("blue", 1.0) == (False, None), "no watch event yet: read every step"
    cache.remember("blue", deployment("blue", "a", 2, "7"), now=1.0)
    assert cache.fresh("blue", 2.0)[1]["spec"]["replicas"] == 2  # type: ignore[index]
    cache.remember("blue", deployment("blue", "a", 9, "6"), now=2.0)  # an older event arrives late
    assert cache.fresh("blue", 3.0)[1]["spec"]["replicas"] == 2  # type: ignore[index]
    cache.remember("blue", None, now=3.0)  # deleted
    assert cache.fresh("blue", 4.0) == (True, None)
    assert cache.fresh("blue", 3.0 + observe.RESYNC_SECONDS) == (False, None), "re-read at least every resync"
    assert cache.fresh("green", 4.0) == (False, None)
    cache.clear()
    assert cache.fresh("blue", 4.0) == (False, None)


@pytest.mark.parametrize(
    ("obj", "expected"),
    [
        (None, None),
        ({}, None),
        ({"metadata": {"resourceVersion": "12"}}, 12),
        ({"metadata": {"resourceVersion": "x"}}, None),
    ],
)
def test_resource_version(obj: dict[str, Any] | None, expected: int | None) -> None:
    assert observe.resource_version(obj) == expected


# ---- history ------------------------------------------------------------------------------------------


def test_the_history_fingerprint_follows_what_the_rows_show() -> None:
    state = CanaryRolloutStatus(
        phase="Progressing", canary_revision="b", flags=[FlagState(name="f", enabled=True)]
    )
    same = state.model_copy(update={"canary_weight": 50, "message": "stage 2"})
    assert history.fingerprint(state) == history.fingerprint(same)
    assert history.fingerprint(state) != history.fingerprint(state.model_copy(update={"phase": "Paused"}))
    assert history.notes(("x",)) == (EventNote("Warning", "HistoryNotRecorded", "x"),)


class FakePools:
    def __init__(self, error: Exception | None) -> None:
        self.error = error
        self.asked: list[str] = []

    async def hold(self, _owner: tuple[str, ...], dsn: str) -> Any:
        self.asked.append(dsn)
        if self.error is not None:
            raise self.error
        return object()


class FakeServices:
    def __init__(self, dsn: str | None, pool_error: Exception | None = None) -> None:
        self.dsn = dsn
        self.pools = FakePools(pool_error)

    async def secret(self, namespace: str, ref: Any) -> str:
        if self.dsn is None:
            raise LookupError(f"Secret {namespace}/{ref.name} not found")
        return self.dsn


DSN = "postgresql://rollouts:S3cretPw@db.internal:5432/app"
WITH_DB = {"database": {"secretKeyRef": {"name": "rollouts-db", "key": "dsn"}}}


async def test_history_problems_name_the_secret_never_the_dsn(caplog: pytest.LogCaptureFixture) -> None:
    logger = logging.getLogger("test.rollouts")
    state = CanaryRolloutStatus(phase="Succeeded")
    recorder = history.HistoryRecorder()
    services: Any = FakeServices(None)
    [problem] = await recorder.sync(services, spec(**WITH_DB), state, ("shop", "web"), None, logger)
    label = "<Secret shop/rollouts-db key dsn>"
    assert problem == f"history database {label}: LookupError: Secret shop/rollouts-db not found"
    services = FakeServices(DSN, ConnectionRefusedError(f"connection to {DSN} refused"))
    [problem] = await recorder.sync(services, spec(**WITH_DB), state, ("shop", "web"), None, logger)
    assert "S3cretPw" not in problem and "S3cretPw" not in caplog.text
    assert problem.startswith("history database <Secret shop/rollouts-db key dsn> (db.internal:5432/app): ")
    again = await recorder.sync(services, spec(**WITH_DB), state, ("shop", "web"), None, logger)
    assert again == (problem,) and len(services.pools.asked) == 2, "a failure is retried on the next step"
    assert await recorder.sync(services, spec(), state, ("shop", "web"), None, logger) == ()


async def test_history_is_synced_once_per_state(monkeypatch: pytest.MonkeyPatch) -> None:
    synced: list[str | None] = []

    async def sync(pool: Any, **kwargs: Any) -> list[str]:
        synced.append(kwargs["state"].phase)
        return ["feature flag f is managed by CanaryRollout other; not changed"]

    monkeypatch.setattr(history.store, "sync", sync)
    recorder = history.HistoryRecorder()
    services: Any = FakeServices(DSN)
    logger = logging.getLogger("test.rollouts")
    first = CanaryRolloutStatus(phase="Progressing", rollout_started_at="2024-01-01T00:00:00.000Z")
    for _ in range(3):  # the conflict holds: the same problem each step (the loop posts it once)
        found = await recorder.sync(services, spec(**WITH_DB), first, ("shop", "web"), None, logger)
        assert found == ("feature flag f is managed by CanaryRollout other; not changed",)
    await recorder.sync(
        services,
        spec(**WITH_DB),
        first.model_copy(update={"phase": "Succeeded"}),
        ("shop", "web"),
        None,
        logger,
    )
    assert synced == ["Progressing", "Succeeded"]


async def test_a_missing_history_secret_is_ready_false_naming_the_secret_and_key(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def sync(_pool: Any, **_: Any) -> list[str]:
        return []

    monkeypatch.setattr(history.store, "sync", sync)
    logger = logging.getLogger("test.rollouts")
    state = CanaryRolloutStatus(phase="Progressing")
    recorder = history.HistoryRecorder()
    waiting = Outcome(False, "WaitingForPods", "canary pods not available yet", "Progressing")
    missing: Any = FakeServices(None)
    [problem] = await recorder.sync(missing, spec(**WITH_DB), state, ("shop", "web"), None, logger)
    shown = history.reported(waiting, spec(**WITH_DB), recorder)
    assert (shown.ready, shown.reason) == (False, "SecretNotFound")
    assert "Secret shop/rollouts-db not found" in shown.message and "key 'dsn'" in shown.message
    (condition,) = [c for c in shown.conditions if c.type == "HistoryRecorded"]
    assert (condition.status, condition.reason) == (False, "SecretNotFound")
    assert "rollouts-db" in condition.message and "'dsn'" in condition.message
    assert history.notes((problem,))[0].reason == "HistoryNotRecorded"

    present: Any = FakeServices(DSN)
    await recorder.sync(present, spec(**WITH_DB), state, ("shop", "web"), None, logger)
    recovered = history.reported(waiting, spec(**WITH_DB), recorder)
    assert recovered.reason == "WaitingForPods"
    (condition,) = [c for c in recovered.conditions if c.type == "HistoryRecorded"]
    assert condition.status is True
    assert history.reported(waiting, spec(), recorder) == waiting  # no database: no condition
