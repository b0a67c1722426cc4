"""Pooled connections skip asyncpg's per-release RESET round trip and still start clean."""

from __future__ import annotations

import pytest

from fortress.adapters.postgres import open_pool
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
