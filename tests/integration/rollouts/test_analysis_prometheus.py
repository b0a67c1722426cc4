"""The analysis client against a real Prometheus scraping an app whose error rate and latency we set."""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid

import aiohttp
import pytest

from fortress.api.canaryrollout import CanaryRolloutSpec
from fortress.rollouts.analysis import ERROR_RATE, P95_LATENCY, Check, Prometheus, Target, checks
from fortress.rollouts.model import Raw
from fortress_dev.promlab import free_port
from tests.integration.rollouts.conftest import PromLab


def spec() -> CanaryRolloutSpec:
    return CanaryRolloutSpec.model_validate(
        {
            "service": "shop",
            "template": {"spec": {"containers": [{"name": "a", "image": "shop:2"}]}},
            "analysis": {
                "prometheusAddress": "http://unused:9090",
                "interval": "1s",
                "thresholds": {"maxErrorRate": 0.05, "maxP95LatencyMs": 300},
            },
        }
    )


async def revision_with_data(lab: PromLab, error_rate: float, latency_ms: float) -> Target:
    """A fresh revision in the app, once Prometheus can compute rates for it."""
    target = Target(namespace="analysis", name="shop", revision=uuid.uuid4().hex[:10], colour="green")
    lab.app.set(target.revision, error_rate, latency_ms, namespace=target.namespace, rollout=target.name)
    series = f'http_requests_total{{fortress_io_revision="{target.revision}",code="200"}}'
    await asyncio.to_thread(lab.prometheus.wait_for_data, f"rate({series}[30s]) > 0")
    return target


async def measure(
    lab: PromLab, target: Target, found: list[Check] | None = None
) -> dict[str, tuple[Raw, float | None, str]]:
    async with aiohttp.ClientSession() as session:
        prometheus = Prometheus(lab.url, session)
        sample = await prometheus.measure(found or checks(spec(), None), target, dt.datetime.now(dt.UTC))
    return {m.name: (m.raw, m.value, m.detail) for m in sample.measurements}


async def test_healthy_revision_passes_the_builtin_checks(promlab: PromLab) -> None:
    target = await revision_with_data(promlab, error_rate=0.0, latency_ms=20)
    results = await measure(promlab, target)
    assert results[ERROR_RATE][0] == Raw.SUCCESSFUL and results[ERROR_RATE][1] == pytest.approx(0.0)
    assert results[P95_LATENCY][0] == Raw.SUCCESSFUL
    assert 10 <= (results[P95_LATENCY][1] or 0) <= 25, "p95 of 20 ms requests lies in the 10-25 ms bucket"


async def test_errors_and_latency_breach_the_limits_with_their_values(promlab: PromLab) -> None:
    target = await revision_with_data(promlab, error_rate=0.3, latency_ms=800)
    results = await measure(promlab, target)
    raw, value, detail = results[ERROR_RATE]
    assert raw == Raw.FAILED and value == pytest.approx(0.3, abs=0.02)
    assert detail.endswith("> max 0.05")
    raw, value, detail = results[P95_LATENCY]
    assert raw == Raw.FAILED and 500 < (value or 0) <= 1000
    assert "> max 300" in detail


async def test_a_revision_without_series_is_no_data(promlab: PromLab) -> None:
    target = Target(namespace="analysis", name="shop", revision="neverseen0", colour="green")
    results = await measure(promlab, target)
    assert results[ERROR_RATE][:2] == (Raw.NO_DATA, None)
    assert results[P95_LATENCY][:2] == (Raw.NO_DATA, None)


async def test_query_shapes_and_errors(promlab: PromLab) -> None:
    target = await revision_with_data(promlab, error_rate=0.1, latency_ms=20)
    found = [
        Check("nan", "vector(0) / vector(0)", max=1),
        Check("scalar", "scalar(sum(rate(http_requests_total{ {{ .Labels }} }[30s])))", min=1),
        Check("two-series", "rate(http_requests_total{ {{ .Labels }} }[30s])", max=1000),
        Check("bad-promql", "sum(rate(http_requests_total{ {{ .Labels }} }[30s]", max=1),
        Check("revision", 'count(http_requests_total{fortress_io_revision="{{ .Revision }}"})', min=2, max=2),
    ]
    results = await measure(promlab, target, found)
    assert results["nan"][:2] == (Raw.NO_DATA, None), "0/0 (no traffic) is absence of data"
    assert results["scalar"][0] == Raw.SUCCESSFUL and (results["scalar"][1] or 0) >= 1
    assert results["two-series"][0] == Raw.ERROR and "2 series returned" in results["two-series"][2]
    assert results["bad-promql"][0] == Raw.ERROR and "bad_data" in results["bad-promql"][2]
    assert results["revision"][:2] == (Raw.SUCCESSFUL, 2.0)


async def test_unreachable_prometheus_is_an_error_not_no_data() -> None:
    target = Target(namespace="analysis", name="shop", revision="r", colour="green")
    async with aiohttp.ClientSession() as session:
        prometheus = Prometheus(f"http://127.0.0.1:{free_port()}", session, timeout=2)
        sample = await prometheus.measure(checks(spec(), None), target, dt.datetime.now(dt.UTC))
    assert {m.raw for m in sample.measurements} == {Raw.ERROR}
    assert "unreachable" in sample.measurements[0].detail
