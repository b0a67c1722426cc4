"""Credit ledger event store vs the ``eventsourcing`` library's PostgreSQL recorder, side by side.

Both run on ONE local PostgreSQL cluster started with durable settings (fsync, synchronous_commit and
full_page_writes on), each in its own database. Measured: single-event append throughput (one event
per transaction; one writer, and 8 concurrent writers on distinct streams), batched append throughput
(2,000 events per call), read latency p50/p99, and replay of a 1,000-event stream with and without a
snapshot (both fold the same events with the same ``evolve``; only the storage differs). Each of
``--rounds`` rounds runs both sides on fresh databases, alternating which goes first; the table shows
the median and the range, and the ratios are of the medians.

Run: ``.venv/bin/python -m benchmarks.bench_ledger`` (needs ``pip install eventsourcing psycopg``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import asyncpg

from fortress.adapters import migrations
from fortress.adapters.pgbin import find_bindir
from fortress.adapters.postgres import open_pool
from fortress.ledger import account
from fortress.ledger import events as ev
from fortress.ledger.events import Event
from fortress.ledger.projections import BalanceProjector
from fortress.ledger.store import AppendRequest, EventStore
from fortress_dev.postgres import PgFactory

DURABLE = {"fsync": True, "synchronous_commit": True, "full_page_writes": True}
PURCHASE = Event(ev.CREDITS_PURCHASED, {"amount": 5})
PURCHASE_BYTES = json.dumps(dict(PURCHASE.data)).encode()


def pct(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


# --- ours ---------------------------------------------------------------------------------------


async def ours(dsn: str, args: argparse.Namespace) -> dict[str, float]:
    await migrations.up(dsn, migrations.default_migrations_dir())
    pool = await open_pool(dsn, min_size=9, max_size=9)  # the pool the operator and the API use
    store = EventStore(pool, snapshot_interval=100)
    out: dict[str, float] = {}
    # warm up (plans, relcache, partitions)
    await store.append("warm", 0, [PURCHASE])
    await store.append_batch([AppendRequest(f"warm-b{n}", 0, [PURCHASE] * 20) for n in range(10)])

    n = args.single
    started = time.perf_counter()
    for version in range(n):
        await store.append("single", version, [PURCHASE])
    out["single_1"] = n / (time.perf_counter() - started)

    async def writer(w: int) -> None:
        for version in range(n // 8):
            await store.append(f"conc-{w}", version, [PURCHASE])

    started = time.perf_counter()
    await asyncio.gather(*(writer(w) for w in range(8)))
    out["single_8"] = (n // 8) * 8 / (time.perf_counter() - started)

    batches, per = args.batches, args.batch_size
    streams = per // 20
    started = time.perf_counter()
    for b in range(batches):
        await store.append_batch([AppendRequest(f"b{b}-{s}", 0, [PURCHASE] * 20) for s in range(streams)])
    out["batch"] = batches * per / (time.perf_counter() - started)

    await BalanceProjector(pool, batch_size=5000).catch_up()
    tenants = [r[0] for r in await pool.fetch("SELECT tenant_id FROM credit_balances_read_model LIMIT 200")]
    read_sql = (
        "SELECT tenant_id, balance, reserved, available, version, last_position, updated_at "
        "FROM credit_balances_read_model WHERE tenant_id = $1"
    )
    samples = []
    async with pool.acquire() as conn:
        for i in range(args.reads):
            t0 = time.perf_counter()
            await conn.fetchrow(read_sql, tenants[i % len(tenants)])
            samples.append(time.perf_counter() - t0)
    out["read_p50"], out["read_p99"] = pct(samples, 0.5) * 1e3, pct(samples, 0.99) * 1e3

    # a 1,000-event stream; snapshots every 100 up to version 900 (so a replay folds 100 events)
    state = account.INITIAL
    requests = []
    for chunk in range(10):
        events = [PURCHASE] * 100
        after = account.replay(events, state)
        requests.append(AppendRequest("replay", state.version, events, snapshot=after if chunk < 9 else None))
        state = after
    for request in requests:
        await store.append_batch([request])
    for label, use in (("replay_nosnap", False), ("replay_snap", True)):
        times = []
        for _ in range(args.replays):
            t0 = time.perf_counter()
            loaded = await store.load("replay", use_snapshots=use)
            times.append(time.perf_counter() - t0)
            assert loaded.state.version == 1000 and loaded.state.balance == 5000
        out[label] = statistics.median(times) * 1e3
    await pool.close()
    return out


# --- eventsourcing ------------------------------------------------------------------------------


def theirs(port: int, dbname: str, args: argparse.Namespace) -> dict[str, float]:
    from eventsourcing.persistence import StoredEvent
    from eventsourcing.postgres import (
        PostgresAggregateRecorder,
        PostgresApplicationRecorder,
        PostgresDatastore,
    )

    datastore = PostgresDatastore(dbname, "127.0.0.1", port, "postgres", "", pool_size=9, max_overflow=0)
    recorder = PostgresApplicationRecorder(datastore, events_table_name="stored_events")
    recorder.create_table()
    snapshots = PostgresAggregateRecorder(datastore, events_table_name="snapshots")
    snapshots.create_table()
    out: dict[str, float] = {}

    def stored(originator: uuid.UUID, version: int, state: bytes = PURCHASE_BYTES) -> Any:
        return StoredEvent(originator, version, ev.CREDITS_PURCHASED, state)

    recorder.insert_events([stored(uuid.uuid4(), 1)])
    n = args.single
    one = uuid.uuid4()
    started = time.perf_counter()
    for version in range(1, n + 1):
        recorder.insert_events([stored(one, version)])
    out["single_1"] = n / (time.perf_counter() - started)

    def writer(_: int) -> None:
        own = uuid.uuid4()
        for version in range(1, n // 8 + 1):
            recorder.insert_events([stored(own, version)])

    started = time.perf_counter()
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(writer, range(8)))
    out["single_8"] = (n // 8) * 8 / (time.perf_counter() - started)

    batches, per = args.batches, args.batch_size
    streams = per // 20
    started = time.perf_counter()
    for _ in range(batches):
        batch = [stored(o, v) for o in (uuid.uuid4() for _ in range(streams)) for v in range(1, 21)]
        recorder.insert_events(batch)
    out["batch"] = batches * per / (time.perf_counter() - started)

    # no read model in the library: its nearest query, the latest event of one stream, for reference
    ids = [uuid.uuid4() for _ in range(200)]
    recorder.insert_events([stored(i, 1) for i in ids])
    samples = []
    for i in range(args.reads):
        t0 = time.perf_counter()
        recorder.select_events(ids[i % len(ids)], desc=True, limit=1)
        samples.append(time.perf_counter() - t0)
    out["read_p50"], out["read_p99"] = pct(samples, 0.5) * 1e3, pct(samples, 0.99) * 1e3

    stream = uuid.uuid4()
    for chunk in range(10):
        recorder.insert_events([stored(stream, chunk * 100 + v) for v in range(1, 101)])
    state = account.replay([PURCHASE] * 900)
    snapshots.insert_events([StoredEvent(stream, 900, "Snapshot", json.dumps(state.to_json()).encode())])

    def fold(rows: Any, start: account.AccountState) -> account.AccountState:
        return account.replay((Event(r.topic, json.loads(r.state)) for r in rows), start)

    def nosnap() -> account.AccountState:
        return fold(recorder.select_events(stream), account.INITIAL)

    def withsnap() -> account.AccountState:
        snap = snapshots.select_events(stream, desc=True, limit=1)[0]
        start = account.with_version(
            account.AccountState.from_json(json.loads(snap.state)), snap.originator_version
        )
        return fold(recorder.select_events(stream, gt=snap.originator_version), start)

    for label, fn in (("replay_nosnap", nosnap), ("replay_snap", withsnap)):
        times = []
        for _ in range(args.replays):
            t0 = time.perf_counter()
            result = fn()
            times.append(time.perf_counter() - t0)
            assert result.version == 1000 and result.balance == 5000
        out[label] = statistics.median(times) * 1e3
    datastore.close()
    return out


ROWS: list[tuple[str, str, str, Callable[[float], str]]] = [
    ("single_1", "single-event appends, 1 writer", "events/s", lambda v: f"{v:,.0f}"),
    ("single_8", "single-event appends, 8 writers", "events/s", lambda v: f"{v:,.0f}"),
    ("batch", "batched appends (2,000/call)", "events/s", lambda v: f"{v:,.0f}"),
    ("read_p50", "read p50 (ours: read model)", "ms", lambda v: f"{v:.3f}"),
    ("read_p99", "read p99 (ours: read model)", "ms", lambda v: f"{v:.3f}"),
    ("replay_nosnap", "replay 1,000 events, no snapshot", "ms", lambda v: f"{v:.2f}"),
    ("replay_snap", "replay 1,000 events, snapshot@900", "ms", lambda v: f"{v:.2f}"),
]
HIGHER_IS_BETTER = {"single_1", "single_8", "batch"}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--single", type=int, default=1600, help="single appends per run (default 1600)")
    parser.add_argument("--batches", type=int, default=15, help="batched calls (default 15)")
    parser.add_argument("--batch-size", type=int, default=2000, help="events per batched call (default 2000)")
    parser.add_argument("--reads", type=int, default=3000, help="read queries (default 3000)")
    parser.add_argument("--replays", type=int, default=30, help="replays per variant (default 30)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds, each on fresh databases (default 3)")
    args = parser.parse_args(argv)
    try:
        import eventsourcing  # noqa: F401
        import psycopg  # noqa: F401
    except ImportError:
        print("needs the peer: pip install eventsourcing psycopg", file=sys.stderr)
        return 2
    bindir = find_bindir()
    if bindir is None:
        print("PostgreSQL binaries not found (initdb, pg_ctl)", file=sys.stderr)
        return 2
    factory = PgFactory(bindir)
    try:
        pg = factory.create(durable=True, **DURABLE)

        async def prepare() -> dict[str, str]:
            conn = await asyncpg.connect(pg.dsn())
            try:
                for round_no in range(args.rounds):
                    await conn.execute(f"CREATE DATABASE ledger_{round_no}")
                    await conn.execute(f"CREATE DATABASE eventsourcing_{round_no}")
                names = (
                    "fsync",
                    "synchronous_commit",
                    "full_page_writes",
                    "wal_sync_method",
                    "server_version",
                )
                return {n: str(await conn.fetchval(f"SHOW {n}")) for n in names}
            finally:
                await conn.close()

        settings = asyncio.run(prepare())
        print(
            f"PostgreSQL {settings['server_version']} on 127.0.0.1:{pg.port}, durable settings: "
            f"fsync={settings['fsync']}, synchronous_commit={settings['synchronous_commit']}, "
            f"full_page_writes={settings['full_page_writes']}, wal_sync_method={settings['wal_sync_method']}"
        )
        from importlib.metadata import version

        peer = f"eventsourcing {version('eventsourcing')} PostgresApplicationRecorder"
        print(f"peer: {peer}, psycopg {version('psycopg')}")
        started = time.perf_counter()
        rounds: dict[str, list[dict[str, float]]] = {"ours": [], "theirs": []}

        def run_theirs(round_no: int) -> None:
            holder: dict[str, dict[str, float]] = {}
            thread = threading.Thread(
                target=lambda: holder.update(theirs=theirs(pg.port, f"eventsourcing_{round_no}", args))
            )
            thread.start()
            thread.join()
            rounds["theirs"].append(holder["theirs"])

        for round_no in range(args.rounds):  # alternate who goes first, fresh databases each round
            if round_no % 2:
                run_theirs(round_no)
            rounds["ours"].append(asyncio.run(ours(pg.dsn(f"ledger_{round_no}"), args)))
            if not round_no % 2:
                run_theirs(round_no)
        result = {
            side: {key: statistics.median(r[key] for r in runs) for key in runs[0]}
            for side, runs in rounds.items()
        }
        print(f"measured in {time.perf_counter() - started:.1f}s; median of {args.rounds} rounds (min-max)\n")
        print(f"{'metric':<36}{'unit':>9}{'fortress':>24}{'eventsourcing':>24}{'ratio':>8}")
        for key, label, unit, fmt in ROWS:
            a, b = result["ours"][key], result["theirs"][key]
            ratio = a / b if key in HIGHER_IS_BETTER else b / a

            def cell(side: str, mid: float, fmt: Callable[[float], str] = fmt, key: str = key) -> str:
                values = [r[key] for r in rounds[side]]
                return f"{fmt(mid)} ({fmt(min(values))}-{fmt(max(values))})"

            print(f"{label:<36}{unit:>9}{cell('ours', a):>24}{cell('theirs', b):>24}{ratio:>7.2f}x")
        print("\nratio > 1: fortress is better (throughput ours/theirs; latency theirs/ours).")
        print("eventsourcing has no read model: its read row is its latest-event query (reference only).")
        targets = [
            (
                "single appends >= 2x eventsourcing (1 writer)",
                result["ours"]["single_1"] / result["theirs"]["single_1"] >= 2,
            ),
            (
                "single appends >= 2x eventsourcing (8 writers)",
                result["ours"]["single_8"] / result["theirs"]["single_8"] >= 2,
            ),
            ("batched >= 25,000 events/s", result["ours"]["batch"] >= 25_000),
            ("read p99 < 2 ms", result["ours"]["read_p99"] < 2),
            ("replay 1,000 events < 20 ms with a snapshot", result["ours"]["replay_snap"] < 20),
        ]
        for text, met in targets:
            print(f"  target {text}: {'met' if met else 'NOT met'}")
        return 0
    finally:
        factory.close()


if __name__ == "__main__":
    sys.exit(main())
