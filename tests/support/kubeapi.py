"""The Kubernetes API the tests run against, and a helper that runs the operator in-process.

Order of preference: the cluster named by ``FORTRESS_TEST_KUBECONFIG``; the local control plane
built from source (``make controlplane``): etcd, kube-apiserver, kube-controller-manager,
kube-scheduler and kwok's fake nodes, so Deployments get Pods and garbage collection works (or the
API server alone when only it is built); the in-memory kmock emulator. Tests that need real
API-server semantics (schema validation, kubectl) use ``real_kube_api`` and skip on the emulator;
tests that need controllers (Pods, EndpointSlices, garbage collection) use ``controllers_kube_api``.

Under ``CI=true`` (without ``FORTRESS_TEST_KUBECONFIG``) the real tier is never lost silently: a
missing or failing control plane fails every test that needs the Kubernetes API, and
``FORTRESS_TEST_KUBE=emulator`` (for local runs only) is refused.
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
    reason: str = ""  # why it is not the full local control plane, when it is not
    controllers: bool = False  # Deployments get Pods, garbage collection runs, ...

    @property
    def real(self) -> bool:
        return self.flavour != "emulator"

    def cluster(self) -> Cluster:
        return load_cluster(str(self.kubeconfig))

    def api_client(self) -> client.ApiClient:
        return client.ApiClient(self.cluster().configuration)


def _in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() == "true"


BUILD_HINT = "run `make controlplane` (tests/controlplane/build.sh) first"


def require_controlplane_binaries(*, controllers: bool) -> None:
    """Skip (locally) or fail (under ``CI=true``) when the local control plane is not built."""
    from fortress_dev.controlplane import missing_binaries

    missing = missing_binaries(controllers=controllers)
    if not missing:
        return
    message = f"control plane binaries not built ({', '.join(missing)} missing in bin/): {BUILD_HINT}"
    if _in_ci():
        pytest.fail(f"{message} (CI=true: the real tier may not be skipped)", pytrace=False)
    pytest.skip(message)


def _controlplane_target(workdir: Path, *, controllers: bool, reason: str = "") -> Iterator[KubeTarget]:
    from fortress_dev.controlplane import ControlPlane

    plane = ControlPlane(workdir, controllers=controllers, crd_dir=CRD_DIR)
    try:
        plane.start()
    except Exception as error:
        pytest.fail(f"the local control plane failed to start: {error}", pytrace=False)
    try:
        yield KubeTarget("controlplane", plane.kubeconfig, reason=reason, controllers=controllers)
    finally:
        plane.stop()


@pytest.fixture(scope="session")
def kube_api() -> Iterator[KubeTarget]:
    """The session's Kubernetes API, CRDs installed."""
    external = os.environ.get("FORTRESS_TEST_KUBECONFIG")
    if external:
        target = KubeTarget("external", Path(external), controllers=True)
        with contextlib.closing(target.api_client()) as api:
            install_crds(api)
        yield target
        return
    ci = _in_ci()
    forced = os.environ.get("FORTRESS_TEST_KUBE", "")  # "emulator" skips the local control plane
    if forced == "emulator" and ci:
        pytest.fail(
            "FORTRESS_TEST_KUBE=emulator is refused under CI=true: CI must run the integration tests "
            "against the real local control plane, not the in-memory emulator (unset FORTRESS_TEST_KUBE "
            f"and {BUILD_HINT})",
            pytrace=False,
        )
    from fortress_dev.controlplane import binaries_present, missing_binaries

    workdir = Path(tempfile.mkdtemp(prefix="fortress-kube-"))
    try:
        if forced != "emulator" and binaries_present(controllers=True):
            yield from _controlplane_target(workdir, controllers=True)
            return
        if ci:
            missing = ", ".join(missing_binaries(controllers=True))
            pytest.fail(
                f"CI=true but the local control plane is not built (missing in bin/: {missing}): "
                f"{BUILD_HINT}; CI never falls back to the in-memory emulator",
                pytrace=False,
            )
        if forced != "emulator" and binaries_present():
            missing = ", ".join(missing_binaries(controllers=True))
            reason = f"the local API server runs without controllers ({missing} not built: {BUILD_HINT})"
            yield from _controlplane_target(workdir, controllers=False, reason=reason)
            return
        from fortress_dev.emulator import EmulatorThread

        emulator = EmulatorThread(CRD_DIR)
        server = emulator.start()
        reason = (
            "FORTRESS_TEST_KUBE=emulator"
            if forced == "emulator"
            else f"no FORTRESS_TEST_KUBECONFIG and no control plane binaries ({BUILD_HINT})"
        )
        try:
            yield KubeTarget("emulator", write_kubeconfig(workdir / "kubeconfig", server), reason=reason)
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


@pytest.fixture(scope="session")
def controllers_kube_api(kube_api: KubeTarget) -> KubeTarget:
    """The session's Kubernetes API when controllers run there (Pods, GC, ...); skips otherwise."""
    if not kube_api.controllers:
        pytest.skip(f"needs a Kubernetes API with controllers: {kube_api.reason}")
    return kube_api


@pytest.fixture
def k8s(kube_api: KubeTarget) -> Iterator[client.ApiClient]:
    """A synchronous client for test set-up and assertions (never used inside the operator)."""
    with contextlib.closing(kube_api.api_client()) as api:
        yield api


@pytest.fixture
def namespace(kube_api: KubeTarget, k8s: client.ApiClient) -> Iterator[str]:
    """A fresh namespace for one test, deleted afterwards.

    With controllers, only once its ``default`` ServiceAccount exists: the ServiceAccount admission
    plugin refuses Pods (even dry-run ones) in a namespace without it.
    """
    name = f"t-{uuid.uuid4().hex[:10]}"
    core = client.CoreV1Api(k8s)
    core.create_namespace({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
    if kube_api.controllers:
        wait_for_default_service_account(core, name)
    yield name
    with contextlib.suppress(ApiException):
        core.delete_namespace(name)


@contextlib.asynccontextmanager
async def running_operator(target: KubeTarget, **overrides: Any) -> AsyncIterator[OperatorConfig]:
    """Run the Fortress operator in-process against ``target`` until the block exits."""
    cluster = await asyncio.to_thread(target.cluster)
    async with operator_running(cluster, **overrides) as config:
        yield config


def wait_for_default_service_account(core: client.CoreV1Api, namespace: str, timeout: float = 30.0) -> None:
    """Block until the ServiceAccount controller has created ``default`` in ``namespace``."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            core.read_namespaced_service_account("default", namespace)
            return
        except ApiException as error:
            if error.status != 404 or time.monotonic() > deadline:
                raise
        time.sleep(0.05)


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
