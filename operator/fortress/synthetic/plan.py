"""Pure decisions of a SyntheticDataset: its recipe and generation key, what to do with the target,
and whether its decoy was touched. No I/O, no clock: what they need is handed to them."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from fortress.api.syntheticdataset import SyntheticDatasetSpec
from fortress.core.time import parse, seconds_of
from fortress.synthetic.generate import TIME_SERIES_START, Recipe, SeriesShape
from fortress.synthetic.store import Marker


def recipe_of(spec: SyntheticDatasetSpec) -> Recipe:
    """The generator's recipe of a (validated) spec."""
    series = SeriesShape()
    if spec.time_series is not None:
        shape = spec.time_series
        series = SeriesShape(
            start=parse(shape.start) or TIME_SERIES_START if shape.start else TIME_SERIES_START,
            interval_seconds=seconds_of(shape.interval),
            series=shape.series,
            period_seconds=seconds_of(shape.seasonality),
            trend=shape.trend,
            amplitude=shape.amplitude,
            noise=shape.noise,
            anomaly_rate=shape.anomaly_rate,
        )
    return Recipe(
        kind=str(spec.kind),
        count=spec.count,
        seed=spec.seed,
        locale=spec.locale,
        users=spec.users,
        series=series,
        api_tokens=spec.decoy.api_tokens if spec.decoy is not None else 0,
    )


def generation_key(recipe: Recipe, regenerate_id: str | None) -> str:
    """What decides the dataset's table: the recipe and the last regenerate request (24 hex)."""
    return hashlib.sha256(f"{recipe.key()}|{regenerate_id or ''}".encode()).hexdigest()[:24]


def regenerate_id(status: Mapping[str, Any]) -> str | None:
    """The requestId of the last regenerate request handled (from ``status.lastRequest``)."""
    last = status.get("lastRequest")
    if isinstance(last, Mapping) and last.get("action") == "regenerate" and last.get("outcome") == "Accepted":
        return str(last.get("requestId"))
    return None


class Action(StrEnum):
    REFUSE = "refuse"  # the target table exists and is not this dataset's
    GENERATE = "generate"  # write (or resume) the dataset of the current key, then swap it in
    READY = "ready"  # the live table is this dataset's, of the current key


@dataclass(frozen=True)
class TargetView:
    """The live table as observed: absent, foreign (no marker or another owner's), or ours."""

    exists: bool
    marker: Marker | None


def decide(owner: str, key: str, live: TargetView) -> Action:
    if live.exists and (live.marker is None or live.marker.owner != owner):
        return Action.REFUSE
    if live.marker is not None and live.marker.key == key and live.marker.records is not None:
        return Action.READY
    return Action.GENERATE


@dataclass(frozen=True)
class DecoyVerdict:
    """What one check of a decoy table's read counters concluded."""

    relid: int
    baseline: int
    reads: int  # reads by others since the table went live
    new: int  # reads first seen by this check
    rebaselined: bool  # a new table (or reset statistics): counting starts again


def assess_decoy(status: Mapping[str, Any] | None, relid: int, scans: int) -> DecoyVerdict:
    """Compare the table's scans with the baseline taken when it went live.

    The operator reads a dataset only before it goes live (resume counts, the primary key, ANALYZE),
    and the baseline is taken after those reads are flushed, so every scan above it is someone else's.
    A new table (another OID) or counters below the baseline (statistics reset) start a new baseline.
    """
    decoy = dict(status or {})
    old_relid, baseline, reads = decoy.get("relid"), decoy.get("baselineScans"), int(decoy.get("reads") or 0)
    if old_relid != relid or baseline is None or scans < int(baseline):
        return DecoyVerdict(relid, scans, 0, 0, True)
    seen = scans - int(baseline)
    return DecoyVerdict(relid, int(baseline), seen, max(0, seen - reads), False)
