"""What the operator does to a region's PostgreSQL: fence, promote, repoint (asyncpg).

Every action opens its own short-lived connection with a timeout and is idempotent: fencing a
fenced server, promoting a primary or pointing a standby where it already points changes nothing.
The SQL is the operator's own; no caller-supplied text reaches it except values quoted as literals.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg

from fortress.api.drplan import FencingMethod
from fortress.core.errors import describe
from fortress.core.time import now
from fortress.dr.conninfo import parse_conninfo, replication_conninfo
from fortress.dr.judge import caught_up
from fortress.dr.probe import connect
from fortress.dr.topology import parse_lsn

Clock = Callable[[], dt.datetime]

TIMELINE_SQL = "SELECT ('x' || substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8))::bit(32)::int"


def literal(text: str) -> str:
    """A SQL string literal (standard_conforming_strings): for ALTER SYSTEM, which takes no $1."""
    if "\x00" in text:
        raise ValueError("NUL byte in a setting value")
    return "'" + text.replace("'", "''") + "'"


class ActionError(RuntimeError):
    """An action on a region failed; the message says which and why."""


@dataclass(frozen=True)
class FenceResult:
    read_only: bool  # default_transaction_read_only is on for new sessions
    terminated: int  # client sessions ended
    stopped: bool  # the server was shut down (fencing: stop)
    detail: str


async def fence(dsn: str, method: str = FencingMethod.READ_ONLY, timeout: float = 5.0) -> FenceResult:
    """Make a primary refuse writes: read-only by default (kept across restarts, as ALTER SYSTEM is),
    then end every client session so no transaction started before the fence can still commit;
    with ``stop``, then shut the server down (fast)."""
    conn = await connect(dsn, timeout)
    try:
        await conn.execute("ALTER SYSTEM SET default_transaction_read_only = on")
        await conn.execute("SELECT pg_reload_conf()")
    finally:
        await conn.close(timeout=timeout)
    deadline = time.monotonic() + timeout
    while True:  # a session forked after the postmaster re-read its configuration sees the fence
        conn = await connect(dsn, timeout)
        try:
            if await conn.fetchval("SELECT current_setting('default_transaction_read_only') = 'on'"):
                terminated = await conn.fetchval(
                    "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) FROM pg_stat_activity "
                    "WHERE pid <> pg_backend_pid() AND backend_type = 'client backend'"
                )
                break
        finally:
            await conn.close(timeout=timeout)
        if time.monotonic() > deadline:
            raise ActionError("fence: default_transaction_read_only did not take effect after reload")
        await asyncio.sleep(0.05)
    if method != FencingMethod.STOP:
        return FenceResult(True, int(terminated), False, f"read-only, {terminated} session(s) ended")
    stopped, detail = await _stop(dsn, timeout)
    return FenceResult(True, int(terminated), stopped, detail)


async def _stop(dsn: str, timeout: float) -> tuple[bool, str]:
    """Fast shutdown via SIGINT to the postmaster (needs superuser or pg_execute_server_program)."""
    conn = await connect(dsn, timeout)
    try:
        pid = int(await conn.fetchval("SELECT split_part(pg_read_file('postmaster.pid'), E'\\n', 1)"))
        await conn.execute(f"COPY (SELECT 1) TO PROGRAM 'kill -INT {pid}'")
    except (asyncpg.InsufficientPrivilegeError, asyncpg.UndefinedFunctionError) as error:
        return False, f"read-only; could not stop the server: {describe(error)}"
    except (
        asyncpg.ConnectionDoesNotExistError,
        asyncpg.AdminShutdownError,
        asyncpg.ExternalRoutineError,  # the shutdown may end the kill program itself
        asyncpg.InterfaceError,
        OSError,
    ):
        pass  # the shutdown ended our own session: whether it stopped is checked below
    finally:
        if not conn.is_closed():
            conn.terminate()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            probe_conn = await connect(dsn, min(timeout, 1.0))
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError):
            return True, "read-only, then stopped"
        await probe_conn.close()
        await asyncio.sleep(0.1)
    return False, "read-only; the server did not stop in time"


async def lift_fence(dsn: str, timeout: float = 5.0) -> None:
    """Undo a read-only fence (an abandoned switchover hands the primary its writes back)."""
    conn = await connect(dsn, timeout)
    try:
        await conn.execute("ALTER SYSTEM RESET default_transaction_read_only")
        await conn.execute("SELECT pg_reload_conf()")
    finally:
        await conn.close(timeout=timeout)


@dataclass(frozen=True)
class Promotion:
    writable_at: dt.datetime  # when a write transaction first committed
    timeline: int
    switch_lsn: int | None  # where the new timeline forked off (from its history file)
    was_primary: bool  # already promoted (a resumed operation)


async def promote(dsn: str, timeout: float = 30.0, clock: Clock = now) -> Promotion:
    """``pg_promote()`` and wait until the server commits a write transaction."""
    conn = await connect(dsn, timeout)
    try:
        was_primary = not await conn.fetchval("SELECT pg_is_in_recovery()")
        if not was_primary and not await conn.fetchval("SELECT pg_promote(true, $1)", int(max(1, timeout))):
            raise ActionError(f"pg_promote() did not finish within {timeout:.0f}s")
        # A fence left by an earlier life as primary must not make the new primary read-only.
        await conn.execute("ALTER SYSTEM RESET default_transaction_read_only")
        await conn.execute("SELECT pg_reload_conf()")
        timeline = int(await conn.fetchval(TIMELINE_SQL))
        switch_lsn = await _switch_lsn(conn, timeline)
    finally:
        await conn.close(timeout=timeout)
    writable_at = await wait_writable(dsn, timeout, clock)
    return Promotion(writable_at, timeline, switch_lsn, was_primary)


async def _switch_lsn(conn: Any, timeline: int) -> int | None:
    if timeline <= 1:
        return None
    try:
        text = await conn.fetchval("SELECT pg_read_file($1)", f"pg_wal/{timeline:08X}.history")
    except asyncpg.PostgresError:
        return None  # no privilege to read it: the pre-promotion position stands in
    lines = [line.split("\t") for line in str(text).splitlines() if line.strip() and not line.startswith("#")]
    try:
        return parse_lsn(lines[-1][1]) if lines else None
    except (IndexError, ValueError):
        return None


async def wait_writable(dsn: str, timeout: float = 10.0, clock: Clock = now) -> dt.datetime:
    """Wait until a new session commits a write (as applications' sessions would); return when."""
    deadline = time.monotonic() + timeout
    last: BaseException | None = None
    while time.monotonic() < deadline:
        try:
            conn = await connect(dsn, min(timeout, 2.0))
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError) as error:
            last = error
        else:
            try:
                async with conn.transaction():
                    await conn.execute("SET LOCAL synchronous_commit = local")
                    await conn.execute("CREATE TEMP TABLE fortress_write_probe (x int) ON COMMIT DROP")
                return clock()
            except asyncpg.PostgresError as error:
                last = error
            finally:
                await conn.close(timeout=timeout)
        await asyncio.sleep(0.02)
    raise ActionError(f"the new primary did not accept a write within {timeout:.0f}s: {last}")


async def follow(standby_dsn: str, upstream_dsn: str, timeout: float = 5.0) -> bool:
    """Point a standby at ``upstream_dsn`` (ALTER SYSTEM SET primary_conninfo + reload); True when
    it changed. Keeps the standby's application_name, which synchronous_standby_names matches."""
    conn = await connect(standby_dsn, timeout)
    try:
        if not await conn.fetchval("SELECT pg_is_in_recovery()"):
            raise ActionError("follow: the server is not a standby")
        current = await conn.fetchval("SELECT current_setting('primary_conninfo')")
        desired = replication_conninfo(current or None, upstream_dsn)
        if current and parse_conninfo(current) == parse_conninfo(desired):
            return False
        await conn.execute(f"ALTER SYSTEM SET primary_conninfo = {literal(desired)}")
        await conn.execute("SELECT pg_reload_conf()")
        return True
    finally:
        await conn.close(timeout=timeout)


async def set_synchronous(dsn: str, standby_names: Sequence[str], timeout: float = 5.0) -> str:
    """Require one of ``standby_names`` to confirm each commit; none: asynchronous (never block)."""
    if standby_names:
        quoted = ", ".join('"' + n.replace('"', '""') + '"' for n in standby_names)
        value = f"ANY 1 ({quoted})"
        statement = f"ALTER SYSTEM SET synchronous_standby_names = {literal(value)}"
    else:
        value = ""
        statement = "ALTER SYSTEM RESET synchronous_standby_names"
    conn = await connect(dsn, timeout)
    try:
        await conn.execute(statement)
        await conn.execute("SELECT pg_reload_conf()")
    finally:
        await conn.close(timeout=timeout)
    return value


async def checkpoint(dsn: str, timeout: float = 30.0) -> None:
    """CHECKPOINT, so the new timeline is in pg_control (pg_rewind reads it from there)."""
    conn = await connect(dsn, timeout)
    try:
        await conn.execute("CHECKPOINT")
    finally:
        await conn.close(timeout=timeout)


async def replay_position(dsn: str, timeout: float) -> tuple[int | None, int | None]:
    """(insert LSN if primary: every commit acknowledged so far; replay LSN if standby)."""
    conn = await connect(dsn, timeout)
    try:
        row = await conn.fetchrow(
            "SELECT CASE WHEN pg_is_in_recovery() THEN NULL ELSE pg_current_wal_insert_lsn()::text END "
            "AS cur, pg_last_wal_replay_lsn()::text AS replay"
        )
    finally:
        await conn.close(timeout=timeout)
    return parse_lsn(row["cur"]), parse_lsn(row["replay"])


async def wait_caught_up(primary_dsn: str, target_dsn: str, wait_seconds: float, timeout: float = 5.0) -> int:
    """Switchover gate: wait until the target replayed the (fenced) primary's current LSN; return it."""
    deadline = time.monotonic() + wait_seconds
    while True:
        primary_lsn, _ = await replay_position(primary_dsn, timeout)
        _, replayed = await replay_position(target_dsn, timeout)
        if caught_up(primary_lsn, replayed):
            assert primary_lsn is not None
            return primary_lsn
        if time.monotonic() > deadline:
            raise ActionError(
                f"the target did not catch up within {wait_seconds:.0f}s "
                f"(primary at {primary_lsn}, target replayed {replayed})"
            )
        await asyncio.sleep(0.02)
