"""Migration file naming and validation, on temporary directories and on the shipped migrations."""

from __future__ import annotations

from pathlib import Path

import pytest

from fortress.adapters import migrations as m

REPO_MIGRATIONS = Path(__file__).resolve().parents[3] / "migrations"
EXPECTED = [
    "000001_event_store",
    "000002_read_models",
    "000003_sharding",
    "000004_disaster_recovery",
    "000005_deployments",
    "000006_compliance",
    "000007_audit",
    "000008_event_store_append_cost",
    "000009_synthetic_decoy_tokens",
]


def write(directory: Path, *names: str) -> Path:
    """Create migration files (each holding a comment naming itself) and return the directory."""
    for name in names:
        (directory / name).write_text(f"-- {name}\n")
    return directory


def pair(version: str, name: str) -> tuple[str, str]:
    """The up and down file names of one migration."""
    return f"{version}_{name}.up.sql", f"{version}_{name}.down.sql"


def test_loads_in_version_order(tmp_path: Path) -> None:
    write(tmp_path, *pair("000002", "second"), *pair("000001", "first"), "README.md", "notes.txt")
    loaded = m.load_migrations(tmp_path)
    assert [(x.version, x.name, x.label) for x in loaded] == [
        (1, "first", "000001_first"),
        (2, "second", "000002_second"),
    ]
    assert loaded[0].up_sql == "-- 000001_first.up.sql\n"
    assert loaded[0].down_sql == "-- 000001_first.down.sql\n"


def test_empty_directory_has_no_migrations(tmp_path: Path) -> None:
    assert m.load_migrations(tmp_path) == []


def test_missing_directory(tmp_path: Path) -> None:
    with pytest.raises(m.MigrationFileError, match="does not exist"):
        m.load_migrations(tmp_path / "nope")


@pytest.mark.parametrize(
    "bad",
    [
        "000003_third.sql",
        "000003-third.up.sql",
        "third.up.sql",
        "000003_Third.up.sql",
        "000003_.up.sql",
        "000003_third.UP.sql",
        "000003_third.sideways.sql",
    ],
)
def test_malformed_names_are_rejected(tmp_path: Path, bad: str) -> None:
    write(tmp_path, *pair("000001", "first"), *pair("000002", "second"), bad)
    with pytest.raises(m.MigrationFileError, match="not named NNNNNN_name"):
        m.load_migrations(tmp_path)


def test_gap_is_rejected(tmp_path: Path) -> None:
    write(tmp_path, *pair("000001", "first"), *pair("000003", "third"))
    with pytest.raises(m.MigrationFileError, match="version 2 missing before 3"):
        m.load_migrations(tmp_path)


def test_wide_gap_is_reported_as_a_range(tmp_path: Path) -> None:
    write(tmp_path, *pair("000001", "first"), *pair("000005", "fifth"))
    with pytest.raises(m.MigrationFileError, match=r"version 2\.\.4 missing before 5"):
        m.load_migrations(tmp_path)


def test_versions_must_start_at_one(tmp_path: Path) -> None:
    write(tmp_path, *pair("000002", "second"))
    with pytest.raises(m.MigrationFileError, match="version 1 missing before 2"):
        m.load_migrations(tmp_path)


def test_version_zero_is_rejected(tmp_path: Path) -> None:
    write(tmp_path, *pair("000000", "zero"), *pair("000001", "first"))
    with pytest.raises(m.MigrationFileError, match="version 0 is not allowed"):
        m.load_migrations(tmp_path)


def test_duplicate_version_is_rejected(tmp_path: Path) -> None:
    write(tmp_path, *pair("000001", "first"), *pair("000002", "second"), "000002_other.up.sql")
    with pytest.raises(m.MigrationFileError, match="duplicate up migration for version 2"):
        m.load_migrations(tmp_path)


def test_duplicate_version_with_different_padding_is_rejected(tmp_path: Path) -> None:
    write(tmp_path, *pair("000001", "first"), *pair("2", "second"), "02_second.down.sql")
    with pytest.raises(m.MigrationFileError, match="duplicate down migration for version 2"):
        m.load_migrations(tmp_path)


def test_missing_down_is_rejected(tmp_path: Path) -> None:
    write(tmp_path, *pair("000001", "first"), "000002_second.up.sql")
    with pytest.raises(m.MigrationFileError, match=r"000002_second\.up\.sql has no matching down"):
        m.load_migrations(tmp_path)


def test_missing_up_is_rejected(tmp_path: Path) -> None:
    write(tmp_path, *pair("000001", "first"), "000002_second.down.sql")
    with pytest.raises(m.MigrationFileError, match=r"000002_second\.down\.sql has no matching up"):
        m.load_migrations(tmp_path)


def test_up_and_down_names_must_match(tmp_path: Path) -> None:
    write(tmp_path, "000001_first.up.sql", "000001_premier.down.sql")
    with pytest.raises(m.MigrationFileError, match="up and down names differ"):
        m.load_migrations(tmp_path)


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    write(tmp_path, *pair("000001", "first"), "000002_second.up.sql", *pair("000004", "fourth"), "x.sql")
    with pytest.raises(m.MigrationFileError) as info:
        m.load_migrations(tmp_path)
    message = str(info.value)
    assert "x.sql: not named" in message
    assert "no matching down" in message
    assert "version 3 missing before 4" in message


def test_shipped_migrations_are_valid() -> None:
    loaded = m.load_migrations(REPO_MIGRATIONS)
    assert [x.label for x in loaded] == EXPECTED
    for migration in loaded:
        assert migration.up_sql.strip() and migration.down_sql.strip()
        # The runner wraps each file in a transaction: files must not manage transactions themselves.
        for sql in (migration.up_sql, migration.down_sql):
            lines = [line.strip().upper() for line in sql.splitlines()]
            assert not any(line.startswith(("BEGIN;", "COMMIT", "ROLLBACK")) for line in lines)


def test_default_directory_prefers_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(m.MIGRATIONS_DIR_ENV, str(tmp_path))
    assert m.default_migrations_dir() == tmp_path


def test_default_directory_falls_back_to_the_repository(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(m.MIGRATIONS_DIR_ENV, raising=False)
    packaged = Path(m.__file__).resolve().parents[1] / "migrations"
    expected = packaged if packaged.is_dir() else REPO_MIGRATIONS
    assert m.default_migrations_dir() == expected


def test_advisory_lock_key_matches_golang_migrate() -> None:
    # Values computed with golang-migrate's GenerateAdvisoryLockId(db, "public", "schema_migrations").
    assert m.advisory_lock_key("postgres", "public") == 143310882
    assert m.advisory_lock_key("fortress", "public") == 42177216


def test_dirty_error_says_how_to_fix() -> None:
    message = str(m.DirtyDatabaseError(3))
    assert "dirty at version 3" in message
    assert "fortress migrate force 3" in message
    assert "fortress migrate force 2" in message
    assert "fortress migrate force none" in str(m.DirtyDatabaseError(None))
