"""The HTTP core: bearer tokens with scopes, 4xx for bad input, never a 500, OpenAPI from routes."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from pydantic import BaseModel, Field

from fortress import metrics
from fortress.http.app import PRINCIPAL, create_app
from fortress.http.auth import Scope, TokenStore
from fortress.http.errors import unprocessable
from fortress.http.openapi import document
from fortress.http.routing import Route

TOKENS = TokenStore.from_text(
    """
tokens:
  - {name: reader, token: r-secret, scopes: [read]}
  - {name: writer, token: w-secret, scopes: [write]}
  - {name: boss, token: a-secret, scopes: [admin]}
"""
)


class Echo(BaseModel):
    amount: int = Field(gt=0)
    note: str = ""


async def echo(request: web.Request, body: Any) -> Echo:
    if body.amount > 1000:
        raise unprocessable("too_much", "amount above 1000")
    return Echo(amount=body.amount, note=f"by {request[PRINCIPAL].name}")


async def read(request: web.Request, _: Any) -> dict[str, str]:
    return {"item": request.match_info["item"]}


async def crash(_: web.Request, __: Any) -> None:
    raise RuntimeError("boom")


ROUTES = [
    Route("POST", "/api/v1/echo", Scope.WRITE, echo, "Echo", "test", body=Echo, response=Echo, errors=(422,)),
    Route("GET", "/api/v1/items/{item}", Scope.READ, read, "Read", "test"),
    Route("GET", "/api/v1/crash", Scope.ADMIN, crash, "Crash", "test"),
]


@pytest.fixture
async def http() -> AsyncIterator[TestClient[web.Request, web.Application]]:
    async with TestClient(TestServer(create_app(ROUTES, TOKENS))) as client:
        yield client


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_401_without_or_with_unknown_token(http: TestClient[web.Request, web.Application]) -> None:
    for headers in ({}, bearer("nope"), {"Authorization": "Basic abc"}):
        response = await http.get("/api/v1/items/a", headers=headers)
        assert response.status == 401
        assert (await response.json())["error"] == "unauthorized"


async def test_403_when_scope_is_insufficient(http: TestClient[web.Request, web.Application]) -> None:
    response = await http.post("/api/v1/echo", json={"amount": 1}, headers=bearer("r-secret"))
    assert response.status == 403
    assert "write" in (await response.json())["message"]


async def test_scopes_are_ordered(http: TestClient[web.Request, web.Application]) -> None:
    for token in ("r-secret", "w-secret", "a-secret"):
        assert (await http.get("/api/v1/items/x", headers=bearer(token))).status == 200
    response = await http.post("/api/v1/echo", json={"amount": 5}, headers=bearer("a-secret"))
    assert response.status == 200 and (await response.json()) == {"amount": 5, "note": "by boss"}


async def test_bad_input_is_4xx_with_message(http: TestClient[web.Request, web.Application]) -> None:
    auth = bearer("w-secret")
    malformed = await http.post(
        "/api/v1/echo", data=b"{not json", headers={**auth, "Content-Type": "application/json"}
    )
    assert malformed.status == 400 and "not valid JSON" in (await malformed.json())["message"]
    invalid = await http.post("/api/v1/echo", json={"amount": -1}, headers=auth)
    body = await invalid.json()
    assert invalid.status == 400 and body["details"][0]["field"] == "amount"
    rule = await http.post("/api/v1/echo", json={"amount": 5000}, headers=auth)
    assert rule.status == 422 and (await rule.json())["error"] == "too_much"
    unknown = await http.get("/api/v1/nowhere", headers=auth)
    assert unknown.status == 404 and (await unknown.json())["error"] == "not_found"
    wrong_method = await http.delete("/api/v1/echo", headers=auth)
    assert wrong_method.status == 405


async def test_unhandled_error_is_500_without_details(http: TestClient[web.Request, web.Application]) -> None:
    response = await http.get("/api/v1/crash", headers=bearer("a-secret"))
    assert response.status == 500
    assert "boom" not in await response.text()


async def test_requests_are_counted_by_route_template(http: TestClient[web.Request, web.Application]) -> None:
    before = metrics.HTTP_REQUESTS.labels("/api/v1/items/{item}", "GET", "200")._value.get()
    await http.get("/api/v1/items/zzz", headers=bearer("r-secret"))
    assert metrics.HTTP_REQUESTS.labels("/api/v1/items/{item}", "GET", "200")._value.get() == before + 1


async def test_openapi_is_served(http: TestClient[web.Request, web.Application]) -> None:
    served = await (await http.get("/openapi.json")).json()
    assert served == document(ROUTES)
    echo_op = served["paths"]["/api/v1/echo"]["post"]
    assert set(echo_op["responses"]) == {"200", "400", "401", "403", "413", "415", "422"}
    assert echo_op["security"] == [{"bearer": ["write"]}]
    assert served["paths"]["/api/v1/items/{item}"]["get"]["parameters"][0]["name"] == "item"
    assert "Echo" in served["components"]["schemas"]


@pytest.mark.parametrize(
    "text",
    ["[]", "tokens: 3", "tokens: [{name: a}]", "tokens: [{token: t, scopes: [root]}]"],
)
def test_bad_token_files_are_refused(text: str) -> None:
    with pytest.raises(ValueError):
        TokenStore.from_text(text)
