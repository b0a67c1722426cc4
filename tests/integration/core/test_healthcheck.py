"""``fortress healthcheck`` (what the chart's ``helm test`` Pod runs) for real: against a running
``fortress api`` process, the operator's liveness endpoint, and the CRDs of the test API server."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from fortress.api import KINDS
from tests.support.kubeapi import KubeTarget, running_operator


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def api_process(tmp_path: Path) -> Iterator[str]:
    """``fortress api`` in its own process on a free port; its base URL."""
    tokens = tmp_path / "tokens.yaml"
    tokens.write_text(yaml.safe_dump({"tokens": [{"name": "t", "token": "x" * 40, "scopes": ["read"]}]}))
    port = _free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "fortress",
            "api",
            "--host",
            "127.0.0.1",
            f"--port={port}",
            f"--tokens={tokens}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
                break
            if process.poll() is not None or time.monotonic() > deadline:
                err = process.stderr.read().decode() if process.stderr else ""
                pytest.fail(f"fortress api did not start: {err[-2000:]}")
            time.sleep(0.1)
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(timeout=30)


async def healthcheck(*args: str) -> tuple[int, str]:
    """Run ``fortress healthcheck`` as a process (without blocking the operator running in this loop)."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "fortress",
        "healthcheck",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await asyncio.wait_for(process.communicate(), timeout=120)
    return process.returncode or 0, out.decode()


async def test_the_api_and_the_operator_answer(kube_api: KubeTarget, tmp_path: Path) -> None:
    port = _free_port()
    with api_process(tmp_path) as api:
        async with running_operator(kube_api, liveness_port=port):
            operator = f"http://127.0.0.1:{port}"
            code, out = await healthcheck(
                "--api", api, "--operator", operator, "--attempts=30", "--interval=0.5"
            )
            assert code == 0, out
            assert f"ok   api: {api}/healthz answered 200" in out
            assert f"ok   operator: {operator}/healthz answered 200" in out
        # the operator stopped: its check fails, the API's still passes
        code, out = await healthcheck("--api", api, "--operator", operator)
        assert code == 1, out
        assert "FAIL operator:" in out and "ok   api:" in out


async def test_an_api_answering_an_error_fails(tmp_path: Path) -> None:
    with api_process(tmp_path) as api:
        code, out = await healthcheck("--api", f"{api}/no-such-path")
    assert code == 1 and "answered 404" in out


async def test_the_crds_are_established(real_kube_api: KubeTarget, tmp_path: Path) -> None:
    code, out = await healthcheck("--crds", "--kubeconfig", str(real_kube_api.kubeconfig))
    assert code == 0, out
    assert out.count("Established, serves v1alpha1") == len(KINDS)
    broken = tmp_path / "kubeconfig"
    config = yaml.safe_load(real_kube_api.kubeconfig.read_text())
    for cluster in config["clusters"]:
        cluster["cluster"]["server"] = f"https://127.0.0.1:{_free_port()}"
    broken.write_text(yaml.safe_dump(config))
    code, out = await healthcheck("--crds", "--kubeconfig", str(broken))
    assert code == 1 and "FAIL crds:" in out, out
