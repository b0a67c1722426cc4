"""The rebalance planner and ring transitions: pure, table-driven."""

from __future__ import annotations

from dataclasses import replace

import pytest

from fortress.sharding.rebalance import (
    Checkpoint,
    InvalidCheckpoint,
    Phase,
    Progress,
    RebalanceError,
    RingAction,
    ScanPlan,
    decide_ring,
    eta_seconds,
    pace_delay,
    plan_batch,
    plan_scan,
    source_groups,
    target_of,
)
from fortress.sharding.ring import Ring, RingSpec, RoutingState

OLD = Ring.build(["a", "b", "c"], virtual_nodes=32)
NEW = Ring.build(["a", "b", "c", "d"], virtual_nodes=32)
IDS: dict[str, str] = {}


# ----------------------------------------------------------------------------- checkpoints


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (None, None),
        ("", None),
        ("a:", Checkpoint("a", "")),
        ("a:key:with:colons", Checkpoint("a", "key:with:colons")),
    ],
)
def test_checkpoint_decoding(text: str | None, expected: Checkpoint | None) -> None:
    assert Checkpoint.decode(text) == expected
    if expected is not None:
        assert Checkpoint.decode(expected.encode()) == expected


@pytest.mark.parametrize("text", ["nocolon", ":key"])
def test_malformed_checkpoints(text: str) -> None:
    with pytest.raises(InvalidCheckpoint):
        Checkpoint.decode(text)


# ----------------------------------------------------------------------------- scans and batches


def test_plan_scan_starts_at_the_first_source_and_resumes_at_the_checkpoint() -> None:
    assert plan_scan(OLD, IDS, None, 100) == ScanPlan("a", "", 100)
    assert plan_scan(OLD, IDS, Checkpoint("b", "k9"), 100) == ScanPlan("b", "k9", 100)
    with pytest.raises(InvalidCheckpoint, match="not a source"):
        plan_scan(OLD, IDS, Checkpoint("d", ""), 100)
    with pytest.raises(ValueError):
        plan_scan(OLD, IDS, None, 0)


def test_sources_collapse_shards_sharing_a_database() -> None:
    shared = {"a": "db1", "b": "db1", "c": "db2"}
    assert source_groups(OLD, shared) == ("a", "c")
    assert source_groups(OLD, {}) == ("a", "b", "c")
    heavier_b = Ring.build(["a", ("b", 3), "c"], virtual_nodes=32)
    key = next(
        k for k in (f"k{i}" for i in range(10_000)) if heavier_b.owner(k) == "b" and OLD.owner(k) == "a"
    )
    assert target_of(heavier_b, shared, "a", key) is None  # a and b share db1: nothing to copy
    assert target_of(heavier_b, {}, "a", key) == "b"


def keys_on(shard: str, n: int) -> list[str]:
    return sorted(k for k in (f"key-{i:06d}" for i in range(n)) if OLD.owner(k) == shard)


@pytest.mark.parametrize("batch_size", [1, 3, 1000])
def test_plan_batch_moves_exactly_the_keys_leaving_the_source(batch_size: int) -> None:
    scanned = keys_on("a", 3000)[:200]
    plan = plan_batch(OLD, NEW, IDS, ScanPlan("a", "", 200), scanned, batch_size)
    planned = [k for _, keys in plan.batches for k in keys]
    assert planned == [k for k in scanned if NEW.owner(k) != "a"]
    assert all(len(keys) <= batch_size for _, keys in plan.batches)
    assert all(NEW.owner(k) == target for target, keys in plan.batches for k in keys)
    assert plan.next_checkpoint == Checkpoint("a", scanned[-1])  # a full page: more may follow
    assert plan.keys == len(planned)


def test_a_short_page_finishes_the_source_and_the_last_source_finishes_the_pass() -> None:
    assert plan_batch(OLD, NEW, IDS, ScanPlan("a", "x", 10), ["y"], 5).next_checkpoint == Checkpoint("b")
    assert plan_batch(OLD, NEW, IDS, ScanPlan("c", "", 10), [], 5).next_checkpoint is None
    assert plan_batch(OLD, NEW, IDS, ScanPlan("c", "", 10), [], 5).batches == ()


@pytest.mark.parametrize(
    ("scan", "scanned", "message"),
    [
        (ScanPlan("a", "", 2), ["k1", "k2", "k3"], "more than its limit"),
        (ScanPlan("a", "k5", 5), ["k5"], "after the checkpoint key 'k5'"),
        (ScanPlan("a", "", 5), ["k1", "k1"], "repeat"),
    ],
)
def test_plan_batch_rejects_inconsistent_scans(scan: ScanPlan, scanned: list[str], message: str) -> None:
    with pytest.raises(RebalanceError, match=message):
        plan_batch(OLD, NEW, IDS, scan, scanned, 10)


def test_plan_batch_rejects_a_zero_batch_size() -> None:
    with pytest.raises(ValueError):
        plan_batch(OLD, NEW, IDS, ScanPlan("a", "", 5), [], 0)


def test_identical_rings_move_nothing() -> None:
    scanned = keys_on("b", 2000)
    assert plan_batch(OLD, OLD, IDS, ScanPlan("b", "", 10_000), scanned, 10).batches == ()


@pytest.mark.parametrize(
    ("moved", "elapsed", "rate", "delay"),
    [(0, 0.0, 100, 0.0), (100, 0.5, 100, 0.5), (100, 2.0, 100, 0.0), (1000, 0.0, 1000, 1.0)],
)
def test_pacing(moved: int, elapsed: float, rate: int, delay: float) -> None:
    assert pace_delay(moved, elapsed, rate) == pytest.approx(delay)


def test_pacing_rejects_a_zero_rate() -> None:
    with pytest.raises(ValueError):
        pace_delay(1, 1.0, 0)


@pytest.mark.parametrize(
    ("remaining", "rate", "eta"),
    [(0, None, 0), (100, None, None), (100, 0.0, None), (100, 30.0, 4), (90, 30.0, 3)],
)
def test_eta(remaining: int, rate: float | None, eta: int | None) -> None:
    assert eta_seconds(remaining, rate) == eta


def test_progress_wire_round_trip() -> None:
    progress = Progress(Phase.MOVING, "f1", "f2", 100, 40, Checkpoint("a", "k:1"), 12.34, 5)
    wire = progress.wire()
    assert wire["checkpoint"] == "a:k:1" and wire["rate"] == 12.3
    assert Progress.from_wire(wire) == replace(progress, rate=12.3)
    assert Progress.from_wire(None) is None
    assert Progress.from_wire({"phase": "Idle"}) is None
    garbled = Progress.from_wire({"phase": "Bogus", "fromRing": "x", "toRing": "y", "checkpoint": "nocolon"})
    assert garbled is not None and garbled.phase is Phase.PLANNING and garbled.checkpoint is None


# ----------------------------------------------------------------------------- ring transitions

SPEC3 = RingSpec.of(["a", "b", "c"], virtual_nodes=32)
SPEC4 = RingSpec.of(["a", "b", "c", "d"], virtual_nodes=32)
R3, R4 = Ring(SPEC3), Ring(SPEC4)


def test_first_publication() -> None:
    decision = decide_ring(SPEC3, None, ["a", "b", "c"], None, cluster="ns/x")
    assert decision.action is RingAction.PUBLISH
    assert decision.routing == RoutingState(R3, None, "ns/x")


def test_stable_ring() -> None:
    decision = decide_ring(SPEC3, RoutingState(R3), ["a", "b", "c"], None)
    assert decision.action is RingAction.STABLE and decision.routing is None


def test_adding_a_shard_starts_a_transition() -> None:
    decision = decide_ring(SPEC4, RoutingState(R3), ["a", "b", "c", "d"], None, cluster="ns/x")
    assert decision.action is RingAction.START
    assert decision.routing == RoutingState(R4, R3, "ns/x")
    assert decision.progress == Progress(Phase.PLANNING, R3.fingerprint, R4.fingerprint)
    paused = decide_ring(SPEC4, RoutingState(R3), ["a", "b", "c", "d"], None, paused=True)
    assert paused.progress is not None and paused.progress.phase is Phase.PAUSED


def test_a_transition_continues_then_finishes() -> None:
    moving = RoutingState(R4, R3)
    progress = Progress(Phase.MOVING, R3.fingerprint, R4.fingerprint, 100, 40)
    decision = decide_ring(SPEC4, moving, ["a", "b", "c", "d"], progress)
    assert decision.action is RingAction.CONTINUE and decision.progress == progress
    assert "40/100" in decision.message
    done = replace(progress, phase=Phase.COMPLETED, moved=100)
    finish = decide_ring(SPEC4, moving, ["a", "b", "c", "d"], done)
    assert finish.action is RingAction.FINISH and finish.routing == RoutingState(R4)


def test_progress_of_another_transition_is_replaced() -> None:
    stale = Progress(Phase.COMPLETED, "old1", "old2", 5, 5)
    decision = decide_ring(SPEC4, RoutingState(R4, R3), ["a", "b", "c", "d"], stale)
    assert decision.action is RingAction.CONTINUE
    assert decision.progress == Progress(Phase.PLANNING, R3.fingerprint, R4.fingerprint)


def test_pause_and_resume_during_a_transition() -> None:
    progress = Progress(Phase.MOVING, R3.fingerprint, R4.fingerprint, 10, 3)
    paused = decide_ring(SPEC4, RoutingState(R4, R3), list("abcd"), progress, paused=True)
    assert paused.progress is not None and paused.progress.phase is Phase.PAUSED
    resumed = decide_ring(SPEC4, RoutingState(R4, R3), list("abcd"), paused.progress)
    assert resumed.progress is not None and resumed.progress.phase is Phase.PLANNING  # recount, then move


def test_a_spec_change_during_a_transition_waits_for_it() -> None:
    five = RingSpec.of(["a", "b", "c", "d", "e"], virtual_nodes=32)
    progress = Progress(Phase.MOVING, R3.fingerprint, R4.fingerprint, 10, 3)
    decision = decide_ring(five, RoutingState(R4, R3), list("abcde"), progress)
    assert decision.action is RingAction.CONTINUE and "next rebalance starts" in decision.message


@pytest.mark.parametrize(
    ("published", "spec_shards"),
    [
        (RoutingState(R4), ["a", "b", "c"]),  # d removed without draining
        (RoutingState(R4, R3), ["a", "b", "c"]),  # removed while it is a target
        (RoutingState(R3, R4), ["a", "b", "c"]),  # removed while it is being drained
    ],
)
def test_removing_a_shard_that_may_hold_keys_is_refused(
    published: RoutingState, spec_shards: list[str]
) -> None:
    decision = decide_ring(SPEC3, published, spec_shards, None)
    assert decision.action is RingAction.REFUSE and decision.routing is None
    assert "d were removed" in decision.message and "draining: true" in decision.message


def test_draining_then_removing() -> None:
    # draining: d stays in spec.shards but leaves the desired ring
    start = decide_ring(SPEC3, RoutingState(R4), list("abcd"), None)
    assert start.action is RingAction.START and start.routing == RoutingState(R3, R4)
    # once complete the published ring no longer has d: removing it is fine
    assert decide_ring(SPEC3, RoutingState(R3), list("abc"), None).action is RingAction.STABLE


def test_replication_factor_changes_republish_without_moving() -> None:
    rf2 = RingSpec.of(["a", "b", "c"], virtual_nodes=32, replication_factor=2)
    decision = decide_ring(rf2, RoutingState(R3), list("abc"), None)
    assert decision.action is RingAction.PUBLISH and decision.routing is not None
    assert not decision.routing.moving
