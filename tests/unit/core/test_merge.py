"""core.merge: JSON merge patches and the smallest patch that changes a status."""

from __future__ import annotations

from typing import Any

import pytest

from fortress.core.merge import apply, changes

STATUS: dict[str, Any] = {
    "phase": "Active",
    "conditions": [{"type": "Ready", "status": "True"}],
    "projection": {"position": 12, "lagEvents": 0, "lastError": "boom"},
}


def test_a_patch_that_changes_nothing_is_empty() -> None:
    assert changes(STATUS, {"phase": "Active", "projection": {"position": 12}}) == {}
    assert changes(STATUS, {"missing": None}) == {}


def test_only_what_changes_is_kept_nested() -> None:
    patch = {"phase": "Active", "projection": {"position": 13, "lagEvents": 0, "lastError": None}}
    assert changes(STATUS, patch) == {"projection": {"position": 13, "lastError": None}}


def test_lists_are_replaced_whole() -> None:
    patch = {"conditions": [{"type": "Ready", "status": "False"}]}
    assert changes(STATUS, patch) == patch
    assert apply(STATUS, patch)["conditions"] == patch["conditions"]


def test_a_new_object_is_written_without_nulls() -> None:
    assert changes(STATUS, {"rebalance": {"phase": "Idle", "error": None}}) == {
        "rebalance": {"phase": "Idle"}
    }


@pytest.mark.parametrize(
    "patch",
    [
        {"phase": "Pending"},
        {"projection": {"lastError": None, "position": 1}},
        {"conditions": []},
        {"new": {"a": {"b": 1}}},
        {"projection": None},
    ],
)
def test_applying_the_changes_equals_applying_the_patch(patch: dict[str, Any]) -> None:
    assert apply(STATUS, changes(STATUS, patch)) == apply(STATUS, patch)


def test_apply_does_not_mutate_its_input() -> None:
    before = repr(STATUS)
    apply(STATUS, {"projection": {"position": 99}})
    assert repr(STATUS) == before
