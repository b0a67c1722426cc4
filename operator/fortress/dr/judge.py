"""Judging the regions of one DRPlan check: who is primary, who is healthy, who may be promoted (pure).

``Seen`` holds what one check observed against what earlier checks recorded; the election
(:mod:`fortress.dr.election`) asks it who the primary is, what becomes of each region, and which
standby a failover would promote. The rules of promotion (:func:`ineligibility`) and of a switchover
(:func:`caught_up`) are plain functions, table-tested on their own.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

from fortress.api.drplan import DRPlanSpec
from fortress.core.time import seconds_of
from fortress.dr.decision import PlanState, RegionState, RegionVerdict
from fortress.dr.topology import Observation, Role, Topology


def stale_after(spec: DRPlanSpec) -> float:
    """Observations older than this (seconds) are not trusted: two check intervals."""
    return 2 * seconds_of(spec.check_interval)


def is_fresh(obs: Observation | None, now: dt.datetime, limit: float) -> bool:
    return obs is not None and (now - obs.observed_at).total_seconds() <= limit


def loss_if_promoted(reference_lsn: int | None, obs: Observation | None) -> int | None:
    """WAL bytes of the primary's (last known) position that ``obs`` does not have."""
    if reference_lsn is None or obs is None or obs.position is None:
        return None
    return max(0, reference_lsn - obs.position)


def _refused(region: RegionState, obs: Observation | None, primary: str | None) -> str | None:
    """Why ``region`` may never be promoted as things stand, whatever its WAL."""
    if region.name == primary:
        return "is the primary"
    if not region.promotable:
        return "not promotable (spec.promotable is false)"
    if region.fenced:
        return "fenced (rejoin it as a standby first)"
    if region.needs_reclone:
        return "must be re-cloned"
    if obs is None:
        return "not observed"
    if not obs.reachable:
        return f"unreachable ({obs.probe.error or 'no answer'})"
    return None


def ineligibility(
    region: RegionState,
    obs: Observation | None,
    *,
    primary: str | None,
    primary_timeline: int | None,
    reference_lsn: int | None,
    max_lag_bytes: int,
    fresh: bool,
    force: bool = False,
) -> str | None:
    """Why ``region`` may not be promoted now, or None when it may."""
    refused = _refused(region, obs, primary)
    if refused is not None or obs is None:
        return refused or "not observed"
    if not fresh:
        return "observation is stale"
    if obs.role is not Role.STANDBY:
        return f"not a standby (role {obs.role})"
    timeline = obs.probe.timeline
    if primary_timeline is not None and timeline is not None and timeline != primary_timeline:
        return f"on timeline {timeline}, the primary was on {primary_timeline}"
    loss = loss_if_promoted(reference_lsn, obs)
    if loss is None:
        if force:
            return None
        return "lag unknown (no WAL position of the primary or the standby)"
    if loss > max_lag_bytes and not force:
        return f"{loss} bytes behind the primary (limit {max_lag_bytes})"
    return None


def caught_up(primary_lsn: int | None, standby_replay_lsn: int | None) -> bool:
    """Switchover gate: the target has replayed everything the (fenced) primary wrote."""
    return primary_lsn is not None and standby_replay_lsn is not None and standby_replay_lsn >= primary_lsn


@dataclass(frozen=True)
class Assessment:
    """Every region after this check, and the housekeeping it calls for."""

    verdicts: dict[str, RegionVerdict]
    fence: tuple[str, ...]  # apply the fence (reachable, still writable)
    unfence: tuple[str, ...]  # rejoined as standbys of the primary
    follow: tuple[str, ...]  # point at the primary


@dataclass(frozen=True)
class _PrimaryNow:
    name: str | None
    ok: bool  # reachable, fresh and a primary now
    timeline: int | None


class Seen:
    """What one check observed, read against what earlier checks recorded."""

    def __init__(
        self, plan: PlanState, regions: Sequence[RegionState], topology: Topology, now: dt.datetime
    ) -> None:
        names = [r.name for r in regions]
        if len(set(names)) != len(names):
            raise ValueError(f"duplicate region names: {sorted(n for n in set(names) if names.count(n) > 1)}")
        unknown = set(topology.observations) - set(names)
        if unknown:
            raise ValueError(f"observations of unknown regions: {sorted(unknown)}")
        for region in regions:
            if region.consecutive_failures < 0:
                raise ValueError(f"{region.name}: consecutive failures must not be negative")
        if now.tzinfo is None:
            raise ValueError("now must be timezone-aware")
        self.plan, self.spec, self.topology, self.now = plan, plan.spec, topology, now
        self.regions = {r.name: r for r in regions}
        self.obs = topology.observations
        self.limit = stale_after(plan.spec)
        self.threshold = plan.spec.failure_threshold

    # --- one region now -----------------------------------------------------------------------------

    def usable(self, name: str) -> Observation | None:
        """The region's observation when it is fresh and reachable."""
        obs = self.obs.get(name)
        if obs is None or not obs.reachable or not is_fresh(obs, self.now, self.limit):
            return None
        return obs

    def is_primary_now(self, name: str) -> bool:
        obs = self.usable(name)
        return obs is not None and obs.role is Role.PRIMARY

    def is_standby_now(self, name: str) -> bool:
        obs = self.usable(name)
        return obs is not None and obs.role is Role.STANDBY

    def timeline_of(self, name: str) -> int | None:
        obs = self.usable(name)
        if obs is not None and obs.probe.timeline is not None:
            return obs.probe.timeline
        return self.regions[name].last_timeline

    def reference_lsn(self, primary: str | None) -> int | None:
        if primary is None:
            return None
        obs = self.usable(primary)
        if obs is not None and obs.role is Role.PRIMARY and obs.probe.current_lsn is not None:
            return obs.probe.current_lsn
        return self.regions[primary].last_lsn

    def recorded_primary(self) -> str | None:
        return self.plan.primary if self.plan.primary in self.regions else None

    def live_primaries(self) -> list[str]:
        """Unfenced regions that are primaries now."""
        return [n for n in sorted(self.regions) if self.is_primary_now(n) and not self.regions[n].fenced]

    # --- the primary ----------------------------------------------------------------------------------

    def find_primary(self) -> tuple[str | None, str | None, set[str]]:
        """The primary (recorded, else the one live unfenced primary), a note when adopted, and the
        regions that become fenced because they are second primaries."""
        recorded = self.recorded_primary()
        live = self.live_primaries()
        op = self.plan.in_progress
        if op is not None and op.to_region in live:  # promoted before a restart: finish the operation
            others = {n for n in live if n != op.to_region}
            if op.from_region in self.regions:
                others.add(op.from_region)
            return op.to_region, None, others
        if recorded is None:
            if len(live) == 1:
                return live[0], f"found primary {live[0]}", set()
            return None, None, set()
        rogues = [n for n in live if n != recorded]
        if not rogues:
            return recorded, None, set()
        if not self.is_primary_now(recorded):
            # The recorded primary is gone and a region was promoted outside this operator: the newest
            # timeline wins; the old primary is fenced.
            last = self.timeline_of(recorded)
            newer = [n for n in rogues if (self.timeline_of(n) or 0) > (last or 0)]
            if len(newer) == 1:
                adopted = newer[0]
                others = {n for n in rogues if n != adopted} | {recorded}
                return adopted, f"{adopted} was promoted outside the operator; adopted as primary", others
        return recorded, None, set(rogues)

    # --- every region ---------------------------------------------------------------------------------

    def assess(self, primary: str | None, newly_fenced: set[str]) -> Assessment:
        """Health, failure counts and housekeeping: fences to apply, rejoined regions, standbys to
        repoint."""
        now = _PrimaryNow(
            primary,
            primary is not None and self.is_primary_now(primary),
            self.timeline_of(primary) if primary else None,
        )
        verdicts: dict[str, RegionVerdict] = {}
        todo: dict[str, list[str]] = {"fence": [], "unfence": [], "follow": []}
        for name in sorted(self.regions):
            verdicts[name], task = self._judge(name, now, name in newly_fenced)
            if task is not None:
                todo[task].append(name)
        follow = [n for n in todo["follow"] if not verdicts[n].needs_reclone]
        verdicts = {
            name: replace(v, ineligible=self.eligibility(name, v, primary)) for name, v in verdicts.items()
        }
        return Assessment(verdicts, tuple(todo["fence"]), tuple(todo["unfence"]), tuple(follow))

    def _judge(self, name: str, primary: _PrimaryNow, newly_fenced: bool) -> tuple[RegionVerdict, str | None]:
        """One region's verdict, and what to do about it: fence, unfence, follow or nothing."""
        region, obs = self.regions[name], self.usable(name)
        fenced, reclone, task = region.fenced or newly_fenced, region.needs_reclone, None
        standby = obs is not None and obs.role is Role.STANDBY
        if name == primary.name:
            ok = healthy = primary.ok
        elif fenced:
            ok, healthy = obs is not None, False
            if obs is not None and obs.role is Role.PRIMARY and not obs.probe.read_only:
                task = "fence"
            rejoined = standby and bool(
                obs and obs.probe.streaming and obs.probe.timeline == primary.timeline
            )
            if primary.ok and rejoined:
                task, fenced, healthy, reclone = "unfence", False, True, False
        else:
            following = standby and bool(
                obs
                and obs.probe.streaming
                and (primary.timeline is None or obs.probe.timeline == primary.timeline)
            )
            # With the primary down, a standby cannot stream: it is judged on reachability.
            ok = healthy = following if primary.ok else standby
            if primary.ok and standby and not following:
                task = "follow"
        failures = 0 if ok else self.regions[name].consecutive_failures + 1
        since = None if ok else (region.failing_since or self.now)
        if primary.ok and ok and name != primary.name and not fenced:
            reclone = False  # it follows the primary again (e.g. re-cloned)
        elif primary.ok and not fenced and standby and failures >= self.threshold:
            timeline = obs.probe.timeline if obs is not None else None
            if timeline is not None and primary.timeline is not None and timeline != primary.timeline:
                reclone = True
        return RegionVerdict(healthy, failures, since, fenced, reclone, None), task

    def eligibility(
        self, name: str, verdict: RegionVerdict, primary: str | None, force: bool = False
    ) -> str | None:
        region = replace(self.regions[name], fenced=verdict.fenced, needs_reclone=verdict.needs_reclone)
        return ineligibility(
            region,
            self.obs.get(name),
            primary=primary,
            primary_timeline=self.timeline_of(primary) if primary else None,
            reference_lsn=self.reference_lsn(primary),
            max_lag_bytes=self.spec.max_lag_bytes,
            fresh=is_fresh(self.obs.get(name), self.now, self.limit),
            force=force,
        )

    def best_candidate(
        self, primary: str | None, verdicts: Mapping[str, RegionVerdict]
    ) -> tuple[str | None, str]:
        """The standby to promote (best priority, then most WAL), or None and every region's reason."""
        eligible: list[tuple[int, int, str]] = []
        reasons: list[str] = []
        for name in sorted(self.regions):
            if name == primary:
                continue
            why = verdicts[name].ineligible
            if why is None:
                eligible.append((self.regions[name].priority, -(self.obs[name].position or 0), name))
            else:
                reasons.append(f"{name}: {why}")
        if not eligible:
            return None, "; ".join(reasons) or "no other region"
        return min(eligible)[2], ""
