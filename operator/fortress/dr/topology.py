"""What one check saw of each region: raw probe results and the derived topology (pure).

A ``Probe`` is what one region's PostgreSQL answered (or that it did not). ``build`` turns the probes
of every region of a plan into ``Observation``s with a role and a replication lag measured against
the primary's current WAL position (or, when the primary is unreachable, its last known position).
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum

_LSN = re.compile(r"^([0-9A-Fa-f]{1,8})/([0-9A-Fa-f]{1,8})$")


def parse_lsn(text: str | None) -> int | None:
    """``'0/3000148'`` -> 50331976; None stays None; ValueError when malformed."""
    if text is None:
        return None
    match = _LSN.match(text.strip())
    if match is None:
        raise ValueError(f"not a WAL position (LSN): {text!r}")
    return (int(match.group(1), 16) << 32) | int(match.group(2), 16)


def format_lsn(value: int | None) -> str | None:
    """50331976 -> ``'0/3000148'``, PostgreSQL's notation."""
    if value is None:
        return None
    if value < 0 or value >= 1 << 64:
        raise ValueError(f"WAL position out of range: {value}")
    return f"{value >> 32:X}/{value & 0xFFFFFFFF:X}"


class Role(StrEnum):
    PRIMARY = "Primary"
    STANDBY = "Standby"
    UNKNOWN = "Unknown"


@dataclass(frozen=True)
class ReplicaLag:
    """One row of the primary's pg_stat_replication."""

    application_name: str
    state: str | None = None
    replay_lsn: int | None = None
    replay_lag_seconds: float | None = None
    sync_state: str | None = None


@dataclass(frozen=True)
class Probe:
    """What one region answered on one check."""

    observed_at: dt.datetime
    reachable: bool
    error: str | None = None
    in_recovery: bool | None = None
    timeline: int | None = None
    current_lsn: int | None = None  # primary: pg_current_wal_insert_lsn() (async commits included)
    receive_lsn: int | None = None  # standby: pg_last_wal_receive_lsn() (flushed)
    replay_lsn: int | None = None  # standby: pg_last_wal_replay_lsn()
    replay_age_seconds: float | None = None  # standby: now() - pg_last_xact_replay_timestamp()
    read_only: bool | None = None  # default_transaction_read_only
    streaming: bool | None = None  # standby: WAL receiver status is 'streaming'
    application_name: str | None = None  # standby: the name its WAL receiver uses upstream
    server_id: str | None = None  # system identifier and postmaster start time: one running server
    replicas: tuple[ReplicaLag, ...] = ()  # primary: pg_stat_replication

    @classmethod
    def unreachable(cls, observed_at: dt.datetime, error: str) -> Probe:
        return cls(observed_at=observed_at, reachable=False, error=error)


@dataclass(frozen=True)
class Observation:
    """One region on one check, with its role and lag relative to the primary."""

    name: str
    probe: Probe
    role: Role
    lag_bytes: int | None = None
    lag_seconds: float | None = None

    @property
    def reachable(self) -> bool:
        return self.probe.reachable

    @property
    def observed_at(self) -> dt.datetime:
        return self.probe.observed_at

    @property
    def position(self) -> int | None:
        """How far its WAL goes: a primary's current LSN; a standby's received or replayed LSN."""
        p = self.probe
        if self.role is Role.PRIMARY:
            return p.current_lsn
        known = [lsn for lsn in (p.receive_lsn, p.replay_lsn) if lsn is not None]
        return max(known) if known else None


@dataclass(frozen=True)
class Topology:
    """Every region of a plan on one check."""

    observations: Mapping[str, Observation]
    reference: str | None = None  # the primary the lag was measured against
    reference_lsn: int | None = None
    duplicates: tuple[tuple[str, ...], ...] = field(default=())

    def primaries(self) -> list[str]:
        return sorted(n for n, o in self.observations.items() if o.role is Role.PRIMARY)


def role_of(probe: Probe) -> Role:
    if not probe.reachable or probe.in_recovery is None:
        return Role.UNKNOWN
    return Role.STANDBY if probe.in_recovery else Role.PRIMARY


def _replay_lag(primary: Probe | None, standby: Probe) -> float | None:
    """The primary's replay_lag for this standby, when exactly one replica row has its name."""
    if primary is None or standby.application_name is None:
        return None
    rows = [r for r in primary.replicas if r.application_name == standby.application_name]
    return rows[0].replay_lag_seconds if len(rows) == 1 else None


def build(
    probes: Mapping[str, Probe], primary: str | None = None, last_primary_lsn: int | None = None
) -> Topology:
    """Derive roles and lag. ``primary`` is the plan's recorded primary; its last known LSN is the
    reference when it is unreachable now."""
    reference_probe: Probe | None = None
    reference_name: str | None = None
    if primary is not None and primary in probes and role_of(probes[primary]) is Role.PRIMARY:
        reference_name, reference_probe = primary, probes[primary]
    else:
        live = [n for n, p in probes.items() if role_of(p) is Role.PRIMARY]
        if primary is None and len(live) == 1:
            reference_name, reference_probe = live[0], probes[live[0]]
    reference_lsn = reference_probe.current_lsn if reference_probe is not None else last_primary_lsn
    if reference_name is None:
        reference_name = primary
    observations: dict[str, Observation] = {}
    for name, probe in probes.items():
        role = role_of(probe)
        lag_bytes: int | None = None
        lag_seconds: float | None = None
        if role is Role.PRIMARY:
            lag_bytes, lag_seconds = 0, 0.0
        elif role is Role.STANDBY and reference_lsn is not None and probe.replay_lsn is not None:
            lag_bytes = max(0, reference_lsn - probe.replay_lsn)
            if lag_bytes == 0:
                lag_seconds = 0.0
            else:
                measured = _replay_lag(reference_probe, probe)
                lag_seconds = measured if measured is not None else probe.replay_age_seconds
                lag_seconds = None if lag_seconds is None else max(0.0, lag_seconds)
        observations[name] = Observation(name, probe, role, lag_bytes, lag_seconds)
    return Topology(observations, reference_name, reference_lsn, find_duplicates(probes))


def find_duplicates(probes: Mapping[str, Probe]) -> tuple[tuple[str, ...], ...]:
    """Groups of regions that reached the very same running server (same system id and start)."""
    by_server: dict[str, list[str]] = {}
    for name, probe in probes.items():
        if probe.reachable and probe.server_id:
            by_server.setdefault(probe.server_id, []).append(name)
    groups: Sequence[list[str]] = [sorted(g) for g in by_server.values() if len(g) > 1]
    return tuple(tuple(g) for g in sorted(groups))
