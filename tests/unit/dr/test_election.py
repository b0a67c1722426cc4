"""The DR decision, table-driven: who is primary, who is promoted, who is fenced, and why not."""

from __future__ import annotations

import datetime as dt
import itertools
from dataclasses import dataclass, field, replace
from typing import Any

import pytest

from fortress.api.drplan import DRPlanSpec, Operation
from fortress.dr.decision import Action, Decision, LeaseView, PlanState, RegionState
from fortress.dr.election import decide
from fortress.dr.judge import caught_up, ineligibility
from fortress.dr.topology import Observation, Probe, Role, build

NOW = dt.datetime(2026, 1, 1, 12, 0, 0, tzinfo=dt.UTC)
MB = 1024 * 1024
A, B, C = "a", "b", "c"


def spec(**kw: Any) -> DRPlanSpec:
    base: dict[str, Any] = {"service": {"name": "db"}, "checkInterval": "1s", "failureThreshold": 3}
    base.update(kw)
    return DRPlanSpec.model_validate(base)


def up(
    lsn: int = 100 * MB, tl: int = 1, read_only: bool = False, age: float = 0.0, server: str = ""
) -> Probe:
    return Probe(
        observed_at=NOW - dt.timedelta(seconds=age),
        reachable=True,
        in_recovery=False,
        timeline=tl,
        current_lsn=lsn,
        read_only=read_only,
        server_id=server or None,
    )


def standby(
    lsn: int = 100 * MB,
    tl: int = 1,
    streaming: bool = True,
    age: float = 0.0,
    replay: int | None = None,
    server: str = "",
) -> Probe:
    return Probe(
        observed_at=NOW - dt.timedelta(seconds=age),
        reachable=True,
        in_recovery=True,
        timeline=tl,
        receive_lsn=lsn,
        replay_lsn=lsn if replay is None else replay,
        streaming=streaming,
        read_only=True,
        server_id=server or None,
    )


def down(age: float = 0.0) -> Probe:
    return Probe.unreachable(NOW - dt.timedelta(seconds=age), "connection refused")


def region(name: str, priority: int, **kw: Any) -> RegionState:
    return RegionState(name=name, priority=priority, endpoint=f"10.0.0.{priority}:5432", **kw)


def three(
    a: dict[str, Any] | None = None, b: dict[str, Any] | None = None, c: dict[str, Any] | None = None
) -> list[RegionState]:
    return [
        region(A, 0, **({"last_timeline": 1, "last_lsn": 100 * MB} | (a or {}))),
        region(B, 10, **(b or {})),
        region(C, 20, **(c or {})),
    ]


@dataclass
class Case:
    id: str
    probes: dict[str, Probe]
    regions: list[RegionState] = field(default_factory=three)
    plan: dict[str, Any] = field(default_factory=dict)
    spec: dict[str, Any] = field(default_factory=dict)
    lease: LeaseView = field(default_factory=lambda: LeaseView(True, "me"))
    action: Action = Action.HEALTHY
    target: str | None = None
    primary: str | None = A
    fence: tuple[str, ...] = ()
    follow: tuple[str, ...] | None = None
    candidate: str | bool | None = False  # False: not checked
    reason: str = ""  # substring of the reason (or request note)
    fenced: tuple[str, ...] = ()  # verdicts with fenced=True
    reclone: tuple[str, ...] = ()
    failures: dict[str, int] = field(default_factory=dict)


def run(case: Case) -> Decision:
    plan = PlanState(spec=spec(**case.spec), **({"primary": A} | case.plan))
    last = next((r.last_lsn for r in case.regions if r.name == plan.primary), None)
    topology = build(case.probes, plan.primary, last)
    return decide(plan, case.regions, topology, case.lease, NOW)


HEALTHY = {A: up(), B: standby(), C: standby()}
FAILED_TWICE = {"consecutive_failures": 2, "failing_since": NOW - dt.timedelta(seconds=2)}
OP = Operation(
    type="failover",
    from_region=A,
    to_region=B,
    reason="primary a failed 3 consecutive check(s)",
    started_at="2026-01-01T11:59:59.000Z",
    detected_at="2026-01-01T11:59:57.000Z",
)

# fmt: off
CASES = [
    Case("healthy primary, two standbys streaming", HEALTHY, candidate=B, follow=()),
    Case("healthy; the Service already points at it", HEALTHY, plan={"service_endpoint": "10.0.0.0:5432"}),
    Case("one missed check: wait", {A: down(), B: standby(), C: standby()}, action=Action.WAIT,
         reason="failed 1 consecutive", failures={A: 1}),
    Case("two missed checks: wait", {A: down(), B: standby(), C: standby()},
         three({"consecutive_failures": 1}), action=Action.WAIT, failures={A: 2}),
    Case("third missed check: fail over to the best priority", {A: down(), B: standby(), C: standby()},
         three(FAILED_TWICE), action=Action.FAILOVER, target=B, follow=(C,), fenced=(A,), failures={A: 3}),
    Case("threshold 1: the first missed check fails over", {A: down(), B: standby(), C: standby()},
         spec={"failureThreshold": 1, "rtoTarget": "2m"}, action=Action.FAILOVER, target=B, fenced=(A,)),
    Case("a stale primary observation is a failed check", {A: up(age=10), B: standby(), C: standby()},
         action=Action.WAIT, failures={A: 1}),
    Case("a primary that is in recovery is not a primary", {A: standby(), B: standby(), C: standby()},
         three(FAILED_TWICE), action=Action.FAILOVER, target=B, fenced=(A,)),
    Case("standby beyond the lag limit is skipped", {A: down(), B: standby(lsn=80 * MB), C: standby()},
         three(FAILED_TWICE), action=Action.FAILOVER, target=C, fenced=(A,)),
    Case("every standby beyond the lag limit: no candidate",
         {A: down(), B: standby(lsn=80 * MB), C: standby(lsn=70 * MB)}, three(FAILED_TWICE),
         action=Action.NO_CANDIDATE, reason="b: 20971520 bytes behind the primary (limit 16777216)",
         candidate=None),
    Case("received but not replayed WAL counts: promotion replays it",
         {A: down(), B: standby(lsn=100 * MB, replay=50 * MB), C: standby()}, three(FAILED_TWICE),
         action=Action.FAILOVER, target=B, fenced=(A,)),
    Case("unreachable standby is skipped", {A: down(), B: down(), C: standby()}, three(FAILED_TWICE),
         action=Action.FAILOVER, target=C, fenced=(A,)),
    Case("stale standby observation is skipped", {A: down(), B: standby(age=5), C: standby()},
         three(FAILED_TWICE), action=Action.FAILOVER, target=C, fenced=(A,)),
    Case("fenced standby is never promoted automatically", {A: down(), B: standby(), C: standby()},
         three(FAILED_TWICE, {"fenced": True}), action=Action.FAILOVER, target=C, fenced=(A, B)),
    Case("non-promotable region is never promoted", {A: down(), B: standby(), C: standby()},
         [region(A, 0, last_lsn=100 * MB, **FAILED_TWICE), region(B, 10, promotable=False), region(C, 20)],
         action=Action.FAILOVER, target=C, fenced=(A,)),
    Case("a region that needs re-cloning is not promoted", {A: down(), B: standby(), C: standby()},
         three(FAILED_TWICE, {"needs_reclone": True}), action=Action.FAILOVER, target=C, fenced=(A,),
         reclone=(B,)),
    Case("a standby on another timeline is not promoted", {A: down(), B: standby(tl=2), C: standby()},
         three(FAILED_TWICE), action=Action.FAILOVER, target=C, fenced=(A,)),
    Case("equal priority: the most advanced WAL wins", {A: down(), B: standby(lsn=99 * MB), C: standby()},
         [region(A, 0, last_lsn=100 * MB, **FAILED_TWICE), region(B, 10), region(C, 10)],
         action=Action.FAILOVER, target=C, fenced=(A,)),
    Case("equal priority and WAL: by name", {A: down(), B: standby(), C: standby()},
         [region(A, 0, last_lsn=100 * MB, **FAILED_TWICE), region(B, 10), region(C, 10)],
         action=Action.FAILOVER, target=B, fenced=(A,)),
    Case("a standby ahead of the target must be re-cloned", {A: down(), B: standby(lsn=99 * MB),
         C: standby()}, three(FAILED_TWICE), action=Action.FAILOVER, target=B, follow=(), reclone=(C,),
         fenced=(A,)),
    Case("no primary LSN known: lag cannot be bounded", {A: down(), B: standby(), C: standby()},
         [region(A, 0, **FAILED_TWICE), region(B, 10), region(C, 20)], action=Action.NO_CANDIDATE,
         reason="lag unknown"),
    Case("manual mode reports and does not act", {A: down(), B: standby(), C: standby()}, three(FAILED_TWICE),
         spec={"mode": "manual"}, action=Action.MANUAL, reason="automatic failover is off", candidate=B),
    Case("lease held by another replica: stand by", {A: down(), B: standby(), C: standby()},
         three(FAILED_TWICE), lease=LeaseView(False, "replica-2"), action=Action.LEASE_HELD,
         reason="replica-2"),
    Case("no primary recorded, one live: adopt it", HEALTHY, plan={"primary": None},
         reason="found primary a"),
    Case("no primary recorded, two live: split brain, act on nothing", {A: up(), B: up(), C: standby()},
         plan={"primary": None}, action=Action.SPLIT_BRAIN, primary=None),
    Case("no primary recorded, none live", {A: down(), B: standby(), C: standby()}, plan={"primary": None},
         action=Action.NO_PRIMARY, primary=None),
    Case("no regions", {}, regions=[], plan={"primary": None}, action=Action.NO_PRIMARY, primary=None,
         reason="no DRRegion"),
    Case("regions reaching the same server: judge and act on nothing",
         {A: up(server="s1"), B: up(server="s1"), C: up(server="s1")}, action=Action.DUPLICATE,
         reason="a, b, c"),
    Case("fenced old primary returns writable: fence it again", {A: up(), B: up(tl=2), C: standby(tl=2)},
         three({"fenced": True}), plan={"primary": B}, primary=B, fence=(A,), fenced=(A,)),
    Case("fenced old primary returns read-only: nothing to do",
         {A: up(read_only=True), B: up(tl=2), C: standby(tl=2)}, three({"fenced": True}),
         plan={"primary": B}, primary=B, fence=(), fenced=(A,)),
    Case("a second unfenced primary is fenced", {A: up(), B: up(), C: standby()}, fence=(B,), fenced=(B,)),
    Case("recorded primary gone, a newer timeline primary: adopt it",
         {A: down(), B: up(tl=2), C: standby(tl=2)}, primary=B, fenced=(A,), reason="promoted outside"),
    Case("fenced region rejoined as a streaming standby: unfenced",
         {A: standby(tl=2), B: up(tl=2), C: standby(tl=2)}, three({"fenced": True}), plan={"primary": B},
         primary=B, fenced=()),
    Case("standby not streaming: repoint it", {A: up(), B: standby(streaming=False), C: standby()},
         follow=(B,)),
    Case("standby streaming on an old timeline: repoint it",
         {A: up(tl=2), B: standby(tl=1), C: standby(tl=2)}, three({"last_timeline": 2}), follow=(B,)),
    Case("standby that cannot follow for threshold checks: re-clone",
         {A: up(tl=2), B: standby(tl=1, streaming=False), C: standby(tl=2)},
         three(None, {"consecutive_failures": 2}), follow=(), reclone=(B,)),
    Case("manual failover to c while the primary is healthy", HEALTHY,
         spec={"request": {"type": "failover", "targetRegion": C, "requestId": "r1"}},
         action=Action.FAILOVER, target=C, fence=(A,), fenced=(A,), follow=(B,)),
    Case("a handled request is not acted on again", HEALTHY, plan={"handled_request_id": "r1"},
         spec={"request": {"type": "failover", "targetRegion": C, "requestId": "r1"}}),
    Case("request for an unknown region: rejected, checks go on", HEALTHY,
         spec={"request": {"type": "failover", "targetRegion": "zz", "requestId": "r1"}},
         reason="not part of this plan"),
    Case("request for the primary: rejected", HEALTHY,
         spec={"request": {"type": "switchover", "targetRegion": A, "requestId": "r1"}},
         reason="already the primary"),
    Case("request for a fenced region: rejected", {A: up(), B: up(read_only=True), C: standby()},
         three(None, {"fenced": True}),
         spec={"request": {"type": "failover", "targetRegion": B, "requestId": "r"}},
         reason="fenced", fenced=(B,)),
    Case("request beyond the lag limit without force: rejected",
         {A: down(), B: standby(lsn=50 * MB), C: standby()}, three(FAILED_TWICE, None, {"fenced": True}),
         spec={"mode": "manual", "request": {"type": "failover", "targetRegion": B, "requestId": "r"}},
         action=Action.MANUAL, reason="force: true overrides the lag limit", fenced=(C,)),
    Case("request beyond the lag limit with force: promoted",
         {A: down(), B: standby(lsn=50 * MB), C: standby()}, three(FAILED_TWICE),
         spec={"mode": "manual",
               "request": {"type": "failover", "targetRegion": B, "requestId": "r", "force": True}},
         action=Action.FAILOVER, target=B, reclone=(C,), fenced=(A,)),
    Case("forced failover with unknown lag", {A: down(), B: standby(), C: standby()},
         [region(A, 0), region(B, 10), region(C, 20)], plan={"primary": None},
         spec={"request": {"type": "failover", "targetRegion": C, "requestId": "r", "force": True}},
         action=Action.FAILOVER, target=C, primary=None),
    Case("a request names its action (type is its older name)", HEALTHY,
         spec={"request": {"action": "switchover", "targetRegion": B, "requestId": "s"}},
         action=Action.SWITCHOVER, target=B, fence=(A,), fenced=(A,), follow=(C,),
         reason="manual switchover to b (request s)"),
    Case("a rejected request names its action", HEALTHY,
         spec={"request": {"action": "failover", "targetRegion": A, "requestId": "r1"}},
         reason="failover to a rejected: a is already the primary"),
    Case("switchover to b", HEALTHY,
         spec={"request": {"type": "switchover", "targetRegion": B, "requestId": "s"}},
         action=Action.SWITCHOVER, target=B, fence=(A,), fenced=(A,), follow=(C,)),
    Case("switchover without a healthy primary: rejected", {A: down(), B: standby(), C: standby()},
         spec={"request": {"type": "switchover", "targetRegion": B, "requestId": "s"}}, action=Action.WAIT,
         reason="needs a healthy primary"),
    Case("operation in status, target still a standby: resume it", {A: down(), B: standby(), C: standby()},
         three({"fenced": True}), plan={"in_progress": OP}, action=Action.FAILOVER, target=B, fenced=(A,)),
    Case("operation in status, target already promoted: finish it",
         {A: down(), B: up(tl=2), C: standby()}, three({"fenced": True}), plan={"in_progress": OP},
         action=Action.FAILOVER, target=B, primary=B, fenced=(A,)),
    Case("operation in status, target gone: abandoned, then a new candidate",
         {A: down(), B: down(), C: standby()}, three({"fenced": True, **FAILED_TWICE}),
         plan={"in_progress": OP}, action=Action.FAILOVER, target=C, fenced=(A,)),
]
# fmt: on


def _writable_primaries_after(case: Case, decision: Decision) -> set[str]:
    """Freshly seen regions that could take writes once the decision is carried out."""
    writable = {
        name
        for name, p in case.probes.items()
        if p.reachable
        and p.in_recovery is False
        and not p.read_only
        and (NOW - p.observed_at).total_seconds() <= 2
        and name not in decision.fence
    }
    if decision.acts and decision.target is not None:
        writable.add(decision.target)
    return writable


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_decision(case: Case) -> None:
    decision = run(case)
    assert decision.action is case.action, decision.reason
    assert decision.target == case.target
    note = f"{decision.reason} | {decision.request_note or ''}"
    assert case.reason in note
    if case.action is not Action.LEASE_HELD and not decision.acts:
        assert decision.primary == case.primary
    if decision.acts and case.primary != A:
        assert decision.primary == case.primary
    assert decision.fence == case.fence
    if case.follow is not None:
        assert decision.follow == case.follow
    if case.candidate is not False:
        assert decision.candidate == case.candidate
    assert tuple(sorted(n for n, v in decision.regions.items() if v.fenced)) == tuple(sorted(case.fenced))
    assert tuple(sorted(n for n, v in decision.regions.items() if v.needs_reclone)) == case.reclone
    for name, failures in case.failures.items():
        assert decision.regions[name].failures == failures
    if decision.action in (Action.LEASE_HELD, Action.DUPLICATE, Action.SPLIT_BRAIN):
        assert not decision.fence and not decision.follow and decision.service_to is None
    if case.action not in (Action.LEASE_HELD, Action.DUPLICATE, Action.SPLIT_BRAIN):
        assert len(_writable_primaries_after(case, decision)) <= 1, decision


def test_failover_names_the_failure_time_and_loss() -> None:
    case = Case("", {A: down(), B: standby(lsn=99 * MB), C: standby(lsn=98 * MB)}, three(FAILED_TWICE))
    decision = run(case)
    assert decision.action is Action.FAILOVER and decision.target == B
    assert decision.detected_at == NOW - dt.timedelta(seconds=2)  # the first failed check
    assert decision.loss_bytes == 1 * MB
    assert decision.service_to == B and decision.from_region == A


def test_in_progress_switchover_abandoned_hands_the_primary_back() -> None:
    op = OP.model_copy(update={"type": "switchover"})
    case = Case(
        "",
        {A: up(read_only=True), B: down(), C: standby()},
        three({"fenced": True}),
        plan={"in_progress": op},
    )
    decision = run(case)
    assert decision.abandoned is not None and "abandoned" in decision.abandoned
    assert decision.lift_fence == (A,) and not decision.regions[A].fenced
    assert decision.action is Action.HEALTHY


def test_every_combination_keeps_at_most_one_writable_primary() -> None:
    """Exhaustive over small states of three regions: never two writable primaries after a decision."""
    primary_states = [up(), up(read_only=True), down(), standby(), up(age=10)]
    standby_states = [standby(), standby(lsn=50 * MB), standby(streaming=False), down(), up(), up(tl=2)]
    region_flags = [{}, {"fenced": True}, {"needs_reclone": True}]
    counts = [0, 2, 5]
    checked = 0
    for pa, pb, pc, fb, fc, failures, mode in itertools.product(
        primary_states,
        standby_states,
        standby_states,
        region_flags,
        region_flags,
        counts,
        ["automatic", "manual"],
    ):
        regions = three({"consecutive_failures": failures}, fb, fc)
        case = Case("", {A: pa, B: pb, C: pc}, regions, spec={"mode": mode})
        decision = run(case)
        if decision.action in (Action.SPLIT_BRAIN, Action.DUPLICATE, Action.LEASE_HELD):
            continue
        assert len(_writable_primaries_after(case, decision)) <= 1, (decision.action, decision.reason)
        if decision.acts:
            assert decision.target is not None
            assert not next(r for r in regions if r.name == decision.target).fenced
            assert decision.regions[A].fenced  # the old primary is fenced as part of the promotion
            assert mode == "automatic"
        checked += 1
    assert checked > 1000


@pytest.mark.parametrize(
    ("regions", "probes", "message"),
    [
        ([region(A, 0), region(A, 1)], {}, "duplicate region names"),
        ([region(A, 0)], {B: up()}, "observations of unknown regions"),
        ([region(A, 0, consecutive_failures=-1)], {}, "must not be negative"),
    ],
)
def test_invalid_input_is_refused(regions: list[RegionState], probes: dict[str, Probe], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        decide(PlanState(spec()), regions, build(probes), LeaseView(True), NOW)


def test_naive_now_is_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        decide(PlanState(spec()), [], build({}), LeaseView(True), NOW.replace(tzinfo=None))


@pytest.mark.parametrize(
    ("primary", "replayed", "expected"),
    [(100, 100, True), (100, 101, True), (100, 99, False), (None, 100, False), (100, None, False)],
)
def test_switchover_waits_for_zero_lag(primary: int | None, replayed: int | None, expected: bool) -> None:
    assert caught_up(primary, replayed) is expected


def _obs(probe: Probe) -> Observation:
    return Observation("b", probe, Role.STANDBY if probe.in_recovery else Role.PRIMARY)


@pytest.mark.parametrize(
    ("state", "probe", "fresh", "force", "expected"),
    [
        (region(B, 1), standby(), True, False, None),
        (region(B, 1, promotable=False), standby(), True, False, "not promotable"),
        (region(B, 1, fenced=True), standby(), True, False, "fenced"),
        (region(B, 1, needs_reclone=True), standby(), True, False, "re-cloned"),
        (region(B, 1), down(), True, False, "unreachable"),
        (region(B, 1), standby(), False, False, "stale"),
        (region(B, 1), up(), True, False, "not a standby"),
        (region(B, 1), standby(tl=3), True, False, "timeline 3"),
        (region(B, 1), standby(lsn=10 * MB), True, False, "bytes behind"),
        (region(B, 1), standby(lsn=10 * MB), True, True, None),
    ],
)
def test_ineligibility(
    state: RegionState, probe: Probe, fresh: bool, force: bool, expected: str | None
) -> None:
    why = ineligibility(
        state,
        _obs(probe),
        primary=A,
        primary_timeline=1,
        reference_lsn=100 * MB,
        max_lag_bytes=16 * MB,
        fresh=fresh,
        force=force,
    )
    assert (why is None) if expected is None else (why is not None and expected in why)


def test_replace_keeps_decision_frozen() -> None:
    decision = run(Case("", HEALTHY))
    with pytest.raises(AttributeError):
        decision.action = Action.WAIT  # type: ignore[misc]
    assert replace(decision, reason="x").reason == "x"
