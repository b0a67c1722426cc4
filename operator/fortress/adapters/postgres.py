"""asyncpg pools shared by one process, keyed by DSN, and the DSN lookup from Secrets."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

import asyncpg


async def _keep_session(_connection: Any) -> None:
    """Pool reset that adds nothing to asyncpg's own (rollback of an open transaction, listeners)."""


async def open_pool(dsn: str, **options: Any) -> asyncpg.Pool:
    """An asyncpg pool whose connections are not reset with a round trip on every release.

    asyncpg's default reset sends ``pg_advisory_unlock_all(); CLOSE ALL; UNLISTEN *; RESET ALL`` each
    time a connection goes back to the pool: one more round trip per query on a pool, about 0.4 ms
    of a 1.2 ms append here. Fortress never changes session state on pooled connections (settings
    only with ``SET LOCAL``, advisory locks only on dedicated connections, no LISTEN, no cursors), and
    asyncpg still rolls back a transaction left open, so the reset has nothing to undo.
    """
    return await asyncpg.create_pool(dsn, reset=_keep_session, **options)


class PoolRegistry:
    """One asyncpg pool per DSN, created on first use and closed together."""

    def __init__(self, min_size: int = 1, max_size: int = 10, command_timeout: float = 30.0) -> None:
        self._pools: dict[str, asyncpg.Pool] = {}
        self._lock = asyncio.Lock()
        self._options: Mapping[str, Any] = {
            "min_size": min_size,
            "max_size": max_size,
            "command_timeout": command_timeout,
        }

    async def get(self, dsn: str) -> asyncpg.Pool:
        async with self._lock:
            pool = self._pools.get(dsn)
            if pool is None:
                pool = await open_pool(dsn, **self._options)
                self._pools[dsn] = pool
            return pool

    async def discard(self, dsn: str) -> None:
        async with self._lock:
            pool = self._pools.pop(dsn, None)
        if pool is not None:
            await pool.close()

    async def close(self) -> None:
        async with self._lock:
            pools, self._pools = list(self._pools.values()), {}
        await asyncio.gather(*(pool.close() for pool in pools), return_exceptions=True)
