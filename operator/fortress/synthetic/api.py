"""Decoy API tokens at the HTTP API: refused like any unknown token, and recorded as an intrusion.

SyntheticDatasets with ``decoy.apiTokens`` give some decoy users a token in the format of the API's
own (48 letters and digits) and register its SHA-256 in ``synthetic_decoy_tokens`` (migration
000009). No decoy token is ever in the API's token file, so the HTTP core answers 401 as for any
unknown token; this module's middleware, seeing that 401, looks the token's digest up in the
registry and, when it is a decoy, counts it (``fortress_synthetic_decoy_tokens_presented_total``),
writes an ``audit_trail`` row (``action = 'api.decoy_token'``, ``outcome = 'denied'``, the caller's
address) and logs a warning. The answer stays the same 401: the caller learns nothing. Only tokens
of the decoy format are looked up, one indexed read each.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import re
from collections.abc import Awaitable, Callable
from typing import Any, Final

import asyncpg
from aiohttp import web
from aiohttp.typedefs import Middleware

from fortress.adapters.postgres import open_pool
from fortress.core.errors import Secret, describe
from fortress.http.errors import ApiError
from fortress.http.routing import Route
from fortress.http.server import ApiConfig
from fortress.metrics import synthetic as metrics
from fortress.synthetic import store

ROUTES: tuple[Route, ...] = ()
DECOY_FORMAT: Final = re.compile(r"^[A-Za-z0-9]{48}$")
DB_ERRORS: Final = (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError)
CONNECT_TIMEOUT: Final = 5.0

log = logging.getLogger("fortress.synthetic")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class DecoyTokens:
    """The registry of decoy token digests in the Fortress database (connected lazily)."""

    def __init__(self, dsn: str) -> None:
        self.dsn = dsn
        self._pool: Any = None
        self._lock = asyncio.Lock()

    async def pool(self) -> Any:
        async with self._lock:
            if self._pool is None:
                self._pool = await asyncio.wait_for(
                    open_pool(self.dsn, min_size=0, max_size=2), CONNECT_TIMEOUT
                )
            return self._pool

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.close()

    async def presented(self, request: web.Request) -> tuple[str, str] | None:
        """The dataset of the request's bearer token when it is a decoy (then recorded), else None."""
        header = request.headers.get("Authorization") or ""
        token = header[len("Bearer ") :].strip() if header.startswith("Bearer ") else ""
        if not DECOY_FORMAT.match(token):
            return None
        digest = hashlib.sha256(token.encode()).digest()
        pool = await self.pool()
        async with pool.acquire() as conn:
            found = await store.decoy_token(conn, digest)
            if found is None:
                return None
            namespace, dataset = found
            details = {"method": request.method, "path": request.path, "dataset": f"{namespace}/{dataset}"}
            await store.audit(
                conn, "api.decoy_token", namespace, dataset, "denied", details, source_ip=request.remote
            )
        return found


def middleware(tokens: DecoyTokens) -> Middleware:
    @web.middleware
    async def decoy_tokens(request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            return await handler(request)
        except ApiError as error:
            if error.status == 401:
                try:
                    found = await tokens.presented(request)
                except DB_ERRORS as problem:  # the 401 stands; the check is said to be missing
                    log.warning(
                        "decoy token check failed: %s", describe(problem, [Secret(tokens.dsn, "<the DSN>")])
                    )
                    found = None
                if found is not None:
                    metrics.DECOY_TOKENS_PRESENTED.labels(*found).inc()
                    log.warning(
                        "decoy API token of SyntheticDataset %s/%s presented from %s (%s %s): refused",
                        *found,
                        request.remote,
                        request.method,
                        request.path,
                    )
            raise

    return decoy_tokens


async def setup(app: web.Application, config: ApiConfig) -> None:
    """Watch the 401s for decoy tokens when the API has a database (the token registry)."""
    if not config.database_dsn:
        return
    tokens = DecoyTokens(config.database_dsn)
    app.middlewares.append(middleware(tokens))

    async def close(_: web.Application) -> None:
        await tokens.close()

    app.on_cleanup.append(close)


__all__ = ["ROUTES", "DecoyTokens", "middleware", "setup"]
