"""Analysis: checks per stage, safe templating, answer parsing and classification (no network)."""

from __future__ import annotations

import math
from typing import Any

import pytest

from fortress.api.canaryrollout import CanaryRolloutSpec, check
from fortress.rollouts.analysis import (
    ERROR_RATE,
    P95_LATENCY,
    Check,
    QueryError,
    Target,
    checks,
    classify,
    extract,
    quote,
    render,
    thresholds_for,
    window,
)
from fortress.rollouts.model import Raw

TARGET = Target(namespace="shop", name="checkout", revision="abc123", colour="green")


def spec(**analysis: Any) -> CanaryRolloutSpec:
    return CanaryRolloutSpec.model_validate(
        {
            "service": "checkout",
            "template": {"spec": {"containers": [{"name": "a", "image": "x"}]}},
            "strategy": {
                "type": "canary",
                "canary": {
                    "stages": [
                        {"weight": 10, "thresholds": {"maxErrorRate": 0.05}},
                        {"weight": 100},
                    ]
                },
            },
            "analysis": {"prometheusAddress": "http://prom:9090", **analysis},
        }
    )


def test_builtin_checks_and_stage_overrides() -> None:
    s = spec(interval="30s", metrics=[{"name": "saturation", "query": "max(x{ {{ .Labels }} })", "max": 0.9}])
    first = checks(s, 0)
    assert [c.name for c in first] == [ERROR_RATE, P95_LATENCY, "saturation"]
    assert first[0].max == 0.05, "the stage's maxErrorRate overrides"
    assert first[1].max == 500.0, "the default p95 limit is kept"
    assert checks(s, 1)[0].max == 0.01
    assert thresholds_for(s, None).max_error_rate == 0.01
    assert "[60s]" in first[0].query and 'code=~"5.."' in first[0].query
    assert window(spec(interval="5s")) == "30s"


def test_rendering_fills_every_placeholder() -> None:
    query = 'sum(rate(http_requests_total{ {{ .Labels }}, code=~"5.." }[1m])) and on() vector({{.Revision}})'
    rendered = render(query, TARGET)
    assert rendered == (
        'sum(rate(http_requests_total{ namespace="shop",fortress_io_rollout="checkout",'
        'fortress_io_revision="abc123", code=~"5.." }[1m])) and on() vector(abc123)'
    )
    assert render("x{{{ .Labels }}}", TARGET).startswith('x{namespace="shop"')
    assert render('up{colour="{{ .Colour }}",ns="{{ .Namespace }}",n="{{ .Name }}"}', TARGET) == (
        'up{colour="green",ns="shop",n="checkout"}'
    )


def test_templated_values_cannot_break_out_of_their_string() -> None:
    evil = Target(namespace='a"} or vector(1) #', name="n\\", revision="r\nx", colour="c")
    rendered = render("x{ {{ .Labels }} }", evil)
    assert 'namespace="a\\"} or vector(1) #"' in rendered
    assert 'fortress_io_rollout="n\\\\"' in rendered and 'fortress_io_revision="r\\nx"' in rendered
    assert quote('"') == '\\"'


def test_unknown_placeholder_is_named() -> None:
    with pytest.raises(ValueError, match=r"unknown placeholder \{\{ \.Pod \}\}"):
        render("x{ {{ .Pod }} }", TARGET)


def test_the_spec_check_rejects_unknown_placeholders() -> None:
    bad = spec(metrics=[{"name": "m", "query": "x{ {{ .Pods }} }", "max": 1}])
    issues = check(bad)
    assert [i.field for i in issues] == ["spec.analysis.metrics[0].query"]
    assert "unknown placeholder {{ .Pods }}" in issues[0].message


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        ({"status": "success", "data": {"resultType": "vector", "result": []}}, None),
        (
            {
                "status": "success",
                "data": {"resultType": "vector", "result": [{"metric": {}, "value": [1, "0.25"]}]},
            },
            0.25,
        ),
        (
            {
                "status": "success",
                "data": {"resultType": "vector", "result": [{"metric": {}, "value": [1, "NaN"]}]},
            },
            None,
        ),
        ({"status": "success", "data": {"resultType": "scalar", "result": [1, "3"]}}, 3.0),
        (
            {"status": "success", "data": {"resultType": "vector", "result": [{"value": [1, "+Inf"]}]}},
            math.inf,
        ),
    ],
)
def test_extract_values(payload: dict[str, Any], expected: float | None) -> None:
    assert extract(payload) == expected


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ({"status": "error", "errorType": "bad_data", "error": "parse error"}, "bad_data: parse error"),
        (
            {
                "status": "success",
                "data": {"resultType": "vector", "result": [{"value": [1, "1"]}, {"value": [1, "2"]}]},
            },
            "2 series returned",
        ),
        (
            {"status": "success", "data": {"resultType": "matrix", "result": []}},
            "unsupported result type 'matrix'",
        ),
        (
            {"status": "success", "data": {"resultType": "vector", "result": [{"value": [1, "x"]}]}},
            "malformed sample",
        ),
    ],
)
def test_extract_errors(payload: dict[str, Any], message: str) -> None:
    with pytest.raises(QueryError, match=message):
        extract(payload)


@pytest.mark.parametrize(
    ("bounds", "value", "raw", "detail"),
    [
        ((None, 0.01), 0.002, Raw.SUCCESSFUL, "= 0.002 (<= 0.01)"),
        ((None, 0.01), 0.2, Raw.FAILED, "= 0.2 > max 0.01"),
        ((0.9, None), 0.5, Raw.FAILED, "= 0.5 < min 0.9"),
        ((0.9, 1.0), 0.95, Raw.SUCCESSFUL, "= 0.95 (>= 0.9 and <= 1)"),
        ((None, 0.01), None, Raw.NO_DATA, "no data"),
        ((None, 500.0), math.inf, Raw.FAILED, "= inf > max 500"),
    ],
)
def test_classify(
    bounds: tuple[float | None, float | None], value: float | None, raw: Raw, detail: str
) -> None:
    result = classify(Check("m", "q", min=bounds[0], max=bounds[1]), value)
    assert (result.raw, result.detail) == (raw, detail)
