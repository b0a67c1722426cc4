"""asyncpg pools shared by one process, keyed by DSN, and the DSN lookup from Secrets."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

import asyncpg


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
                pool = await asyncpg.create_pool(dsn, **self._options)
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


def redact(dsn: str) -> str:
    """The DSN with its password hidden, for messages and logs."""
    if "://" not in dsn or "@" not in dsn:
        return dsn
    scheme, rest = dsn.split("://", 1)
    credentials, host = rest.rsplit("@", 1)
    user = credentials.split(":", 1)[0]
    return f"{scheme}://{user}:***@{host}" if ":" in credentials else dsn
