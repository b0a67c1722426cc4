"""Local PostgreSQL binaries and server processes: finding ``initdb``/``pg_ctl``, checking a pid.

Used by ``fortress dr rejoin`` (which runs the tools where the server runs) and by the local
environment of the demo and the tests.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

BINDIR_ENV = "FORTRESS_PG_BINDIR"


def find_bindir() -> Path | None:
    """Locate the directory holding ``initdb`` and ``pg_ctl`` (env override, PATH, Debian layout)."""
    candidates: list[Path] = []
    if override := os.environ.get(BINDIR_ENV):
        candidates.append(Path(override))
    if initdb := shutil.which("initdb"):
        candidates.append(Path(initdb).resolve().parent)
    debian = sorted(
        Path("/usr/lib/postgresql").glob("*/bin"),
        key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0,
        reverse=True,
    )
    candidates.extend(debian)
    for bindir in candidates:
        if all(os.access(bindir / tool, os.X_OK) for tool in ("initdb", "pg_ctl", "postgres")):
            return bindir
    return None


def pid_alive(pid: int) -> bool:
    """Whether ``pid`` is a live process (a zombie not yet reaped counts as dead)."""
    if not pid_exists(pid):
        return False
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")


def pid_exists(pid: int) -> bool:
    """Whether ``pid`` names any process, zombies included (PostgreSQL's stale-lock test)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
