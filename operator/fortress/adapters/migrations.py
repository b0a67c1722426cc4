"""SQL schema migrations, applied with asyncpg and recorded the way golang-migrate records them.

Files are named ``NNNNNN_name.up.sql`` / ``NNNNNN_name.down.sql``; versions start at 1 without gaps.
The current version lives in golang-migrate's table ``schema_migrations(version bigint primary key,
dirty boolean not null)``, one row, so either tool can drive the same database.

Each run holds a session-level advisory lock for its whole duration, on the key golang-migrate's
PostgreSQL driver uses for the same database and schema, so two runners (of either tool) never
interleave. Each migration runs in its own transaction: the target version is first recorded as
dirty (committed), then the migration's SQL and the clean version are committed together. A failure
leaves the database dirty, and runners refuse to work on a dirty database until ``force`` records
the version it is really at. Migration files must not contain ``BEGIN``/``COMMIT``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import zlib
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TypeAlias

import asyncpg

from fortress.core.errors import Secret, describe, endpoint

MIGRATIONS_TABLE = "schema_migrations"
MIGRATIONS_DIR_ENV = "FORTRESS_MIGRATIONS_DIR"
NIL_VERSION = -1  # golang-migrate's "no version", stored only together with dirty=true
FILE_PATTERN = re.compile(r"^(?P<version>[0-9]+)_(?P<name>[a-z0-9][a-z0-9_]*)\.(?P<direction>up|down)\.sql$")
# golang-migrate's database.GenerateAdvisoryLockId: crc32(IEEE) of the joined names times this salt.
_LOCK_SALT = 1486364155
_FORCE_HINT = (
    "check which of its changes are in place, repair the schema if needed, then record the version the "
    "database is really at with `fortress migrate force VERSION` and run `fortress migrate up` again"
)

Direction = Literal["up", "down"]


class MigrationError(Exception):
    """Base class of the errors a migration run reports to its caller."""


class MigrationFileError(MigrationError):
    """The migrations directory is malformed (bad names, gaps, duplicates, missing halves)."""


class DirtyDatabaseError(MigrationError):
    """A previous migration failed or was interrupted: the schema may be half-migrated."""

    def __init__(self, version: int | None) -> None:
        """Describe the dirty ``version`` (None: a revert of the first migration failed)."""
        self.version = version
        if version is None:
            detail = "the revert of the first migration failed or was interrupted"
            example = (
                "`fortress migrate force none` if it was fully reverted, else `fortress migrate force 1`"
            )
        else:
            detail = f"the migration to version {version} failed or was interrupted"
            example = (
                f"`fortress migrate force {version}` if version {version} is fully in place, or "
                f"`fortress migrate force {version - 1 if version > 1 else 'none'}` if none of it is"
            )
        shown = "none" if version is None else str(version)
        super().__init__(
            f"database is dirty at version {shown}: {detail}. Each migration runs in a transaction, so a "
            f"failed `up` normally leaves the previous version in place; {_FORCE_HINT} (for example "
            f"{example})"
        )


class UnknownVersionError(MigrationError):
    """The database records a version that the migrations directory does not contain."""


class MigrationFailedError(MigrationError):
    """A migration's SQL failed; the database is left dirty at the target version."""

    def __init__(self, migration: Migration, direction: Direction, cause: BaseException) -> None:
        """Describe which migration failed, in which direction, and why."""
        self.migration = migration
        self.direction = direction
        detail = getattr(cause, "detail", None)
        hint = getattr(cause, "hint", None)
        message = f"{direction} migration {migration.label} failed: {type(cause).__name__}: {cause}"
        if detail:
            message += f" (detail: {detail})"
        if hint:
            message += f" (hint: {hint})"
        super().__init__(
            message + "; its transaction was rolled back and the database is marked dirty: " + _FORCE_HINT
        )


class DatabaseUnavailableError(MigrationError):
    """The database could not be reached or refused the connection."""


class MigrationLockTimeoutError(MigrationError):
    """Another runner held the migration lock for longer than the allowed wait."""


@dataclass(frozen=True)
class Migration:
    """One version: its up and down SQL."""

    version: int
    name: str
    up_path: Path
    down_path: Path
    up_sql: str
    down_sql: str

    @property
    def label(self) -> str:
        """The file-name prefix, for example ``000001_event_store``."""
        return self.up_path.name.removesuffix(".up.sql")


@dataclass(frozen=True)
class MigrationStatus:
    """Where a database stands relative to a migrations directory."""

    version: int | None
    dirty: bool
    latest: int | None
    pending: tuple[Migration, ...]
    known: bool

    @property
    def pending_versions(self) -> list[int]:
        """Versions an ``up`` would apply."""
        return [m.version for m in self.pending]

    @property
    def up_to_date(self) -> bool:
        """Clean, known and with nothing pending."""
        return not self.dirty and self.known and not self.pending


def default_migrations_dir() -> Path:
    """``$FORTRESS_MIGRATIONS_DIR``, else ``<package>/migrations`` (wheels), else ``<repo>/migrations``."""
    if override := os.environ.get(MIGRATIONS_DIR_ENV):
        return Path(override)
    here = Path(__file__).resolve()
    packaged = here.parents[1] / "migrations"
    if packaged.is_dir():
        return packaged
    return here.parents[3] / "migrations"


DEFAULT_MIGRATIONS_DIR = default_migrations_dir()


def load_migrations(directory: Path | str | None = None) -> list[Migration]:
    """Parse and validate a migrations directory (blocking: call through ``asyncio.to_thread``).

    Files not ending in ``.sql`` are ignored. Raises ``MigrationFileError`` listing every problem:
    malformed names, duplicate versions, an up without a down (or the reverse), differing names for
    one version, and versions that do not run 1, 2, 3, ... without gaps.
    """
    root = Path(directory) if directory is not None else default_migrations_dir()
    if not root.is_dir():
        raise MigrationFileError(f"migrations directory {root} does not exist")
    problems: list[str] = []
    halves: dict[int, dict[str, Path]] = {}
    for path in sorted(root.iterdir()):
        if not path.name.endswith(".sql"):
            continue
        match = FILE_PATTERN.match(path.name)
        if match is None:
            problems.append(f"{path.name}: not named NNNNNN_name.up.sql or NNNNNN_name.down.sql")
            continue
        version = int(match["version"])
        if version == 0:
            problems.append(f"{path.name}: version 0 is not allowed, versions start at 1")
            continue
        slot = halves.setdefault(version, {})
        if match["direction"] in slot:
            problems.append(
                f"duplicate {match['direction']} migration for version {version}: "
                f"{slot[match['direction']].name} and {path.name}"
            )
            continue
        slot[match["direction"]] = path
    migrations: list[Migration] = []
    for version in sorted(halves):
        slot = halves[version]
        up_path, down_path = slot.get("up"), slot.get("down")
        if up_path is None or down_path is None:
            present = (up_path or down_path or root).name
            problems.append(
                f"version {version}: {present} has no matching "
                f"{'up' if up_path is None else 'down'} migration"
            )
            continue
        up_name = up_path.name.removesuffix(".up.sql")
        down_name = down_path.name.removesuffix(".down.sql")
        if up_name != down_name:
            problems.append(f"version {version}: up and down names differ ({up_path.name}, {down_path.name})")
            continue
        name = up_name.split("_", 1)[1]
        migrations.append(
            Migration(
                version,
                name,
                up_path,
                down_path,
                up_path.read_text(encoding="utf-8"),
                down_path.read_text(encoding="utf-8"),
            )
        )
    expected = 1
    for version in sorted(halves):
        if version != expected:
            missing = f"{expected}" if version == expected + 1 else f"{expected}..{version - 1}"
            problems.append(
                f"versions must run 1, 2, 3, ... without gaps: version {missing} missing before {version}"
            )
        expected = version + 1
    if problems:
        raise MigrationFileError(f"invalid migrations in {root}:\n  " + "\n  ".join(problems))
    return migrations


def advisory_lock_key(database: str, schema: str, table: str = MIGRATIONS_TABLE) -> int:
    """The advisory-lock key golang-migrate's PostgreSQL driver takes for this database and schema."""
    joined = "\x00".join((schema, table, database)).encode()
    return (zlib.crc32(joined) * _LOCK_SALT) & 0xFFFFFFFF


Connectable: TypeAlias = "str | asyncpg.Connection"


@asynccontextmanager
async def _session(target: Connectable, connect_timeout: float) -> AsyncIterator[Any]:
    """Yield a connection (a new one for a DSN, closed afterwards; or the caller's own).

    Database and connection errors raised inside the block come out as ``MigrationError``s.
    """
    secrets = [Secret(target, "<the DSN>")] if isinstance(target, str) else []
    where = endpoint(target) if isinstance(target, str) else "the database"
    if isinstance(target, str):
        try:
            conn = await asyncpg.connect(
                target, timeout=connect_timeout, server_settings={"application_name": "fortress-migrate"}
            )
        except (OSError, TimeoutError, ValueError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            raise DatabaseUnavailableError(f"cannot connect to {where}: {describe(exc, secrets)}") from exc
    else:
        conn = target
    try:
        yield conn
    except asyncpg.PostgresError as exc:
        raise MigrationError(f"database error: {describe(exc, secrets)}") from exc
    except (OSError, TimeoutError, asyncpg.InterfaceError) as exc:
        raise DatabaseUnavailableError(f"lost the connection to {where}: {describe(exc, secrets)}") from exc
    finally:
        if conn is not target:
            await conn.close()


@asynccontextmanager
async def _locked(conn: Any, lock_timeout: float | None) -> AsyncIterator[None]:
    """Hold the migration advisory lock on ``conn``, waiting at most ``lock_timeout`` seconds."""
    database, schema = await conn.fetchrow("SELECT current_database(), current_schema()")
    if schema is None:
        raise MigrationError("no current schema: the search_path names no existing schema")
    key = advisory_lock_key(database, schema)
    if lock_timeout is not None:
        wait_ms = max(1, int(lock_timeout * 1000))
        await conn.execute("SELECT set_config('lock_timeout', $1, false)", f"{wait_ms}ms")
    try:
        await conn.execute("SELECT pg_advisory_lock($1::bigint)", key)
    except asyncpg.LockNotAvailableError as exc:
        raise MigrationLockTimeoutError(
            f"another migration run holds the lock (key {key}) on {database}.{schema}; gave up after "
            f"{lock_timeout}s"
        ) from exc
    finally:
        if lock_timeout is not None:
            await conn.execute("RESET lock_timeout")
    try:
        yield
    finally:
        if not conn.is_closed():
            # On failure, closing the session releases the lock anyway.
            with contextlib.suppress(asyncpg.PostgresError, asyncpg.InterfaceError, OSError):
                await conn.execute("SELECT pg_advisory_unlock($1::bigint)", key)


async def _table_exists(conn: Any) -> bool:
    return bool(await conn.fetchval("SELECT to_regclass($1) IS NOT NULL", MIGRATIONS_TABLE))


async def _ensure_table(conn: Any) -> None:
    if not await _table_exists(conn):
        await conn.execute(
            f"CREATE TABLE IF NOT EXISTS {MIGRATIONS_TABLE} (version bigint NOT NULL PRIMARY KEY, "
            "dirty boolean NOT NULL)"
        )


async def _read_version(conn: Any) -> tuple[int | None, bool]:
    """The recorded (version, dirty); (None, False) when nothing is recorded."""
    if not await _table_exists(conn):
        return None, False
    row = await conn.fetchrow(f"SELECT version, dirty FROM {MIGRATIONS_TABLE} LIMIT 1")
    if row is None:
        return None, False
    version = int(row["version"])
    return (None if version == NIL_VERSION else version), bool(row["dirty"])


async def _write_version(conn: Any, version: int | None, dirty: bool) -> None:
    """Record the version like golang-migrate's SetVersion (no row at all for a clean nil version)."""
    await conn.execute(f"DELETE FROM {MIGRATIONS_TABLE}")
    if version is not None or dirty:
        await conn.execute(
            f"INSERT INTO {MIGRATIONS_TABLE} (version, dirty) VALUES ($1, $2)",
            NIL_VERSION if version is None else version,
            dirty,
        )


async def _apply(conn: Any, migration: Migration, direction: Direction, target: int | None) -> None:
    """Run one migration in its own transaction, bracketed by the dirty flag."""
    async with conn.transaction():
        await _write_version(conn, target, dirty=True)
    sql = migration.up_sql if direction == "up" else migration.down_sql
    try:
        async with conn.transaction():
            if sql.strip():
                await conn.execute(sql)
            if not conn.is_in_transaction():
                raise MigrationFileError(
                    f"{direction} migration {migration.label} ended the runner's transaction (it must not "
                    f"contain BEGIN/COMMIT/ROLLBACK); the database is left dirty at version "
                    f"{'none' if target is None else target}: {_FORCE_HINT}"
                )
            await _write_version(conn, target, dirty=False)
    except asyncpg.PostgresError as exc:
        raise MigrationFailedError(migration, direction, exc) from exc


def _check_runnable(version: int | None, dirty: bool, migrations: Sequence[Migration]) -> None:
    if dirty:
        raise DirtyDatabaseError(version)
    if version is not None and version not in {m.version for m in migrations}:
        latest = migrations[-1].version if migrations else None
        raise UnknownVersionError(
            f"database is at version {version}, which is not among the migrations (latest: {latest}); "
            "it was probably migrated by a newer Fortress: use that release's migrations"
        )


async def _load(directory: Path | str | None) -> list[Migration]:
    return await asyncio.to_thread(load_migrations, directory)


async def status(
    conn_or_dsn: Connectable, directory: Path | str | None = None, *, connect_timeout: float = 10
) -> MigrationStatus:
    """Report the database's version, dirtiness and pending migrations (takes no lock)."""
    migrations = await _load(directory)
    async with _session(conn_or_dsn, connect_timeout) as conn:
        version, dirty = await _read_version(conn)
    known = version is None or any(m.version == version for m in migrations)
    pending = tuple(m for m in migrations if version is None or m.version > version)
    latest = migrations[-1].version if migrations else None
    return MigrationStatus(version, dirty, latest, pending, known)


async def up(
    dsn: Connectable,
    directory: Path | str | None = None,
    steps: int | None = None,
    *,
    lock_timeout: float | None = None,
    connect_timeout: float = 10,
) -> list[int]:
    """Apply pending migrations (all, or the next ``steps``); return the versions applied, in order."""
    if steps is not None and steps < 1:
        raise ValueError(f"steps must be at least 1, got {steps}")
    migrations = await _load(directory)
    async with _session(dsn, connect_timeout) as conn, _locked(conn, lock_timeout):
        await _ensure_table(conn)
        version, dirty = await _read_version(conn)
        _check_runnable(version, dirty, migrations)
        pending = [m for m in migrations if version is None or m.version > version]
        if steps is not None:
            pending = pending[:steps]
        for migration in pending:
            await _apply(conn, migration, "up", migration.version)
        return [m.version for m in pending]


async def down(
    dsn: Connectable,
    directory: Path | str | None = None,
    steps: int | Literal["all"] | None = 1,
    *,
    lock_timeout: float | None = None,
    connect_timeout: float = 10,
) -> list[int]:
    """Revert the last ``steps`` migrations (None or "all": every one); return the versions reverted."""
    if isinstance(steps, int) and steps < 1:
        raise ValueError(f"steps must be at least 1, got {steps}")
    migrations = await _load(directory)
    async with _session(dsn, connect_timeout) as conn, _locked(conn, lock_timeout):
        await _ensure_table(conn)
        version, dirty = await _read_version(conn)
        _check_runnable(version, dirty, migrations)
        applied = [m for m in migrations if version is not None and m.version <= version]
        limit = len(applied) if steps is None or steps == "all" else steps
        reverted: list[int] = []
        for index in range(len(applied) - 1, max(len(applied) - limit, 0) - 1, -1):
            target = applied[index - 1].version if index > 0 else None
            await _apply(conn, applied[index], "down", target)
            reverted.append(applied[index].version)
        return reverted


async def force(
    dsn: Connectable,
    version: int | None,
    directory: Path | str | None = None,
    *,
    lock_timeout: float | None = None,
    connect_timeout: float = 10,
) -> None:
    """Record ``version`` (None: no version) as current and clean, without running any SQL."""
    migrations = await _load(directory)
    if version is not None and version not in {m.version for m in migrations}:
        raise UnknownVersionError(
            f"cannot force version {version}: not among the migrations in "
            f"{directory or default_migrations_dir()} (use 'none' for an empty schema)"
        )
    async with _session(dsn, connect_timeout) as conn, _locked(conn, lock_timeout):
        await _ensure_table(conn)
        async with conn.transaction():
            await _write_version(conn, version, dirty=False)
