"""Decoy API tokens at the Fortress API: refused with 401 like any unknown token, counted and audited."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest
from aiohttp.test_utils import TestClient, TestServer

from fortress.adapters import migrations
from fortress.http.auth import TokenStore
from fortress.http.server import ApiConfig, build_app
from fortress.metrics import synthetic as synthetic_metrics
from fortress.synthetic import store
from fortress.synthetic.generate import Recipe, blocks, generator
from tests.support.postgres import PgCluster

pytestmark = pytest.mark.postgres


def decoy_tokens(count: int) -> list[str]:
    gen = generator(Recipe("users", 1000, seed=4, api_tokens=count))
    return [
        t
        for b in blocks(gen)
        for t, null in zip(b.fields[-1].tolist(), b.nulls[10].tolist(), strict=True)
        if not null
    ]


@pytest.fixture
async def api(pg: PgCluster) -> AsyncIterator[tuple[TestClient[Any, Any], str]]:
    await migrations.up(pg.dsn(), migrations.default_migrations_dir())
    app = await build_app(ApiConfig(database_dsn=pg.dsn()), TokenStore([("ci", "a" * 48, ["admin"])]))
    async with TestClient(TestServer(app)) as client:
        yield client, pg.dsn()


async def test_a_decoy_token_is_refused_counted_and_audited(api: tuple[TestClient[Any, Any], str]) -> None:
    client, dsn = api
    tokens = decoy_tokens(3)
    conn = await asyncpg.connect(dsn)
    try:
        await store.register_tokens(
            conn, "prod", "honey", [hashlib.sha256(t.encode()).digest() for t in tokens]
        )
    finally:
        await conn.close()
    before = synthetic_metrics.DECOY_TOKENS_PRESENTED.labels("prod", "honey")._value.get()
    response = await client.get("/api/v1/credits/tenant-a", headers={"Authorization": f"Bearer {tokens[1]}"})
    assert response.status == 401
    body = await response.json()
    assert body["error"] == "unauthorized"
    unknown = await client.get("/api/v1/credits/tenant-a", headers={"Authorization": "Bearer " + "b" * 48})
    assert unknown.status == 401 and await unknown.json() == body  # the same answer: nothing to tell apart
    ok = await client.get("/api/v1/credits/tenant-a", headers={"Authorization": "Bearer " + "a" * 48})
    assert ok.status != 401  # a real token still works
    assert synthetic_metrics.DECOY_TOKENS_PRESENTED.labels("prod", "honey")._value.get() == before + 1
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch(
            "SELECT actor, action, namespace, resource_name, outcome, source_ip, details FROM audit_trail"
        )
    finally:
        await conn.close()
    assert len(rows) == 1
    row = rows[0]
    assert (row["action"], row["namespace"], row["resource_name"], row["outcome"]) == (
        "api.decoy_token",
        "prod",
        "honey",
        "denied",
    )
    assert row["source_ip"] is not None and tokens[1] not in str(row["details"])
