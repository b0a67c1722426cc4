"""The status of a ShardCluster from what a step observed: each concern, then the summary (pure)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from fortress.api.shardcluster import ShardClusterSpec
from fortress.sharding.rebalance import Phase, Progress, RingAction, RingDecision, decide_ring
from fortress.sharding.ring import Ring, RingSpec, RoutingState
from fortress.sharding.settings import desired_ring
from fortress.sharding.status import (
    REBALANCE_KEYS,
    Observed,
    ShardProbe,
    databases_condition,
    prepared_condition,
    readiness,
    rebalance_field,
    rebalanced_condition,
    shard_fields,
    summarize,
    unavailable,
    weighted_imbalance,
)

SPEC3 = RingSpec.of(["a", "b", "c"], virtual_nodes=32)
R4 = Ring(RingSpec.of(["a", "b", "c", "d"], virtual_nodes=32))

# ----------------------------------------------------------------------------- the summary


def spec(**overrides: Any) -> ShardClusterSpec:
    raw: dict[str, Any] = {
        "shards": [
            {"id": s, "connection": {"secretKeyRef": {"name": "db", "key": s}}} for s in ("a", "b", "c")
        ],
        "virtualNodes": 32,
    }
    raw.update(overrides)
    return ShardClusterSpec.model_validate(raw)


def probes(**changes: ShardProbe) -> dict[str, ShardProbe]:
    found = {
        s: ShardProbe(s, True, "Closed", 100 * (i + 1), 10, f"db-{s}", True) for i, s in enumerate("abc")
    }
    found.update(changes)
    return found


def observe(**kwargs: Any) -> Observed:
    published = RoutingState(Ring(desired_ring(spec())))
    defaults: dict[str, Any] = {
        "spec": spec(),
        "name": "tenants",
        "probes": probes(),
        "endpoint_errors": {},
        "published": published,
        "decision": None,
        "progress": None,
        "in_doubt": 0,
    }
    defaults.update(kwargs)
    return Observed(**defaults)


def condition(outcome: Any, type_: str) -> Any:
    return next((c for c in outcome.conditions if c.type == type_), None)


def test_summary_of_a_healthy_cluster() -> None:
    outcome = summarize(observe())
    assert outcome.ready and outcome.reason == "Serving" and outcome.phase == "Ready"
    fields = outcome.fields
    assert fields["totalKeys"] == 600 and fields["imbalance"] == 1.5 and fields["shardCount"] == 3
    assert fields["ringConfigMap"] == "tenants-ring" and fields["coordinator"] == "a"
    assert fields["shards"][0] == {
        "id": "a",
        "healthy": True,
        "circuit": "Closed",
        "keys": 100,
        "preparedTransactionsEnabled": True,
    }
    assert {k: v for k, v in fields["rebalance"].items() if v is not None} == {"phase": "Idle"}
    assert condition(outcome, "PreparedTransactions").status is True
    assert condition(outcome, "Rebalanced").status is True
    assert not outcome.events


def test_summary_reports_prepared_transactions_disabled_with_an_event() -> None:
    outcome = summarize(observe(probes=probes(b=ShardProbe("b", True, "Closed", 1, 0, "db-b", True))))
    assert outcome.ready  # keys are served; only cross-shard transactions touching b are refused
    cond = condition(outcome, "PreparedTransactions")
    assert cond.status is False and cond.reason == "PreparedTransactionsDisabled" and "b" in cond.message
    assert [e.reason for e in outcome.events] == ["PreparedTransactionsDisabled"]
    assert outcome.fields["shards"][1]["preparedTransactionsEnabled"] is False


def test_summary_of_an_unavailable_shard() -> None:
    down = ShardProbe("c", False, "Open", error="shard c is unavailable: connection refused")
    outcome = summarize(observe(probes=probes(c=down)))
    assert not outcome.ready and outcome.reason == "ShardUnavailable" and outcome.phase == "Degraded"
    assert "connection refused" in outcome.message
    assert outcome.fields["shards"][2] == {
        "id": "c",
        "healthy": False,
        "circuit": "Open",
        "lastError": "shard c is unavailable: connection refused",
    }


def test_summary_of_missing_secrets_and_shared_databases() -> None:
    outcome = summarize(observe(endpoint_errors={"b": "Secret ns/db not found"}))
    assert not outcome.ready and outcome.reason == "SecretNotFound" and "Secret ns/db" in outcome.message
    same = {s: replace(p, identity="one", keys=100) for s, p in probes().items()}
    shared = summarize(observe(probes=same))
    assert shared.ready and condition(shared, "DistinctDatabases").status is False
    assert shared.fields["totalKeys"] == 100  # one database counted once
    assert "SharedDatabase" in [e.reason for e in shared.events]


def test_summary_while_rebalancing_and_when_refused() -> None:
    moving = RoutingState(Ring(desired_ring(spec())), Ring.build(["a", "b"], virtual_nodes=32))
    progress = Progress(Phase.MOVING, "x", "y", 50, 20, rate=10.0, eta_seconds=3)
    outcome = summarize(observe(published=moving, progress=progress))
    assert outcome.ready and outcome.reason == "Rebalancing"
    assert outcome.fields["rebalance"]["moved"] == 20 and "20/50" in outcome.message
    assert condition(outcome, "Rebalanced").status is False
    refused = decide_ring(SPEC3, RoutingState(R4), ["a", "b", "c"], None)
    blocked = summarize(observe(decision=refused))
    assert not blocked.ready and blocked.reason == "ShardRemovalRefused" and blocked.phase == "Blocked"
    assert "ShardRemovalRefused" in [e.reason for e in blocked.events]


def test_summary_of_an_unreadable_ring() -> None:
    outcome = summarize(observe(published=None, ring_error="not valid JSON"))
    assert not outcome.ready and outcome.reason == "RingConfigMapInvalid"


# ----------------------------------------------------------------------------- each concern


def test_rebalance_field_removes_what_the_progress_lacks() -> None:
    idle = rebalance_field(None)
    assert idle["phase"] == "Idle" and all(idle[k] is None for k in REBALANCE_KEYS)
    verifying = rebalance_field(Progress(Phase.VERIFYING, "f1", "f2", 10, 10))
    assert verifying["phase"] == "Verifying" and verifying["moved"] == 10
    assert verifying["checkpoint"] is None and verifying["rate"] is None  # a stale checkpoint is removed


@pytest.mark.parametrize(
    ("keys", "identities", "published", "expected"),
    [
        ({"a": 100, "b": 100, "c": 100}, {}, None, 1.0),
        ({"a": 100, "b": 200, "c": 300}, {}, None, 1.5),
        ({"a": 600, "b": 600, "c": 300}, {"a": "db", "b": "db"}, None, 1.0),  # a and b: one database
        ({"a": None, "b": None, "c": None}, {}, None, None),
        ({"a": 100, "b": 100, "c": 100}, {}, RoutingState(Ring(RingSpec.of(["a", "b"], 32))), 1.0),
    ],
)
def test_weighted_imbalance(
    keys: dict[str, int | None], identities: dict[str, str], published: RoutingState | None, expected: Any
) -> None:
    found = {s: ShardProbe(s, True, keys=k, identity=identities.get(s, f"db-{s}")) for s, k in keys.items()}
    value = weighted_imbalance(observe(probes=found, published=published))
    assert value == (pytest.approx(expected) if expected is not None else None)


def test_shard_fields_before_a_ring_is_published_and_for_shards_not_probed() -> None:
    fields = shard_fields(observe(published=None, probes={"a": ShardProbe("a", True, keys=5)}))
    assert fields["shards"][1] == {"id": "b", "healthy": False}
    assert (
        fields["shardCount"] is None and fields["ringConfigMap"] is None and fields["ringFingerprint"] is None
    )
    assert fields["totalKeys"] == 5 and fields["coordinator"] == "a" and fields["inDoubtTransactions"] == 0


def enabled(*values: int | None) -> dict[str, ShardProbe]:
    return {s: ShardProbe(s, True, max_prepared_transactions=v) for s, v in zip("abc", values, strict=False)}


@pytest.mark.parametrize(
    ("found", "status", "reason", "event"),
    [
        (enabled(10, 10, 10), True, "Enabled", None),
        (enabled(10, 0, 10), False, "PreparedTransactionsDisabled", "PreparedTransactionsDisabled"),
        (enabled(10, None, 10), None, None, None),  # a shard not reached: nothing to say yet
        ({}, None, None, None),
    ],
)
def test_prepared_condition(
    found: dict[str, ShardProbe], status: bool | None, reason: str | None, event: str | None
) -> None:
    condition, note = prepared_condition(found)
    assert (condition.status, condition.reason) == (status, reason) if condition else status is None
    assert (note.reason if note else None) == event


@pytest.mark.parametrize(
    ("identities", "status", "reason", "event"),
    [
        ({"a": "x", "b": "y", "c": "z"}, True, "Distinct", None),
        ({"a": "x", "b": "x", "c": "z"}, False, "SharedDatabase", "SharedDatabase"),
        ({"a": None, "b": None}, True, "Distinct", None),  # identities unknown: nothing shared
        ({}, None, None, None),
    ],
)
def test_databases_condition(
    identities: dict[str, str | None], status: bool | None, reason: str | None, event: str | None
) -> None:
    condition, note = databases_condition({s: ShardProbe(s, True, identity=i) for s, i in identities.items()})
    assert (condition.status, condition.reason) == (status, reason) if condition else status is None
    assert (note.reason if note else None) == event
    if condition is not None and condition.status is False:
        assert "a, b" in condition.message


MOVING = RoutingState(Ring(RingSpec.of(["a", "b", "c"], 32)), Ring(RingSpec.of(["a", "b"], 32)))
MOVING_PROGRESS = Progress(Phase.MOVING, "x", "y", 50, 20)
REFUSED = RingDecision(RingAction.REFUSE, None, None, "d were removed")


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({}, (True, "RingStable", "is stable")),
        ({"decision": REFUSED}, (False, "ShardRemovalRefused", "d were removed")),
        ({"published": MOVING, "progress": MOVING_PROGRESS}, (False, "Rebalancing", "20/50 keys moved")),
        (
            {"published": MOVING, "progress": replace(MOVING_PROGRESS, phase=Phase.PAUSED)},
            (False, "Paused", "Paused: 20/50"),
        ),
        ({"held": "waits for shard d"}, (False, "Held", "waits for shard d")),
        ({"published": None}, None),
        ({"published": RoutingState(R4)}, (False, "Pending", "ring change pending")),
        # a shard's Secret is missing: the spec's ring is not known in full, nothing is pending yet
        ({"published": RoutingState(R4), "endpoint_errors": {"d": "gone"}}, (True, "RingStable", "stable")),
    ],
)
def test_rebalanced_condition(changes: dict[str, Any], expected: tuple[bool, str, str] | None) -> None:
    condition, note = rebalanced_condition(observe(**changes))
    if expected is None:
        assert condition is None
        return
    assert condition is not None and condition.type == "Rebalanced"
    assert (condition.status, condition.reason) == expected[:2] and expected[2] in condition.message
    assert (note.reason if note else None) == (
        "ShardRemovalRefused" if expected[1] == "ShardRemovalRefused" else None
    )


def test_the_last_rebalance_error_is_shown_while_moving() -> None:
    observed = observe(published=MOVING, progress=MOVING_PROGRESS, rebalance_error="ShardUnavailable: b")
    condition, _ = rebalanced_condition(observed)
    assert (
        condition is not None
        and condition.message == "Moving: 20/50 keys moved; last error: ShardUnavailable: b"
    )


@pytest.mark.parametrize(
    ("changed", "reason"),
    [
        ({}, None),
        ({"c": ShardProbe("c", False, "Open", error="refused")}, "ShardUnavailable"),
        ({"c": ShardProbe("c", False, schema_ok=False, error="tables missing")}, "SchemaMissing"),
        (
            {"b": ShardProbe("b", False, error="refused"), "c": ShardProbe("c", False, schema_ok=False)},
            "ShardUnavailable",
        ),
    ],
)
def test_unavailable(changed: dict[str, ShardProbe], reason: str | None) -> None:
    verdict = unavailable(observe(probes=probes(**changed)))
    assert (verdict.reason if verdict else None) == reason
    if verdict is not None:
        assert (
            verdict.phase == "Degraded"
            and not verdict.ready
            and "of 3 shard(s) unavailable" in verdict.message
        )


def test_a_shard_outside_the_ring_does_not_make_it_unavailable() -> None:
    published = RoutingState(Ring(RingSpec.of(["a", "b"], 32)))
    assert unavailable(observe(published=published, probes=probes(c=ShardProbe("c", False)))) is None


@pytest.mark.parametrize(
    ("changes", "ready", "reason", "phase", "event"),
    [
        ({}, True, "Serving", "Ready", None),
        (
            {"ring_error": "not JSON", "published": None},
            False,
            "RingConfigMapInvalid",
            "Blocked",
            "RingConfigMapInvalid",
        ),
        (
            {"endpoint_errors": {"b": "Secret ns/db not found"}},
            False,
            "SecretNotFound",
            "Unavailable",
            "SecretNotFound",
        ),
        ({"decision": REFUSED}, False, "ShardRemovalRefused", "Blocked", None),
        ({"probes": probes(c=ShardProbe("c", False))}, False, "ShardUnavailable", "Degraded", None),
        ({"published": MOVING, "progress": MOVING_PROGRESS}, True, "Rebalancing", "Rebalancing", None),
        # the first problem wins: an unreadable ring before a missing Secret before an unhealthy shard
        (
            {"ring_error": "x", "endpoint_errors": {"b": "gone"}, "probes": probes(c=ShardProbe("c", False))},
            False,
            "RingConfigMapInvalid",
            "Blocked",
            "RingConfigMapInvalid",
        ),
    ],
)
def test_readiness(changes: dict[str, Any], ready: bool, reason: str, phase: str, event: str | None) -> None:
    observed = observe(**changes)
    verdict = readiness(observed, shard_fields(observed))
    assert (verdict.ready, verdict.reason, verdict.phase) == (ready, reason, phase)
    assert (verdict.event.reason if verdict.event else None) == event


def test_serving_message_names_keys_shards_ring_and_imbalance() -> None:
    outcome = summarize(observe())
    ring = Ring(desired_ring(spec())).fingerprint
    assert outcome.message == f"serving 600 keys over 3 shards, ring {ring}, imbalance 1.5"


def test_events_follow_the_conditions_then_ready() -> None:
    same = {s: replace(p, identity="one", max_prepared_transactions=0) for s, p in probes().items()}
    outcome = summarize(observe(probes=same, endpoint_errors={"b": "Secret ns/db not found"}))
    assert [e.reason for e in outcome.events] == [
        "PreparedTransactionsDisabled",
        "SharedDatabase",
        "SecretNotFound",
    ]
