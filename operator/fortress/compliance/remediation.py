"""Remediations (a patch or an object to create per control) and the pure remediation planner.

A remediation reads the object as it is (with earlier actions of the same scan applied) and returns
an :class:`Action`: RFC 6902 operations on the object, or a new object. The planner never touches
Secrets (nor any ``/data`` or ``/stringData`` path), excluded namespaces, findings above the allowed
severity or suppressed findings, and stops at ``max_per_scan`` actions.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from fortress.compliance import patches
from fortress.compliance.context import Context
from fortress.compliance.controls import BY_ID
from fortress.compliance.controls.workloads import BASELINE_CAPS, DANGEROUS_CAPS, SAFE_SYSCTLS, quantity
from fortress.compliance.model import SEVERITY_ORDER, Finding, Obj, ObjectRef, Severity, Status
from fortress.compliance.pods import ContainerRef, PodView, csc, effective, pod_view, volumes

Op = dict[str, Any]


class Operation(StrEnum):
    PATCH = "patch"
    CREATE = "create"


@dataclass(frozen=True, slots=True)
class Action:
    """One change: JSON patch ``ops`` on ``target``, or ``create`` of ``object``."""

    control_id: str
    target: ObjectRef
    operation: Operation
    description: str
    ops: tuple[Op, ...] = ()
    object: Obj | None = field(default=None, hash=False, compare=False)

    def wire(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "control": self.control_id,
            "target": self.target.display(),
            "operation": self.operation.value,
            "description": self.description,
        }
        if self.ops:
            out["patch"] = list(self.ops)
        if self.object is not None:
            out["object"] = self.object
        return out


Remediator = Callable[[Obj, Context], "list[Op] | Obj | None"]


def _p(path: str) -> list[str | int]:
    return patches.parts(path)


# ------------------------------------------------------------------------------------ container helpers


def _per_container(fix: Callable[[Obj, PodView, ContainerRef], list[Op]]) -> Remediator:
    def remediate(obj: Obj, ctx: Context) -> list[Op] | None:
        view = pod_view(obj)
        if view is None:
            return None
        ops: list[Op] = []
        working = obj
        for container in view.all():
            current = pod_view(working)
            assert current is not None
            target = next(c for c in current.all() if c.path == container.path)
            new = fix(working, current, target)
            if new:
                working = patches.apply(working, new)
                ops.extend(new)
        return ops or None

    return remediate


def _sc(key: str, value: Any, when: Callable[[PodView, ContainerRef], bool]) -> Remediator:
    def fix(obj: Obj, view: PodView, c: ContainerRef) -> list[Op]:
        if not when(view, c):
            return []
        return [patches.set_op(obj, [*_p(c.path), "securityContext", key], value)]

    return _per_container(fix)


def _caps(c: ContainerRef, key: str) -> list[str]:
    caps = csc(c).get("capabilities") or {}
    return [str(x) for x in caps.get(key) or []] if isinstance(caps, dict) else []


def _set_caps(key: str, compute: Callable[[list[str]], list[str]]) -> Remediator:
    def fix(obj: Obj, view: PodView, c: ContainerRef) -> list[Op]:
        before = _caps(c, key)
        after = compute(before)
        if after == before:
            return []
        path = [*_p(c.path), "securityContext", "capabilities", key]
        return [patches.set_op(obj, path, after)]

    return _per_container(fix)


def _without(banned: Callable[[str], bool]) -> Callable[[list[str]], list[str]]:
    return lambda caps: [c for c in caps if not banned(c.upper().removeprefix("CAP_"))]


def _with_drop(name: str) -> Callable[[list[str]], list[str]]:
    return lambda caps: caps if name in caps or "ALL" in caps else [*caps, name]


def _resource(kind: str, resource: str, default: str) -> Remediator:
    other = "limits" if kind == "requests" else "requests"

    def fix(obj: Obj, view: PodView, c: ContainerRef) -> list[Op]:
        resources = c.container.get("resources") or {}
        if (resources.get(kind) or {}).get(resource) not in (None, "", 0, "0"):
            return []
        counterpart = (resources.get(other) or {}).get(resource)
        value = default
        if counterpart is not None and quantity(counterpart) is not None:
            mine, theirs = quantity(default), quantity(counterpart)
            if (
                mine is not None
                and theirs is not None
                and (mine > theirs if kind == "requests" else mine < theirs)
            ):
                value = str(counterpart)
        return [patches.set_op(obj, [*_p(c.path), "resources", kind, resource], value)]

    return _per_container(fix)


def _host_port(obj: Obj, view: PodView, c: ContainerRef) -> list[Op]:
    ops = []
    for i, port in enumerate(c.container.get("ports") or []):
        if isinstance(port, dict) and port.get("hostPort"):
            ops.append(patches.remove_op([*_p(c.path), "ports", i, "hostPort"]))
    return ops


def _mount_read_only(select: Callable[[dict[str, Any]], bool]) -> Remediator:
    def fix(obj: Obj, view: PodView, c: ContainerRef) -> list[Op]:
        names = {v.get("name") for _, v in volumes(view) if select(v)}
        ops = []
        for i, mount in enumerate(c.container.get("volumeMounts") or []):
            if isinstance(mount, dict) and mount.get("name") in names and mount.get("readOnly") is not True:
                ops.append(patches.set_op(obj, [*_p(c.path), "volumeMounts", i, "readOnly"], True))
        return ops

    return _per_container(fix)


def _apparmor(obj: Obj, view: PodView, c: ContainerRef) -> list[Op]:
    ops: list[Op] = []
    key = f"container.apparmor.security.beta.kubernetes.io/{c.name}"
    if (view.metadata.get("annotations") or {}).get(key) == "unconfined":
        meta_path = [*_p(view.path)[:-1], "metadata"] if view.path != "/spec" else ["metadata"]
        ops.append(patches.set_op(obj, [*meta_path, "annotations", key], "runtime/default"))
    profile = csc(c).get("appArmorProfile") or view.security().get("appArmorProfile")
    if isinstance(profile, dict) and profile.get("type") == "Unconfined":
        ops.append(
            patches.set_op(
                obj, [*_p(c.path), "securityContext", "appArmorProfile"], {"type": "RuntimeDefault"}
            )
        )
    return ops


# ------------------------------------------------------------------------------------ pod helpers


def _pod(fix: Callable[[Obj, PodView], list[Op]]) -> Remediator:
    def remediate(obj: Obj, ctx: Context) -> list[Op] | None:
        view = pod_view(obj)
        return (fix(obj, view) or None) if view is not None else None

    return remediate


def _pod_set(key: str, value: Any) -> Remediator:
    return _pod(lambda obj, view: [patches.set_op(obj, [*_p(view.path), key], value)])


def _pod_sc_filter(key: str, keep: Callable[[Any], bool]) -> Remediator:
    def fix(obj: Obj, view: PodView) -> list[Op]:
        items = view.security().get(key) or []
        kept = [item for item in items if keep(item)]
        return [patches.set_op(obj, [*_p(view.path), "securityContext", key], kept)] if kept != items else []

    return _pod(fix)


def _volumes_fix(select: Callable[[dict[str, Any]], bool], inner: str, key: str, value: Any) -> Remediator:
    def fix(obj: Obj, view: PodView) -> list[Op]:
        return [
            patches.set_op(obj, [*_p(view.path), "volumes", i, inner, key], value)
            for i, v in volumes(view)
            if select(v)
        ]

    return _pod(fix)


def _fs_group(obj: Obj, view: PodView) -> list[Op]:
    return [patches.set_op(obj, [*_p(view.path), "securityContext", "fsGroup"], 10001)]


# ------------------------------------------------------------------------------------ object helpers


def _set(path: str, value: Any) -> Remediator:
    return lambda obj, ctx: [patches.set_op(obj, _p(path), value)]


def _remove(path: str) -> Remediator:
    def remediate(obj: Obj, ctx: Context) -> list[Op] | None:
        current: Any = obj
        for part in _p(path):
            if not isinstance(current, dict) or part not in current:
                return None
            current = current[part]
        return [patches.remove_op(_p(path))]

    return remediate


def _label(key: str, value: str) -> Remediator:
    return lambda obj, ctx: [patches.set_op(obj, ["metadata", "labels", key], value)]


def _inventory(obj: Obj, ctx: Context) -> list[Op]:
    name = str((obj.get("metadata") or {}).get("name") or "app")
    return [patches.set_op(obj, ["metadata", "labels", "app.kubernetes.io/name"], name[:63])]


def _pdb_eviction(obj: Obj, ctx: Context) -> list[Op]:
    spec = obj.get("spec") or {}
    ops: list[Op] = []
    if "minAvailable" in spec:
        ops.append(patches.remove_op(["spec", "minAvailable"]))
    ops.append(patches.set_op(obj, ["spec", "maxUnavailable"], 1))
    return ops


def _default_deny(policy_type: str) -> Remediator:
    def remediate(obj: Obj, ctx: Context) -> Obj:
        namespace = str((obj.get("metadata") or {}).get("name") or "")
        return {
            "apiVersion": "networking.k8s.io/v1",
            "kind": "NetworkPolicy",
            "metadata": {
                "name": f"default-deny-{policy_type.lower()}",
                "namespace": namespace,
                "labels": {"app.kubernetes.io/managed-by": "fortress"},
            },
            "spec": {"podSelector": {}, "policyTypes": [policy_type]},
        }

    return remediate


def _pdb(obj: Obj, ctx: Context) -> Obj | None:
    view = pod_view(obj)
    meta = obj.get("metadata") or {}
    labels = (view.metadata.get("labels") if view else None) or {}
    if not labels:
        return None
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": {
            "name": f"{meta.get('name')}"[:253],
            "namespace": meta.get("namespace"),
            "labels": {"app.kubernetes.io/managed-by": "fortress"},
        },
        "spec": {"maxUnavailable": 1, "selector": {"matchLabels": dict(labels)}},
    }


def _not(predicate: Callable[[PodView, ContainerRef], bool]) -> Callable[[PodView, ContainerRef], bool]:
    return lambda view, c: not predicate(view, c)


def _is_false(key: str) -> Callable[[PodView, ContainerRef], bool]:
    return lambda view, c: csc(c).get(key) is False


def _is_true(key: str) -> Callable[[PodView, ContainerRef], bool]:
    return lambda view, c: csc(c).get(key) is True


def _uid_low(view: PodView, c: ContainerRef) -> bool:
    user = effective(view, c, "runAsUser")
    return not isinstance(user, int) or user < 10000


REMEDIATIONS: dict[str, Remediator] = {
    # container security contexts
    "WL-PRIVILEGED": _sc("privileged", False, _is_true("privileged")),
    # a privileged container cannot disallow escalation (the API server refuses it): WL-PRIVILEGED first
    "WL-PRIVILEGE-ESCALATION": _sc(
        "allowPrivilegeEscalation",
        False,
        lambda v, c: (
            csc(c).get("allowPrivilegeEscalation") is not False and csc(c).get("privileged") is not True
        ),
    ),
    "WL-RUN-AS-NON-ROOT": _sc("runAsNonRoot", True, lambda v, c: effective(v, c, "runAsNonRoot") is not True),
    "WL-RUN-AS-USER-NOT-ROOT": _sc("runAsUser", 10001, lambda v, c: effective(v, c, "runAsUser") == 0),
    "WL-HIGH-UID": _sc("runAsUser", 10001, _uid_low),
    "WL-RUN-AS-GROUP-NOT-ROOT": _sc("runAsGroup", 10001, lambda v, c: effective(v, c, "runAsGroup") == 0),
    "WL-READ-ONLY-ROOT": _sc("readOnlyRootFilesystem", True, _not(_is_true("readOnlyRootFilesystem"))),
    "WL-PROC-MOUNT": _sc(
        "procMount", "Default", lambda v, c: csc(c).get("procMount") not in (None, "Default")
    ),
    "WL-SECCOMP": _sc(
        "seccompProfile",
        {"type": "RuntimeDefault"},
        lambda v, c: (
            (csc(c).get("seccompProfile") or v.security().get("seccompProfile") or {}).get("type")
            not in ("RuntimeDefault", "Localhost")
        ),
    ),
    "WL-SECCOMP-NOT-UNCONFINED": _sc(
        "seccompProfile",
        {"type": "RuntimeDefault"},
        lambda v, c: (
            (csc(c).get("seccompProfile") or v.security().get("seccompProfile") or {}).get("type")
            == "Unconfined"
        ),
    ),
    "WL-WINDOWS-HOST-PROCESS": _sc(
        "windowsOptions",
        {"hostProcess": False},
        lambda v, c: bool((effective(v, c, "windowsOptions") or {}).get("hostProcess")),
    ),
    "WL-APPARMOR": _per_container(_apparmor),
    "WL-DROP-ALL": _set_caps("drop", _with_drop("ALL")),
    "WL-NET-RAW": _per_container(
        lambda obj, view, c: (
            (
                [
                    patches.set_op(
                        obj,
                        [*_p(c.path), "securityContext", "capabilities", "add"],
                        [
                            x
                            for x in _caps(c, "add")
                            if x.upper().removeprefix("CAP_") not in ("NET_RAW", "ALL")
                        ],
                    )
                ]
                if any(x.upper().removeprefix("CAP_") in ("NET_RAW", "ALL") for x in _caps(c, "add"))
                else []
            )
            + (
                []
                if {"ALL", "NET_RAW"} & set(_caps(c, "drop"))
                else [
                    patches.set_op(
                        obj,
                        [*_p(c.path), "securityContext", "capabilities", "drop"],
                        [*_caps(c, "drop"), "NET_RAW"],
                    )
                ]
            )
        )
    ),
    "WL-CAPS-BASELINE": _set_caps("add", _without(lambda cap: cap not in BASELINE_CAPS)),
    "WL-CAPS-RESTRICTED": _set_caps("add", _without(lambda cap: cap != "NET_BIND_SERVICE")),
    # resources
    "WL-LIMITS-CPU": _resource("limits", "cpu", "500m"),
    "WL-LIMITS-MEMORY": _resource("limits", "memory", "512Mi"),
    "WL-REQUESTS-CPU": _resource("requests", "cpu", "100m"),
    "WL-REQUESTS-MEMORY": _resource("requests", "memory", "128Mi"),
    # ports and mounts
    "WL-HOST-PORTS": _per_container(_host_port),
    "WL-SECRET-MOUNTS-READONLY": _mount_read_only(lambda v: "secret" in v),
    "WL-HOST-PATH-READONLY": _mount_read_only(lambda v: "hostPath" in v),
    # pod spec
    "WL-HOST-NETWORK": _pod_set("hostNetwork", False),
    "WL-HOST-PID": _pod_set("hostPID", False),
    "WL-HOST-IPC": _pod_set("hostIPC", False),
    "WL-SHARE-PROCESS-NAMESPACE": _pod_set("shareProcessNamespace", False),
    "WL-AUTOMOUNT-TOKEN": _pod_set("automountServiceAccountToken", False),
    "WL-FS-GROUP-NOT-ROOT": _pod(_fs_group),
    "WL-SUPPLEMENTAL-GROUPS": _pod_sc_filter("supplementalGroups", lambda g: g != 0),
    "WL-SYSCTLS": _pod_sc_filter("sysctls", lambda s: isinstance(s, dict) and s.get("name") in SAFE_SYSCTLS),
    "WL-EMPTYDIR-SIZE-LIMIT": _volumes_fix(
        lambda v: isinstance(v.get("emptyDir"), dict) and not v["emptyDir"].get("sizeLimit"),
        "emptyDir",
        "sizeLimit",
        "1Gi",
    ),
    "WL-SECRET-VOLUME-MODE": _volumes_fix(
        lambda v: isinstance(v.get("secret"), dict) and v["secret"].get("defaultMode", 0o644) & 0o007,
        "secret",
        "defaultMode",
        0o440,
    ),
    "WL-REPLICAS": _set("/spec/replicas", 2),
    "WL-INVENTORY-LABEL": _inventory,
    "WL-PDB": _pdb,
    # network and namespaces
    "NET-DEFAULT-DENY-INGRESS": _default_deny("Ingress"),
    "NET-DEFAULT-DENY-EGRESS": _default_deny("Egress"),
    "NET-EXTERNAL-IPS": _remove("/spec/externalIPs"),
    "NS-PSA-ENFORCE": _label("pod-security.kubernetes.io/enforce", "baseline"),
    "NS-PSA-RESTRICTED": _label("pod-security.kubernetes.io/enforce", "restricted"),
    "NS-PSA-WARN": _label("pod-security.kubernetes.io/warn", "restricted"),
    "NS-DEFAULT-RESTRICTED": _label("pod-security.kubernetes.io/enforce", "restricted"),
    "PDB-ALLOWS-EVICTION": _pdb_eviction,
    "RBAC-DEFAULT-SA-AUTOMOUNT": _set("/automountServiceAccountToken", False),
    # Fortress resources
    "FTR-LEDGER-SNAPSHOTS": _set("/spec/snapshotInterval", 100),
    "FTR-LEDGER-RETENTION": _set("/spec/retention/snapshotsKept", 3),
    "FTR-LEDGER-PROJECTION": _set("/spec/projection/enabled", True),
    "FTR-LEDGER-IDEMPOTENCY": _set("/spec/retention/idempotencyKeyTtl", "24h"),
    "FTR-LEDGER-MIGRATE": _set("/spec/migrate", True),
    "FTR-DR-FENCING": _set("/spec/fencing", "readOnly"),
    "FTR-ROLLOUT-MISSING-DATA": _set("/spec/analysis/missingData", "inconclusive"),
    "FTR-ROLLOUT-FAILURE-LIMIT": _set("/spec/analysis/failureLimit", 1),
    "FTR-ROLLOUT-BLUEGREEN-ANALYSIS": _set("/spec/strategy/blueGreen/prePromotionAnalysis", True),
}


def _banning(banned: str) -> Callable[[str], bool]:
    return lambda cap: cap in (banned, "ALL")


for _cap, _severity, _why in DANGEROUS_CAPS:
    REMEDIATIONS[f"WL-CAP-{_cap.replace('_', '-')}"] = _set_caps("add", _without(_banning(_cap)))


def remediate(control_id: str, obj: Obj, ctx: Context) -> Action | None:
    """The action fixing ``control_id`` on ``obj`` (None when the control has no remediation)."""
    remediator = REMEDIATIONS.get(control_id)
    if remediator is None:
        return None
    outcome = remediator(obj, ctx)
    if not outcome:
        return None
    ref = ObjectRef.of(obj)
    title = BY_ID[control_id].remediation or BY_ID[control_id].title
    if isinstance(outcome, list):
        return Action(control_id, ref, Operation.PATCH, title, tuple(outcome))
    return Action(control_id, ObjectRef.of(outcome), Operation.CREATE, title, object=outcome)


class Mode(StrEnum):
    NONE = "none"
    DRY_RUN = "dryRun"
    AUTO = "auto"


@dataclass(frozen=True, slots=True)
class Policy:
    """What the planner may do (the scan's spec.remediation and spec.excludeNamespaces)."""

    mode: Mode = Mode.NONE
    controls: frozenset[str] = frozenset()
    max_severity: Severity = Severity.HIGH
    max_per_scan: int = 10
    exclude_namespaces: frozenset[str] = frozenset({"kube-system", "kube-public", "kube-node-lease"})


@dataclass
class Plan:
    actions: list[Action] = field(default_factory=list)
    skipped: list[tuple[str, str, str]] = field(default_factory=list)  # (control, object, reason)


def _touches_secret_data(action: Action) -> bool:
    if action.target.kind == "Secret" or (action.object or {}).get("kind") == "Secret":
        return True
    return any(op["path"].startswith(("/data", "/stringData")) for op in action.ops)


def plan(findings: Iterable[Finding], objects: dict[ObjectRef, Obj], ctx: Context, policy: Policy) -> Plan:
    """The actions for the open findings, most severe first, at most ``policy.max_per_scan``."""
    out = Plan()
    ordered = sorted(
        (f for f in findings if f.result.status is Status.FAIL),
        key=lambda f: (-SEVERITY_ORDER[f.control.severity], f.control.id, f.ref.display()),
    )
    working: dict[ObjectRef, Obj] = {}
    created: set[tuple[str, str, str]] = set()
    for finding in ordered:
        where = finding.ref.display()
        cid = finding.control.id

        def skip(reason: str, cid: str = cid, where: str = where) -> None:
            out.skipped.append((cid, where, reason))

        if policy.mode is Mode.NONE:
            skip("remediation is off")
            continue
        if finding.suppressed_by:
            skip(f"suppressed by {finding.suppressed_by}")
            continue
        if cid not in REMEDIATIONS:
            skip("no automatic remediation")
            continue
        if policy.controls and cid not in policy.controls:
            skip("control not selected for remediation")
            continue
        if SEVERITY_ORDER[finding.control.severity] > SEVERITY_ORDER[policy.max_severity]:
            skip(f"severity {finding.control.severity} is above {policy.max_severity}")
            continue
        namespace = finding.ref.name if finding.ref.kind == "Namespace" else finding.ref.namespace
        if namespace in policy.exclude_namespaces:
            skip(f"namespace {namespace} is excluded")
            continue
        obj = working.get(finding.ref) or objects.get(finding.ref)
        if obj is None:
            skip("object not available")
            continue
        action = remediate(cid, obj, ctx)
        if action is None:
            skip("nothing to change")
            continue
        if _touches_secret_data(action):
            skip("would touch a Secret")
            continue
        if action.operation is Operation.CREATE:
            key = (action.target.kind, action.target.namespace, action.target.name)
            if key in created:
                continue
            created.add(key)
        if len(out.actions) >= policy.max_per_scan:
            skip(f"maxPerScan ({policy.max_per_scan}) reached")
            continue
        if action.operation is Operation.PATCH:
            working[finding.ref] = patches.apply(obj, list(action.ops))
        out.actions.append(action)
    return out
