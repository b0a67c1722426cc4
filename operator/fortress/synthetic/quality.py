"""How realistic the records are, measured honestly.

Columns learned from real data (first and last names, cities) are scored SDMetrics-style against
the HELD-OUT part of their corpus, which the generator never saw:

* numbers: the KS complement, ``1 - D`` with ``D`` the two-sample Kolmogorov-Smirnov statistic;
* categories: the TV complement, ``1 - (1/2) sum |p_k - q_k|``;
* pairs of numbers: the correlation similarity, ``1 - |r_a - r_b| / 2`` (Pearson ``r``).

Each score is printed beside its *ceiling* (a sample of the training part scored against the same
held-out part: what real data of the same source achieves) and its *floor* (uniformly random
values of the same type). Parametric columns (age, amounts, timestamps, time series, domains) are
generated from declared distributions, so they are checked for goodness of fit to those
distributions and labelled so: that says the generator does what it declares, not that the
declaration is realistic. Pure, CPU-bound: call it off the event loop.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from fortress.synthetic import corpora
from fortress.synthetic.generate import (
    AGE_MAX,
    AGE_MEAN,
    AGE_MIN,
    AGE_SD,
    COUNTRY_DOMAINS,
    FOREIGN_SHARE,
    GLOBAL_DOMAINS,
    HOURLY,
    TRANSACTIONS_FROM,
    Block,
    Generator,
    Recipe,
    TimeSeries,
    Transactions,
    Users,
    blocks,
    cumulative,
    hour_of_week_weights,
    pick,
    rng,
    user_model,
)
from fortress.synthetic.render import text

SAMPLE: Final = 50_000
REFERENCE: Final = 20_000  # held-out, training and floor samples
_QUALITY_STREAM: Final = 99
Floats = npt.NDArray[np.float64]


@dataclass(frozen=True)
class Score:
    """A learned column scored against held-out real data, with its ceiling and floor."""

    column: str
    metric: str
    score: float
    ceiling: float
    floor: float

    def wire(self) -> dict[str, Any]:
        return {
            "column": self.column,
            "metric": self.metric,
            "score": round(float(self.score), 4),
            "ceiling": round(float(self.ceiling), 4),
            "floor": round(float(self.floor), 4),
        }


@dataclass(frozen=True)
class Fit:
    """A parametric column's goodness of fit to its declared distribution (lower statistic: closer)."""

    column: str
    test: str
    statistic: float
    threshold: float

    @property
    def passed(self) -> bool:
        return self.statistic <= self.threshold

    def wire(self) -> dict[str, Any]:
        return {
            "column": self.column,
            "test": self.test,
            "statistic": round(float(self.statistic), 4),
            "threshold": round(float(self.threshold), 4),
            "passed": bool(self.passed),
        }


@dataclass
class Report:
    sampled: int
    unique_records: float
    unique_names: float | None = None
    learned: list[Score] = field(default_factory=list)
    fitted: list[Fit] = field(default_factory=list)

    def wire(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "sampled": self.sampled,
            "uniqueRecords": round(self.unique_records, 6),
            "learned": [s.wire() for s in self.learned],
            "fitted": [f.wire() for f in self.fitted],
        }
        if self.unique_names is not None:
            out["uniqueNames"] = round(self.unique_names, 6)
        return out


# --------------------------------------------------------------------------- the metrics


def ks_statistic(a: Floats, b: Floats) -> float:
    """Two-sample Kolmogorov-Smirnov statistic: the largest gap between the empirical CDFs."""
    a, b = np.sort(np.asarray(a, dtype=np.float64)), np.sort(np.asarray(b, dtype=np.float64))
    grid = np.concatenate([a, b])
    gap = np.searchsorted(a, grid, side="right") / len(a) - np.searchsorted(b, grid, side="right") / len(b)
    return float(np.max(np.abs(gap)))


def ks_complement(a: Floats, b: Floats) -> float:
    return 1.0 - ks_statistic(a, b)


def ks_against(sample: Floats, cdf: Any) -> float:
    """One-sample KS statistic against a CDF (a vectorised callable)."""
    x = np.sort(np.asarray(sample, dtype=np.float64))
    n = len(x)
    f = cdf(x)
    return float(max(np.max(np.arange(1, n + 1) / n - f), np.max(f - np.arange(n) / n)))


def shares(values: Sequence[Any] | npt.NDArray[Any]) -> dict[Any, float]:
    keys, counts = np.unique(np.asarray(values), return_counts=True)
    total = counts.sum()
    return {k: c / total for k, c in zip(keys.tolist(), counts.tolist(), strict=True)}


def tv_distance(p: dict[Any, float], q: dict[Any, float]) -> float:
    return 0.5 * sum(abs(p.get(k, 0.0) - q.get(k, 0.0)) for k in set(p) | set(q))


def tv_complement(a: Sequence[Any] | npt.NDArray[Any], b: Sequence[Any] | npt.NDArray[Any]) -> float:
    return 1.0 - tv_distance(shares(a), shares(b))


def correlation_similarity(a: tuple[Floats, Floats], b: tuple[Floats, Floats]) -> float:
    def r(x: Floats, y: Floats) -> float:
        value = float(np.corrcoef(x, y)[0, 1])
        return 0.0 if math.isnan(value) else value

    return 1.0 - abs(r(*a) - r(*b)) / 2.0


def normal_cdf(x: Floats) -> Floats:
    erf = np.vectorize(math.erf, otypes=[np.float64])
    return np.asarray(0.5 * (1.0 + erf(np.asarray(x) / math.sqrt(2.0))))


def ks_threshold(n: int, tolerance: float = 0.0) -> float:
    """The 1 % critical value of the one-sample KS statistic, plus a stated tolerance."""
    return 1.63 / math.sqrt(max(n, 1)) + tolerance


# --------------------------------------------------------------------------- names


def _bigrams(names: Sequence[str]) -> list[str]:
    return [a + b for name in names for a, b in zip("^" + name, name + "$", strict=True)]


_NameMetric = Callable[[Sequence[str], Sequence[str]], float]


def _length(sample: Sequence[str]) -> Floats:
    return np.array([len(s) for s in sample], dtype=np.float64)


_NAME_METRICS: Final[tuple[tuple[str, _NameMetric], ...]] = (
    ("length: KS complement", lambda x, y: ks_complement(_length(x), _length(y))),
    ("first letter: TV complement", lambda x, y: tv_complement([s[0] for s in x], [s[0] for s in y])),
    ("letter pairs: TV complement", lambda x, y: tv_complement(_bigrams(x), _bigrams(y))),
)


@functools.lru_cache(maxsize=8)
def _name_reference(tables: tuple[str, ...]) -> tuple[tuple[str, ...], tuple[tuple[float, float], ...]]:
    """The held-out names and, per metric, the train-vs-held and uniform-vs-held scores.

    They depend on the tables only (a fixed seed), not on what was generated: computed once per
    process (a few seconds of corpus work), not on every assessment.
    """
    r = rng(0, _QUALITY_STREAM, 1)
    each = REFERENCE // len(tables)
    held = [n for t in tables for n in corpora.names(t).part(held=True).sample(r, each)]
    train = [n for t in tables for n in corpora.names(t).part(held=False).sample(r, each)]
    lengths = r.integers(2, 13, REFERENCE)
    letters = np.array(list("ABCDEFGHIJKLMNOPQRSTUVWXYZ"))
    uniform = ["".join(letters[r.integers(0, 26, n)]) for n in lengths.tolist()]
    baselines = tuple((score(train, held), score(uniform, held)) for _, score in _NAME_METRICS)
    return tuple(held), baselines


def name_scores(column: str, generated: Sequence[str], tables: Sequence[str]) -> list[Score]:
    """Length (KS), first letter and letter pairs (TV) against held-out names drawn by population
    share (equally from each table: first names are half male, half female, as generated)."""
    held, baselines = _name_reference(tuple(tables))
    gen = [g.upper() for g in generated]
    return [
        Score(column, metric, score(gen, held), train, uniform)
        for (metric, score), (train, uniform) in zip(_NAME_METRICS, baselines, strict=True)
    ]


# --------------------------------------------------------------------------- cities


def _city_sample(
    table: corpora.CityTable, country: str, n: int, r: np.random.Generator
) -> npt.NDArray[np.int64]:
    """Cities drawn as the generator draws them: the locale's country by population, some worldwide."""
    u = r.random((2, n))
    home = cumulative(np.where(table.countries == country, table.populations, 0.0))
    return np.where(u[0] < FOREIGN_SHARE, pick(cumulative(table.populations), u[1]), pick(home, u[1]))


def city_scores(cities: npt.NDArray[np.int64], country: str) -> list[Score]:
    """Country (TV), latitude, longitude and city size (KS), latitude-longitude (correlation)."""
    train_table = user_model().cities
    whole = corpora.cities()
    held_table = whole.part(held=True)
    r = rng(0, _QUALITY_STREAM, 2)
    held = _city_sample(held_table, country, REFERENCE, r)
    train = _city_sample(train_table, country, REFERENCE, r)
    codes = np.unique(whole.countries)

    def view(table: corpora.CityTable, idx: npt.NDArray[np.int64]) -> dict[str, Any]:
        return {
            "country": table.countries[idx],
            "lat": table.latitudes[idx],
            "lon": table.longitudes[idx],
            "size": np.log10(table.populations[idx]),
        }

    gen, ref, tr = view(train_table, cities), view(held_table, held), view(train_table, train)
    floor = {
        "country": codes[r.integers(0, len(codes), REFERENCE)],
        "lat": np.degrees(np.arcsin(r.uniform(-1, 1, REFERENCE))),  # uniform on the sphere
        "lon": r.uniform(-180, 180, REFERENCE),
        "size": r.uniform(np.log10(15000), np.log10(whole.populations.max()), REFERENCE),
    }
    out = [
        Score(
            "country",
            "TV complement",
            *(tv_complement(x["country"], ref["country"]) for x in (gen, tr, floor)),
        )
    ]
    for key, column in (("lat", "latitude"), ("lon", "longitude"), ("size", "city population (log10)")):
        out.append(
            Score(column, "KS complement", *(ks_complement(x[key], ref[key]) for x in (gen, tr, floor)))
        )
    out.append(
        Score(
            "latitude, longitude",
            "correlation similarity",
            *(
                correlation_similarity((x["lat"], x["lon"]), (ref["lat"], ref["lon"]))
                for x in (gen, tr, floor)
            ),
        )
    )
    return out


# --------------------------------------------------------------------------- parametric fits


def age_pmf() -> dict[int, float]:
    """P(age = a) of round(Normal(35, 12)) clipped to 18-90."""

    def cdf(x: float) -> float:
        return 0.5 * (1.0 + math.erf((x - AGE_MEAN) / (AGE_SD * math.sqrt(2.0))))

    pmf = {a: cdf(a + 0.5) - cdf(a - 0.5) for a in range(AGE_MIN + 1, AGE_MAX)}
    pmf[AGE_MIN] = cdf(AGE_MIN + 0.5)
    pmf[AGE_MAX] = 1.0 - cdf(AGE_MAX - 0.5)
    return pmf


def tv_threshold(n: int, categories: int, tolerance: float = 0.005) -> float:
    """About the largest TV distance a correct sampler shows at this size (sampling noise), plus a margin."""
    return 0.5 * math.sqrt(categories / max(n, 1)) * 1.5 + tolerance


def user_fits(raw: dict[str, Any], recipe: Recipe) -> list[Fit]:
    n = len(raw["age"])
    out = [
        Fit(
            "age",
            "TV distance to round(Normal(35, 12)) clipped to 18-90",
            tv_distance(shares(raw["age"]), age_pmf()),
            tv_threshold(n, 73),
        ),
    ]
    hours = (raw["signup"] // 3600) % 24
    declared = {h: w / sum(HOURLY) for h, w in enumerate(HOURLY)}
    out.append(
        Fit(
            "signup_at",
            "TV distance of hour of day to the declared daily profile",
            tv_distance(shares(hours), declared),
            tv_threshold(n, 24),
        )
    )
    model = user_model()
    domains = np.array(model.domains)[raw["domain"]]
    country = model.cities.countries[raw["city"]]
    home = recipe.country
    mine = domains[country == home]
    if len(mine):
        table = dict(GLOBAL_DOMAINS) | dict(COUNTRY_DOMAINS.get(home, ()))
        total = sum(table.values())
        out.append(
            Fit(
                "email domain",
                f"TV distance to the declared domain shares ({home} users)",
                tv_distance(shares(mine), {d: w / total for d, w in table.items()}),
                tv_threshold(len(mine), len(table)),
            )
        )
    return out


def transaction_fits(raw: dict[str, Any]) -> list[Fit]:
    n = len(raw["z"])
    out = [
        Fit(
            "amount",
            "KS of (log amount - mu_user - log m_category) / sigma_user to Normal(0, 1)",
            ks_against(raw["z"], normal_cdf),
            ks_threshold(n, 0.005),  # rounding to cents moves the smallest amounts a little
        )
    ]
    weights = hour_of_week_weights()
    hour_of_week = ((raw["when"] - int(TRANSACTIONS_FROM.timestamp())) // 3600) % 168
    declared = {h: w / weights.sum() for h, w in enumerate(weights.tolist())}
    out.append(
        Fit(
            "occurred_at",
            "TV distance of hour of week to the declared daily x weekly profile",
            tv_distance(shares(hour_of_week), declared),
            tv_threshold(n, 168),
        )
    )
    return out


def series_fits(raw: dict[str, Any], gen: TimeSeries) -> list[Fit]:
    """Least squares per series of value / level on 1, t/P, sin and cos(2 pi t/P); compared to the spec."""
    shape = gen.recipe.series
    t, series, value, anomaly = raw["t"], raw["series"], raw["value"], raw["anomaly"]
    keep = ~anomaly
    periods = t[keep] / gen.points_per_period
    y = value[keep] / gen.level[series[keep]]
    phase = gen.phase[series[keep]]
    design = np.column_stack(
        [
            np.ones_like(periods),
            periods,
            np.sin(2 * np.pi * periods + phase),
            np.cos(2 * np.pi * periods + phase),
        ]
    )
    coef, *_ = np.linalg.lstsq(design, y, rcond=None)
    residual = y - design @ coef
    amplitude = float(math.hypot(coef[2], coef[3]))
    out = [
        Fit(
            "value",
            f"|fitted - declared| seasonal amplitude (declared {shape.amplitude})",
            abs(amplitude - shape.amplitude),
            0.05 * max(shape.amplitude, 0.1),
        ),
        Fit(
            "value",
            f"|fitted - declared| trend per period (declared {shape.trend})",
            abs(float(coef[1]) - shape.trend),
            0.02 + 0.1 * abs(shape.trend),
        ),
        Fit(
            "value",
            f"|fitted - declared| noise (declared {shape.noise})",
            abs(float(residual.std()) - shape.noise),
            0.1 * max(shape.noise, 0.01),
        ),
    ]
    n = len(anomaly)
    out.append(
        Fit(
            "anomaly",
            f"|labelled share - declared rate| (declared {shape.anomaly_rate})",
            abs(float(anomaly.mean()) - shape.anomaly_rate),
            3 * math.sqrt(max(shape.anomaly_rate, 1e-4) / max(n, 1)) + 1e-3,
        )
    )
    return out


# --------------------------------------------------------------------------- the report


def assess(gen: Generator, sample: int = SAMPLE) -> Report:
    """Score the first ``sample`` records (blocking; CPU-bound)."""
    parts: list[Block] = list(blocks(gen, 0, min(sample, gen.recipe.total)))
    n = sum(len(b) for b in parts)
    raw = {k: np.concatenate([b.raw[k] for b in parts]) for k in parts[0].raw} if parts else {}
    lines = "".join(text(b) for b in parts).splitlines()
    # uniqueness of the record without its id (an id alone would make every record unique)
    unique = len({line.split("\t", 1)[1] for line in lines}) / max(n, 1)
    report = Report(sampled=n, unique_records=unique)
    if isinstance(gen, Users):
        first = [v for b in parts for v in b.fields[1].tolist()]
        last = [v for b in parts for v in b.fields[2].tolist()]
        report.unique_names = len(set(zip(first, last, strict=True))) / max(n, 1)
        report.learned += name_scores("first_name", first, ("male", "female"))
        report.learned += name_scores("last_name", last, ("last",))
        report.learned += city_scores(raw["city"], gen.recipe.country)
        report.fitted += user_fits(raw, gen.recipe)
    elif isinstance(gen, Transactions):
        report.fitted += transaction_fits(raw)
    elif isinstance(gen, TimeSeries):
        report.fitted += series_fits(raw, gen)
    return report
