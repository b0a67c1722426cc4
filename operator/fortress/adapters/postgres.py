"""asyncpg pools shared by one process, keyed by DSN, held by their owners and closed after the last."""

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


Owner = tuple[str, ...]
"""Who holds a pool: e.g. ``("CreditLedger", "ns", "main", "database")`` (an object and a purpose)."""


class PoolRegistry:
    """One asyncpg pool per DSN, shared by its owners and closed when the last one lets it go.

    An owner holds one pool at a time (:meth:`hold`): holding another DSN (its Secret changed)
    releases the one it held; :meth:`release` (its object deleted, its loop stopped) lets go. A pool
    no owner holds any more is closed, so its connections end. :meth:`get` hands out a pool without
    an owner, kept until :meth:`close`.
    """

    def __init__(self, min_size: int = 1, max_size: int = 10, command_timeout: float = 30.0) -> None:
        self._pools: dict[str, asyncpg.Pool] = {}
        self._owners: dict[str, set[Owner]] = {}  # DSN -> who holds it (absent: nobody, or get())
        self._held: dict[Owner, str] = {}  # owner -> the DSN it holds
        self._unowned: set[str] = set()  # DSNs handed out by get(): kept until close()
        self._lock = asyncio.Lock()
        self._options: Mapping[str, Any] = {
            "min_size": min_size,
            "max_size": max_size,
            "command_timeout": command_timeout,
        }

    async def _open(self, dsn: str) -> asyncpg.Pool:
        pool = self._pools.get(dsn)
        if pool is None:
            pool = await open_pool(dsn, **self._options)
            self._pools[dsn] = pool
        return pool

    async def get(self, dsn: str) -> asyncpg.Pool:
        """The pool of ``dsn``, owned by nobody: closed only by :meth:`discard` or :meth:`close`."""
        async with self._lock:
            pool = await self._open(dsn)
            self._unowned.add(dsn)
            return pool

    async def hold(self, owner: Owner, dsn: str) -> asyncpg.Pool:
        """The pool of ``dsn``, held by ``owner`` (which lets go of any other pool it held)."""
        async with self._lock:
            previous = self._held.get(owner)
            if previous == dsn and dsn in self._pools:
                return self._pools[dsn]
            pool = await self._open(dsn)
            self._held[owner] = dsn
            self._owners.setdefault(dsn, set()).add(owner)
            orphan = self._let_go(owner, previous) if previous is not None and previous != dsn else None
        if orphan is not None:
            await orphan.close()
        return pool

    async def release(self, owner: Owner) -> None:
        """``owner`` no longer needs its pool; the pool closes when nobody else holds it."""
        async with self._lock:
            dsn = self._held.pop(owner, None)
            orphan = self._let_go(owner, dsn) if dsn is not None else None
        if orphan is not None:
            await orphan.close()

    async def release_all(self, prefix: Owner) -> None:
        """Release every owner whose name starts with ``prefix`` (e.g. all of one object's)."""
        for owner in [o for o in list(self._held) if o[: len(prefix)] == prefix]:
            await self.release(owner)

    def _let_go(self, owner: Owner, dsn: str) -> asyncpg.Pool | None:
        """Drop ``owner`` from ``dsn``'s holders; the pool to close when it has none left."""
        holders = self._owners.get(dsn)
        if holders is not None:
            holders.discard(owner)
            if holders:
                return None
            del self._owners[dsn]
        if self._held.get(owner) == dsn:
            del self._held[owner]
        if dsn in self._unowned:
            return None
        return self._pools.pop(dsn, None)

    def holders(self, dsn: str) -> int:
        """How many owners hold the pool of ``dsn`` (0 when none or it is not open)."""
        return len(self._owners.get(dsn, ()))

    def is_open(self, dsn: str) -> bool:
        return dsn in self._pools

    async def discard(self, dsn: str) -> None:
        """Close the pool of ``dsn`` now (its connections failed); the next use opens a new one."""
        async with self._lock:
            pool = self._pools.pop(dsn, None)
        if pool is not None:
            await pool.close()

    async def close(self) -> None:
        async with self._lock:
            pools, self._pools = list(self._pools.values()), {}
            self._owners.clear()
            self._held.clear()
            self._unowned.clear()
        await asyncio.gather(*(pool.close() for pool in pools), return_exceptions=True)
