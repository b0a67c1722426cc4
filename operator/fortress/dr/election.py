"""Who is primary, who to promote, whom to fence: the pure decision of one DRPlan check.

``decide(plan, regions, topology, lease, now)`` reads the plan's spec and recorded state, each
region's spec and recorded state (fenced, consecutive failures, last timeline and WAL position) and
what this check observed, and returns a ``Decision``: nothing to do, wait, fail over to X, switch
over to X, no candidate (and why), report only (manual mode), or stand by (another replica holds the
lease). It never returns a decision that leaves two writable primaries: the old primary is marked
fenced as part of every promotion, fenced regions are never promoted, and a second primary that
appears is fenced.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from enum import StrEnum

from fortress.api.common import parse_duration
from fortress.api.drplan import DRPlanSpec, FailoverMode, Operation, RequestType
from fortress.dr.topology import Observation, Role, Topology


class Action(StrEnum):
    HEALTHY = "Healthy"  # the primary is healthy: nothing to promote
    WAIT = "Wait"  # the primary failed fewer than failureThreshold checks in a row
    FAILOVER = "Failover"  # promote target now (the old primary is fenced)
    SWITCHOVER = "Switchover"  # fence the primary, wait for zero lag, promote target
    NO_CANDIDATE = "NoCandidate"  # the primary is lost and no standby may be promoted
    MANUAL = "ManualMode"  # the primary is lost; automatic failover is off: report only
    NO_PRIMARY = "NoPrimary"  # no primary recorded or observed
    SPLIT_BRAIN = "SplitBrain"  # several unfenced primaries and none recorded: act on nothing
    DUPLICATE = "DuplicateServers"  # several regions reach the same server: act on nothing
    LEASE_HELD = "LeaseHeld"  # another operator replica holds the plan's lease


@dataclass(frozen=True)
class RegionState:
    """A region's spec and what earlier checks recorded in its status."""

    name: str
    priority: int = 100
    promotable: bool = True
    endpoint: str = ""  # host:port the Service points at when it is primary
    fenced: bool = False
    needs_reclone: bool = False
    consecutive_failures: int = 0
    failing_since: dt.datetime | None = None
    last_timeline: int | None = None
    last_lsn: int | None = None  # last known WAL position (current LSN while primary)


@dataclass(frozen=True)
class PlanState:
    """The plan's spec and what earlier checks recorded in its status."""

    spec: DRPlanSpec
    primary: str | None = None
    handled_request_id: str | None = None
    in_progress: Operation | None = None
    service_endpoint: str | None = None


@dataclass(frozen=True)
class LeaseView:
    holds: bool
    holder: str | None = None


@dataclass(frozen=True)
class RegionVerdict:
    """A region after this check."""

    healthy: bool
    failures: int
    failing_since: dt.datetime | None
    fenced: bool
    needs_reclone: bool
    ineligible: str | None  # why it may not be promoted now; None when it may


@dataclass(frozen=True)
class Decision:
    action: Action
    reason: str
    primary: str | None  # the primary once the decision is carried out
    regions: Mapping[str, RegionVerdict] = field(default_factory=dict)
    target: str | None = None  # FAILOVER / SWITCHOVER: region to promote
    from_region: str | None = None  # FAILOVER / SWITCHOVER: primary being replaced
    candidate: str | None = None  # who a failover would promote now
    fence: tuple[str, ...] = ()  # apply the fence now (reachable, still writable)
    unfence: tuple[str, ...] = ()  # fenced regions that rejoined as standbys of the primary
    lift_fence: tuple[str, ...] = ()  # make writable again (an abandoned switchover)
    follow: tuple[str, ...] = ()  # point these standbys at the primary (after promotion: target)
    service_to: str | None = None  # repoint the Service to this region's endpoint
    request_id: str | None = None  # the manual request this check handled (acted on or rejected)
    request_note: str | None = None  # why it was rejected
    force: bool = False
    detected_at: dt.datetime | None = None  # when the primary's failure was first seen
    loss_bytes: int | None = None  # FAILOVER: WAL the target lacks of the primary's last known position
    resume: bool = False  # continuing an operation recorded in status
    abandoned: str | None = None  # an operation in status that was given up, and why
    duplicates: tuple[tuple[str, ...], ...] = ()  # regions reaching the same server

    @property
    def acts(self) -> bool:
        return self.action in (Action.FAILOVER, Action.SWITCHOVER)


def stale_after(spec: DRPlanSpec) -> float:
    """Observations older than this (seconds) are not trusted: two check intervals."""
    return 2 * parse_duration(spec.check_interval).total_seconds()


def is_fresh(obs: Observation | None, now: dt.datetime, limit: float) -> bool:
    return obs is not None and (now - obs.observed_at).total_seconds() <= limit


def loss_if_promoted(reference_lsn: int | None, obs: Observation | None) -> int | None:
    """WAL bytes of the primary's (last known) position that ``obs`` does not have."""
    if reference_lsn is None or obs is None or obs.position is None:
        return None
    return max(0, reference_lsn - obs.position)


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


def decide(
    plan: PlanState,
    regions: Sequence[RegionState],
    topology: Topology,
    lease: LeaseView,
    now: dt.datetime,
) -> Decision:
    """The decision of one check (see the module docstring)."""
    return _Check(plan, regions, topology, lease, now).decide()


class _Check:
    def __init__(
        self,
        plan: PlanState,
        regions: Sequence[RegionState],
        topology: Topology,
        lease: LeaseView,
        now: dt.datetime,
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
        self.plan, self.spec, self.topology, self.lease, self.now = plan, plan.spec, topology, lease, now
        self.regions = {r.name: r for r in regions}
        self.obs = topology.observations
        self.limit = stale_after(plan.spec)
        self.threshold = plan.spec.failure_threshold

    # --- what this check saw -------------------------------------------------------------------------

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

    # --- the decision ----------------------------------------------------------------------------------

    def decide(self) -> Decision:
        if self.topology.duplicates:  # nothing here is what it claims to be: judge nobody
            recorded = self.plan.primary if self.plan.primary in self.regions else None
            primary, adopted_note, newly_fenced = recorded, None, set[str]()
        else:
            primary, adopted_note, newly_fenced = self.find_primary()
        verdicts, fence, unfence, follow = self.assess(primary, newly_fenced)
        candidate, reasons = self.best_candidate(primary, verdicts)
        decision = Decision(
            Action.HEALTHY, "", primary, verdicts, candidate=candidate, duplicates=self.topology.duplicates
        )

        if not self.lease.holds:
            return replace(decision, action=Action.LEASE_HELD, reason=f"lease held by {self.lease.holder}")
        if self.topology.duplicates:
            groups = "; ".join(", ".join(g) for g in self.topology.duplicates)
            reason = (
                f"regions reach the same PostgreSQL server ({groups}): each region needs a server of its "
                "own; nothing is fenced or promoted until their connection Secrets are fixed"
            )
            return replace(decision, action=Action.DUPLICATE, reason=reason)
        live = [n for n in sorted(self.regions) if self.is_primary_now(n) and not self.regions[n].fenced]
        if primary is None and len(live) > 1:
            reason = (
                f"several primaries and none recorded ({', '.join(live)}): nothing is done; "
                "fence all but one by hand"
            )
            return replace(decision, action=Action.SPLIT_BRAIN, reason=reason)

        # An operation recorded in status: resume it (each step is idempotent) or give it up.
        op = self.plan.in_progress
        if op is not None:
            target_live = op.to_region in self.regions and (
                self.is_standby_now(op.to_region) or self.is_primary_now(op.to_region)
            )
            if target_live:
                action = Action.FAILOVER if op.type == RequestType.FAILOVER else Action.SWITCHOVER
                return self.operation(
                    decision,
                    action,
                    target=op.to_region,
                    from_region=op.from_region,
                    reason=op.reason,
                    request_id=op.request_id,
                    force=op.force,
                    detected_at=_parse_time(op.detected_at),
                    resume=True,
                )
            abandoned = f"{op.type} to {op.to_region} abandoned: the target is not reachable as a standby"
            decision = replace(decision, abandoned=abandoned)
            handing_back = op.type == RequestType.SWITCHOVER and op.from_region == primary
            if handing_back and primary is not None and self.is_primary_now(primary):
                verdicts = _with(verdicts, primary, fenced=False)  # give the primary its writes back
                fence = tuple(n for n in fence if n != primary)
                decision = replace(decision, regions=verdicts, lift_fence=(primary,))

        # A manual request not yet handled: act on it, or reject it and carry on.
        request = self.spec.request
        if request is not None and request.request_id != self.plan.handled_request_id:
            problem = self.request_problem(primary, verdicts)
            if problem is None:
                target = request.target_region
                action = Action.FAILOVER if request.type == RequestType.FAILOVER else Action.SWITCHOVER
                return self.operation(
                    decision,
                    action,
                    target=target,
                    from_region=primary,
                    reason=f"manual {request.type} to {target} (request {request.request_id})",
                    request_id=request.request_id,
                    force=request.force,
                    detected_at=self.regions[primary].failing_since if primary else None,
                )
            note = f"{request.type} to {request.target_region} rejected: {problem}"
            decision = replace(decision, request_id=request.request_id, request_note=note)

        if not self.regions:
            return replace(decision, action=Action.NO_PRIMARY, reason="no DRRegion has this plan as planRef")
        if primary is None:
            reason = (
                "no primary: no region is reachable as a primary and none is recorded; request a "
                "failover to a standby (force: true when its lag is unknown)"
            )
            return replace(decision, action=Action.NO_PRIMARY, reason=reason, fence=fence)

        decision = replace(decision, fence=fence, follow=follow, unfence=unfence)
        verdict = verdicts[primary]
        if verdict.healthy:
            streaming = [n for n in sorted(self.regions) if n != primary and verdicts[n].healthy]
            reason = f"primary {primary} healthy; {len(streaming)} standby(s) streaming; "
            reason += f"failover candidate {candidate}" if candidate else f"no failover candidate ({reasons})"
            if adopted_note:
                reason = f"{adopted_note}; {reason}"
            service_to = primary if self.plan.service_endpoint != self.regions[primary].endpoint else None
            return replace(decision, reason=reason, service_to=service_to)

        lost = f"primary {primary} failed {verdict.failures} consecutive check(s)"
        if verdict.failures < self.threshold:
            return replace(decision, action=Action.WAIT, reason=f"{lost} (failover after {self.threshold})")
        if self.spec.mode == FailoverMode.MANUAL:
            suggestion = f"candidate {candidate}" if candidate else f"no candidate ({reasons})"
            reason = f"{lost}; automatic failover is off (mode manual): {suggestion}; request a failover"
            return replace(decision, action=Action.MANUAL, reason=reason)
        if candidate is None:
            reason = (
                f"{lost}; no standby may be promoted: {reasons}; a manual failover with force: true "
                "may override the lag limit"
            )
            return replace(decision, action=Action.NO_CANDIDATE, reason=reason)
        return self.operation(
            decision,
            Action.FAILOVER,
            target=candidate,
            from_region=primary,
            reason=f"{lost}; promoting {candidate}",
            request_id=decision.request_id,
            force=False,
            detected_at=verdict.failing_since,
        )

    def find_primary(self) -> tuple[str | None, str | None, set[str]]:
        """The primary (recorded, else the one live unfenced primary), a note when adopted, and the
        regions that become fenced because they are second primaries."""
        recorded = self.plan.primary if self.plan.primary in self.regions else None
        live = [n for n in sorted(self.regions) if self.is_primary_now(n) and not self.regions[n].fenced]
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

    def assess(
        self, primary: str | None, newly_fenced: set[str]
    ) -> tuple[dict[str, RegionVerdict], tuple[str, ...], tuple[str, ...], tuple[str, ...]]:
        """Health, failure counts and housekeeping: fences to apply, rejoined regions, standbys to
        repoint."""
        primary_ok = primary is not None and self.is_primary_now(primary)
        primary_timeline = self.timeline_of(primary) if primary else None
        verdicts: dict[str, RegionVerdict] = {}
        fence: list[str] = []
        unfence: list[str] = []
        follow: list[str] = []
        for name, region in sorted(self.regions.items()):
            obs = self.usable(name)
            fenced = region.fenced or name in newly_fenced
            reclone = region.needs_reclone
            if name == primary:
                ok = primary_ok
                healthy = ok
            elif fenced:
                ok = obs is not None
                healthy = False
                if obs is not None and obs.role is Role.PRIMARY and not obs.probe.read_only:
                    fence.append(name)
                if (
                    primary_ok
                    and obs is not None
                    and obs.role is Role.STANDBY
                    and obs.probe.streaming
                    and obs.probe.timeline == primary_timeline
                ):
                    unfence.append(name)
                    fenced, healthy, reclone = False, True, False
            else:
                following = (
                    obs is not None
                    and obs.role is Role.STANDBY
                    and bool(obs.probe.streaming)
                    and (primary_timeline is None or obs.probe.timeline == primary_timeline)
                )
                # With the primary down, a standby cannot stream: it is judged on reachability.
                ok = following if primary_ok else (obs is not None and obs.role is Role.STANDBY)
                healthy = ok
                if primary_ok and obs is not None and obs.role is Role.STANDBY and not following:
                    follow.append(name)
            failures = 0 if ok else region.consecutive_failures + 1
            since = None if ok else (region.failing_since or self.now)
            if primary_ok and ok and name != primary and not fenced:
                reclone = False  # it follows the primary again (e.g. re-cloned)
            elif (
                primary_ok
                and not fenced
                and obs is not None
                and obs.role is Role.STANDBY
                and failures >= self.threshold
                and obs.probe.timeline is not None
                and primary_timeline is not None
                and obs.probe.timeline != primary_timeline
            ):
                reclone = True
            verdicts[name] = RegionVerdict(healthy, failures, since, fenced, reclone, None)
        follow = [n for n in follow if not verdicts[n].needs_reclone]
        verdicts = {
            name: _with_eligibility(v, self.eligibility(name, v, primary)) for name, v in verdicts.items()
        }
        return verdicts, tuple(fence), tuple(unfence), tuple(follow)

    def eligibility(
        self, name: str, verdict: RegionVerdict, primary: str | None, force: bool = False
    ) -> str | None:
        region = RegionState(
            **{
                **self.regions[name].__dict__,
                "fenced": verdict.fenced,
                "needs_reclone": verdict.needs_reclone,
            }
        )
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

    def request_problem(self, primary: str | None, verdicts: Mapping[str, RegionVerdict]) -> str | None:
        request = self.spec.request
        assert request is not None
        target = request.target_region
        if target not in self.regions:
            return f"region {target} is not part of this plan"
        if target == primary and self.is_primary_now(target):
            return f"{target} is already the primary"
        if request.type == RequestType.SWITCHOVER and (primary is None or not self.is_primary_now(primary)):
            return "a switchover needs a healthy primary to hand over from; request a failover instead"
        why = self.eligibility(target, verdicts[target], primary, force=request.force)
        if why is not None:
            hint = "; force: true overrides the lag limit" if "behind" in why or "unknown" in why else ""
            return f"{target} {why}{hint}"
        return None

    def operation(
        self,
        decision: Decision,
        action: Action,
        *,
        target: str,
        from_region: str | None,
        reason: str,
        request_id: str | None,
        force: bool,
        detected_at: dt.datetime | None,
        resume: bool = False,
    ) -> Decision:
        """A promotion of ``target``: the old primary is fenced, the others follow the target."""
        fence: list[str] = []
        updated = dict(decision.regions)
        if from_region is not None and from_region != target:
            updated = _with(updated, from_region, fenced=True, healthy=False)
            if self.is_primary_now(from_region) and not self.obs[from_region].probe.read_only:
                fence.append(from_region)
        for name in sorted(self.regions):
            if name in (target, from_region):
                continue
            obs = self.usable(name)
            if obs is not None and obs.role is Role.PRIMARY:  # a second primary: never two
                updated = _with(updated, name, fenced=True, healthy=False)
                if not obs.probe.read_only:
                    fence.append(name)
        target_obs = self.obs.get(target)
        target_position = target_obs.position if target_obs is not None else None
        follow: list[str] = []
        for name in sorted(self.regions):
            if name in (target, from_region) or updated[name].fenced or not self.is_standby_now(name):
                continue
            position = self.obs[name].position
            if target_position is not None and position is not None and position > target_position:
                updated = _with(updated, name, needs_reclone=True)  # it has WAL the target never got
            elif not updated[name].needs_reclone:
                follow.append(name)
        return replace(
            decision,
            action=action,
            reason=reason,
            regions=updated,
            target=target,
            from_region=from_region,
            candidate=target,
            fence=tuple(fence),
            follow=tuple(follow),
            unfence=(),
            service_to=target,
            request_id=request_id,
            force=force,
            detected_at=detected_at or self.now,
            loss_bytes=loss_if_promoted(self.reference_lsn(from_region), target_obs),
            resume=resume,
        )


def _with(verdicts: Mapping[str, RegionVerdict], name: str, **changes: object) -> dict[str, RegionVerdict]:
    updated = dict(verdicts)
    current = updated[name]
    updated[name] = replace(current, **changes)  # type: ignore[arg-type]
    return updated


def _with_eligibility(verdict: RegionVerdict, why: str | None) -> RegionVerdict:
    return RegionVerdict(
        verdict.healthy, verdict.failures, verdict.failing_since, verdict.fenced, verdict.needs_reclone, why
    )


def _parse_time(text: str | None) -> dt.datetime | None:
    if not text:
        return None
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
