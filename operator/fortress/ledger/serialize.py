"""One writer per account inside a process: an asyncio lock per aggregate id, in a bounded map.

Commands on one hot account would otherwise load the same version concurrently and all but one
fail their append (``ConcurrencyError``), then retry. With ``KeyedLocks`` the commands of one
process on one account run one after the other, so within a process they never conflict; only
writers in other processes still can, and the event store's jittered retries settle those.

An entry lives only while a command holds or waits for its lock, so the map holds at most the
accounts with commands in flight; beyond ``max_keys`` such accounts, further ones run without a
lock (optimistic concurrency still keeps them correct, they may only retry more).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Final

DEFAULT_MAX_KEYS: Final = 10_000


@dataclass
class _Entry:
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    users: int = 0


class KeyedLocks:
    """``async with locks.hold(key):`` runs one holder per key at a time."""

    def __init__(self, max_keys: int = DEFAULT_MAX_KEYS) -> None:
        if max_keys < 1:
            raise ValueError("max_keys must be >= 1")
        self.max_keys = max_keys
        self._entries: dict[str, _Entry] = {}

    def __len__(self) -> int:
        return len(self._entries)

    @contextlib.asynccontextmanager
    async def hold(self, key: str) -> AsyncIterator[bool]:
        """Hold ``key``'s lock (yields True), or run unlocked when the map is full (yields False)."""
        entry = self._entries.get(key)
        if entry is None:
            if len(self._entries) >= self.max_keys:
                yield False
                return
            entry = self._entries[key] = _Entry()
        entry.users += 1
        try:
            async with entry.lock:
                yield True
        finally:
            entry.users -= 1
            if entry.users == 0:
                del self._entries[key]
