"""Declared routes: each names its method, path, scope, models and summary, for dispatch and OpenAPI."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from pydantic import BaseModel

from fortress.http.auth import Scope

Handler = Callable[[web.Request, Any], Awaitable[Any]]


@dataclass(frozen=True)
class Route:
    """One API operation."""

    method: str
    path: str
    scope: Scope | None  # None: no authentication (health)
    handler: Handler
    summary: str
    tag: str
    body: type[BaseModel] | None = None
    response: type[BaseModel] | None = None
    status: int = 200
    errors: tuple[int, ...] = ()
    query: dict[str, str] = field(default_factory=dict)  # name -> description
    headers: dict[str, str] = field(default_factory=dict)  # name -> description
    schemas: dict[str, dict[str, Any]] = field(default_factory=dict)  # parameter name -> JSON schema

    @property
    def operation_id(self) -> str:
        return self.handler.__name__
