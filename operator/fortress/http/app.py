"""The aiohttp application: dispatch to declared routes with auth, validation, errors and metrics."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from aiohttp import web
from pydantic import BaseModel, ValidationError

from fortress import metrics
from fortress.http.auth import Principal, TokenStore
from fortress.http.errors import RETRY_AFTER_SECONDS, ApiError, bad_request
from fortress.http.inputs import check_parameters, decode_json, require_json
from fortress.http.openapi import document
from fortress.http.routing import Route

log = logging.getLogger("fortress.http")

TOKENS: web.AppKey[TokenStore] = web.AppKey("tokens", TokenStore)
ROUTES: web.AppKey[tuple[Route, ...]] = web.AppKey("routes", tuple)
PRINCIPAL: web.RequestKey[Principal] = web.RequestKey("principal", Principal)
MAX_BODY_BYTES = 1024 * 1024


def _json_response(status: int, payload: Any, headers: dict[str, str] | None = None) -> web.Response:
    response = web.Response(
        status=status, text=json.dumps(payload), content_type="application/json", headers=headers
    )
    if status == 503 and "Retry-After" not in response.headers:
        response.headers["Retry-After"] = str(RETRY_AFTER_SECONDS)
    return response


def validation_details(error: ValidationError) -> list[dict[str, Any]]:
    return [
        {"field": ".".join(str(p) for p in e["loc"]) or "<body>", "message": e["msg"]} for e in error.errors()
    ]


async def parse_body(request: web.Request, model: type[BaseModel]) -> BaseModel:
    """The request body as ``model``; 415 unless JSON, 400 naming the fields when malformed or invalid."""
    require_json(request)
    if request.content_length is not None and request.content_length > MAX_BODY_BYTES:
        raise ApiError(413, "payload_too_large", f"request body exceeds {MAX_BODY_BYTES} bytes")
    data = decode_json(await request.read())
    try:
        return model.model_validate(data)
    except ValidationError as error:
        raise bad_request("request body is invalid", validation_details(error)) from None


def _wrap(route: Route) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    async def handle(request: web.Request) -> web.StreamResponse:
        if route.scope is not None:
            principal = request.app[TOKENS].authenticate(request.headers.get("Authorization"))
            TokenStore.require(principal, route.scope)
            request[PRINCIPAL] = principal
        check_parameters(request)
        body = await parse_body(request, route.body) if route.body is not None else None
        result = await route.handler(request, body)
        if isinstance(result, web.StreamResponse):
            return result
        if isinstance(result, BaseModel):
            result = result.model_dump(mode="json", by_alias=True, exclude_none=True)
        return _json_response(route.status, result)

    handle.__name__ = route.operation_id
    return handle


@web.middleware
async def errors_and_metrics(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    started = time.perf_counter()
    resource = request.match_info.route.resource
    template = resource.canonical if resource is not None else "unmatched"
    try:
        response = await handler(request)
    except ApiError as error:
        response = _json_response(error.status, error.body(), error.headers)
    except web.HTTPException as error:  # aiohttp's own 404/405 for unknown paths and methods, 413
        code = "payload_too_large" if error.status == 413 else error.reason.lower().replace(" ", "_")
        allow = {"Allow": error.headers["Allow"]} if "Allow" in error.headers else None
        message = f"{error.reason}: {request.path}"
        response = _json_response(error.status, {"error": code, "message": message}, allow)
    except Exception:
        log.exception("unhandled error in %s %s", request.method, request.path)
        response = _json_response(500, {"error": "internal", "message": "internal error; see the server log"})
    metrics.HTTP_REQUESTS.labels(template, request.method, str(response.status)).inc()
    metrics.HTTP_SECONDS.labels(template, request.method).observe(time.perf_counter() - started)
    return response


def create_app(routes: Iterable[Route], tokens: TokenStore, title: str = "Fortress API") -> web.Application:
    """An application serving ``routes`` plus ``/openapi.json`` and ``/healthz``."""
    app = web.Application(middlewares=[errors_and_metrics], client_max_size=MAX_BODY_BYTES)
    declared: tuple[Route, ...] = tuple(routes)
    app[TOKENS] = tokens
    app[ROUTES] = declared
    spec = document(declared, title)

    async def openapi(_: web.Request) -> web.Response:
        return _json_response(200, spec)

    async def healthz(_: web.Request) -> web.Response:
        return _json_response(200, {"status": "ok"})

    app.router.add_get("/openapi.json", openapi)
    app.router.add_get("/healthz", healthz)
    for route in declared:
        app.router.add_route(route.method, route.path, _wrap(route))
    return app
