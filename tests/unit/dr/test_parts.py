"""The pure pieces around the DR decision: WAL positions, topology and lag, conninfo, the lease, status."""

from __future__ import annotations

import datetime as dt

import pytest

from fortress.api.drplan import FailoverRecord
from fortress.core.errors import endpoint
from fortress.core.outcome import status_patch
from fortress.core.time import stamp_ms
from fortress.dr import lease
from fortress.dr.conninfo import dsn_params, format_conninfo, parse_conninfo, replication_conninfo
from fortress.dr.decision import Action, Decision, RegionVerdict
from fortress.dr.lease import LeaseAction, LeaseRecord
from fortress.dr.status import Executed, Note, plan_outcome, plan_status, region_outcome
from fortress.dr.topology import Probe, ReplicaLag, Role, build, format_lsn, parse_lsn

NOW = dt.datetime(2026, 1, 1, 12, 0, 0, tzinfo=dt.UTC)


@pytest.mark.parametrize(
    ("text", "value"),
    [("0/0", 0), ("0/3000148", 0x3000148), ("1/0", 1 << 32), ("FFFFFFFF/FFFFFFFF", (1 << 64) - 1)],
)
def test_lsn_round_trip(text: str, value: int) -> None:
    assert parse_lsn(text) == value
    assert format_lsn(value) == text


@pytest.mark.parametrize("bad", ["", "0", "0/", "/1", "0/G", "1/2/3", "123456789/0"])
def test_malformed_lsn_is_refused(bad: str) -> None:
    with pytest.raises(ValueError, match="LSN"):
        parse_lsn(bad)


def test_lsn_none_and_range() -> None:
    assert parse_lsn(None) is None and format_lsn(None) is None
    with pytest.raises(ValueError):
        format_lsn(-1)


def _p(**kw: object) -> Probe:
    return Probe(observed_at=NOW, reachable=True, **kw)  # type: ignore[arg-type]


def test_topology_measures_lag_against_the_primary() -> None:
    probes = {
        "a": _p(in_recovery=False, current_lsn=1000, replicas=(ReplicaLag("b", replay_lag_seconds=0.25),)),
        "b": _p(
            in_recovery=True, receive_lsn=900, replay_lsn=800, application_name="b", replay_age_seconds=9
        ),
        "c": _p(in_recovery=True, receive_lsn=1000, replay_lsn=1000),
        "d": Probe.unreachable(NOW, "refused"),
    }
    topology = build(probes, "a")
    obs = topology.observations
    assert topology.reference == "a" and topology.reference_lsn == 1000
    assert (obs["a"].role, obs["a"].lag_bytes, obs["a"].lag_seconds) == (Role.PRIMARY, 0, 0.0)
    assert (obs["b"].lag_bytes, obs["b"].lag_seconds) == (200, 0.25)  # the primary's replay_lag
    assert obs["b"].position == 900  # promotion replays what was received
    assert (obs["c"].lag_bytes, obs["c"].lag_seconds) == (0, 0.0)
    assert obs["d"].role is Role.UNKNOWN and obs["d"].lag_bytes is None


def test_topology_uses_the_last_known_primary_position_when_it_is_down() -> None:
    probes = {
        "a": Probe.unreachable(NOW, "refused"),
        "b": _p(in_recovery=True, receive_lsn=900, replay_lsn=900, replay_age_seconds=3.0),
    }
    topology = build(probes, "a", last_primary_lsn=1000)
    assert topology.reference_lsn == 1000
    assert topology.observations["b"].lag_bytes == 100
    assert topology.observations["b"].lag_seconds == 3.0  # no primary to ask: age of the last replay


def test_topology_finds_regions_that_reach_one_server() -> None:
    probes = {
        "a": _p(in_recovery=False, current_lsn=1, server_id="7@t1"),
        "b": _p(in_recovery=False, current_lsn=1, server_id="7@t1"),
        "c": _p(in_recovery=True, replay_lsn=1, server_id="7@t2"),  # a replica: same system, own start
    }
    assert build(probes).duplicates == (("a", "b"),)


@pytest.mark.parametrize(
    ("text", "parsed"),
    [
        ("host=a port=5432", {"host": "a", "port": "5432"}),
        ("application_name='x y' user=u", {"application_name": "x y", "user": "u"}),
        ("password='it''s'", None),
        (r"password='it\'s' sslmode = require", {"password": "it's", "sslmode": "require"}),
        ("", {}),
    ],
)
def test_conninfo_parse(text: str, parsed: dict[str, str] | None) -> None:
    if parsed is None:
        with pytest.raises(ValueError):
            parse_conninfo(text)
    else:
        assert parse_conninfo(text) == parsed
        assert parse_conninfo(format_conninfo(parsed)) == parsed


@pytest.mark.parametrize("bad", ["host", "=a", "host='a"])
def test_conninfo_malformed(bad: str) -> None:
    with pytest.raises(ValueError, match="conninfo"):
        parse_conninfo(bad)


def test_dsn_params_and_endpoint() -> None:
    assert dsn_params("postgresql://u:p%40ss@h:6432/db?sslmode=require") == {
        "host": "h",
        "port": "6432",
        "user": "u",
        "password": "p@ss",
        "dbname": "db",
        "sslmode": "require",
    }
    assert endpoint("postgresql://u:secret@h:6432/db") == "h:6432/db"  # where, never the password
    with pytest.raises(ValueError, match="scheme"):
        dsn_params("mysql://h/db")


def test_replication_conninfo_keeps_the_standbys_own_options() -> None:
    current = "user=postgres passfile='/x/.pgpass' host=10.0.0.1 port=5432 application_name=b sslmode=prefer"
    result = parse_conninfo(replication_conninfo(current, "postgresql://repl:pw@10.0.0.2:6000/app"))
    assert result == {
        "application_name": "b",
        "sslmode": "prefer",
        "host": "10.0.0.2",
        "port": "6000",
        "user": "repl",
        "password": "pw",
    }
    assert parse_conninfo(replication_conninfo(None, "postgresql://h/db", "c"))["application_name"] == "c"


def test_lease_steps() -> None:
    duration = 15.0
    first = lease.step(None, "me", NOW, duration)
    assert (first.action, first.holds) == (LeaseAction.ACQUIRE, True)
    mine = LeaseRecord("me", duration, NOW, NOW, 0, "1")
    assert lease.step(mine, "me", NOW + dt.timedelta(seconds=1), duration).action is LeaseAction.KEEP
    renew = lease.step(mine, "me", NOW + dt.timedelta(seconds=6), duration)
    assert renew.action is LeaseAction.RENEW and renew.record is not None
    assert renew.record.renewed_at == NOW + dt.timedelta(seconds=6) and renew.record.resource_version == "1"
    theirs = LeaseRecord("other", duration, NOW, NOW, 3, "9")
    wait = lease.step(theirs, "me", NOW + dt.timedelta(seconds=5), duration)
    assert (wait.action, wait.holds, wait.holder) == (LeaseAction.WAIT, False, "other")
    assert "10s more" in wait.reason
    take = lease.step(theirs, "me", NOW + dt.timedelta(seconds=16), duration)
    assert take.action is LeaseAction.ACQUIRE and take.record is not None
    assert take.record.transitions == 4 and take.record.resource_version == "9"
    released = LeaseRecord(None, duration, None, None)
    assert lease.step(released, "me", NOW, duration).action is LeaseAction.ACQUIRE
    changed = lease.step(mine, "me", NOW, 30.0)
    assert changed.action is LeaseAction.RENEW  # a new spec.leaseDuration is written at once
    assert lease.lease_name("orders") == "orders-failover"


@pytest.mark.parametrize(("me", "duration"), [("", 10.0), ("me", 0.0), ("me", -1.0)])
def test_lease_invalid_input(me: str, duration: float) -> None:
    with pytest.raises(ValueError):
        lease.step(None, me, NOW, duration)


def _verdict(**kw: object) -> RegionVerdict:
    base: dict[str, object] = {
        "healthy": True,
        "failures": 0,
        "failing_since": None,
        "fenced": False,
        "needs_reclone": False,
        "ineligible": None,
    }
    base.update(kw)
    return RegionVerdict(**base)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("action", "candidate", "service", "ready", "reason", "phase"),
    [
        (Action.HEALTHY, "b", "10.0.0.1:5432", True, "Protected", "Protected"),
        (Action.HEALTHY, None, "10.0.0.1:5432", False, "NoEligibleStandby", "Unprotected"),
        (Action.HEALTHY, "b", None, False, "ServiceNotPointed", "Degraded"),
        (Action.WAIT, "b", "x", False, "PrimaryCheckFailed", "Degraded"),
        (Action.NO_CANDIDATE, None, "x", False, "NoCandidate", "PrimaryLost"),
        (Action.MANUAL, "b", "x", False, "AwaitingManualFailover", "PrimaryLost"),
        (Action.NO_PRIMARY, None, None, False, "NoPrimary", "NoPrimary"),
        (Action.SPLIT_BRAIN, None, None, False, "SplitBrain", "SplitBrain"),
        (Action.DUPLICATE, None, None, False, "DuplicateServers", "Misconfigured"),
    ],
)
def test_plan_readiness(
    action: Action, candidate: str | None, service: str | None, ready: bool, reason: str, phase: str
) -> None:
    decision = Decision(action, "why", "a", {"a": _verdict()}, candidate=candidate)
    outcome = plan_outcome(decision, Executed(primary="a", service_endpoint=service))
    assert (outcome.ready, outcome.reason, outcome.phase) == (ready, reason, phase)


def test_plan_status_after_a_failover_keeps_bounded_history_and_events() -> None:
    record = FailoverRecord(
        type="failover",
        from_region="a",
        to_region="b",
        reason="r",
        rto_seconds=4.2,
        rpo_bytes=0,
        rpo_seconds=0.0,
    )
    decision = Decision(
        Action.FAILOVER,
        "r",
        "a",
        {"a": _verdict(fenced=True, healthy=False), "b": _verdict()},
        target="b",
        from_region="a",
    )
    old = {"history": [{"type": "failover", "toRegion": f"x{i}", "reason": "old"} for i in range(3)]}
    done = Note("Warning", "FailoverCompleted", "a -> b")
    fenced = Note("Warning", "Fenced", "fenced by the failover", "a")
    outcome = plan_status(
        old_status=old,
        history_limit=3,
        decision=decision,
        topology=build({}),
        executed=Executed(primary="b", service_endpoint="10.0.0.2:5432", record=record, notes=(done, fenced)),
        lease_holder="me",
        now=NOW,
    )
    patch = status_patch(outcome, old, 4, NOW)  # what the plan's loop writes
    assert patch["primaryRegion"] == "b" and patch["lastFailover"]["rtoSeconds"] == 4.2
    assert [h["toRegion"] for h in patch["history"]] == ["b", "x0", "x1"]
    assert patch["inProgress"] is None and patch["observedGeneration"] == 4
    assert patch["phase"] == "FailedOver" and patch["lastCheckTime"] == stamp_ms(NOW)
    assert [r["role"] for r in patch["regions"]] == ["Fenced", "Primary"]
    # the failover's own notes: the plan's is the plan's Event; a region's is posted on the region
    assert [e.reason for e in outcome.events] == ["FailoverCompleted"]


def test_plan_status_posts_an_event_only_when_the_state_changes() -> None:
    decision = Decision(Action.WAIT, "primary a failed 1", "a", {"a": _verdict(healthy=False)})
    executed = Executed(primary="a", service_endpoint="x")
    args = {
        "history_limit": 5,
        "decision": decision,
        "topology": build({}),
        "executed": executed,
        "lease_holder": "me",
        "now": NOW,
    }
    outcome = plan_status(old_status={}, **args)  # type: ignore[arg-type]
    assert [e.reason for e in outcome.events] == ["PrimaryCheckFailed"]
    written = status_patch(outcome, {}, 1, NOW)
    again = plan_status(old_status=written, **args)  # type: ignore[arg-type]
    assert again.events == ()


@pytest.mark.parametrize(
    ("verdict", "probe", "role", "ready", "reason"),
    [
        (_verdict(), _p(in_recovery=False, current_lsn=5, timeline=1), "Primary", True, "Primary"),
        (_verdict(), _p(in_recovery=True, streaming=True, replay_lsn=5), "Standby", True, "Standby"),
        (_verdict(healthy=False), _p(in_recovery=True, streaming=False), "Standby", False, "NotStreaming"),
        (
            _verdict(fenced=True, healthy=False),
            _p(in_recovery=False, read_only=True),
            "Fenced",
            False,
            "Fenced",
        ),
        (_verdict(needs_reclone=True, healthy=False), _p(in_recovery=True), "Standby", False, "NeedsReclone"),
        (_verdict(healthy=False), Probe.unreachable(NOW, "refused"), "Unknown", False, "Unreachable"),
    ],
)
def test_region_readiness(verdict: RegionVerdict, probe: Probe, role: str, ready: bool, reason: str) -> None:
    obs = build({"r": probe}).observations["r"]
    decision = Decision(Action.HEALTHY, "", "p", {"r": verdict})
    outcome = region_outcome("r", role, obs, decision, Executed(primary="p", service_endpoint=None))
    assert (outcome.ready, outcome.reason) == (ready, reason)


def test_region_readiness_of_duplicates() -> None:
    decision = Decision(
        Action.DUPLICATE, "", None, {"r": _verdict(), "s": _verdict()}, duplicates=(("r", "s"),)
    )
    obs = build({"r": _p(in_recovery=False)}).observations["r"]
    outcome = region_outcome("r", "Unknown", obs, decision, Executed(primary=None, service_endpoint=None))
    assert (outcome.ready, outcome.reason) == (False, "DuplicateServer") and "s" in outcome.message


def test_dr_metrics_are_exported() -> None:
    from fortress import metrics

    names = metrics.exported_names()
    expected = {
        f"fortress_dr_{name}"
        for name in (
            "replication_lag_seconds",
            "replication_lag_bytes",
            "region_healthy",
            "failovers_total",
            "last_failover_rto_seconds",
            "last_failover_rpo_bytes",
            "checks_total",
        )
    }
    assert {n for n in expected if n not in names and n.removesuffix("_total") not in names} == set()


def test_an_abandoned_switchover_leaves_the_primary_unfenced_in_status() -> None:
    from fortress.dr.status import region_status

    verdicts = {"a": _verdict(fenced=True), "b": _verdict()}
    decision = Decision(Action.SWITCHOVER, "r", "a", verdicts, target="b", from_region="a")
    obs = build({"a": _p(in_recovery=False, current_lsn=5, timeline=1)}).observations["a"]
    executed = Executed(primary="a", service_endpoint="x", unfenced=("a",), errors=("b did not catch up",))
    patch = region_status(
        name="a", old_status={}, generation=1, obs=obs, decision=decision, executed=executed, now=NOW
    )
    assert patch["fenced"] is False and patch["role"] == "Primary" and patch["fencedReason"] is None
