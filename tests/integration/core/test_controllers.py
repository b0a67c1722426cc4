"""Real workloads on the local control plane: controllers, the scheduler and kwok's fake nodes.

One full control plane for the module (``ControlPlane`` with a sample CRD installed before the
controllers start), one namespace per test. Skips, saying why, only when the binaries are not built
(and fails instead under ``CI=true``).
"""

from __future__ import annotations

import contextlib
import ipaddress
import textwrap
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from fortress.adapters.kube import load_cluster
from fortress_dev.controlplane import POD_CRASH_LABEL, POD_NEVER_READY_LABEL, ControlPlane
from tests.support.kubeapi import require_controlplane_binaries, wait_for_default_service_account

T = TypeVar("T")

HOST_PLUGIN_DIR = Path("/usr/libexec/kubernetes")
GROUP, VERSION, PLURAL = "owners.fortress.test", "v1", "gadgets"
SAMPLE_CRD = textwrap.dedent(
    f"""\
    apiVersion: apiextensions.k8s.io/v1
    kind: CustomResourceDefinition
    metadata:
      name: {PLURAL}.{GROUP}
    spec:
      group: {GROUP}
      scope: Namespaced
      names: {{plural: {PLURAL}, singular: gadget, kind: Gadget, listKind: GadgetList}}
      versions:
        - name: {VERSION}
          served: true
          storage: true
          schema:
            openAPIV3Schema:
              type: object
              x-kubernetes-preserve-unknown-fields: true
    """
)


def _host_plugin_files() -> list[str]:
    if not HOST_PLUGIN_DIR.exists():
        return []
    return sorted(str(p) for p in HOST_PLUGIN_DIR.rglob("*"))


@pytest.fixture(scope="module")
def host_plugins_before() -> list[str] | None:
    """What /usr/libexec/kubernetes held before the control plane started (None: absent)."""
    return _host_plugin_files() if HOST_PLUGIN_DIR.exists() else None


@pytest.fixture(scope="module")
def plane(
    tmp_path_factory: pytest.TempPathFactory, host_plugins_before: list[str] | None
) -> Iterator[ControlPlane]:
    require_controlplane_binaries(controllers=True)
    crd_dir = tmp_path_factory.mktemp("crds")
    (crd_dir / "gadgets.yaml").write_text(SAMPLE_CRD)
    with ControlPlane(tmp_path_factory.mktemp("controlplane"), crd_dir=crd_dir) as cp:
        yield cp


@pytest.fixture(scope="module")
def api(plane: ControlPlane) -> Iterator[client.ApiClient]:
    with contextlib.closing(client.ApiClient(load_cluster(str(plane.kubeconfig)).configuration)) as api:
        yield api


@pytest.fixture
def ns(api: client.ApiClient) -> Iterator[str]:
    name = f"ctl-{uuid.uuid4().hex[:8]}"
    core = client.CoreV1Api(api)
    core.create_namespace({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
    wait_for_default_service_account(core, name)
    yield name
    with contextlib.suppress(ApiException):
        core.delete_namespace(name)


def until(predicate: Callable[[], T | None], what: str, timeout: float = 30.0) -> T:
    """Poll ``predicate`` until it returns a truthy value; fail saying ``what`` and the last value."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"{what}: not within {timeout:.0f}s (last: {value!r})")
        time.sleep(0.1)


def deployment(
    name: str, image: str = "registry.fortress.test/web:1", replicas: int = 3, **labels: str
) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name, **labels}},
                "spec": {"containers": [{"name": "web", "image": image, "ports": [{"containerPort": 8080}]}]},
            },
        },
    }


def pods_of(api: client.ApiClient, ns: str, app: str) -> list[client.V1Pod]:
    return list(client.CoreV1Api(api).list_namespaced_pod(ns, label_selector=f"app={app}").items)


def is_ready(pod: client.V1Pod) -> bool:
    return any(c.type == "Ready" and c.status == "True" for c in (pod.status.conditions or []))


def available(api: client.ApiClient, ns: str, name: str, replicas: int = 3) -> client.V1Deployment | None:
    d = client.AppsV1Api(api).read_namespaced_deployment(name, ns)
    s = d.status
    done = (
        s.observed_generation == d.metadata.generation
        and (s.updated_replicas, s.ready_replicas, s.available_replicas, s.replicas) == (replicas,) * 4
        and any(c.type == "Available" and c.status == "True" for c in s.conditions or [])
    )
    return d if done else None


def test_deployment_becomes_available_with_ready_pods(
    plane: ControlPlane, api: client.ApiClient, ns: str
) -> None:
    started = time.monotonic()
    client.AppsV1Api(api).create_namespaced_deployment(ns, deployment("web"))
    until(lambda: available(api, ns, "web"), "Deployment web available with 3 ready replicas")
    elapsed = time.monotonic() - started

    pods = pods_of(api, ns, "web")
    assert len(pods) == 3
    node_cidrs = {
        n.metadata.name: ipaddress.ip_network(n.spec.pod_cidr)
        for n in client.CoreV1Api(api).list_node().items
    }
    for pod in pods:
        assert pod.status.phase == "Running" and is_ready(pod), pod.status
        assert pod.spec.node_name in plane.node_names
        assert ipaddress.ip_address(pod.status.pod_ip) in node_cidrs[pod.spec.node_name]
        assert pod.spec.service_account_name == "default"  # admitted by the ServiceAccount plugin
        assert pod.metadata.owner_references[0].kind == "ReplicaSet"
    assert len({p.status.pod_ip for p in pods}) == 3
    print(f"3 ready pods in {elapsed:.2f}s")


def test_service_endpointslice_holds_pod_addresses(api: client.ApiClient, ns: str) -> None:
    client.AppsV1Api(api).create_namespaced_deployment(ns, deployment("api"))
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "api"},
        "spec": {"selector": {"app": "api"}, "ports": [{"port": 80, "targetPort": 8080}]},
    }
    created = client.CoreV1Api(api).create_namespaced_service(ns, service)
    assert ipaddress.ip_address(created.spec.cluster_ip) in ipaddress.ip_network("10.0.0.0/24")
    until(lambda: available(api, ns, "api"), "Deployment api available")
    pod_ips = {p.status.pod_ip for p in pods_of(api, ns, "api")}
    discovery = client.DiscoveryV1Api(api)

    def ready_addresses() -> set[str] | None:
        slices = discovery.list_namespaced_endpoint_slice(
            ns, label_selector="kubernetes.io/service-name=api"
        ).items
        addresses = {
            a
            for s in slices
            for e in s.endpoints or []
            if e.conditions and e.conditions.ready
            for a in e.addresses
        }
        return addresses if addresses == pod_ips else None

    until(ready_addresses, f"the EndpointSlice of Service api holds {sorted(pod_ips)}")
    slices = discovery.list_namespaced_endpoint_slice(
        ns, label_selector="kubernetes.io/service-name=api"
    ).items
    assert {p.port for s in slices for p in s.ports or []} == {8080}


def test_rolling_update_completes(api: client.ApiClient, ns: str) -> None:
    apps = client.AppsV1Api(api)
    apps.create_namespaced_deployment(ns, deployment("roll"))
    until(lambda: available(api, ns, "roll"), "Deployment roll available")
    patch = {
        "spec": {
            "template": {"spec": {"containers": [{"name": "web", "image": "registry.fortress.test/web:2"}]}}
        }
    }
    apps.patch_namespaced_deployment("roll", ns, patch)

    def rolled() -> list[client.V1Pod] | None:
        if not available(api, ns, "roll"):
            return None
        pods = pods_of(api, ns, "roll")
        images = {c.image for p in pods for c in p.spec.containers}
        return pods if len(pods) == 3 and images == {"registry.fortress.test/web:2"} else None

    pods = until(rolled, "all 3 pods of roll on web:2")
    assert all(is_ready(p) for p in pods)
    sets = apps.list_namespaced_replica_set(ns, label_selector="app=roll").items
    assert sorted((rs.spec.replicas, rs.status.ready_replicas or 0) for rs in sets) == [(0, 0), (3, 3)]


def test_deleting_a_deployment_collects_replicasets_and_pods(api: client.ApiClient, ns: str) -> None:
    apps = client.AppsV1Api(api)
    apps.create_namespaced_deployment(ns, deployment("gone"))
    until(lambda: available(api, ns, "gone"), "Deployment gone available")
    assert apps.list_namespaced_replica_set(ns, label_selector="app=gone").items
    apps.delete_namespaced_deployment("gone", ns)  # background propagation: the garbage collector

    def collected() -> bool:
        sets = apps.list_namespaced_replica_set(ns, label_selector="app=gone").items
        return not sets and not pods_of(api, ns, "gone")

    until(collected, "ReplicaSets and Pods of the deleted Deployment garbage-collected")


def test_pods_labelled_never_ready_or_crashing_stay_not_ready(api: client.ApiClient, ns: str) -> None:
    apps = client.AppsV1Api(api)
    apps.create_namespaced_deployment(ns, deployment("stuck", replicas=2, **{POD_NEVER_READY_LABEL: "true"}))
    apps.create_namespaced_deployment(ns, deployment("crash", replicas=1, **{POD_CRASH_LABEL: "true"}))
    apps.create_namespaced_deployment(ns, deployment("fine", replicas=1))
    until(lambda: available(api, ns, "fine", replicas=1), "the control Deployment available")

    def running(app: str, count: int) -> list[client.V1Pod] | None:
        pods = [p for p in pods_of(api, ns, app) if p.status.phase == "Running" and p.status.pod_ip]
        return pods if len(pods) == count else None

    until(lambda: running("stuck", 2), "2 never-ready pods Running with IPs")
    until(lambda: running("crash", 1), "the crashing pod Running with an IP")
    time.sleep(2.0)  # long enough for kwok's default pod-ready stage to have won, were it to
    stuck = pods_of(api, ns, "stuck")
    assert len(stuck) == 2 and not any(is_ready(p) for p in stuck)
    for pod in stuck:
        assert all(s.state.running and not s.ready for s in pod.status.container_statuses)
    (crashing,) = pods_of(api, ns, "crash")
    assert not is_ready(crashing)
    (status,) = crashing.status.container_statuses
    assert status.state.waiting.reason == "CrashLoopBackOff"
    assert status.last_state.terminated.exit_code == 1
    for name in ("stuck", "crash"):
        d = apps.read_namespaced_deployment(name, ns)
        assert not d.status.ready_replicas and not d.status.available_replicas, d.status


def test_configmap_owned_by_a_custom_object_is_collected(api: client.ApiClient, ns: str) -> None:
    custom, core = client.CustomObjectsApi(api), client.CoreV1Api(api)
    owner = custom.create_namespaced_custom_object(
        GROUP,
        VERSION,
        ns,
        PLURAL,
        {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "Gadget",
            "metadata": {"name": "g1"},
            "spec": {"size": 1},
        },
    )
    reference = {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "Gadget",
        "name": "g1",
        "uid": owner["metadata"]["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }
    for name in ("owned", "bystander"):
        meta: dict[str, Any] = {"name": name}
        if name == "owned":
            meta["ownerReferences"] = [reference]
        core.create_namespaced_config_map(ns, {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta})
    time.sleep(1.0)  # the garbage collector has seen the owner alive: the ConfigMap stays
    assert core.read_namespaced_config_map("owned", ns).metadata.owner_references[0].uid == reference["uid"]
    custom.delete_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, "g1")

    def collected() -> bool:
        try:
            core.read_namespaced_config_map("owned", ns)
        except ApiException as error:
            return error.status == 404
        return False

    until(collected, "the ConfigMap owned by the deleted Gadget garbage-collected")
    assert core.read_namespaced_config_map("bystander", ns).metadata.name == "bystander"


def test_nothing_written_on_the_host(plane: ControlPlane, host_plugins_before: list[str] | None) -> None:
    """kube-controller-manager's flex volume directory is in the workdir, not /usr/libexec/kubernetes."""
    if host_plugins_before is None:
        assert not HOST_PLUGIN_DIR.exists(), _host_plugin_files()
    else:
        assert _host_plugin_files() == host_plugins_before
    assert (plane.workdir / "kube-controller-manager" / "volume-plugins").is_dir()
