"""Failback: turn a stopped old primary into a standby of the new one, on the region's own host.

pg_rewind where possible (it needs ``wal_log_hints = on`` or data checksums, and
``full_page_writes = on``, on the old primary), else a fresh copy with pg_basebackup. Both need
the data directory, so this runs where the server runs (``fortress dr rejoin``), not in the
operator. The server must be stopped. Local configuration files (``*.conf`` other than
``postgresql.auto.conf``: port, paths, access rules) are kept; ``postgresql.auto.conf`` comes from
the new primary, which drops the read-only fence, with ``primary_conninfo`` pointing at it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from fortress.adapters.pgbin import pid_exists
from fortress.dr.conninfo import dsn_params, format_conninfo

Runner = Callable[..., "subprocess.CompletedProcess[str]"]
"""Runs a PostgreSQL tool: ``run(["pg_rewind", ...], check=False)`` (argv[0] resolved in the bindir)."""


class RejoinError(RuntimeError):
    """The region could not be rejoined; the message carries the tools' output."""


@dataclass(frozen=True)
class RejoinResult:
    method: str  # pg_rewind or pg_basebackup
    detail: str


def source_conninfo(source_dsn: str, application_name: str | None) -> str:
    params = dsn_params(source_dsn)
    params.setdefault("dbname", "postgres")
    if application_name:
        params["application_name"] = application_name
    return format_conninfo(params)


def bindir_runner(bindir: Path) -> Runner:
    """Run tools from ``bindir`` as the current user (the data directory's owner)."""

    def run(argv: list[str], check: bool = True) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [str(bindir / argv[0]), *argv[1:]], capture_output=True, text=True, stdin=subprocess.DEVNULL
        )
        if check and result.returncode != 0:
            raise RejoinError(f"{argv[0]} failed ({result.returncode}): {_output(result)}")
        return result

    return run


def _output(result: subprocess.CompletedProcess[str]) -> str:
    return (result.stderr.strip() or result.stdout.strip())[-2000:]


def _keep(datadir: Path) -> dict[str, bytes]:
    return {
        p.name: p.read_bytes()
        for p in sorted(datadir.glob("*.conf"))
        if p.is_file() and p.name != "postgresql.auto.conf"
    }


def _restore(datadir: Path, kept: dict[str, bytes]) -> None:
    owner = datadir.stat()
    for name, content in kept.items():
        path = datadir / name
        path.write_bytes(content)
        path.chmod(0o600)
        if os.geteuid() == 0:
            os.chown(path, owner.st_uid, owner.st_gid)


def rejoin(
    datadir: Path,
    source_dsn: str,
    run: Runner,
    *,
    application_name: str | None = None,
    allow_reclone: bool = True,
) -> RejoinResult:
    """Rewind (or re-clone) the stopped server in ``datadir`` into a standby of ``source_dsn``."""
    if not (datadir / "PG_VERSION").exists():
        raise RejoinError(f"{datadir} is not a PostgreSQL data directory")
    if (datadir / "postmaster.pid").exists():
        pid_line = (datadir / "postmaster.pid").read_text().split("\n", 1)[0].strip()
        if pid_line.isdigit() and pid_exists(int(pid_line)):
            raise RejoinError(f"the server in {datadir} is running (pid {pid_line}): stop it first")
    conninfo = source_conninfo(source_dsn, application_name)
    # pg_rewind reads the source's timeline from pg_control, which a fresh promotion updates only at
    # its next checkpoint: without one it would wrongly find nothing to rewind.
    checkpoint = run(["psql", "-X", "-q", "-d", conninfo, "-c", "CHECKPOINT"], check=False)
    if checkpoint.returncode != 0:
        raise RejoinError(f"cannot reach the new primary: {_output(checkpoint)}")
    kept = _keep(datadir)
    rewind = run(
        ["pg_rewind", "--target-pgdata", str(datadir), "--source-server", conninfo, "--write-recovery-conf"],
        check=False,
    )
    if rewind.returncode == 0:
        _restore(datadir, kept)
        lines = (rewind.stderr + rewind.stdout).strip().splitlines()
        return RejoinResult("pg_rewind", lines[-1] if lines else "rewound")
    why = _output(rewind)
    if not allow_reclone:
        raise RejoinError(f"pg_rewind failed and re-cloning is not allowed: {why}")
    shutil.rmtree(datadir)
    clone = run(
        ["pg_basebackup", "-d", conninfo, "-D", str(datadir), "-R", "-X", "stream", "-c", "fast"], check=False
    )
    if clone.returncode != 0:
        raise RejoinError(f"pg_rewind failed ({why}) and pg_basebackup failed: {_output(clone)}")
    _restore(datadir, kept)
    return RejoinResult(
        "pg_basebackup", f"re-cloned (pg_rewind: {why.splitlines()[-1] if why else 'failed'})"
    )
