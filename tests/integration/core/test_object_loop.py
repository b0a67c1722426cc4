"""The per-object loop against the Kubernetes API: the one status writer of every kind.

A scripted reconciler stands in for a subsystem's (the operator runs it for SyntheticDataset through
``OperatorConfig.reconcilers``), so these tests pin the loop's own contract: status written as
minimal merge patches with observedGeneration and Ready, a spec change waking the loop at once, a
failing step reported as ``Ready=Unknown`` and retried, each Event posted once while it holds,
invalid specs reported once, progress written from a background task, and the reconciler closed
when its object is deleted. A kind no subsystem serves reports ``NotImplemented``, never Ready.
"""

from __future__ import annotations

import asyncio
import copy
from dataclasses import dataclass, field
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from fortress.api import GROUP, VERSION
from fortress.core.loop import ObjectRef, StepContext
from fortress.core.outcome import EventNote, Outcome
from fortress.core.services import Services
from tests.support.kubeapi import KubeTarget, running_operator, wait_for

PLURAL = "syntheticdatasets"
BODY: dict[str, Any] = {
    "apiVersion": f"{GROUP}/{VERSION}",
    "kind": "SyntheticDataset",
    "metadata": {"name": "scripted"},
    "spec": {"kind": "users", "count": 10, "seed": 1, "target": {"type": "configMap"}},
}


@dataclass
class Script:
    """What the scripted reconciler does, and what it saw."""

    fail_next: int = 0
    warning: str | None = None
    steps: list[tuple[int | None, bool]] = field(default_factory=list)  # (generation, changed)
    closed: list[bool] = field(default_factory=list)
    background: asyncio.Task[None] | None = None


def scripted(script: Script) -> Any:
    class ScriptedReconciler:
        def __init__(self, _services: Services, ref: ObjectRef) -> None:
            self.ref = ref

        async def step(self, ctx: StepContext) -> Outcome:
            script.steps.append((ctx.generation, ctx.changed))
            if script.fail_next:
                script.fail_next -= 1
                raise ConnectionError("postgresql://u:S3CRET@db:5432/x refused")
            if script.background is None:

                async def progress() -> None:
                    await ctx.write_status({"generated": 7})

                script.background = asyncio.create_task(progress())
            events = (EventNote("Warning", "Scripted", script.warning),) if script.warning else ()
            count = ctx.spec.count  # type: ignore[attr-defined]
            return Outcome(
                ready=True,
                reason="Scripted",
                message=f"{count} records planned",
                phase="Ready",
                fields={"targetRef": f"configmap/{self.ref.name}"},
                events=events,
                requeue_after=300,
            )

        async def close(self, deleted: bool) -> None:
            script.closed.append(deleted)

    return ScriptedReconciler


def _get(api: client.CustomObjectsApi, namespace: str, plural: str = PLURAL, name: str = "scripted") -> Any:
    return api.get_namespaced_custom_object(GROUP, VERSION, namespace, plural, name)


def _ready(obj: Any) -> dict[str, Any]:
    return next(c for c in (obj.get("status") or {}).get("conditions") or [] if c["type"] == "Ready")


def _events(core: client.CoreV1Api, namespace: str, reason: str) -> list[Any]:
    return [e for e in core.list_namespaced_event(namespace).items if e.reason == reason]


async def test_the_loop_writes_status_wakes_on_change_and_posts_events_once(
    kube_api: KubeTarget, k8s: client.ApiClient, namespace: str
) -> None:
    api, core = client.CustomObjectsApi(k8s), client.CoreV1Api(k8s)
    script = Script(warning="disk almost full")
    overrides = {"SyntheticDataset": scripted(script)}
    async with running_operator(kube_api, namespaces=(namespace,), reconcilers=overrides):
        api.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, copy.deepcopy(BODY))

        def written() -> Any:
            obj = _get(api, namespace)
            status = obj.get("status") or {}
            return obj if status.get("generated") == 7 and status.get("observedGeneration") == 1 else None

        status = (await wait_for(written, timeout=30))["status"]
        assert status["phase"] == "Ready" and status["targetRef"] == "configmap/scripted"
        assert _ready({"status": status})["status"] == "True"
        assert script.steps[0] == (1, True)

        # a spec change wakes the loop at once (its requeue is 300 s away)
        api.patch_namespaced_custom_object(
            GROUP, VERSION, namespace, PLURAL, "scripted", {"spec": {"count": 20}}
        )
        obj = await wait_for(
            lambda: (o := _get(api, namespace))["status"]["observedGeneration"] == 2 and o, 15
        )
        assert obj["status"]["message"] == "20 records planned"
        assert (2, True) in script.steps

        # the same warning in every step is one Event; a new message is a new one
        api.patch_namespaced_custom_object(
            GROUP, VERSION, namespace, PLURAL, "scripted", {"spec": {"count": 21}}
        )
        await wait_for(lambda: _get(api, namespace)["status"]["observedGeneration"] == 3, 15)
        assert len(await wait_for(lambda: _events(core, namespace, "Scripted"), 10)) == 1
        script.warning = "disk full"
        api.patch_namespaced_custom_object(
            GROUP, VERSION, namespace, PLURAL, "scripted", {"spec": {"count": 22}}
        )
        await wait_for(lambda: len(_events(core, namespace, "Scripted")) == 2, 15)
        assert sorted(e.message for e in _events(core, namespace, "Scripted")) == [
            "disk almost full",
            "disk full",
        ]

        # a failing step says so (never the secret in the error) and is retried until it succeeds
        script.fail_next = 2
        api.patch_namespaced_custom_object(
            GROUP, VERSION, namespace, PLURAL, "scripted", {"spec": {"count": 23}}
        )
        failed = await wait_for(lambda: _ready(o := _get(api, namespace))["status"] == "Unknown" and o, 15)
        ready = _ready(failed)
        assert ready["reason"] == "StepFailed" and "ConnectionError" in ready["message"]
        assert "S3CRET" not in str(failed["status"])
        recovered = await wait_for(lambda: _ready(o := _get(api, namespace))["status"] == "True" and o, 30)
        assert recovered["status"]["observedGeneration"] == 5

        # no Kopf progress annotations: the loop keeps its state in memory and in status
        annotations = recovered["metadata"].get("annotations") or {}
        assert not [key for key in annotations if key.startswith("fortress.io/")]

        api.delete_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, "scripted")

        def gone() -> bool:
            try:
                _get(api, namespace)
            except ApiException as error:
                return error.status == 404
            return False

        await wait_for(gone, timeout=30)
        await wait_for(lambda: script.closed == [True], timeout=10)


async def test_an_invalid_spec_is_reported_once_and_a_kind_not_built_never_claims_ready(
    kube_api: KubeTarget, k8s: client.ApiClient, namespace: str
) -> None:
    api, core = client.CustomObjectsApi(k8s), client.CoreV1Api(k8s)
    invalid = copy.deepcopy(BODY)
    invalid["metadata"]["name"] = "too-big"
    invalid["spec"].update({"count": 100_000, "target": {"type": "configMap"}})  # over the ConfigMap limit
    scan = {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "ComplianceScan",
        "metadata": {"name": "nightly"},
        "spec": {"frameworks": ["SOC2"], "schedule": "0 2 * * *"},
    }
    async with running_operator(kube_api, namespaces=(namespace,)):
        api.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, invalid)
        api.create_namespaced_custom_object(GROUP, VERSION, namespace, "compliancescans", scan)
        obj = await wait_for(lambda: (o := _get(api, namespace, name="too-big")).get("status") and o, 30)
        assert _ready(obj)["reason"] == "InvalidSpec" and obj["status"]["phase"] == "Invalid"
        assert "spec" in _ready(obj)["message"]
        for label in ("a", "b"):  # metadata changes do not wake the loop; the InvalidSpec Event stays one
            api.patch_namespaced_custom_object(
                GROUP, VERSION, namespace, PLURAL, "too-big", {"metadata": {"labels": {"x": label}}}
            )
        await asyncio.sleep(2)
        assert len(_events(core, namespace, "InvalidSpec")) == 1

        scanned = await wait_for(
            lambda: (o := _get(api, namespace, "compliancescans", "nightly")).get("status") and o, 30
        )
        ready = _ready(scanned)
        assert ready["status"] == "False" and ready["reason"] == "NotImplemented"
