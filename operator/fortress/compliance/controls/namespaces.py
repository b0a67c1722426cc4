"""Namespace controls: Pod Security admission labels, quotas and PodDisruptionBudgets."""

from __future__ import annotations

from collections.abc import Callable

from fortress.compliance.context import Context, labels_match
from fortress.compliance.controls._base import Where, cis, control, nsa, pss
from fortress.compliance.model import NOT_APPLICABLE, PASS, Control, Obj, Result, Severity, fail

AREA = "namespaces"
H, C, M, L = Severity.HIGH, Severity.CRITICAL, Severity.MEDIUM, Severity.LOW
PSA = "pod-security.kubernetes.io/"
SYSTEM = {"kube-system", "kube-public", "kube-node-lease"}


def _labels(obj: Obj) -> dict[str, str]:
    return dict((obj.get("metadata") or {}).get("labels") or {})


def _name(obj: Obj) -> str:
    return str((obj.get("metadata") or {}).get("name") or "")


def _level(mode: str, allowed: tuple[str, ...]) -> Callable[[Obj, Context], Result]:
    def check(obj: Obj, ctx: Context) -> Result:
        if _name(obj) in SYSTEM:
            return NOT_APPLICABLE
        level = _labels(obj).get(PSA + mode)
        if level in allowed:
            return PASS
        return fail(f"{PSA}{mode} is {level or 'unset'}", "/metadata/labels")

    return check


def _warn_or_audit(obj: Obj, ctx: Context) -> Result:
    if _name(obj) in SYSTEM:
        return NOT_APPLICABLE
    labels = _labels(obj)
    if labels.get(PSA + "warn") or labels.get(PSA + "audit"):
        return PASS
    return fail("neither warn nor audit Pod Security level is set", "/metadata/labels")


def _version_pinned(obj: Obj, ctx: Context) -> Result:
    labels = _labels(obj)
    if PSA + "enforce" not in labels:
        return NOT_APPLICABLE
    version = labels.get(PSA + "enforce-version", "latest")
    return PASS if version != "latest" else fail("enforce-version is latest (unset)", "/metadata/labels")


def _indexed(attribute: str, what: str) -> Callable[[Obj, Context], Result]:
    def check(obj: Obj, ctx: Context) -> Result:
        if _name(obj) in SYSTEM:
            return NOT_APPLICABLE
        return (
            PASS
            if _name(obj) in getattr(ctx, attribute)
            else fail(f"the namespace has no {what}", "/metadata")
        )

    return check


def _pdb_blocks(obj: Obj, ctx: Context) -> Result:
    spec = obj.get("spec") or {}
    if spec.get("maxUnavailable") in (0, "0", "0%"):
        return fail("maxUnavailable is 0: no voluntary eviction can proceed", "/spec/maxUnavailable")
    if spec.get("minAvailable") == "100%":
        return fail("minAvailable is 100%: no voluntary eviction can proceed", "/spec/minAvailable")
    return PASS


def _pdb_selects(obj: Obj, ctx: Context) -> Result:
    selector = (obj.get("spec") or {}).get("selector")
    namespace = str((obj.get("metadata") or {}).get("namespace") or "")
    if not selector:
        return fail("has no selector", "/spec/selector")
    if any(labels_match(selector, labels) for labels in ctx.pod_labels.get(namespace, ())):
        return PASS
    return fail("selects no workload of the namespace", "/spec/selector")


def _not_default(obj: Obj, ctx: Context) -> Result:
    if _name(obj) != "default":
        return NOT_APPLICABLE
    return (
        PASS
        if _labels(obj).get(PSA + "enforce") == "restricted"
        else fail("the default namespace does not enforce restricted", "/metadata/labels")
    )


_NS: Where = {"kinds": ("Namespace",), "area": AREA}
_PDB: Where = {"kinds": ("PodDisruptionBudget",), "area": AREA}

CONTROLS: tuple[Control, ...] = (
    control(
        "NS-PSA-ENFORCE",
        "Namespaces enforce a Pod Security level",
        severity=H,
        check=_level("enforce", ("baseline", "restricted")),
        profiles=("hardening", "isolation"),
        source=cis("5.2.1"),
        description="pod-security.kubernetes.io/enforce is baseline or restricted (system namespaces n/a).",
        rationale="Without enforcement nothing stops a privileged pod from being admitted.",
        remediation="Label the namespace pod-security.kubernetes.io/enforce=baseline.",
        **_NS,
    ),
    control(
        "NS-PSA-RESTRICTED",
        "Namespaces enforce the restricted level",
        severity=M,
        check=_level("enforce", ("restricted",)),
        profiles=("hardening",),
        source=pss("restricted profile"),
        description="pod-security.kubernetes.io/enforce is restricted.",
        rationale="Restricted is the hardened profile current pod best practice asks for.",
        remediation="Label the namespace pod-security.kubernetes.io/enforce=restricted.",
        **_NS,
    ),
    control(
        "NS-PSA-WARN",
        "Namespaces warn or audit on Pod Security",
        severity=L,
        check=_warn_or_audit,
        profiles=("logging", "hardening"),
        source=pss("admission modes: warn, audit"),
        description="pod-security.kubernetes.io/warn or audit is set.",
        rationale="Warnings show violations before a level is enforced.",
        remediation="Label the namespace pod-security.kubernetes.io/warn=restricted.",
        **_NS,
    ),
    control(
        "NS-PSA-VERSION",
        "Pod Security enforcement is pinned to a version",
        severity=L,
        check=_version_pinned,
        profiles=("change",),
        source=pss("admission: version labels"),
        description="pod-security.kubernetes.io/enforce-version is set and not latest.",
        rationale="latest changes what is enforced on every cluster upgrade.",
        remediation="Set pod-security.kubernetes.io/enforce-version to the cluster's minor version.",
        **_NS,
    ),
    control(
        "NS-DEFAULT-RESTRICTED",
        "The default namespace enforces restricted",
        severity=L,
        check=_not_default,
        profiles=("hardening",),
        source=cis("5.7.4"),
        description="The namespace named default carries enforce=restricted.",
        rationale="Workloads should not land in default; restricting it catches those that do.",
        remediation="Label the default namespace pod-security.kubernetes.io/enforce=restricted.",
        **_NS,
    ),
    control(
        "NS-RESOURCE-QUOTA",
        "Namespaces have a ResourceQuota",
        severity=L,
        check=_indexed("quotas", "ResourceQuota"),
        profiles=("availability",),
        source=nsa("Pod security: resource policies"),
        description="A ResourceQuota exists in the namespace.",
        rationale="Quotas stop one tenant from exhausting the cluster.",
        remediation="Add a ResourceQuota.",
        **_NS,
    ),
    control(
        "NS-LIMIT-RANGE",
        "Namespaces have a LimitRange",
        severity=L,
        check=_indexed("limit_ranges", "LimitRange"),
        profiles=("availability",),
        source=nsa("Pod security: resource policies"),
        description="A LimitRange exists in the namespace.",
        rationale="A LimitRange gives containers without resources a default.",
        remediation="Add a LimitRange.",
        **_NS,
    ),
    control(
        "PDB-ALLOWS-EVICTION",
        "PodDisruptionBudgets allow evictions",
        severity=M,
        check=_pdb_blocks,
        profiles=("availability",),
        source=nsa("Pod security: resource policies"),
        description="maxUnavailable is not 0 and minAvailable is not 100%.",
        rationale="Such a budget blocks node drains, so nodes are never patched.",
        remediation="Set maxUnavailable: 1.",
        **_PDB,
    ),
    control(
        "PDB-SELECTS",
        "PodDisruptionBudgets select a workload",
        severity=L,
        check=_pdb_selects,
        profiles=("availability",),
        source=nsa("Pod security: resource policies"),
        description="The selector matches the pod template labels of a workload of the namespace.",
        rationale="A budget selecting nothing protects nothing.",
        remediation="Fix the selector.",
        **_PDB,
    ),
)
