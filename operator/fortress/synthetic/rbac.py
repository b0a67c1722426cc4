"""The Kubernetes permissions of synthetic datasets (see fortress.rbac)."""

from __future__ import annotations

from fortress.rbac import Rule

RULES = [
    Rule(
        "",
        ("configmaps",),
        ("get", "create", "update", "delete"),
        "a SyntheticDataset's ConfigMap target (written whole, deleted with the dataset)",
    ),
]
