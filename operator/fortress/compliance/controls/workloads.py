"""Workload controls: every pod template (Pod, Deployment, StatefulSet, DaemonSet, ReplicaSet, Job,
CronJob, CanaryRollout ``spec.template``), per container including init and ephemeral containers."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from typing import Any

from fortress.compliance.context import Context
from fortress.compliance.controls._base import Where, cis, control, nsa, pss
from fortress.compliance.model import NOT_APPLICABLE, PASS, Control, Obj, Result, Severity, fail
from fortress.compliance.pods import WORKLOAD_KINDS, ContainerRef, PodView, csc, effective, volumes

AREA = "workloads"
K = WORKLOAD_KINDS
H, C, M, L = Severity.HIGH, Severity.CRITICAL, Severity.MEDIUM, Severity.LOW

RUN_TO_COMPLETION = ("Job", "CronJob")
ContainerPredicate = Callable[[PodView, ContainerRef], "str | None"]
PodPredicate = Callable[[PodView], "tuple[str, str] | None"]


def each_container(
    predicate: ContainerPredicate, *, regular_only: bool = False, skip_kinds: tuple[str, ...] = ()
) -> Callable[[Obj, Context], Result]:
    """A check failing when ``predicate`` returns a problem (str) for any container (not applicable
    to ``skip_kinds``)."""

    def check(obj: Obj, ctx: Context) -> Result:
        view = ctx.pod(obj)
        if view is None or obj.get("kind") in skip_kinds:
            return NOT_APPLICABLE
        containers: Iterable[ContainerRef] = view.regular() if regular_only else view.all()
        problems: list[tuple[ContainerRef, str]] = []
        for container in containers:
            problem = predicate(view, container)
            if problem is not None:
                problems.append((container, problem))
        if not problems:
            return PASS if view.containers else NOT_APPLICABLE
        first, text = problems[0]
        names = ", ".join(c.name for c, _ in problems)
        return fail(f"container(s) {names}: {text}", first.path)

    return check


def on_pod(predicate: PodPredicate) -> Callable[[Obj, Context], Result]:
    """A check on the pod spec: ``predicate`` returns (message, path suffix) on failure."""

    def check(obj: Obj, ctx: Context) -> Result:
        view = ctx.pod(obj)
        if view is None:
            return NOT_APPLICABLE
        problem = predicate(view)
        return PASS if problem is None else fail(problem[0], view.path + problem[1])

    return check


def _caps(container: ContainerRef, key: str) -> list[str]:
    caps = csc(container).get("capabilities")
    items = caps.get(key) if isinstance(caps, dict) else None
    return [str(c).upper().removeprefix("CAP_") for c in items] if isinstance(items, list) else []


# ---------------------------------------------------------------------------------------------- privilege


def _privileged(view: PodView, c: ContainerRef) -> str | None:
    return "runs privileged" if csc(c).get("privileged") is True else None


def _escalation(view: PodView, c: ContainerRef) -> str | None:
    return (
        None if csc(c).get("allowPrivilegeEscalation") is False else "allowPrivilegeEscalation is not false"
    )


def _non_root(view: PodView, c: ContainerRef) -> str | None:
    if effective(view, c, "runAsNonRoot") is True:
        return None
    user = effective(view, c, "runAsUser")
    return None if isinstance(user, int) and user > 0 else "runAsNonRoot is not true and runAsUser is not > 0"


def _not_uid0(view: PodView, c: ContainerRef) -> str | None:
    return "runAsUser is 0" if effective(view, c, "runAsUser") == 0 else None


def _high_uid(view: PodView, c: ContainerRef) -> str | None:
    if view.spec.get("hostUsers") is False:
        return None  # a user namespace maps container UIDs away from host users
    user = effective(view, c, "runAsUser")
    return None if isinstance(user, int) and user >= 10000 else "runAsUser is unset or below 10000"


def _not_gid0(view: PodView, c: ContainerRef) -> str | None:
    return "runAsGroup is 0" if effective(view, c, "runAsGroup") == 0 else None


def _drop_all(view: PodView, c: ContainerRef) -> str | None:
    return None if "ALL" in _caps(c, "drop") else "capabilities.drop does not include ALL"


def _add_restricted(view: PodView, c: ContainerRef) -> str | None:
    extra = sorted(set(_caps(c, "add")) - {"NET_BIND_SERVICE"})
    return f"adds capabilities {', '.join(extra)}" if extra else None


BASELINE_CAPS = {
    "AUDIT_WRITE",
    "CHOWN",
    "DAC_OVERRIDE",
    "FOWNER",
    "FSETID",
    "KILL",
    "MKNOD",
    "NET_BIND_SERVICE",
    "SETFCAP",
    "SETGID",
    "SETPCAP",
    "SETUID",
    "SYS_CHROOT",
}


def _add_baseline(view: PodView, c: ContainerRef) -> str | None:
    extra = sorted(set(_caps(c, "add")) - BASELINE_CAPS)
    return f"adds capabilities beyond the baseline set: {', '.join(extra)}" if extra else None


def _no_cap(cap: str) -> ContainerPredicate:
    def predicate(view: PodView, c: ContainerRef) -> str | None:
        added = _caps(c, "add")
        return f"adds {cap}" if cap in added or "ALL" in added else None

    return predicate


def _net_raw(view: PodView, c: ContainerRef) -> str | None:
    drop = _caps(c, "drop")
    if "NET_RAW" in _caps(c, "add") or "ALL" in _caps(c, "add"):
        return "adds NET_RAW"
    return None if "ALL" in drop or "NET_RAW" in drop else "does not drop NET_RAW (or ALL)"


def _read_only_root(view: PodView, c: ContainerRef) -> str | None:
    return None if csc(c).get("readOnlyRootFilesystem") is True else "readOnlyRootFilesystem is not true"


def _host_ports(view: PodView, c: ContainerRef) -> str | None:
    ports = c.container.get("ports") or []
    used = [p.get("hostPort") for p in ports if isinstance(p, dict) and p.get("hostPort")]
    return f"uses hostPort {used[0]}" if used else None


def _proc_mount(view: PodView, c: ContainerRef) -> str | None:
    mount = csc(c).get("procMount")
    return None if mount in (None, "Default") else f"procMount is {mount}"


def _seccomp_type(view: PodView, c: ContainerRef) -> Any:
    profile = csc(c).get("seccompProfile") or view.security().get("seccompProfile") or {}
    return profile.get("type") if isinstance(profile, dict) else None


def _seccomp_set(view: PodView, c: ContainerRef) -> str | None:
    kind = _seccomp_type(view, c)
    return (
        None
        if kind in ("RuntimeDefault", "Localhost")
        else "seccompProfile is not RuntimeDefault or Localhost"
    )


def _seccomp_not_unconfined(view: PodView, c: ContainerRef) -> str | None:
    return "seccompProfile is Unconfined" if _seccomp_type(view, c) == "Unconfined" else None


def _apparmor(view: PodView, c: ContainerRef) -> str | None:
    annotations = view.metadata.get("annotations") or {}
    value = annotations.get(f"container.apparmor.security.beta.kubernetes.io/{c.name}")
    profile = csc(c).get("appArmorProfile") or view.security().get("appArmorProfile") or {}
    if value == "unconfined" or (isinstance(profile, dict) and profile.get("type") == "Unconfined"):
        return "AppArmor profile is unconfined"
    return None


ALLOWED_SELINUX_TYPES = {"", "container_t", "container_init_t", "container_kvm_t", "container_engine_t"}


def _selinux(view: PodView, c: ContainerRef) -> str | None:
    for options in (view.security().get("seLinuxOptions"), csc(c).get("seLinuxOptions")):
        if not isinstance(options, dict):
            continue
        if options.get("type", "") not in ALLOWED_SELINUX_TYPES:
            return f"seLinuxOptions.type {options.get('type')} is not allowed"
        if options.get("user") or options.get("role"):
            return "seLinuxOptions sets user or role"
    return None


def _windows_host_process(view: PodView, c: ContainerRef) -> str | None:
    options = effective(view, c, "windowsOptions")
    return (
        "is a Windows hostProcess container"
        if isinstance(options, dict) and options.get("hostProcess")
        else None
    )


def _limit(resource: str, kind: str) -> ContainerPredicate:
    def predicate(view: PodView, c: ContainerRef) -> str | None:
        values = (c.container.get("resources") or {}).get(kind) or {}
        return None if values.get(resource) not in (None, "", 0, "0") else f"{kind}.{resource} is not set"

    return predicate


_UNITS = {
    "m": 1e-3,
    "": 1,
    "k": 1e3,
    "K": 1e3,
    "M": 1e6,
    "G": 1e9,
    "T": 1e12,
    "Ki": 1024,
    "Mi": 1024**2,
    "Gi": 1024**3,
    "Ti": 1024**4,
}
_QUANTITY = re.compile(r"^([0-9.]+)(m|k|K|M|G|T|Ki|Mi|Gi|Ti)?$")


def quantity(value: Any) -> float | None:
    match = _QUANTITY.match(str(value))
    return float(match.group(1)) * _UNITS[match.group(2) or ""] if match else None


def _requests_within_limits(view: PodView, c: ContainerRef) -> str | None:
    resources = c.container.get("resources") or {}
    requests, limits = resources.get("requests") or {}, resources.get("limits") or {}
    for key in ("cpu", "memory"):
        low, high = quantity(requests.get(key)), quantity(limits.get(key))
        if low is not None and high is not None and low > high:
            return f"requests.{key} exceeds limits.{key}"
    return None


def _probe(name: str) -> ContainerPredicate:
    def predicate(view: PodView, c: ContainerRef) -> str | None:
        return None if isinstance(c.container.get(name), dict) else f"has no {name}"

    return predicate


def _image_tag(view: PodView, c: ContainerRef) -> str | None:
    image = str(c.container.get("image") or "")
    if "@sha256:" in image:
        return None
    last = image.rsplit("/", 1)[-1]
    if ":" not in last:
        return f"image {image} has no tag (latest)"
    return f"image {image} uses the latest tag" if last.rsplit(":", 1)[1] == "latest" else None


def _image_digest(view: PodView, c: ContainerRef) -> str | None:
    image = str(c.container.get("image") or "")
    return None if re.search(r"@sha256:[0-9a-f]{64}$", image) else f"image {image} is not pinned by digest"


def _secret_env(view: PodView, c: ContainerRef) -> str | None:
    for env in c.container.get("env") or []:
        if isinstance(env, dict) and isinstance((env.get("valueFrom") or {}).get("secretKeyRef"), dict):
            return f"env {env.get('name')} comes from a Secret"
    for source in c.container.get("envFrom") or []:
        if isinstance(source, dict) and isinstance(source.get("secretRef"), dict):
            return "envFrom takes a whole Secret"
    return None


_CREDENTIAL_NAME = re.compile(
    r"(PASSWORD|PASSWD|PASSPHRASE|SECRET|TOKEN|API_?KEY|PRIVATE_?KEY|CREDENTIAL)", re.I
)
_POINTER = re.compile(r"(_FILE|_PATH|_DIR|_NAME|_URL_FILE)$", re.I)


def _literal_credentials(view: PodView, c: ContainerRef) -> str | None:
    for env in c.container.get("env") or []:
        if not isinstance(env, dict) or not env.get("value"):
            continue
        name = str(env.get("name", ""))
        if _CREDENTIAL_NAME.search(name) and not _POINTER.search(name):
            return f"env {name} holds a literal credential-like value"
    return None


def _secret_mounts_read_only(view: PodView, c: ContainerRef) -> str | None:
    secret_volumes = {v.get("name") for _, v in volumes(view) if "secret" in v}
    for mount in c.container.get("volumeMounts") or []:
        if (
            isinstance(mount, dict)
            and mount.get("name") in secret_volumes
            and mount.get("readOnly") is not True
        ):
            return f"mounts Secret volume {mount.get('name')} writable"
    return None


# ---------------------------------------------------------------------------------------------- pod level


def _flag(key: str) -> PodPredicate:
    def predicate(view: PodView) -> tuple[str, str] | None:
        return (f"{key} is true", f"/{key}") if view.spec.get(key) is True else None

    return predicate


def _host_path_volumes(view: PodView) -> tuple[str, str] | None:
    for i, volume in volumes(view):
        if "hostPath" in volume:
            return f"volume {volume.get('name')} is a hostPath", f"/volumes/{i}"
    return None


def _sensitive_paths(prefixes: tuple[str, ...], label: str) -> PodPredicate:
    def predicate(view: PodView) -> tuple[str, str] | None:
        for i, volume in volumes(view):
            path = str((volume.get("hostPath") or {}).get("path") or "")
            if not path:
                continue
            normal = "/" + path.strip("/")
            if any(normal == p or (p != "/" and normal.startswith(p + "/")) for p in prefixes):
                return f"volume {volume.get('name')} mounts {label} {path}", f"/volumes/{i}"
        return None

    return predicate


def _host_path_read_only(view: PodView) -> tuple[str, str] | None:
    host = {v.get("name") for _, v in volumes(view) if "hostPath" in v}
    for c in view.all():
        for mount in c.container.get("volumeMounts") or []:
            if isinstance(mount, dict) and mount.get("name") in host and mount.get("readOnly") is not True:
                return f"container {c.name} mounts hostPath {mount.get('name')} writable", c.path[
                    len(view.path) :
                ]
    return None


RESTRICTED_VOLUMES = {
    "configMap",
    "csi",
    "downwardAPI",
    "emptyDir",
    "ephemeral",
    "persistentVolumeClaim",
    "projected",
    "secret",
}


def _volume_types(view: PodView) -> tuple[str, str] | None:
    for i, volume in volumes(view):
        kinds = set(volume) - {"name"}
        if kinds - RESTRICTED_VOLUMES:
            return f"volume {volume.get('name')} has type {', '.join(sorted(kinds))}", f"/volumes/{i}"
    return None


SAFE_SYSCTLS = {
    "kernel.shm_rmid_forced",
    "net.ipv4.ip_local_port_range",
    "net.ipv4.ip_unprivileged_port_start",
    "net.ipv4.tcp_syncookies",
    "net.ipv4.ping_group_range",
    "net.ipv4.ip_local_reserved_ports",
    "net.ipv4.tcp_keepalive_time",
    "net.ipv4.tcp_fin_timeout",
    "net.ipv4.tcp_keepalive_intvl",
    "net.ipv4.tcp_keepalive_probes",
}


def _sysctls(view: PodView) -> tuple[str, str] | None:
    for i, item in enumerate(view.security().get("sysctls") or []):
        if isinstance(item, dict) and item.get("name") not in SAFE_SYSCTLS:
            return f"sets unsafe sysctl {item.get('name')}", f"/securityContext/sysctls/{i}"
    return None


def _fs_group(view: PodView) -> tuple[str, str] | None:
    return ("fsGroup is 0", "/securityContext/fsGroup") if view.security().get("fsGroup") == 0 else None


def _supplemental(view: PodView) -> tuple[str, str] | None:
    if 0 in (view.security().get("supplementalGroups") or []):
        return "supplementalGroups include 0", "/securityContext/supplementalGroups"
    return None


def _automount(view: PodView) -> tuple[str, str] | None:
    if view.spec.get("automountServiceAccountToken") is False:
        return None
    return "automountServiceAccountToken is not false", "/automountServiceAccountToken"


def _service_account(view: PodView) -> tuple[str, str] | None:
    name = view.spec.get("serviceAccountName") or view.spec.get("serviceAccount") or "default"
    return ("runs as the default service account", "/serviceAccountName") if name == "default" else None


def _empty_dir_limit(view: PodView) -> tuple[str, str] | None:
    for i, volume in volumes(view):
        if isinstance(volume.get("emptyDir"), dict) and not volume["emptyDir"].get("sizeLimit"):
            return f"emptyDir {volume.get('name')} has no sizeLimit", f"/volumes/{i}"
    return None


def _secret_mode(view: PodView) -> tuple[str, str] | None:
    for i, volume in volumes(view):
        secret = volume.get("secret")
        if isinstance(secret, dict):
            mode = secret.get("defaultMode", 0o644)
            if isinstance(mode, int) and mode & 0o007:
                return (
                    f"Secret volume {volume.get('name')} is world-readable (mode {mode:o})",
                    f"/volumes/{i}",
                )
    return None


def _no_ephemeral(view: PodView) -> tuple[str, str] | None:
    return (
        ("has ephemeral (debug) containers", "/ephemeralContainers")
        if view.spec.get("ephemeralContainers")
        else None
    )


CONTROL_PLANE_TAINTS = {"node-role.kubernetes.io/control-plane", "node-role.kubernetes.io/master"}


def _control_plane_toleration(view: PodView) -> tuple[str, str] | None:
    for i, toleration in enumerate(view.spec.get("tolerations") or []):
        if not isinstance(toleration, dict):
            continue
        if toleration.get("key") in CONTROL_PLANE_TAINTS or (
            not toleration.get("key") and toleration.get("operator") == "Exists"
        ):
            return "tolerates the control-plane taint", f"/tolerations/{i}"
    return None


# ---------------------------------------------------------------------------------------------- object level


def _not_default_namespace(obj: Obj, ctx: Context) -> Result:
    if ctx.pod(obj) is None:
        return NOT_APPLICABLE
    namespace = (obj.get("metadata") or {}).get("namespace")
    if not namespace:
        return NOT_APPLICABLE
    return fail("runs in the default namespace", "/metadata/namespace") if namespace == "default" else PASS


def _inventory_labels(obj: Obj, ctx: Context) -> Result:
    if ctx.pod(obj) is None:
        return NOT_APPLICABLE
    labels = (obj.get("metadata") or {}).get("labels") or {}
    if "app.kubernetes.io/name" in labels or "app" in labels:
        return PASS
    return fail("has no app.kubernetes.io/name (or app) label", "/metadata/labels")


def _replicas(obj: Obj, ctx: Context) -> Result:
    if obj.get("kind") not in ("Deployment", "StatefulSet", "CanaryRollout") or ctx.pod(obj) is None:
        return NOT_APPLICABLE
    replicas = (obj.get("spec") or {}).get("replicas", 2 if obj.get("kind") == "CanaryRollout" else 1)
    if replicas == 0:
        return NOT_APPLICABLE
    return (
        PASS
        if isinstance(replicas, int) and replicas >= 2
        else fail(f"runs {replicas} replica", "/spec/replicas")
    )


def _pdb_covered(obj: Obj, ctx: Context) -> Result:
    if obj.get("kind") not in ("Deployment", "StatefulSet"):
        return NOT_APPLICABLE
    replicas = (obj.get("spec") or {}).get("replicas", 1)
    view = ctx.pod(obj)
    if view is None or not isinstance(replicas, int) or replicas < 2:
        return NOT_APPLICABLE
    labels = view.metadata.get("labels") or {}
    namespace = str((obj.get("metadata") or {}).get("namespace") or "")
    from fortress.compliance.context import labels_match

    for pdb in ctx.pdbs.get(namespace, ()):
        if labels_match((pdb.get("spec") or {}).get("selector"), labels):
            return PASS
    return fail(
        f"{replicas} replicas and no PodDisruptionBudget selects its pods", "/spec/template/metadata/labels"
    )


def _shared_controls() -> list[Control]:
    w: Where = {"kinds": K, "area": AREA}
    return [
        # --- Pod Security Standards, baseline
        control(
            "WL-PRIVILEGED",
            "Containers do not run privileged",
            severity=C,
            check=each_container(_privileged),
            profiles=("privilege", "isolation"),
            source=pss("baseline: Privileged Containers"),
            description="No container (init and ephemeral ones included) sets securityContext.privileged.",
            rationale="A privileged container has every capability and host device access.",
            remediation="Remove securityContext.privileged or set it to false.",
            **w,
        ),
        control(
            "WL-HOST-NETWORK",
            "Pods do not share the host network",
            severity=H,
            check=on_pod(_flag("hostNetwork")),
            profiles=("isolation", "network"),
            source=pss("baseline: Host Namespaces"),
            description="spec.hostNetwork is not true.",
            rationale="Host networking bypasses NetworkPolicies and exposes node-local services.",
            remediation="Set spec.hostNetwork to false.",
            **w,
        ),
        control(
            "WL-HOST-PID",
            "Pods do not share the host PID namespace",
            severity=H,
            check=on_pod(_flag("hostPID")),
            profiles=("isolation",),
            source=pss("baseline: Host Namespaces"),
            description="spec.hostPID is not true.",
            rationale="The host PID namespace lets a container see and signal every process of the node.",
            remediation="Set spec.hostPID to false.",
            **w,
        ),
        control(
            "WL-HOST-IPC",
            "Pods do not share the host IPC namespace",
            severity=H,
            check=on_pod(_flag("hostIPC")),
            profiles=("isolation",),
            source=pss("baseline: Host Namespaces"),
            description="spec.hostIPC is not true.",
            rationale="The host IPC namespace exposes shared memory of every process on the node.",
            remediation="Set spec.hostIPC to false.",
            **w,
        ),
        control(
            "WL-HOST-PATH",
            "Pods do not mount hostPath volumes",
            severity=M,
            check=on_pod(_host_path_volumes),
            profiles=("isolation",),
            source=pss("baseline: HostPath Volumes"),
            description="No volume is a hostPath.",
            rationale="hostPath volumes give access to the node's filesystem outside the container.",
            remediation="Use a PersistentVolumeClaim, emptyDir or projected volume instead.",
            **w,
        ),
        control(
            "WL-HOST-PATH-READONLY",
            "hostPath volumes are mounted read-only",
            severity=M,
            check=on_pod(_host_path_read_only),
            profiles=("isolation",),
            source=cis("5.2.12"),
            description="Every mount of a hostPath volume sets readOnly: true.",
            rationale="A writable host mount lets a container change node files.",
            remediation="Set readOnly: true on the volumeMounts of hostPath volumes.",
            **w,
        ),
        control(
            "WL-HOST-PATH-RUNTIME-SOCKET",
            "Container runtime sockets are not mounted",
            severity=C,
            check=on_pod(
                _sensitive_paths(
                    (
                        "/var/run/docker.sock",
                        "/run/docker.sock",
                        "/var/run/containerd",
                        "/run/containerd",
                        "/var/run/crio",
                        "/run/crio",
                        "/var/run/cri-dockerd.sock",
                    ),
                    "a container runtime socket",
                )
            ),
            profiles=("isolation", "privilege"),
            source=nsa("Pod security: protecting pod service account tokens; hostPath mounts"),
            description="No hostPath volume points at the Docker, containerd or CRI-O socket.",
            rationale="The runtime socket starts privileged containers on the node: it is root on the node.",
            remediation="Remove the volume; build images with a rootless builder.",
            **w,
        ),
        control(
            "WL-HOST-PATH-KUBELET",
            "Kubelet and etcd directories are not mounted",
            severity=C,
            check=on_pod(
                _sensitive_paths(
                    ("/var/lib/kubelet", "/etc/kubernetes", "/var/lib/etcd"), "kubelet or etcd state"
                )
            ),
            profiles=("isolation", "secrets"),
            source=cis("5.2.12"),
            description="No hostPath volume points at /var/lib/kubelet, /etc/kubernetes or /var/lib/etcd.",
            rationale="These hold the node's credentials, every pod's Secrets and the cluster's data.",
            remediation="Remove the volume.",
            **w,
        ),
        control(
            "WL-HOST-PATH-ROOT",
            "The host root and /etc are not mounted",
            severity=C,
            check=on_pod(_sensitive_paths(("/", "/etc", "/root", "/boot", "/home"), "a host system path")),
            profiles=("isolation",),
            source=cis("5.2.12"),
            description="No hostPath volume points at /, /etc, /root, /boot or /home.",
            rationale="Mounting system directories exposes host credentials and configuration.",
            remediation="Remove the volume.",
            **w,
        ),
        control(
            "WL-HOST-PATH-PROC",
            "/proc, /sys and /dev of the host are not mounted",
            severity=H,
            check=on_pod(_sensitive_paths(("/proc", "/sys", "/dev"), "a host kernel interface")),
            profiles=("isolation",),
            source=cis("5.2.12"),
            description="No hostPath volume points at /proc, /sys or /dev.",
            rationale="Host kernel interfaces allow reading other processes and changing kernel settings.",
            remediation="Remove the volume.",
            **w,
        ),
        control(
            "WL-HOST-PATH-LOGS",
            "Host log directories are not mounted",
            severity=M,
            check=on_pod(_sensitive_paths(("/var/log",), "host logs")),
            profiles=("isolation", "logging"),
            source=nsa("Logging: protecting log integrity"),
            description="No hostPath volume points at /var/log.",
            rationale="A writable /var/log lets a container tamper with node and audit logs; it can also "
            "be used to read files through symlinks.",
            remediation="Ship logs with a node-level agent deployed by the platform team.",
            **w,
        ),
        control(
            "WL-HOST-PORTS",
            "Containers do not bind host ports",
            severity=M,
            check=each_container(_host_ports),
            profiles=("isolation", "network"),
            source=pss("baseline: Host Ports"),
            description="No container port sets hostPort.",
            rationale="Host ports expose the pod on the node's address, past Services and NetworkPolicies.",
            remediation="Remove hostPort and expose the pod through a Service.",
            **w,
        ),
        control(
            "WL-CAPS-BASELINE",
            "Containers add only baseline capabilities",
            severity=H,
            check=each_container(_add_baseline),
            profiles=("privilege",),
            source=pss("baseline: Capabilities"),
            description="capabilities.add lists only capabilities of the runtime's default set.",
            rationale="Capabilities beyond the default set grant kernel privileges containers do not need.",
            remediation="Remove the extra capabilities from capabilities.add.",
            **w,
        ),
        control(
            "WL-SECCOMP-NOT-UNCONFINED",
            "Seccomp is not Unconfined",
            severity=H,
            check=each_container(_seccomp_not_unconfined),
            profiles=("hardening",),
            source=pss("baseline: Seccomp"),
            description="Neither the pod nor a container sets seccompProfile.type Unconfined.",
            rationale="Without seccomp every system call of the kernel is reachable from the container.",
            remediation="Set seccompProfile.type to RuntimeDefault.",
            **w,
        ),
        control(
            "WL-APPARMOR",
            "AppArmor is not disabled",
            severity=M,
            check=each_container(_apparmor),
            profiles=("hardening",),
            source=pss("baseline: AppArmor"),
            description="No container runs with the unconfined AppArmor profile (annotation or field).",
            rationale="AppArmor confines what files and capabilities a process can use.",
            remediation="Remove the unconfined profile; use runtime/default.",
            **w,
        ),
        control(
            "WL-SELINUX",
            "SELinux options are restricted",
            severity=M,
            check=each_container(_selinux),
            profiles=("hardening",),
            source=pss("baseline: SELinux"),
            description="seLinuxOptions.type is a container type and user/role are unset.",
            rationale="Custom SELinux types or users can lift the policy that confines containers.",
            remediation="Remove seLinuxOptions.user/role and custom types.",
            **w,
        ),
        control(
            "WL-PROC-MOUNT",
            "/proc is masked",
            severity=M,
            check=each_container(_proc_mount),
            profiles=("hardening",),
            source=pss("baseline: /proc Mount Type"),
            description="securityContext.procMount is unset or Default.",
            rationale="An Unmasked /proc exposes kernel information and interfaces.",
            remediation="Remove securityContext.procMount.",
            **w,
        ),
        control(
            "WL-SYSCTLS",
            "Only safe sysctls are set",
            severity=M,
            check=on_pod(_sysctls),
            profiles=("hardening", "isolation"),
            source=pss("baseline: Sysctls"),
            description="spec.securityContext.sysctls lists only the namespaced safe sysctls.",
            rationale="Unsafe sysctls affect the whole node.",
            remediation="Remove the unsafe sysctls.",
            **w,
        ),
        control(
            "WL-WINDOWS-HOST-PROCESS",
            "No Windows hostProcess containers",
            severity=C,
            check=each_container(_windows_host_process),
            profiles=("privilege", "isolation"),
            source=pss("baseline: HostProcess"),
            description="windowsOptions.hostProcess is not true.",
            rationale="A hostProcess container runs directly on the Windows node with its privileges.",
            remediation="Set windowsOptions.hostProcess to false.",
            **w,
        ),
        # --- Pod Security Standards, restricted
        control(
            "WL-PRIVILEGE-ESCALATION",
            "Privilege escalation is disallowed",
            severity=H,
            check=each_container(_escalation),
            profiles=("privilege",),
            source=pss("restricted: Privilege Escalation"),
            description="Every container sets allowPrivilegeEscalation: false.",
            rationale="setuid binaries and file capabilities can otherwise raise a process's privileges.",
            remediation="Set securityContext.allowPrivilegeEscalation to false.",
            **w,
        ),
        control(
            "WL-RUN-AS-NON-ROOT",
            "Containers run as non-root",
            severity=H,
            check=each_container(_non_root),
            profiles=("privilege",),
            source=pss("restricted: Running as Non-root"),
            description="runAsNonRoot is true (container or pod) or runAsUser is above 0.",
            rationale="Root in a container is root on the node after any break-out.",
            remediation="Set securityContext.runAsNonRoot to true.",
            **w,
        ),
        control(
            "WL-RUN-AS-USER-NOT-ROOT",
            "runAsUser is not 0",
            severity=H,
            check=each_container(_not_uid0),
            profiles=("privilege",),
            source=pss("restricted: Running as Non-root user"),
            description="Neither the pod nor a container sets runAsUser: 0.",
            rationale="An explicit UID 0 runs the process as root whatever the image says.",
            remediation="Set runAsUser to a non-zero UID.",
            **w,
        ),
        control(
            "WL-DROP-ALL",
            "Containers drop all capabilities",
            severity=M,
            check=each_container(_drop_all),
            profiles=("privilege", "minimal"),
            source=pss("restricted: Capabilities"),
            description="Every container lists ALL in capabilities.drop.",
            rationale="The runtime's default capabilities are more than most processes need.",
            remediation="Add ALL to securityContext.capabilities.drop.",
            **w,
        ),
        control(
            "WL-CAPS-RESTRICTED",
            "Containers add only NET_BIND_SERVICE",
            severity=M,
            check=each_container(_add_restricted),
            profiles=("privilege",),
            source=pss("restricted: Capabilities"),
            description="capabilities.add lists nothing but NET_BIND_SERVICE.",
            rationale="The restricted profile allows binding low ports and nothing more.",
            remediation="Remove capabilities other than NET_BIND_SERVICE from capabilities.add.",
            **w,
        ),
        control(
            "WL-SECCOMP",
            "Seccomp RuntimeDefault or Localhost is set",
            severity=M,
            check=each_container(_seccomp_set),
            profiles=("hardening",),
            source=pss("restricted: Seccomp"),
            description="Every container's effective seccompProfile.type is RuntimeDefault or Localhost.",
            rationale="The default seccomp profile blocks system calls used in container break-outs.",
            remediation="Set spec.securityContext.seccompProfile.type to RuntimeDefault.",
            **w,
        ),
        control(
            "WL-VOLUME-TYPES",
            "Only restricted volume types",
            severity=M,
            check=on_pod(_volume_types),
            profiles=("isolation",),
            source=pss("restricted: Volume Types"),
            description="Volumes are configMap, csi, downwardAPI, emptyDir, ephemeral, "
            "persistentVolumeClaim, "
            "projected or secret.",
            rationale="Other volume types reach node or network storage outside the cluster's controls.",
            remediation="Replace the volume with a PersistentVolumeClaim.",
            **w,
        ),
        # --- CIS 5.2 / NSA
        control(
            "WL-NET-RAW",
            "NET_RAW is dropped",
            severity=M,
            check=each_container(_net_raw),
            profiles=("privilege", "network"),
            source=cis("5.2.7"),
            description="Every container drops NET_RAW (or ALL) and does not add it.",
            rationale="Raw sockets allow spoofing and ARP/DNS attacks on the pod network.",
            remediation="Add NET_RAW (or ALL) to capabilities.drop.",
            **w,
        ),
        control(
            "WL-READ-ONLY-ROOT",
            "Root filesystems are read-only",
            severity=M,
            check=each_container(_read_only_root),
            profiles=("hardening", "integrity"),
            source=nsa("Pod security: immutable container file systems"),
            description="Every container sets readOnlyRootFilesystem: true.",
            rationale="A writable root filesystem lets an intruder drop tools and change binaries.",
            remediation="Set readOnlyRootFilesystem to true; mount emptyDir volumes where writes are needed.",
            **w,
        ),
        control(
            "WL-HIGH-UID",
            "Containers run with a UID of 10000 or more",
            severity=L,
            check=each_container(_high_uid),
            profiles=("privilege",),
            source=nsa("Pod security: non-root containers"),
            description="The effective runAsUser is at least 10000 (or the pod sets hostUsers: false).",
            rationale="High UIDs do not collide with host users in case of a break-out.",
            remediation="Set runAsUser to 10000 or more.",
            **w,
        ),
        control(
            "WL-RUN-AS-GROUP-NOT-ROOT",
            "runAsGroup is not 0",
            severity=M,
            check=each_container(_not_gid0),
            profiles=("privilege",),
            source=nsa("Pod security: non-root containers"),
            description="Neither the pod nor a container sets runAsGroup: 0.",
            rationale="The root group owns many host files.",
            remediation="Set runAsGroup to a non-zero GID.",
            **w,
        ),
        control(
            "WL-FS-GROUP-NOT-ROOT",
            "fsGroup is not 0",
            severity=M,
            check=on_pod(_fs_group),
            profiles=("privilege",),
            source=nsa("Pod security: non-root containers"),
            description="spec.securityContext.fsGroup is not 0.",
            rationale="Volumes owned by the root group are writable by any root-group process.",
            remediation="Set fsGroup to a non-zero GID.",
            **w,
        ),
        control(
            "WL-SUPPLEMENTAL-GROUPS",
            "supplementalGroups exclude 0",
            severity=L,
            check=on_pod(_supplemental),
            profiles=("privilege",),
            source=nsa("Pod security: non-root containers"),
            description="spec.securityContext.supplementalGroups does not contain 0.",
            rationale="Membership in the root group grants access to root-group files.",
            remediation="Remove 0 from supplementalGroups.",
            **w,
        ),
        control(
            "WL-SHARE-PROCESS-NAMESPACE",
            "Containers do not share a process namespace",
            severity=L,
            check=on_pod(_flag("shareProcessNamespace")),
            profiles=("isolation",),
            source=nsa("Pod security: pod security enforcement"),
            description="spec.shareProcessNamespace is not true.",
            rationale="A shared PID namespace lets one container read another's environment and memory.",
            remediation="Set shareProcessNamespace to false.",
            **w,
        ),
        control(
            "WL-AUTOMOUNT-TOKEN",
            "Service account tokens are mounted only when needed",
            severity=M,
            check=on_pod(_automount),
            profiles=("access", "secrets"),
            source=cis("5.1.6"),
            description="spec.automountServiceAccountToken is false.",
            rationale="A mounted token is a Kubernetes credential an intruder can use.",
            remediation="Set automountServiceAccountToken: false (keep it only where the pod calls the API).",
            **w,
        ),
        control(
            "WL-DEFAULT-SERVICE-ACCOUNT",
            "Pods do not run as the default service account",
            severity=M,
            check=on_pod(_service_account),
            profiles=("access",),
            source=cis("5.1.5"),
            description="spec.serviceAccountName is set and is not default.",
            rationale="Permissions given to the default account are shared by every pod of the namespace.",
            remediation="Create a service account for the workload.",
            **w,
        ),
        control(
            "WL-SECRETS-IN-ENV",
            "Secrets are mounted as files, not environment variables",
            severity=M,
            check=each_container(_secret_env),
            profiles=("secrets",),
            source=cis("5.4.1"),
            description="No env or envFrom takes values from a Secret.",
            rationale="Environment variables leak into logs, crash reports and child processes.",
            remediation="Mount the Secret as a volume and read the file.",
            **w,
        ),
        control(
            "WL-LITERAL-CREDENTIALS",
            "No literal credentials in env",
            severity=H,
            check=each_container(_literal_credentials),
            profiles=("secrets", "authentication"),
            source=nsa("Authentication and authorization: secrets"),
            description="No env variable with a credential-like name (PASSWORD, TOKEN, SECRET, API_KEY, ...) "
            "has a literal value.",
            rationale="Credentials in manifests end up in version control and in every reader's hands.",
            remediation="Move the value into a Secret and mount it.",
            **w,
        ),
        control(
            "WL-SECRET-MOUNTS-READONLY",
            "Secret volumes are mounted read-only",
            severity=L,
            check=each_container(_secret_mounts_read_only),
            profiles=("secrets",),
            source=cis("5.4.1"),
            description="Every mount of a secret volume sets readOnly: true.",
            rationale="Credentials should never be modified in place by the workload.",
            remediation="Set readOnly: true on the mount.",
            **w,
        ),
        control(
            "WL-SECRET-VOLUME-MODE",
            "Secret volumes are not world-readable",
            severity=L,
            check=on_pod(_secret_mode),
            profiles=("secrets",),
            source=cis("5.4.1"),
            description="secret volumes set a defaultMode without permissions for others.",
            rationale="World-readable key files are readable by every user of the container.",
            remediation="Set defaultMode to 0440 or stricter.",
            **w,
        ),
        control(
            "WL-LIMITS-CPU",
            "CPU limits are set",
            severity=L,
            check=each_container(_limit("cpu", "limits")),
            profiles=("availability",),
            source=nsa("Pod security: resource policies"),
            description="Every container sets resources.limits.cpu.",
            rationale="An unbounded container can starve its neighbours of CPU.",
            remediation="Set resources.limits.cpu.",
            **w,
        ),
        control(
            "WL-LIMITS-MEMORY",
            "Memory limits are set",
            severity=M,
            check=each_container(_limit("memory", "limits")),
            profiles=("availability",),
            source=nsa("Pod security: resource policies"),
            description="Every container sets resources.limits.memory.",
            rationale="Unbounded memory use causes node-wide out-of-memory kills.",
            remediation="Set resources.limits.memory.",
            **w,
        ),
        control(
            "WL-REQUESTS-CPU",
            "CPU requests are set",
            severity=L,
            check=each_container(_limit("cpu", "requests")),
            profiles=("availability",),
            source=nsa("Pod security: resource policies"),
            description="Every container sets resources.requests.cpu.",
            rationale="Without requests the scheduler cannot reserve capacity.",
            remediation="Set resources.requests.cpu.",
            **w,
        ),
        control(
            "WL-REQUESTS-MEMORY",
            "Memory requests are set",
            severity=L,
            check=each_container(_limit("memory", "requests")),
            profiles=("availability",),
            source=nsa("Pod security: resource policies"),
            description="Every container sets resources.requests.memory.",
            rationale="Without requests the scheduler cannot reserve capacity.",
            remediation="Set resources.requests.memory.",
            **w,
        ),
        control(
            "WL-REQUESTS-WITHIN-LIMITS",
            "Requests do not exceed limits",
            severity=L,
            check=each_container(_requests_within_limits),
            profiles=("availability",),
            source=nsa("Pod security: resource policies"),
            description="resources.requests is not above resources.limits for cpu and memory.",
            rationale="Such pods are rejected by the API server or never scheduled.",
            remediation="Lower the request or raise the limit.",
            **w,
        ),
        control(
            "WL-EMPTYDIR-SIZE-LIMIT",
            "emptyDir volumes have a size limit",
            severity=L,
            check=on_pod(_empty_dir_limit),
            profiles=("availability",),
            source=nsa("Pod security: resource policies"),
            description="Every emptyDir sets sizeLimit.",
            rationale="An unbounded emptyDir can fill the node's disk.",
            remediation="Set emptyDir.sizeLimit.",
            **w,
        ),
        control(
            "WL-LIVENESS-PROBE",
            "Containers have liveness probes",
            severity=L,
            check=each_container(_probe("livenessProbe"), regular_only=True, skip_kinds=RUN_TO_COMPLETION),
            profiles=("monitoring",),
            source=nsa("Threat detection: monitoring"),
            description="Every app container defines a livenessProbe (Jobs and CronJobs: not applicable).",
            rationale="A hung process is restarted only when a probe detects it.",
            remediation="Add a livenessProbe.",
            **w,
        ),
        control(
            "WL-READINESS-PROBE",
            "Containers have readiness probes",
            severity=L,
            check=each_container(_probe("readinessProbe"), regular_only=True, skip_kinds=RUN_TO_COMPLETION),
            profiles=("monitoring",),
            source=nsa("Threat detection: monitoring"),
            description="Every app container defines a readinessProbe (Jobs and CronJobs: not applicable).",
            rationale="Traffic reaches a pod before it can serve when there is no readiness probe.",
            remediation="Add a readinessProbe.",
            **w,
        ),
        control(
            "WL-IMAGE-TAG",
            "Images have a fixed tag",
            severity=M,
            check=each_container(_image_tag),
            profiles=("integrity", "change"),
            source=nsa("Upgrading and application security practices"),
            description="No image uses :latest or no tag at all (a digest is fine).",
            rationale="A moving tag changes what runs without a change to the manifest.",
            remediation="Pin a version tag or a digest.",
            **w,
        ),
        control(
            "WL-IMAGE-DIGEST",
            "Images are pinned by digest",
            severity=L,
            check=each_container(_image_digest),
            profiles=("integrity",),
            source=nsa("Upgrading and application security practices"),
            description="Every image reference ends in @sha256:<digest>.",
            rationale="Only a digest guarantees the bytes that run are the bytes that were reviewed.",
            remediation="Reference images by digest.",
            **w,
        ),
        control(
            "WL-NO-EPHEMERAL-CONTAINERS",
            "No debug containers in running pods",
            severity=L,
            check=on_pod(_no_ephemeral),
            profiles=("change",),
            source=nsa("Threat detection: monitoring"),
            description="The pod has no ephemeral containers.",
            rationale="Ephemeral containers are ad-hoc changes to production pods that bypass review.",
            remediation="Restart the pod from its controller after debugging.",
            **w,
        ),
        control(
            "WL-CONTROL-PLANE-TOLERATION",
            "Workloads do not tolerate the control-plane taint",
            severity=M,
            check=on_pod(_control_plane_toleration),
            profiles=("isolation",),
            source=cis("5.7.1"),
            description="No toleration matches the control-plane taint or tolerates every taint.",
            rationale="Application pods on control-plane nodes sit beside etcd and the API server's keys.",
            remediation="Remove the toleration.",
            **w,
        ),
        control(
            "WL-NOT-DEFAULT-NAMESPACE",
            "Workloads are not in the default namespace",
            severity=L,
            check=_not_default_namespace,
            profiles=("isolation", "inventory"),
            source=cis("5.7.4"),
            description="metadata.namespace is set and is not default (not applicable when unset).",
            rationale="The default namespace has no owner and usually no policies.",
            remediation="Move the workload to a dedicated namespace.",
            **w,
        ),
        control(
            "WL-INVENTORY-LABEL",
            "Workloads carry an application label",
            severity=L,
            check=_inventory_labels,
            profiles=("inventory",),
            source=nsa("Threat detection: logging and inventory"),
            description="metadata.labels has app.kubernetes.io/name (or app).",
            rationale="An inventory of what runs needs every workload to say what it is.",
            remediation="Add the app.kubernetes.io/name label.",
            **w,
        ),
        control(
            "WL-REPLICAS",
            "Services run at least two replicas",
            severity=L,
            check=_replicas,
            profiles=("availability",),
            source=nsa("Pod security: resource policies"),
            description="Deployments, StatefulSets and CanaryRollouts with replicas set run at least 2 "
            "(not applicable when scaled to 0).",
            rationale="A single replica is an outage on every node drain.",
            remediation="Raise spec.replicas to 2.",
            **w,
        ),
        control(
            "WL-PDB",
            "Replicated workloads have a PodDisruptionBudget",
            severity=L,
            check=_pdb_covered,
            profiles=("availability",),
            source=nsa("Pod security: resource policies"),
            description="A Deployment or StatefulSet with 2+ replicas is selected by a PDB of its namespace.",
            rationale="Without a PDB a node drain can evict every replica at once.",
            remediation="Add a PodDisruptionBudget with maxUnavailable: 1.",
            **w,
        ),
    ]


DANGEROUS_CAPS: tuple[tuple[str, Severity, str], ...] = (
    ("SYS_ADMIN", C, "mount filesystems, use namespaces and most privileged kernel interfaces"),
    ("NET_ADMIN", H, "change interfaces, routes and firewall rules of the pod network"),
    ("SYS_PTRACE", H, "trace and inject code into other processes"),
    ("SYS_MODULE", C, "load kernel modules"),
    ("DAC_READ_SEARCH", H, "bypass file read permission checks (open_by_handle_at break-outs)"),
    ("SYS_RAWIO", H, "perform raw I/O on devices and memory"),
    ("BPF", H, "load eBPF programs into the kernel"),
    ("SYS_BOOT", H, "reboot the node"),
    ("SYS_TIME", M, "change the node's clock"),
    ("MKNOD", M, "create device files"),
)


def _capability_controls() -> list[Control]:
    return [
        control(
            f"WL-CAP-{cap.replace('_', '-')}",
            f"Containers do not add {cap}",
            severity=severity,
            kinds=K,
            check=each_container(_no_cap(cap)),
            profiles=("privilege",),
            source=cis("5.2.9")
            if cap != "SYS_ADMIN"
            else nsa("Pod security: non-root containers; capabilities"),
            description=f"No container adds {cap} (or ALL) to capabilities.add.",
            rationale=f"{cap} lets a process {why}.",
            remediation=f"Remove {cap} from capabilities.add.",
            area=AREA,
        )
        for cap, severity, why in DANGEROUS_CAPS
    ]


CONTROLS: tuple[Control, ...] = (*_shared_controls(), *_capability_controls())
