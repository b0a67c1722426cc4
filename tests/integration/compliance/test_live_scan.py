"""The live scan against a Kubernetes API: objects listed page by page through the shared client,
evaluated with the catalogue; scope, exceptions and owned Pods as the scan's spec says."""

from __future__ import annotations

import asyncio
import copy

from kubernetes import client

from fortress.adapters.kube import Kube
from fortress.api.compliancescan import ComplianceScanSpec
from fortress.compliance.exceptions import parse
from fortress.compliance.reconciler import scan
from tests.support.kubeapi import KubeTarget
from tests.unit.compliance import fixtures


def _deployment(name: str, namespace: str, privileged: bool) -> dict:
    body = copy.deepcopy(fixtures.deployment(name))
    body["metadata"]["namespace"] = namespace
    labels = {"app.kubernetes.io/name": name}
    body["metadata"]["labels"] = body["spec"]["selector"]["matchLabels"] = labels
    body["spec"]["template"]["metadata"]["labels"] = labels
    body["spec"]["replicas"] = 0
    if privileged:  # the API server refuses privileged with allowPrivilegeEscalation: false
        fixtures.sc(body).update(privileged=True, allowPrivilegeEscalation=True)
    return body


async def test_a_live_scan_lists_every_page_and_scores(
    kube_api: KubeTarget, k8s: client.ApiClient, namespace: str
) -> None:
    apps, rbac, core = client.AppsV1Api(k8s), client.RbacAuthorizationV1Api(k8s), client.CoreV1Api(k8s)
    core.create_namespaced_service_account(namespace, {"metadata": {"name": "web"}})
    for index in range(5):
        apps.create_namespaced_deployment(namespace, _deployment(f"good-{index}", namespace, False))
    apps.create_namespaced_deployment(namespace, _deployment("bad", namespace, True))
    rbac.create_namespaced_role(
        namespace,
        {
            "metadata": {"name": "too-much"},
            "rules": [{"apiGroups": [""], "resources": ["*"], "verbs": ["*"]}],
        },
    )
    core.create_namespaced_config_map(namespace, {"metadata": {"name": "cfg"}, "data": {"db_password": "x"}})
    pod = fixtures.as_kind("Pod", _deployment("owned", namespace, True))
    pod["metadata"]["ownerReferences"] = [
        {
            "apiVersion": "apps/v1",
            "kind": "ReplicaSet",
            "name": "owned-1",
            "uid": "0a1b2c3d-0000-4000-8000-000000000001",
            "controller": True,
        }
    ]
    core.create_namespaced_pod(namespace, pod)

    kube = Kube(await asyncio.to_thread(kube_api.cluster))
    try:
        spec = ComplianceScanSpec.model_validate(
            {"frameworks": ["SOC2", "PCI_DSS"], "targetNamespaces": [namespace]}
        )
        scanner, skipped = await scan(kube, spec, [], page_size=2)
        result = scanner.result()
        open_ = {(f.control.id, f.ref.kind, f.ref.name) for f in result.open_findings()}
        assert ("WL-PRIVILEGED", "Deployment", "bad") in open_
        assert not [f for f in open_ if f[2].startswith("good-") and f[0] == "WL-PRIVILEGED"]
        assert ("RBAC-WILDCARD-VERBS", "Role", "too-much") in open_
        assert ("CM-CREDENTIAL-KEYS", "ConfigMap", "cfg") in open_
        assert ("NET-DEFAULT-DENY-INGRESS", "Namespace", namespace) in open_
        assert not [f for f in open_ if f[2] == "owned"], "a controller's Pod is scanned on its owner"
        assert result.tallies["WL-PRIVILEGED"].passed == 5 and result.tallies["WL-PRIVILEGED"].failed == 1
        assert all(f.ref.namespace in ("", namespace) for f in result.findings)

        # an exception suppresses; a default-deny policy makes the namespace pass
        client.NetworkingV1Api(k8s).create_namespaced_network_policy(
            namespace, {"metadata": {"name": "deny"}, "spec": {"podSelector": {}, "policyTypes": ["Ingress"]}}
        )
        rules = parse(
            [{"controls": ["WL-PRIVILEGED"], "reason": "node agent", "selector": {"names": ["bad"]}}]
        )
        again = (await scan(kube, spec, rules))[0].result()
        assert again.tallies["WL-PRIVILEGED"].suppressed == 1 and again.tallies["WL-PRIVILEGED"].failed == 0
        assert again.tallies["NET-DEFAULT-DENY-INGRESS"].failed == 0
        assert again.tallies["NET-DEFAULT-DENY-INGRESS"].passed == 1

        # excluded namespaces are not scanned
        elsewhere = ComplianceScanSpec.model_validate(
            {"frameworks": ["SOC2"], "excludeNamespaces": [namespace]}
        )
        outside = (await scan(kube, elsewhere, []))[0].result()
        assert not [f for f in outside.findings if f.ref.namespace == namespace]
        assert skipped == [] or all("(404)" in s for s in skipped), skipped
    finally:
        await kube.close()
