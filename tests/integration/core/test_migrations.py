"""The migration runner and the shipped migrations, against real PostgreSQL clusters."""

from __future__ import annotations

import argparse
import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from fortress.adapters import migrations as m
from fortress.commands import migrate as cli
from fortress_dev.postgres import PgCluster

pytestmark = pytest.mark.postgres

MIGRATIONS = Path(__file__).resolve().parents[3] / "migrations"
ALL = [1, 2, 3, 4, 5, 6, 7, 8, 9]


@pytest.fixture
async def db(pg: PgCluster) -> AsyncIterator[Any]:
    """A connection to the ``pg`` cluster with every migration applied."""
    assert await m.up(pg.dsn(), MIGRATIONS) == ALL
    conn = await pg.connect()
    try:
        yield conn
    finally:
        await conn.close()


async def append(conn: Any, aggregate_id: str, version: int, **extra: Any) -> int:
    """Append one event and return its global position."""
    columns = {
        "aggregate_type": "ledger",
        "aggregate_id": aggregate_id,
        "version": version,
        "event_type": "Credited",
        **extra,
    }
    names = ", ".join(columns)
    params = ", ".join(f"${i}" for i in range(1, len(columns) + 1))
    sql = f"INSERT INTO event_store ({names}) VALUES ({params}) RETURNING global_position"
    return int(await conn.fetchval(sql, *columns.values()))


def schema_dump(pg: PgCluster) -> str:
    """``pg_dump --schema-only`` of the postgres database, without the migrations table."""
    result = pg.factory.run(
        [
            "pg_dump",
            "-h",
            pg.host,
            "-p",
            str(pg.port),
            "-U",
            "postgres",
            "--schema-only",
            "-T",
            m.MIGRATIONS_TABLE,
            "postgres",
        ]
    )
    # Comments and the per-run random \restrict keys of recent pg_dump releases differ between runs.
    skipped = ("--", "\\restrict", "\\unrestrict")
    return "\n".join(line for line in result.stdout.splitlines() if not line.startswith(skipped))


async def test_up_down_up(pg: PgCluster) -> None:
    dsn = pg.dsn()
    assert await m.up(dsn, MIGRATIONS) == ALL
    state = await m.status(dsn, MIGRATIONS)
    assert (state.version, state.dirty, state.latest, state.pending, state.known) == (9, False, 9, (), True)
    assert state.up_to_date
    assert await m.up(dsn, MIGRATIONS) == []

    assert await m.down(dsn, MIGRATIONS, "all") == ALL[::-1]
    state = await m.status(dsn, MIGRATIONS)
    assert (state.version, state.dirty, state.pending_versions) == (None, False, ALL)
    tables = await pg.fetchval(
        "SELECT array_agg(relname ORDER BY relname) FROM pg_class "
        "WHERE relnamespace = 'public'::regnamespace AND relkind IN ('r', 'p', 'S', 'v', 'm')"
    )
    assert tables == [m.MIGRATIONS_TABLE]
    assert await pg.fetchval("SELECT count(*) FROM schema_migrations") == 0

    assert await m.up(dsn, MIGRATIONS) == ALL
    assert (await m.status(dsn, MIGRATIONS)).version == 9


async def test_steps(pg: PgCluster) -> None:
    dsn = pg.dsn()
    assert await m.up(dsn, MIGRATIONS, 2) == [1, 2]
    assert (await m.status(dsn, MIGRATIONS)).pending_versions == [3, 4, 5, 6, 7, 8, 9]
    assert await m.up(dsn, MIGRATIONS, 3) == [3, 4, 5]
    assert await m.down(dsn, MIGRATIONS) == [5]
    assert await m.down(dsn, MIGRATIONS, 2) == [4, 3]
    assert await m.down(dsn, MIGRATIONS, None) == [2, 1]
    assert await m.down(dsn, MIGRATIONS, None) == []
    with pytest.raises(ValueError):
        await m.up(dsn, MIGRATIONS, 0)


async def test_every_down_exactly_undoes_its_up(pg: PgCluster) -> None:
    dsn = pg.dsn()
    for version in ALL:
        before = await asyncio.to_thread(schema_dump, pg)
        assert await m.up(dsn, MIGRATIONS, 1) == [version]
        after_up = await asyncio.to_thread(schema_dump, pg)
        assert after_up != before
        assert await m.down(dsn, MIGRATIONS, 1) == [version]
        assert await asyncio.to_thread(schema_dump, pg) == before, f"down of version {version} is not exact"
        assert await m.up(dsn, MIGRATIONS, 1) == [version]


async def test_schema_migrations_has_golang_migrate_shape(db: Any) -> None:
    columns = await db.fetch(
        "SELECT column_name, data_type, is_nullable FROM information_schema.columns "
        "WHERE table_name = 'schema_migrations' ORDER BY ordinal_position"
    )
    assert [tuple(row) for row in columns] == [("version", "bigint", "NO"), ("dirty", "boolean", "NO")]
    pkey = await db.fetchval(
        "SELECT pg_get_constraintdef(oid) FROM pg_constraint "
        "WHERE conrelid = 'schema_migrations'::regclass AND contype = 'p'"
    )
    assert pkey == "PRIMARY KEY (version)"
    assert [tuple(row) for row in await db.fetch("SELECT version, dirty FROM schema_migrations")] == [
        (9, False)
    ]


async def test_event_store_is_append_only(db: Any) -> None:
    await append(db, "tenant-1", 1)
    # Row triggers fire only for rows a statement touches: give the default partition a row too.
    await append(db, "tenant-1", 2, recorded_at=datetime(2000, 1, 1, tzinfo=UTC))
    partition = await db.fetchval("SELECT tableoid::regclass::text FROM event_store WHERE version = 1")
    assert partition.startswith("event_store_20")
    for table in ("event_store", partition, "event_store_default"):
        with pytest.raises(asyncpg.ProhibitedSQLStatementAttemptedError, match="append-only"):
            await db.execute(f"UPDATE {table} SET data = '{{\"x\": 1}}'")
        with pytest.raises(asyncpg.ProhibitedSQLStatementAttemptedError, match="append-only"):
            await db.execute(f"DELETE FROM {table}")
        with pytest.raises(asyncpg.ProhibitedSQLStatementAttemptedError, match="TRUNCATE"):
            await db.execute(f"TRUNCATE {table}")
    for table in ("event_stream_versions", "event_idempotency_keys"):
        with pytest.raises(asyncpg.ProhibitedSQLStatementAttemptedError):
            await db.execute(f"TRUNCATE {table}")
    with pytest.raises(asyncpg.ProhibitedSQLStatementAttemptedError):
        await db.execute("DELETE FROM event_stream_versions")
    assert await db.fetchval("SELECT count(*) FROM event_store") == 2


async def test_event_store_uniqueness(db: Any) -> None:
    event_id = uuid.uuid4()
    await append(db, "tenant-1", 1, event_id=event_id)
    # Same stream version, even in another month's partition.
    next_month = await db.fetchval("SELECT date_trunc('month', now()) + interval '1 month 1 day'")
    with pytest.raises(asyncpg.UniqueViolationError, match="event_stream_versions_pkey"):
        await append(db, "tenant-1", 1, recorded_at=next_month)
    with pytest.raises(asyncpg.UniqueViolationError, match="event_stream_versions_event_id_key"):
        await append(db, "tenant-2", 1, event_id=event_id, recorded_at=next_month)
    await append(db, "tenant-1", 2, recorded_at=next_month)

    await append(db, "tenant-3", 1, idempotency_key="req-1", metadata='{"request_hash": "abc"}')
    with pytest.raises(asyncpg.UniqueViolationError, match='idempotency key "req-1" is already used'):
        await append(db, "tenant-3", 2, idempotency_key="req-1", recorded_at=next_month)
    key = await db.fetchrow("SELECT * FROM event_idempotency_keys WHERE key = 'req-1'")
    assert (key["request_hash"], key["aggregate_id"]) == ("abc", "tenant-3")

    # A reserved key is bound to the first event that carries it.
    await db.execute("INSERT INTO event_idempotency_keys (key, request_hash) VALUES ('req-2', 'h2')")
    position = await append(db, "tenant-4", 1, idempotency_key="req-2")
    bound = await db.fetchrow("SELECT * FROM event_idempotency_keys WHERE key = 'req-2'")
    assert (bound["first_position"], bound["request_hash"], bound["aggregate_id"]) == (
        position,
        "h2",
        "tenant-4",
    )
    with pytest.raises(asyncpg.ProhibitedSQLStatementAttemptedError, match="cannot be changed"):
        await db.execute("UPDATE event_idempotency_keys SET first_position = 1 WHERE key = 'req-2'")
    with pytest.raises(asyncpg.ProhibitedSQLStatementAttemptedError, match="has not expired"):
        await db.execute("DELETE FROM event_idempotency_keys WHERE key = 'req-2'")
    await db.execute(
        "INSERT INTO event_idempotency_keys (key, created_at, expires_at) "
        "VALUES ('old', now() - interval '2 days', now() - interval '1 day')"
    )
    assert await db.execute("DELETE FROM event_idempotency_keys WHERE expires_at < now()") == "DELETE 1"
    # Failed appends left nothing behind.
    assert await db.fetchval("SELECT count(*) FROM event_store") == 4
    assert await db.fetchval("SELECT count(*) FROM event_stream_versions") == 4


async def test_concurrent_appends_of_one_version_conflict(pg: PgCluster, db: Any) -> None:
    other = await pg.connect()
    try:
        async with db.transaction():
            await append(db, "tenant-1", 1)
            blocked = asyncio.create_task(append(other, "tenant-1", 1))
            await asyncio.sleep(0.2)
            assert not blocked.done()  # waits for the first writer's transaction
        with pytest.raises(asyncpg.UniqueViolationError):
            await blocked
    finally:
        await other.close()


async def test_available_is_generated(db: Any) -> None:
    await db.execute(
        "INSERT INTO credit_balances_read_model (tenant_id, balance, reserved) VALUES ('t', 100, 30)"
    )
    assert await db.fetchval("SELECT available FROM credit_balances_read_model") == 70
    await db.execute("UPDATE credit_balances_read_model SET reserved = 45")
    assert await db.fetchval("SELECT available FROM credit_balances_read_model") == 55
    generated = await db.fetchval(
        "SELECT is_generated FROM information_schema.columns "
        "WHERE table_name = 'credit_balances_read_model' AND column_name = 'available'"
    )
    assert generated == "ALWAYS"
    with pytest.raises(asyncpg.GeneratedAlwaysError):
        await db.execute("UPDATE credit_balances_read_model SET available = 1")


async def test_partitions_are_monthly_and_idempotent(db: Any) -> None:
    # Months are UTC months whatever the session time zone.
    await db.execute("SET TimeZone = 'America/New_York'")
    created = await db.fetch("SELECT * FROM ensure_event_store_partitions(4)")
    names = [row[0] for row in created]
    assert len(names) == 2
    assert await db.fetch("SELECT * FROM ensure_event_store_partitions(4)") == []
    await db.execute("SET TimeZone = 'UTC'")
    bounds = await db.fetch(
        "SELECT c.relname, pg_get_expr(c.relpartbound, c.oid) AS bound FROM pg_inherits i "
        "JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = 'event_store'::regclass ORDER BY 1"
    )
    monthly = [row for row in bounds if row["relname"] != "event_store_default"]
    assert len(monthly) == 5
    for row in monthly:
        assert "-01 00:00:00+00" in row["bound"], row["bound"]
    month = await db.fetchval("SELECT to_char(date_trunc('month', now()) + interval '4 months', 'YYYY_MM')")
    assert names[-1] == f"event_store_{month}"
    in_four_months = await db.fetchval("SELECT date_trunc('month', now()) + interval '4 months 3 days'")
    await append(db, "tenant-9", 1, recorded_at=in_four_months)
    assert await db.fetchval("SELECT tableoid::regclass::text FROM event_store") == names[-1]
    with pytest.raises(asyncpg.ProhibitedSQLStatementAttemptedError):
        await db.execute(f"TRUNCATE {names[-1]}")
    with pytest.raises(asyncpg.InvalidParameterValueError):
        await db.execute("SELECT ensure_event_store_partitions(-1)")


async def test_month_already_in_default_partition_is_skipped(db: Any) -> None:
    far = await db.fetchval("SELECT date_trunc('month', now()) + interval '6 months 1 day'")
    await append(db, "tenant-1", 1, recorded_at=far)
    assert await db.fetchval("SELECT tableoid::regclass::text FROM event_store") == "event_store_default"
    created = [row[0] for row in await db.fetch("SELECT * FROM ensure_event_store_partitions(6)")]
    assert len(created) == 3  # months 3, 4 and 5; month 6 stays in the default partition


async def test_concurrent_runners_apply_once(pg: PgCluster) -> None:
    first, second = await asyncio.gather(m.up(pg.dsn(), MIGRATIONS), m.up(pg.dsn(), MIGRATIONS))
    assert sorted([first, second]) == [[], ALL]
    assert (await m.status(pg.dsn(), MIGRATIONS)).version == 9


async def test_runner_waits_for_the_advisory_lock(pg: PgCluster) -> None:
    holder = await pg.connect()
    try:
        key = m.advisory_lock_key("postgres", "public")
        await holder.execute("SELECT pg_advisory_lock($1::bigint)", key)
        runner = asyncio.create_task(m.up(pg.dsn(), MIGRATIONS))
        await asyncio.sleep(0.3)
        assert not runner.done()
        assert (await m.status(pg.dsn(), MIGRATIONS)).version is None
        with pytest.raises(m.MigrationLockTimeoutError, match="holds the lock"):
            await m.up(pg.dsn(), MIGRATIONS, lock_timeout=0.1)
        await holder.execute("SELECT pg_advisory_unlock($1::bigint)", key)
        assert await asyncio.wait_for(runner, 30) == ALL
    finally:
        await holder.close()


async def test_dirty_database_is_refused(pg: PgCluster) -> None:
    dsn = pg.dsn()
    await m.up(dsn, MIGRATIONS, 2)
    await pg.execute("UPDATE schema_migrations SET dirty = true")
    for attempt in (m.up(dsn, MIGRATIONS), m.down(dsn, MIGRATIONS)):
        with pytest.raises(m.DirtyDatabaseError, match="dirty at version 2") as info:
            await attempt
        assert "fortress migrate force" in str(info.value)
    state = await m.status(dsn, MIGRATIONS)
    assert (state.version, state.dirty, state.up_to_date) == (2, True, False)
    with pytest.raises(m.UnknownVersionError):
        await m.force(dsn, 10, MIGRATIONS)
    await m.force(dsn, 2, MIGRATIONS)
    assert await m.up(dsn, MIGRATIONS) == [3, 4, 5, 6, 7, 8, 9]


async def test_failed_migration_leaves_dirty_and_rolls_back(pg: PgCluster, tmp_path: Path) -> None:
    (tmp_path / "000001_ok.up.sql").write_text("CREATE TABLE ok (id int);")
    (tmp_path / "000001_ok.down.sql").write_text("DROP TABLE ok;")
    (tmp_path / "000002_bad.up.sql").write_text("CREATE TABLE half (id int);\nSELECT 1/0;")
    (tmp_path / "000002_bad.down.sql").write_text("DROP TABLE half;")
    with pytest.raises(m.MigrationFailedError, match="000002_bad failed: DivisionByZeroError"):
        await m.up(pg.dsn(), tmp_path)
    state = await m.status(pg.dsn(), tmp_path)
    assert (state.version, state.dirty) == (2, True)
    assert await pg.fetchval("SELECT to_regclass('half')") is None
    assert await pg.fetchval("SELECT to_regclass('ok')") is not None
    await m.force(pg.dsn(), 1, tmp_path)
    (tmp_path / "000002_bad.up.sql").write_text("CREATE TABLE half (id int);")
    assert await m.up(pg.dsn(), tmp_path) == [2]
    assert await m.down(pg.dsn(), tmp_path, "all") == [2, 1]


async def test_migration_that_commits_itself_is_caught(pg: PgCluster, tmp_path: Path) -> None:
    (tmp_path / "000001_tx.up.sql").write_text("BEGIN;\nCREATE TABLE t (id int);\nCOMMIT;")
    (tmp_path / "000001_tx.down.sql").write_text("DROP TABLE t;")
    with pytest.raises(m.MigrationFileError, match="must not contain BEGIN/COMMIT"):
        await m.up(pg.dsn(), tmp_path)
    assert (await m.status(pg.dsn(), tmp_path)).dirty


async def test_unknown_database_version_is_refused(pg: PgCluster) -> None:
    await m.up(pg.dsn(), MIGRATIONS, 1)
    await pg.execute("UPDATE schema_migrations SET version = 42")
    with pytest.raises(m.UnknownVersionError, match="version 42"):
        await m.up(pg.dsn(), MIGRATIONS)
    assert not (await m.status(pg.dsn(), MIGRATIONS)).known


async def test_status_accepts_a_connection(db: Any) -> None:
    state = await m.status(db, MIGRATIONS)
    assert state.version == 9
    assert not db.is_closed()


async def test_unreachable_database() -> None:
    with pytest.raises(m.DatabaseUnavailableError, match=r"cannot connect to 127\.0\.0\.1:1/x: ") as raised:
        await m.status("postgresql://u:pw-S3CRET@127.0.0.1:1/x", MIGRATIONS, connect_timeout=5)
    assert "S3CRET" not in str(raised.value)


# The CLI runs its own event loop: these tests are synchronous.


def cli_main(argv: list[str]) -> int:
    """Parse ``argv`` with a parser holding only the migrate command and run it."""
    parser = argparse.ArgumentParser(prog="fortress")
    cli.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return int(args.func(args))


def test_cli(pg: PgCluster, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    dsn = pg.dsn()
    monkeypatch.delenv(cli.DSN_ENV, raising=False)
    assert cli_main(["migrate", "status", "--dsn", dsn, "--dir", str(MIGRATIONS)]) == 0
    out = capsys.readouterr().out
    assert "version:   none, clean" in out and "pending:   9" in out
    assert "000009_synthetic_decoy_tokens" in out

    assert cli_main(["migrate", "--dsn", dsn, "--dir", str(MIGRATIONS), "up", "2"]) == 0
    out = capsys.readouterr().out
    assert "applied  000001_event_store\napplied  000002_read_models" in out
    assert "database is at version 2 (000002_read_models)" in out

    monkeypatch.setenv(cli.DSN_ENV, dsn)
    monkeypatch.setenv(m.MIGRATIONS_DIR_ENV, str(MIGRATIONS))
    assert cli_main(["migrate", "up"]) == 0
    assert "database is at version 9" in capsys.readouterr().out
    assert cli_main(["migrate", "status"]) == 0
    out = capsys.readouterr().out
    assert "version:   9 (000009_synthetic_decoy_tokens), clean" in out and "pending:   none" in out
    assert cli_main(["migrate", "up"]) == 0
    assert "no change" in capsys.readouterr().out

    assert cli_main(["migrate", "down", "3"]) == 0
    assert (
        "reverted 000009_synthetic_decoy_tokens\nreverted 000008_event_store_append_cost\n"
        "reverted 000007_audit" in capsys.readouterr().out
    )

    asyncio.run(pg.execute("UPDATE schema_migrations SET dirty = true"))
    assert cli_main(["migrate", "up"]) == 1
    captured = capsys.readouterr()
    assert "error: database is dirty at version 6" in captured.err
    assert "Traceback" not in captured.err
    assert cli_main(["migrate", "status"]) == 0
    assert "DIRTY" in capsys.readouterr().out
    assert cli_main(["migrate", "force", "5"]) == 0
    assert "forced version 5 (000005_deployments), clean" in capsys.readouterr().out
    assert cli_main(["migrate", "down", "all"]) == 0
    assert "database is at version none" in capsys.readouterr().out
    assert cli_main(["migrate", "force", "none"]) == 0


def test_cli_errors(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(cli.DSN_ENV, raising=False)
    assert cli_main(["migrate", "status"]) == 2
    assert f"pass --dsn or set {cli.DSN_ENV}" in capsys.readouterr().err

    assert cli_main(["migrate", "status", "--dsn", "postgresql://x:secret@127.0.0.1:1/db"]) == 1
    err = capsys.readouterr().err
    assert "cannot connect to 127.0.0.1:1/db" in err
    assert "secret" not in err and "Traceback" not in err

    with pytest.raises(SystemExit):
        cli_main(["migrate", "up", "0"])
    with pytest.raises(SystemExit):
        cli_main(["migrate", "down", "some"])
