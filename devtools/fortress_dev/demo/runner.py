"""The local demo: PostgreSQL, a Kubernetes API, the operator and every example, converging.

Everything started here is stopped before returning, also on failure or Ctrl-C.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import importlib
import pkgutil
import shutil
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any, cast

import yaml
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from fortress import discovery
from fortress.adapters import migrations
from fortress.adapters.kube import Cluster, load_cluster
from fortress.api import BY_KIND, GROUP, VERSION
from fortress.core.loop import NOT_IMPLEMENTED
from fortress.paths import examples_dir
from fortress_dev import backends
from fortress_dev.kube import CRD_DIR, install_crds, operator_running, write_kubeconfig

NAMESPACE = "fortress-demo"
# Former step names ``--only`` still accepts, for one more release (``disaster`` became ``dr``).
STEP_ALIASES = {"disaster": "dr"}
Printer = Callable[[str], None]


@dataclass
class DemoContext:
    """What a capability's demo step can use."""

    namespace: str
    api: client.ApiClient
    cluster: Cluster
    pg_factory: Any  # fortress_dev.postgres.PgFactory
    dsn: str  # the main, migrated database
    say: Printer
    secrets: dict[str, dict[str, str]] = field(
        default_factory=dict
    )  # the examples' Secrets: name -> key -> DSN
    # True on a cluster and on the full local control plane (controllers and kwok's fake nodes); False
    # on the emulator and a bare kube-apiserver: no controllers run there, so a Deployment never gets
    # pods unless a subsystem's ``environment(ctx)`` stands in (and says so).
    controllers: bool = False


def example_objects() -> list[dict[str, Any]]:
    """Every Fortress object in examples/, in file order."""
    objects: list[dict[str, Any]] = []
    for path in sorted(examples_dir().glob("*.yaml")):
        objects.extend(
            doc for doc in yaml.safe_load_all(path.read_text()) if doc and doc.get("kind") in BY_KIND
        )
    return objects


@contextlib.asynccontextmanager
async def kubernetes_api(
    kubeconfig: str | None, workdir: Path, say: Printer
) -> AsyncIterator[tuple[Cluster, bool]]:
    """A Kubernetes API, and whether controllers run there (Deployments get pods).

    The given kubeconfig's cluster (controllers: yes); else the local control plane if built: with
    controllers and kwok's fake nodes when all of it is built, else the API server alone (no); else
    the in-memory emulator (no). Starting and stopping are blocking (processes, files, polling), so
    they run in worker threads.
    """
    if kubeconfig:
        say(f"Kubernetes API: the cluster in {kubeconfig}")
        cluster = await asyncio.to_thread(load_cluster, kubeconfig)
        await asyncio.to_thread(_install_crds, cluster)
        yield cluster, True
        return
    from fortress_dev import controlplane

    if controlplane.binaries_present():
        full = controlplane.binaries_present(controllers=True)
        plane = controlplane.ControlPlane(workdir / "controlplane", controllers=full, crd_dir=CRD_DIR)
        try:
            started = time.monotonic()
            await asyncio.to_thread(plane.start)
            elapsed = time.monotonic() - started
            if full:
                say(
                    f"Kubernetes API: local control plane at {plane.server} (etcd, kube-apiserver, "
                    f"kube-controller-manager, kube-scheduler, kwok with {plane.nodes} fake nodes; "
                    f"up in {elapsed:.1f}s)"
                )
            else:
                missing = ", ".join(controlplane.missing_binaries(controllers=True))
                say(
                    f"Kubernetes API: local kube-apiserver + etcd at {plane.server} (up in {elapsed:.1f}s; "
                    f"no controllers: {missing} not built, run `make controlplane`)"
                )
            yield await asyncio.to_thread(load_cluster, str(plane.kubeconfig)), full
        finally:
            await asyncio.to_thread(plane.stop)
        return
    from fortress_dev.emulator import EmulatorThread

    emulator = EmulatorThread(CRD_DIR)
    server = await asyncio.to_thread(emulator.start)
    say(f"Kubernetes API: in-memory emulator at {server} (build a real one with `make controlplane`)")
    try:
        path = await asyncio.to_thread(write_kubeconfig, workdir / "kubeconfig", server)
        yield await asyncio.to_thread(load_cluster, str(path)), False
    finally:
        await asyncio.to_thread(emulator.stop)


def _install_crds(cluster: Cluster) -> None:
    with contextlib.closing(client.ApiClient(cluster.configuration)) as api:
        install_crds(api)


def prepare_namespace(api: client.ApiClient, secrets: dict[str, dict[str, str]]) -> None:
    """Create the demo namespace and the Secrets the examples reference."""
    core = client.CoreV1Api(api)
    with contextlib.suppress(ApiException):
        core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=NAMESPACE)))
    backends.apply_secrets(api, NAMESPACE, secrets)


def apply_examples(api: client.ApiClient, objects: list[dict[str, Any]]) -> None:
    custom = client.CustomObjectsApi(api)
    for obj in objects:
        body = copy.deepcopy(obj)
        body["metadata"]["namespace"] = NAMESPACE
        plural = BY_KIND[body["kind"]].plural
        try:
            custom.create_namespaced_custom_object(GROUP, VERSION, NAMESPACE, plural, body)
        except ApiException as error:
            if error.status != 409:
                raise


def read_statuses(api: client.ApiClient, objects: list[dict[str, Any]]) -> list[dict[str, Any]]:
    custom = client.CustomObjectsApi(api)
    rows = []
    for obj in objects:
        info = BY_KIND[obj["kind"]]
        current = cast(
            dict[str, Any],
            custom.get_namespaced_custom_object(
                GROUP, VERSION, NAMESPACE, info.plural, obj["metadata"]["name"]
            ),
        )
        status = current.get("status") or {}
        ready = next((c for c in status.get("conditions") or [] if c.get("type") == "Ready"), None)
        rows.append(
            {
                "kind": obj["kind"],
                "name": obj["metadata"]["name"],
                "generation": current["metadata"].get("generation"),
                "observed": status.get("observedGeneration"),
                "phase": status.get("phase") or "-",
                "ready": (ready or {}).get("status", "-"),
                "reason": (ready or {}).get("reason", "-"),
                "message": status.get("message") or "",
            }
        )
    return rows


def table(rows: list[dict[str, Any]]) -> str:
    headers = ["KIND", "NAME", "PHASE", "READY", "REASON", "GEN", "OBSERVED", "MESSAGE"]
    keys = ["kind", "name", "phase", "ready", "reason", "generation", "observed", "message"]
    cells = [[str(row[k]) for k in keys] for row in rows]
    widths = [max(len(h), *(len(c[i]) for c in cells)) for i, h in enumerate(headers)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True))]
    lines += ["  ".join(c.ljust(w) for c, w in zip(cell, widths, strict=True)) for cell in cells]
    return "\n".join(line.rstrip() for line in lines)


def step_modules() -> list[ModuleType]:
    """Every step module of this package (all but the runner), in the subsystems' order."""
    import fortress_dev.demo as package

    names = [m.name for m in pkgutil.iter_modules(package.__path__) if m.name != "runner"]
    ranked = {name: index for index, name in enumerate(discovery.PREFERRED_ORDER)}
    names.sort(key=lambda name: (ranked.get(name, len(ranked)), name))
    return [importlib.import_module(f"{package.__name__}.{name}") for name in names]


def step_name(module: ModuleType) -> str:
    """``fortress_dev.demo.ledger`` -> ``ledger``."""
    return module.__name__.rsplit(".", 1)[-1]


def select_steps(available: Sequence[str], only: Sequence[str]) -> list[str]:
    """The demo steps to run, in ``available`` order: all, or those named in ``only``.

    ``STEP_ALIASES`` are accepted for their step. Raises ValueError naming the valid steps when
    ``only`` names one that does not exist.
    """
    only = [STEP_ALIASES.get(name, name) for name in only]
    unknown = sorted(set(only) - set(available))
    if unknown:
        raise ValueError(f"no demo step {', '.join(unknown)}; the steps are: {', '.join(available)}")
    return [step for step in available if not only or step in only]


async def run_demo(
    kubeconfig: str | None = None,
    wait_seconds: float = 90.0,
    say: Printer = print,
    only: Sequence[str] = (),
) -> int:
    """Run the whole demo (the capability steps named in ``only``, when given); 0 on success."""
    demos = {step_name(module): module for module in step_modules()}
    try:
        steps = [demos[name] for name in select_steps(list(demos), only)]
    except ValueError as error:
        say(f"fortress demo --only: {error}")
        return 2
    from fortress.adapters.pgbin import find_bindir
    from fortress_dev.postgres import PgFactory

    bindir = find_bindir()
    if bindir is None:
        say("PostgreSQL binaries (initdb, pg_ctl) not found: install the postgresql package (make demo does)")
        return 1
    workdir = Path(tempfile.mkdtemp(prefix="fortress-demo-"))
    factory = PgFactory(bindir)
    try:
        started = time.monotonic()
        pg = await asyncio.to_thread(factory.create)
        dsn = pg.dsn()
        say(f"PostgreSQL {pg.port}: started in {time.monotonic() - started:.2f}s")
        applied = await migrations.up(dsn, migrations.default_migrations_dir())
        say(f"PostgreSQL {pg.port}: migrations applied: {', '.join(map(str, applied)) or 'none pending'}")
        started_backends = time.monotonic()
        servers = await asyncio.to_thread(backends.provision, factory)
        say(
            f"PostgreSQL for the examples: {len(servers.clusters)} servers (ledger, 4 shards, 3 regions in "
            f"streaming replication) in {time.monotonic() - started_backends:.1f}s"
        )
        async with kubernetes_api(kubeconfig, workdir, say) as (cluster, controllers):
            api = client.ApiClient(cluster.configuration)
            try:
                await asyncio.to_thread(prepare_namespace, api, servers.secrets)
                objects = example_objects()
                context = DemoContext(
                    NAMESPACE, api, cluster, factory, dsn, say, servers.secrets, controllers=controllers
                )
                async with (
                    operator_running(cluster, namespaces=(NAMESPACE,)),
                    contextlib.AsyncExitStack() as environments,
                ):
                    # what a subsystem runs for the whole demo: ``environment(ctx)``, an async context
                    # manager (e.g. Deployment status where no controller writes it)
                    for module in demos.values():
                        if hasattr(module, "environment"):
                            await environments.enter_async_context(module.environment(context))
                    say(f"operator running; applying {len(objects)} examples to namespace {NAMESPACE}")
                    await asyncio.to_thread(apply_examples, api, objects)
                    rows = await _converge(api, objects, wait_seconds)
                    say("")
                    say(table(rows))
                    say("")
                    not_ready = [r for r in rows if not settled(r)]
                    if not_ready:
                        say(f"{len(not_ready)} of {len(rows)} not Ready after {wait_seconds:.0f}s")
                        return 1
                    pending = sorted({r["kind"] for r in rows if r["reason"] == NOT_IMPLEMENTED})
                    if pending:
                        say(f"not built yet (Ready=False, NotImplemented): {', '.join(pending)}")
                    # each step module of this package: async demo(ctx), raises on failure
                    for module in steps:
                        await module.demo(context)
                ready = sum(1 for r in rows if r["ready"] == "True")
                say(f"{ready} resources Ready after {time.monotonic() - started:.1f}s; stopping all")
                return 0
            finally:
                await asyncio.to_thread(api.close)
    finally:
        await asyncio.to_thread(factory.close)
        shutil.rmtree(workdir, ignore_errors=True)


def settled(row: dict[str, Any]) -> bool:
    """Reconciled for its generation, and Ready (or saying that its kind is not built yet)."""
    ready = row["ready"] == "True" or (row["ready"] == "False" and row["reason"] == NOT_IMPLEMENTED)
    return bool(row["observed"] == row["generation"] and ready)


async def _converge(
    api: client.ApiClient, objects: list[dict[str, Any]], wait_seconds: float
) -> list[dict[str, Any]]:
    deadline = time.monotonic() + wait_seconds
    while True:
        rows = await asyncio.to_thread(read_statuses, api, objects)
        if all(settled(r) for r in rows) or time.monotonic() > deadline:
            return rows
        await asyncio.sleep(0.5)
