"""Every duration field of every kind is bounded: in the CRD schema and in the operator's validator.

A duration of ``99999999999999h`` once passed the CRD pattern and made ``timedelta`` overflow inside a
handler. Now the schema rejects more than 7 digits per part, and the validator rejects anything longer
than 8784h that the schema lets through (``9999999h``) as ``InvalidSpec`` naming the field; the loop
reports it without calling the kind's reconciler.
"""

from __future__ import annotations

import copy
import itertools
from collections.abc import Iterator
from typing import Any

import pytest
import yaml

from fortress.api import BY_KIND
from fortress.core.loop import Loops, ObjectLoop, ObjectRef, StepContext
from fortress.core.outcome import Outcome
from fortress.core.services import Services
from fortress.core.time import DURATION_PATTERN
from fortress.core.validation import validate_spec
from fortress.paths import examples_dir
from tests.support.crdschema import load_crds, schema_errors
from tests.unit.core.test_loop_owned_status import FakeKube

CRDS = load_crds()
EXAMPLES: dict[str, dict[str, Any]] = {}
for _path in sorted(examples_dir().glob("*.yaml")):
    for _doc in yaml.safe_load_all(_path.read_text()):
        if _doc and _doc.get("kind") in BY_KIND:
            EXAMPLES.setdefault(_doc["kind"], _doc)

Path_ = tuple[str | int, ...]


def _durations(schema: dict[str, Any], path: Path_) -> Iterator[Path_]:
    if schema.get("type") == "string" and schema.get("pattern") == DURATION_PATTERN:
        yield path
    for key, child in (schema.get("properties") or {}).items():
        yield from _durations(child, (*path, key))
    if isinstance(schema.get("items"), dict):
        yield from _durations(schema["items"], (*path, 0))


FIELDS = [
    (kind, path)
    for kind, crd in sorted(CRDS.items())
    for path in _durations(
        crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"], ("spec",)
    )
]


def _dotted(path: Path_) -> str:
    return "".join(f"[{p}]" if isinstance(p, int) else (f".{p}" if i else p) for i, p in enumerate(path))


def _with(kind: str, path: Path_, value: str) -> dict[str, Any]:
    """The kind's example with ``value`` at ``path`` (missing objects and list items created)."""
    doc = copy.deepcopy(EXAMPLES[kind])
    node: Any = doc
    for part, following in itertools.pairwise(path):
        empty: Any = [] if isinstance(following, int) else {}
        if isinstance(part, int):
            while len(node) <= part:
                node.append(empty)
            node = node[part]
        else:
            node = node.setdefault(part, empty)
    node[path[-1]] = value
    return doc


def test_every_kind_with_durations_is_covered() -> None:
    kinds = {kind for kind, _ in FIELDS}
    assert {"CanaryRollout", "CreditLedger", "DRPlan", "ShardCluster", "SyntheticDataset"} <= kinds
    named = {_dotted(path) for _, path in FIELDS}
    for field in (
        "spec.analysis.interval",
        "spec.retention.idempotencyKeyTtl",
        "spec.checkInterval",
        "spec.transactions.timeout",
    ):
        assert field in named  # the four of the report


@pytest.mark.parametrize(("kind", "path"), FIELDS, ids=[f"{k}:{_dotted(p)}" for k, p in FIELDS])
def test_an_overflowing_duration_is_rejected_by_the_schema(kind: str, path: Path_) -> None:
    errors = schema_errors(_with(kind, path, "99999999999999h"), CRDS)
    assert any(error.startswith(_dotted(path)) for error in errors), errors


@pytest.mark.parametrize(("kind", "path"), FIELDS, ids=[f"{k}:{_dotted(p)}" for k, p in FIELDS])
@pytest.mark.parametrize("value", ["99999999999999h", "9999999h", "8785h"])
def test_a_duration_beyond_the_bound_is_invalid_spec_naming_the_field(
    kind: str, path: Path_, value: str
) -> None:
    validated = validate_spec(BY_KIND[kind], _with(kind, path, value)["spec"])
    assert not validated.valid
    assert _dotted(path) in {issue.field for issue in validated.issues}, validated.message()


class MustNotRun:
    """A reconciler that fails the test if the loop hands it a spec."""

    def __init__(self, _services: Services, _ref: ObjectRef) -> None:
        return None

    async def step(self, ctx: StepContext) -> Outcome:
        raise AssertionError("an out-of-bound duration reached the reconciler")

    async def close(self, deleted: bool) -> None:
        return None


@pytest.mark.parametrize(("kind", "path"), FIELDS, ids=[f"{k}:{_dotted(p)}" for k, p in FIELDS])
async def test_the_loop_reports_invalid_spec_and_no_step_raises(kind: str, path: Path_) -> None:
    info = BY_KIND[kind]
    body = _with(kind, path, "9999999h")
    body["metadata"] = {"name": "x", "namespace": "ns", "uid": "u", "generation": 1}
    kube = FakeKube()
    kube.objects[(info.plural, "ns", "x")] = copy.deepcopy(body)
    services = Services(cluster=None, kube=kube, loops=Loops(), identity="me")  # type: ignore[arg-type]
    ref = ObjectRef(info, "ns", "x")
    loop = ObjectLoop(ref, MustNotRun(services, ref), services)
    await loop.step(body)
    status = kube.objects[(info.plural, "ns", "x")]["status"]
    ready = next(c for c in status["conditions"] if c["type"] == "Ready")
    assert (ready["status"], ready["reason"]) == ("False", "InvalidSpec")
    assert _dotted(path) in ready["message"]
