"""The rollout CLI's patches, the open-release rule of the history store, and the status helpers."""

from __future__ import annotations

import argparse
from typing import Any

import pytest
from pydantic import ValidationError

from fortress.api.canaryrollout import CanaryRolloutSpec, CanaryRolloutStatus
from fortress.commands import rollout as cli
from fortress.core.time import parse, readable, stamp_ms
from fortress.rollouts.act import replacing
from fortress.rollouts.status import parse_state
from fortress.rollouts.store import open_release

REQUEST = {"control": None}  # a request clears the deprecated spec.control


@pytest.mark.parametrize(
    ("verb", "expected"),
    [
        ("promote", {"spec": {"request": {"action": "promote", "requestId": "r"}, **REQUEST}}),
        ("promote-full", {"spec": {"request": {"action": "promoteFull", "requestId": "r"}, **REQUEST}}),
        ("abort", {"spec": {"request": {"action": "abort", "requestId": "r"}, **REQUEST}}),
        ("retry", {"spec": {"request": {"action": "retry", "requestId": "r"}, **REQUEST}}),
        ("pause", {"spec": {"paused": True}}),
        (
            "resume",
            {"spec": {"paused": False, "request": {"action": "resume", "requestId": "r"}, **REQUEST}},
        ),
    ],
)
def test_verb_patches(verb: str, expected: dict[str, Any]) -> None:
    patch = cli.request_patch(verb, "r")
    assert patch == expected
    if "request" in patch["spec"]:  # what the CLI writes is a valid spec.request
        written = {k: v for k, v in patch["spec"].items() if v is not None}
        CanaryRolloutSpec.model_validate({"service": "s", "template": {}, **written})


def test_unknown_verb_and_request_ids() -> None:
    with pytest.raises(ValueError, match="unknown verb 'rollback'"):
        cli.request_patch("rollback", "r")
    first, second = cli.new_request_id("abort"), cli.new_request_id("abort")
    assert first != second and first.startswith("abort-")


class FakeKube:
    """Records the patch the CLI sends and serves a status (the CLI's only Kubernetes calls)."""

    def __init__(self, status: dict[str, Any]) -> None:
        self.patches: list[tuple[str, str, dict[str, Any]]] = []
        self.status = status

    def patch(self, resource: Any, ns: str, name: str, body: dict[str, Any]) -> dict[str, Any]:
        assert (resource.group, resource.version, resource.plural) == (
            "fortress.io",
            "v1alpha1",
            "canaryrollouts",
        )
        self.patches.append((ns, name, body))
        return {}

    def get(self, resource: Any, ns: str, name: str) -> dict[str, Any] | None:
        return {"metadata": {"generation": 3}, "status": self.status} if name == "checkout" else None


def test_send_and_wait() -> None:
    last = {"requestId": "x-1", "action": "promote", "outcome": "Accepted", "at": "2024-01-01T00:00:00Z"}
    kube: Any = FakeKube({"lastRequest": last, "phase": "Paused", "message": "stage 2"})
    assert cli.send(kube, "shop", "checkout", "promote", "x-1") == "x-1"
    assert kube.patches == [("shop", "checkout", cli.request_patch("promote", "x-1"))]
    assert cli.wait_handled(kube, "shop", "checkout", "promote", "x-1", timeout=1) == kube.status
    assert cli.wait_handled(kube, "shop", "checkout", "promote", "other", timeout=0.3, poll=0.1) is None
    kube.status = {"handledRequestId": "x-0"}  # an operator of the previous release
    assert cli.wait_handled(kube, "shop", "checkout", "promote", "x-0", timeout=1) == kube.status
    kube.status = {"observedGeneration": 3}
    assert cli.wait_handled(kube, "shop", "checkout", "pause", "ignored", timeout=1) is not None
    assert cli.summary({"phase": "Paused", "message": "stage 2"}) == "phase Paused: stage 2"
    generated = cli.send(kube, "shop", "checkout", "abort")
    assert (
        generated.startswith("abort-checkout-")
        and kube.patches[-1][2]["spec"]["request"]["action"] == "abort"
    )
    with pytest.raises(LookupError, match="CanaryRollout shop/gone not found"):
        cli.wait_handled(kube, "shop", "gone", "promote", "x-1", timeout=1)


def test_cli_without_a_verb_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    parser = argparse.ArgumentParser()
    subparsers = parser.add_subparsers()
    cli.register(subparsers)
    args = parser.parse_args(["rollout"])
    assert args.func(args) == cli.EXIT_USAGE
    assert "promote-full" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "verb"),
    [
        (["rollout", "promote", "web"], "promote"),
        (["rollout", "promote", "--full", "web"], "promote-full"),
        (["rollout", "promote", "web", "--full", "-n", "shop"], "promote-full"),
        (["rollout", "promote-full", "web"], "promote-full"),
        (["rollout", "abort", "web"], "abort"),
    ],
)
def test_promote_full_is_a_flag_of_promote(argv: list[str], verb: str) -> None:
    parser = argparse.ArgumentParser()
    cli.register(parser.add_subparsers())
    assert cli.verb_of(parser.parse_args(argv)) == verb


def test_kubectl_plugin_delegates_rollout_verbs(
    tmp_path: Any, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """``kubectl fortress --kubeconfig F rollout promote --full NAME`` reaches this command with F."""
    from fortress import plugin
    from fortress.adapters import kube

    path = str(tmp_path / "kubeconfig")
    monkeypatch.setenv("KUBECONFIG", path)  # the plugin sets it; restored after the test
    loaded: list[tuple[str | None, str | None]] = []

    def load_cluster(kubeconfig: str | None = None, context: str | None = None) -> Any:
        loaded.append((kubeconfig, context))
        raise RuntimeError("no cluster here")

    monkeypatch.setattr(kube, "load_cluster", load_cluster)
    assert plugin.command_module("rollout") is cli
    argv = ["--kubeconfig", path, "--context", "ctx", "rollout", "promote", "--full", "web", "-n", "shop"]
    assert plugin.main(argv) == plugin.EXIT_API
    assert loaded == [(path, "ctx")]
    assert "error: no cluster here" in capsys.readouterr().err
    assert plugin.main(["rollout", "promote", "web", "--kubeconfig", "own", "-n", "shop"]) == plugin.EXIT_API
    assert loaded[-1] == ("own", None)
    assert plugin.main(["rollout", "promote", "--bogus", "web"]) == plugin.EXIT_USAGE


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        ({}, None),
        (
            {"phase": "Progressing", "stableRevision": "a", "rolloutStartedAt": "2024-01-01T00:00:00.000Z"},
            ("a", None),
        ),
        (
            {
                "phase": "Paused",
                "stableRevision": "a",
                "canaryRevision": "b",
                "rolloutStartedAt": "2024-01-01T00:00:00.000Z",
            },
            ("b", "a"),
        ),
        (
            {
                "phase": "Degraded",
                "stableRevision": "a",
                "canaryRevision": "b",
                "rolloutStartedAt": "2024-01-01T00:00:00.000Z",
            },
            None,
        ),
        ({"phase": "Succeeded", "stableRevision": "a", "rolloutStartedAt": "2024-01-01T00:00:00.000Z"}, None),
    ],
)
def test_open_release(status: dict[str, Any], expected: tuple[str, str | None] | None) -> None:
    found = open_release(CanaryRolloutStatus.model_validate(status))
    assert (None if found is None else (found.revision, found.previous)) == expected


def test_state_parsing_ignores_other_writers_and_rejects_garbage() -> None:
    state = parse_state(
        {"phase": "Succeeded", "stableRevision": "a", "kopf": {"progress": {}}, "currentStage": 1}
    )
    assert (state.phase, state.stable_revision, state.current_stage) == ("Succeeded", "a", 1)
    with pytest.raises(ValidationError):
        parse_state({"currentStage": "three"})


def test_template_replacement_patch_removes_old_keys() -> None:
    current = {
        "metadata": {"labels": {"a": "1", "old": "x"}},
        "spec": {"containers": [1], "nodeSelector": {"k": "v"}},
    }
    wanted = {"metadata": {"labels": {"a": "2"}}, "spec": {"containers": [2]}}
    assert replacing(current, wanted) == {
        "metadata": {"labels": {"old": None, "a": "2"}},
        "spec": {"nodeSelector": None, "containers": [2]},
    }


def test_status_times_keep_milliseconds() -> None:
    """The rollout's status stamps (core.time) keep the millisecond precision stage pauses need."""
    moment = parse("2024-05-01T10:00:00.250Z")
    assert moment is not None and stamp_ms(moment) == "2024-05-01T10:00:00.250Z"
    assert parse("2024-05-01T10:00:00Z") is not None and parse("yesterday") is None and parse(None) is None
    import datetime as dt

    assert [readable(dt.timedelta(seconds=x)) for x in (0.3, 2, 45, 125, 3700)] == [
        "0.3s",
        "2s",
        "45s",
        "2m05s",
        "1h01m",
    ]
