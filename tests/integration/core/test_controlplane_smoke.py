"""Smoke test of the real control plane (etcd + kube-apiserver) used by integration tests."""

from __future__ import annotations

import os
import re
import textwrap
from pathlib import Path

import pytest
import yaml

from fortress.paths import repo_root
from fortress_dev.controlplane import ControlPlane, binaries_present

pytestmark = pytest.mark.skipif(
    not binaries_present(), reason="control plane binaries not built: run `make controlplane`"
)

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
    gomod = (repo_root() / "tests/controlplane/kube-apiserver/go.mod").read_text()
    match = re.search(r"^\s*(?:require\s+)?k8s\.io/kubernetes\s+(v\S+)", gomod, re.MULTILINE)
    assert match, "k8s.io/kubernetes not required in kube-apiserver/go.mod"
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


def test_controlplane_smoke(tmp_path: Path) -> None:
    crd_dir = tmp_path / "crds"
    crd_dir.mkdir()
    (crd_dir / "widgets.yaml").write_text(SAMPLE_CRD)

    cp = ControlPlane(tmp_path / "cp")
    with cp:
        pids = [p.popen.pid for p in (cp._etcd, cp._apiserver) if p is not None]
        assert len(pids) == 2
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
    cp.stop()  # idempotent
