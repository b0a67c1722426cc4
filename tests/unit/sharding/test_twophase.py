"""Two-phase commit, pure parts: gids, typed operations, and the decisions of recovery."""

from __future__ import annotations

from typing import Any

import pytest

from fortress.sharding.errors import InsufficientFunds, InvalidKey, InvalidValue, KeyNotFound, NotABalance
from fortress.sharding.gid import Gid, cluster_tag
from fortress.sharding.operations import MultiSet, Operation, Transfer, apply_operations, validate_operations
from fortress.sharding.recovery_plan import (
    Action,
    LogEntry,
    PreparedTx,
    completed_rows,
    decide_recovery,
    resolve,
)

TAG = cluster_tag("default/tenants")
TX = "0123456789abcdef0123456789abcdef"


def gid(
    participant: str | None = "shard-b", coordinator: str = "shard-a", tag: str = TAG, txid: str = TX
) -> str:
    base = f"fx1:{tag}:{coordinator}:{txid}"
    return f"{base}:{participant}" if participant else base


def test_gid_format_round_trips() -> None:
    parsed = Gid.parse(gid())
    assert parsed == Gid(TAG, "shard-a", TX, "shard-b")
    assert parsed.log_gid == gid(None)
    assert parsed.for_participant("shard-c") == gid("shard-c")
    assert len(TAG) == 8 and cluster_tag("default/tenants") == TAG != cluster_tag("other/tenants")


@pytest.mark.parametrize(
    "text",
    [
        "",
        "fx2:" + gid()[4:],
        f"fx1:{TAG}:shard-a:{TX[:-1]}:b",
        f"fx1:XYZ:shard-a:{TX}:b",
        "pg_xact_1",
        gid("Bad"),
    ],
)
def test_foreign_or_malformed_gids_are_not_parsed(text: str) -> None:
    assert Gid.parse(text) is None


# ----------------------------------------------------------------------------- operations


@pytest.mark.parametrize(
    ("operations", "error", "message"),
    [
        ([], InvalidValue, "at least one operation"),
        ([Transfer("a", "a", 1)], InvalidValue, "to itself"),
        ([Transfer("a", "b", 0)], InvalidValue, r"operations\[0\].amount"),
        ([Transfer("a", "b", -5)], InvalidValue, "positive integer"),
        ([Transfer("a", "b", True)], InvalidValue, "positive integer"),  # a bool is not an amount
        ([Transfer("a", "b", 1.5)], InvalidValue, "positive integer"),  # type: ignore[arg-type]
        ([Transfer("", "b", 1)], InvalidKey, "non-empty"),
        ([Transfer("a\x00", "b", 1)], InvalidKey, "control characters"),
        ([MultiSet({})], InvalidValue, "at least one key"),
        ([MultiSet({"k": float("nan")})], InvalidValue, "not JSON-serialisable"),
        ([MultiSet({"k": object()})], InvalidValue, "not JSON-serialisable"),
        ([Transfer("a", "b", 1)] * 101, InvalidValue, "at most 100"),
    ],
)
def test_invalid_operations(operations: list[Operation], error: type[Exception], message: str) -> None:
    with pytest.raises(error, match=message):
        validate_operations(operations)


def test_keys_are_collected_sorted() -> None:
    assert validate_operations([Transfer("z", "a", 1), MultiSet({"m": 1, "a": 2})]) == ["a", "m", "z"]


@pytest.mark.parametrize(
    ("current", "operations", "expected"),
    [
        (
            {"a": {"balance": 10}, "b": {"balance": 0, "owner": "x"}},
            [Transfer("a", "b", 10)],
            {"a": {"balance": 0}, "b": {"balance": 10, "owner": "x"}},
        ),
        (
            {"a": {"balance": 10}, "b": {"balance": 0}, "c": {"balance": 0}},
            [Transfer("a", "b", 6), Transfer("b", "c", 5)],
            {"a": {"balance": 4}, "b": {"balance": 1}, "c": {"balance": 5}},
        ),
        ({"x": None, "y": {"v": 1}}, [MultiSet({"x": [1], "y": None})], {"x": [1], "y": None}),
    ],
)
def test_apply_operations(
    current: dict[str, Any], operations: list[Operation], expected: dict[str, Any]
) -> None:
    assert apply_operations(operations, current) == expected


@pytest.mark.parametrize(
    ("current", "error"),
    [
        ({"a": None, "b": {"balance": 1}}, KeyNotFound),
        ({"a": {"balance": 1}, "b": None}, KeyNotFound),
        ({"a": {"balance": "1"}, "b": {"balance": 1}}, NotABalance),
        ({"a": {"balance": True}, "b": {"balance": 1}}, NotABalance),
        ({"a": [1], "b": {"balance": 1}}, NotABalance),
        ({"a": {"balance": 4}, "b": {"balance": 1}}, InsufficientFunds),
    ],
)
def test_transfer_business_rules(current: dict[str, Any], error: type[Exception]) -> None:
    with pytest.raises(error):
        apply_operations([Transfer("a", "b", 5)], current)


# ----------------------------------------------------------------------------- recovery decisions

COMMIT = LogEntry(gid(None), "commit", ("shard-b", "shard-c"))
ABORT = LogEntry(gid(None), "abort", ("shard-b", "shard-c"))
OBSERVED = ("shard-a", "shard-b", "shard-c")


def plan(
    prepared: list[PreparedTx], log: dict[str, LogEntry], readable: tuple[str, ...] = ("shard-a",)
) -> Any:
    return decide_recovery(
        prepared, log, tag=TAG, grace=60.0, readable_coordinators=readable, observed_shards=OBSERVED
    )


@pytest.mark.parametrize(
    ("age", "log", "readable", "action", "record_abort"),
    [
        (1.0, {COMMIT.gid: COMMIT}, ("shard-a",), Action.COMMIT, ()),
        (999.0, {COMMIT.gid: COMMIT}, ("shard-a",), Action.COMMIT, ()),  # a commit is always carried out
        (1.0, {ABORT.gid: ABORT}, ("shard-a",), Action.ROLLBACK, ()),
        (1.0, {}, ("shard-a",), Action.WAIT, ()),  # young, no decision: the coordinator may still decide
        (59.9, {}, ("shard-a",), Action.WAIT, ()),
        (60.0, {}, ("shard-a",), Action.ROLLBACK, (gid(None),)),  # presumed abort, recorded first
        (600.0, {gid(None): LogEntry(gid(None), None)}, ("shard-a",), Action.ROLLBACK, (gid(None),)),
        (600.0, {}, (), Action.WAIT, ()),  # the coordinator's log is unreadable: never presume abort
        (600.0, {gid(None): LogEntry(gid(None), "maybe")}, ("shard-a",), Action.WAIT, ()),
    ],
)
def test_recovery_decisions(
    age: float,
    log: dict[str, LogEntry],
    readable: tuple[str, ...],
    action: Action,
    record_abort: tuple[str, ...],
) -> None:
    result = plan([PreparedTx("shard-b", gid(), age)], log, readable)
    assert [r.action for r in result.resolutions] == [action]
    assert result.record_abort == record_abort
    assert result.in_doubt == (1 if action is Action.WAIT else 0)
    assert result.resolutions[0].reason


def test_other_clusters_and_foreign_prepared_transactions_are_ignored() -> None:
    prepared = [
        PreparedTx("shard-b", gid(tag=cluster_tag("other/cluster")), 999.0),
        PreparedTx("shard-b", "someone-elses-gid", 999.0),
        PreparedTx("shard-b", gid(None), 999.0),  # a log gid, not a participant gid
    ]
    assert plan(prepared, {}).resolutions == ()


def test_every_participant_of_a_transaction_gets_the_same_decision() -> None:
    prepared = [PreparedTx("shard-b", gid("shard-b"), 70.0), PreparedTx("shard-c", gid("shard-c"), 70.0)]
    result = plan(prepared, {})
    assert {r.action for r in result.resolutions} == {Action.ROLLBACK}
    assert result.record_abort == (gid(None),)  # once per transaction


def test_completed_rows_are_marked_only_without_prepared_participants_left() -> None:
    other = LogEntry(gid(None, txid="f" * 32), "commit", ("shard-b",))
    done = LogEntry(gid(None, txid="e" * 32), "commit", ("shard-b",), completed=True)
    unseen = LogEntry(gid(None, txid="d" * 32), "abort", ("shard-z",))
    log = {COMMIT.gid: COMMIT, other.gid: other, done.gid: done, unseen.gid: unseen}
    result = plan([PreparedTx("shard-b", gid(), 5.0)], log)
    assert result.mark_completed == (other.gid,)


def test_negative_grace_is_invalid() -> None:
    with pytest.raises(ValueError, match="grace period"):
        decide_recovery([], {}, tag=TAG, grace=-1, readable_coordinators=(), observed_shards=())


@pytest.mark.parametrize(
    ("entry", "readable", "age", "action", "reason"),
    [
        (None, False, 999.0, Action.WAIT, "unreachable or unknown"),
        (LogEntry(gid(None), "commit"), True, 0.0, Action.COMMIT, "decision is commit"),
        (LogEntry(gid(None), "abort"), True, 0.0, Action.ROLLBACK, "decision is abort"),
        (LogEntry(gid(None), "maybe"), True, 999.0, Action.WAIT, "unknown decision 'maybe'"),
        (LogEntry(gid(None), None), True, 60.0, Action.ROLLBACK, "presumed abort"),
        (None, True, 59.0, Action.WAIT, "no decision yet, 59.0s old"),
    ],
)
def test_resolve_one_participant(
    entry: LogEntry | None, readable: bool, age: float, action: Action, reason: str
) -> None:
    parsed = Gid.parse(gid())
    assert parsed is not None
    resolution = resolve(PreparedTx("shard-b", gid(), age), parsed, entry, readable, grace=60.0)
    assert resolution.action is action and reason in resolution.reason
    assert (resolution.shard, resolution.gid) == ("shard-b", gid())


@pytest.mark.parametrize(
    ("entry", "still_prepared", "observed", "completed"),
    [
        (LogEntry("g", "commit", ("shard-b",)), set(), {"shard-b"}, ["g"]),
        (LogEntry("g", "abort", ("shard-b", "shard-c")), set(), {"shard-b", "shard-c"}, ["g"]),
        (LogEntry("g", "commit", ("shard-b",)), {"g"}, {"shard-b"}, []),  # a participant still prepared
        (LogEntry("g", "commit", ("shard-b", "shard-c")), set(), {"shard-b"}, []),  # shard-c not listed
        (LogEntry("g", "commit", ("shard-b",), completed=True), set(), {"shard-b"}, []),
        (LogEntry("g", None, ("shard-b",)), set(), {"shard-b"}, []),  # undecided
    ],
)
def test_completed_rows(
    entry: LogEntry, still_prepared: set[str], observed: set[str], completed: list[str]
) -> None:
    assert completed_rows({entry.gid: entry}, still_prepared, observed) == completed
