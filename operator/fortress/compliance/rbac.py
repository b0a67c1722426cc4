"""Kubernetes permissions of the compliance subsystem (see fortress.rbac): it lists what it scans.

Secrets are not listed (listing returns every value); see fortress.compliance.live.
"""

from __future__ import annotations

from fortress.rbac import Rule

_WHY = "ComplianceScan: the objects its controls read, listed page by page"

RULES = [
    Rule("", ("namespaces",), ("list",), _WHY, cluster=True),
    Rule(
        "",
        ("pods", "services", "configmaps", "serviceaccounts", "resourcequotas", "limitranges"),
        ("list",),
        _WHY,
    ),
    Rule("apps", ("deployments", "statefulsets", "daemonsets"), ("list",), _WHY),
    Rule("batch", ("jobs", "cronjobs"), ("list",), _WHY),
    Rule("networking.k8s.io", ("ingresses", "networkpolicies"), ("list",), _WHY),
    Rule("policy", ("poddisruptionbudgets",), ("list",), _WHY),
    Rule("rbac.authorization.k8s.io", ("roles", "rolebindings"), ("list",), _WHY),
    Rule("rbac.authorization.k8s.io", ("clusterroles", "clusterrolebindings"), ("list",), _WHY, cluster=True),
]
