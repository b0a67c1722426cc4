"""The sharding HTTP API over real shards: auth, keys, typed transactions and the error rules."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from fortress.http.app import create_app
from fortress.http.auth import TokenStore
from fortress.http.openapi import document
from fortress.http.server import ApiConfig
from fortress.sharding import api
from fortress.sharding.ring import Ring, RoutingState
from tests.integration.sharding.support import (  # noqa: F401 (the shards fixture)
    FOUR_SHARDS,
    four_shards_fixture,
    reset,
)
from tests.support.http import schemathesis, served
from tests.support.postgres import PgCluster

IDS = FOUR_SHARDS
RING = Ring.build(IDS, virtual_nodes=64)
TOKENS = TokenStore([("reader", "r-token", ["read"]), ("writer", "w-token", ["write"])])
READ = {"Authorization": "Bearer r-token"}
WRITE = {"Authorization": "Bearer w-token"}
Client = TestClient[web.Request, web.Application]


def write_config(tmp_path: Path, shards: dict[str, PgCluster], routing: RoutingState) -> Path:
    ring_file = tmp_path / "ring.json"
    ring_file.write_text(routing.to_configmap_data()["ring.json"])
    (tmp_path / "shard-d.dsn").write_text(shards["shard-d"].dsn() + "\n")
    config = {
        "ring": {"file": str(ring_file), "refreshSeconds": 0.1},
        "shards": {s: {"dsn": c.dsn()} for s, c in shards.items() if s != "shard-d"}
        | {"shard-d": {"dsnFile": str(tmp_path / "shard-d.dsn")}},
        "queryTimeout": "2s",
        "circuitBreaker": {"failureThreshold": 2, "openDuration": "30s"},
    }
    path = tmp_path / "shards.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.fixture
async def http(tmp_path: Path, shards: dict[str, PgCluster]) -> AsyncIterator[Client]:
    await reset(shards.values())
    path = write_config(tmp_path, shards, RoutingState(RING, None, "test/api"))
    app = create_app(api.ROUTES, TOKENS)
    await api.setup(app, ApiConfig(shard_config=path))
    async with TestClient(TestServer(app)) as client:
        yield client


def key_on(shard: str, prefix: str = "k") -> str:
    return next(k for k in (f"{prefix}{i}" for i in range(10_000)) if RING.owner(k) == shard)


async def test_auth_rules(http: Client) -> None:
    assert (await http.get("/api/v1/shard/key/a")).status == 401
    response = await http.put("/api/v1/shard/key/a", json={"value": 1}, headers=READ)
    assert response.status == 403 and "write" in (await response.json())["message"]
    assert (await http.post("/api/v1/shard/transaction", json={}, headers=READ)).status == 403


async def test_put_get_delete(http: Client) -> None:
    response = await http.put("/api/v1/shard/key/user:1", json={"value": {"name": "Ada"}}, headers=WRITE)
    assert response.status == 200
    body = await response.json()
    assert body["key"] == "user:1" and body["version"] == 1 and body["shard"] == RING.owner("user:1")
    got = await (await http.get("/api/v1/shard/key/user:1", headers=READ)).json()
    assert got["value"] == {"name": "Ada"} and "updatedAt" in got
    assert (await http.get("/api/v1/shard/key/user:1?stale=true", headers=READ)).status == 200
    deleted = await http.delete("/api/v1/shard/key/user:1", headers=WRITE)
    assert deleted.status == 200 and (await deleted.json()) == {"key": "user:1", "deleted": True}
    missing = await http.get("/api/v1/shard/key/user:1", headers=READ)
    assert missing.status == 404 and (await missing.json())["error"] == "not_found"
    assert (await http.delete("/api/v1/shard/key/user:1", headers=WRITE)).status == 404


async def test_encoded_keys(http: Client) -> None:
    response = await http.put("/api/v1/shard/key/a%2Fb%20c", json={"value": 1}, headers=WRITE)
    assert response.status == 200 and (await response.json())["key"] == "a/b c"
    assert (await (await http.get("/api/v1/shard/key/a%2Fb%20c", headers=READ)).json())["value"] == 1


@pytest.mark.parametrize(
    ("method", "path", "body", "field"),
    [
        ("PUT", "/api/v1/shard/key/k", {}, "value"),
        ("PUT", "/api/v1/shard/key/k", {"value": 1, "extra": 2}, "extra"),
        ("PUT", "/api/v1/shard/key/k", {"value": 1, "ifVersion": -1}, "ifVersion"),
        ("PUT", "/api/v1/shard/key/k", {"value": 1, "ifVersion": "1"}, "ifVersion"),
        ("PUT", "/api/v1/shard/key/" + "x" * 600, {"value": 1}, None),
        ("GET", "/api/v1/shard/key/k?stale=maybe", None, "stale"),
        ("POST", "/api/v1/shard/transaction", {"operations": []}, "operations"),
        ("POST", "/api/v1/shard/transaction", {"operations": [{"type": "sql", "q": "DROP"}]}, "operations.0"),
        (
            "POST",
            "/api/v1/shard/transaction",
            {"operations": [{"type": "transfer", "from": "a", "to": "b", "amount": 0}]},
            "amount",
        ),
    ],
)
async def test_malformed_requests_are_400(
    http: Client, method: str, path: str, body: dict[str, Any] | None, field: str | None
) -> None:
    headers = READ if method == "GET" else WRITE
    response = await http.request(method, path, json=body, headers=headers)
    assert response.status == 400, await response.text()
    payload = await response.json()
    if field is not None:
        assert field in json.dumps(payload)


@pytest.mark.parametrize(
    ("path", "body", "field", "code"),
    [
        ("/api/v1/shard/key/k", {"value": 1, "ifVersion": 2**63}, "ifVersion", "out_of_range"),
        ("/api/v1/shard/key/k", {"value": 1, "ifVersion": 2**70}, "ifVersion", "out_of_range"),
        ("/api/v1/shard/key/k", {"value": "nul\u0000"}, "value", "invalid_character"),
        ("/api/v1/shard/key/k", {"value": {"a": ["x", "y\u0000"]}}, "value.a.1", "invalid_character"),
        ("/api/v1/shard/key/k%00", {"value": 1}, "key", "invalid_character"),
    ],
)
async def test_values_that_cannot_be_stored_are_422_naming_the_field(
    http: Client, path: str, body: dict[str, Any], field: str, code: str
) -> None:
    response = await http.put(path, json=body, headers=WRITE)
    payload = await response.json()
    assert (response.status, payload["error"]) == (422, code), payload
    assert payload["details"][0]["field"] == field


async def test_a_transfer_to_itself_and_null_values(http: Client) -> None:
    body = {"operations": [{"type": "transfer", "from": "a", "to": "a", "amount": 1}]}
    response = await http.post("/api/v1/shard/transaction", json=body, headers=WRITE)
    assert response.status == 422 and (await response.json())["error"] == "same_key"
    stored = await http.put("/api/v1/shard/key/null", json={"value": None}, headers=WRITE)
    assert stored.status == 200 and (await stored.json())["value"] is None
    read = await (await http.get("/api/v1/shard/key/null", headers=READ)).json()
    assert "value" in read and read["value"] is None


async def test_writes_need_a_json_content_type(http: Client) -> None:
    for content_type in ("text/plain", None):
        headers = {**WRITE, **({"Content-Type": content_type} if content_type else {})}
        for method, path, body in (
            ("PUT", "/api/v1/shard/key/ct", b'{"value": 1}'),
            ("POST", "/api/v1/shard/transaction", b'{"operations": [{"type": "set", "values": {"ct": 1}}]}'),
        ):
            response = await http.request(
                method, path, data=body, headers=headers, skip_auto_headers=["Content-Type"]
            )
            assert response.status == 415 and (await response.json())["error"] == "unsupported_media_type"
    assert (await http.get("/api/v1/shard/key/ct", headers=READ)).status == 404


async def test_fuzzing_the_openapi_document_with_every_check(
    tmp_path: Path, shards: dict[str, PgCluster]
) -> None:
    await reset(shards.values())
    path = write_config(tmp_path, shards, RoutingState(RING, None, "test/fuzz"))
    app = create_app(api.ROUTES, TOKENS)
    await api.setup(app, ApiConfig(shard_config=path))
    async with served(app) as url:
        await schemathesis(document(api.ROUTES), url, ["Authorization: Bearer w-token"])


async def test_if_version_conflicts_are_409(http: Client) -> None:
    assert (
        await http.put("/api/v1/shard/key/v", json={"value": 1, "ifVersion": 0}, headers=WRITE)
    ).status == 200
    response = await http.put("/api/v1/shard/key/v", json={"value": 2, "ifVersion": 0}, headers=WRITE)
    assert response.status == 409 and (await response.json())["error"] == "version_conflict"
    assert (
        await http.put("/api/v1/shard/key/v", json={"value": 2, "ifVersion": 1}, headers=WRITE)
    ).status == 200


async def test_transactions(http: Client) -> None:
    a, b = key_on("shard-a", "acct"), key_on("shard-c", "acct")
    for key in (a, b):
        await http.put(f"/api/v1/shard/key/{key}", json={"value": {"balance": 100}}, headers=WRITE)
    ok = await http.post(
        "/api/v1/shard/transaction",
        json={"operations": [{"type": "transfer", "from": a, "to": b, "amount": 30}]},
        headers=WRITE,
    )
    assert ok.status == 200, await ok.text()
    result = await ok.json()
    assert result["twoPhase"] and result["participants"] == ["shard-a", "shard-c"]
    assert result["records"][a]["value"] == {"balance": 70} and result["records"][b]["value"] == {
        "balance": 130
    }
    broke = await http.post(
        "/api/v1/shard/transaction",
        json={"operations": [{"type": "transfer", "from": a, "to": b, "amount": 71}]},
        headers=WRITE,
    )
    assert broke.status == 422 and (await broke.json())["error"] == "insufficient_funds"
    unknown = await http.post(
        "/api/v1/shard/transaction",
        json={"operations": [{"type": "transfer", "from": a, "to": "acct-nobody", "amount": 1}]},
        headers=WRITE,
    )
    assert unknown.status == 404
    await http.put("/api/v1/shard/key/plain", json={"value": "text"}, headers=WRITE)
    plain = await http.post(
        "/api/v1/shard/transaction",
        json={"operations": [{"type": "transfer", "from": a, "to": "plain", "amount": 1}]},
        headers=WRITE,
    )
    assert plain.status == 422 and (await plain.json())["error"] == "not_a_balance"
    multi = await http.post(
        "/api/v1/shard/transaction",
        json={"operations": [{"type": "set", "values": {f"m{i}": i for i in range(8)}}]},
        headers=WRITE,
    )
    assert multi.status == 200 and len((await multi.json())["records"]) == 8


async def test_the_ring_file_is_reloaded(http: Client, tmp_path: Path) -> None:
    app = http.app
    assert app is not None
    service = app[api.SERVICE]
    three = Ring.build(IDS[:3], virtual_nodes=64)
    (tmp_path / "ring.json").write_text(
        RoutingState(three, RING, "test/api").to_configmap_data()["ring.json"]
    )
    await asyncio.sleep(0.3)
    assert service.router is not None and service.router.routing.moving
    assert service.router.routing.current == three


async def test_an_open_circuit_is_503_and_other_shards_serve(
    http: Client, shards: dict[str, PgCluster]
) -> None:
    down, up = key_on("shard-b", "c"), key_on("shard-a", "c")
    await http.put(f"/api/v1/shard/key/{up}", json={"value": 1}, headers=WRITE)
    await asyncio.to_thread(shards["shard-b"].kill9)
    try:
        codes = []
        for _ in range(3):
            response = await http.get(f"/api/v1/shard/key/{down}", headers=READ)
            codes.append((response.status, (await response.json())["error"]))
        assert codes[0] == (503, "shard_unavailable")
        assert codes[-1] == (503, "circuit_open")
        message = (await (await http.get(f"/api/v1/shard/key/{down}", headers=READ)).json())["message"]
        assert "shard shard-b is unavailable" in message and "circuit is open" in message
        assert (await http.get(f"/api/v1/shard/key/{up}", headers=READ)).status == 200
    finally:
        await asyncio.to_thread(shards["shard-b"].start)


async def test_not_configured_is_503() -> None:
    app = create_app(api.ROUTES, TOKENS)
    await api.setup(app, ApiConfig())
    async with TestClient(TestServer(app)) as client:
        response = await client.get("/api/v1/shard/key/a", headers=READ)
        assert response.status == 503 and (await response.json())["error"] == "sharding_not_configured"


async def test_a_config_without_dsns_for_the_ring_fails_at_start_up(
    tmp_path: Path, shards: dict[str, PgCluster]
) -> None:
    path = write_config(tmp_path, shards, RoutingState(Ring.build([*IDS, "shard-z"]), None, "t/x"))
    with pytest.raises(ValueError, match="shard-z"):
        await api.build_service(path)
