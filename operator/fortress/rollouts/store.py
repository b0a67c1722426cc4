"""``deployment_history`` rows and ``feature_flags`` for rollouts with spec.database (asyncpg).

Every write is derived from the state in status, so a repeated sync converges: finished releases
(status.history) get their outcome, the release in progress has exactly one open row (the
``deployment_history_one_in_progress_idx`` index), and the rollout's flags match status.flags. A flag
of the same name owned by someone else (another rollout, or set by hand: ``rollout`` NULL) is never
overwritten; it is reported instead.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg

from fortress.api.canaryrollout import CanaryRolloutSpec, CanaryRolloutStatus
from fortress.core.time import parse
from fortress.rollouts.model import ACTIVE, Phase


@dataclass(frozen=True)
class OpenRelease:
    """The release in progress, as its row should read."""

    revision: str
    previous: str | None
    started_at: dt.datetime


def open_release(state: CanaryRolloutStatus) -> OpenRelease | None:
    """The release in progress according to the state (pure)."""
    started = parse(state.rollout_started_at)
    if started is None:
        return None
    phase = state.phase
    if state.canary_revision and phase in {p.value for p in ACTIVE}:
        return OpenRelease(state.canary_revision, state.stable_revision, started)
    if state.canary_revision is None and phase == Phase.PROGRESSING.value and state.stable_revision:
        return OpenRelease(state.stable_revision, None, started)
    return None


def _json(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))


async def sync(
    pool: asyncpg.Pool,
    *,
    namespace: str,
    rollout: str,
    spec: CanaryRolloutSpec,
    state: CanaryRolloutStatus,
    image: str | None,
) -> list[str]:
    """Bring the rollout's rows in line with its state; the conflicts found (flags owned elsewhere)."""
    steps = _json([s.wire() for s in state.steps])
    analysis = _json({m.name: m.wire() for m in state.metrics})
    current = open_release(state)
    started_now = parse(state.rollout_started_at)
    problems: list[str] = []
    async with pool.acquire() as conn, conn.transaction():
        for record in reversed(state.history):
            started = parse(record.started_at)
            if started is None:
                continue
            finished = parse(record.finished_at) or started
            latest = started == started_now
            updated = await conn.fetchval(
                """
                UPDATE deployment_history
                   SET outcome = $5, reason = $6, finished_at = greatest($7::timestamptz, started_at),
                       steps = CASE WHEN $8 THEN $9::jsonb ELSE steps END,
                       analysis = CASE WHEN $8 THEN $10::jsonb ELSE analysis END
                 WHERE namespace = $1 AND rollout = $2 AND revision = $3 AND started_at = $4
                   AND outcome IS NULL
                RETURNING id
                """,
                namespace, rollout, record.revision, started, record.outcome, record.reason,
                finished, latest, steps, analysis,
            )  # fmt: skip
            if updated is None:
                await conn.execute(
                    """
                    INSERT INTO deployment_history
                        (namespace, rollout, revision, strategy, outcome, reason, started_at, finished_at,
                         steps, analysis)
                    VALUES ($1, $2, $3, $4, $5, $6, $7::timestamptz,
                            greatest($8::timestamptz, $7::timestamptz), $9::jsonb, $10::jsonb)
                    ON CONFLICT ON CONSTRAINT deployment_history_release_key DO NOTHING
                    """,
                    namespace, rollout, record.revision, spec.strategy.type, record.outcome, record.reason,
                    started, finished, steps if latest else "[]", analysis if latest else "{}",
                )  # fmt: skip
        if current is None:
            await conn.execute(
                """
                UPDATE deployment_history
                   SET outcome = 'Superseded', reason = 'ended while the operator was not recording',
                       finished_at = greatest(now(), started_at)
                 WHERE namespace = $1 AND rollout = $2 AND outcome IS NULL
                """,
                namespace,
                rollout,
            )
        else:
            await conn.execute(
                """
                UPDATE deployment_history
                   SET outcome = 'Superseded', reason = 'ended while the operator was not recording',
                       finished_at = greatest(now(), started_at)
                 WHERE namespace = $1 AND rollout = $2 AND outcome IS NULL
                   AND NOT (revision = $3 AND started_at = $4)
                """,
                namespace, rollout, current.revision, current.started_at,
            )  # fmt: skip
            await conn.execute(
                """
                INSERT INTO deployment_history
                    (namespace, rollout, revision, previous_revision, strategy, image, started_at,
                     steps, analysis)
                VALUES ($1, $2, $3, $4, $5, $6, $7, $8::jsonb, $9::jsonb)
                ON CONFLICT ON CONSTRAINT deployment_history_release_key DO UPDATE
                   SET steps = EXCLUDED.steps, analysis = EXCLUDED.analysis
                 WHERE deployment_history.outcome IS NULL
                """,
                namespace, rollout, current.revision, current.previous, spec.strategy.type, image,
                current.started_at, steps, analysis,
            )  # fmt: skip
        problems.extend(await _sync_flags(conn, namespace, rollout, spec, state))
    return problems


async def _sync_flags(
    conn: asyncpg.Connection,
    namespace: str,
    rollout: str,
    spec: CanaryRolloutSpec,
    state: CanaryRolloutStatus,
) -> list[str]:
    problems = []
    stages = {f.name: f.enable_at_stage for f in spec.feature_flags}
    for flag in state.flags:
        owner = await conn.fetchrow(
            """
            INSERT INTO feature_flags (namespace, name, enabled, rollout, enable_at_stage)
            VALUES ($1, $2, $3, $4, $5)
            ON CONFLICT (namespace, name) DO UPDATE
               SET enabled = EXCLUDED.enabled, enable_at_stage = EXCLUDED.enable_at_stage,
                   version = feature_flags.version + 1, updated_at = now()
             WHERE feature_flags.rollout = EXCLUDED.rollout
               AND (feature_flags.enabled, feature_flags.enable_at_stage)
                   IS DISTINCT FROM (EXCLUDED.enabled, EXCLUDED.enable_at_stage)
            RETURNING rollout
            """,
            namespace, flag.name, flag.enabled, rollout, stages.get(flag.name),
        )  # fmt: skip
        if owner is None:
            holder = await conn.fetchval(
                "SELECT rollout FROM feature_flags WHERE namespace = $1 AND name = $2", namespace, flag.name
            )
            if holder != rollout:
                who = f"CanaryRollout {holder}" if holder else "hand (rollout is NULL)"
                problems.append(f"feature flag {flag.name} is managed by {who}; not changed")
    names: Sequence[str] = [f.name for f in state.flags]
    await conn.execute(
        "DELETE FROM feature_flags WHERE namespace = $1 AND rollout = $2 AND NOT (name = ANY($3::text[]))",
        namespace,
        rollout,
        list(names),
    )
    return problems


async def history(pool: asyncpg.Pool, namespace: str, rollout: str) -> list[dict[str, Any]]:
    """The rollout's rows, newest first (for tests, the demo and people)."""
    async with pool.acquire() as conn:
        rows = await conn.fetch(
            """
            SELECT revision, previous_revision, strategy, image, outcome, reason, steps, started_at,
                   finished_at
              FROM deployment_history WHERE namespace = $1 AND rollout = $2 ORDER BY started_at DESC, id DESC
            """,
            namespace,
            rollout,
        )
    found = []
    for row in rows:
        item = dict(row)
        item["steps"] = json.loads(item["steps"]) if isinstance(item["steps"], str) else item["steps"]
        found.append(item)
    return found


async def flags(pool: asyncpg.Pool, namespace: str, rollout: str) -> dict[str, bool]:
    async with pool.acquire() as conn:
        rows = await conn.fetch(
            "SELECT name, enabled FROM feature_flags WHERE namespace = $1 AND rollout = $2",
            namespace,
            rollout,
        )
    return {r["name"]: r["enabled"] for r in rows}
