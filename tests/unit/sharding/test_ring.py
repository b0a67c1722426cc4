"""The consistent-hash ring: layout rules, lookups, movement bounds, balance, serialisation, bad input."""

from __future__ import annotations

import bisect
import json
from collections import Counter
from typing import Any

import pytest
import xxhash

from fortress.sharding.ring import (
    CONFIGMAP_KEY,
    Ring,
    RingError,
    RingSpec,
    RoutingState,
    ShardWeight,
    imbalance,
    moved_keys,
)

KEYS = [f"tenant:{i}" for i in range(100_000)]


def shards(n: int) -> list[str]:
    return [f"shard-{i}" for i in range(n)]


def test_layout_is_pinned_across_versions() -> None:
    """Changing the layout rules would silently misroute every key: these values must never change."""
    ring = Ring.build(shards(8))
    assert ring.fingerprint == "64f468ff1c3e5f39"
    assert ring.points == 8 * 256
    assert [ring.owner(k) for k in ("a", "tenant:1", "user/42", "ünïcode")] == [
        "shard-2",
        "shard-4",
        "shard-0",
        "shard-5",
    ]
    assert Ring.build(shards(8), hash_function="xxh64").fingerprint == "31271377337f6671"
    # the documented rule, recomputed from scratch
    points = sorted((xxhash.xxh3_64_intdigest(f"{s}#{i}".encode()), s) for s in shards(8) for i in range(256))
    hashes = [p[0] for p in points]
    for key in KEYS[:2000]:
        index = bisect.bisect_left(hashes, xxhash.xxh3_64_intdigest(key.encode()))
        assert ring.owner(key) == points[index % len(points)][1]


def test_layout_depends_only_on_the_shard_list() -> None:
    a = Ring.build(["c", ("a", 2), "b"])
    b = Ring.build([ShardWeight("b"), ShardWeight("a", 2), ShardWeight("c")])
    assert a == b and a.fingerprint == b.fingerprint
    assert a.owners(KEYS[:1000]) == b.owners(KEYS[:1000])
    assert Ring.build(["a", "b"], hash_function="xxh64").fingerprint != Ring.build(["a", "b"]).fingerprint
    assert Ring.build(["a", "b"], virtual_nodes=128).fingerprint != Ring.build(["a", "b"]).fingerprint


def test_xxh64_option_follows_the_same_rule() -> None:
    ring = Ring.build(shards(3), virtual_nodes=16, hash_function="xxh64")
    points = sorted((xxhash.xxh64_intdigest(f"{s}#{i}".encode()), s) for s in shards(3) for i in range(16))
    hashes = [p[0] for p in points]
    for key in KEYS[:500]:
        index = bisect.bisect_left(hashes, xxhash.xxh64_intdigest(key.encode()))
        assert ring.owner(key) == points[index % len(points)][1]


def test_keys_past_the_last_point_wrap_to_the_first() -> None:
    ring = Ring.build(shards(4), virtual_nodes=4)
    last = max(xxhash.xxh3_64_intdigest(f"{s}#{i}".encode()) for s in shards(4) for i in range(4))
    first_owner = min(
        (xxhash.xxh3_64_intdigest(f"{s}#{i}".encode()), s) for s in shards(4) for i in range(4)
    )[1]
    wrapped = [k for k in KEYS if ring.hash_key(k) > last]
    assert wrapped, "some keys hash past the last point"
    assert {ring.owner(k) for k in wrapped} == {first_owner}


def test_owners_matches_owner() -> None:
    ring = Ring.build(shards(5))
    assert ring.owners(KEYS[:5000]) == [ring.owner(k) for k in KEYS[:5000]]


@pytest.mark.parametrize("n", [1, 2, 3, 4, 7, 8, 12, 16])
@pytest.mark.parametrize("hash_function", ["xxh3_64", "xxh64"])
def test_adding_a_shard_moves_at_most_115_percent_of_the_ideal(n: int, hash_function: str) -> None:
    old = Ring.build(shards(n), hash_function=hash_function)
    new = Ring.build(shards(n + 1), hash_function=hash_function)
    moves = list(moved_keys(old, new, KEYS))
    ideal = len(KEYS) / (n + 1)
    assert len(moves) <= 1.15 * ideal, f"{len(moves)} moved, ideal {ideal:.0f}"
    assert {m.target for m in moves} == {f"shard-{n}"}  # keys only move to the new shard
    assert all(m.source == old.owner(m.key) and m.target == new.owner(m.key) for m in moves)


def test_moved_keys_yields_exactly_the_keys_whose_owner_changes() -> None:
    old = Ring.build(shards(6))
    new = Ring.build(shards(6)[:3] + shards(6)[4:])  # shard-3 removed
    moved = {m.key for m in moved_keys(old, new, iter(KEYS[:20_000]))}
    expected = {k for k in KEYS[:20_000] if old.owner(k) != new.owner(k)}
    assert moved == expected
    assert all(old.owner(k) == "shard-3" for k in moved)  # removal only moves the removed shard's keys
    assert list(moved_keys(old, Ring.build(shards(6)), KEYS)) == []


def test_reweighting_moves_keys_towards_the_heavier_shard_only() -> None:
    old = Ring.build(shards(4))
    new = Ring.build([*shards(3), ("shard-3", 2)])
    moves = list(moved_keys(old, new, KEYS[:20_000]))
    assert moves and {m.target for m in moves} == {"shard-3"}
    share = new.shares()["shard-3"]
    assert 0.35 < share < 0.45  # 2 / 5 of the space


def test_imbalance_with_256_virtual_nodes_over_8_shards_is_bounded() -> None:
    ring = Ring.build(shards(8), virtual_nodes=256)
    exact = max(ring.shares().values()) * 8
    sampled = imbalance(Counter(ring.owners(KEYS)))
    print(f"imbalance over 8 shards x 256 vnodes: exact {exact:.3f}, sampled {sampled:.3f}")
    assert sampled is not None
    assert 1.0 <= exact <= 1.15
    assert sampled <= 1.15
    few = Ring.build(shards(8), virtual_nodes=4)
    assert max(few.shares().values()) * 8 > exact  # fewer virtual nodes, worse balance


def test_shares_sum_to_one() -> None:
    ring = Ring.build([*shards(3), ("heavy", 3)], virtual_nodes=64)
    assert sum(ring.shares().values()) == pytest.approx(1.0)


def test_preference_lists_are_distinct_and_start_with_the_owner() -> None:
    ring = Ring.build(shards(5), replication_factor=3)
    for key in KEYS[:2000]:
        prefs = ring.preference_list(key)
        assert len(prefs) == 3 == len(set(prefs))
        assert prefs[0] == ring.owner(key)
    assert len(ring.preference_list("k", 5)) == 5
    with pytest.raises(RingError):
        ring.preference_list("k", 6)
    with pytest.raises(RingError):
        ring.preference_list("k", 0)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"shards": []}, "at least one shard"),
        ({"shards": ["a", "a"]}, "duplicate shard ids: a"),
        ({"shards": [("a", 0)]}, "weight must be an integer >= 1"),
        ({"shards": [("a", True)]}, "weight must be an integer >= 1"),
        ({"shards": [""]}, "invalid shard id"),
        ({"shards": [" a"]}, "invalid shard id"),
        ({"shards": ["a"], "virtual_nodes": 0}, "virtualNodes must be an integer >= 1"),
        ({"shards": ["a"], "hash_function": "md5"}, "unknown hash function 'md5'"),
        ({"shards": ["a", "b"], "replication_factor": 3}, "replicationFactor 3"),
        ({"shards": ["a"], "replication_factor": 0}, "replicationFactor 0"),
        ({"shards": [("a", 100)], "virtual_nodes": 100_000}, "more than"),
    ],
)
def test_invalid_rings_are_rejected_with_a_clear_message(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(RingError, match=message):
        Ring.build(**kwargs)


def test_serialisation_round_trip_and_fingerprint_check() -> None:
    current = Ring.build([*shards(4), ("shard-4", 2)], virtual_nodes=64, replication_factor=2)
    previous = Ring.build(shards(4), virtual_nodes=64, replication_factor=2)
    state = RoutingState(current, previous, "default/tenants")
    data = state.to_configmap_data()
    document = json.loads(data[CONFIGMAP_KEY])
    assert document["phase"] == "Moving" and document["keyFormat"] == "{shard}#{index}"
    assert document["current"]["fingerprint"] == current.fingerprint
    back = RoutingState.from_configmap_data(data)
    assert back.current == current and back.previous == previous and back.cluster == "default/tenants"
    assert back.current.owners(KEYS[:100]) == current.owners(KEYS[:100])
    stable = RoutingState(current, None, "x")
    assert json.loads(stable.to_configmap_data()[CONFIGMAP_KEY])["previous"] is None
    assert RoutingState(current, current).to_document()["phase"] == "Stable"


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (None, "no 'ring.json' key"),
        ({"other": "{}"}, "no 'ring.json' key"),
        ({CONFIGMAP_KEY: "{not json"}, "not valid JSON"),
        ({CONFIGMAP_KEY: "[]"}, "must be a JSON object"),
        ({CONFIGMAP_KEY: json.dumps({"formatVersion": 2})}, "unsupported ring formatVersion 2"),
        ({CONFIGMAP_KEY: json.dumps({"formatVersion": 1})}, "no 'current' ring"),
        ({CONFIGMAP_KEY: json.dumps({"formatVersion": 1, "current": {"x": 1}})}, "malformed ring definition"),
        (
            {
                CONFIGMAP_KEY: json.dumps(
                    {"formatVersion": 1, "current": {"shards": [{"id": "a"}], "fingerprint": "0000"}}
                )
            },
            "fingerprint mismatch",
        ),
    ],
)
def test_malformed_ring_documents_are_rejected(data: dict[str, str] | None, message: str) -> None:
    with pytest.raises(RingError, match=message):
        RoutingState.from_configmap_data(data)


def test_routing_state_locates_moving_keys() -> None:
    old, new = Ring.build(shards(3)), Ring.build(shards(4))
    state = RoutingState(new, old)
    assert state.moving and state.shard_ids() == tuple(shards(4))
    for key in KEYS[:3000]:
        location = state.locate(key)
        assert location.owner == new.owner(key)
        assert location.source == (old.owner(key) if old.owner(key) != new.owner(key) else None)
    stable = RoutingState(new)
    assert not stable.moving and all(not stable.locate(k).moving for k in KEYS[:100])


def test_ring_spec_dict_round_trip() -> None:
    spec = RingSpec.of([("b", 2), "a"], virtual_nodes=8, hash_function="xxh64", replication_factor=2)
    assert RingSpec.from_dict(spec.to_dict()) == spec
    assert spec.shard_ids == ("a", "b")


@pytest.mark.parametrize(
    ("counts", "expected"),
    [({}, None), ({"a": 0, "b": 0}, None), ({"a": 10, "b": 10}, 1.0), ([30, 10, 20], 1.5), ([5], 1.0)],
)
def test_imbalance_is_max_over_mean(counts: dict[str, int] | list[int], expected: float | None) -> None:
    assert imbalance(counts) == expected


def test_imbalance_counts_keys_per_unit_of_weight() -> None:
    assert imbalance({"a": 100, "b": 100, "d": 200}, {"d": 2}) == 1.0
    assert imbalance({"a": 100, "d": 100}, {"a": 1, "d": 3}) == pytest.approx(2.0)
    assert imbalance({"a": 5}, {"a": 0}) is None
