"""``kubectl fortress`` verbs delegated to the capabilities' command modules, the help and usage
exit codes, and the tree/age/watch helpers (no Kubernetes API needed)."""

from __future__ import annotations

import argparse
import datetime as dt
import importlib.machinery
import json
import sys
import types
from collections.abc import Iterator
from typing import Any

import pytest

from fortress import plugin

NOW = dt.datetime(2025, 1, 1, 12, 0, tzinfo=dt.UTC)


@pytest.fixture
def fake_ledger_command(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[argparse.Namespace]]:
    """A stand-in ``fortress.commands`` module serving the plugin's ``ledger`` verb."""
    calls: list[argparse.Namespace] = []
    name = "fortress.commands.zz_plugin_probe"
    module = types.ModuleType(name)
    module.__spec__ = importlib.machinery.ModuleSpec(name, None)

    def balance(args: argparse.Namespace) -> int:
        calls.append(args)
        return 0 if args.tenant == "acme" else 1

    def register(subparsers: Any) -> None:
        parser = subparsers.add_parser("ledger", help="ledger commands")
        parser.add_argument("--kubeconfig", default=None)
        verbs = parser.add_subparsers(dest="ledger_verb", metavar="VERB")
        one = verbs.add_parser("balance", help="a tenant's balance")
        one.add_argument("tenant")
        one.set_defaults(func=balance)

    module.register = register  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, name, module)
    monkeypatch.setitem(plugin.VERB_GROUPS, "ledger", ("zz_plugin_probe",))
    monkeypatch.delenv("KUBECONFIG", raising=False)
    yield calls


def test_a_delegated_verb_runs_the_command_module(fake_ledger_command: list[argparse.Namespace]) -> None:
    assert plugin.main(["--kubeconfig", "/tmp/k", "ledger", "balance", "acme"]) == plugin.EXIT_OK
    assert plugin.main(["ledger", "balance", "other"]) == 1  # the command's own exit code
    assert [(c.tenant, c.kubeconfig) for c in fake_ledger_command] == [("acme", "/tmp/k"), ("other", None)]


def test_delegated_help_and_usage_errors(
    fake_ledger_command: list[argparse.Namespace], capsys: pytest.CaptureFixture[str]
) -> None:
    assert plugin.main(["ledger", "--help"]) == plugin.EXIT_OK
    assert "balance" in capsys.readouterr().out
    assert plugin.main(["ledger", "balance"]) == plugin.EXIT_USAGE  # missing tenant
    assert plugin.main(["ledger"]) == plugin.EXIT_USAGE  # no verb
    assert not fake_ledger_command


@pytest.mark.parametrize("verb", sorted(plugin.VERB_GROUPS))
def test_each_capability_verb_is_served_or_says_it_is_not_available(
    verb: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code = plugin.main([verb, "--help"])
    captured = capsys.readouterr()
    if plugin.command_module(verb) is None:
        assert code == plugin.EXIT_USAGE and "not available in this version" in captured.err
    else:
        assert code == plugin.EXIT_OK and captured.out


def test_help_lists_every_verb_and_the_exit_codes(capsys: pytest.CaptureFixture[str]) -> None:
    assert plugin.main(["--help"]) == plugin.EXIT_OK
    text = capsys.readouterr().out
    assert all(verb in text for verb in ["get", *plugin.VERB_GROUPS])
    assert "Exit codes" in text


@pytest.mark.parametrize(
    "argv",
    [
        ["get", "--output", "yaml"],
        ["get", "--interval", "0"],
        ["--bogus"],
        ["explode"],
        ["get", "a", "b", "c"],
    ],
)
def test_usage_errors_exit_2(argv: list[str]) -> None:
    assert plugin.main(argv) == plugin.EXIT_USAGE


# --------------------------------------------------------------------------- rendering helpers


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0, "0s"),
        (119, "119s"),
        (120, "2m"),
        (310, "5m10s"),
        (2820, "47m"),
        (11100, "3h5m"),
        (72000, "20h"),
        (273600, "3d4h"),
        (30 * 86400, "30d"),
        (740 * 86400, "2y10d"),
    ],
)
def test_age_reads_like_kubectl(seconds: int, text: str) -> None:
    assert plugin.age(NOW - dt.timedelta(seconds=seconds), NOW) == text
    assert plugin.age(None, NOW) == "-"


def _resource(kind: str, name: str, uid: str, ready: str, owners: tuple[str, ...] = ()) -> plugin.Node:
    row = {"kind": kind, "name": name, "ready": ready, "phase": "Accepted", "reason": "SpecAccepted"}
    return plugin.Node(kind, "ns", name, uid, owners, NOW, True, row=row)


def _owned(kind: str, name: str, owner: str, summary: str) -> plugin.Node:
    return plugin.Node(kind, "ns", name, f"u-{name}", (owner,), NOW, False, summary=summary)


def test_tree_nests_owned_objects_and_owned_fortress_resources() -> None:
    plan = _resource("DRPlan", "orders", "p1", "True")
    region = _resource("DRRegion", "orders-aws", "r1", "False", owners=("p1",))
    listing = plugin.build_tree(
        [region, plan],
        [_owned("Service", "orders-primary", "p1", "ClusterIP"), _owned("Lease", "x", "nobody", "")],
    )
    assert [root.name for root in listing.roots] == ["orders"]
    table = plugin.render_table(listing, NOW).splitlines()
    assert [line.split()[1] for line in table[1:]] == ["DRPlan/orders", "├─", "└─"]
    assert "DRRegion/orders-aws" in table[2] and "Service/orders-primary" in table[3]
    assert plugin.exit_code(listing) == plugin.EXIT_NOT_READY
    items = {item["name"]: item for item in json.loads(plugin.render_json(listing))["items"]}
    assert items["orders-aws"]["owner"] == "p1" and items["orders"]["owned"][0]["name"] == "orders-primary"


def test_empty_listing() -> None:
    listing = plugin.build_tree([], [])
    assert plugin.render_table(listing, NOW) == "No Fortress resources found."
    assert plugin.exit_code(listing) == plugin.EXIT_OK


def test_watch_prints_only_changes_and_returns_the_last_state_at_the_timeout() -> None:
    states = iter(["False", "False", "True", "True", "True"])
    printed: list[str] = []
    clock = iter(range(100))

    def read() -> plugin.Listing:
        return plugin.build_tree([_resource("SyntheticDataset", "d", "u", next(states))], [])

    code = plugin.watch(
        read, "json", 1.0, 4.0, printed.append, clock=lambda: float(next(clock)), sleep=lambda _: None
    )
    assert code == plugin.EXIT_OK
    assert [json.loads(text)["items"][0]["ready"] for text in printed] == ["False", "True"]


def test_watch_until_ready_stops_at_the_first_ready_state() -> None:
    states = iter(["False", "True", "False"])
    reads: list[int] = []

    def read() -> plugin.Listing:
        reads.append(1)
        return plugin.build_tree([_resource("SyntheticDataset", "d", "u", next(states))], [])

    code = plugin.watch(read, "table", 1.0, None, lambda _: None, until_ready=True, sleep=lambda _: None)
    assert code == plugin.EXIT_OK and len(reads) == 2


@pytest.mark.parametrize(
    ("kind", "expected"),
    [(None, 7), ("all", 7), ("cro", 1), ("CanaryRollout", 1), ("canaryrollouts.fortress.io", 1), ("drr", 1)],
)
def test_select_kinds(kind: str | None, expected: int) -> None:
    assert len(plugin.select_kinds(kind)) == expected
