"""What a live scan lists, and the objects it leaves out (pure parts of the live scan).

Every kind the catalogue reads has a resource here, listed page by page. Secrets are not listed
(listing them reads every value): the control on long-lived token Secrets runs on manifests only.
Pods and Jobs owned by a controller are left out: their template is scanned on the owner.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Final

from fortress.adapters.kube import Resource
from fortress.compliance.model import Obj

# Small kinds other checks read (policies, budgets, plans): listed first, kept for the whole scan.
CONTEXT_KINDS: Final = (
    "NetworkPolicy",
    "PodDisruptionBudget",
    "ResourceQuota",
    "LimitRange",
    "DRPlan",
    "DRRegion",
)

NAMESPACES: Final = Resource("", "v1", "namespaces", False, "Namespace")
PODS: Final = Resource("", "v1", "pods", kind="Pod")
SERVICES: Final = Resource("", "v1", "services", kind="Service")
CONFIGMAPS: Final = Resource("", "v1", "configmaps", kind="ConfigMap")
SERVICEACCOUNTS: Final = Resource("", "v1", "serviceaccounts", kind="ServiceAccount")
RESOURCEQUOTAS: Final = Resource("", "v1", "resourcequotas", kind="ResourceQuota")
LIMITRANGES: Final = Resource("", "v1", "limitranges", kind="LimitRange")
DEPLOYMENTS: Final = Resource("apps", "v1", "deployments", kind="Deployment")
STATEFULSETS: Final = Resource("apps", "v1", "statefulsets", kind="StatefulSet")
DAEMONSETS: Final = Resource("apps", "v1", "daemonsets", kind="DaemonSet")
JOBS: Final = Resource("batch", "v1", "jobs", kind="Job")
CRONJOBS: Final = Resource("batch", "v1", "cronjobs", kind="CronJob")
INGRESSES: Final = Resource("networking.k8s.io", "v1", "ingresses", kind="Ingress")
NETWORKPOLICIES: Final = Resource("networking.k8s.io", "v1", "networkpolicies", kind="NetworkPolicy")
PDBS: Final = Resource("policy", "v1", "poddisruptionbudgets", kind="PodDisruptionBudget")
ROLES: Final = Resource("rbac.authorization.k8s.io", "v1", "roles", kind="Role")
ROLEBINDINGS: Final = Resource("rbac.authorization.k8s.io", "v1", "rolebindings", kind="RoleBinding")
CLUSTERROLES: Final = Resource("rbac.authorization.k8s.io", "v1", "clusterroles", False, "ClusterRole")
CLUSTERROLEBINDINGS: Final = Resource(
    "rbac.authorization.k8s.io", "v1", "clusterrolebindings", False, "ClusterRoleBinding"
)
CREDITLEDGERS: Final = Resource("fortress.io", "v1alpha1", "creditledgers", kind="CreditLedger")
SHARDCLUSTERS: Final = Resource("fortress.io", "v1alpha1", "shardclusters", kind="ShardCluster")
DRPLANS: Final = Resource("fortress.io", "v1alpha1", "drplans", kind="DRPlan")
DRREGIONS: Final = Resource("fortress.io", "v1alpha1", "drregions", kind="DRRegion")
CANARYROLLOUTS: Final = Resource("fortress.io", "v1alpha1", "canaryrollouts", kind="CanaryRollout")
COMPLIANCESCANS: Final = Resource("fortress.io", "v1alpha1", "compliancescans", kind="ComplianceScan")

OWNED_KINDS: Final = ("Pod", "Job", "ReplicaSet")


def owned_by_controller(obj: Obj) -> bool:
    """A Pod or Job a controller made (its template is scanned on the controller)."""
    if obj.get("kind") not in OWNED_KINDS:
        return False
    owners = (obj.get("metadata") or {}).get("ownerReferences") or []
    return any(isinstance(o, dict) and o.get("controller") for o in owners)


def in_scope(obj: Obj, targets: Iterable[str], excluded: Iterable[str]) -> bool:
    """Whether the scan covers ``obj``: its namespace (a Namespace: its name) is targeted (all when no
    target) and not excluded; cluster-scoped objects always are."""
    meta: dict[str, Any] = obj.get("metadata") or {}
    namespace = meta.get("name") if obj.get("kind") == "Namespace" else meta.get("namespace")
    if not namespace:
        return True
    chosen = set(targets)
    return (not chosen or namespace in chosen) and namespace not in set(excluded)
