"""Helpers of the sharding tests: migrated PostgreSQL shards, routers over them, bulk loads and audits."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

import asyncpg
import pytest

from fortress.adapters import migrations
from fortress.sharding.ring import Ring, RoutingState
from fortress.sharding.router import Router, RouterConfig, ShardEndpoint
from tests.support.postgres import PgCluster, PgFactory

PREPARED = 10  # max_prepared_transactions of the test shards


def create_shards(factory: PgFactory, count: int, **settings: Any) -> list[PgCluster]:
    """Start ``count`` migrated clusters (fast, non-durable) with prepared transactions enabled."""
    options: dict[str, Any] = {"max_prepared_transactions": PREPARED, "max_connections": 60, **settings}
    clusters = [factory.create(durable=False, **options) for _ in range(count)]
    asyncio.run(_migrate([c.dsn() for c in clusters]))
    return clusters


FOUR_SHARDS = ("shard-a", "shard-b", "shard-c", "shard-d")


@pytest.fixture(name="shards", scope="module")
def four_shards_fixture(pg_factory: PgFactory) -> Iterator[dict[str, PgCluster]]:
    """Four migrated shards named ``FOUR_SHARDS``, shared by a test module."""
    clusters = create_shards(pg_factory, len(FOUR_SHARDS))
    yield dict(zip(FOUR_SHARDS, clusters, strict=True))
    for cluster in clusters:
        pg_factory.destroy(cluster)


async def _migrate(dsns: Iterable[str]) -> None:
    for dsn in dsns:
        await migrations.up(dsn, migrations.default_migrations_dir())


def endpoints(clusters: Mapping[str, PgCluster]) -> list[ShardEndpoint]:
    return [ShardEndpoint(shard_id, cluster.dsn()) for shard_id, cluster in clusters.items()]


def make_router(
    clusters: Mapping[str, PgCluster], ring: Ring, previous: Ring | None = None, **config: Any
) -> Router:
    options: dict[str, Any] = {"query_timeout": 5.0, "pool_max_size": 20, **config}
    return Router(endpoints(clusters), RoutingState(ring, previous, "test/shards"), RouterConfig(**options))


async def reset(clusters: Iterable[PgCluster]) -> None:
    """Empty shard_data and the tx log, and roll back any prepared transaction left behind."""
    for cluster in clusters:
        conn = await asyncpg.connect(cluster.dsn())
        try:
            for gid in await conn.fetch(
                "SELECT gid FROM pg_prepared_xacts WHERE database = current_database()"
            ):
                await conn.execute(f"ROLLBACK PREPARED '{gid['gid']}'")
            await conn.execute("TRUNCATE shard_data, distributed_tx_log")
        finally:
            await conn.close()


async def load(clusters: Mapping[str, PgCluster], ring: Ring, items: Iterator[tuple[str, Any]]) -> int:
    """Bulk-load keys onto their owners under ``ring`` with COPY; the number of keys."""
    rows: dict[str, list[tuple[str, str]]] = {s: [] for s in clusters}
    count = 0
    for key, value in items:
        rows[ring.owner(key)].append((key, json.dumps(value)))
        count += 1
    for shard_id, records in rows.items():
        if not records:
            continue
        conn = await asyncpg.connect(clusters[shard_id].dsn())
        try:
            await conn.copy_records_to_table("shard_data", records=records, columns=["key", "value"])
        finally:
            await conn.close()
    return count


async def contents(clusters: Mapping[str, PgCluster]) -> dict[str, dict[str, Any]]:
    """Every shard's keys and decoded values."""
    found: dict[str, dict[str, Any]] = {}
    for shard_id, cluster in clusters.items():
        conn = await asyncpg.connect(cluster.dsn())
        try:
            rows = await conn.fetch("SELECT key, value FROM shard_data")
        finally:
            await conn.close()
        found[shard_id] = {r["key"]: json.loads(r["value"]) for r in rows}
    return found


async def prepared_left(clusters: Iterable[PgCluster]) -> list[str]:
    gids: list[str] = []
    for cluster in clusters:
        conn = await asyncpg.connect(cluster.dsn())
        try:
            gids += [r["gid"] for r in await conn.fetch("SELECT gid FROM pg_prepared_xacts")]
        finally:
            await conn.close()
    return gids
