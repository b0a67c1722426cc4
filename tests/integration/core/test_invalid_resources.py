"""Every resource of tests/invalid, applied with the operator running: refused or reported, never a crash.

- ``schema/``: the API server rejects each one (strict field validation, as ``kubectl apply
  --validate=strict``), naming the field; nothing is stored.
- ``crossfield/``: stored, then ``Ready=False, reason=InvalidSpec`` naming the field, and a Warning Event.
- ``references/``: valid specs that name an object that does not exist (a Secret, a DRPlan, a
  Deployment): ``Ready=False`` with the reason the file expects, naming the missing object, and a
  Warning Event.

For all of them, the operator's log (captured at DEBUG) carries no traceback and no step fails.
The schema tier needs a real API server (the emulator validates nothing); the other two run against
whichever Kubernetes API the session has.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from fortress.api import BY_KIND, GROUP, VERSION
from fortress.core.conditions import READY, find
from tests.support.kubeapi import KubeTarget, running_operator, wait_for

INVALID = Path(__file__).parents[2] / "invalid"


def _header(path: Path, key: str) -> str | None:
    for line in path.read_text().splitlines():
        if line.startswith(f"# {key}:"):
            return line.split(":", 1)[1].strip()
    return None


def _files(tier: str) -> list[Path]:
    return sorted((INVALID / tier).glob("*.yaml"))


class Captured(logging.Handler):
    """Every log record of the operator while it runs, formatted with its traceback if it has one."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []
        self.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def tracebacks(self) -> list[str]:
        found = []
        for record in self.records:
            text = self.format(record)
            if record.exc_info or record.exc_text or "Traceback (most recent call last)" in text:
                found.append(text)
        return found

    def lines(self) -> list[str]:
        return [self.format(record) for record in self.records]


@contextlib.contextmanager
def captured_log() -> Iterator[Captured]:
    handler = Captured()
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        yield handler
    finally:
        root.removeHandler(handler)
        root.setLevel(level)


def _create(api: client.CustomObjectsApi, namespace: str, doc: dict[str, Any]) -> None:
    info = BY_KIND[doc["kind"]]
    api.create_namespaced_custom_object(
        GROUP, VERSION, namespace, info.plural, doc, field_validation="Strict"
    )


def _warnings(core: client.CoreV1Api, namespace: str, kind: str, name: str) -> list[Any]:
    return [
        e
        for e in core.list_namespaced_event(namespace).items
        if e.type == "Warning" and e.involved_object.kind == kind and e.involved_object.name == name
    ]


async def test_the_api_server_rejects_every_schema_invalid_resource_and_the_operator_stays_quiet(
    real_kube_api: KubeTarget, k8s: client.ApiClient, namespace: str
) -> None:
    api = client.CustomObjectsApi(k8s)
    with captured_log() as log:
        async with running_operator(real_kube_api, namespaces=(namespace,)):
            for path in _files("schema"):
                doc = yaml.safe_load(path.read_text())
                field = _header(path, "expect-field")
                assert field, f"{path.name} lacks '# expect-field:'"
                with pytest.raises(ApiException) as refused:
                    await asyncio.to_thread(_create, api, namespace, doc)
                status = refused.value.status  # 422 Invalid; 400 for a strict decoding error
                assert status in (400, 422), f"{path.name}: {status} {refused.value.body}"
                assert field in str(refused.value.body), f"{path.name}: {refused.value.body}"
                info = BY_KIND[doc["kind"]]
                listed = await asyncio.to_thread(
                    api.list_namespaced_custom_object, GROUP, VERSION, namespace, info.plural
                )
                assert listed["items"] == [], f"{path.name} was stored"
            await asyncio.sleep(1)  # a loop started for a stored object would have stepped by now
    assert log.tracebacks() == []


async def test_every_other_invalid_resource_is_reported_with_a_warning_and_no_traceback(
    kube_api: KubeTarget, k8s: client.ApiClient, namespace: str
) -> None:
    api, core = client.CustomObjectsApi(k8s), client.CoreV1Api(k8s)
    cases: list[tuple[Path, dict[str, Any], str, str]] = []  # file, doc, reason, text the message has
    for path in _files("crossfield"):
        field = _header(path, "expect-field")
        assert field, f"{path.name} lacks '# expect-field:'"
        cases.append((path, yaml.safe_load(path.read_text()), "InvalidSpec", field))
    for path in _files("references"):
        reason, text = _header(path, "expect-reason"), _header(path, "expect-message")
        assert reason and text, f"{path.name} lacks '# expect-reason:' or '# expect-message:'"
        cases.append((path, yaml.safe_load(path.read_text()), reason, text.format(namespace=namespace)))
    names = [(doc["kind"], doc["metadata"]["name"]) for _, doc, _, _ in cases]
    assert len(set(names)) == len(names), "two files create the same object"

    with captured_log() as log:
        async with running_operator(kube_api, namespaces=(namespace,)):
            for _, doc, _, _ in cases:
                await asyncio.to_thread(_create, api, namespace, doc)

            async def reported(path: Path, doc: dict[str, Any], reason: str, text: str) -> None:
                info, name = BY_KIND[doc["kind"]], doc["metadata"]["name"]

                def ready() -> dict[str, Any] | None:
                    obj = api.get_namespaced_custom_object(GROUP, VERSION, namespace, info.plural, name)
                    found = find((obj.get("status") or {}).get("conditions"), READY)
                    return dict(found) if found and found.get("reason") == reason else None

                try:
                    condition = await wait_for(ready, timeout=90, interval=0.5)
                except TimeoutError as error:
                    raise AssertionError(f"{path.name}: never reported {reason}: {error}") from None
                assert condition["status"] == "False", f"{path.name}: {condition}"
                assert text in condition["message"], f"{path.name}: {condition['message']}"
                warnings = await wait_for(lambda: _warnings(core, namespace, info.kind, name), 30)
                assert warnings, f"{path.name}: no Warning Event"

            await asyncio.gather(*(reported(*case) for case in cases))
    problems = log.tracebacks()
    assert problems == [], "\n\n".join(problems)
    failed = [line for line in log.lines() if "StepFailed" in line or "step failed" in line]
    assert failed == [], failed
