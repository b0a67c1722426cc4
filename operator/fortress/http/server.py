"""The whole HTTP API: every subsystem's routes, set up against live services, and its OpenAPI text.

Each subsystem's ``api`` module (see fortress.discovery) exposes ``ROUTES`` (static declarations, so the
OpenAPI document needs no live services) and ``async def setup(app, config) -> None``, which
connects what its handlers need (stored under its own ``web.AppKey``) and registers cleanup.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import cast

from aiohttp import web

from fortress import discovery
from fortress.http.app import create_app
from fortress.http.auth import TokenStore
from fortress.http.openapi import document
from fortress.http.routing import Route
from fortress.paths import repo_root

OPENAPI_PATH = repo_root() / "openapi" / "fortress-api.json"


@dataclass(frozen=True)
class ApiConfig:
    """What the API process is configured with (see ``fortress api --help``)."""

    database_dsn: str | None = None
    shard_config: Path | None = None
    connect_timeout: float = 5.0  # seconds to open a database connection
    statement_timeout: float = 10.0  # seconds a request may spend in the database


def _modules() -> list[ModuleType]:
    return discovery.modules("api")


def all_routes() -> list[Route]:
    routes: list[Route] = []
    for module in _modules():
        routes.extend(cast(Sequence[Route], module.ROUTES))
    return routes


def openapi_text() -> str:
    """The OpenAPI document as checked in (sorted keys, two-space indent, trailing newline)."""
    return json.dumps(document(all_routes()), indent=2, sort_keys=True) + "\n"


async def build_app(config: ApiConfig, tokens: TokenStore) -> web.Application:
    """The application with every subsystem set up."""
    app = create_app(all_routes(), tokens)
    for module in _modules():
        setup = cast(Callable[[web.Application, ApiConfig], Awaitable[None]], module.setup)
        await setup(app, config)
    return app
