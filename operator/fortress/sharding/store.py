"""SQL against one shard's ``shard_data`` table (migration 000003): the only place its queries live.

Every function takes an open asyncpg connection (the caller owns transactions and timeouts). Values are
passed and returned as JSON text (the jsonb codec's default), so moving a row never re-encodes it.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

StoredRow = tuple[str, str, int, dt.datetime]  # key, value (JSON text), version, updated_at


@dataclass(frozen=True)
class Stored:
    value: str  # JSON text
    version: int
    updated_at: dt.datetime


async def get(conn: Any, key: str, timeout: float | None = None) -> Stored | None:
    row = await conn.fetchrow(
        "SELECT value, version, updated_at FROM shard_data WHERE key = $1", key, timeout=timeout
    )
    return None if row is None else Stored(row[0], row[1], row[2])


async def lock(conn: Any, key: str, timeout: float | None = None) -> Stored | None:
    """The row, locked FOR UPDATE until the caller's transaction ends (None: not on this shard)."""
    row = await conn.fetchrow(
        "SELECT value, version, updated_at FROM shard_data WHERE key = $1 FOR UPDATE", key, timeout=timeout
    )
    return None if row is None else Stored(row[0], row[1], row[2])


async def lock_many(conn: Any, keys: Sequence[str], timeout: float | None = None) -> dict[str, str]:
    """Lock the rows of ``keys`` present here FOR UPDATE, in key order; their values (JSON text) by key."""
    rows = await conn.fetch(
        "SELECT key, value::text FROM shard_data WHERE key = ANY($1::text[]) ORDER BY key FOR UPDATE",
        list(keys),
        timeout=timeout,
    )
    return {r[0]: r[1] for r in rows}


async def upsert_many(conn: Any, values: dict[str, str], timeout: float | None = None) -> dict[str, Stored]:
    """Insert or overwrite several keys in one statement (each version goes up by one)."""
    rows = await conn.fetch(
        "INSERT INTO shard_data (key, value) SELECT * FROM unnest($1::text[], $2::jsonb[]) "
        "ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value, version = shard_data.version + 1, "
        "updated_at = now() RETURNING key, value, version, updated_at",
        list(values),
        list(values.values()),
        timeout=timeout,
    )
    return {r[0]: Stored(r[1], r[2], r[3]) for r in rows}


async def upsert(conn: Any, key: str, value: str, timeout: float | None = None) -> Stored:
    """Insert or overwrite; the version goes up by one on every overwrite."""
    row = await conn.fetchrow(
        "INSERT INTO shard_data (key, value) VALUES ($1, $2::jsonb) "
        "ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value, version = shard_data.version + 1, "
        "updated_at = now() RETURNING value, version, updated_at",
        key,
        value,
        timeout=timeout,
    )
    return Stored(row[0], row[1], row[2])


async def insert_new(conn: Any, key: str, value: str, timeout: float | None = None) -> Stored | None:
    """Insert only when absent (None when the key exists)."""
    row = await conn.fetchrow(
        "INSERT INTO shard_data (key, value) VALUES ($1, $2::jsonb) ON CONFLICT (key) DO NOTHING "
        "RETURNING value, version, updated_at",
        key,
        value,
        timeout=timeout,
    )
    return None if row is None else Stored(row[0], row[1], row[2])


async def update_if(
    conn: Any, key: str, value: str, version: int, timeout: float | None = None
) -> Stored | None:
    """Overwrite only at ``version`` (optimistic concurrency); None when the version differs."""
    row = await conn.fetchrow(
        "UPDATE shard_data SET value = $2::jsonb, version = version + 1, updated_at = now() "
        "WHERE key = $1 AND version = $3 RETURNING value, version, updated_at",
        key,
        value,
        version,
        timeout=timeout,
    )
    return None if row is None else Stored(row[0], row[1], row[2])


async def delete(conn: Any, key: str, timeout: float | None = None) -> bool:
    status = await conn.execute("DELETE FROM shard_data WHERE key = $1", key, timeout=timeout)
    return bool(status.endswith(" 1"))


async def count(conn: Any, timeout: float | None = None) -> int:
    return int(await conn.fetchval("SELECT count(*) FROM shard_data", timeout=timeout))


async def scan_keys(conn: Any, after: str, limit: int, timeout: float | None = None) -> list[str]:
    """Keys greater than ``after`` in key order (an index-only keyset scan)."""
    rows = await conn.fetch(
        "SELECT key FROM shard_data WHERE key > $1 ORDER BY key LIMIT $2", after, limit, timeout=timeout
    )
    return [r[0] for r in rows]


async def lock_rows(conn: Any, keys: Sequence[str], timeout: float | None = None) -> list[StoredRow]:
    """Lock the keys' rows FOR UPDATE, skipping rows another transaction holds (a later pass takes them)."""
    rows = await conn.fetch(
        "SELECT key, value::text, version, updated_at FROM shard_data WHERE key = ANY($1::text[]) "
        "ORDER BY key FOR UPDATE SKIP LOCKED",
        list(keys),
        timeout=timeout,
    )
    return [(r[0], r[1], r[2], r[3]) for r in rows]


async def copy_rows(conn: Any, rows: Sequence[StoredRow], timeout: float | None = None) -> None:
    """Write rows exactly (value, version and updated_at kept), overwriting any older copy."""
    await conn.execute(
        "INSERT INTO shard_data (key, value, version, updated_at) "
        "SELECT * FROM unnest($1::text[], $2::jsonb[], $3::bigint[], $4::timestamptz[]) "
        "ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value, version = EXCLUDED.version, "
        "updated_at = EXCLUDED.updated_at",
        [r[0] for r in rows],
        [r[1] for r in rows],
        [r[2] for r in rows],
        [r[3] for r in rows],
        timeout=timeout,
    )


async def verify_rows(conn: Any, rows: Sequence[StoredRow], timeout: float | None = None) -> int:
    """How many of ``rows`` are stored here with the same value and version."""
    return int(
        await conn.fetchval(
            "SELECT count(*) FROM shard_data d JOIN unnest($1::text[], $2::jsonb[], $3::bigint[]) "
            "AS s(key, value, version) ON d.key = s.key WHERE d.value = s.value AND d.version = s.version",
            [r[0] for r in rows],
            [r[1] for r in rows],
            [r[2] for r in rows],
            timeout=timeout,
        )
    )


async def delete_rows(conn: Any, keys: Sequence[str], timeout: float | None = None) -> int:
    status = await conn.execute(
        "DELETE FROM shard_data WHERE key = ANY($1::text[])", list(keys), timeout=timeout
    )
    return int(status.rsplit(" ", 1)[1])
