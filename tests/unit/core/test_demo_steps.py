"""Choosing the demo's capability steps (`fortress demo --only`)."""

from __future__ import annotations

import asyncio

import pytest

from fortress_dev.demo.runner import run_demo, select_steps, step_modules, step_name

STEPS = ["dr", "ledger", "rollouts", "sharding"]


def test_every_step_when_none_is_named() -> None:
    assert select_steps(STEPS, []) == STEPS


def test_named_steps_keep_the_demo_order() -> None:
    assert select_steps(STEPS, ["sharding", "ledger"]) == ["ledger", "sharding"]


def test_an_unknown_step_is_refused_with_the_valid_ones() -> None:
    with pytest.raises(ValueError, match=r"no demo step ledgr; the steps are: dr, ledger, rollouts"):
        select_steps(STEPS, ["ledger", "ledgr"])


def test_disaster_is_still_accepted_for_dr() -> None:
    assert select_steps(STEPS, ["disaster"]) == ["dr"]


def test_the_steps_are_the_modules_of_the_demo_package_in_the_subsystems_order() -> None:
    names = [step_name(module) for module in step_modules()]
    assert names[:4] == ["ledger", "sharding", "dr", "rollouts"]
    assert "runner" not in names


def test_run_demo_refuses_an_unknown_step_before_starting_anything() -> None:
    said: list[str] = []
    assert asyncio.run(run_demo(only=["nope"], say=said.append)) == 2
    assert len(said) == 1 and said[0].startswith("fortress demo --only: no demo step nope; the steps are: ")
    assert "ledger" in said[0]  # nothing was started: the refusal is the only output
