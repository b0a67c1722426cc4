"""The PostgreSQL fixture itself: settings, streaming replicas, crashes and cleanup."""

from __future__ import annotations

import asyncio
import socket

import asyncpg
import pytest

from fortress_dev.postgres import PgCluster, PgFactory

pytestmark = pytest.mark.postgres


async def test_fresh_cluster_is_fast_and_not_durable(pg: PgCluster) -> None:
    assert await pg.fetchval("SELECT current_setting('fsync')") == "off"
    assert await pg.fetchval("SELECT current_setting('listen_addresses')") == "127.0.0.1"
    assert await pg.fetchval("SELECT current_setting('server_encoding')") == "UTF8"
    assert await pg.fetchval("SELECT current_setting('lc_collate')") == "C"
    socket_dir = await pg.fetchval("SELECT current_setting('unix_socket_directories')")
    assert socket_dir == str(pg.socket_dir)
    assert (pg.socket_dir / f".s.PGSQL.{pg.port}").exists()


async def test_settings_are_applied_and_keep_durability(pg_factory: PgFactory) -> None:
    cluster = await asyncio.to_thread(pg_factory.create, max_prepared_transactions=10, work_mem="8MB")
    try:
        assert await cluster.fetchval("SELECT current_setting('max_prepared_transactions')") == "10"
        assert await cluster.fetchval("SELECT current_setting('work_mem')") == "8MB"
        assert await cluster.fetchval("SELECT current_setting('fsync')") == "on"
    finally:
        await asyncio.to_thread(pg_factory.destroy, cluster)


async def test_streaming_replica(pg_factory: PgFactory) -> None:
    primary = await asyncio.to_thread(pg_factory.create, max_prepared_transactions=5)
    replica = await asyncio.to_thread(pg_factory.create_replica, primary)
    try:
        assert replica.primary is primary
        assert await replica.fetchval("SELECT pg_is_in_recovery()")
        assert await replica.fetchval("SELECT current_setting('max_prepared_transactions')") == "5"

        await primary.execute("CREATE TABLE t (id int PRIMARY KEY, note text)")
        await primary.execute("INSERT INTO t VALUES (1, 'written on the primary')")
        await replica.wait_for_replay(await primary.fetchval("SELECT pg_current_wal_lsn()::text"))
        assert await replica.fetchval("SELECT note FROM t WHERE id = 1") == "written on the primary"
        with pytest.raises(asyncpg.ReadOnlySQLTransactionError):
            await replica.execute("INSERT INTO t VALUES (2, 'nope')")
        assert await primary.fetchval("SELECT application_name FROM pg_stat_replication") == replica.name

        # Failover: crash the primary, promote the standby, write to it.
        await asyncio.to_thread(primary.kill9)
        await asyncio.to_thread(replica.promote)
        assert not await replica.fetchval("SELECT pg_is_in_recovery()")
        await replica.execute("INSERT INTO t VALUES (2, 'written after failover')")
    finally:
        await asyncio.to_thread(pg_factory.destroy, replica)
        await asyncio.to_thread(pg_factory.destroy, primary)


async def test_synchronous_replica(pg_factory: PgFactory) -> None:
    primary = await asyncio.to_thread(
        pg_factory.create, synchronous_standby_names="sync1", synchronous_commit="remote_apply"
    )
    replica = await asyncio.to_thread(pg_factory.create_replica, primary, application_name="sync1")
    try:
        # The walsender reports "sync" once the standby has caught up and streams.
        for _ in range(500):
            if await primary.fetchval("SELECT sync_state FROM pg_stat_replication") == "sync":
                break
            await asyncio.sleep(0.02)
        assert await primary.fetchval("SELECT sync_state FROM pg_stat_replication") == "sync"
        await primary.execute("CREATE TABLE t AS SELECT 1 AS id")
        # remote_apply: visible on the standby as soon as the commit returns.
        assert await replica.fetchval("SELECT count(*) FROM t") == 1
    finally:
        await asyncio.to_thread(pg_factory.destroy, replica)
        await asyncio.to_thread(pg_factory.destroy, primary)


async def test_kill9_restart_and_cleanup(pg_factory: PgFactory) -> None:
    factory = pg_factory.child()
    try:
        cluster = await asyncio.to_thread(factory.create)
        await cluster.execute("CREATE TABLE survived AS SELECT 42 AS answer")
        await cluster.execute("CHECKPOINT")
        pid = cluster.pid()
        await asyncio.to_thread(cluster.kill9)
        assert not cluster.is_running()
        with pytest.raises(OSError):
            await cluster.execute("SELECT 1")

        # Crash recovery on restart.
        await asyncio.to_thread(cluster.start)
        assert cluster.pid() != pid
        assert await cluster.fetchval("SELECT answer FROM survived") == 42

        await asyncio.to_thread(cluster.kill9)
        root, port = cluster.root, cluster.port
    finally:
        await asyncio.to_thread(factory.close)
    assert not root.exists()
    assert not factory.base.exists()
    assert pg_factory.template.exists()  # the shared template belongs to the parent factory
    with socket.socket() as sock:
        assert sock.connect_ex(("127.0.0.1", port)) != 0


async def test_cleanup_stops_running_clusters(pg_factory: PgFactory) -> None:
    factory = pg_factory.child()
    primary = await asyncio.to_thread(factory.create)
    replica = await asyncio.to_thread(factory.create_replica, primary)
    pids = [primary.pid(), replica.pid()]
    await asyncio.to_thread(factory.close)
    assert not primary.is_running() and not replica.is_running()
    assert not factory.base.exists()
    assert all(pid is not None for pid in pids)
    with pytest.raises(Exception, match="closed"):
        await asyncio.to_thread(factory.create)
