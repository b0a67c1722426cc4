"""Local Kubernetes API helpers shared by the demo and the tests: kubeconfigs and CRD installation."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import yaml
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from fortress.adapters.kube import Cluster
from fortress.paths import repo_root
from fortress.runtime import OperatorConfig, run

CRD_DIR = repo_root() / "crds"


def write_kubeconfig(path: Path, server: str) -> Path:
    """A kubeconfig for a plain-HTTP server (the emulator)."""
    document = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "local", "cluster": {"server": server}}],
        "users": [{"name": "local", "user": {}}],
        "contexts": [{"name": "local", "context": {"cluster": "local", "user": "local"}}],
        "current-context": "local",
    }
    path.write_text(yaml.safe_dump(document))
    return path


def install_crds(api: client.ApiClient, crd_dir: Path = CRD_DIR, timeout: float = 60.0) -> None:
    """Create or replace every CRD and wait until each is Established."""
    ext = client.ApiextensionsV1Api(api)
    names = []
    for path in sorted(crd_dir.glob("*.yaml")):
        body = yaml.safe_load(path.read_text())
        name = body["metadata"]["name"]
        names.append(name)
        try:
            current = ext.read_custom_resource_definition(name)
            meta = current.metadata
            body["metadata"]["resourceVersion"] = meta.resource_version if meta else None
            ext.replace_custom_resource_definition(name, body)
        except ApiException as error:
            if error.status != 404:
                raise
            ext.create_custom_resource_definition(body)
    deadline = time.monotonic() + timeout
    for name in names:
        while True:
            crd = ext.read_custom_resource_definition(name)
            conditions = (crd.status.conditions if crd.status else None) or []
            if any(c.type == "Established" and c.status == "True" for c in conditions):
                break
            if time.monotonic() > deadline:
                raise TimeoutError(f"CRD {name} not Established after {timeout}s")
            time.sleep(0.2)


@contextlib.asynccontextmanager
async def operator_running(cluster: Cluster, **overrides: Any) -> AsyncIterator[OperatorConfig]:
    """Run the Fortress operator in-process against ``cluster`` until the block exits."""
    config = OperatorConfig(cluster=cluster, **overrides)
    stop, ready = asyncio.Event(), asyncio.Event()
    task = asyncio.create_task(run(config, stop_flag=stop, ready_flag=ready))
    ready_wait = asyncio.create_task(ready.wait())
    done, _ = await asyncio.wait({task, ready_wait}, timeout=60, return_when=asyncio.FIRST_COMPLETED)
    if task in done:
        ready_wait.cancel()
        task.result()  # raises what stopped it
        raise RuntimeError("the operator stopped during start-up")
    if ready_wait not in done:
        task.cancel()
        raise TimeoutError("the operator did not become ready in 60 s")
    try:
        yield config
    finally:
        stop.set()
        done, _ = await asyncio.wait({task}, timeout=60)
        if not done:  # Kopf waits for handlers and daemons to finish; do not hang the caller forever
            task.cancel()
            await asyncio.wait({task}, timeout=10)
        elif not task.cancelled() and task.exception() is not None:
            raise task.exception()  # type: ignore[misc]
