"""The Kubernetes permissions of disaster recovery (see fortress.rbac)."""

from __future__ import annotations

from fortress.api import GROUP
from fortress.rbac import Rule

RULES = [
    Rule("", ("services", "endpoints"), ("get", "create", "patch"), "DR repoints the plan's Service"),
    Rule("coordination.k8s.io", ("leases",), ("get", "create", "patch"), "the <plan>-failover Lease"),
    Rule(
        GROUP,
        ("drplans", "drregions"),
        ("get", "list"),
        "GET /api/v1/dr/status and /health read plans and regions (via fortress.dr.control)",
        component="api",
        indirect=True,
    ),
    Rule(
        GROUP,
        ("drplans",),
        ("patch",),
        "POST /api/v1/dr/failover writes spec.request (via fortress.dr.control)",
        component="api",
        indirect=True,
    ),
    Rule(
        GROUP,
        ("drplans", "drregions"),
        ("get", "list"),
        "`fortress dr drill` finds labelled plans, picks a standby and follows the switchover",
        component="drill",
        indirect=True,
    ),
    Rule(
        GROUP,
        ("drplans",),
        ("patch",),
        "`fortress dr drill` writes the switchover request to spec.request (via fortress.dr.control)",
        component="drill",
        indirect=True,
    ),
    Rule(
        "",
        ("events",),
        ("create",),
        "`fortress dr drill` records each drill's result as an Event on the plan",
        component="drill",
        indirect=True,
    ),
]
