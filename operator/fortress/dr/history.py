"""A failover recorded in the region databases: failover_events, cloud_regions, replication_log.

Written on the new primary, in one transaction, once the promotion is done (migration
``failover_events`` creates the tables; without them nothing is recorded and the plan says so).
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg

from fortress.dr.probe import connect


@dataclass(frozen=True)
class RegionRow:
    name: str
    provider: str
    location: str
    role: str
    endpoint_host: str
    endpoint_port: int
    priority: int
    promotable: bool
    healthy: bool | None
    fenced: bool
    fenced_reason: str | None


@dataclass(frozen=True)
class LagSample:
    source: str
    target: str
    replay_lsn: str | None
    lag_bytes: int | None
    lag_seconds: float | None


@dataclass(frozen=True)
class FailoverEvent:
    namespace: str
    plan: str
    type: str
    from_region: str | None
    to_region: str
    reason: str
    outcome: str
    detected_at: dt.datetime
    promoted_at: dt.datetime
    completed_at: dt.datetime
    rto_seconds: float
    rpo_bytes: int | None
    rpo_seconds: float | None
    details: dict[str, Any]


UPSERT_REGION_SQL = """
INSERT INTO cloud_regions AS c (namespace, name, plan, provider, location, role,
    endpoint_host, endpoint_port, priority, promotable, healthy, fenced, fenced_reason,
    last_checked_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, now())
ON CONFLICT (namespace, name) DO UPDATE SET plan = EXCLUDED.plan,
    provider = EXCLUDED.provider, location = EXCLUDED.location, role = EXCLUDED.role,
    endpoint_host = EXCLUDED.endpoint_host, endpoint_port = EXCLUDED.endpoint_port,
    priority = EXCLUDED.priority, promotable = EXCLUDED.promotable,
    healthy = EXCLUDED.healthy, fenced = EXCLUDED.fenced,
    fenced_reason = EXCLUDED.fenced_reason, last_checked_at = now(), updated_at = now()
"""

INSERT_SAMPLE_SQL = """
INSERT INTO replication_log (namespace, plan, source_region, target_region, state,
    replay_lsn, lag_bytes, lag_seconds, details)
VALUES ($1, $2, $3, $4, 'last-before-failover', $5::text::pg_lsn, $6, $7, '{}'::jsonb)
"""

INSERT_EVENT_SQL = """
INSERT INTO failover_events (namespace, plan, type, from_region, to_region, reason, outcome,
    detected_at, promoted_at, completed_at, rto_seconds, rpo_bytes, rpo_seconds, details)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14::jsonb)
RETURNING id
"""


async def record_failover(
    dsn: str,
    event: FailoverEvent,
    regions: Sequence[RegionRow] = (),
    samples: Sequence[LagSample] = (),
    timeout: float = 10.0,
) -> int | None:
    """Insert the failover into failover_events on the new primary (with the regions' roles in
    cloud_regions and the last lag samples in replication_log); None when the tables are absent."""
    conn = await connect(dsn, timeout)
    try:
        async with conn.transaction():
            await conn.execute("SET LOCAL synchronous_commit = local")  # never wait for a standby here
            for row in sorted(regions, key=lambda r: r.role == "Primary"):  # demote before promote
                await conn.execute(UPSERT_REGION_SQL, *_region_values(event, row))
            for sample in samples:
                await conn.execute(INSERT_SAMPLE_SQL, *_sample_values(event, sample))
            event_id = await conn.fetchval(INSERT_EVENT_SQL, *_event_values(event))
        return int(event_id)
    except asyncpg.UndefinedTableError:
        return None
    finally:
        await conn.close(timeout=timeout)


def _region_values(event: FailoverEvent, row: RegionRow) -> tuple[Any, ...]:
    return (
        event.namespace,
        row.name,
        event.plan,
        row.provider,
        row.location,
        row.role,
        row.endpoint_host,
        row.endpoint_port,
        row.priority,
        row.promotable,
        row.healthy,
        row.fenced,
        row.fenced_reason,
    )


def _sample_values(event: FailoverEvent, sample: LagSample) -> tuple[Any, ...]:
    return (
        event.namespace,
        event.plan,
        sample.source,
        sample.target,
        sample.replay_lsn,
        sample.lag_bytes,
        sample.lag_seconds,
    )


def _event_values(event: FailoverEvent) -> tuple[Any, ...]:
    return (
        event.namespace,
        event.plan,
        event.type,
        event.from_region,
        event.to_region,
        event.reason,
        event.outcome,
        event.detected_at,
        event.promoted_at,
        event.completed_at,
        event.rto_seconds,
        event.rpo_bytes,
        event.rpo_seconds,
        json.dumps(event.details),
    )
