"""HTTP test helpers: the API served as in production, raw requests, and schemathesis runs."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import sys
import tempfile
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import BaseTestServer, TestServer

from fortress.http.runner import JsonRunner

FUZZ_EXAMPLES_ENV = "FORTRESS_FUZZ_EXAMPLES"
DEFAULT_FUZZ_EXAMPLES = 50  # per operation: the ledger, shard and DR fuzz runs take about a minute


class JsonTestServer(TestServer):
    """``aiohttp.test_utils.TestServer`` served by ``JsonRunner``, as ``fortress api`` serves."""

    async def _make_runner(self, **kwargs: Any) -> web.BaseRunner:
        return JsonRunner(self.app, **kwargs)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.asynccontextmanager
async def served(app: web.Application) -> AsyncIterator[str]:
    """Serve ``app`` on a free local port with ``JsonRunner``; yields its base URL."""
    runner = JsonRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


def server_port(server: BaseTestServer) -> int:
    assert server.port is not None
    return server.port


async def raw_request(port: int, data: bytes, timeout: float = 10.0) -> tuple[int, dict[str, str], bytes]:
    """Send ``data`` as is to 127.0.0.1:``port``; the status, headers and body of the answer."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(data)
        await writer.drain()
        raw = await asyncio.wait_for(reader.read(), timeout)
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    if headers.get("transfer-encoding") == "chunked":
        body = _dechunk(body)
    return status, headers, body


def _dechunk(body: bytes) -> bytes:
    out = b""
    while body:
        size_line, _, rest = body.partition(b"\r\n")
        size = int(size_line.split(b";")[0], 16)
        if size == 0:
            break
        out += rest[:size]
        body = rest[size + 2 :]
    return out


def assert_error_shape(body: Any) -> None:
    """The project's error body: ``error`` (a code) and ``message``, optional ``details``."""
    assert isinstance(body, dict), body
    assert isinstance(body.get("error"), str) and body["error"], body
    assert isinstance(body.get("message"), str) and body["message"], body
    assert set(body) <= {"error", "message", "details"}, body


def fuzz_examples() -> int:
    return int(os.environ.get(FUZZ_EXAMPLES_ENV) or DEFAULT_FUZZ_EXAMPLES)


ALL_CHECKS = "all"
# A schema-valid request may still be refused by a business rule (insufficient credits, a version or
# lock conflict, an unknown key): the documented 404, 409 and 422, never a 400 or a 5xx.
CONFIG = """
[checks.positive_data_acceptance]
expected-statuses = ["2xx", "401", "403", "404", "409", "422"]
"""


async def schemathesis(
    spec: dict[str, Any],
    base_url: str,
    headers: Sequence[str] = (),
    *,
    examples: int | None = None,
    seed: int = 17,
    extra: Sequence[str] = (),
    timeout: float = 240.0,
) -> str:
    """Run ``st run`` with every check against ``base_url``; fails the test with its report on findings."""
    st = Path(sys.executable).with_name("st")
    if not st.exists():
        pytest.skip("schemathesis is not installed (pip install -e '.[test]')")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "openapi.json"
        path.write_text(json.dumps(spec))
        config = Path(tmp) / "schemathesis.toml"
        config.write_text(CONFIG)
        args = [
            str(st),
            "--config-file",
            str(config),
            "run",
            str(path),
            "--url",
            base_url,
            "--checks",
            ALL_CHECKS,
            "--max-examples",
            str(examples if examples is not None else fuzz_examples()),
            "--seed",
            str(seed),
            "--request-timeout",
            "20",
            "--no-color",
            *[item for header in headers for item in ("--header", header)],
            *extra,
        ]
        process = await asyncio.create_subprocess_exec(
            *args,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            env={**os.environ, "SCHEMATHESIS_HOOKS": ""},
            cwd=tmp,
        )
        try:
            output, _ = await asyncio.wait_for(process.communicate(), timeout)
        except TimeoutError:
            process.kill()
            await process.wait()
            raise
    text = output.decode(errors="replace")
    assert process.returncode == 0, text[-12000:]
    return text
