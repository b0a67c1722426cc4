"""Demo step: a few hundred credit commands through the HTTP API, and the read model converging.

The API runs in-process on a free loopback port (token file in a temp dir) against the demo's
database; the operator's projector daemon of CreditLedger ``credits`` (whose Secret points at the
same database) projects the events, and its status reports the figures.
"""

from __future__ import annotations

import asyncio
import json
import random
import socket
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web
from kubernetes import client

from fortress.adapters.postgres import open_pool
from fortress.api import GROUP, VERSION
from fortress.http.app import create_app
from fortress.http.auth import TokenStore
from fortress.http.server import ApiConfig
from fortress.ledger import api as ledger_api
from fortress.ledger.projections import BalanceProjector

TENANTS = tuple(f"tenant-{name}" for name in ("acme", "globex", "initech", "umbrella", "hooli", "stark"))
LEDGER_NAME = "credits"
COMMANDS = 300  # plus 60 more for the first tenant


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _write_tokens(directory: Path) -> Path:
    path = directory / "tokens.json"
    tokens = [
        {"name": "demo-writer", "token": "demo-write-token", "scopes": ["write"]},
        {"name": "demo-admin", "token": "demo-admin-token", "scopes": ["admin"]},
    ]
    path.write_text(json.dumps({"tokens": tokens}))
    return path


def _ledger_status(api: client.ApiClient, namespace: str) -> dict[str, Any]:
    obj = client.CustomObjectsApi(api).get_namespaced_custom_object(
        GROUP, VERSION, namespace, "creditledgers", LEDGER_NAME
    )
    return dict((obj if isinstance(obj, dict) else {}).get("status") or {})


async def demo(ctx: Any) -> None:
    """Drive the ledger through its API and show the read model catching up; raise on failure."""
    started = time.monotonic()
    # the database the example CreditLedger `credits` points at (its projector daemon runs there)
    dsn = ctx.secrets.get("credits-db", {}).get("dsn", ctx.dsn)
    with tempfile.TemporaryDirectory(prefix="fortress-ledger-demo-") as tmp:
        tokens = await asyncio.to_thread(
            TokenStore.from_file, await asyncio.to_thread(_write_tokens, Path(tmp))
        )
        app = create_app(ledger_api.ROUTES, tokens)
        await ledger_api.setup(app, ApiConfig(database_dsn=dsn))
        runner = web.AppRunner(app)
        await runner.setup()
        port = _free_port()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        pool = await open_pool(dsn, min_size=1, max_size=2)
        try:
            async with aiohttp.ClientSession(f"http://127.0.0.1:{port}") as http:
                await _story(ctx, http, pool, port)
        finally:
            await pool.close()
            await runner.cleanup()
    ctx.say(f"ledger demo done in {time.monotonic() - started:.1f}s")


async def _story(ctx: Any, http: aiohttp.ClientSession, pool: Any, port: int) -> None:
    write = {"Authorization": "Bearer demo-write-token"}
    admin = {"Authorization": "Bearer demo-admin-token"}
    say = ctx.say
    say("")
    say(f"== Credit ledger: HTTP API on http://127.0.0.1:{port} (scopes: write, admin) ==")

    async def send(tenant: str, kind: str, data: dict[str, Any], key: str | None = None) -> tuple[int, Any]:
        headers = {**write, **({"Idempotency-Key": key} if key else {})}
        body = {"aggregateId": tenant, "type": kind, "data": data}
        async with http.post("/api/v1/events", json=body, headers=headers) as response:
            return response.status, await response.json()

    before = await BalanceProjector(pool).lag()
    rng = random.Random(7)
    versions: dict[str, int] = {}
    counts = {"purchase": 0, "reserve": 0, "consume": 0, "release": 0}
    rejected = 0
    for tenant in TENANTS:
        status, body = await send(tenant, "purchase", {"amount": rng.randrange(5_000, 20_000, 100)})
        if status != 201:
            raise RuntimeError(f"purchase for {tenant} failed: {status} {body}")
        versions[tenant] = body["version"]
        counts["purchase"] += 1
    open_jobs: dict[str, list[str]] = {t: [] for t in TENANTS}
    sent_at = time.monotonic()

    async def worker(tenant: str, steps: int) -> None:
        nonlocal rejected
        for step in range(steps):
            jobs = open_jobs[tenant]
            roll = rng.random()
            data: dict[str, Any]
            if jobs and roll < 0.45:
                job = jobs.pop(0)
                kind, data = "consume", {"reservationId": job, "amount": rng.randint(1, 50)}
                if roll < 0.1:
                    kind, data = "release", {"reservationId": job}
            elif roll < 0.85:
                job = f"job-{step}"
                jobs.append(job)
                kind, data = "reserve", {"reservationId": job, "amount": rng.randint(50, 400)}
            else:
                kind, data = "purchase", {"amount": rng.randrange(500, 3_000, 100)}
            status, body = await send(tenant, kind, data)
            if status == 201:
                counts[kind] += 1
                versions[tenant] = body["version"]
            elif status == 422:
                rejected += 1
                if kind == "reserve":
                    jobs.remove(str(data["reservationId"]))
            else:
                raise RuntimeError(f"{kind} for {tenant}: unexpected {status} {body}")

    per_tenant = (COMMANDS - len(TENANTS)) // len(TENANTS)
    # the first tenant gets more traffic, so its stream crosses snapshotInterval (100) and is snapshotted
    await asyncio.gather(*(worker(t, per_tenant + (60 if t == TENANTS[0] else 0)) for t in TENANTS))
    total = sum(counts.values())
    say(
        f"sent {total + rejected} commands from {len(TENANTS)} concurrent clients in "
        f"{time.monotonic() - sent_at:.2f}s: {counts['purchase']} purchases, "
        f"{counts['reserve']} reservations, {counts['consume']} consumptions, "
        f"{counts['release']} releases, {rejected} refused"
    )

    # A rejected overdraft: reserving more than is available is a business-rule error (422).
    acme = TENANTS[0]
    status, body = await send(acme, "reserve", {"reservationId": "too-big", "amount": 10**9})
    if status != 422:
        raise RuntimeError(f"the overdraft was not refused: {status} {body}")
    say(f"overdraft refused: 422 {body['error']}: {body['message']}")

    # An idempotent retry: the same key and body twice records one event.
    first_status, first = await send(acme, "purchase", {"amount": 250}, key="demo-invoice-42")
    again_status, again = await send(acme, "purchase", {"amount": 250}, key="demo-invoice-42")
    if (first_status, again_status) != (201, 201) or not again["idempotentReplay"]:
        raise RuntimeError(f"idempotent retry misbehaved: {first_status} {first} / {again_status} {again}")
    if again["events"] != first["events"]:
        raise RuntimeError("the retried request recorded a different event")
    versions[acme] = first["version"]
    say(
        f"retry with Idempotency-Key demo-invoice-42: answered from the first request "
        f"(event at position {first['events'][0]['globalPosition']}), nothing written twice"
    )

    # The read model converges as the operator's projector daemon catches up.
    lag = await BalanceProjector(pool).lag()
    say(f"projection lag right after the burst: {lag.events} events ({lag.seconds:.2f}s)")
    deadline = time.monotonic() + 60
    converge_started = time.monotonic()
    rows: list[dict[str, Any]] = []
    while True:
        rows = []
        for tenant in TENANTS:
            async with http.get(f"/api/v1/credits/{tenant}", headers=admin) as response:
                rows.append(await response.json() if response.status == 200 else {"tenantId": tenant})
        if all(row.get("version") == versions[row["tenantId"]] for row in rows):
            break
        if time.monotonic() > deadline:
            seen = await asyncio.to_thread(_ledger_status, ctx.api, ctx.namespace)
            raise RuntimeError(
                f"read model did not converge in 60s: {rows}; CreditLedger projection status: "
                f"{seen.get('projection')}"
            )
        await asyncio.sleep(0.1)
    lag = await BalanceProjector(pool).lag()
    say(
        f"read model converged in {time.monotonic() - converge_started:.2f}s: lag {lag.events} events, "
        f"projection at position {lag.position} of {lag.head} ({lag.position - before.position} new)"
    )
    say(f"  {'TENANT':<18}{'BALANCE':>9}{'RESERVED':>10}{'AVAILABLE':>11}{'VERSION':>9}")
    for row in rows:
        say(
            f"  {row['tenantId']:<18}{row['balance']:>9}{row['reserved']:>10}{row['available']:>11}"
            f"{row['version']:>9}"
        )
    # The read model is a cache of the events: each balance equals the account replayed from its events.
    for row in rows:
        body = {"aggregateId": row["tenantId"], "useSnapshots": False}
        async with http.post("/api/v1/events/replay", json=body, headers=admin) as response:
            replayed = (await response.json())["state"]
        if (replayed["balance"], replayed["reserved"]) != (row["balance"], row["reserved"]):
            raise RuntimeError(f"read model {row} differs from the replayed account {replayed}")
    say(f"every balance above equals its account replayed from the event store ({len(rows)} tenants)")
    replay_body = {"aggregateId": acme, "version": 1}
    async with http.post("/api/v1/events/replay", json=replay_body, headers=admin) as response:
        past = await response.json()
    if response.status != 200:
        raise RuntimeError(f"replay failed: {response.status} {past}")
    say(f"time travel: {acme} at version 1 had balance {past['state']['balance']} (replayed from its events)")

    # The CreditLedger resource reports the same figures (its status refresh runs every few seconds).
    status_deadline = time.monotonic() + 60
    while True:
        ledger: dict[str, Any] = await asyncio.to_thread(_ledger_status, ctx.api, ctx.namespace)
        projection = ledger.get("projection") or {}
        if projection.get("lagEvents") == 0 and ledger.get("lastGlobalPosition") == lag.head:
            break
        if time.monotonic() > status_deadline:
            raise RuntimeError(f"CreditLedger status did not catch up: {ledger}")
        await asyncio.sleep(0.5)
    ready: dict[str, Any] = next((c for c in ledger.get("conditions", []) if c.get("type") == "Ready"), {})
    if ready.get("status") != "True":
        raise RuntimeError(f"CreditLedger {LEDGER_NAME} is not Ready: {ready}")
    say(
        f"CreditLedger {ctx.namespace}/{LEDGER_NAME}: Ready={ready['status']} ({ready.get('reason')}), "
        f"eventsTotal={ledger['eventsTotal']}, lastGlobalPosition={ledger['lastGlobalPosition']}, "
        f"projection={{position: {projection['position']}, lagEvents: {projection['lagEvents']}, "
        f"lagSeconds: {projection['lagSeconds']}}}, snapshots={ledger['snapshots']}, "
        f"schemaVersion={ledger['schemaVersion']}"
    )
