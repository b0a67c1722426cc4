"""The PostgreSQL actions of a failover, one by one, on real servers: probe, fence, follow, rejoin."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest

from fortress.api.drplan import FencingMethod
from fortress.dr import actions
from fortress.dr.probe import probe
from fortress.dr.rejoin import RejoinError, rejoin
from tests.support.postgres import PgCluster, PgFactory

pytestmark = pytest.mark.postgres


async def test_probe_of_a_dead_server_says_why(pg_factory: PgFactory) -> None:
    cluster = await asyncio.to_thread(pg_factory.create)
    await asyncio.to_thread(pg_factory.destroy, cluster)
    result = await probe(cluster.dsn(), timeout=1.0)
    assert not result.reachable and result.error


async def test_read_only_fence_ends_sessions_and_survives_a_restart(pg: PgCluster) -> None:
    await pg.execute("CREATE TABLE t (x int)")
    victim = await pg.connect()
    await victim.execute("BEGIN; INSERT INTO t VALUES (1)")  # an open transaction from before the fence
    result = await actions.fence(pg.dsn(), FencingMethod.READ_ONLY)
    assert result.read_only and result.terminated >= 1 and not result.stopped
    with pytest.raises((asyncpg.InterfaceError, asyncpg.AdminShutdownError, ConnectionError)):
        await victim.execute("COMMIT")
    victim.terminate()
    with pytest.raises(asyncpg.ReadOnlySQLTransactionError):
        await pg.execute("INSERT INTO t VALUES (2)")
    await asyncio.to_thread(pg.stop)
    await asyncio.to_thread(pg.start)
    with pytest.raises(asyncpg.ReadOnlySQLTransactionError):
        await pg.execute("INSERT INTO t VALUES (3)")
    assert (await probe(pg.dsn())).read_only is True
    await actions.lift_fence(pg.dsn())
    await pg.execute("INSERT INTO t VALUES (4)")
    assert await pg.fetchval("SELECT count(*) FROM t") == 1


async def test_stop_fence_shuts_the_server_down(pg: PgCluster) -> None:
    result = await actions.fence(pg.dsn(), FencingMethod.STOP)
    assert result.stopped, result.detail
    assert not (await probe(pg.dsn(), timeout=1.0)).reachable


async def test_follow_is_idempotent_and_keeps_the_application_name(pg_factory: PgFactory) -> None:
    primary = await asyncio.to_thread(pg_factory.create)
    standby = await asyncio.to_thread(pg_factory.create_replica, primary, application_name="keepme")
    try:
        assert await actions.follow(standby.dsn(), primary.dsn()) is True  # host/port/user now from the DSN
        assert await actions.follow(standby.dsn(), primary.dsn()) is False
        conninfo = await standby.fetchval("SELECT current_setting('primary_conninfo')")
        assert "application_name=keepme" in conninfo and f"port={primary.port}" in conninfo
        with pytest.raises(actions.ActionError, match="not a standby"):
            await actions.follow(primary.dsn(), standby.dsn())
    finally:
        for cluster in (standby, primary):
            await asyncio.to_thread(pg_factory.destroy, cluster)


async def test_rejoin_falls_back_to_a_fresh_copy_when_pg_rewind_cannot_work(pg_factory: PgFactory) -> None:
    old = await asyncio.to_thread(pg_factory.create)  # no wal_log_hints, no checksums: pg_rewind refuses
    new = await asyncio.to_thread(pg_factory.create_replica, old, application_name="new")
    try:
        await old.execute("CREATE TABLE t (x int)")
        await new.wait_for_replay(await old.fetchval("SELECT pg_current_wal_insert_lsn()::text"))
        await asyncio.to_thread(old.kill9)
        await asyncio.to_thread(new.promote)
        await new.execute("INSERT INTO t VALUES (42)")
        with pytest.raises(RejoinError, match="re-cloning is not allowed"):
            await asyncio.to_thread(rejoin, old.datadir, new.dsn(), pg_factory.run, allow_reclone=False)
        result = await asyncio.to_thread(
            rejoin, old.datadir, new.dsn(), pg_factory.run, application_name="old"
        )
        assert result.method == "pg_basebackup", result
        await asyncio.to_thread(old.start)  # its own port and settings were kept
        assert await old.fetchval("SELECT pg_is_in_recovery()")
        await old.wait_for_replay(await new.fetchval("SELECT pg_current_wal_lsn()::text"))
        assert await old.fetchval("SELECT x FROM t") == 42
        assert await new.fetchval("SELECT application_name FROM pg_stat_replication") == "old"
    finally:
        for cluster in (new, old):
            await asyncio.to_thread(pg_factory.destroy, cluster)


async def test_rejoin_refuses_a_running_server(pg: PgCluster, pg_factory: PgFactory) -> None:
    with pytest.raises(RejoinError, match="is running"):
        await asyncio.to_thread(rejoin, pg.datadir, pg.dsn(), pg_factory.run)
