"""The SQL of synthetic datasets: staging tables, COPY, the atomic swap, read counters, audit rows.

A dataset is written into a staging table ``fortress_synthetic.s_<uid>_<key>`` one COPY per chunk
(each chunk commits alone, in id order, so the staging table always holds records ``0 .. n-1``),
then given its primary key, marked and, in one transaction, moved in place of the live table. A
table the operator made carries a marker in its comment (:class:`Marker`); a table of the target's
name without this dataset's marker is never touched. Identifiers come from the spec's validated
pattern and are quoted; every value is a parameter.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any, Final

STAGING_SCHEMA: Final = "fortress_synthetic"
COPY_PIECE: Final = 1 << 20
MARKER_KEY: Final = "fortress.io/syntheticdataset"


def ident(name: str) -> str:
    """A quoted SQL identifier."""
    return '"' + name.replace('"', '""') + '"'


def staging_name(uid: str, key: str) -> str:
    return f"s_{uid.replace('-', '')[:12]}_{key[:16]}"


@dataclass(frozen=True)
class Marker:
    """What the comment of a table the operator made says."""

    owner: str  # namespace/name of the SyntheticDataset
    key: str  # generation key
    records: int | None = None  # set once complete
    digest: str | None = None
    generated_at: str | None = None
    quality: dict[str, Any] | None = None

    def text(self) -> str:
        body: dict[str, Any] = {MARKER_KEY: self.owner, "key": self.key}
        if self.records is not None:
            body.update(
                records=self.records, digest=self.digest, generatedAt=self.generated_at, quality=self.quality
            )
        return json.dumps(body, sort_keys=True)

    @classmethod
    def parse(cls, comment: str | None) -> Marker | None:
        """The marker of a comment, or None when the table is not one the operator made."""
        try:
            body = json.loads(comment or "")
        except ValueError:
            return None
        if not isinstance(body, dict) or not isinstance(body.get(MARKER_KEY), str):
            return None
        return cls(
            owner=body[MARKER_KEY],
            key=str(body.get("key") or ""),
            records=body.get("records"),
            digest=body.get("digest"),
            generated_at=body.get("generatedAt"),
            quality=body.get("quality"),
        )


@dataclass(frozen=True)
class Table:
    """A table found by name: its OID and marker (None: not the operator's)."""

    oid: int
    marker: Marker | None


async def live_table(conn: Any, table: str) -> Table | None:
    """The relation named ``table`` in the connection's current schema (any kind), or None."""
    row = await conn.fetchrow(
        "SELECT c.oid::bigint AS oid, obj_description(c.oid, 'pg_class') AS comment FROM pg_class c "
        "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = current_schema() AND c.relname = $1",
        table,
    )
    return None if row is None else Table(int(row["oid"]), Marker.parse(row["comment"]))


async def ensure_staging(conn: Any, name: str, columns: Sequence[tuple[str, str]], marker: Marker) -> None:
    await conn.execute(f"CREATE SCHEMA IF NOT EXISTS {ident(STAGING_SCHEMA)}")
    definition = ", ".join(f"{ident(c)} {sql}" for c, sql in columns)
    qualified = f"{ident(STAGING_SCHEMA)}.{ident(name)}"
    await conn.execute(f"CREATE TABLE IF NOT EXISTS {qualified} ({definition})")
    await conn.execute(f"COMMENT ON TABLE {qualified} IS {_literal(marker.text())}")


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


async def staged_rows(conn: Any, name: str) -> int:
    """Records in a staging table (they are ``0 .. n-1``: a gap would be a bug, so it raises)."""
    row = await conn.fetchrow(
        f"SELECT count(*) AS n, coalesce(max(id) + 1, 0) AS upto FROM {ident(STAGING_SCHEMA)}.{ident(name)}"
    )
    if row["n"] != row["upto"]:
        raise RuntimeError(f"staging table {name} holds {row['n']} records but ids up to {row['upto']}")
    await conn.execute("SELECT pg_stat_force_next_flush()")  # this read is counted before any baseline
    return int(row["n"])


async def copy(conn: Any, name: str, columns: Sequence[str], data: bytes) -> None:
    """One chunk, in its own transaction (COPY commits or fails whole)."""

    async def source() -> AsyncIterator[bytes]:
        view = memoryview(data)
        for start in range(0, len(view), COPY_PIECE):
            yield bytes(view[start : start + COPY_PIECE])

    await conn.copy_to_table(
        name, source=source(), columns=list(columns), schema_name=STAGING_SCHEMA, format="text"
    )


async def finish(conn: Any, name: str, marker: Marker) -> None:
    """Primary key, statistics and the completed marker of a fully written staging table."""
    qualified = f"{ident(STAGING_SCHEMA)}.{ident(name)}"
    async with conn.transaction():
        has_key = await conn.fetchval(
            "SELECT EXISTS (SELECT 1 FROM pg_constraint WHERE conrelid = $1::regclass AND contype = 'p')",
            f"{STAGING_SCHEMA}.{name}",
        )
        if not has_key:
            await conn.execute(f"ALTER TABLE {qualified} ADD PRIMARY KEY (id)")
        await conn.execute(f"COMMENT ON TABLE {qualified} IS {_literal(marker.text())}")
    await conn.execute(f"ANALYZE {qualified}")
    await conn.execute("SELECT pg_stat_force_next_flush()")


class NotOwnedError(RuntimeError):
    """The target table exists and the operator did not make it for this dataset."""


async def swap(conn: Any, name: str, table: str, owner: str) -> int:
    """Put the staging table in place of the live one in one transaction; the new table's OID.

    Readers of the live table wait for the transaction and then read the new table whole: they never
    see a partial dataset, nor no table at all.
    """
    async with conn.transaction():
        live = await live_table(conn, table)
        if live is not None:
            if live.marker is None or live.marker.owner != owner:
                raise NotOwnedError(f"table {table} exists and was not made for SyntheticDataset {owner}")
            await conn.execute(f"LOCK TABLE {ident(table)} IN ACCESS EXCLUSIVE MODE")
            await conn.execute(f"DROP TABLE {ident(table)}")
        schema = await conn.fetchval("SELECT current_schema()")
        await conn.execute(f"ALTER TABLE {ident(STAGING_SCHEMA)}.{ident(name)} SET SCHEMA {ident(schema)}")
        await conn.execute(f"ALTER TABLE {ident(schema)}.{ident(name)} RENAME TO {ident(table)}")
        return int(await conn.fetchval("SELECT $1::regclass::oid::bigint", f"{ident(schema)}.{ident(table)}"))


async def drop_staging(conn: Any, uid: str, keep: str | None = None) -> list[str]:
    """Drop this dataset's staging tables (but ``keep``); their names."""
    prefix = f"s_{uid.replace('-', '')[:12]}_"
    names = [
        r["relname"]
        for r in await conn.fetch(
            "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = $1 AND c.relkind = 'r' AND left(c.relname, $3) = $2",
            STAGING_SCHEMA,
            prefix,
            len(prefix),
        )
        if r["relname"] != keep
    ]
    for found in names:
        await conn.execute(f"DROP TABLE IF EXISTS {ident(STAGING_SCHEMA)}.{ident(found)}")
    return names


async def drop_live(conn: Any, table: str, owner: str) -> bool:
    """Drop the live table when it is this dataset's."""
    async with conn.transaction():
        live = await live_table(conn, table)
        if live is None or live.marker is None or live.marker.owner != owner:
            return False
        await conn.execute(f"DROP TABLE {ident(table)}")
        return True


async def scans(conn: Any, table: str) -> tuple[int, int] | None:
    """(OID, seq_scan + idx_scan) of the live table from pg_stat_user_tables; None when absent."""
    await conn.execute("SELECT pg_stat_clear_snapshot()")
    row = await conn.fetchrow(
        "SELECT s.relid::bigint AS relid, s.seq_scan + coalesce(s.idx_scan, 0) AS scans "
        "FROM pg_stat_user_tables s WHERE s.schemaname = current_schema() AND s.relname = $1",
        table,
    )
    return None if row is None else (int(row["relid"]), int(row["scans"]))


async def has_table(conn: Any, name: str) -> bool:
    return bool(await conn.fetchval("SELECT to_regclass($1) IS NOT NULL", name))


async def audit(
    conn: Any,
    action: str,
    namespace: str,
    name: str,
    outcome: str,
    details: dict[str, Any],
    actor: str = "unknown",
    source_ip: str | None = None,
) -> None:
    """One audit_trail row (migration 000007) about a SyntheticDataset."""
    await conn.execute(
        "INSERT INTO audit_trail (actor, action, resource_kind, namespace, resource_name, outcome, "
        "source_ip, details) VALUES ($1, $2, 'SyntheticDataset', $3, $4, $5, $6::inet, $7::jsonb)",
        actor,
        action,
        namespace,
        name,
        outcome,
        source_ip,
        json.dumps(details, sort_keys=True),
    )


async def register_tokens(conn: Any, namespace: str, name: str, digests: Sequence[bytes]) -> None:
    """Record decoy token digests (migration 000009), replacing the dataset's earlier ones."""
    async with conn.transaction():
        await conn.execute(
            "DELETE FROM synthetic_decoy_tokens WHERE namespace = $1 AND dataset = $2", namespace, name
        )
        await conn.executemany(
            "INSERT INTO synthetic_decoy_tokens (digest, namespace, dataset) VALUES ($1, $2, $3) "
            "ON CONFLICT (digest) DO NOTHING",
            [(d, namespace, name) for d in digests],
        )


async def unregister_tokens(conn: Any, namespace: str, name: str) -> int:
    result = await conn.execute(
        "DELETE FROM synthetic_decoy_tokens WHERE namespace = $1 AND dataset = $2", namespace, name
    )
    return int(str(result).split()[-1])


async def decoy_token(conn: Any, digest: bytes) -> tuple[str, str] | None:
    """(namespace, dataset) of a decoy token's digest, or None."""
    row = await conn.fetchrow(
        "SELECT namespace, dataset FROM synthetic_decoy_tokens WHERE digest = $1", digest
    )
    return None if row is None else (str(row["namespace"]), str(row["dataset"]))
