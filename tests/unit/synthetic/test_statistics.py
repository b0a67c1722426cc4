"""Statistical checks with fixed seeds: the generators pass, deliberately broken ones fail.

Each check is the one ``status.quality`` reports; the tolerances are the reported thresholds, so a
generator that ignores its declared distribution (uniform amounts, no seasonality, no trend) fails.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from fortress.synthetic import quality
from fortress.synthetic.generate import (
    TRANSACTIONS_FROM,
    Recipe,
    SeriesShape,
    TimeSeries,
    Transactions,
    blocks,
    generator,
)

N = 40_000


def raw(recipe: Recipe) -> dict[str, Any]:
    parts = list(blocks(generator(recipe), 0, N))
    return {k: np.concatenate([b.raw[k] for b in parts]) for k in parts[0].raw}


def fits(found: list[quality.Fit]) -> dict[str, quality.Fit]:
    return {f"{f.column}:{f.test.split(' ')[0]}": f for f in found}


def test_amounts_fit_the_declared_log_normal_and_uniform_amounts_do_not() -> None:
    recipe = Recipe("transactions", N, seed=5, users=2_000)
    values = raw(recipe)
    good = quality.transaction_fits(values)
    assert all(f.passed for f in good), good
    gen = generator(recipe)
    assert isinstance(gen, Transactions)
    rng = np.random.default_rng(1)
    cents = np.round(rng.uniform(1, 500, N) * 100)  # a broken generator: uniform amounts
    who, cat = values["user"], values["category"]
    broken = dict(values, z=(np.log(cents / 100) - gen.mu[who] - gen.log_multiplier[cat]) / gen.sigma[who])
    amount = quality.transaction_fits(broken)[0]
    assert amount.column == "amount" and not amount.passed and amount.statistic > 5 * amount.threshold


def test_transaction_times_follow_the_weekly_profile_and_uniform_times_do_not() -> None:
    values = raw(Recipe("transactions", N, seed=6, users=2_000))
    assert quality.transaction_fits(values)[1].passed
    rng = np.random.default_rng(2)
    flat = int(TRANSACTIONS_FROM.timestamp()) + rng.integers(0, 52 * 604800, N)  # no seasonality
    broken = quality.transaction_fits(dict(values, when=flat))[1]
    assert not broken.passed and broken.statistic > 2 * broken.threshold


def test_time_series_fit_the_declared_shape_and_a_flat_series_fails_the_seasonality_test() -> None:
    recipe = Recipe(
        "timeseries",
        5_000,
        seed=7,
        series=SeriesShape(series=4, trend=0.05, amplitude=0.3, noise=0.05, anomaly_rate=0.01),
    )
    gen = generator(recipe)
    assert isinstance(gen, TimeSeries)
    values = raw(recipe)
    good = quality.series_fits(values, gen)
    assert all(f.passed for f in good), good
    # a broken generator: level, trend and noise, but no seasonal component
    t, series = values["t"], values["series"]
    periods = t / gen.points_per_period
    rng = np.random.default_rng(3)
    flat = gen.level[series] * (1 + 0.05 * periods + 0.05 * rng.standard_normal(len(t)))
    broken = quality.series_fits(dict(values, value=flat, anomaly=np.zeros(len(t), bool)), gen)
    assert not broken[0].passed and "amplitude" in broken[0].test
    assert broken[1].passed  # its trend is still right: the test that fails is the one that should


def test_user_columns_fit_their_declared_distributions_and_a_uniform_age_fails() -> None:
    recipe = Recipe("users", N, seed=8)
    values = raw(recipe)
    good = quality.user_fits(values, recipe)
    assert all(f.passed for f in good), good
    rng = np.random.default_rng(4)
    broken = quality.user_fits(dict(values, age=rng.integers(18, 91, N)), recipe)[0]
    assert broken.column == "age" and not broken.passed


def test_learned_columns_score_between_floor_and_ceiling_against_held_out_data() -> None:
    report = quality.assess(generator(Recipe("users", 20_000, seed=9)), sample=20_000)
    by = {(s.column, s.metric): s for s in report.learned}
    # letters and countries are learned: far above the uniform floor, near what real data scores
    for key in (
        ("first_name", "letter pairs: TV complement"),
        ("last_name", "letter pairs: TV complement"),
        ("country", "TV complement"),
    ):
        score = by[key]
        assert score.score > score.floor + 0.2 and score.score > score.ceiling - 0.05, score
    assert report.unique_records >= 0.99 and report.unique_names is not None and report.unique_names > 0.9


def test_metrics_are_what_they_say() -> None:
    a = np.arange(1000, dtype=float)
    assert quality.ks_complement(a, a) == 1.0
    assert quality.ks_statistic(a, a + 1000) == 1.0
    assert quality.tv_complement(["x", "y"], ["x", "y"]) == 1.0
    assert quality.tv_complement(["x"], ["y"]) == 0.0
    assert quality.correlation_similarity((a, a), (a, -a)) == 0.0
    assert abs(sum(quality.age_pmf().values()) - 1) < 1e-12
