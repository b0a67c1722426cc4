"""Fixtures of the ledger tests: a migrated PostgreSQL database and an asyncpg pool on it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest

from fortress.adapters import migrations
from fortress.ledger.account import AccountState, replay
from fortress.ledger.events import Event
from fortress.ledger.store import EventStore
from tests.support.postgres import PgCluster


async def migrated_pool(pg: PgCluster, max_size: int = 20) -> Any:
    """Migrate the cluster's database and return a pool on it."""
    await migrations.up(pg.dsn(), migrations.default_migrations_dir())
    return await asyncpg.create_pool(pg.dsn(), min_size=1, max_size=max_size)


@pytest.fixture(name="pool")
async def pool_fixture(pg: PgCluster) -> AsyncIterator[Any]:
    created = await migrated_pool(pg, max_size=60)
    try:
        yield created
    finally:
        await created.close()


@pytest.fixture(name="store")
def store_fixture(pool: Any) -> EventStore:
    return EventStore(pool, snapshot_interval=10)


async def replay_from_events(pool: Any, tenant: str) -> AccountState:
    """The account rebuilt from every raw event row, without snapshots or the store's loader."""
    import json

    rows = await pool.fetch(
        "SELECT event_type, data FROM event_store WHERE aggregate_id = $1 ORDER BY version", tenant
    )
    return replay(Event(r["event_type"], json.loads(r["data"])) for r in rows)
