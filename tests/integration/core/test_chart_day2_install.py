"""The chart's day-2 objects on a real API server (the local control plane or FORTRESS_TEST_KUBECONFIG):
every rendered object accepted with ``kubectl apply --dry-run=server``, every pod template (the
``helm test`` Pod, the migrations hook Job, the drill CronJob) admitted under the "restricted" Pod
Security Standard, and the test Pod's and the drill's ServiceAccounts doing their work with only
their generated permissions. Skips on the in-memory emulator.

``helm test`` itself is not run: the fake nodes (kwok) mark Pods Running but never run their
containers, so its Pod would never finish; its command is run for real by
``tests/integration/core/test_healthcheck.py`` and below with the test Pod's own ServiceAccount.
Likewise, where the controllers run, the migrations hook Job gets its pod through the Job controller
and restricted admission, and kwok completes it without running ``fortress migrate``
(``test_chart_migrations.py`` runs those containers against PostgreSQL).
"""

from __future__ import annotations

import asyncio
import copy
import sys
from pathlib import Path
from typing import Any

import helm_python as helm
import pytest
import yaml
from kubernetes import client

from fortress.api import GROUP, KINDS, VERSION
from fortress.paths import repo_root
from tests.integration.core.test_chart_install import _allowed, _token_kubeconfig, installed
from tests.integration.core.test_realapi import kubectl
from tests.support.kubeapi import KubeTarget, wait_for
from tests.unit.core.test_chart import CASES
from tests.unit.core.test_chart_day2 import pod_templates

pytestmark = pytest.mark.realapi
CHART = repo_root() / "charts" / "fortress"
RESTRICTED = {
    "pod-security.kubernetes.io/enforce": "restricted",
    "pod-security.kubernetes.io/enforce-version": "latest",
}


def _values(case: str, namespace: str) -> dict[str, Any]:
    values = copy.deepcopy(CASES[case])
    if values.get("drills", {}).get("dr", {}).get("namespace"):
        values["drills"]["dr"]["namespace"] = namespace
    return values


def _rendered(
    values: dict[str, Any], namespace: str, upgrade: bool, name: str = "fortress"
) -> list[dict[str, Any]]:
    rendered = helm.Chart.load(str(CHART)).render(
        values, name=name, namespace=namespace, revision=2 if upgrade else 1,
        is_install=not upgrade, is_upgrade=upgrade,
    )  # fmt: skip
    return [
        doc
        for path, text in sorted(rendered.items())
        if not path.endswith(".txt")
        for doc in yaml.safe_load_all(text)
        if doc
    ]


def _restrict(k8s: client.ApiClient, namespace: str) -> None:
    core = client.CoreV1Api(k8s)
    core.patch_namespace(namespace, {"metadata": {"labels": RESTRICTED}})
    privileged = {
        "metadata": {"name": "control"},
        "spec": {"containers": [{"name": "c", "image": "x", "securityContext": {"privileged": True}}]},
    }
    try:
        core.create_namespaced_pod(namespace, privileged, dry_run="All")
    except client.exceptions.ApiException as error:
        assert error.status == 403
        return
    pytest.skip("this API server does not enforce Pod Security admission")


@pytest.mark.parametrize("upgrade", [False, True], ids=["install", "upgrade"])
@pytest.mark.parametrize("case", ["day2", "day2-alt"])
async def test_every_object_is_accepted_by_the_server(
    real_kube_api: KubeTarget, k8s: client.ApiClient, namespace: str, tmp_path: Path, case: str, upgrade: bool
) -> None:
    await asyncio.to_thread(_restrict, k8s, namespace)
    docs = _rendered(_values(case, namespace), namespace, upgrade)
    kinds = {doc["kind"] for doc in docs}
    assert {"HorizontalPodAutoscaler", "Ingress", "Job", "CronJob"} <= kinds
    # ServiceAccount admission (where the controllers run) looks up a Pod's ServiceAccount even in
    # a dry run: those are created for real first
    accounts = tmp_path / "accounts.yaml"
    await asyncio.to_thread(
        accounts.write_text, yaml.safe_dump_all([d for d in docs if d["kind"] == "ServiceAccount"])
    )
    await kubectl(real_kube_api, "apply", "-f", str(accounts))
    manifest = tmp_path / "manifest.yaml"
    await asyncio.to_thread(manifest.write_text, yaml.safe_dump_all(docs))
    _, out, _ = await kubectl(
        real_kube_api, "apply", "--dry-run=server", "--validate=strict", "-f", str(manifest)
    )
    assert out.count("(server dry run)") == len(docs), out
    # Pod Security admission enforces on Pods: each template as a Pod in the restricted namespace
    core = client.CoreV1Api(k8s)
    for name, spec in pod_templates(docs).items():
        pod = {"metadata": {"name": name.split("/")[1].lower()}, "spec": spec}
        await asyncio.to_thread(core.create_namespaced_pod, namespace, pod, dry_run="All")


async def _fortress(*args: str) -> tuple[int, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "fortress", *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    out, _ = await asyncio.wait_for(process.communicate(), timeout=120)
    return process.returncode or 0, out.decode()


def _plan(namespace: str) -> dict[str, Any]:
    from fortress_dev.localregions import plan_manifest

    body = plan_manifest("orders", namespace, service="orders-db")
    body["metadata"]["labels"] = {"fortress.io/drill": "true"}
    return body  # type: ignore[no-any-return]


async def test_the_test_pod_and_the_drill_work_with_their_own_permissions(
    real_kube_api: KubeTarget, k8s: client.ApiClient, namespace: str, tmp_path: Path
) -> None:
    await asyncio.to_thread(_restrict, k8s, namespace)
    values = _values("day2-alt", namespace)
    values["tests"] = {"enabled": True}
    if not real_kube_api.controllers:  # without a Job controller the pre-install hook never completes
        values["migrations"] = {"enabled": False}
    secret = {
        "metadata": {"name": "ledger-db"},
        "stringData": {"dsn": "postgresql://nobody@127.0.0.1:1/none"},
    }
    await asyncio.to_thread(client.CoreV1Api(k8s).create_namespaced_secret, namespace, secret)
    with installed(real_kube_api, namespace, values) as release:
        if real_kube_api.controllers:  # the hook Job's pod was admitted and (kwok) completed
            with helm.Config(kubeconfig_path=str(real_kube_api.kubeconfig), namespace=namespace) as config:
                hooks = config.get_all(release["name"])["hooks"]
            (migrate,) = [h for h in hooks if str(h.get("name")).endswith("-migrate")]
            assert migrate["events"] == ["pre-install", "pre-upgrade"]
            assert migrate["last_run"]["phase"] == "Succeeded", migrate["last_run"]
        manifest = [doc for doc in yaml.safe_load_all(release["manifest"]) if doc]
        kinds = {doc["kind"] for doc in manifest}
        assert {"HorizontalPodAutoscaler", "Ingress", "CronJob"} <= kinds
        accounts = {
            doc["metadata"]["labels"]["app.kubernetes.io/component"]: doc["metadata"]["name"]
            for doc in manifest
            if doc["kind"] == "ServiceAccount"
        }

        # the test Pod's ServiceAccount: every CRD checked, nothing else allowed
        test_account = accounts["healthcheck"]
        kubeconfig = await asyncio.to_thread(
            _token_kubeconfig, real_kube_api, k8s, namespace, test_account, tmp_path / "test.kubeconfig"
        )
        code, out = await _fortress("healthcheck", "--crds", "--kubeconfig", str(kubeconfig))
        assert code == 0, out
        assert out.count("Established") == len(KINDS)
        user = f"system:serviceaccount:{namespace}:{test_account}"
        for group, resource, verb in (
            ("", "secrets", "get"), ("", "pods", "create"), (GROUP, "drplans", "list"),
            ("apiextensions.k8s.io", "customresourcedefinitions", "list"),
        ):  # fmt: skip
            assert not await asyncio.to_thread(_allowed, k8s, user, namespace, group, resource, verb), (
                resource
            )

        # the helm test Pod as `helm test` creates it: admitted in the restricted namespace
        hooks = [d for d in _rendered(values, namespace, False, release["name"]) if d["kind"] == "Pod"]
        (test_pod,) = hooks
        assert test_pod["metadata"]["annotations"]["helm.sh/hook"] == "test"
        core = client.CoreV1Api(k8s)
        await asyncio.to_thread(core.create_namespaced_pod, namespace, test_pod)
        if real_kube_api.controllers:
            name = test_pod["metadata"]["name"]

            def scheduled() -> bool:
                return bool(core.read_namespaced_pod(name, namespace).spec.node_name)

            await wait_for(scheduled, timeout=60)

        # the drill's ServiceAccount: finds the labelled plan, records the result as an Event
        custom = client.CustomObjectsApi(k8s)
        await asyncio.to_thread(
            custom.create_namespaced_custom_object, GROUP, VERSION, namespace, "drplans", _plan(namespace)
        )
        kubeconfig = await asyncio.to_thread(
            _token_kubeconfig, real_kube_api, k8s, namespace, accounts["drill"], tmp_path / "drill.kubeconfig"
        )
        code, out = await _fortress(
            "dr", "--kubeconfig", str(kubeconfig), "drill", "-n", namespace, "--wait=1"
        )
        assert code == 5 and "DrillSkipped" in out and "not yet observed" in out, out
        assert "Forbidden" not in out and "403" not in out
        events = await asyncio.to_thread(core.list_namespaced_event, namespace)
        assert [e.reason for e in events.items if e.involved_object.name == "orders"] == ["DrillSkipped"]
        user = f"system:serviceaccount:{namespace}:{accounts['drill']}"
        assert not await asyncio.to_thread(_allowed, k8s, user, namespace, GROUP, "drplans", "delete")
        assert not await asyncio.to_thread(_allowed, k8s, user, "default", GROUP, "drplans", "list")
