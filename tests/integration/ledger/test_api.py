"""The credits HTTP API on real PostgreSQL: every status code, and fuzzing of its OpenAPI document."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from fortress.http.app import create_app
from fortress.http.auth import TokenStore
from fortress.http.openapi import document
from fortress.http.server import ApiConfig
from fortress.ledger import api as ledger_api
from fortress.ledger.projections import BalanceProjector
from tests.integration.ledger.support import migrated_pool
from tests.support.http import schemathesis, served
from tests.support.postgres import PgCluster

pytestmark = pytest.mark.postgres

TOKENS = TokenStore(
    [("r", "r-tok", ["read"]), ("w", "w-tok", ["write"]), ("a", "a-tok", ["admin"])],
)
READ, WRITE, ADMIN = ({"Authorization": f"Bearer {t}"} for t in ("r-tok", "w-tok", "a-tok"))
Client = TestClient[web.Request, web.Application]


async def ledger_app(dsn: str | None) -> web.Application:
    app = create_app(ledger_api.ROUTES, TOKENS)
    await ledger_api.setup(app, ApiConfig(database_dsn=dsn))
    return app


@pytest.fixture
async def db(pg: PgCluster) -> AsyncIterator[Any]:
    pool = await migrated_pool(pg, max_size=4)
    try:
        yield pool
    finally:
        await pool.close()


@pytest.fixture
async def http(pg: PgCluster, db: Any) -> AsyncIterator[Client]:
    async with TestClient(TestServer(await ledger_app(pg.dsn()))) as client:
        yield client


async def post(http: Client, body: Any, key: str | None = None, headers: dict[str, str] = WRITE) -> Any:
    extra = {"Idempotency-Key": key} if key else {}
    return await http.post("/api/v1/events", json=body, headers={**headers, **extra})


async def test_commands_reads_history_and_replay(http: Client, db: Any) -> None:
    created = await post(http, {"aggregateId": "acme", "type": "purchase", "data": {"amount": 100}}, key="k1")
    assert created.status == 201
    first = await created.json()
    assert first["version"] == 1 and first["state"]["balance"] == 100 and not first["idempotentReplay"]
    again = await post(http, {"aggregateId": "acme", "type": "purchase", "data": {"amount": 100}}, key="k1")
    assert again.status == 201 and again.headers["Idempotent-Replayed"] == "true"
    assert (await again.json())["events"] == first["events"]
    reserve = {"aggregateId": "acme", "type": "reserve", "data": {"reservationId": "job-1", "amount": 60}}
    assert (await post(http, reserve)).status == 201
    consume = {"aggregateId": "acme", "type": "consume", "data": {"reservationId": "job-1", "amount": 60}}
    assert (await post(http, {**consume, "expectedVersion": 2})).status == 201
    await BalanceProjector(db).catch_up()
    balance = await http.get("/api/v1/credits/acme", headers=READ)
    assert balance.status == 200
    assert {k: v for k, v in (await balance.json()).items() if k in ("balance", "reserved", "version")} == {
        "balance": 40,
        "reserved": 0,
        "version": 3,
    }
    history = await http.get("/api/v1/credits/acme/history?after=1&limit=1", headers=READ)
    page = await history.json()
    assert history.status == 200 and [e["version"] for e in page["events"]] == [2] and page["nextAfter"] == 2
    replay = await http.post(
        "/api/v1/events/replay", json={"aggregateId": "acme", "version": 2}, headers=ADMIN
    )
    assert replay.status == 200
    assert (await replay.json())["state"]["reserved"] == 60


async def test_every_error_status(http: Client, db: Any) -> None:
    async def status_of(response: Any) -> tuple[int, str]:
        body = await response.json()
        assert body["message"]
        return response.status, body["error"]

    purchase = {"aggregateId": "acme", "type": "purchase", "data": {"amount": 10}}
    assert (await post(http, purchase, key="k")).status == 201
    # 400: malformed JSON, a bad field, a bad data field, a bad header, bad path and query, asOf and version
    bad_json = await http.post(
        "/api/v1/events", data=b"{not json", headers={**WRITE, "Content-Type": "application/json"}
    )
    assert await status_of(bad_json) == (400, "bad_request")
    assert (await post(http, {**purchase, "aggregateId": "a b"})).status == 400
    bad_amount = await post(http, {**purchase, "data": {"amount": -5}})
    assert bad_amount.status == 400 and (await bad_amount.json())["details"][0]["field"] == "data.amount"
    assert (await post(http, {**purchase, "data": {"amount": "5"}})).status == 400
    assert (await post(http, {**purchase, "data": {"amount": 2**70}})).status == 400
    assert (await post(http, {**purchase, "type": "steal"})).status == 400
    assert (
        await post(http, {"aggregateId": "acme", "type": "adjust", "data": {"delta": 0, "reason": "x"}})
    ).status == 400
    assert (await post(http, purchase, key="bad key with spaces")).status == 400
    assert (await http.get("/api/v1/credits/%20x", headers=READ)).status == 400
    assert (await http.get("/api/v1/credits/acme/history?limit=0", headers=READ)).status == 400
    assert (await http.get("/api/v1/credits/acme/history?after=x", headers=READ)).status == 400
    both = {"aggregateId": "acme", "version": 1, "asOf": "2030-01-01T00:00:00Z"}
    assert (await http.post("/api/v1/events/replay", json=both, headers=ADMIN)).status == 400
    # 401 and 403
    assert (await http.get("/api/v1/credits/acme")).status == 401
    assert (await post(http, purchase, headers=READ)).status == 403
    assert (
        await http.post("/api/v1/events/replay", json={"aggregateId": "acme"}, headers=WRITE)
    ).status == 403
    # 404: unknown tenant
    assert await status_of(await http.get("/api/v1/credits/nobody", headers=READ)) == (404, "not_found")
    assert (await http.get("/api/v1/credits/nobody/history", headers=READ)).status == 404
    assert (
        await http.post("/api/v1/events/replay", json={"aggregateId": "nobody"}, headers=ADMIN)
    ).status == 404
    # 409: stale expected version; idempotency key reused with another payload
    assert await status_of(await post(http, {**purchase, "expectedVersion": 0})) == (409, "version_conflict")
    other = {**purchase, "data": {"amount": 11}}
    assert await status_of(await post(http, other, key="k")) == (409, "idempotency_conflict")
    # 422: business rules
    overdraft = {"aggregateId": "acme", "type": "reserve", "data": {"reservationId": "r", "amount": 11}}
    assert await status_of(await post(http, overdraft)) == (422, "insufficient_credits")
    release = {"aggregateId": "acme", "type": "release", "data": {"reservationId": "nope"}}
    assert await status_of(await post(http, release)) == (422, "unknown_reservation")
    assert await db.fetchval("SELECT count(*) FROM event_store") == 1


async def test_503_without_a_database() -> None:
    async with TestClient(TestServer(await ledger_app(None))) as http:
        response = await http.get("/api/v1/credits/acme", headers=READ)
        assert response.status == 503
        assert (await response.json())["error"] == "ledger_not_configured"


async def test_fuzzing_the_openapi_document_with_every_check(pg: PgCluster, db: Any) -> None:
    """schemathesis, every check, FORTRESS_FUZZ_EXAMPLES examples per operation, on funded accounts."""
    async with served(await ledger_app(pg.dsn())) as url:
        async with TestClient(TestServer(await ledger_app(pg.dsn()))) as http:
            for tenant in ("a", "acme", "0"):
                body = {"aggregateId": tenant, "type": "purchase", "data": {"amount": 1000}}
                assert (await post(http, body)).status == 201
        await schemathesis(document(ledger_api.ROUTES), url, ["Authorization: Bearer a-tok"])
