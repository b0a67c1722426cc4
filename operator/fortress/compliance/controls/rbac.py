"""RBAC controls: what Roles and ClusterRoles grant, whom bindings bind, service account tokens."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fortress.compliance.context import Context
from fortress.compliance.controls._base import Where, cis, control, nsa
from fortress.compliance.model import NOT_APPLICABLE, PASS, Control, Obj, Result, Severity, fail

AREA = "rbac"
ROLES = ("Role", "ClusterRole")
BINDINGS = ("RoleBinding", "ClusterRoleBinding")
H, C, M, L = Severity.HIGH, Severity.CRITICAL, Severity.MEDIUM, Severity.LOW


def _rules(obj: Obj) -> list[tuple[int, dict[str, Any]]]:
    rules = obj.get("rules")
    return [(i, r) for i, r in enumerate(rules) if isinstance(r, dict)] if isinstance(rules, list) else []


def _grants(rule: dict[str, Any], groups: set[str], resources: set[str], verbs: set[str]) -> bool:
    rule_groups = set(rule.get("apiGroups") or [])
    rule_resources = set(rule.get("resources") or [])
    rule_verbs = set(rule.get("verbs") or [])
    return (
        ("*" in rule_groups or bool(rule_groups & groups))
        and ("*" in rule_resources or bool(rule_resources & resources))
        and ("*" in rule_verbs or bool(rule_verbs & verbs))
    )


def grants(
    groups: set[str], resources: set[str], verbs: set[str], *, unnamed: bool = False, what: str = ""
) -> Callable[[Obj, Context], Result]:
    """Fails when a rule grants any of ``verbs`` on ``resources`` (``unnamed``: without resourceNames)."""

    def check(obj: Obj, ctx: Context) -> Result:
        if obj.get("kind") not in ROLES:
            return NOT_APPLICABLE
        for i, rule in _rules(obj):
            if unnamed and rule.get("resourceNames"):
                continue
            if _grants(rule, groups, resources, verbs):
                return fail(f"rule {i} grants {what}", f"/rules/{i}")
        return PASS

    return check


def _wildcard(field: str) -> Callable[[Obj, Context], Result]:
    def check(obj: Obj, ctx: Context) -> Result:
        if obj.get("kind") not in ROLES:
            return NOT_APPLICABLE
        for i, rule in _rules(obj):
            if "*" in (rule.get(field) or []):
                return fail(f"rule {i} uses * in {field}", f"/rules/{i}/{field}")
        return PASS

    return check


def _subjects(obj: Obj) -> list[tuple[int, dict[str, Any]]]:
    subjects = obj.get("subjects")
    return (
        [(i, s) for i, s in enumerate(subjects) if isinstance(s, dict)] if isinstance(subjects, list) else []
    )


def binds(predicate: Callable[[dict[str, Any], Obj], bool], what: str) -> Callable[[Obj, Context], Result]:
    def check(obj: Obj, ctx: Context) -> Result:
        if obj.get("kind") not in BINDINGS:
            return NOT_APPLICABLE
        for i, subject in _subjects(obj):
            if predicate(subject, obj):
                return fail(
                    f"subject {i} ({subject.get('kind')} {subject.get('name')}) is {what}", f"/subjects/{i}"
                )
        return PASS

    return check


def _cluster_admin(obj: Obj, ctx: Context) -> Result:
    if obj.get("kind") not in BINDINGS:
        return NOT_APPLICABLE
    ref = obj.get("roleRef") or {}
    if ref.get("kind") != "ClusterRole" or ref.get("name") != "cluster-admin":
        return PASS
    others = [s for _, s in _subjects(obj) if not str(s.get("name", "")).startswith("system:")]
    return fail("binds cluster-admin", "/roleRef/name") if others else PASS


def _default_sa_automount(obj: Obj, ctx: Context) -> Result:
    if obj.get("kind") != "ServiceAccount" or (obj.get("metadata") or {}).get("name") != "default":
        return NOT_APPLICABLE
    if obj.get("automountServiceAccountToken") is False:
        return PASS
    return fail("the default service account mounts its token", "/automountServiceAccountToken")


def _legacy_token(obj: Obj, ctx: Context) -> Result:
    if obj.get("kind") != "Secret":
        return NOT_APPLICABLE
    if obj.get("type") == "kubernetes.io/service-account-token":
        return fail("is a long-lived service account token Secret", "/type")
    return PASS


def _aggregation(obj: Obj, ctx: Context) -> Result:
    if obj.get("kind") != "ClusterRole":
        return NOT_APPLICABLE
    rule = obj.get("aggregationRule") or {}
    for selector in rule.get("clusterRoleSelectors") or []:
        if (
            isinstance(selector, dict)
            and not selector.get("matchLabels")
            and not selector.get("matchExpressions")
        ):
            return fail("aggregates every ClusterRole", "/aggregationRule")
    return PASS


CORE, ALL = {""}, {"*"}
RBAC_GROUP = {"rbac.authorization.k8s.io"}
WORKLOAD_GROUPS = {"", "apps", "batch"}
WORKLOAD_RESOURCES = {"pods", "deployments", "statefulsets", "daemonsets", "replicasets", "jobs", "cronjobs"}
WRITE = {"create", "update", "patch"}

_R: Where = {"kinds": ROLES, "area": AREA}
_B: Where = {"kinds": BINDINGS, "area": AREA}


def _is(name: str) -> Callable[[dict[str, Any], Obj], bool]:
    return lambda subject, obj: subject.get("name") == name


def _default_sa(subject: dict[str, Any], obj: Obj) -> bool:
    return subject.get("kind") == "ServiceAccount" and subject.get("name") == "default"


CONTROLS: tuple[Control, ...] = (
    control(
        "RBAC-CLUSTER-ADMIN",
        "cluster-admin is bound only to system identities",
        severity=C,
        check=_cluster_admin,
        profiles=("access", "privilege"),
        source=cis("5.1.1"),
        description="No binding grants the cluster-admin ClusterRole to a non-system subject.",
        rationale="cluster-admin is unrestricted control of the cluster.",
        remediation="Bind a narrower role.",
        **_B,
    ),
    control(
        "RBAC-WILDCARD-VERBS",
        "Roles do not use wildcard verbs",
        severity=H,
        check=_wildcard("verbs"),
        profiles=("access",),
        source=cis("5.1.3"),
        description="No rule lists * in verbs.",
        rationale="Wildcards grant verbs added in the future, too.",
        remediation="List the verbs needed.",
        **_R,
    ),
    control(
        "RBAC-WILDCARD-RESOURCES",
        "Roles do not use wildcard resources",
        severity=H,
        check=_wildcard("resources"),
        profiles=("access",),
        source=cis("5.1.3"),
        description="No rule lists * in resources.",
        rationale="Wildcards grant every resource, Secrets included.",
        remediation="List the resources needed.",
        **_R,
    ),
    control(
        "RBAC-WILDCARD-API-GROUPS",
        "Roles do not use wildcard API groups",
        severity=M,
        check=_wildcard("apiGroups"),
        profiles=("access",),
        source=cis("5.1.3"),
        description="No rule lists * in apiGroups.",
        rationale="Wildcards grant every group, CRDs included.",
        remediation="List the API groups needed.",
        **_R,
    ),
    control(
        "RBAC-SECRETS-LIST",
        "Roles do not list or watch Secrets",
        severity=H,
        check=grants(CORE, {"secrets"}, {"list", "watch"}, what="list/watch on secrets"),
        profiles=("access", "secrets"),
        source=cis("5.1.2"),
        description="No rule grants list or watch on secrets.",
        rationale="list and watch return every Secret's data in the scope of the role.",
        remediation="Grant get on named Secrets only.",
        **_R,
    ),
    control(
        "RBAC-SECRETS-GET",
        "Roles read only named Secrets",
        severity=M,
        check=grants(CORE, {"secrets"}, {"get"}, unnamed=True, what="get on any secret"),
        profiles=("access", "secrets"),
        source=cis("5.1.2"),
        description="A rule granting get on secrets names them in resourceNames.",
        rationale="get on every Secret of a scope reads any credential there whose name is known.",
        remediation="Add resourceNames.",
        **_R,
    ),
    control(
        "RBAC-SECRETS-WRITE",
        "Roles do not write Secrets",
        severity=M,
        check=grants(CORE, {"secrets"}, WRITE, what="write on secrets"),
        profiles=("access", "secrets"),
        source=cis("5.1.2"),
        description="No rule grants create, update or patch on secrets.",
        rationale="Writing a Secret replaces credentials other workloads trust.",
        remediation="Remove the verbs.",
        **_R,
    ),
    control(
        "RBAC-ESCALATE",
        "Roles do not grant escalate",
        severity=H,
        check=grants(RBAC_GROUP, {"roles", "clusterroles"}, {"escalate"}, what="escalate"),
        profiles=("access", "privilege"),
        source=cis("5.1.8"),
        description="No rule grants escalate on roles or clusterroles.",
        rationale="escalate lets a subject write roles with permissions it does not have.",
        remediation="Remove the verb.",
        **_R,
    ),
    control(
        "RBAC-BIND",
        "Roles do not grant bind",
        severity=H,
        check=grants(RBAC_GROUP, {"roles", "clusterroles"}, {"bind"}, what="bind"),
        profiles=("access", "privilege"),
        source=cis("5.1.8"),
        description="No rule grants bind on roles or clusterroles.",
        rationale="bind lets a subject bind roles with permissions it does not have.",
        remediation="Remove the verb.",
        **_R,
    ),
    control(
        "RBAC-IMPERSONATE",
        "Roles do not grant impersonate",
        severity=H,
        check=grants(
            {"", "authentication.k8s.io"},
            {"users", "groups", "serviceaccounts", "uids", "userextras"},
            {"impersonate"},
            what="impersonate",
        ),
        profiles=("access", "privilege"),
        source=cis("5.1.8"),
        description="No rule grants impersonate on users, groups or service accounts.",
        rationale="Impersonation acts with another identity's permissions.",
        remediation="Remove the verb.",
        **_R,
    ),
    control(
        "RBAC-RBAC-WRITE",
        "Roles do not write RBAC objects",
        severity=H,
        check=grants(
            RBAC_GROUP,
            {"roles", "clusterroles", "rolebindings", "clusterrolebindings"},
            WRITE,
            what="write on RBAC objects",
        ),
        profiles=("access", "privilege"),
        source=cis("5.1.8"),
        description="No rule grants create, update or patch on roles or bindings.",
        rationale="Writing RBAC lets a subject change its own permissions.",
        remediation="Leave RBAC changes to the platform's deployment pipeline.",
        **_R,
    ),
    control(
        "RBAC-CREATE-PODS",
        "Roles do not create pods",
        severity=M,
        check=grants(CORE, {"pods"}, {"create"}, what="create on pods"),
        profiles=("access", "privilege"),
        source=cis("5.1.4"),
        description="No rule grants create on pods.",
        rationale="Creating a pod runs any image with any service account of the namespace.",
        remediation="Grant create on controllers reviewed by admission policy instead.",
        **_R,
    ),
    control(
        "RBAC-WORKLOAD-WRITE-ALL",
        "Roles do not write every workload kind",
        severity=L,
        check=grants(
            WORKLOAD_GROUPS,
            {"*"},
            {"create", "update", "patch", "*"},
            what="write on every resource of a workload API group",
        ),
        profiles=("access",),
        source=cis("5.1.4"),
        description="No rule grants write on * resources of the core, apps or batch groups.",
        rationale="Wildcard workload write is pod creation in disguise.",
        remediation="List the workload resources needed.",
        **_R,
    ),
    control(
        "RBAC-PODS-EXEC",
        "Roles do not exec or attach into pods",
        severity=H,
        check=grants(CORE, {"pods/exec", "pods/attach"}, {"create", "get"}, what="pods/exec or pods/attach"),
        profiles=("access",),
        source=nsa("Authentication and authorization: RBAC"),
        description="No rule grants pods/exec or pods/attach.",
        rationale="exec runs commands in any pod of the scope, reading its mounted Secrets.",
        remediation="Remove the resource; use ephemeral debug access with approval.",
        **_R,
    ),
    control(
        "RBAC-PORT-FORWARD",
        "Roles do not port-forward",
        severity=L,
        check=grants(CORE, {"pods/portforward"}, {"create", "get"}, what="pods/portforward"),
        profiles=("access", "network"),
        source=nsa("Authentication and authorization: RBAC"),
        description="No rule grants pods/portforward.",
        rationale="Port forwarding bypasses NetworkPolicies.",
        remediation="Remove the resource.",
        **_R,
    ),
    control(
        "RBAC-NODES-PROXY",
        "Roles do not grant nodes/proxy",
        severity=H,
        check=grants(CORE, {"nodes/proxy"}, {"get", "create"}, what="nodes/proxy"),
        profiles=("access", "isolation"),
        source=cis("5.1.10"),
        description="No rule grants nodes/proxy.",
        rationale="nodes/proxy reaches the kubelet API, which runs commands in every pod of the node.",
        remediation="Remove the resource.",
        **_R,
    ),
    control(
        "RBAC-TOKEN-CREATE",
        "Roles do not create service account tokens",
        severity=H,
        check=grants(CORE, {"serviceaccounts/token"}, {"create"}, what="serviceaccounts/token create"),
        profiles=("access", "authentication"),
        source=cis("5.1.13"),
        description="No rule grants create on serviceaccounts/token.",
        rationale="Minting tokens acts as any service account of the scope.",
        remediation="Remove the resource.",
        **_R,
    ),
    control(
        "RBAC-PV-CREATE",
        "Roles do not create PersistentVolumes",
        severity=M,
        check=grants(CORE, {"persistentvolumes"}, {"create"}, what="persistentvolumes create"),
        profiles=("access", "isolation"),
        source=cis("5.1.9"),
        description="No rule grants create on persistentvolumes.",
        rationale="A PersistentVolume can be a hostPath into any node.",
        remediation="Use PersistentVolumeClaims with a StorageClass.",
        **_R,
    ),
    control(
        "RBAC-CSR-APPROVE",
        "Roles do not approve certificate requests",
        severity=H,
        check=grants(
            {"certificates.k8s.io"},
            {"certificatesigningrequests/approval"},
            {"update", "patch"},
            what="CSR approval",
        ),
        profiles=("access", "authentication"),
        source=cis("5.1.11"),
        description="No rule grants update on certificatesigningrequests/approval.",
        rationale="Approving CSRs issues client certificates for any identity.",
        remediation="Remove the resource.",
        **_R,
    ),
    control(
        "RBAC-WEBHOOK-WRITE",
        "Roles do not write admission webhooks",
        severity=H,
        check=grants(
            {"admissionregistration.k8s.io"},
            {"validatingwebhookconfigurations", "mutatingwebhookconfigurations"},
            WRITE | {"delete"},
            what="write on admission webhooks",
        ),
        profiles=("access", "change"),
        source=cis("5.1.12"),
        description="No rule grants write on validating or mutating webhook configurations.",
        rationale="A webhook sees (and can change) every object admitted, Secrets included.",
        remediation="Remove the verbs.",
        **_R,
    ),
    control(
        "RBAC-DELETE-EVENTS",
        "Roles do not delete Events",
        severity=L,
        check=grants(
            {"", "events.k8s.io"}, {"events"}, {"delete", "deletecollection"}, what="delete on events"
        ),
        profiles=("access", "logging"),
        source=nsa("Logging: Kubernetes native audit logging"),
        description="No rule grants delete on events.",
        rationale="Deleting Events hides the traces of an intrusion.",
        remediation="Remove the verbs.",
        **_R,
    ),
    control(
        "RBAC-NAMESPACE-DELETE",
        "Roles do not delete namespaces",
        severity=M,
        check=grants(CORE, {"namespaces"}, {"delete", "deletecollection"}, what="delete on namespaces"),
        profiles=("access", "availability"),
        source=nsa("Authentication and authorization: RBAC"),
        description="No rule grants delete on namespaces.",
        rationale="Deleting a namespace destroys everything in it.",
        remediation="Remove the verbs.",
        **_R,
    ),
    control(
        "RBAC-AGGREGATE-ALL",
        "ClusterRoles do not aggregate every role",
        severity=M,
        check=_aggregation,
        profiles=("access",),
        source=cis("5.1.3"),
        description="An aggregationRule selector is not empty.",
        rationale="An empty selector aggregates every ClusterRole, cluster-admin included.",
        remediation="Select roles by label.",
        kinds=("ClusterRole",),
        area=AREA,
    ),
    control(
        "RBAC-ANONYMOUS",
        "Nothing is bound to system:anonymous",
        severity=C,
        check=binds(_is("system:anonymous"), "system:anonymous"),
        profiles=("access", "authentication"),
        source=cis("5.1.7"),
        description="No binding has system:anonymous as a subject.",
        rationale="Anonymous requests need no credentials at all.",
        remediation="Remove the subject.",
        **_B,
    ),
    control(
        "RBAC-UNAUTHENTICATED",
        "Nothing is bound to system:unauthenticated",
        severity=C,
        check=binds(_is("system:unauthenticated"), "system:unauthenticated"),
        profiles=("access", "authentication"),
        source=cis("5.1.7"),
        description="No binding has the group system:unauthenticated as a subject.",
        rationale="Unauthenticated requests need no credentials at all.",
        remediation="Remove the subject.",
        **_B,
    ),
    control(
        "RBAC-AUTHENTICATED",
        "Nothing is bound to every authenticated user",
        severity=H,
        check=binds(_is("system:authenticated"), "system:authenticated"),
        profiles=("access",),
        source=cis("5.1.7"),
        description="No binding has the group system:authenticated as a subject.",
        rationale="Every identity of the cluster, including every service account, gets the role.",
        remediation="Bind named groups instead.",
        **_B,
    ),
    control(
        "RBAC-MASTERS",
        "Nothing is bound to system:masters",
        severity=C,
        check=binds(_is("system:masters"), "system:masters"),
        profiles=("access", "privilege"),
        source=cis("5.1.7"),
        description="No binding names the group system:masters.",
        rationale="system:masters bypasses authorization entirely; binding it is a sign of confusion.",
        remediation="Remove the subject.",
        **_B,
    ),
    control(
        "RBAC-DEFAULT-SA-BOUND",
        "Default service accounts are not given roles",
        severity=M,
        check=binds(_default_sa, "a default service account"),
        profiles=("access",),
        source=cis("5.1.5"),
        description="No binding names a service account called default.",
        rationale="Every pod without its own account inherits the role.",
        remediation="Create a dedicated service account.",
        **_B,
    ),
    control(
        "RBAC-DEFAULT-SA-AUTOMOUNT",
        "Default service accounts do not mount tokens",
        severity=M,
        check=_default_sa_automount,
        profiles=("access", "secrets"),
        source=cis("5.1.5"),
        description="The default ServiceAccount sets automountServiceAccountToken: false.",
        rationale="Pods that never asked for API access get a token otherwise.",
        remediation="Set automountServiceAccountToken: false on the default account.",
        kinds=("ServiceAccount",),
        area=AREA,
    ),
    control(
        "RBAC-LEGACY-TOKEN",
        "No long-lived service account token Secrets",
        severity=M,
        check=_legacy_token,
        profiles=("authentication", "secrets"),
        source=cis("5.1.6"),
        description="No Secret has type kubernetes.io/service-account-token (read from the type only).",
        rationale="These tokens never expire; projected tokens are short-lived and bound to a pod.",
        remediation="Use projected tokens (TokenRequest).",
        kinds=("Secret",),
        area=AREA,
    ),
)
