"""Pooled connections skip asyncpg's per-release RESET round trip and still start clean; a pool closes
when its last owner lets it go."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from fortress.adapters.postgres import PoolRegistry, open_pool
from tests.support.postgres import PgCluster

pytestmark = pytest.mark.postgres


async def test_a_released_connection_carries_no_transaction_or_local_setting(pg: PgCluster) -> None:
    pool = await open_pool(pg.dsn(), min_size=1, max_size=1)
    try:
        async with pool.acquire() as conn, conn.transaction():
            await conn.execute("SET LOCAL lock_timeout = '1234ms'")
            assert await conn.fetchval("SHOW lock_timeout") == "1234ms"
        async with pool.acquire() as conn:
            assert await conn.fetchval("SHOW lock_timeout") == "0"
            pid = conn.get_server_pid()
            await conn.execute("BEGIN")  # left open on purpose: asyncpg rolls it back on release
            await conn.execute("CREATE TABLE left_open (x int)")
        async with pool.acquire() as conn:
            assert conn.get_server_pid() == pid  # the same connection, reused
            assert not conn.is_in_transaction()
            assert await conn.fetchval("SELECT to_regclass('left_open')") is None
    finally:
        await pool.close()


async def _count(admin: Any, application: str) -> int:
    sql = "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1"
    return int(await admin.fetchval(sql, application))


async def _settled(admin: Any, application: str, expected: int) -> int:
    """The count once it reached ``expected`` (a closed connection leaves pg_stat_activity soon after)."""
    for _ in range(100):
        found = await _count(admin, application)
        if found == expected:
            return found
        await asyncio.sleep(0.05)
    return await _count(admin, application)


async def test_a_pool_closes_when_its_last_owner_releases_it(pg: PgCluster) -> None:
    admin = await open_pool(pg.dsn(), min_size=1, max_size=1)
    registry = PoolRegistry(min_size=2, max_size=2)
    shared, other = (f"{pg.dsn()}?application_name=pool-{n}" for n in ("shared", "other"))
    try:
        first = await registry.hold(("CreditLedger", "ns", "a", "database"), shared)
        second = await registry.hold(("ShardCluster", "ns", "b", "database"), shared)
        assert first is second and registry.holders(shared) == 2
        assert await _count(admin, "pool-shared") == 2  # one pool of min_size 2
        await registry.release(("CreditLedger", "ns", "a", "database"))
        assert registry.is_open(shared) and await _count(admin, "pool-shared") == 2  # still held
        # The other owner's Secret changes: it holds a new DSN, and the old pool has nobody left.
        await registry.hold(("ShardCluster", "ns", "b", "database"), other)
        assert not registry.is_open(shared)
        assert await _settled(admin, "pool-shared", 0) == 0
        assert await _count(admin, "pool-other") == 2
        await registry.release_all(("ShardCluster", "ns", "b"))  # its object deleted
        assert await _settled(admin, "pool-other", 0) == 0
    finally:
        await registry.close()
        await admin.close()
