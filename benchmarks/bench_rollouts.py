"""CanaryRollout measurements: rollback latency per router, and the operator with 100 rollouts.

    .venv/bin/python -m benchmarks.bench_rollouts [--rollouts 100] [--repeats 3] [--api auto]

The operator runs as its own process (``python -m fortress run``) against a Kubernetes API in a
process of its own: the local kube-apiserver + etcd built into ``bin/`` (``make controlplane``) when
present (``--api auto``, the default, or ``--api controlplane``), else (or with ``--api emulator``)
the in-memory emulator. Neither runs controllers, so Deployment availability is simulated, as a
Deployment controller would report it. On the control plane the Gateway API's HTTPRoute is the
minimal CRD the tests use (``tests/integration/rollouts/data``). The emulator carries two fixes
proposed for fortress_dev.emulator: kmock's reaction matching made O(1) (it rescans every past
request on each request) and list/watch verbs on the built-in resources (so the operator's Deployment
watch works): see ``BenchEmulator``.

1. Rollback latency, per router (replicas, nginx, gatewayAPI): a canary at its first stage with
   analysis every 1 s against a real Prometheus (1 s scrapes) of a sample app; the app's error rate
   goes from 0 to 50 %. Measured: from the first moment Prometheus answers the rollout's own
   error-rate query above the limit (the failing sample exists) to the moment the traffic objects
   read 100 % stable; from the error injection itself; and, inside the operator, from the failing
   measurement to the traffic written (``fortress_rollouts_rollback_latency_seconds``). Target < 2 s;
   the original platform design claimed a 25 s rollback. Skipped, saying why, without the
   ``prometheus`` binary.
2. Scale: N rollouts (2 pods each, two 1 s stages): time to release them all, the reconcile latency
   (a spec change until its status shows it handled: a manual ``spec.request``, p50/p95/max over N),
   one canary wave across all N at once, and the operator's memory (RSS) with 0 and N rollouts.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import contextvars
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kmock
from kubernetes import client

from fortress.adapters.kube import load_cluster
from fortress.api import GROUP, VERSION
from fortress.core.requests import handled_id
from fortress.paths import repo_root
from fortress.rollouts.analysis import Target, render
from fortress.rollouts.analysis import checks as analysis_checks
from fortress.rollouts.model import template_hash
from fortress.rollouts.traffic.gatewayapi import weights_of
from fortress.rollouts.traffic.nginx import weight_of
from fortress_dev import emulator as emu
from fortress_dev.deployments import AvailabilitySimulator
from fortress_dev.kube import CRD_DIR, install_crds, write_kubeconfig
from fortress_dev.promlab import PrometheusProcess, SampleApp, free_port, prometheus_binary

PLURAL = "canaryrollouts"
ROUTERS = ("replicas", "nginx", "gatewayAPI")
TARGET_SECONDS, CLAIM_SECONDS = 2.0, 25.0
MAX_ERROR_RATE = 0.05
COMMAND = ".venv/bin/python -m benchmarks.bench_rollouts"
GATEWAY_CRD_DIR = repo_root() / "tests" / "integration" / "rollouts" / "data"
STEP_DURATION = "fortress_rollouts_step_duration_seconds"
ROLLBACK_LATENCY = "fortress_rollouts_rollback_latency_seconds"


_CURRENT: contextvars.ContextVar[Any] = contextvars.ContextVar("bench_emulator_request", default=None)


class BenchEmulator(emu.FortressEmulator):
    """The emulator with kmock's reaction matching made O(1).

    kmock keeps every request it served and, for each new one, walks that whole history once per
    reaction to find it again (O(n) per request: the emulator slows down the longer it runs). Here
    the view over past requests yields only the request being served (each request runs in a task
    context of its own), and no history is kept.
    """

    async def _handle(self, request: kmock.Request) -> Any:
        _CURRENT.set(request)
        self._requests[:] = [request]
        return await super()._handle(request)

    def __iter__(self) -> Iterator[Any]:
        current = _CURRENT.get()
        return iter([current] if current is not None else [])


class EmulatorServer:
    """``BenchEmulator`` on a loopback port, in a thread with its own event loop."""

    def __init__(self) -> None:
        self.url = ""
        self._ready = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=lambda: asyncio.run(self._serve()), daemon=True)

    def start(self) -> str:
        self._thread.start()
        if not self._ready.wait(30):
            raise RuntimeError("emulator did not start")
        return self.url

    def stop(self) -> None:
        if self._loop and self._stop:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(timeout=10)

    async def _serve(self) -> None:
        self._loop, self._stop = asyncio.get_running_loop(), asyncio.Event()
        emulator = BenchEmulator()
        emu.declare_resources(emulator, CRD_DIR)
        verbs = {"get", "list", "watch", "create", "update", "patch", "delete"}
        for key in emu.BUILTIN_RESOURCES:
            emulator.resources[key].verbs.update(verbs)
        async with emulator, kmock.Server(emulator) as server:
            self.url = str(server.url).rstrip("/")
            self._ready.set()
            await self._stop.wait()


# ---- helpers ---------------------------------------------------------------------------------------


def template(name: str, version: int) -> dict[str, Any]:
    return {
        "metadata": {"labels": {"app": name}},
        "spec": {
            "containers": [{"name": "app", "image": f"{name}:{version}", "ports": [{"containerPort": 8080}]}]
        },
    }


def rollout(name: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "CanaryRollout",
        "metadata": {"name": name},
        "spec": spec,
    }


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        return str(response.read().decode())


def metric_sum(text: str, name: str) -> tuple[float, float]:
    """(sum, count) of a histogram in an exposition."""
    total = re.search(rf"^{name}_sum(?:{{[^}}]*}})? (\S+)$", text, re.M)
    count = re.search(rf"^{name}_count(?:{{[^}}]*}})? (\S+)$", text, re.M)
    return (float(total.group(1)) if total else 0.0, float(count.group(1)) if count else 0.0)


def spread(values: list[float]) -> str:
    """p50 / p95 / max in milliseconds."""
    if not values:
        return "no samples"
    return (
        f"p50 {statistics.median(values) * 1000:.0f} ms, p95 {pct(values, 0.95) * 1000:.0f} ms, "
        f"max {max(values) * 1000:.0f} ms"
    )


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


class Bench:
    def __init__(self, api: client.ApiClient) -> None:
        self.api = api
        self.custom = client.CustomObjectsApi(api)
        self.core = client.CoreV1Api(api)

    def create_namespace(self, name: str) -> None:
        with contextlib.suppress(client.exceptions.ApiException):
            self.core.create_namespace({"metadata": {"name": name}})

    def create(self, namespace: str, body: dict[str, Any]) -> None:
        self.custom.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, body)

    def patch(self, namespace: str, name: str, spec: dict[str, Any]) -> None:
        self.custom.patch_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name, {"spec": spec})

    def status(self, namespace: str, name: str) -> dict[str, Any]:
        found = self.custom.get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name)
        return dict(found.get("status") or {})

    def statuses(self, namespace: str) -> dict[str, dict[str, Any]]:
        found = self.custom.list_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL)
        return {i["metadata"]["name"]: dict(i.get("status") or {}) for i in found.get("items") or []}

    async def wait(
        self, namespace: str, name: str, predicate: Any, timeout: float = 60.0, poll: float = 0.05
    ) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        status: dict[str, Any] = {}
        while time.monotonic() < deadline:
            status = await asyncio.to_thread(self.status, namespace, name)
            if predicate(status):
                return status
            await asyncio.sleep(poll)
        raise TimeoutError(f"{namespace}/{name}: {status.get('message')}")

    def stable_share(self, namespace: str, router: str, name: str) -> bool:
        """Whether the traffic objects send 100 % to the stable colour (blue here)."""
        service = self.core.read_namespaced_service(name, namespace)
        selector = dict(service.spec.selector or {})
        if selector.get("fortress.io/colour") != "blue":
            return False
        if router == "nginx":
            found = (
                client.NetworkingV1Api(self.api)
                .read_namespaced_ingress(f"{name}-canary", namespace)
                .to_dict()
            )
            annotations = (found.get("metadata") or {}).get("annotations") or {}
            return weight_of({"metadata": {"annotations": annotations}}) == 0
        if router == "gatewayAPI":
            route = self.custom.get_namespaced_custom_object(
                "gateway.networking.k8s.io", "v1", namespace, "httproutes", name
            )
            return all(canary == 0 for _, canary in weights_of(route, name, namespace))
        return True

    def router_objects(self, namespace: str, router: str, name: str) -> dict[str, Any]:
        if router == "nginx":
            client.NetworkingV1Api(self.api).create_namespaced_ingress(
                namespace,
                {
                    "metadata": {"name": name},
                    "spec": {
                        "rules": [
                            {
                                "host": f"{name}.example.com",
                                "http": {
                                    "paths": [
                                        {
                                            "path": "/",
                                            "pathType": "Prefix",
                                            "backend": {"service": {"name": name, "port": {"number": 8080}}},
                                        }
                                    ]
                                },
                            }
                        ]
                    },
                },
            )
            return {"type": "nginx", "nginx": {"stableIngress": name}}
        if router == "gatewayAPI":
            self.custom.create_namespaced_custom_object(
                "gateway.networking.k8s.io",
                "v1",
                namespace,
                "httproutes",
                {
                    "apiVersion": "gateway.networking.k8s.io/v1",
                    "kind": "HTTPRoute",
                    "metadata": {"name": name},
                    "spec": {
                        "parentRefs": [{"name": "gw"}],
                        "rules": [{"backendRefs": [{"name": name, "port": 8080}]}],
                    },
                },
            )
            return {"type": "gatewayAPI", "gatewayAPI": {"httpRoute": name}}
        return {"type": "replicas"}


# ---- 1: rollback latency ---------------------------------------------------------------------------


async def rollback_once(
    bench: Bench, prometheus: PrometheusProcess, app: SampleApp, namespace: str, router: str, name: str
) -> tuple[float, float]:
    routing = await asyncio.to_thread(bench.router_objects, namespace, router, name)
    v2 = template_hash(template(name, 2))
    app.set(v2, 0.0, 20, namespace=namespace, rollout=name)
    spec = {
        "service": name,
        "replicas": 4,
        "template": template(name, 1),
        "strategy": {
            "type": "canary",
            "canary": {"stages": [{"weight": 25, "pause": {"duration": "1h"}}, {"weight": 100}]},
        },
        "trafficRouting": routing,
        "analysis": {
            "prometheusAddress": prometheus.url,
            "interval": "1s",
            "failureLimit": 0,
            "thresholds": {"maxErrorRate": MAX_ERROR_RATE, "maxP95LatencyMs": 1000},
        },
    }
    await asyncio.to_thread(bench.create, namespace, rollout(name, spec))
    await bench.wait(namespace, name, lambda st: st.get("phase") == "Succeeded")
    await asyncio.to_thread(bench.patch, namespace, name, {"template": template(name, 2)})
    await bench.wait(
        namespace, name, lambda st: any(m.get("result") == "Successful" for m in st.get("metrics") or [])
    )
    from fortress.api.canaryrollout import CanaryRolloutSpec

    query = render(
        analysis_checks(CanaryRolloutSpec.model_validate(spec), 0)[0].query,
        Target(namespace, name, v2, "green"),
    )
    injected = time.monotonic()
    app.set(v2, 0.5, 20, namespace=namespace, rollout=name)
    visible: float | None = None
    stable: float | None = None
    deadline = injected + 30
    while time.monotonic() < deadline and (visible is None or stable is None):
        if visible is None:
            answer = await asyncio.to_thread(prometheus.query, query)
            result = (answer.get("data") or {}).get("result") or []  # type: ignore[attr-defined]
            if result and float(result[0]["value"][1]) > MAX_ERROR_RATE:
                visible = time.monotonic()
        if stable is None and await asyncio.to_thread(bench.stable_share, namespace, router, name):
            stable = time.monotonic()
        await asyncio.sleep(0.02)
    if visible is None or stable is None:
        raise TimeoutError(f"{router}: no rollback within 30 s")
    app.forget(v2, namespace=namespace, rollout=name)
    return max(0.0, stable - visible), stable - injected


# ---- 2: scale --------------------------------------------------------------------------------------


async def scale(bench: Bench, namespace: str, count: int, pid: int, metrics_port: int) -> dict[str, Any]:
    stages = [{"weight": 50, "pause": {"duration": "1s"}}, {"weight": 100, "pause": {"duration": "1s"}}]
    names = [f"app-{i:03d}" for i in range(count)]
    started = time.monotonic()
    for name in names:
        spec = {
            "service": name,
            "replicas": 2,
            "template": template(name, 1),
            "strategy": {"type": "canary", "canary": {"stages": stages}},
            "scaleDownDelay": "1s",
        }
        await asyncio.to_thread(bench.create, namespace, rollout(name, spec))
    created = time.monotonic() - started

    async def all_phase(predicate: Any, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            states = await asyncio.to_thread(bench.statuses, namespace)
            if len(states) == count and all(predicate(st) for st in states.values()):
                return
            await asyncio.sleep(0.25)
        raise TimeoutError("rollouts did not converge")

    await all_phase(lambda st: st.get("phase") == "Succeeded", 120)
    released = time.monotonic() - started
    await asyncio.sleep(2)
    idle_rss = rss_mb(pid)

    single: list[float] = []  # one spec change at a time, the other rollouts idle
    for name in names[: min(30, count)]:
        request = f"one-{name}"
        sent = time.monotonic()
        await asyncio.to_thread(
            bench.patch, namespace, name, {"request": {"action": "resume", "requestId": request}}
        )
        await bench.wait(namespace, name, lambda st, r=request: handled_id(st) == r, poll=0.01)
        single.append(time.monotonic() - sent)

    burst: list[float] = []  # a spec change to every rollout at once
    sent_at: dict[str, float] = {}
    burst_started = time.monotonic()
    for name in names:
        await asyncio.to_thread(
            bench.patch, namespace, name, {"request": {"action": "resume", "requestId": f"all-{name}"}}
        )
        sent_at[name] = time.monotonic()
    pending = set(names)
    deadline = time.monotonic() + 60
    while pending and time.monotonic() < deadline:
        states = await asyncio.to_thread(bench.statuses, namespace)
        now = time.monotonic()
        for name in list(pending):
            if handled_id(states.get(name)) == f"all-{name}":
                burst.append(now - sent_at[name])
                pending.discard(name)
        await asyncio.sleep(0.05)
    burst_total = time.monotonic() - burst_started

    before = metric_sum(await asyncio.to_thread(scrape, metrics_port), STEP_DURATION)
    cpu_before = cpu_seconds(pid)
    wave_started = time.monotonic()
    for name in names:
        await asyncio.to_thread(bench.patch, namespace, name, {"template": template(name, 2)})
    peak = rss_mb(pid)

    async def sample_rss() -> None:
        nonlocal peak
        while True:
            peak = max(peak, rss_mb(pid))
            await asyncio.sleep(0.25)

    sampler = asyncio.create_task(sample_rss())
    try:
        await all_phase(lambda st: st.get("phase") == "Succeeded" and st.get("stableColour") == "green", 180)
    finally:
        sampler.cancel()
    wave = time.monotonic() - wave_started
    cpu = cpu_seconds(pid) - cpu_before
    text = await asyncio.to_thread(scrape, metrics_port)
    step_sum, step_count = metric_sum(text, STEP_DURATION)
    wave_steps = step_count - before[1]
    return {
        "wave_steps": int(wave_steps),
        "wave_step_ms": 1000 * (step_sum - before[0]) / wave_steps if wave_steps else float("nan"),
        "wave_cpu_ms": 1000 * cpu / wave_steps if wave_steps else float("nan"),
        "wave_cpu": cpu,
        "created": created,
        "released": released,
        "idle_rss": idle_rss,
        "peak_rss": peak,
        "single": single,
        "burst": burst,
        "burst_total": burst_total,
        "wave": wave,
        "step_mean_ms": 1000 * step_sum / step_count if step_count else float("nan"),
        "steps": int(step_count),
    }


# ---- main ------------------------------------------------------------------------------------------


async def run(
    args: argparse.Namespace, api: client.ApiClient, pid: int, metrics_port: int, flavour: str
) -> None:
    bench = Bench(api)
    for namespace in ("bench-rollback", "bench-scale"):
        bench.create_namespace(namespace)
    simulators = [AvailabilitySimulator(api, ns, interval=0.05) for ns in ("bench-rollback", "bench-scale")]
    stop = asyncio.Event()
    sim_tasks = [asyncio.create_task(s.run(stop)) for s in simulators]
    baseline_rss = rss_mb(pid)
    rows: list[tuple[str, list[float], list[float]]] = []
    inside = (0.0, 0.0)
    try:
        if prometheus_binary() is None:
            print("rollback latency: skipped: no prometheus binary (Debian: apt-get install prometheus)")
        else:
            app = SampleApp(rps=200.0)
            await asyncio.to_thread(app.start)
            prometheus = PrometheusProcess([app.target], scrape_interval="1s")
            await asyncio.to_thread(prometheus.start)
            try:
                before = metric_sum(await asyncio.to_thread(scrape, metrics_port), ROLLBACK_LATENCY)
                for router in args.routers.split(","):
                    from_sample, from_injection = [], []
                    for i in range(args.repeats):
                        a, b = await rollback_once(
                            bench, prometheus, app, "bench-rollback", router, f"rb-{router.lower()}-{i}"
                        )
                        from_sample.append(a)
                        from_injection.append(b)
                    rows.append((router, from_sample, from_injection))
                after = metric_sum(await asyncio.to_thread(scrape, metrics_port), ROLLBACK_LATENCY)
                inside = (after[0] - before[0], after[1] - before[1])
            finally:
                await asyncio.to_thread(prometheus.stop)
                await asyncio.to_thread(app.stop)
        result = await scale(bench, "bench-scale", args.rollouts, pid, metrics_port)
    finally:
        stop.set()
        await asyncio.gather(*sim_tasks)

    report(args, rows, result, baseline_rss, flavour, inside)


def report(
    args: argparse.Namespace,
    rows: list[tuple[str, list[float], list[float]]],
    r: dict[str, Any],
    baseline_rss: float,
    flavour: str,
    inside: tuple[float, float],
) -> None:
    print()
    print(f"command: {COMMAND} --rollouts {args.rollouts} --repeats {args.repeats} --api {args.api}")
    print(
        f"machine: {os.cpu_count()} cores; Kubernetes API: {flavour}; operator and API in processes of "
        "their own; Deployment availability simulated (no Deployment controller)"
    )
    if rows:
        print()
        print("Rollback latency (analysis every 1 s, Prometheus scrape 1 s, failureLimit 0), seconds")
        head = (
            "router",
            "n",
            "sample->stable p50",
            "max",
            "inject->stable p50",
            "max",
            "share of 2s",
            "25s claim / ours",
        )
        print("  ".join(f"{h:>18}" if i > 1 else f"{h:<10}" for i, h in enumerate(head)))
        for router, a, b in rows:
            cells = [
                f"{statistics.median(a):.2f}",
                f"{max(a):.2f}",
                f"{statistics.median(b):.2f}",
                f"{max(b):.2f}",
                f"{statistics.median(a) / TARGET_SECONDS:.2f}",
                f"{CLAIM_SECONDS / max(statistics.median(a), 1e-3):.0f}x",
            ]
            print(f"{router:<10}  {len(a):<10}  " + "  ".join(f"{c:>18}" for c in cells))
        if inside[1]:
            print(
                f"inside the operator, failing measurement -> traffic written (all routers): mean "
                f"{1000 * inside[0] / inside[1]:.0f} ms over {inside[1]:.0f} rollbacks"
            )
    n = args.rollouts
    per_rollout = (r["idle_rss"] - baseline_rss) / n * 1024
    lines = [
        ("create the objects", f"{r['created']:.1f} s"),
        ("until every initial release Succeeded", f"{r['released']:.1f} s"),
        (f"reconcile latency, one spec change at a time (n={len(r['single'])})", spread(r["single"])),
        (
            f"reconcile latency, a change to all {n} at once",
            spread(r["burst"]) + f"; all in {r['burst_total']:.1f} s",
        ),
        (
            "canary wave across all at once, until all Succeeded",
            f"{r['wave']:.1f} s ({r['wave_steps']} steps)",
        ),
        ("  step wall time (observe, decide, act, history)", f"mean {r['wave_step_ms']:.0f} ms"),
        ("  operator CPU per step", f"{r['wave_cpu_ms']:.1f} ms ({r['wave_cpu']:.1f} s CPU in all)"),
        ("operator RSS with 0 rollouts", f"{baseline_rss:.0f} MB"),
        (f"operator RSS with {n}, idle / peak in the wave", f"{r['idle_rss']:.0f} / {r['peak_rss']:.0f} MB"),
        ("  per rollout", f"{per_rollout:.0f} kB"),
    ]
    print()
    print(f"Scale: {n} CanaryRollouts (2 pods each, stages 50 % / 100 % with 1 s pauses, replicas router)")
    width = max(len(k) for k, _ in lines)
    for key, value in lines:
        print(f"  {key:<{width}}  {value}")


def serve_emulator(url_file: str) -> int:
    """Child-process mode: serve the emulator until terminated, writing its URL to ``url_file``."""
    import signal

    server = EmulatorServer()
    url = server.start()
    Path(url_file).write_text(url)
    stopped = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopped.set())
    stopped.wait()
    server.stop()
    return 0


@contextlib.contextmanager
def kubernetes_api(choice: str, workdir: Path) -> Iterator[tuple[str, Path]]:
    """(flavour, kubeconfig) of the API the operator and the benchmark use, until the block exits."""
    from fortress_dev.controlplane import ControlPlane, binaries_present

    if choice == "controlplane" or (choice == "auto" and binaries_present()):
        # The API server alone: this benchmark simulates Deployment availability itself.
        plane = ControlPlane(workdir / "controlplane", controllers=False)
        try:
            plane.start()
            plane.install_crds(CRD_DIR)
            with contextlib.closing(
                client.ApiClient(load_cluster(str(plane.kubeconfig)).configuration)
            ) as api:
                install_crds(api, GATEWAY_CRD_DIR)
            yield "local kube-apiserver + etcd (bin/)", plane.kubeconfig
        finally:
            plane.stop()
        return
    url_file = workdir / "emulator-url"
    emulator = subprocess.Popen(
        [sys.executable, "-m", "benchmarks.bench_rollouts", "--serve-emulator", str(url_file)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while not url_file.exists() or not url_file.read_text():
            if time.monotonic() > deadline or emulator.poll() is not None:
                raise RuntimeError("the emulator process did not start")
            time.sleep(0.1)
        yield "in-memory emulator", write_kubeconfig(workdir / "kubeconfig", url_file.read_text())
    finally:
        stop(emulator)


def stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=20)
    if process.poll() is None:
        process.kill()
        process.wait(timeout=10)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rollouts", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--routers", default=",".join(ROUTERS))
    parser.add_argument(
        "--api",
        choices=("auto", "controlplane", "emulator"),
        default="auto",
        help="Kubernetes API: the local control plane when built (auto), or the in-memory emulator",
    )
    parser.add_argument("--serve-emulator", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_emulator:
        return serve_emulator(args.serve_emulator)
    workdir = Path(tempfile.mkdtemp(prefix="bench-rollouts-"))
    try:
        with kubernetes_api(args.api, workdir) as (flavour, kubeconfig):
            api = client.ApiClient(load_cluster(str(kubeconfig)).configuration)
            metrics_port = free_port()
            log = (workdir / "operator.log").open("wb")
            operator = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "fortress",
                    "run",
                    "--kubeconfig",
                    str(kubeconfig),
                    "-n",
                    "bench-rollback",
                    "-n",
                    "bench-scale",
                    "--metrics-port",
                    str(metrics_port),
                    "--liveness-port",
                    "0",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
            try:
                deadline = time.monotonic() + 60
                while time.monotonic() < deadline:
                    with contextlib.suppress(OSError):
                        scrape(metrics_port)
                        break
                    time.sleep(0.2)
                time.sleep(1.0)
                asyncio.run(run(args, api, operator.pid, metrics_port, flavour))
            finally:
                stop(operator)
                api.close()
                log.close()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
