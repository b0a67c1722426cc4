"""The checked-in OpenAPI document matches the declared routes (regenerate: fortress api --write-openapi)."""

from __future__ import annotations

import json

from fortress.http.server import OPENAPI_PATH, all_routes, openapi_text


def test_checked_in_openapi_has_not_drifted() -> None:
    assert OPENAPI_PATH.read_text() == openapi_text(), "run `fortress api --write-openapi`"


def test_every_route_is_documented_with_its_errors() -> None:
    document = json.loads(OPENAPI_PATH.read_text())
    for route in all_routes():
        operation = document["paths"][route.path][route.method.lower()]
        assert operation["summary"], route.path
        if route.scope is not None:
            assert {"401", "403"} <= set(operation["responses"]), route.path
        if route.body is not None:
            assert "400" in operation["responses"], route.path
