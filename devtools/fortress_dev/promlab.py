"""A local Prometheus scraping a sample app whose error rate and latency you set (demo, tests, benchmarks).

``SampleApp`` is a small aiohttp app, served from a thread of its own, that exposes request metrics
for any number of revisions of a rollout, labelled the way ``{{ .Labels }}`` expects
(``namespace``, ``fortress_io_rollout``, ``fortress_io_revision``): ``http_requests_total`` by
``code`` and the ``http_request_duration_seconds`` histogram. Traffic is accounted continuously
(``rps`` requests a second per revision) with the error ratio and latency last set, so rates are
exact. ``PrometheusProcess`` runs the real ``prometheus`` binary (Debian package ``prometheus``) on
a free loopback port with a temporary config and storage; it scrapes the app every ``scrape_interval``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
import socket
import subprocess
import tempfile
import threading
import time
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web

BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class _Series:
    error_rate: float = 0.0
    latency: float = 0.02  # seconds
    ok: float = 0.0
    errors: float = 0.0
    buckets: tuple[float, ...] = tuple(0.0 for _ in BUCKETS)
    total_seconds: float = 0.0
    since: float = 0.0


class SampleApp:
    """Request metrics per revision, with the error ratio and latency the caller sets."""

    def __init__(self, namespace: str = "default", rollout: str = "app", rps: float = 100.0) -> None:
        self.namespace = namespace
        self.rollout = rollout
        self.rps = rps
        self._series: dict[tuple[str, str, str], _Series] = {}
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._ready = threading.Event()
        self.port = 0

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"

    def _key(self, revision: str, namespace: str | None, rollout: str | None) -> tuple[str, str, str]:
        return (namespace or self.namespace, rollout or self.rollout, revision)

    def set(
        self,
        revision: str,
        error_rate: float = 0.0,
        latency_ms: float = 20.0,
        *,
        namespace: str | None = None,
        rollout: str | None = None,
    ) -> None:
        """From now on, ``revision`` fails ``error_rate`` of its requests and answers in ``latency_ms``."""
        key = self._key(revision, namespace, rollout)
        with self._lock:
            series = self._series.setdefault(key, _Series(since=time.monotonic()))
            self._advance(series, time.monotonic())
            series.error_rate = max(0.0, min(1.0, error_rate))
            series.latency = max(0.0, latency_ms) / 1000.0

    def forget(self, revision: str, *, namespace: str | None = None, rollout: str | None = None) -> None:
        """Stop exposing a revision (its series go stale in Prometheus)."""
        with self._lock:
            self._series.pop(self._key(revision, namespace, rollout), None)

    def _advance(self, series: _Series, now: float) -> None:
        requests = self.rps * max(0.0, now - series.since)
        series.since = now
        series.errors += requests * series.error_rate
        series.ok += requests * (1.0 - series.error_rate)
        series.total_seconds += requests * series.latency
        series.buckets = tuple(
            count + (requests if series.latency <= bound else 0.0)
            for count, bound in zip(series.buckets, BUCKETS, strict=True)
        )

    def exposition(self) -> str:
        """The Prometheus text format of every revision's counters, advanced to now."""
        lines = [
            "# HELP http_requests_total Requests served, by status code.",
            "# TYPE http_requests_total counter",
        ]
        histogram = [
            "# HELP http_request_duration_seconds Request latency.",
            "# TYPE http_request_duration_seconds histogram",
        ]
        now = time.monotonic()
        with self._lock:
            for (namespace, rollout, revision), series in sorted(self._series.items()):
                self._advance(series, now)
                labels = (
                    f'namespace="{namespace}",fortress_io_rollout="{rollout}",'
                    f'fortress_io_revision="{revision}"'
                )
                total = series.ok + series.errors
                lines.append(f'http_requests_total{{{labels},code="200"}} {series.ok:.3f}')
                lines.append(f'http_requests_total{{{labels},code="500"}} {series.errors:.3f}')
                for bound, count in zip(BUCKETS, series.buckets, strict=True):
                    histogram.append(
                        f'http_request_duration_seconds_bucket{{{labels},le="{bound}"}} {count:.3f}'
                    )
                histogram.append(f'http_request_duration_seconds_bucket{{{labels},le="+Inf"}} {total:.3f}')
                histogram.append(f"http_request_duration_seconds_sum{{{labels}}} {series.total_seconds:.6f}")
                histogram.append(f"http_request_duration_seconds_count{{{labels}}} {total:.3f}")
        return "\n".join(lines + histogram) + "\n"

    # ---- serving ------------------------------------------------------------------------------------

    def start(self, timeout: float = 10.0) -> str:
        """Serve /metrics on a free loopback port from a background thread; the target address."""
        self._thread = threading.Thread(target=self._main, name="sample-app", daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout):
            raise RuntimeError("the sample app did not start")
        return self.target

    def stop(self) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        if self._thread is not None:
            self._thread.join(timeout=10)

    def _main(self) -> None:
        asyncio.run(self._serve())

    async def _serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()

        async def metrics(_: web.Request) -> web.Response:
            return web.Response(text=self.exposition(), content_type="text/plain")

        app = web.Application()
        app.router.add_get("/metrics", metrics)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        self.port = free_port()
        site = web.TCPSite(runner, "127.0.0.1", self.port)
        await site.start()
        self._ready.set()
        try:
            await self._stop.wait()
        finally:
            await runner.cleanup()


def prometheus_binary() -> str | None:
    """The ``prometheus`` executable, if installed (Debian package ``prometheus``)."""
    return shutil.which("prometheus")


class PrometheusProcess:
    """The real Prometheus, on a free loopback port, with a temporary config and storage."""

    def __init__(self, targets: list[str], scrape_interval: str = "1s") -> None:
        binary = prometheus_binary()
        if binary is None:
            raise FileNotFoundError("prometheus not found on PATH (Debian: apt-get install prometheus)")
        self.binary = binary
        self.targets = targets
        self.scrape_interval = scrape_interval
        self.port = 0
        self._dir: Path | None = None
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 60.0) -> str:
        """Start and wait until /-/ready answers (blocking: run it in a thread from async code)."""
        self._dir = Path(tempfile.mkdtemp(prefix="fortress-prom-"))
        config = self._dir / "prometheus.yml"
        targets = json.dumps(self.targets)
        config.write_text(
            "global:\n"
            f"  scrape_interval: {self.scrape_interval}\n"
            f"  evaluation_interval: {self.scrape_interval}\n"
            "scrape_configs:\n"
            "  - job_name: sample-app\n"
            "    honor_labels: true\n"
            f"    static_configs: [{{targets: {targets}}}]\n"
        )
        self.port = free_port()
        log = (self._dir / "prometheus.log").open("wb")
        self._process = subprocess.Popen(
            [
                self.binary,
                f"--config.file={config}",
                f"--storage.tsdb.path={self._dir / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
                "--log.level=warn",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(f"prometheus exited with {self._process.returncode}: {self.log_tail()}")
            with (
                contextlib.suppress(OSError),
                urllib.request.urlopen(f"{self.url}/-/ready", timeout=1) as response,
            ):
                if response.status == 200:
                    return self.url
            time.sleep(0.1)
        raise TimeoutError(f"prometheus not ready in {timeout}s: {self.log_tail()}")

    def query(self, promql: str) -> dict[str, object]:
        """An instant query (blocking), for waiting until series exist."""
        data = urllib.parse.urlencode({"query": promql}).encode()
        with urllib.request.urlopen(f"{self.url}/api/v1/query", data=data, timeout=5) as response:
            return json.loads(response.read())  # type: ignore[no-any-return]

    def wait_for_data(self, promql: str, timeout: float = 30.0) -> None:
        """Block until ``promql`` returns at least one sample."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError, ValueError):
                answer = self.query(promql)
                result = (answer.get("data") or {}).get("result")  # type: ignore[attr-defined]
                if result:
                    return
            time.sleep(0.2)
        raise TimeoutError(f"no data for {promql} after {timeout}s")

    def log_tail(self, lines: int = 20) -> str:
        path = self._dir / "prometheus.log" if self._dir else None
        if path is None or not path.exists():
            return ""
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])

    def stop(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait(timeout=10)
        self._process = None
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None
