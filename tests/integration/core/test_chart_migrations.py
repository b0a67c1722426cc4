"""The chart's migrations hook for real: the containers the Helm SDK renders for an upgrade (pg_dump
backup, then ``fortress migrate up``) run here with their arguments and environment, against real
PostgreSQL; the dump restores into a fresh database as it was before the upgrade, and a dirty
database fails the hook without being touched."""

from __future__ import annotations

import asyncio
import re
import sys
from pathlib import Path
from typing import Any

import helm_python as helm
import pytest

from fortress.adapters import migrations as m
from fortress.paths import repo_root
from fortress_dev.postgres import PgCluster

pytestmark = pytest.mark.postgres

CHART = repo_root() / "charts" / "fortress"
VALUES = {
    "migrations": {
        "enabled": True,
        "databases": [{"name": "ledger", "existingSecret": "ledger-db", "key": "dsn"}],
        "lockTimeout": 30,
        "backup": {"enabled": True, "existingClaim": "dumps", "path": "/backups"},
    }
}
REVISION = 3


def _job_pod() -> dict[str, Any]:
    import yaml

    rendered = helm.Chart.load(str(CHART)).render(
        VALUES, name="fx", namespace="ops", revision=REVISION, is_install=False, is_upgrade=True
    )
    text = next(t for p, t in rendered.items() if p.endswith("migrations.yaml"))
    return yaml.safe_load(text)["spec"]["template"]["spec"]  # type: ignore[no-any-return]


def _expand(arg: str, env: dict[str, str]) -> str:
    """Kubernetes' $(VAR) expansion of container arguments."""
    return re.sub(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)", lambda match: env[match.group(1)], arg)


def _env(container: dict[str, Any], secrets: dict[tuple[str, str], str]) -> dict[str, str]:
    """The container's environment, its secretKeyRefs resolved from ``secrets``."""
    env = {}
    for entry in container.get("env") or []:
        if "value" in entry:
            env[entry["name"]] = str(entry["value"])
        else:
            ref = entry["valueFrom"]["secretKeyRef"]
            env[entry["name"]] = secrets[(ref["name"], ref["key"])]
    return env


async def _run(argv: list[str], env: dict[str, str]) -> tuple[int, str]:
    import os

    process = await asyncio.create_subprocess_exec(
        *argv,
        env={**os.environ, **env},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await asyncio.wait_for(process.communicate(), timeout=120)
    return process.returncode or 0, out.decode()


async def _backup(
    pod: dict[str, Any], bindir: Path, secrets: dict[tuple[str, str], str], mount: Path
) -> Path:
    (container,) = pod["initContainers"]
    env = _env(container, secrets)
    (volume_mount,) = container["volumeMounts"]
    args = [_expand(a, env).replace(volume_mount["mountPath"], str(mount), 1) for a in container["args"]]
    tool = bindir / container["command"][0]
    code, out = await _run([str(tool), *args], env)
    assert code == 0, out
    (dump,) = await asyncio.to_thread(lambda: list(mount.iterdir()))
    return dump


async def _migrate(pod: dict[str, Any], secrets: dict[tuple[str, str], str]) -> tuple[int, str]:
    (container,) = pod["containers"]
    env = _env(container, secrets)
    # the image's entry point is `fortress`
    return await _run([sys.executable, "-m", "fortress", *[_expand(a, env) for a in container["args"]]], env)


async def test_backup_then_migrate_and_the_dump_restores(pg: PgCluster, tmp_path: Path) -> None:
    dsn = pg.dsn()
    await m.up(dsn, m.default_migrations_dir(), 2)  # the release being upgraded ran version 2
    await pg.execute("CREATE TABLE customers (id int PRIMARY KEY, name text)")
    await pg.execute("INSERT INTO customers SELECT g, 'c' || g FROM generate_series(1, 500) g")
    pod = _job_pod()
    secrets = {("ledger-db", "dsn"): dsn}
    mount = tmp_path / "claim"
    mount.mkdir()

    dump = await _backup(pod, pg.factory.bindir, secrets, mount)
    assert dump.name == f"fx-r{REVISION}-ledger.dump" and (await asyncio.to_thread(dump.stat)).st_size > 0
    code, out = await _migrate(pod, secrets)
    assert code == 0, out
    latest = max(x.version for x in m.load_migrations(m.default_migrations_dir()))
    assert f"database is at version {latest}" in out and "applied" in out
    code, out = await _migrate(pod, secrets)
    assert code == 0 and "no change" in out, out

    # the dump is the database as it was before the migrations
    await pg.execute("CREATE DATABASE restored")
    restored = pg.dsn("restored")
    code, out = await _run(
        [str(pg.factory.bindir / "pg_restore"), "--no-owner", f"--dbname={restored}", str(dump)], {}
    )
    assert code == 0, out
    state = await m.status(restored, m.default_migrations_dir())
    assert (state.version, state.dirty) == (2, False)
    rows = await _fetchval(restored, "SELECT count(*) FROM customers")
    assert rows == 500


async def _fetchval(dsn: str, query: str) -> Any:
    import asyncpg

    conn = await asyncpg.connect(dsn)
    try:
        return await conn.fetchval(query)
    finally:
        await conn.close()


async def test_a_dirty_database_fails_the_hook_untouched(pg: PgCluster) -> None:
    dsn = pg.dsn()
    await m.up(dsn, m.default_migrations_dir(), 2)
    await pg.execute("UPDATE schema_migrations SET dirty = true")
    code, out = await _migrate(_job_pod(), {("ledger-db", "dsn"): dsn})
    assert code == 1, out
    assert "dirty at version 2" in out and "fortress migrate force" in out
    state = await m.status(dsn, m.default_migrations_dir())
    assert (state.version, state.dirty) == (2, True)
