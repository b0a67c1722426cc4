"""Serving an application so that even the server library's own errors are JSON.

aiohttp answers requests it cannot parse (a request line or URL over 8 KB, an invalid method token,
a malformed header) with a plain-text 400 written by ``RequestHandler.handle_error``, before any
middleware runs. ``JsonRunner`` serves through a request handler whose ``handle_error`` writes the
project's error body (``{"error": ..., "message": ...}``) instead, and logs client errors without a
traceback. ``serve`` runs an application with it until SIGINT/SIGTERM, like ``web.run_app``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import signal
import ssl
from collections.abc import Awaitable
from http import HTTPStatus
from typing import Any

from aiohttp import web
from aiohttp.http_exceptions import BadHttpMethod, HttpProcessingError, InvalidHeader, LineTooLong
from aiohttp.web_protocol import RequestHandler
from aiohttp.web_request import BaseRequest
from aiohttp.web_server import Server

log = logging.getLogger("fortress.http")


def error_body(status: int, exc: BaseException | None) -> dict[str, str]:
    """The JSON error body for a request the server could not hand to the application."""
    if status >= 500:
        return {"error": "internal", "message": "internal error; see the server log"}
    if isinstance(exc, LineTooLong):
        return {"error": "line_too_long", "message": "the request line or a header is too long"}
    if isinstance(exc, BadHttpMethod):
        return {"error": "bad_method", "message": "the request method is not a valid HTTP method"}
    if isinstance(exc, InvalidHeader):
        return {"error": "invalid_header", "message": "a request header is malformed"}
    reason = exc.message if isinstance(exc, HttpProcessingError) else HTTPStatus(status).phrase
    text = " ".join(str(reason).split())[:200]
    return {"error": "bad_request", "message": f"malformed HTTP request: {text}"}


class JsonErrorHandler(RequestHandler):
    """aiohttp's connection handler, with JSON error responses."""

    def handle_error(
        self,
        request: BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        if status >= 500:
            log.error("error handling request from %s", request.remote, exc_info=exc)
        else:
            log.info("refused a malformed request from %s: %s", request.remote, exc or message)
        if request.writer.output_size > 0:
            raise ConnectionError("response already started; cannot send the error")
        response = web.Response(
            status=status, text=json.dumps(error_body(status, exc)), content_type="application/json"
        )
        response.force_close()
        return response


class _JsonServer(Server):
    def __call__(self) -> RequestHandler:
        return JsonErrorHandler(self, loop=asyncio.get_running_loop(), **self._kwargs)


class JsonRunner(web.AppRunner):
    """``web.AppRunner`` whose connections answer parse errors with JSON."""

    async def _make_server(self) -> Server:
        made = await super()._make_server()
        return _JsonServer(
            made.request_handler,
            request_factory=made.request_factory,
            handler_cancellation=made.handler_cancellation,
            **made._kwargs,
        )


async def serve(
    app: web.Application | Awaitable[web.Application],
    host: str,
    port: int,
    ssl_context: ssl.SSLContext | None = None,
    **runner_options: Any,
) -> None:
    """Serve ``app`` on ``host:port`` until SIGINT or SIGTERM, then clean up."""
    application = app if isinstance(app, web.Application) else await app
    runner = JsonRunner(application, **runner_options)
    await runner.setup()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    try:
        await web.TCPSite(runner, host, port, ssl_context=ssl_context).start()
        await stop.wait()
    finally:
        await runner.cleanup()
