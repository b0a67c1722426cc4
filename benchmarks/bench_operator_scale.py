"""The operator at scale: N resources of mixed kinds on the full local control plane, and a soak.

    .venv/bin/python -m benchmarks.bench_operator_scale [--sizes 10,100,1000] [--changes 60]
        [--soak-seconds 600] [--soak-size 100] [--nodes auto]

What runs: the local control plane with its controllers (``make controlplane``: etcd,
kube-apiserver, kube-controller-manager, kube-scheduler, kwok's fake nodes; the fixture's service and
pod CIDRs), one PostgreSQL cluster (``initdb``/``pg_ctl``), and the operator as its own process
(``python -m fortress run -n <namespace>``, a fresh one per size) under a ServiceAccount of its own,
so that the API server's audit log (this benchmark's audit policy logs that user only) counts exactly
the operator's API requests.

Per size N, in a namespace of its own: mostly CanaryRollouts (1 replica each: a real Deployment,
ReplicaSet and a kwok Pod), plus CreditLedgers (one database each, all on the one PostgreSQL
cluster), ComplianceScans of the namespace and SyntheticDatasets into ConfigMaps. Measured:

* convergence: from the first create until every resource's ``status.observedGeneration`` equals its
  generation (and the rollouts are Succeeded);
* spec-change latency: a spec change (a field that starts no new release) until
  ``status.observedGeneration`` catches up, as a watch on each kind sees it: one change at a time
  over a sample of the resources, then a burst changing a sample all at once (p50 / p99 / max);
* reconciles per second (``fortress_operator_reconciles_total`` on the operator's metrics endpoint)
  and API requests per reconcile (the operator's requests in the audit log over the reconciles in
  the same window);
* the operator's RSS and CPU (``/proc/<pid>``), idle after start and after convergence.

The soak (``--soak-seconds``, default 600, on ``--soak-size`` resources) changes one resource's spec
every second and one rollout's pod template every 20 s (a real release: new pods, a scale-down)
and reports the RSS at the start, the end and the highest in between.

No peer runs beside it: no figure of another controller's scale measured the same way is documented
(Argo Rollouts documents none; see the note printed at the end), so the table has no ratio.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import json
import math
import os
import random
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import yaml
from kubernetes import client, watch
from kubernetes.client.exceptions import ApiException

from fortress.adapters.kube import load_cluster
from fortress.adapters.pgbin import find_bindir
from fortress.api import GROUP, VERSION
from fortress_dev.controlplane import ControlPlane, missing_binaries
from fortress_dev.kube import CRD_DIR
from fortress_dev.postgres import PgCluster, PgFactory

OPERATOR_NAMESPACE = "fortress-bench"
OPERATOR_ACCOUNT = "operator"
OPERATOR_USER = f"system:serviceaccount:{OPERATOR_NAMESPACE}:{OPERATOR_ACCOUNT}"
RECONCILES = "fortress_operator_reconciles_total"

ROLLOUTS, LEDGERS, SCANS, DATASETS = "canaryrollouts", "creditledgers", "compliancescans", "syntheticdatasets"
KINDS = (ROLLOUTS, LEDGERS, SCANS, DATASETS)

AUDIT_POLICY = {
    "apiVersion": "audit.k8s.io/v1",
    "kind": "Policy",
    "omitStages": ["RequestReceived", "ResponseStarted"],
    "rules": [{"level": "Metadata", "users": [OPERATOR_USER]}, {"level": "None"}],
}


# ---- the processes ---------------------------------------------------------------------------------


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


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
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        return str(response.read().decode())


def reconciles(port: int) -> float:
    text = scrape(port)
    return sum(float(m.group(1)) for m in re.finditer(rf"^{RECONCILES}{{[^}}]*}} (\S+)$", text, re.M))


class AuditLog:
    """The operator's requests as the API server's audit log records them (one line per request)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._offset = 0

    def mark(self) -> None:
        self._offset = self.path.stat().st_size if self.path.exists() else 0

    def since_mark(self) -> dict[str, int]:
        """Requests since :meth:`mark`, by verb (and ``total``)."""
        counts: dict[str, int] = {"total": 0}
        if not self.path.exists():
            return counts
        with self.path.open("rb") as f:
            f.seek(self._offset)
            for line in f:
                try:
                    event = json.loads(line)
                except ValueError:
                    continue
                if event.get("user", {}).get("username") != OPERATOR_USER:
                    continue
                verb = str(event.get("verb"))
                counts[verb] = counts.get(verb, 0) + 1
                counts["total"] += 1
        return counts


def operator_kubeconfig(plane: ControlPlane, api: client.ApiClient, path: Path) -> Path:
    """A kubeconfig for the operator's own ServiceAccount (cluster-admin), so the audit log tells it apart."""
    core, rbac = client.CoreV1Api(api), client.RbacAuthorizationV1Api(api)
    with contextlib.suppress(ApiException):
        core.create_namespace({"metadata": {"name": OPERATOR_NAMESPACE}})
    with contextlib.suppress(ApiException):
        core.create_namespaced_service_account(OPERATOR_NAMESPACE, {"metadata": {"name": OPERATOR_ACCOUNT}})
    binding = {
        "metadata": {"name": "fortress-bench-operator"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "cluster-admin"},
        "subjects": [{"kind": "ServiceAccount", "name": OPERATOR_ACCOUNT, "namespace": OPERATOR_NAMESPACE}],
    }
    with contextlib.suppress(ApiException):
        rbac.create_cluster_role_binding(binding)
    request = {"spec": {"expirationSeconds": 24 * 3600}}
    token = core.create_namespaced_service_account_token(OPERATOR_ACCOUNT, OPERATOR_NAMESPACE, request)
    ca = base64.b64encode(plane.ca_file.read_bytes()).decode()
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {"name": "bench", "cluster": {"server": plane.server, "certificate-authority-data": ca}}
        ],
        "users": [{"name": "operator", "user": {"token": token.status.token}}],
        "contexts": [{"name": "bench", "context": {"cluster": "bench", "user": "operator"}}],
        "current-context": "bench",
    }
    path.write_text(yaml.safe_dump(config))
    path.chmod(0o600)
    return path


@dataclass
class Operator:
    """``python -m fortress run`` in a subprocess, watching one namespace."""

    kubeconfig: Path
    namespace: str
    log: Path
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        argv = [sys.executable, "-m", "fortress", "run", "--kubeconfig", str(self.kubeconfig)]
        argv += ["-n", self.namespace, "--metrics-port", str(self.port), "--liveness-port", "0"]
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError):
                scrape(self.port)
                return
            if self.process.poll() is not None:
                break
            time.sleep(0.2)
        raise RuntimeError(f"the operator did not serve its metrics; see {self.log}")

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def stop(self) -> None:
        if self.process is None:
            return
        self.process.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=20)
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)


# ---- the resources -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Mix:
    rollouts: int
    ledgers: int
    scans: int
    datasets: int

    @classmethod
    def of(cls, n: int) -> Mix:
        """Mostly rollouts: 1 ledger, scan and dataset per 50 resources (at least one each)."""
        ledgers = scans = max(1, n // 50)
        datasets = max(1, n // 50)
        return cls(n - ledgers - scans - datasets, ledgers, scans, datasets)

    def names(self) -> dict[str, list[str]]:
        return {
            ROLLOUTS: [f"web-{i:04d}" for i in range(self.rollouts)],
            LEDGERS: [f"ledger-{i:03d}" for i in range(self.ledgers)],
            SCANS: [f"scan-{i:03d}" for i in range(self.scans)],
            DATASETS: [f"data-{i:03d}" for i in range(self.datasets)],
        }


def rollout_body(name: str, image: str = "web:1") -> dict[str, Any]:
    return {
        "metadata": {"name": name},
        "spec": {
            "service": name,
            "replicas": 1,
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "app", "image": image, "ports": [{"containerPort": 8080}]}]},
            },
            "strategy": {
                "type": "canary",
                "canary": {"stages": [{"weight": 100, "pause": {"duration": "1s"}}]},
            },
            "scaleDownDelay": "2s",
            "progressDeadline": "10m",
        },
    }


def ledger_body(name: str, secret: str) -> dict[str, Any]:
    return {
        "metadata": {"name": name},
        "spec": {
            "database": {"secretKeyRef": {"name": secret, "key": "dsn"}},
            "snapshotInterval": 100,
            "projection": {"batchSize": 500, "pollInterval": "2s"},
        },
    }


def scan_body(name: str, namespace: str) -> dict[str, Any]:
    return {
        "metadata": {"name": name},
        "spec": {
            "frameworks": ["SOC2", "GDPR"],
            "schedule": "0 2 * * *",
            "targetNamespaces": [namespace],
            "remediation": {"mode": "dryRun"},
            "passingScore": 90,
            "policyReports": False,
        },
    }


def dataset_body(name: str) -> dict[str, Any]:
    return {
        "metadata": {"name": name},
        "spec": {"kind": "users", "count": 50, "seed": 1, "target": {"type": "configMap"}},
    }


def spec_change(plural: str, generation: int) -> dict[str, Any]:
    """A change of spec that starts no release (a new value each time)."""
    if plural == ROLLOUTS:
        return {"historyLimit": 10 + generation % 20}
    if plural == LEDGERS:
        return {"snapshotInterval": 100 + generation % 50}
    if plural == SCANS:
        return {"passingScore": 80 + generation % 15}
    return {"seed": generation}


class Objects:
    """Creates, patches and lists the benchmark's custom resources (synchronous; call off the loop)."""

    def __init__(self, api: client.ApiClient, namespace: str) -> None:
        self.api, self.namespace = api, namespace
        self.custom = client.CustomObjectsApi(api)

    def create(self, plural: str, body: dict[str, Any]) -> None:
        kind = {ROLLOUTS: "CanaryRollout", LEDGERS: "CreditLedger", SCANS: "ComplianceScan"}.get(
            plural, "SyntheticDataset"
        )
        body = {"apiVersion": f"{GROUP}/{VERSION}", "kind": kind, **body}
        self.custom.create_namespaced_custom_object(GROUP, VERSION, self.namespace, plural, body)

    def patch(self, plural: str, name: str, spec: dict[str, Any]) -> int:
        """Patch the spec; the new generation."""
        found = self.custom.patch_namespaced_custom_object(
            GROUP, VERSION, self.namespace, plural, name, {"spec": spec}
        )
        return int(found["metadata"]["generation"])

    def items(self, plural: str) -> list[dict[str, Any]]:
        found = self.custom.list_namespaced_custom_object(GROUP, VERSION, self.namespace, plural)
        return list(found.get("items") or [])


class Generations:
    """Watches each kind in the namespace; when each object's status.observedGeneration reached what."""

    def __init__(self, api: client.ApiClient, namespace: str) -> None:
        self.api, self.namespace = api, namespace
        self.observed: dict[tuple[str, str], tuple[int, float]] = {}
        self.phase: dict[tuple[str, str], str] = {}
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._watch, args=(p,), daemon=True) for p in KINDS]

    def start(self) -> Generations:
        for thread in self._threads:
            thread.start()
        return self

    def _watch(self, plural: str) -> None:
        custom = client.CustomObjectsApi(self.api)
        version = ""
        while not self._stop.is_set():
            try:
                if not version:
                    found = custom.list_namespaced_custom_object(GROUP, VERSION, self.namespace, plural)
                    for item in found.get("items") or []:
                        self._seen(plural, item)
                    version = found["metadata"]["resourceVersion"]
                stream = watch.Watch()
                for event in stream.stream(
                    custom.list_namespaced_custom_object,
                    GROUP,
                    VERSION,
                    self.namespace,
                    plural,
                    resource_version=version,
                    timeout_seconds=5,
                ):
                    obj = event["object"]
                    version = obj["metadata"]["resourceVersion"]
                    if event["type"] != "DELETED":
                        self._seen(plural, obj)
                    if self._stop.is_set():
                        stream.stop()
            except ApiException as error:
                if error.status == 410:
                    version = ""
                else:
                    time.sleep(0.5)
            except Exception:  # a dropped connection: watch again from where it was
                time.sleep(0.2)

    def _seen(self, plural: str, obj: dict[str, Any]) -> None:
        status = obj.get("status") or {}
        observed = status.get("observedGeneration")
        key = (plural, obj["metadata"]["name"])
        with self._cond:
            if status.get("phase"):
                self.phase[key] = str(status["phase"])
            if observed is not None and int(observed) > self.observed.get(key, (0, 0.0))[0]:
                self.observed[key] = (int(observed), time.monotonic())
                self._cond.notify_all()

    def wait(self, keys: list[tuple[str, str, int]], timeout: float) -> dict[tuple[str, str], float]:
        """Wait until each (plural, name) observed at least its generation; when each did."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                missing = [k for k in keys if self.observed.get((k[0], k[1]), (0, 0.0))[0] < k[2]]
                if not missing:
                    return {(p, n): self.observed[(p, n)][1] for p, n, _ in keys}
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"{len(missing)} resources did not catch up, e.g. {missing[:3]}")
                self._cond.wait(min(left, 1.0))

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(10)


# ---- measuring -----------------------------------------------------------------------------------------


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, math.ceil(q * len(ordered)) - 1)] if ordered else float("nan")


@dataclass
class Window:
    """Reconciles, the operator's API requests and its CPU over one stretch of time."""

    operator: Operator
    audit: AuditLog
    started: float = 0.0
    reconciles: float = 0.0
    cpu: float = 0.0

    def open(self) -> Window:
        self.audit.mark()
        self.started = time.monotonic()
        self.reconciles = reconciles(self.operator.port)
        self.cpu = cpu_seconds(self.operator.pid)
        return self

    def close(self) -> dict[str, float]:
        seconds = time.monotonic() - self.started
        count = reconciles(self.operator.port) - self.reconciles
        cpu = cpu_seconds(self.operator.pid) - self.cpu
        requests = self.audit.since_mark()
        return {
            "seconds": seconds,
            "reconciles": count,
            "reconciles_per_s": count / seconds if seconds else 0.0,
            "requests": requests["total"],
            "requests_per_reconcile": requests["total"] / count if count else float("nan"),
            "cpu_percent": 100 * cpu / seconds if seconds else 0.0,
            "writes": sum(v for k, v in requests.items() if k in ("create", "update", "patch", "delete")),
        }


@dataclass
class SizeResult:
    n: int
    mix: Mix
    converge_seconds: float
    converge: dict[str, float]
    sequential: list[float]
    burst: list[float]
    by_kind: dict[str, list[float]]  # one-at-a-time and burst latencies of each kind
    changes: dict[str, float]
    idle: dict[str, float]
    idle_rss: float
    rss_after: float
    peak_rss: float


def prepare_ledgers(pg: PgCluster, count: int, prefix: str) -> list[str]:
    """One database per ledger on the one cluster; their DSNs."""

    async def create() -> None:
        conn = await asyncpg.connect(pg.dsn())
        try:
            for i in range(count):
                await conn.execute(f"CREATE DATABASE {prefix}_{i}")
        finally:
            await conn.close()

    asyncio.run(create())
    return [pg.dsn(f"{prefix}_{i}") for i in range(count)]


def run_size(
    n: int,
    api: client.ApiClient,
    kubeconfig: Path,
    audit: AuditLog,
    pg: PgCluster,
    workdir: Path,
    changes: int,
    keep: bool = False,
    idle_seconds: float = 20.0,
) -> tuple[SizeResult, Operator | None]:
    namespace = f"scale-{n}"
    mix = Mix.of(n)
    names = mix.names()
    core = client.CoreV1Api(api)
    core.create_namespace({"metadata": {"name": namespace}})
    deadline = time.monotonic() + 30
    while True:  # Pods need the namespace's default ServiceAccount
        try:
            core.read_namespaced_service_account("default", namespace)
            break
        except ApiException:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)
    dsns = prepare_ledgers(pg, mix.ledgers, f"ledger_{n}")
    for i, dsn in enumerate(dsns):
        secret = {"metadata": {"name": f"ledger-db-{i}"}, "stringData": {"dsn": dsn}}
        core.create_namespaced_secret(namespace, secret)

    operator = Operator(kubeconfig, namespace, workdir / f"operator-{n}.log")
    operator.start()
    time.sleep(2.0)
    idle_rss = rss_mb(operator.pid)
    objects = Objects(api, namespace)
    generations = Generations(api, namespace).start()
    peak = [idle_rss]
    sampling = threading.Event()

    def sample_rss() -> None:
        while not sampling.is_set():
            with contextlib.suppress(OSError):
                peak[0] = max(peak[0], rss_mb(operator.pid))
            sampling.wait(0.5)

    sampler = threading.Thread(target=sample_rss, daemon=True)
    sampler.start()
    try:
        window = Window(operator, audit).open()
        started = time.monotonic()
        for name in names[ROLLOUTS]:
            objects.create(ROLLOUTS, rollout_body(name))
        for i, name in enumerate(names[LEDGERS]):
            objects.create(LEDGERS, ledger_body(name, f"ledger-db-{i}"))
        for name in names[SCANS]:
            objects.create(SCANS, scan_body(name, namespace))
        for name in names[DATASETS]:
            objects.create(DATASETS, dataset_body(name))
        every = [(p, name, 1) for p, group in names.items() for name in group]
        generations.wait(every, timeout=120 + 2 * n)
        # the rollouts' first release done: their pods are available
        wait_phase(generations, [(ROLLOUTS, x) for x in names[ROLLOUTS]], "Succeeded", 120 + 2 * n)
        converge_seconds = time.monotonic() - started
        converge = window.close()
        time.sleep(3.0)  # the scale-downs and analysis-free waits settle
        rss_after = rss_mb(operator.pid)
        idle = Window(operator, audit).open()
        time.sleep(idle_seconds)  # nothing changes: the periodic resyncs alone
        idle_window = idle.close()

        rng = random.Random(n)
        pool = [(p, name) for p, group in names.items() for name in group]
        window = Window(operator, audit).open()
        sequential = []
        by_kind: dict[str, list[float]] = {p: [] for p in KINDS}
        for plural, name in [rng.choice(pool) for _ in range(changes)]:
            sent = time.monotonic()
            generation = objects.patch(plural, name, spec_change(plural, rng.randrange(1000)))
            seen = generations.wait([(plural, name, generation)], timeout=60)
            sequential.append(seen[(plural, name)] - sent)
            by_kind[plural].append(sequential[-1])
            time.sleep(0.05)
        burst_keys = rng.sample(pool, min(max(changes, 100), len(pool)))
        sent_at: dict[tuple[str, str], float] = {}
        wanted = []
        for plural, name in burst_keys:
            sent_at[(plural, name)] = time.monotonic()
            generation = objects.patch(plural, name, spec_change(plural, rng.randrange(1000)))
            wanted.append((plural, name, generation))
        seen = generations.wait(wanted, timeout=60 + n)
        burst = [seen[k] - sent_at[k] for k in sent_at]
        for key, sent in sent_at.items():
            by_kind[key[0]].append(seen[key] - sent)

        change_window = window.close()
    finally:
        sampling.set()
        sampler.join(5)
        generations.stop()
    result = SizeResult(
        n,
        mix,
        converge_seconds,
        converge,
        sequential,
        burst,
        by_kind,
        change_window,
        idle_window,
        idle_rss,
        rss_after,
        peak[0],
    )
    if keep:
        return result, operator
    operator.stop()
    with contextlib.suppress(ApiException):
        core.delete_namespace(namespace)
    return result, None


def wait_phase(generations: Generations, keys: list[tuple[str, str]], phase: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        with generations._cond:
            missing = [k for k in keys if generations.phase.get(k) != phase]
        if not missing:
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"{len(missing)} rollouts not {phase}, e.g. {missing[:3]}")
        time.sleep(0.2)


def soak(
    n: int, seconds: float, api: client.ApiClient, operator: Operator, audit: AuditLog
) -> dict[str, Any]:
    """Periodic spec changes on the size-``n`` namespace for ``seconds``; the RSS over time."""
    namespace = f"scale-{n}"
    objects = Objects(api, namespace)
    names = Mix.of(n).names()
    pool = [(p, name) for p, group in names.items() for name in group]
    rng = random.Random(7)
    window = Window(operator, audit).open()
    start_rss = rss_mb(operator.pid)
    samples = [(0.0, start_rss)]
    started = time.monotonic()
    releases = changes = 0
    next_release = started + 20
    while (elapsed := time.monotonic() - started) < seconds:
        plural, name = rng.choice(pool)
        with contextlib.suppress(ApiException):
            objects.patch(plural, name, spec_change(plural, rng.randrange(1000)))
            changes += 1
        if time.monotonic() >= next_release and names[ROLLOUTS]:
            target = rng.choice(names[ROLLOUTS])
            template = rollout_body(target, f"web:{releases + 2}")["spec"]["template"]
            with contextlib.suppress(ApiException):
                objects.patch(ROLLOUTS, target, {"template": template})
                releases += 1
            next_release += 20
        if not samples or elapsed - samples[-1][0] >= 10:
            samples.append((elapsed, rss_mb(operator.pid)))
        time.sleep(1.0)
    samples.append((time.monotonic() - started, rss_mb(operator.pid)))
    return {
        "seconds": seconds,
        "changes": changes,
        "releases": releases,
        "start_rss": start_rss,
        "end_rss": samples[-1][1],
        "max_rss": max(r for _, r in samples),
        "samples": samples,
        "window": window.close(),
    }


# ---- the report ---------------------------------------------------------------------------------------


def ms(value: float) -> str:
    return f"{value * 1000:.0f} ms"


def report(results: list[SizeResult], soaked: dict[str, Any] | None, soak_size: int, plane: str) -> None:
    print(f"\nOperator at scale ({plane}; the operator in its own process, one per size)\n")

    def mix(r: SizeResult) -> str:
        return f"{r.n} ({r.mix.rollouts}/{r.mix.ledgers}/{r.mix.scans}/{r.mix.datasets})"

    def rss(r: SizeResult) -> str:
        return f"{r.idle_rss:.0f} / {r.rss_after:.0f} / {r.peak_rss:.0f} MB"

    def kind_spread(plural: str) -> Callable[[SizeResult], str]:
        def cell(r: SizeResult) -> str:
            found = r.by_kind.get(plural) or []
            if not found:
                return "-"
            return f"{statistics.median(found) * 1000:.0f} / {max(found) * 1000:.0f} ms"

        return cell

    def per(window: str, key: str, fmt: str) -> Callable[[SizeResult], str]:
        return lambda r: format(getattr(r, window)[key], fmt)

    rows: list[tuple[str, Callable[[SizeResult], str]]] = [
        ("resources (rollouts/ledgers/scans/datasets)", mix),
        ("all converged (created -> observed; rollouts Succeeded)", lambda r: f"{r.converge_seconds:.1f} s"),
        ("  reconciles/s while converging", per("converge", "reconciles_per_s", ".1f")),
        ("  API requests per reconcile while converging", per("converge", "requests_per_reconcile", ".2f")),
        ("  operator CPU while converging (% of a core)", per("converge", "cpu_percent", ".0f")),
        (
            "spec change -> observedGeneration, one at a time: p50",
            lambda r: ms(statistics.median(r.sequential)),
        ),
        ("  p99", lambda r: ms(pct(r.sequential, 0.99))),
        ("  (changes)", lambda r: str(len(r.sequential))),
        ("spec change -> observedGeneration, burst: p50", lambda r: ms(statistics.median(r.burst))),
        ("  p99", lambda r: ms(pct(r.burst, 0.99))),
        ("  (changes at once)", lambda r: str(len(r.burst))),
        *((f"  {plural}: p50 / max (both)", kind_spread(plural)) for plural in KINDS),
        ("reconciles/s idle (no change, resyncs only)", per("idle", "reconciles_per_s", ".1f")),
        ("  operator CPU idle (% of a core)", per("idle", "cpu_percent", ".0f")),
        ("reconciles/s during the changes", per("changes", "reconciles_per_s", ".1f")),
        ("API requests per reconcile during the changes", per("changes", "requests_per_reconcile", ".2f")),
        ("operator CPU during the changes (% of a core)", per("changes", "cpu_percent", ".0f")),
        ("operator RSS: idle / converged / peak", rss),
    ]
    width = max(len(label) for label, _ in rows)
    header = f"{'':<{width}}  " + "  ".join(f"{'N=' + str(r.n):>22}" for r in results)
    print(header)
    print("-" * len(header))
    for label, cell in rows:
        print(f"{label:<{width}}  " + "  ".join(f"{cell(r):>22}" for r in results))
    if soaked is not None:
        w = soaked["window"]
        print(f"\nSoak: N={soak_size}, {soaked['seconds']:.0f} s, {soaked['changes']} spec changes, "
              f"{soaked['releases']} releases (new pod templates)")  # fmt: skip
        print(f"  operator RSS start / end / max: {soaked['start_rss']:.1f} / {soaked['end_rss']:.1f} / "
              f"{soaked['max_rss']:.1f} MB")  # fmt: skip
        print(f"  reconciles/s {w['reconciles_per_s']:.1f}, API requests per reconcile "
              f"{w['requests_per_reconcile']:.2f}, CPU {w['cpu_percent']:.0f} % of a core")  # fmt: skip
        trail = ", ".join(f"{t:.0f}s {r:.0f}" for t, r in soaked["samples"])
        print(f"  RSS (MB) over time: {trail}")
    print(
        "\nPeer: no comparable figure is documented. Argo Rollouts' documentation gives no count of "
        "Rollouts per controller nor a reconcile latency at scale, so no ratio is printed."
    )


@contextlib.contextmanager
def infrastructure(workdir: Path, nodes: int) -> Iterator[tuple[ControlPlane, PgFactory, PgCluster]]:
    audit_policy = workdir / "audit-policy.yaml"
    audit_policy.write_text(yaml.safe_dump(AUDIT_POLICY))
    flags = [
        f"--audit-policy-file={audit_policy}",
        f"--audit-log-path={workdir / 'audit.log'}",
        "--audit-log-format=json",
        "--audit-log-maxsize=0",
    ]
    plane = ControlPlane(workdir / "controlplane", nodes=nodes, crd_dir=CRD_DIR, apiserver_flags=flags)
    bindir = find_bindir()
    if bindir is None:
        raise SystemExit("PostgreSQL binaries not found (initdb, pg_ctl)")
    factory = PgFactory(bindir)
    try:
        plane.start(timeout=180)
        pg = factory.create(durable=False, max_connections=300)
        yield plane, factory, pg
    finally:
        factory.close()
        plane.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", default="10,100,1000", help="resource counts, comma-separated")
    parser.add_argument("--changes", type=int, default=60, help="spec changes one at a time per size")
    parser.add_argument("--soak-seconds", type=float, default=600.0, help="0 skips the soak")
    parser.add_argument("--soak-size", type=int, default=100, help="the size the soak runs on")
    parser.add_argument(
        "--nodes", default="auto", help="fake nodes (auto: 110 pods each, room for 2 per rollout)"
    )
    args = parser.parse_args(argv)
    missing = missing_binaries(controllers=True)
    if missing:
        print(f"the control plane is not built ({', '.join(missing)} missing in bin/): make controlplane")
        return 2
    sizes = [int(x) for x in args.sizes.split(",") if x]
    if args.soak_seconds > 0 and args.soak_size not in sizes:
        sizes.append(args.soak_size)
    biggest = max(sizes)
    nodes = int(args.nodes) if args.nodes != "auto" else max(3, math.ceil(2 * biggest / 100))
    workdir = Path(tempfile.mkdtemp(prefix="bench-scale-"))
    results: list[SizeResult] = []
    soaked = None
    try:
        with infrastructure(workdir, nodes) as (plane, _factory, pg):
            api = client.ApiClient(load_cluster(str(plane.kubeconfig)).configuration)
            kubeconfig = operator_kubeconfig(plane, api, workdir / "operator.kubeconfig")
            audit = AuditLog(workdir / "audit.log")
            for n in sorted(sizes):
                keep = args.soak_seconds > 0 and n == args.soak_size
                started = time.monotonic()
                result, operator = run_size(n, api, kubeconfig, audit, pg, workdir, args.changes, keep)
                results.append(result)
                print(f"N={n}: measured in {time.monotonic() - started:.0f} s", file=sys.stderr)
                if operator is not None:
                    try:
                        soaked = soak(n, args.soak_seconds, api, operator, audit)
                    finally:
                        operator.stop()
            plane_text = (
                f"kube-apiserver + controller-manager + scheduler + kwok, {nodes} fake nodes; PostgreSQL "
                f"{pg.dsn().split('@')[-1]}"
            )
            report([r for r in results if r.n in set(int(x) for x in args.sizes.split(",") if x)] or results,
                   soaked, args.soak_size, plane_text)  # fmt: skip
            api.close()
    finally:
        if os.environ.get("BENCH_KEEP_WORKDIR"):
            print(f"workdir kept: {workdir}", file=sys.stderr)
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
