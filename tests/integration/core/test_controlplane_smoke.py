"""Smoke tests of the local control plane used by integration tests and the demo.

The API server alone (etcd + kube-apiserver), then the full control plane (with
kube-controller-manager, kube-scheduler and kwok's fake nodes) started and stopped, also after a
failed start. What the controllers do is in ``test_controllers.py``.
"""

from __future__ import annotations

import os
import re
import textwrap
from pathlib import Path

import pytest
import yaml

from fortress.paths import repo_root
from fortress_dev.controlplane import (
    CONTROLLER_BINARIES,
    KUBE_APISERVER,
    ControlPlane,
    ControlPlaneError,
)
from tests.support.kubeapi import require_controlplane_binaries

SAMPLE_CRD = textwrap.dedent(
    """\
    apiVersion: apiextensions.k8s.io/v1
    kind: CustomResourceDefinition
    metadata:
      name: widgets.smoke.fortress.test
    spec:
      group: smoke.fortress.test
      scope: Namespaced
      names:
        plural: widgets
        singular: widget
        kind: Widget
        listKind: WidgetList
      versions:
        - name: v1alpha1
          served: true
          storage: true
          schema:
            openAPIV3Schema:
              type: object
              properties:
                spec:
                  type: object
                  required: [size]
                  properties:
                    size:
                      type: integer
                      minimum: 1
    """
)


def _expected_git_version() -> str:
    gomod = (repo_root() / "tests/controlplane/kubernetes/go.mod").read_text()
    match = re.search(r"^\s*(?:require\s+)?k8s\.io/kubernetes\s+(v\S+)", gomod, re.MULTILINE)
    assert match, "k8s.io/kubernetes not required in kubernetes/go.mod"
    return match.group(1)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie still answers kill(0); it is gone for our purposes.
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except FileNotFoundError:
        return False


def _processes_mentioning(path: Path) -> list[str]:
    """Live processes whose command line names ``path`` (every component gets its workdir)."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if str(path) in cmdline and _alive(int(proc.name)):
            found.append(f"{proc.name}: {cmdline[:200]}")
    return found


def test_controlplane_smoke(tmp_path: Path) -> None:
    """The API server alone (``controllers=False``)."""
    require_controlplane_binaries(controllers=False)
    crd_dir = tmp_path / "crds"
    crd_dir.mkdir()
    (crd_dir / "widgets.yaml").write_text(SAMPLE_CRD)

    cp = ControlPlane(tmp_path / "cp", controllers=False)
    with cp:
        pids = list(cp.pids().values())
        assert sorted(cp.pids()) == ["etcd", "kube-apiserver"]
        assert cp.server.startswith("https://127.0.0.1:")

        # The admin kubeconfig points at the server with a client certificate.
        config = yaml.safe_load(cp.kubeconfig.read_text())
        assert config["clusters"][0]["cluster"]["server"] == cp.server
        assert config["users"][0]["user"]["client-certificate-data"]

        status, version = cp.request("GET", "/version")
        assert status == 200, version
        assert version["gitVersion"] == _expected_git_version()

        # Authenticated as fortress-admin in system:masters.
        status, review = cp.request(
            "POST",
            "/apis/authentication.k8s.io/v1/selfsubjectreviews",
            {"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"},
        )
        assert status == 201, review
        user = review["status"]["userInfo"]
        assert user["username"] == "fortress-admin"
        assert "system:masters" in user["groups"]

        # The API server creates "default" itself (start() waits for it).
        status, _ = cp.request("GET", "/api/v1/namespaces/default")
        assert status == 200

        ns = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "smoke"}}
        status, body = cp.request("POST", "/api/v1/namespaces", ns)
        assert status == 201, body

        cp.install_crds(crd_dir)
        cp.install_crds(crd_dir)  # a second apply replaces the existing CRD

        widgets = "/apis/smoke.fortress.test/v1alpha1/namespaces/smoke/widgets"
        widget = {
            "apiVersion": "smoke.fortress.test/v1alpha1",
            "kind": "Widget",
            "metadata": {"name": "w1"},
            "spec": {"size": 3},
        }
        status, body = cp.request("POST", widgets, widget)
        assert status == 201, body

        # The structural schema is enforced by the real API server.
        bad = {**widget, "metadata": {"name": "w2"}, "spec": {"size": 0}}
        status, body = cp.request("POST", widgets, bad)
        assert status == 422, body

        status, body = cp.request("GET", f"{widgets}/w1")
        assert status == 200, body
        assert body["spec"] == {"size": 3}
        assert body["metadata"]["namespace"] == "smoke"

        assert "kube-apiserver" in cp.log_tails(5)
        print(f"control plane ready in {cp.start_seconds:.1f}s ({cp.timings})")

    assert not any(_alive(pid) for pid in pids)
    assert (tmp_path / "cp" / "etcd.log").is_file()
    assert (tmp_path / "cp" / "kube-apiserver.log").is_file()
    assert not (tmp_path / "cp" / "kwok.log").exists()
    cp.stop()  # idempotent


def test_full_controlplane_starts_and_stops(tmp_path: Path) -> None:
    """Controllers, scheduler and kwok with 3 fake nodes: up, Ready, and nothing left after stop()."""
    require_controlplane_binaries(controllers=True)
    workdir = tmp_path / "cp"
    cp = ControlPlane(workdir)
    with cp:
        assert sorted(cp.pids()) == sorted(["etcd", KUBE_APISERVER, *CONTROLLER_BINARIES])
        pids = list(cp.pids().values())
        for milestone in ("kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok"):
            assert milestone in cp.timings
        assert cp.timings["total"] >= cp.timings["nodes-ready"] > cp.timings["kube-apiserver"]

        status, nodes = cp.request("GET", "/api/v1/nodes")
        assert status == 200, nodes
        by_name = {n["metadata"]["name"]: n for n in nodes["items"]}
        assert sorted(by_name) == cp.node_names == ["kwok-node-0", "kwok-node-1", "kwok-node-2"]
        cidrs = set()
        for node in by_name.values():
            assert node["metadata"]["annotations"]["kwok.x-k8s.io/node"] == "fake"
            ready = [c for c in node["status"]["conditions"] if c["type"] == "Ready"]
            assert ready and ready[0]["status"] == "True", node["status"]
            assert not node["spec"].get("taints"), node["spec"]
            cidrs.add(node["spec"]["podCIDR"])
        assert len(cidrs) == 3

        # The ServiceAccount controller ran (start() waits for it); admission now needs it for Pods.
        status, account = cp.request("GET", "/api/v1/namespaces/default/serviceaccounts/default")
        assert status == 200, account
        for name in ("kube-controller-manager", "kube-scheduler", "kwok"):
            assert f"----- {name} (" in cp.log_tails(3)
        print(f"full control plane ready in {cp.timings['total']:.1f}s ({cp.timings})")

    assert not any(_alive(pid) for pid in pids)
    assert _processes_mentioning(workdir) == []
    for name in ("etcd", KUBE_APISERVER, *CONTROLLER_BINARIES):
        assert (workdir / f"{name}.log").is_file(), name
    cp.stop()  # idempotent


def test_failed_start_leaves_no_process(tmp_path: Path) -> None:
    """kwok refuses a stages file without stages: start() raises with the logs and stops everything."""
    require_controlplane_binaries(controllers=True)
    stages = tmp_path / "stages"
    stages.mkdir()
    (stages / "none.yaml").write_text("# no stage here\n")
    workdir = tmp_path / "cp"
    cp = ControlPlane(workdir, stages_dir=stages)
    with pytest.raises(ControlPlaneError, match="kwok exited") as raised:
        cp.start(timeout=60)
    assert "no stages found" in str(raised.value)
    assert cp.pids() == {}
    assert _processes_mentioning(workdir) == []
