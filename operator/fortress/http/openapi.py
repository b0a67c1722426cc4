"""The OpenAPI 3.1 document, built from the declared routes and their pydantic models."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from fortress import __version__
from fortress.http.errors import ErrorBody
from fortress.http.routing import Route

_ERROR_TEXT = {
    400: "Malformed request",
    401: "Missing or invalid bearer token",
    403: "Token lacks the required scope",
    404: "Not found",
    409: "Conflict",
    413: "Payload too large",
    415: "Body not sent as application/json",
    422: "Business rule violated, or a value that cannot be stored (e.g. a NUL character)",
    503: "Unavailable",
}


_PATH_STRING: dict[str, Any] = {"type": "string", "minLength": 1}


def _ref(model: type[BaseModel]) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{model.__name__}"}


def document(routes: Iterable[Route], title: str = "Fortress API") -> dict[str, Any]:
    """The OpenAPI document of ``routes``."""
    routes = list(routes)
    models: set[type[BaseModel]] = {ErrorBody}
    for route in routes:
        models.update(m for m in (route.body, route.response) if m is not None)
    ordered = sorted(models, key=lambda m: m.__name__)
    _, schemas = models_json_schema(
        [(m, "validation") for m in ordered], ref_template="#/components/schemas/{model}", by_alias=True
    )
    paths: dict[str, dict[str, Any]] = {}
    for route in routes:
        operation: dict[str, Any] = {
            "operationId": route.operation_id,
            "summary": route.summary,
            "tags": [route.tag],
            "responses": {
                str(route.status): {
                    "description": "OK",
                    **(
                        {"content": {"application/json": {"schema": _ref(route.response)}}}
                        if route.response
                        else {}
                    ),
                }
            },
        }
        string: dict[str, Any] = {"type": "string"}
        parameters = [
            {"name": name, "in": "path", "required": True, "schema": route.schemas.get(name, _PATH_STRING)}
            for name in re.findall(r"{(\w+)}", route.path)
        ]
        parameters += [
            {
                "name": n,
                "in": "query",
                "required": False,
                "description": d,
                "schema": route.schemas.get(n, string),
            }
            for n, d in route.query.items()
        ]
        parameters += [
            {
                "name": n,
                "in": "header",
                "required": False,
                "description": d,
                "schema": route.schemas.get(n, string),
            }
            for n, d in route.headers.items()
        ]
        if parameters:
            operation["parameters"] = parameters
        if route.body is not None:
            operation["requestBody"] = {
                "required": True,
                "content": {"application/json": {"schema": _ref(route.body)}},
            }
        statuses = set(route.errors)
        if route.body is not None:
            statuses |= {400, 413, 415, 422}  # see fortress.http.inputs
        if parameters:
            statuses |= {400, 422}  # a NUL character in a parameter is 422
        if route.scope is not None:
            operation["security"] = [{"bearer": [route.scope.name.lower()]}]
            statuses |= {401, 403}
        for status in sorted(statuses):
            operation["responses"][str(status)] = {
                "description": _ERROR_TEXT.get(status, "Error"),
                "content": {"application/json": {"schema": _ref(ErrorBody)}},
            }
            if status == 503:
                operation["responses"]["503"]["headers"] = {
                    "Retry-After": {
                        "description": "Seconds to wait before retrying.",
                        "schema": {"type": "integer"},
                    }
                }
        paths.setdefault(route.path, {})[route.method.lower()] = operation
    return {
        "openapi": "3.1.0",
        "info": {"title": title, "version": __version__},
        "paths": dict(sorted(paths.items())),
        "components": {
            "schemas": schemas.get("$defs", {}),
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
    }
