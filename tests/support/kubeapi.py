"""The Kubernetes API the tests run against, and a helper that runs the operator in-process.

Order of preference: the cluster named by ``FORTRESS_TEST_KUBECONFIG``; a local kube-apiserver and
etcd built from source (``make controlplane``); the in-memory kmock emulator. Tests that need real
API-server semantics (schema validation, kubectl) use ``real_kube_api`` and skip on the emulator.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from fortress.adapters.kube import Cluster, load_cluster
from fortress.api import GROUP, VERSION
from fortress.runtime import OperatorConfig
from fortress_dev.kube import CRD_DIR, install_crds, operator_running, write_kubeconfig


@dataclass
class KubeTarget:
    """A running Kubernetes API and how to reach it."""

    flavour: str  # "external", "controlplane" or "emulator"
    kubeconfig: Path
    reason: str = ""

    @property
    def real(self) -> bool:
        return self.flavour != "emulator"

    def cluster(self) -> Cluster:
        return load_cluster(str(self.kubeconfig))

    def api_client(self) -> client.ApiClient:
        return client.ApiClient(self.cluster().configuration)


def _controlplane_target(workdir: Path) -> Iterator[KubeTarget] | None:
    try:
        from fortress_dev.controlplane import ControlPlane, binaries_present
    except ImportError:
        return None
    if not binaries_present():
        return None

    def generate() -> Iterator[KubeTarget]:
        plane = ControlPlane(workdir)
        try:
            plane.start()
            plane.install_crds(CRD_DIR)
            yield KubeTarget("controlplane", plane.kubeconfig)
        except Exception as error:
            pytest.fail(f"the local control plane failed to start: {error}\n{plane.log_tails()}")
        finally:
            plane.stop()

    return generate()


@pytest.fixture(scope="session")
def kube_api() -> Iterator[KubeTarget]:
    """The session's Kubernetes API, CRDs installed."""
    external = os.environ.get("FORTRESS_TEST_KUBECONFIG")
    if external:
        target = KubeTarget("external", Path(external))
        with contextlib.closing(target.api_client()) as api:
            install_crds(api)
        yield target
        return
    workdir = Path(tempfile.mkdtemp(prefix="fortress-kube-"))
    try:
        forced = os.environ.get("FORTRESS_TEST_KUBE", "")  # "emulator" skips the local control plane
        planes = None if forced == "emulator" else _controlplane_target(workdir)
        if planes is not None:
            yield from planes
            return
        from fortress_dev.emulator import EmulatorThread

        emulator = EmulatorThread(CRD_DIR)
        server = emulator.start()
        try:
            yield KubeTarget(
                "emulator",
                write_kubeconfig(workdir / "kubeconfig", server),
                reason="no FORTRESS_TEST_KUBECONFIG and no control plane binaries (run `make controlplane`)",
            )
        finally:
            emulator.stop()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture(scope="session")
def real_kube_api(kube_api: KubeTarget) -> KubeTarget:
    """The session's Kubernetes API when it is a real API server; skips on the emulator."""
    if not kube_api.real:
        pytest.skip(f"needs a real Kubernetes API server: {kube_api.reason}")
    return kube_api


@pytest.fixture
def k8s(kube_api: KubeTarget) -> Iterator[client.ApiClient]:
    """A synchronous client for test set-up and assertions (never used inside the operator)."""
    with contextlib.closing(kube_api.api_client()) as api:
        yield api


@pytest.fixture
def namespace(k8s: client.ApiClient) -> Iterator[str]:
    """A fresh namespace for one test, deleted afterwards."""
    name = f"t-{uuid.uuid4().hex[:10]}"
    core = client.CoreV1Api(k8s)
    core.create_namespace({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
    yield name
    with contextlib.suppress(ApiException):
        core.delete_namespace(name)


@contextlib.asynccontextmanager
async def running_operator(target: KubeTarget, **overrides: Any) -> AsyncIterator[OperatorConfig]:
    """Run the Fortress operator in-process against ``target`` until the block exits."""
    cluster = await asyncio.to_thread(target.cluster)
    async with operator_running(cluster, **overrides) as config:
        yield config


def custom_api(api: client.ApiClient) -> client.CustomObjectsApi:
    return client.CustomObjectsApi(api)


async def wait_for(predicate: Any, timeout: float = 30.0, interval: float = 0.2) -> Any:
    """Poll a synchronous predicate (off the loop) until it returns a truthy value."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = await asyncio.to_thread(predicate)
        if last:
            return last
        await asyncio.sleep(interval)
    raise TimeoutError(f"condition not met in {timeout}s; last value: {last!r}")


def plural_of(kind: str) -> str:
    from fortress.api import BY_KIND

    return BY_KIND[kind].plural


__all__ = ["GROUP", "VERSION"]
