"""Throwaway PostgreSQL clusters for the demo and the tests.

``initdb`` runs once per session into a template data directory; every cluster is a copy of it
(``cp -a``) started on a free loopback port, so a new cluster costs a fraction of a second. When
running as root, every PostgreSQL command runs as the ``postgres`` OS user through ``runuser``.

The cluster-control methods (``create``, ``start``, ``stop``, ``kill9``, ...) are synchronous: call
them through ``asyncio.to_thread`` from async tests. The query helpers (``connect``, ``execute``,
``fetchval``, ``wait_for_replay``) are async.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import asyncpg

from fortress.adapters.pgbin import pid_alive, pid_exists

SKIP_REASON = "PostgreSQL binaries (initdb, pg_ctl) not found: `make test` installs the postgresql package"
OS_USER = "postgres"
SUPERUSER = "postgres"
HOST = "127.0.0.1"
TMP_PREFIX = "fortress-pg-"

StopMode = Literal["smart", "fast", "immediate"]
SettingValue = bool | int | float | str

# Relaxed durability for speed; applied only when a test passes no settings of its own.
FAST_SETTINGS: dict[str, SettingValue] = {
    "fsync": False,
    "full_page_writes": False,
    "synchronous_commit": False,
}
# A hot standby refuses to start when these are lower than on its primary, so replicas inherit them.
STANDBY_MIN_SETTINGS = (
    "max_connections",
    "max_prepared_transactions",
    "max_locks_per_transaction",
    "max_wal_senders",
    "max_worker_processes",
)
PG_HBA = """\
# TYPE  DATABASE     USER  ADDRESS        METHOD
local   all          all                  trust
host    all          all   127.0.0.1/32   trust
local   replication  all                  trust
host    replication  all   127.0.0.1/32   trust
"""


class PgError(RuntimeError):
    """A PostgreSQL command or cluster operation failed."""


def _format_setting(value: SettingValue) -> str:
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, int | float):
        return str(value)
    return "'" + value.replace("\\", "\\\\").replace("'", "''") + "'"


def _children(pid: int) -> list[int]:
    """Direct children of ``pid`` (Linux ``/proc``; empty elsewhere)."""
    found: list[int] = []
    for entry in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = entry.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(entry.parent.name))
    return found


def _wait_for(pids: list[int], still: Callable[[int], bool], timeout: float) -> list[int]:
    """Wait until ``still(pid)`` is false for every pid; return those for which it is still true."""
    deadline = time.monotonic() + timeout
    left = [p for p in pids if still(p)]
    while left and time.monotonic() < deadline:
        time.sleep(0.02)
        left = [p for p in left if still(p)]
    return left


@dataclass
class PgCluster:
    """One PostgreSQL cluster: a data directory, a loopback port and a unix socket directory."""

    factory: PgFactory
    name: str
    root: Path
    port: int
    settings: dict[str, SettingValue]
    durable: bool
    primary: PgCluster | None = None
    host: str = HOST

    @property
    def datadir(self) -> Path:
        """The cluster's data directory."""
        return self.root / "data"

    @property
    def socket_dir(self) -> Path:
        """The directory holding the cluster's unix socket."""
        return self.root / "sock"

    @property
    def logfile(self) -> Path:
        """The server log written by ``pg_ctl -l``."""
        return self.root / "postgres.log"

    def dsn(self, dbname: str = "postgres", user: str = SUPERUSER) -> str:
        """A libpq/asyncpg URI for this cluster over TCP loopback."""
        return f"postgresql://{user}@{self.host}:{self.port}/{dbname}"

    def pid(self) -> int | None:
        """The postmaster's pid from ``postmaster.pid``, if the file exists."""
        try:
            first = (self.datadir / "postmaster.pid").read_text().split("\n", 1)[0]
        except (FileNotFoundError, NotADirectoryError):
            return None
        return int(first) if first.strip().isdigit() else None

    def is_running(self) -> bool:
        """Whether the postmaster is alive."""
        pid = self.pid()
        return pid is not None and pid_alive(pid)

    def log_tail(self, lines: int = 30) -> str:
        """The last lines of the server log, for error messages."""
        try:
            return "\n".join(self.logfile.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return "(no server log)"

    def write_config(self) -> None:
        """Write ``fortress.conf`` (included last by ``postgresql.conf``) from port and settings."""
        values: dict[str, SettingValue] = {
            "port": self.port,
            "listen_addresses": self.host,
            "unix_socket_directories": str(self.socket_dir),
        }
        if not self.durable:
            values.update(FAST_SETTINGS)
        values.update(self.settings)
        text = "".join(f"{key} = {_format_setting(value)}\n" for key, value in values.items())
        self.factory.write_file(self.datadir / "fortress.conf", text)

    def start(self, timeout: float = 60) -> None:
        """Start the server and wait until it accepts connections."""
        if self.is_running():
            return
        pid = self.pid()
        if pid is not None and pid_exists(pid):
            # A crashed postmaster that init has not reaped yet: its lock file is stale.
            (self.datadir / "postmaster.pid").unlink(missing_ok=True)
        argv = ["pg_ctl", "-D", str(self.datadir), "-l", str(self.logfile), "-w", "-t", str(int(timeout))]
        result = self.factory.run([*argv, "start"], check=False)
        if result.returncode != 0:
            message = f"cluster {self.name} did not start (pg_ctl: {result.stderr.strip()})"
            raise PgError(f"{message}:\n{self.log_tail()}")

    def stop(self, mode: StopMode = "fast", timeout: float = 60) -> None:
        """Stop the server with ``pg_ctl stop -m MODE``; a no-op when it is not running."""
        if not self.is_running():
            return
        result = self.factory.run(
            ["pg_ctl", "-D", str(self.datadir), "-m", mode, "-w", "-t", str(int(timeout)), "stop"],
            check=False,
        )
        if result.returncode != 0 and self.is_running():
            raise PgError(f"cluster {self.name} did not stop: {result.stderr.strip()}")

    def kill9(self, timeout: float = 10) -> None:
        """SIGKILL the postmaster (a crash) and wait for it and its orphaned children to exit."""
        pid = self.pid()
        if pid is None or not pid_alive(pid):
            return
        pids = [pid, *_children(pid)]
        os.kill(pid, signal.SIGKILL)
        # Backends notice the postmaster's death and exit; the next start needs them gone.
        for straggler in _wait_for(pids, pid_alive, timeout):
            with contextlib.suppress(ProcessLookupError):
                os.kill(straggler, signal.SIGKILL)
        _wait_for(pids, pid_alive, timeout)
        # Orphans are reaped by init, not by us; until then PostgreSQL counts a zombie as running.
        _wait_for(pids, pid_exists, 2)

    def promote(self, timeout: float = 60) -> None:
        """Promote a standby to primary and wait for the promotion to finish."""
        self.factory.run(["pg_ctl", "-D", str(self.datadir), "-w", "-t", str(int(timeout)), "promote"])

    async def connect(self, dbname: str = "postgres", user: str = SUPERUSER) -> Any:
        """Open an asyncpg connection to this cluster."""
        return await asyncpg.connect(self.dsn(dbname, user))

    async def execute(self, sql: str, *args: object, dbname: str = "postgres") -> str:
        """Run one statement (or a script, without arguments) on a fresh connection."""
        conn = await self.connect(dbname)
        try:
            return str(await conn.execute(sql, *args))
        finally:
            await conn.close()

    async def fetchval(self, sql: str, *args: object, dbname: str = "postgres") -> Any:
        """Return the first column of the first row of a query, on a fresh connection."""
        conn = await self.connect(dbname)
        try:
            return await conn.fetchval(sql, *args)
        finally:
            await conn.close()

    async def wait_for_replay(self, lsn: str, wait_seconds: float = 30) -> None:
        """On a standby, wait until WAL up to ``lsn`` has been replayed."""
        conn = await self.connect()
        try:
            deadline = time.monotonic() + wait_seconds
            while not await conn.fetchval("SELECT pg_last_wal_replay_lsn() >= $1::text::pg_lsn", lsn):
                if time.monotonic() > deadline:
                    raise PgError(f"standby {self.name} did not replay up to {lsn} within {wait_seconds}s")
                await asyncio.sleep(0.02)
        finally:
            await conn.close()


@dataclass
class FixtureStats:
    """Timings reported in pytest's terminal summary."""

    template_seconds: float | None = None
    cluster_seconds: list[float] = field(default_factory=list)
    replica_seconds: list[float] = field(default_factory=list)


STATS = FixtureStats()


class PgFactory:
    """Creates clusters from a template made by a single ``initdb``; ``close()`` removes them all."""

    def __init__(self, bindir: Path, *, template: Path | None = None) -> None:
        """Use binaries from ``bindir``; share an existing template data directory if given."""
        self.bindir = bindir
        self.base = Path(tempfile.mkdtemp(prefix=TMP_PREFIX, dir="/tmp"))
        self._owner = self._resolve_owner()
        self._chown(self.base)
        self.base.chmod(0o755)
        self._template = template
        self._owns_template = template is None
        self._clusters: list[PgCluster] = []
        self._ports: set[int] = set()
        self._lock = threading.Lock()
        self._counter = 0
        self._closed = False
        atexit.register(self.close)

    @staticmethod
    def _resolve_owner() -> tuple[int, int] | None:
        if os.geteuid() != 0:
            return None
        try:
            entry = pwd.getpwnam(OS_USER)
        except KeyError:
            raise PgError(f"running as root needs a {OS_USER!r} OS user to run PostgreSQL") from None
        return entry.pw_uid, entry.pw_gid

    def _chown(self, path: Path) -> None:
        if self._owner is not None:
            os.chown(path, *self._owner)

    def write_file(self, path: Path, text: str) -> None:
        """Write a file the PostgreSQL OS user owns."""
        path.write_text(text)
        self._chown(path)
        path.chmod(0o600)

    def run(self, argv: list[str], *, check: bool = True) -> subprocess.CompletedProcess[str]:
        """Run a PostgreSQL tool from the bindir, as the postgres OS user when root."""
        cmd = [str(self.bindir / argv[0]), *argv[1:]]
        if self._owner is not None:
            cmd = ["runuser", "-u", OS_USER, "--", *cmd]
        result = subprocess.run(
            cmd, cwd=self.base, capture_output=True, text=True, stdin=subprocess.DEVNULL, check=False
        )
        if check and result.returncode != 0:
            output = result.stderr.strip() or result.stdout.strip()
            raise PgError(f"{argv[0]} failed ({result.returncode}): {output}")
        return result

    @property
    def template(self) -> Path:
        """The template data directory, made by ``initdb`` on first use."""
        if self._template is None:
            self._template = self._make_template()
        return self._template

    def _make_template(self) -> Path:
        started = time.monotonic()
        datadir = self.base / "template"
        self.run(
            [
                "initdb",
                "-D",
                str(datadir),
                "--auth=trust",
                "-E",
                "UTF8",
                "--locale=C",
                "-U",
                SUPERUSER,
                "--no-sync",
                "--no-instructions",
            ]
        )
        self.write_file(datadir / "pg_hba.conf", PG_HBA)
        with (datadir / "postgresql.conf").open("a") as conf:
            conf.write("\n# Per-cluster port, socket and test settings.\n")
            conf.write("include_if_exists = 'fortress.conf'\n")
        STATS.template_seconds = time.monotonic() - started
        return datadir

    def _free_port(self) -> int:
        while True:
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
                sock.bind((HOST, 0))
                port = int(sock.getsockname()[1])
            with self._lock:
                if port not in self._ports:
                    self._ports.add(port)
                    return port

    def _new_cluster(self, prefix: str, settings: Mapping[str, SettingValue], durable: bool) -> PgCluster:
        with self._lock:
            if self._closed:
                raise PgError("PgFactory is closed")
            self._counter += 1
            name = f"{prefix}{self._counter}"
        root = self.base / name
        root.mkdir(mode=0o700)
        (root / "sock").mkdir(mode=0o700)
        self._chown(root)
        self._chown(root / "sock")
        cluster = PgCluster(self, name, root, self._free_port(), dict(settings), durable)
        with self._lock:
            self._clusters.append(cluster)
        return cluster

    def _start_new(self, cluster: PgCluster, started: float) -> PgCluster:
        """Start a freshly laid out cluster, moving to another port if its port was taken meanwhile."""
        for attempt in range(3):
            cluster.write_config()
            try:
                cluster.start()
                break
            except PgError:
                if attempt == 2 or "could not bind" not in cluster.log_tail():
                    raise
                cluster.port = self._free_port()
        timings = STATS.cluster_seconds if cluster.primary is None else STATS.replica_seconds
        timings.append(time.monotonic() - started)
        return cluster

    def create(self, *, durable: bool | None = None, **settings: SettingValue) -> PgCluster:
        """Create and start a cluster; ``settings`` are postgresql.conf parameters.

        ``durable`` defaults to True when settings are given (fsync and friends stay at PostgreSQL's
        defaults), False otherwise (fsync, full_page_writes and synchronous_commit off).
        """
        started = time.monotonic()
        template = self.template
        cluster = self._new_cluster("pg", settings, bool(settings) if durable is None else durable)
        self._copy(template, cluster)
        return self._start_new(cluster, started)

    def _copy(self, template: Path, cluster: PgCluster) -> None:
        cmd = ["cp", "-a", str(template), str(cluster.datadir)]
        result = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise PgError(f"copying the template failed: {result.stderr.strip()}")

    def create_replica(
        self,
        primary: PgCluster,
        *,
        durable: bool | None = None,
        application_name: str | None = None,
        **settings: SettingValue,
    ) -> PgCluster:
        """Create and start a streaming standby of ``primary`` with ``pg_basebackup -R``.

        The standby inherits the primary's settings that a hot standby needs at least as high;
        ``application_name`` (default: the cluster name) is what ``synchronous_standby_names`` matches.
        """
        started = time.monotonic()
        inherited = {k: v for k, v in primary.settings.items() if k in STANDBY_MIN_SETTINGS}
        merged = {**inherited, **settings}
        if durable is None:
            durable = primary.durable or bool(settings)
        cluster = self._new_cluster("replica", merged, durable)
        cluster.primary = primary
        conninfo = (
            f"host={primary.host} port={primary.port} user={SUPERUSER} "
            f"application_name={application_name or cluster.name}"
        )
        argv = ["pg_basebackup", "-d", conninfo, "-D", str(cluster.datadir), "-R", "-X", "stream"]
        self.run([*argv, "-c", "fast", "--no-sync"])
        return self._start_new(cluster, started)

    def destroy(self, cluster: PgCluster) -> None:
        """Stop a cluster (immediate mode, SIGKILL as a fallback) and delete its files."""
        with contextlib.suppress(PgError):
            cluster.stop("immediate", timeout=30)
        if cluster.is_running():
            cluster.kill9()
        shutil.rmtree(cluster.root, ignore_errors=True)
        with self._lock:
            if cluster in self._clusters:
                self._clusters.remove(cluster)

    def close(self) -> None:
        """Destroy every cluster and remove the factory's directory (idempotent)."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            clusters = list(self._clusters)
        for cluster in clusters:
            self.destroy(cluster)
        shutil.rmtree(self.base, ignore_errors=True)
        atexit.unregister(self.close)

    def child(self) -> PgFactory:
        """A factory sharing this one's template but owning (and cleaning up) its own clusters."""
        return PgFactory(self.bindir, template=self.template)
