"""Synthetic users: Fortress against Faker and Mimesis, side by side, and COPY into PostgreSQL.

1. Generation: each library makes N user records (default 1,000,000) of the same shape, a name,
   an email, an age and a city, and streams them as tab-separated lines (Fortress makes its whole
   user record: id, first and last name, email, age, city, country, coordinates and signup time).
   Each runs in its own subprocess, so its peak RSS (VmHWM) is its own. Reported: records per CPU
   second of the generating process (the machine is shared: CPU time is what load changes least;
   wall-clock rate beside it), setup and the hashing that counts distinct values excluded (setup
   shown apart), distinct names %,
   distinct records % (a record without its id) and peak RSS. Each record's and name's 64-bit hash
   goes to the parent, which counts distinct values, the same for every library. Targets: >= 200,000
   records/s, >= 99 % distinct records, < 100 MB RSS.
2. Write throughput: the same Fortress records written with COPY into a local PostgreSQL (fsync off)
   in chunks of 50,000, as the operator writes them; records/s end to end.

Run: ``.venv/bin/python -m benchmarks.bench_synthetic`` (needs ``pip install faker mimesis``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import subprocess
import sys
import time
from typing import Any

import numpy as np

PEERS = ("fortress", "faker", "mimesis")


BATCH = 10_000


def _measure(batches: Any, n: int) -> dict[str, Any]:
    """Stream ``batches`` of (names, records) and time them; the records' and names' 64-bit hashes go
    to standard output (the parent counts distinct values), so this process holds none of them."""
    out = sys.stdout.buffer
    size = records = 0
    hashing = hashing_cpu = 0.0
    started, cpu = time.perf_counter(), time.process_time()
    for names, lines in batches:
        mark, mark_cpu = time.perf_counter(), time.process_time()
        pairs = np.column_stack(
            [
                np.fromiter(map(hash, names), dtype=np.int64, count=len(names)),
                np.fromiter(map(hash, lines), dtype=np.int64, count=len(lines)),
            ]
        )
        out.write(pairs.tobytes())
        size += sum(map(len, lines))
        records += len(lines)
        hashing += time.perf_counter() - mark
        hashing_cpu += time.process_time() - mark_cpu
    elapsed = time.perf_counter() - started - hashing  # the counting is not the library's work
    cpu = time.process_time() - cpu - hashing_cpu
    out.flush()
    return {
        "records": records,
        "seconds": elapsed,
        "wall_rate": records / elapsed,
        "cpu_seconds": cpu,
        "rate": records / cpu,
        "bytes": size,
    }


def _batched(records: Any, n: int) -> Any:
    names: list[str] = []
    lines: list[str] = []
    for name, line in records:
        names.append(name)
        lines.append(line)
        if len(lines) == BATCH:
            yield names, lines
            names, lines = [], []
    if lines:
        yield names, lines


def run_fortress(n: int, seed: int) -> dict[str, Any]:
    from fortress.synthetic import render
    from fortress.synthetic.generate import Recipe, blocks, generator

    setup = time.perf_counter()
    gen = generator(Recipe("users", n, seed=seed))
    setup = time.perf_counter() - setup

    def batches() -> Any:
        for block in blocks(gen):
            lines = render.text(block).splitlines()
            names = [
                f"{f} {la}" for f, la in zip(block.fields[1].tolist(), block.fields[2].tolist(), strict=True)
            ]
            yield names, [line.split("\t", 1)[1] for line in lines]  # the record without its id

    return {"setup": setup, **_measure(batches(), n)}


def run_faker(n: int, seed: int) -> dict[str, Any]:
    from faker import Faker

    setup = time.perf_counter()
    fake = Faker("en_US")
    Faker.seed(seed)
    setup = time.perf_counter() - setup

    def lines() -> Any:
        for _ in range(n):
            first, last = fake.first_name(), fake.last_name()
            email = fake.email()
            age = fake.pyint(18, 90)
            city = fake.city()
            yield f"{first} {last}", f"{first}\t{last}\t{email}\t{age}\t{city}"

    return {"setup": setup, **_measure(_batched(lines(), n), n)}


def run_mimesis(n: int, seed: int) -> dict[str, Any]:
    from mimesis import Address, Locale, Person

    setup = time.perf_counter()
    person, address = Person(Locale.EN, seed=seed), Address(Locale.EN, seed=seed)
    setup = time.perf_counter() - setup

    def lines() -> Any:
        for _ in range(n):
            first, last = person.first_name(), person.last_name()
            email = person.email(unique=False)
            age = person.random.randint(18, 90)
            city = address.city()
            yield f"{first} {last}", f"{first}\t{last}\t{email}\t{age}\t{city}"

    return {"setup": setup, **_measure(_batched(lines(), n), n)}


def peak_rss_mb() -> float:
    """This process's peak resident set (VmHWM: ru_maxrss would include the parent's, kept across exec)."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def child(peer: str, n: int, seed: int) -> None:
    result = {"fortress": run_fortress, "faker": run_faker, "mimesis": run_mimesis}[peer](n, seed)
    result["rss_mb"] = peak_rss_mb()
    print(json.dumps(result), file=sys.stderr)


def in_subprocess(peer: str, n: int, seed: int) -> dict[str, Any]:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "benchmarks.bench_synthetic",
            "--child",
            peer,
            "--count",
            str(n),
            "--seed",
            str(seed),
        ],
        capture_output=True,
        check=True,
    )
    result = dict(json.loads(done.stderr.decode().strip().splitlines()[-1]))
    hashes = np.frombuffer(done.stdout, dtype=np.int64).reshape(-1, 2)  # (name, record) per record
    result["unique_names"] = len(np.unique(hashes[:, 0])) / len(hashes)
    result["unique_records"] = len(np.unique(hashes[:, 1])) / len(hashes)
    return result


async def copy_rate(n: int, seed: int, chunk: int = 50_000) -> float:
    """Records/s of generating and COPYing ``n`` users into a local PostgreSQL, as the operator does."""
    import asyncpg

    from fortress.adapters.pgbin import find_bindir
    from fortress.synthetic import render, store
    from fortress.synthetic.generate import Recipe, chunks, generator
    from fortress_dev.postgres import PgFactory

    bindir = find_bindir()
    if bindir is None:
        raise RuntimeError("no PostgreSQL binaries (initdb, pg_ctl) on this machine")
    factory = PgFactory(bindir)
    cluster = await asyncio.to_thread(factory.create)
    try:
        conn = await asyncpg.connect(cluster.dsn())
        gen = generator(Recipe("users", n, seed=seed))
        columns = [(c.name, c.sql) for c in gen.columns]
        await store.ensure_staging(conn, "bench", columns, store.Marker("bench/bench", "k"))
        names = [c for c, _ in columns]
        started = time.perf_counter()
        parts = chunks(gen, chunk)

        def render_next() -> bytes | None:
            found = next(parts, None)
            return None if found is None else "".join(render.text(b) for b in found).encode()

        upcoming = asyncio.ensure_future(asyncio.to_thread(render_next))
        while (data := await upcoming) is not None:
            upcoming = asyncio.ensure_future(asyncio.to_thread(render_next))
            await store.copy(conn, "bench", names, data)
        elapsed = time.perf_counter() - started
        written = await conn.fetchval('SELECT count(*) FROM fortress_synthetic."bench"')
        await conn.close()
        assert written == n, written
        return n / elapsed
    finally:
        await asyncio.to_thread(factory.destroy, cluster)
        await asyncio.to_thread(factory.close)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--count", type=int, default=1_000_000, help="records per library")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--child", choices=PEERS, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--no-postgres", action="store_true", help="skip the COPY measurement")
    args = parser.parse_args()
    if args.child:
        child(args.child, args.count, args.seed)
        return
    print(f"Synthetic users, {args.count:,} records each, one subprocess per library")
    results = {}
    for peer in PEERS:
        results[peer] = in_subprocess(peer, args.count, args.seed)
        r = results[peer]
        print(
            f"  {peer}: {r['rate']:,.0f} records per CPU second ({r['cpu_seconds']:.1f}s CPU, "
            f"{r['seconds']:.1f}s wall, setup {r['setup']:.2f}s)",
            flush=True,
        )
    header = (
        f"{'library':<10}{'records/s CPU':>14}{'wall':>10}{'setup s':>9}{'names %':>9}{'records %':>11}"
        f"{'peak RSS MB':>13}{'fortress is':>14}"
    )
    print()
    print(header)
    print("-" * len(header))
    ours = results["fortress"]["rate"]
    for peer, r in results.items():
        ratio = "-" if peer == "fortress" else f"{ours / r['rate']:.1f}x faster"
        print(
            f"{peer:<10}{r['rate']:>14,.0f}{r['wall_rate']:>10,.0f}{r['setup']:>9.2f}"
            f"{100 * r['unique_names']:>9.2f}{100 * r['unique_records']:>11.2f}"
            f"{r['rss_mb']:>13.1f}{ratio:>14}"
        )
    f = results["fortress"]
    print()
    print(
        f"targets: >= 200,000 records per CPU second: {'met' if f['rate'] >= 200_000 else 'NOT met'}; "
        f">= 99 % distinct records: {'met' if f['unique_records'] >= 0.99 else 'NOT met'}; "
        f"< 100 MB peak RSS: {'met' if f['rss_mb'] < 100 else 'NOT met'}"
    )
    if not args.no_postgres:
        rate = asyncio.run(copy_rate(args.count, args.seed))
        print(
            f"COPY into PostgreSQL (fsync off, chunks of 50,000, generation included): {rate:,.0f} records/s"
        )


if __name__ == "__main__":
    main()
