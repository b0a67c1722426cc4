"""Every example, applied through the Kubernetes API fixture, gets observedGeneration and Ready."""

from __future__ import annotations

import asyncio
import copy
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client

from fortress.api import BY_KIND, GROUP, VERSION
from fortress.core.loop import NOT_IMPLEMENTED
from fortress.paths import examples_dir
from fortress.runtime import kinds_not_built
from fortress_dev import backends
from tests.integration.rollouts import support as s
from tests.support.kubeapi import KubeTarget, running_operator, wait_for


def example_objects() -> list[dict[str, Any]]:
    objects = []
    for path in sorted(Path(examples_dir()).glob("*.yaml")):
        objects.extend(doc for doc in yaml.safe_load_all(path.read_text()) if doc)
    return objects


def _ready(obj: dict[str, Any]) -> dict[str, Any] | None:
    for condition in (obj.get("status") or {}).get("conditions") or []:
        if condition.get("type") == "Ready":
            return condition  # type: ignore[no-any-return]
    return None


def _create(api: client.CustomObjectsApi, namespace: str, obj: dict[str, Any]) -> dict[str, Any]:
    body = copy.deepcopy(obj)
    body["metadata"]["namespace"] = namespace
    plural = BY_KIND[body["kind"]].plural
    return api.create_namespaced_custom_object(GROUP, VERSION, namespace, plural, body)  # type: ignore[no-any-return]


def _get(api: client.CustomObjectsApi, namespace: str, kind: str, name: str) -> dict[str, Any]:
    return api.get_namespaced_custom_object(  # type: ignore[no-any-return]
        GROUP, VERSION, namespace, BY_KIND[kind].plural, name
    )


async def test_every_example_gets_ready(
    kube_api: KubeTarget, k8s: client.ApiClient, namespace: str, example_backends: backends.ExampleBackends
) -> None:
    api = client.CustomObjectsApi(k8s)
    objects = example_objects()
    assert {o["kind"] for o in objects} == set(BY_KIND), "every kind needs an example"
    await asyncio.to_thread(backends.apply_secrets, k8s, namespace, example_backends.secrets)
    # Deployments become available by the real controllers, or simulated where none runs
    async with (
        running_operator(kube_api, namespaces=(namespace,)),
        s.availability(kube_api, k8s, namespace),
    ):
        for obj in objects:
            _create(api, namespace, obj)
        for obj in objects:
            kind, name = obj["kind"], obj["metadata"]["name"]

            # a kind no subsystem serves yet must say so, never claim Ready
            expected = ("False", NOT_IMPLEMENTED) if kind in kinds_not_built() else ("True", None)

            def ready_status(
                kind: str = kind, name: str = name, expected: tuple[str, str | None] = expected
            ) -> dict[str, Any] | None:
                current = _get(api, namespace, kind, name)
                condition = _ready(current) or {}
                found = (condition.get("status"), condition.get("reason") if expected[1] else None)
                return current if found == expected else None

            try:
                current = await wait_for(ready_status, timeout=60)
            except TimeoutError:
                status = _get(api, namespace, kind, name).get("status") or {}
                pytest.fail(
                    f"{kind}/{name} not {expected} after 60 s: {status.get('phase')}: {status.get('message')}"
                )
            status = current["status"]
            assert status["observedGeneration"] == current["metadata"]["generation"]
            assert status["phase"] not in ("Invalid", None)
            assert _ready(current)["observedGeneration"] == current["metadata"]["generation"]  # type: ignore[index]


async def test_invalid_spec_is_reported_with_field_and_event(
    kube_api: KubeTarget, k8s: client.ApiClient, namespace: str
) -> None:
    """A cross-field error (schema-valid) gives Ready=False/InvalidSpec naming the field, and an Event."""
    api = client.CustomObjectsApi(k8s)
    rollout = next(
        o
        for o in example_objects()
        if o["kind"] == "CanaryRollout" and o["spec"]["strategy"]["type"] == "canary"
    )
    rollout = copy.deepcopy(rollout)
    rollout["metadata"]["name"] = "bad-stages"
    rollout["spec"]["strategy"]["canary"]["stages"][2]["weight"] = 3  # below the previous stage's 5
    async with running_operator(kube_api, namespaces=(namespace,)):
        _create(api, namespace, rollout)

        def invalid() -> dict[str, Any] | None:
            condition = _ready(_get(api, namespace, "CanaryRollout", "bad-stages"))
            return condition if condition and condition["status"] == "False" else None

        condition = await wait_for(invalid)
        assert condition["reason"] == "InvalidSpec"
        assert "spec.strategy.canary.stages[2].weight" in condition["message"]

        def warning_event() -> list[Any]:
            events = client.CoreV1Api(k8s).list_namespaced_event(namespace).items
            return [e for e in events if e.reason == "InvalidSpec" and e.type == "Warning"]

        events = await wait_for(warning_event)
        assert "stages[2].weight" in events[0].message


async def test_spec_change_moves_observed_generation(
    kube_api: KubeTarget, k8s: client.ApiClient, namespace: str
) -> None:
    api = client.CustomObjectsApi(k8s)
    ledger = next(o for o in example_objects() if o["kind"] == "CreditLedger")
    async with running_operator(kube_api, namespaces=(namespace,)):
        created = _create(api, namespace, ledger)
        name = created["metadata"]["name"]

        def observed(generation: int) -> bool:
            obj = _get(api, namespace, "CreditLedger", name)
            return (obj.get("status") or {}).get("observedGeneration") == generation

        await wait_for(lambda: observed(1))
        api.patch_namespaced_custom_object(
            GROUP, VERSION, namespace, "creditledgers", name, {"spec": {"snapshotInterval": 250}}
        )
        current = _get(api, namespace, "CreditLedger", name)
        assert current["metadata"]["generation"] == 2
        await wait_for(lambda: observed(2))
        # an invalid change is reported against the new generation, nothing else is lost
        api.patch_namespaced_custom_object(
            GROUP,
            VERSION,
            namespace,
            "creditledgers",
            name,
            {"spec": {"retention": {"idempotencyKeyTtl": "1h"}}},
        )

        def invalid_at_3() -> dict[str, Any] | None:
            obj = _get(api, namespace, "CreditLedger", name)
            cond = _ready(obj)
            ok = cond and cond["status"] == "False" and obj["status"]["observedGeneration"] == 3
            return obj if ok else None

        obj = await wait_for(invalid_at_3)
        assert "spec.retention.idempotencyKeyTtl" in obj["status"]["message"]
        assert obj["spec"]["snapshotInterval"] == 250


@pytest.fixture(autouse=True)
def _quiet_kopf(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("WARNING", logger="kopf")
