"""The health probe of one region: a fresh asyncpg connection with a short timeout, two queries.

A fresh connection per check is deliberate: a pooled connection can outlive a server that no
longer accepts new ones. Any failure (refused, timeout, authentication, query error) makes the
region unreachable for this check, with the reason.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Callable, Sequence
from typing import Any

import asyncpg

from fortress.core.errors import Secret, describe
from fortress.core.time import now
from fortress.dr.conninfo import parse_conninfo
from fortress.dr.topology import Probe, ReplicaLag, parse_lsn

STATE_SQL = """
SELECT pg_is_in_recovery() AS in_recovery,
       (SELECT system_identifier FROM pg_control_system())::text AS system_identifier,
       pg_postmaster_start_time() AS started,
       current_setting('default_transaction_read_only') = 'on' AS read_only,
       CASE WHEN pg_is_in_recovery() THEN NULL ELSE pg_current_wal_insert_lsn()::text END AS current_lsn,
       pg_last_wal_receive_lsn()::text AS receive_lsn,
       pg_last_wal_replay_lsn()::text AS replay_lsn,
       EXTRACT(EPOCH FROM clock_timestamp() - pg_last_xact_replay_timestamp())::float8 AS replay_age,
       CASE WHEN pg_is_in_recovery()
            THEN COALESCE((SELECT received_tli FROM pg_stat_wal_receiver),
                          (SELECT timeline_id FROM pg_control_checkpoint()))
            ELSE ('x' || substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8))::bit(32)::int
       END AS timeline,
       (SELECT status FROM pg_stat_wal_receiver) AS receiver_status,
       (SELECT conninfo FROM pg_stat_wal_receiver) AS receiver_conninfo
"""

REPLICAS_SQL = """
SELECT application_name, state, replay_lsn::text AS replay_lsn,
       EXTRACT(EPOCH FROM replay_lag)::float8 AS replay_lag, sync_state
FROM pg_stat_replication
"""

Clock = Callable[[], dt.datetime]


async def connect(dsn: str, timeout: float) -> Any:
    """A fresh connection with connect and statement timeouts."""
    return await asyncpg.connect(dsn, timeout=timeout, command_timeout=timeout)


async def probe(dsn: str, timeout: float = 2.0, clock: Clock = now, secrets: Sequence[Secret] = ()) -> Probe:
    """Probe one region; never raises for the region's own failures (``secrets``: to name in them)."""
    observed_at = clock()
    try:
        return await asyncio.wait_for(_probe(dsn, timeout, observed_at), timeout=timeout * 2)
    except TimeoutError:
        return Probe.unreachable(observed_at, f"timed out after {timeout:g}s")
    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, ValueError) as error:
        return Probe.unreachable(observed_at, describe(error, secrets))


async def _probe(dsn: str, timeout: float, observed_at: dt.datetime) -> Probe:
    conn = await connect(dsn, timeout)
    try:
        row = await conn.fetchrow(STATE_SQL)
        replicas: tuple[ReplicaLag, ...] = ()
        if not row["in_recovery"]:
            replicas = tuple(
                ReplicaLag(
                    application_name=r["application_name"] or "",
                    state=r["state"],
                    replay_lsn=parse_lsn(r["replay_lsn"]),
                    replay_lag_seconds=r["replay_lag"],
                    sync_state=r["sync_state"],
                )
                for r in await conn.fetch(REPLICAS_SQL)
            )
    finally:
        await conn.close(timeout=timeout)
    application_name = None
    if row["receiver_conninfo"]:
        try:
            application_name = parse_conninfo(row["receiver_conninfo"]).get("application_name")
        except ValueError:
            application_name = None
    started = row["started"]
    return Probe(
        observed_at=observed_at,
        reachable=True,
        in_recovery=bool(row["in_recovery"]),
        timeline=row["timeline"],
        current_lsn=parse_lsn(row["current_lsn"]),
        receive_lsn=parse_lsn(row["receive_lsn"]),
        replay_lsn=parse_lsn(row["replay_lsn"]),
        replay_age_seconds=row["replay_age"],
        read_only=bool(row["read_only"]),
        streaming=row["receiver_status"] == "streaming" if row["in_recovery"] else None,
        application_name=application_name,
        server_id=f"{row['system_identifier']}@{started.isoformat() if started else '?'}",
        replicas=replicas,
    )
