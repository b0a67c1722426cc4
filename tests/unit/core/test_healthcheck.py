"""``fortress healthcheck``: the CRD verdicts (pure), the URLs it calls, its usage errors."""

from __future__ import annotations

from typing import Any

import pytest

from fortress.api import BY_KIND, KINDS
from fortress.cli import main
from fortress.commands.healthcheck import check_crds, crd_result, health_url

INFO = BY_KIND["CanaryRollout"]


def _crd(established: str | None = "True", served: bool = True, version: str = "v1alpha1") -> dict[str, Any]:
    conditions = [] if established is None else [{"type": "Established", "status": established}]
    return {
        "spec": {"versions": [{"name": version, "served": served}]},
        "status": {"conditions": [{"type": "NamesAccepted", "status": "True"}, *conditions]},
    }


@pytest.mark.parametrize(
    ("crd", "ok", "detail"),
    [
        (_crd(), True, "Established, serves v1alpha1"),
        (None, False, "not installed"),
        (_crd(established=None), False, "no Established condition"),
        (_crd(established="False"), False, "not Established"),
        (_crd(served=False), False, "not served"),
        (_crd(version="v1"), False, "version v1alpha1 not served"),
    ],
)
def test_crd_verdicts(crd: dict[str, Any] | None, ok: bool, detail: str) -> None:
    result = crd_result(INFO, crd)
    assert result.ok is ok and detail in result.detail
    assert result.name == "crd canaryrollouts.fortress.io"
    assert result.line().startswith("ok  " if ok else "FAIL")


def test_every_kind_is_checked_by_name() -> None:
    asked: list[str] = []

    def read(name: str) -> dict[str, Any] | None:
        asked.append(name)
        return _crd() if name != "drplans.fortress.io" else None

    results = check_crds(read)
    assert asked == [info.crd_name for info in KINDS]
    assert [r.name for r in results if not r.ok] == ["crd drplans.fortress.io"]


@pytest.mark.parametrize(
    ("base", "url"),
    [
        ("http://api:80", "http://api:80/healthz"),
        ("http://api:80/", "http://api:80/healthz"),
        ("http://op:8080/healthz", "http://op:8080/healthz"),
        ("https://api.example.com/ready", "https://api.example.com/ready"),
    ],
)
def test_health_urls(base: str, url: str) -> None:
    assert health_url(base) == url


@pytest.mark.parametrize(
    "argv",
    [
        ["healthcheck"],
        ["healthcheck", "--api", "http://x", "--attempts", "0"],
        ["healthcheck", "--timeout", "x"],
    ],
)
def test_usage_errors(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    try:
        code = main(argv)
    except SystemExit as exit_:
        code = int(exit_.code or 0)
    assert code == 2
    assert "healthcheck" in capsys.readouterr().err
