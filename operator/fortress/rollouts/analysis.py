"""Metric analysis against Prometheus: the checks of a stage, safe templating, instant queries.

Built-in checks (spec.analysis.thresholds, a stage's thresholds override them field by field), for
services instrumented the common way (``http_requests_total`` with a ``code`` label and the
``http_request_duration_seconds`` histogram), over a window of ``max(2 * interval, 30s)``:

- ``error-rate`` (maxErrorRate): ``sum(rate(http_requests_total{<labels>,code=~"5.."}[w]))
  / sum(rate(http_requests_total{<labels>}[w]))``; no traffic gives 0/0 = NaN, i.e. no data.
- ``p95-latency-ms`` (maxP95LatencyMs): ``1000 * histogram_quantile(0.95, sum by (le)
  (rate(http_request_duration_seconds_bucket{<labels>}[w])))``.

``<labels>`` is ``{{ .Labels }}``: ``namespace="<ns>",fortress_io_rollout="<name>",
fortress_io_revision="<revision>"``, the canary pods' labels as the usual ``labelmap`` relabelling of
``__meta_kubernetes_pod_label_(.+)`` names them. Every templated value is escaped as a PromQL string
(backslash, double quote, newline), so a name cannot change the query's structure. A query must return
one sample (a scalar or a one-element vector); an empty vector or NaN is *no data*, several series,
a range vector, an HTTP or PromQL error or an unreachable server is an *error* (see
``fortress.rollouts.transitions`` for what each means under spec.analysis.missingData).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import aiohttp

from fortress.api.canaryrollout import QUERY_PLACEHOLDERS, CanaryRolloutSpec, CanaryStrategy, Thresholds
from fortress.core.time import parse_duration
from fortress.rollouts.model import AnalysisSample, Measurement, Raw

ERROR_RATE = "error-rate"
P95_LATENCY = "p95-latency-ms"

ERROR_RATE_QUERY = (
    'sum(rate(http_requests_total{ {{ .Labels }}, code=~"5.." }[WINDOW]))'
    " / sum(rate(http_requests_total{ {{ .Labels }} }[WINDOW]))"
)
P95_LATENCY_QUERY = (
    "1000 * histogram_quantile(0.95, sum by (le) "
    "(rate(http_request_duration_seconds_bucket{ {{ .Labels }} }[WINDOW])))"
)
_PLACEHOLDER = re.compile(r"\{\{\s*\.?([A-Za-z]*)\s*\}\}")


class QueryError(Exception):
    """A query that produced no usable sample for a reason other than absent data."""


@dataclass(frozen=True)
class Check:
    """One metric to measure: a query template and its bounds."""

    name: str
    query: str
    min: float | None = None
    max: float | None = None


@dataclass(frozen=True)
class Target:
    """What the placeholders stand for."""

    namespace: str
    name: str
    revision: str
    colour: str


def window(spec: CanaryRolloutSpec) -> str:
    """The rate window of the built-in queries: twice the interval, at least 30 s."""
    seconds = max(2 * parse_duration(spec.analysis.interval).total_seconds(), 30.0)
    return f"{math.ceil(seconds)}s"


def thresholds_for(spec: CanaryRolloutSpec, stage: int | None) -> Thresholds:
    """The analysis thresholds with the stage's own overriding them field by field."""
    base = spec.analysis.thresholds
    stages = (spec.strategy.canary or CanaryStrategy()).stages if spec.strategy.type == "canary" else []
    if stage is None or stage >= len(stages) or stages[stage].thresholds is None:
        return base
    own = stages[stage].thresholds
    assert own is not None
    return Thresholds(
        max_error_rate=own.max_error_rate if own.max_error_rate is not None else base.max_error_rate,
        max_p95_latency_ms=(
            own.max_p95_latency_ms if own.max_p95_latency_ms is not None else base.max_p95_latency_ms
        ),
    )


def checks(spec: CanaryRolloutSpec, stage: int | None) -> list[Check]:
    """Every check of a stage: the built-in thresholds, then spec.analysis.metrics."""
    limits = thresholds_for(spec, stage)
    w = window(spec)
    found: list[Check] = []
    if limits.max_error_rate is not None:
        found.append(Check(ERROR_RATE, ERROR_RATE_QUERY.replace("WINDOW", w), max=limits.max_error_rate))
    if limits.max_p95_latency_ms is not None:
        found.append(
            Check(P95_LATENCY, P95_LATENCY_QUERY.replace("WINDOW", w), max=float(limits.max_p95_latency_ms))
        )
    found.extend(Check(m.name, m.query, min=m.min, max=m.max) for m in spec.analysis.metrics)
    return found


def quote(value: str) -> str:
    """A value made safe inside a PromQL double-quoted string."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def values(target: Target) -> dict[str, str]:
    labels = (
        f'namespace="{quote(target.namespace)}",fortress_io_rollout="{quote(target.name)}",'
        f'fortress_io_revision="{quote(target.revision)}"'
    )
    return {
        "Labels": labels,
        "Revision": quote(target.revision),
        "Namespace": quote(target.namespace),
        "Name": quote(target.name),
        "Colour": quote(target.colour),
    }


def render(query: str, target: Target) -> str:
    """Replace the placeholders; ValueError naming an unknown one."""
    known = values(target)

    def replace(match: re.Match[str]) -> str:
        key = match.group(1)
        if key not in known:
            raise ValueError(f"unknown placeholder {match.group(0)}; known: {', '.join(QUERY_PLACEHOLDERS)}")
        return known[key]

    return _PLACEHOLDER.sub(replace, query)


def extract(payload: Mapping[str, Any]) -> float | None:
    """The one value of an instant-query answer; None for no data (empty, NaN); QueryError otherwise."""
    if payload.get("status") != "success":
        raise QueryError(f"{payload.get('errorType', 'error')}: {payload.get('error', 'query failed')}")
    data = payload.get("data") or {}
    kind = data.get("resultType")
    result = data.get("result")
    if kind == "scalar":
        return _number(result)
    if kind == "vector":
        if not result:
            return None
        if len(result) > 1:
            raise QueryError(f"{len(result)} series returned; aggregate the query to one, e.g. sum(...)")
        return _number(result[0].get("value"))
    raise QueryError(f"unsupported result type {kind!r}; use an instant query returning one sample")


def _number(sample: Any) -> float | None:
    try:
        value = float(sample[1])
    except (TypeError, ValueError, IndexError) as error:
        raise QueryError(f"malformed sample {sample!r}") from error
    return None if math.isnan(value) else value


def classify(check: Check, value: float | None) -> Measurement:
    """Compare a value with the check's bounds (pure)."""
    limit = check.max if check.max is not None else check.min
    if value is None:
        return Measurement(check.name, Raw.NO_DATA, None, limit, "no data")
    if check.max is not None and value > check.max:
        return Measurement(check.name, Raw.FAILED, value, check.max, f"= {value:.6g} > max {check.max:.6g}")
    if check.min is not None and value < check.min:
        return Measurement(check.name, Raw.FAILED, value, check.min, f"= {value:.6g} < min {check.min:.6g}")
    bounds = []
    if check.min is not None:
        bounds.append(f">= {check.min:.6g}")
    if check.max is not None:
        bounds.append(f"<= {check.max:.6g}")
    return Measurement(check.name, Raw.SUCCESSFUL, value, limit, f"= {value:.6g} ({' and '.join(bounds)})")


class Prometheus:
    """Instant queries against one Prometheus over its HTTP API (``/api/v1/query``)."""

    def __init__(
        self,
        address: str,
        session: aiohttp.ClientSession,
        token: str | None = None,
        timeout: float = 5.0,
    ) -> None:
        self.address = address.rstrip("/")
        self._session = session
        self._headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._timeout = aiohttp.ClientTimeout(total=timeout)

    async def query(self, promql: str) -> float | None:
        """One instant query: its value, None for no data, QueryError for anything else."""
        url = f"{self.address}/api/v1/query"
        try:
            async with self._session.post(
                url, data={"query": promql}, headers=self._headers, timeout=self._timeout
            ) as response:
                try:
                    payload = await response.json(content_type=None)
                except (ValueError, aiohttp.ContentTypeError) as error:
                    raise QueryError(f"HTTP {response.status} from {url}: not JSON") from error
                if response.status != 200 and not isinstance(payload, dict):
                    raise QueryError(f"HTTP {response.status} from {url}")
        except (aiohttp.ClientError, TimeoutError) as error:
            raise QueryError(
                f"Prometheus at {self.address} unreachable: {error or type(error).__name__}"
            ) from error
        if not isinstance(payload, dict):
            raise QueryError(f"unexpected answer from {url}")
        return extract(payload)

    async def measure_one(self, check: Check, target: Target) -> Measurement:
        try:
            value = await self.query(render(check.query, target))
        except (QueryError, ValueError) as error:
            return Measurement(
                check.name, Raw.ERROR, None, check.max if check.max is not None else check.min, str(error)
            )
        return classify(check, value)

    async def measure(self, checks: Sequence[Check], target: Target, at: dt.datetime) -> AnalysisSample:
        """Every check, concurrently."""
        measurements = await asyncio.gather(*(self.measure_one(c, target) for c in checks))
        return AnalysisSample(at=at, revision=target.revision, measurements=tuple(measurements))
