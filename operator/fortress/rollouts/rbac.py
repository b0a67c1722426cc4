"""Kubernetes permissions of the CanaryRollout subsystem (see fortress.rbac)."""

from __future__ import annotations

from fortress.rbac import Rule

RULES = [
    Rule(
        "apps",
        ("deployments",),
        ("get", "list", "watch", "create", "patch"),
        "the <name>-blue/-green Deployments, watched to see their pods become available; a workloadRef "
        "Deployment is read for its template and scaled to 0 once taken over",
    ),
    Rule("", ("services",), ("get", "create", "patch"), "stable, <service>-canary and preview Services"),
    Rule("", ("configmaps",), ("get", "create", "patch"), "feature flags in the <name>-flags ConfigMap"),
    Rule("networking.k8s.io", ("ingresses",), ("get", "create", "patch"), "nginx router: canary Ingress"),
    Rule("gateway.networking.k8s.io", ("httproutes",), ("get", "patch"), "gatewayAPI router: weights"),
]
