"""The pure decisions: the target action, the generation key, the decoy verdict, the recipe."""

from __future__ import annotations

import datetime as dt

import pytest

from fortress.api.syntheticdataset import SyntheticDatasetSpec
from fortress.synthetic import plan
from fortress.synthetic.generate import check_locale
from fortress.synthetic.store import Marker

OWNER = "ns/decoys"
DONE = Marker(OWNER, "k1", records=10, digest="d")


@pytest.mark.parametrize(
    ("live", "action"),
    [
        (plan.TargetView(False, None), plan.Action.GENERATE),
        (plan.TargetView(True, None), plan.Action.REFUSE),  # not the operator's table
        (plan.TargetView(True, Marker("other/ds", "k1", records=10)), plan.Action.REFUSE),
        (plan.TargetView(True, DONE), plan.Action.READY),
        (plan.TargetView(True, Marker(OWNER, "k0", records=10)), plan.Action.GENERATE),  # spec changed
        (plan.TargetView(True, Marker(OWNER, "k1")), plan.Action.GENERATE),  # marker without records
    ],
)
def test_decide(live: plan.TargetView, action: plan.Action) -> None:
    assert plan.decide(OWNER, "k1", live) is action


@pytest.mark.parametrize(
    ("before", "relid", "scans", "expected"),
    [
        (None, 5, 7, plan.DecoyVerdict(5, 7, 0, 0, True)),  # first check: the baseline
        ({"relid": 5, "baselineScans": 7, "reads": 0}, 5, 7, plan.DecoyVerdict(5, 7, 0, 0, False)),
        ({"relid": 5, "baselineScans": 7, "reads": 0}, 5, 9, plan.DecoyVerdict(5, 7, 2, 2, False)),
        ({"relid": 5, "baselineScans": 7, "reads": 2}, 5, 10, plan.DecoyVerdict(5, 7, 3, 1, False)),
        (
            {"relid": 5, "baselineScans": 7, "reads": 2},
            6,
            3,
            plan.DecoyVerdict(6, 3, 0, 0, True),
        ),  # new table
        ({"relid": 5, "baselineScans": 7, "reads": 2}, 5, 1, plan.DecoyVerdict(5, 1, 0, 0, True)),  # reset
    ],
)
def test_assess_decoy(
    before: dict[str, int] | None, relid: int, scans: int, expected: plan.DecoyVerdict
) -> None:
    assert plan.assess_decoy(before, relid, scans) == expected


def spec(**fields: object) -> SyntheticDatasetSpec:
    return SyntheticDatasetSpec.model_validate({"kind": "users", "count": 100, **fields})


def test_the_key_changes_with_what_decides_the_records_and_with_a_regenerate_request() -> None:
    base = plan.generation_key(plan.recipe_of(spec()), None)
    assert base == plan.generation_key(plan.recipe_of(spec(chunkSize=5000, retainOnDelete=True)), None)
    for changed in (spec(seed=1), spec(count=101), spec(locale="de_DE"), spec(decoy={"apiTokens": 3})):
        assert plan.generation_key(plan.recipe_of(changed), None) != base
    assert plan.generation_key(plan.recipe_of(spec()), "r1") != base


def test_regenerate_id_reads_the_last_accepted_request() -> None:
    accepted = {"lastRequest": {"requestId": "r1", "action": "regenerate", "outcome": "Accepted"}}
    assert plan.regenerate_id(accepted) == "r1"
    assert plan.regenerate_id({}) is None


def test_recipe_of_a_time_series_spec() -> None:
    shape = {
        "start": "2025-02-01T00:00:00Z",
        "interval": "30s",
        "series": 3,
        "seasonality": "1h",
        "anomalyRate": 0.02,
    }
    recipe = plan.recipe_of(
        SyntheticDatasetSpec.model_validate({"kind": "timeseries", "count": 10, "timeSeries": shape})
    )
    assert (
        recipe.total == 30 and recipe.series.interval_seconds == 30 and recipe.series.period_seconds == 3600
    )
    assert (
        recipe.series.start == dt.datetime(2025, 2, 1, tzinfo=dt.UTC) and recipe.series.anomaly_rate == 0.02
    )


def test_a_locale_without_cities_is_named() -> None:
    assert check_locale("de_DE") is None
    assert "ZZ" in str(check_locale("xx_ZZ"))
