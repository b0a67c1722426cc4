"""The credits API under hostile input and faults (issue 17), through the real aiohttp app on PostgreSQL.

Each test guards one case: exact idempotency under concurrency (2), no 409 for a hot account (3),
4xx for client input (4), 415 and JSON for every error (5), timeouts with PostgreSQL frozen (6).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from fortress.http.app import create_app
from fortress.http.server import ApiConfig
from fortress.ledger import api as ledger_api
from fortress.ledger.store import EventStore
from tests.integration.ledger.support import migrated_pool, replay_from_events
from tests.integration.ledger.test_api import ADMIN, READ, TOKENS, WRITE
from tests.support.http import JsonTestServer, assert_error_shape, free_port, raw_request, server_port
from tests.support.postgres import PgCluster

pytestmark = pytest.mark.postgres
Client = TestClient[web.Request, web.Application]


async def ledger_app(dsn: str | None, **timeouts: float) -> web.Application:
    app = create_app(ledger_api.ROUTES, TOKENS)
    await ledger_api.setup(app, ApiConfig(database_dsn=dsn, **timeouts))
    return app


@contextlib.asynccontextmanager
async def client_of(dsn: str | None, **timeouts: float) -> AsyncIterator[Client]:
    async with TestClient(JsonTestServer(await ledger_app(dsn, **timeouts))) as client:
        yield client


@pytest.fixture
async def db(pg: PgCluster) -> AsyncIterator[Any]:
    pool = await migrated_pool(pg, max_size=4)
    try:
        yield pool
    finally:
        await pool.close()


@pytest.fixture
async def http(pg: PgCluster, db: Any) -> AsyncIterator[Client]:
    async with client_of(pg.dsn()) as client:
        yield client


async def command(http: Client, body: dict[str, Any], key: str | None = None) -> tuple[int, dict[str, Any]]:
    headers = {**WRITE, **({"Idempotency-Key": key} if key else {})}
    async with http.post("/api/v1/events", json=body, headers=headers) as response:
        return response.status, await response.json()


async def fund(http: Client, tenant: str, amount: int) -> None:
    assert (await command(http, {"aggregateId": tenant, "type": "purchase", "data": {"amount": amount}}))[
        0
    ] == 201


# --- item 2: same key and body, concurrently -> the first result, to both -------------------------


def _pair_commands(index: int) -> list[dict[str, Any]]:
    """A reserve, then consume and release of it: each kind the issue saw fail under overlap."""
    tenant = f"t{index % 3}"
    rid = f"job-{index}"
    return [
        {"aggregateId": tenant, "type": "reserve", "data": {"reservationId": rid, "amount": 5}},
        {"aggregateId": tenant, "type": "consume", "data": {"reservationId": rid, "amount": 3}},
        {"aggregateId": tenant, "type": "release", "data": {"reservationId": rid}},
    ]


async def _run_pairs(first: Client, second: Client, pairs: int) -> list[str]:
    """Send every command of ``pairs`` twice at once with one key; the mismatches found."""
    mismatches: list[str] = []

    async def pair(index: int) -> None:
        for step, body in enumerate(_pair_commands(index)):
            key = f"pair-{index}-{step}"
            (s1, b1), (s2, b2) = await asyncio.gather(command(first, body, key), command(second, body, key))
            if (s1, s2) != (201, 201) or b1["events"] != b2["events"] or b1["state"] != b2["state"]:
                mismatches.append(f"{key}: {s1} {b1.get('error')} / {s2} {b2.get('error')}")
            elif [b1["idempotentReplay"], b2["idempotentReplay"]].count(True) != 1:
                mismatches.append(f"{key}: replay flags {b1['idempotentReplay']} {b2['idempotentReplay']}")

    await asyncio.gather(*(pair(i) for i in range(pairs)))
    return mismatches


async def test_concurrent_repeats_with_one_key_get_the_first_result(http: Client, db: Any) -> None:
    for tenant in ("t0", "t1", "t2"):
        await fund(http, tenant, 10_000)
    mismatches = await _run_pairs(http, http, pairs=60)
    assert mismatches == []
    # 3 purchases + 60 x (reserve, consume, release), each recorded once
    assert await db.fetchval("SELECT count(*) FROM event_store") == 3 + 60 * 3


async def test_concurrent_repeats_across_two_api_processes(pg: PgCluster, db: Any) -> None:
    async with client_of(pg.dsn()) as one, client_of(pg.dsn()) as two:
        for tenant in ("t0", "t1", "t2"):
            await fund(one, tenant, 10_000)
        assert await _run_pairs(one, two, pairs=40) == []
    assert await db.fetchval("SELECT count(*) FROM event_store") == 3 + 40 * 3


async def test_same_key_other_body_concurrently_is_one_success_and_one_409(http: Client, db: Any) -> None:
    await fund(http, "acme", 10_000)

    async def pair(index: int) -> list[tuple[int, str | None]]:
        key = f"k-{index}"
        bodies = [
            {"aggregateId": "acme", "type": "reserve", "data": {"reservationId": f"r{index}", "amount": n}}
            for n in (1, 2)
        ]
        answers = await asyncio.gather(*(command(http, b, key) for b in bodies))
        return sorted((status, body.get("error")) for status, body in answers)

    results = await asyncio.gather(*(pair(i) for i in range(40)))
    assert all(r == [(201, None), (409, "idempotency_conflict")] for r in results), results


# --- item 3: a hot account never answers 409 to commands without expectedVersion ------------------


async def _hammer(clients: list[Client], tenant: str, per_client: int) -> list[tuple[int, str | None]]:
    async def one(http: Client, index: int) -> list[tuple[int, str | None]]:
        out = []
        for n in range(per_client):
            body = {
                "aggregateId": tenant,
                "type": "adjust",
                "data": {"delta": 1 + (index + n) % 3, "reason": "x"},
            }
            status, answer = await command(http, body)
            out.append((status, answer.get("error")))
        return out

    runs = await asyncio.gather(*(one(clients[i % len(clients)], i) for i in range(32)))
    return [item for run in runs for item in run]


def _expected_total(per_client: int) -> int:
    return sum(1 + (i + n) % 3 for i in range(32) for n in range(per_client))


async def test_32_clients_on_one_account_get_no_409(http: Client, db: Any) -> None:
    answers = await _hammer([http], "hot", per_client=8)
    assert [a for a in answers if a[0] != 201] == []
    state = await replay_from_events(db, "hot")
    assert state.balance == _expected_total(8) and state.version == 32 * 8


async def test_two_api_instances_on_one_account_get_no_409(pg: PgCluster, db: Any) -> None:
    async with client_of(pg.dsn()) as one, client_of(pg.dsn()) as two:
        answers = await _hammer([one, two], "hot2", per_client=8)
    assert [a for a in answers if a[0] != 201] == []
    state = await replay_from_events(db, "hot2")
    assert state.balance == _expected_total(8) and state.version == 32 * 8


# --- item 4: client input is 4xx naming the field, never 500 or 503 --------------------------------


async def test_deeply_nested_json_is_400(http: Client) -> None:
    for depth in (100_000, 200):
        body = b"[" * depth + b"]" * depth
        headers = {**WRITE, "Content-Type": "application/json"}
        async with http.post("/api/v1/events", data=body, headers=headers) as response:
            assert response.status == 400
            answer = await response.json()
        assert answer["error"] == "bad_request" and "nested deeper" in answer["message"]


async def test_nul_characters_are_422_naming_the_field(http: Client, db: Any) -> None:
    await fund(http, "acme", 100)
    cases = [
        ({"aggregateId": "acme", "type": "adjust", "data": {"delta": 5, "reason": "a\x00b"}}, "data.reason"),
        ({"aggregateId": "ac\x00me", "type": "purchase", "data": {"amount": 1}}, "aggregateId"),
        ({"aggregateId": "acme", "type": "purchase", "data": {"amount": 1, "n\x00": 1}}, "data.n\\u0000"),
    ]
    for body, field in cases:
        status, answer = await command(http, body)
        assert (status, answer["error"]) == (422, "invalid_character"), answer
        assert answer["details"][0]["field"] == field
    async with http.get("/api/v1/credits/acme/history?after=\x00", headers=READ) as response:
        assert response.status == 422 and (await response.json())["details"][0]["field"] == "after"
    assert await db.fetchval("SELECT count(*) FROM event_store") == 1


async def test_as_of_outside_the_time_range_is_422(http: Client) -> None:
    await fund(http, "acme", 100)
    for as_of in ("0001-01-01T00:00:00+05:00", "9999-12-31T23:59:59-05:00", "0001-01-01T00:00:00"):
        body = {"aggregateId": "acme", "asOf": as_of}
        async with http.post("/api/v1/events/replay", json=body, headers=ADMIN) as response:
            answer = await response.json()
            assert response.status == 422, answer
        assert answer["error"] == "out_of_range" and answer["details"][0]["field"] == "asOf"
    ok = {"aggregateId": "acme", "asOf": "2999-01-01T00:00:00Z"}
    async with http.post("/api/v1/events/replay", json=ok, headers=ADMIN) as response:
        assert response.status == 200 and (await response.json())["state"]["balance"] == 100


async def test_503_only_when_the_database_is_unreachable() -> None:
    dsn = f"postgresql://postgres@127.0.0.1:{free_port()}/postgres"  # nothing listens there
    async with client_of(dsn, connect_timeout=1.0) as http:
        async with http.get("/api/v1/credits/acme", headers=READ) as response:
            assert response.status == 503 and response.headers["Retry-After"].isdigit()
            assert (await response.json())["error"] == "database_unavailable"
        # bad input is still refused as such, without the database
        status, answer = await command(
            http, {"aggregateId": "a", "type": "adjust", "data": {"delta": 1, "reason": "\x00"}}
        )
        assert (status, answer["error"]) == (422, "invalid_character")


# --- item 5: 415 for writes without a JSON body; every error is JSON -------------------------------


async def test_writes_without_json_content_type_are_415_and_not_applied(http: Client, db: Any) -> None:
    body = json.dumps({"aggregateId": "acme", "type": "purchase", "data": {"amount": 5}}).encode()
    for path, auth in (("/api/v1/events", WRITE), ("/api/v1/events/replay", ADMIN)):
        for content_type in ("text/plain", None, "application/x-www-form-urlencoded"):
            headers = {**auth, **({"Content-Type": content_type} if content_type else {})}
            async with http.post(
                path, data=body, headers=headers, skip_auto_headers=["Content-Type"]
            ) as response:
                assert response.status == 415, (path, content_type)
                assert response.content_type == "application/json"
                assert (await response.json())["error"] == "unsupported_media_type"
    assert await db.fetchval("SELECT count(*) FROM event_store") == 0
    headers = {**WRITE, "Content-Type": "application/json; charset=utf-8"}
    async with http.post("/api/v1/events", data=body, headers=headers) as response:
        assert response.status == 201


async def test_every_error_is_json_even_the_servers_own(http: Client) -> None:
    port = server_port(http.server)
    auth = b"Authorization: Bearer r-tok\r\n"
    requests = {
        "url over 8 KB": b"GET /api/v1/credits/" + b"a" * 9000 + b" HTTP/1.1\r\nHost: x\r\n" + auth + b"\r\n",
        "request line too long": b"GET /" + b"x" * 70_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n",
        "bad method token": b"G(T /api/v1/credits/a HTTP/1.1\r\nHost: x\r\n\r\n",
        "header too long": b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"b" * 20_000 + b"\r\n\r\n",
        "malformed header": b"GET /healthz HTTP/1.1\r\nHost: x\r\nno colon here\r\n\r\n",
        "unknown route": b"GET /nowhere HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        "unknown method": b"BREW /api/v1/events HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        "wrong method": b"DELETE /api/v1/events HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        "not http": b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n",
    }
    for name, data in requests.items():
        status, headers, body = await raw_request(port, data)
        assert 400 <= status < 500, (name, status, body[:200])
        assert headers.get("content-type", "").startswith("application/json"), (name, headers, body[:200])
        assert_error_shape(json.loads(body))


# --- item 6: PostgreSQL frozen -> 503 with Retry-After in bounded time ------------------------------


def _tree(pid: int) -> list[int]:
    """``pid`` and its descendants (the postmaster and its backends)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, IndexError, ValueError):
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
                children.setdefault(ppid, []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        todo.extend(children.get(current, []))
    return found


@contextlib.contextmanager
def frozen(pg: PgCluster) -> Iterator[None]:
    pid = pg.pid()
    assert pid is not None
    stopped = _tree(pid)
    for p in stopped:
        with contextlib.suppress(ProcessLookupError):
            os.kill(p, signal.SIGSTOP)
    try:
        yield
    finally:
        for p in _tree(pid) + stopped:
            with contextlib.suppress(ProcessLookupError):
                os.kill(p, signal.SIGCONT)


TIMEOUTS = {"connect_timeout": 1.0, "statement_timeout": 1.0}
BOUND = 3 * (TIMEOUTS["connect_timeout"] + TIMEOUTS["statement_timeout"])  # correctness bound, generous


async def _timed(http: Client, method: str, path: str, body: Any = None) -> tuple[int, str | None, float]:
    headers = ADMIN if body is None or "replay" in path else WRITE
    started = time.monotonic()
    async with http.request(method, path, json=body, headers=headers) as response:
        await response.read()
        return response.status, response.headers.get("Retry-After"), time.monotonic() - started


async def test_frozen_postgres_answers_503_with_retry_after_in_bounded_time(pg: PgCluster, db: Any) -> None:
    pid = pg.pid()
    assert pid is not None, "the cluster is running, so it has a postmaster pid"
    try:
        os.kill(pid, 0)
    except PermissionError:
        pytest.skip("cannot signal the PostgreSQL processes (another user runs them)")
    async with client_of(pg.dsn(), **TIMEOUTS) as warm, client_of(pg.dsn(), **TIMEOUTS) as cold:
        await fund(warm, "acme", 100)  # connected before the freeze; `cold` never connected
        purchase = {"aggregateId": "acme", "type": "purchase", "data": {"amount": 1}}
        calls = [
            (client, method, path, body)
            for client in (warm, cold)
            for method, path, body in [
                ("GET", "/api/v1/credits/acme", None),
                ("GET", "/api/v1/credits/acme/history", None),
                ("POST", "/api/v1/events", purchase),
                ("POST", "/api/v1/events/replay", {"aggregateId": "acme"}),
            ]
            * 6
        ]
        with frozen(pg):
            answers = await asyncio.wait_for(
                asyncio.gather(*(_timed(c, m, p, b) for c, m, p, b in calls)), 60
            )
        assert {(status, bool(retry)) for status, retry, _ in answers} == {(503, True)}
        slowest = max(seconds for _, _, seconds in answers)
        assert slowest < BOUND, f"a request took {slowest:.1f}s with PostgreSQL frozen (bound {BOUND}s)"
        # thawed: both serve again
        for client in (warm, cold):
            for _ in range(100):
                status, _, _ = await _timed(client, "POST", "/api/v1/events/replay", {"aggregateId": "acme"})
                if status == 200:
                    break
                await asyncio.sleep(0.1)
            assert status == 200


async def test_store_is_reused_after_connect(pg: PgCluster, db: Any) -> None:
    app = await ledger_app(pg.dsn(), **TIMEOUTS)
    service = app[ledger_api.LEDGER]
    stores = await asyncio.gather(*(service.store() for _ in range(10)))
    try:
        assert all(isinstance(s, EventStore) and s is stores[0] for s in stores)
    finally:
        await service.close()


async def test_the_fortress_api_process_answers_json_and_stops_on_sigterm(
    pg: PgCluster, db: Any, tmp_path: Path
) -> None:
    tokens = tmp_path / "tokens.yaml"
    tokens.write_text("tokens: [{name: w, token: w-tok, scopes: [write]}]\n")
    port = free_port()
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "fortress", "api", "--host", "127.0.0.1", "--port", str(port),
        "--tokens", str(tokens), "--dsn", pg.dsn(), "--connect-timeout", "2", "--statement-timeout", "3",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    try:
        for _ in range(200):
            with contextlib.suppress(OSError):
                status, _, _ = await raw_request(
                    port, b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
                )
                break
            await asyncio.sleep(0.05)
        assert status == 200
        long_url = b"GET /api/v1/credits/" + b"a" * 9000 + b" HTTP/1.1\r\nHost: x\r\n\r\n"
        status, headers, body = await raw_request(port, long_url)
        assert status == 400 and headers["content-type"].startswith("application/json")
        assert json.loads(body)["error"] == "line_too_long"
        text = b'{"aggregateId": "acme", "type": "purchase", "data": {"amount": 5}}'
        plain = (
            b"POST /api/v1/events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer w-tok\r\nConnection: close\r\n"
            b"Content-Type: text/plain\r\nContent-Length: " + str(len(text)).encode() + b"\r\n\r\n" + text
        )
        status, _, body = await raw_request(port, plain)
        assert (status, json.loads(body)["error"]) == (415, "unsupported_media_type")
    finally:
        process.send_signal(signal.SIGTERM)
        output, _ = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode == 0, output.decode(errors="replace")[-2000:]
