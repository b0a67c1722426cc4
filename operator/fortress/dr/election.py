"""Who is primary, who to promote, whom to fence: the pure decision of one DRPlan check.

``decide(plan, regions, topology, lease, now)`` reads the plan's spec and recorded state, each
region's spec and recorded state (fenced, consecutive failures, last timeline and WAL position) and
what this check observed, and returns a ``Decision``: nothing to do, wait, fail over to X, switch
over to X, no candidate (and why), report only (manual mode), or stand by (another replica holds the
lease). It never returns a decision that leaves two writable primaries: the old primary is marked
fenced as part of every promotion, fenced regions are never promoted, and a second primary that
appears is fenced.

The decision is taken in this order, each step a method of :class:`_Election`: refuse to act on what
cannot be trusted (the lease, duplicate servers, a split brain), resume or give up an operation
recorded in status, act on (or reject) a new manual request, then judge the primary.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

from fortress.api.drplan import FailoverMode, RequestAction
from fortress.core.requests import pending
from fortress.core.time import parse
from fortress.dr.decision import (
    Action,
    Decision,
    LeaseView,
    PlanState,
    RegionState,
    RegionVerdict,
    with_verdict,
)
from fortress.dr.judge import Seen, loss_if_promoted
from fortress.dr.topology import Role, Topology


def decide(
    plan: PlanState,
    regions: Sequence[RegionState],
    topology: Topology,
    lease: LeaseView,
    now: dt.datetime,
) -> Decision:
    """The decision of one check (see the module docstring)."""
    return _Election(Seen(plan, regions, topology, now), lease).decide()


@dataclass(frozen=True)
class _Promotion:
    """What a failover or switchover is asked for."""

    action: Action
    target: str
    from_region: str | None
    reason: str
    request_id: str | None
    force: bool
    detected_at: dt.datetime | None
    resume: bool = False


class _Election:
    def __init__(self, seen: Seen, lease: LeaseView) -> None:
        self.seen, self.lease = seen, lease
        self.spec = seen.spec

    def decide(self) -> Decision:
        if self.seen.topology.duplicates:  # nothing here is what it claims to be: judge nobody
            primary, adopted, newly_fenced = self.seen.recorded_primary(), None, set[str]()
        else:
            primary, adopted, newly_fenced = self.seen.find_primary()
        judged = self.seen.assess(primary, newly_fenced)
        candidate, reasons = self.seen.best_candidate(primary, judged.verdicts)
        decision = Decision(
            Action.HEALTHY,
            "",
            primary,
            judged.verdicts,
            candidate=candidate,
            duplicates=self.seen.topology.duplicates,
        )
        refused = self.refuse(decision, primary)
        if refused is not None:
            return refused
        decision, fence, resumed = self.in_progress(decision, primary, judged.fence)
        if resumed is not None:
            return resumed
        decision, requested = self.manual_request(decision, primary)
        if requested is not None:
            return requested
        if not self.seen.regions:
            return replace(decision, action=Action.NO_PRIMARY, reason="no DRRegion has this plan as planRef")
        if primary is None:
            reason = (
                "no primary: no region is reachable as a primary and none is recorded; request a "
                "failover to a standby (force: true when its lag is unknown)"
            )
            return replace(decision, action=Action.NO_PRIMARY, reason=reason, fence=fence)
        decision = replace(decision, fence=fence, follow=judged.follow, unfence=judged.unfence)
        if decision.regions[primary].healthy:
            return self.healthy(decision, primary, reasons, adopted)
        return self.primary_lost(decision, primary, reasons)

    # --- what cannot be acted on ---------------------------------------------------------------------

    def refuse(self, decision: Decision, primary: str | None) -> Decision | None:
        """Stand by (lease), or act on nothing (duplicate servers, split brain); None: go on."""
        if not self.lease.holds:
            return replace(decision, action=Action.LEASE_HELD, reason=f"lease held by {self.lease.holder}")
        if self.seen.topology.duplicates:
            groups = "; ".join(", ".join(g) for g in self.seen.topology.duplicates)
            reason = (
                f"regions reach the same PostgreSQL server ({groups}): each region needs a server of its "
                "own; nothing is fenced or promoted until their connection Secrets are fixed"
            )
            return replace(decision, action=Action.DUPLICATE, reason=reason)
        live = self.seen.live_primaries()
        if primary is None and len(live) > 1:
            reason = (
                f"several primaries and none recorded ({', '.join(live)}): nothing is done; "
                "fence all but one by hand"
            )
            return replace(decision, action=Action.SPLIT_BRAIN, reason=reason)
        return None

    # --- an operation recorded in status -------------------------------------------------------------

    def in_progress(
        self, decision: Decision, primary: str | None, fence: tuple[str, ...]
    ) -> tuple[Decision, tuple[str, ...], Decision | None]:
        """Resume the operation in status (each step is idempotent), or give it up: the decision so
        far, the fences still to apply, and the resumed operation (None when there is none)."""
        op = self.seen.plan.in_progress
        if op is None:
            return decision, fence, None
        target_live = op.to_region in self.seen.regions and (
            self.seen.is_standby_now(op.to_region) or self.seen.is_primary_now(op.to_region)
        )
        if target_live:
            action = Action.FAILOVER if op.type == RequestAction.FAILOVER else Action.SWITCHOVER
            wanted = _Promotion(
                action,
                op.to_region,
                op.from_region,
                op.reason,
                op.request_id,
                op.force,
                parse(op.detected_at),
                resume=True,
            )
            return decision, fence, self.operation(decision, wanted)
        abandoned = f"{op.type} to {op.to_region} abandoned: the target is not reachable as a standby"
        decision = replace(decision, abandoned=abandoned)
        handing_back = op.type == RequestAction.SWITCHOVER and op.from_region == primary
        if handing_back and primary is not None and self.seen.is_primary_now(primary):
            verdicts = with_verdict(decision.regions, primary, fenced=False)  # give it its writes back
            fence = tuple(n for n in fence if n != primary)
            decision = replace(decision, regions=verdicts, lift_fence=(primary,))
        return decision, fence, None

    # --- a manual request ----------------------------------------------------------------------------

    def manual_request(self, decision: Decision, primary: str | None) -> tuple[Decision, Decision | None]:
        """Act on a request not handled yet, or reject it and carry on (with the note)."""
        request = pending(self.spec.request, self.seen.plan.handled_request_id)
        if request is None:
            return decision, None
        problem = self.request_problem(primary, decision.regions)
        if problem is not None:
            note = f"{request.action} to {request.target_region} rejected: {problem}"
            return replace(decision, request_id=request.request_id, request_note=note), None
        target = request.target_region
        wanted = _Promotion(
            Action.FAILOVER if request.action == RequestAction.FAILOVER else Action.SWITCHOVER,
            target,
            primary,
            f"manual {request.action} to {target} (request {request.request_id})",
            request.request_id,
            request.force,
            self.seen.regions[primary].failing_since if primary else None,
        )
        return decision, self.operation(decision, wanted)

    def request_problem(self, primary: str | None, verdicts: Mapping[str, RegionVerdict]) -> str | None:
        request = self.spec.request
        assert request is not None
        target = request.target_region
        if target not in self.seen.regions:
            return f"region {target} is not part of this plan"
        if target == primary and self.seen.is_primary_now(target):
            return f"{target} is already the primary"
        switchover = request.action == RequestAction.SWITCHOVER
        if switchover and (primary is None or not self.seen.is_primary_now(primary)):
            return "a switchover needs a healthy primary to hand over from; request a failover instead"
        why = self.seen.eligibility(target, verdicts[target], primary, force=request.force)
        if why is not None:
            hint = "; force: true overrides the lag limit" if "behind" in why or "unknown" in why else ""
            return f"{target} {why}{hint}"
        return None

    # --- the primary ---------------------------------------------------------------------------------

    def healthy(self, decision: Decision, primary: str, reasons: str, adopted: str | None) -> Decision:
        """A healthy primary: report the standbys and the candidate; point the Service if it strays."""
        streaming = [n for n in sorted(self.seen.regions) if n != primary and decision.regions[n].healthy]
        reason = f"primary {primary} healthy; {len(streaming)} standby(s) streaming; "
        candidate = decision.candidate
        reason += f"failover candidate {candidate}" if candidate else f"no failover candidate ({reasons})"
        if adopted:
            reason = f"{adopted}; {reason}"
        endpoint = self.seen.regions[primary].endpoint
        service_to = primary if self.seen.plan.service_endpoint != endpoint else None
        return replace(decision, reason=reason, service_to=service_to)

    def primary_lost(self, decision: Decision, primary: str, reasons: str) -> Decision:
        """An unhealthy primary: wait for the threshold, then fail over (or say why not)."""
        verdict = decision.regions[primary]
        candidate = decision.candidate
        lost = f"primary {primary} failed {verdict.failures} consecutive check(s)"
        threshold = self.seen.threshold
        if verdict.failures < threshold:
            return replace(decision, action=Action.WAIT, reason=f"{lost} (failover after {threshold})")
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
        wanted = _Promotion(
            Action.FAILOVER,
            candidate,
            primary,
            f"{lost}; promoting {candidate}",
            decision.request_id,
            False,
            verdict.failing_since,
        )
        return self.operation(decision, wanted)

    # --- a promotion ---------------------------------------------------------------------------------

    def operation(self, decision: Decision, wanted: _Promotion) -> Decision:
        """A promotion of the target: the old primary is fenced, the others follow the target."""
        verdicts, fence = self.fences(decision.regions, wanted.target, wanted.from_region)
        verdicts, follow = self.followers(verdicts, wanted.target, wanted.from_region)
        return replace(
            decision,
            action=wanted.action,
            reason=wanted.reason,
            regions=verdicts,
            target=wanted.target,
            from_region=wanted.from_region,
            candidate=wanted.target,
            fence=fence,
            follow=follow,
            unfence=(),
            service_to=wanted.target,
            request_id=wanted.request_id,
            force=wanted.force,
            detected_at=wanted.detected_at or self.seen.now,
            loss_bytes=loss_if_promoted(
                self.seen.reference_lsn(wanted.from_region), self.seen.obs.get(wanted.target)
            ),
            resume=wanted.resume,
        )

    def fences(
        self, verdicts: Mapping[str, RegionVerdict], target: str, from_region: str | None
    ) -> tuple[dict[str, RegionVerdict], tuple[str, ...]]:
        """The old primary and any other primary are marked fenced; the writable ones are fenced now."""
        updated, fence = dict(verdicts), []
        if from_region is not None and from_region != target:
            updated = with_verdict(updated, from_region, fenced=True, healthy=False)
            if self.seen.is_primary_now(from_region) and not self.seen.obs[from_region].probe.read_only:
                fence.append(from_region)
        for name in sorted(self.seen.regions):
            if name in (target, from_region):
                continue
            obs = self.seen.usable(name)
            if obs is not None and obs.role is Role.PRIMARY:  # a second primary: never two
                updated = with_verdict(updated, name, fenced=True, healthy=False)
                if not obs.probe.read_only:
                    fence.append(name)
        return updated, tuple(fence)

    def followers(
        self, verdicts: dict[str, RegionVerdict], target: str, from_region: str | None
    ) -> tuple[dict[str, RegionVerdict], tuple[str, ...]]:
        """The standbys that follow the target; one with WAL the target never got must be re-cloned."""
        target_obs = self.seen.obs.get(target)
        target_position = target_obs.position if target_obs is not None else None
        follow: list[str] = []
        for name in sorted(self.seen.regions):
            if name in (target, from_region) or verdicts[name].fenced or not self.seen.is_standby_now(name):
                continue
            position = self.seen.obs[name].position
            if target_position is not None and position is not None and position > target_position:
                verdicts = with_verdict(verdicts, name, needs_reclone=True)
            elif not verdicts[name].needs_reclone:
                follow.append(name)
        return verdicts, tuple(follow)
