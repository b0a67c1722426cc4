"""Kubernetes permissions of the sharding subsystem (see fortress.rbac)."""

from fortress.rbac import Rule

RULES = [
    Rule("", ("configmaps",), ("get", "create", "patch"), "publishes the ring in the <name>-ring ConfigMap"),
]
