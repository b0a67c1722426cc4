"""Probing a shard (reachability, prepared transactions, schema, database identity, keys); migrating it."""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from typing import Final

from fortress.adapters import migrations
from fortress.core.errors import describe
from fortress.core.loop import Logger
from fortress.sharding.errors import ShardingError
from fortress.sharding.router import Router, ShardEndpoint
from fortress.sharding.status import FIX_SCHEMA, MISSING_SCHEMA, ShardProbe

MIGRATION_LOCK_TIMEOUT: Final = 30.0
PROBE_SQL: Final = (
    "SELECT current_setting('max_prepared_transactions')::int AS mpt, "
    "to_regclass('shard_data') IS NOT NULL AND to_regclass('distributed_tx_log') IS NOT NULL "
    "AS schema_ok, current_database() AS db, "
    "to_char(pg_postmaster_start_time(), 'YYYYMMDDHH24MISSUS') AS started"
)


def probe_error(error: BaseException, endpoint: ShardEndpoint | None) -> str:
    """Why a probe failed, naming the shard's Secret (and where it points), never its DSN."""
    if endpoint is None:
        return describe(error)
    text = describe(error, endpoint.secrets())
    where = endpoint.where()
    return text if where in text else f"{text} ({where})"


async def probe(router: Router, shard_id: str, migration_error: str | None = None) -> ShardProbe:
    """One probe through the router (so it counts for the shard's circuit breaker).

    The identity (system identifier, database, start time) tells shards sharing a database apart from
    distinct ones; ``migration_error`` is why the schema is missing when a migration failed.
    """
    timeout = router.config.query_timeout
    endpoint = router.endpoints.get(shard_id)
    try:
        async with router.connection(shard_id, "probe") as conn:
            row = await conn.fetchrow(PROBE_SQL, timeout=timeout)
            identity = f"{row['db']}@{row['started']}"
            with contextlib.suppress(Exception):  # pg_control_system() needs a privilege the role may lack
                async with conn.transaction():
                    system = await conn.fetchval("SELECT system_identifier FROM pg_control_system()")
                    identity = f"{system}/{identity}"
            keys = None
            if row["schema_ok"]:
                keys = int(await conn.fetchval("SELECT count(*) FROM shard_data", timeout=timeout * 4))
    except ShardingError as error:
        circuit = str(router.circuit_state(shard_id))
        return ShardProbe(shard_id, False, circuit, error=probe_error(error, endpoint))
    circuit = str(router.circuit_state(shard_id))
    if not row["schema_ok"]:
        fix = f"migration failed: {migration_error}" if migration_error else FIX_SCHEMA
        return ShardProbe(
            shard_id,
            False,
            circuit,
            max_prepared_transactions=row["mpt"],
            identity=identity,
            schema_ok=False,
            error=f"{MISSING_SCHEMA}: {fix}",
        )
    return ShardProbe(shard_id, True, circuit, keys, row["mpt"], identity, True)


async def migrate(
    endpoints: Sequence[ShardEndpoint], timeout: float, logger: Logger
) -> dict[str, str | None]:
    """Apply pending migrations to each shard in turn; per shard, why it failed (None: up to date)."""
    found: dict[str, str | None] = {}
    for endpoint in endpoints:
        try:
            applied = await migrations.up(
                endpoint.dsn,
                migrations.default_migrations_dir(),
                connect_timeout=timeout,
                lock_timeout=MIGRATION_LOCK_TIMEOUT,
            )
        except migrations.MigrationError as error:
            found[endpoint.id] = describe(error, endpoint.secrets())
            continue
        found[endpoint.id] = None
        if applied:
            logger.info("shard %s migrated to version %d", endpoint.id, applied[-1])
    return found
