"""Compliant objects of every kind the catalogue reads, the world around them, and per control a
mutation that makes that control fail (table-driven fixtures for every control)."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

Obj = dict[str, Any]
NS = "shop"
LABELS = {"app.kubernetes.io/name": "web"}


def container(name: str = "web") -> Obj:
    return {
        "name": name,
        "image": "registry.example.com/web:1.2.3@sha256:" + "a" * 64,
        "ports": [{"containerPort": 8080, "name": "http"}],
        "resources": {
            "requests": {"cpu": "100m", "memory": "128Mi"},
            "limits": {"cpu": "500m", "memory": "256Mi"},
        },
        "livenessProbe": {"httpGet": {"path": "/healthz", "port": "http"}},
        "readinessProbe": {"httpGet": {"path": "/ready", "port": "http"}},
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "runAsNonRoot": True,
            "capabilities": {"drop": ["ALL"]},
        },
        "volumeMounts": [
            {"name": "tmp", "mountPath": "/tmp"},
            {"name": "creds", "mountPath": "/etc/creds", "readOnly": True},
        ],
    }


def pod_spec() -> Obj:
    return {
        "serviceAccountName": "web",
        "automountServiceAccountToken": False,
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": 10001,
            "runAsGroup": 10001,
            "fsGroup": 10001,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "containers": [container()],
        "volumes": [
            {"name": "tmp", "emptyDir": {"sizeLimit": "64Mi"}},
            {"name": "creds", "secret": {"secretName": "web-creds", "defaultMode": 0o440}},
        ],
    }


def deployment(name: str = "web") -> Obj:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": NS, "labels": dict(LABELS)},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": dict(LABELS)},
            "template": {"metadata": {"labels": dict(LABELS)}, "spec": pod_spec()},
        },
    }


def as_kind(kind: str, deploy: Obj) -> Obj:
    """The same pod template in another workload kind."""
    template = copy.deepcopy(deploy["spec"]["template"])
    meta = copy.deepcopy(deploy["metadata"])
    if kind == "Pod":
        return {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {**meta, **template["metadata"]},
            "spec": template["spec"],
        }
    if kind == "CronJob":
        return {
            "apiVersion": "batch/v1",
            "kind": "CronJob",
            "metadata": meta,
            "spec": {"schedule": "0 * * * *", "jobTemplate": {"spec": {"template": template}}},
        }
    if kind == "CanaryRollout":
        return {
            "apiVersion": "fortress.io/v1alpha1",
            "kind": "CanaryRollout",
            "metadata": meta,
            "spec": {
                "replicas": 2,
                "service": "web",
                "template": template,
                "analysis": {"prometheusAddress": "http://prometheus:9090"},
            },
        }
    api = "batch/v1" if kind == "Job" else "apps/v1"
    return {
        "apiVersion": api,
        "kind": kind,
        "metadata": meta,
        "spec": {**copy.deepcopy(deploy["spec"]), "template": template},
    }


def namespace(name: str = NS) -> Obj:
    return {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {
            "name": name,
            "labels": {
                "pod-security.kubernetes.io/enforce": "restricted",
                "pod-security.kubernetes.io/enforce-version": "v1.30",
                "pod-security.kubernetes.io/warn": "restricted",
            },
        },
    }


def netpol(name: str, spec: Obj) -> Obj:
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": name, "namespace": NS},
        "spec": spec,
    }


def region(name: str, location: str) -> Obj:
    return {
        "apiVersion": "fortress.io/v1alpha1",
        "kind": "DRRegion",
        "metadata": {"name": name, "namespace": NS},
        "spec": {
            "planRef": "orders",
            "provider": "aws",
            "location": location,
            "connection": {"secretKeyRef": {"name": f"{name}-db", "key": "url"}},
        },
        "status": {"fenced": False},
    }


# The objects around every fixture (policies, budgets, quotas, a DR plan and its regions).
WORLD: list[Obj] = [
    netpol("default-deny-ingress", {"podSelector": {}, "policyTypes": ["Ingress"]}),
    netpol("default-deny-egress", {"podSelector": {}, "policyTypes": ["Egress"]}),
    netpol(
        "web",
        {
            "podSelector": {"matchLabels": dict(LABELS)},
            "policyTypes": ["Ingress"],
            "ingress": [
                {"from": [{"podSelector": {"matchLabels": {"app": "gateway"}}}], "ports": [{"port": 8080}]}
            ],
        },
    ),
    {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": {"name": "web", "namespace": NS},
        "spec": {"maxUnavailable": 1, "selector": {"matchLabels": dict(LABELS)}},
    },
    {"apiVersion": "v1", "kind": "ResourceQuota", "metadata": {"name": "q", "namespace": NS}, "spec": {}},
    {"apiVersion": "v1", "kind": "LimitRange", "metadata": {"name": "l", "namespace": NS}, "spec": {}},
    {
        "apiVersion": "fortress.io/v1alpha1",
        "kind": "DRPlan",
        "metadata": {"name": "orders", "namespace": NS},
        "spec": {"service": {"name": "orders-db"}},
    },
    region("orders-eu", "eu-west-1"),
    region("orders-us", "us-east-1"),
    deployment(),
]

GOOD: dict[str, Obj] = {
    "Deployment": deployment(),
    "Namespace": namespace(),
    "Role": {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "Role",
        "metadata": {"name": "reader", "namespace": NS},
        "rules": [
            {"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get", "list"]},
            {"apiGroups": [""], "resources": ["secrets"], "resourceNames": ["web-creds"], "verbs": ["get"]},
        ],
    },
    "ClusterRole": {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRole",
        "metadata": {"name": "view-x"},
        "rules": [{"apiGroups": ["apps"], "resources": ["deployments"], "verbs": ["get"]}],
        "aggregationRule": {"clusterRoleSelectors": [{"matchLabels": {"x": "y"}}]},
    },
    "RoleBinding": {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": {"name": "reader", "namespace": NS},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "reader"},
        "subjects": [{"kind": "ServiceAccount", "name": "web", "namespace": NS}],
    },
    "ServiceAccount": {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": {"name": "default", "namespace": NS},
        "automountServiceAccountToken": False,
    },
    "Secret": {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "web-creds", "namespace": NS},
        "type": "Opaque",
        "data": {"password": "c2VjcmV0"},
    },
    "Service": {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "web", "namespace": NS},
        "spec": {"type": "ClusterIP", "selector": dict(LABELS), "ports": [{"port": 80}]},
    },
    "LoadBalancer": {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "lb", "namespace": NS},
        "spec": {
            "type": "LoadBalancer",
            "loadBalancerSourceRanges": ["203.0.113.0/24"],
            "ports": [{"port": 443}],
        },
    },
    "Ingress": {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "Ingress",
        "metadata": {"name": "web", "namespace": NS},
        "spec": {
            "tls": [{"hosts": ["shop.example.com"], "secretName": "tls"}],
            "rules": [{"host": "shop.example.com"}],
        },
    },
    "NetworkPolicy": WORLD[2],
    "NetworkPolicyEgress": netpol(
        "egress",
        {
            "podSelector": {},
            "policyTypes": ["Egress"],
            "egress": [{"to": [{"ipBlock": {"cidr": "0.0.0.0/0"}}], "ports": [{"port": 443}]}],
        },
    ),
    "PodDisruptionBudget": WORLD[3],
    "ConfigMap": {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "web", "namespace": NS},
        "data": {
            "LOG_LEVEL": "info",
            "GREETING": "hello ops@example.com",
            "DATABASE_URL": "postgresql://db:5432/shop",
            "ORDER_ID": "4111-11",
        },
    },
    "PostgresServer": {
        "apiVersion": "fortress.io/v1alpha1",
        "kind": "PostgresServer",
        "metadata": {"name": "ledger-main", "namespace": NS},
        "spec": {
            "secretRef": {"name": "ledger-db", "key": "url"},
            "referencedBy": [{"kind": "CreditLedger", "name": "main"}],
        },
        "observed": {
            "ssl": "on",
            "sslMinProtocolVersion": "TLSv1.2",
            "passwordEncryption": "scram-sha-256",
            "logConnections": "on",
            "logDisconnections": "on",
            "logStatement": "ddl",
            "dataChecksums": "on",
            "serverVersionNum": 160004,
            "connectionSsl": True,
            "superuser": False,
            "createRole": False,
            "createDb": False,
            "inRecovery": False,
            "replicas": 1,
        },
    },
    "CreditLedger": {
        "apiVersion": "fortress.io/v1alpha1",
        "kind": "CreditLedger",
        "metadata": {"name": "main", "namespace": NS},
        "spec": {"database": {"secretKeyRef": {"name": "ledger-db", "key": "url"}}},
        "status": {"conditions": [{"type": "Ready", "status": "True", "reason": "Projecting"}]},
    },
    "DRPlan": {
        "apiVersion": "fortress.io/v1alpha1",
        "kind": "DRPlan",
        "metadata": {"name": "orders", "namespace": NS},
        "spec": {"service": {"name": "orders-db"}, "fencing": "readOnly", "rpoTarget": "30s"},
        "status": {"healthyRegions": 2, "conditions": [{"type": "Ready", "status": "True", "reason": "Ok"}]},
    },
    "DRRegion": region("orders-eu", "eu-west-1"),
    "CanaryRollout": as_kind("CanaryRollout", deployment()),
    "BlueGreen": {
        **as_kind("CanaryRollout", deployment()),
        "spec": {
            **as_kind("CanaryRollout", deployment())["spec"],
            "strategy": {"type": "blueGreen", "blueGreen": {"prePromotionAnalysis": True}},
        },
    },
    "ShardCluster": {
        "apiVersion": "fortress.io/v1alpha1",
        "kind": "ShardCluster",
        "metadata": {"name": "tenants", "namespace": NS},
        "spec": {
            "shards": [
                {
                    "id": "a",
                    "connection": {"secretKeyRef": {"name": "a", "key": "url"}},
                    "replicas": [{"connection": {"secretKeyRef": {"name": "a-r", "key": "url"}}}],
                }
            ]
        },
        "status": {"conditions": [{"type": "Ready", "status": "True", "reason": "Ok"}]},
    },
    "ComplianceScan": {
        "apiVersion": "fortress.io/v1alpha1",
        "kind": "ComplianceScan",
        "metadata": {"name": "nightly", "namespace": NS},
        "spec": {"frameworks": ["SOC2", "ISO27001", "GDPR", "PCI_DSS"], "schedule": "0 2 * * *"},
    },
}

Mutation = Callable[[Obj], None]


def pod(obj: Obj) -> Obj:
    return obj["spec"]["template"]["spec"] if obj["kind"] != "Pod" else obj["spec"]


def c0(obj: Obj) -> Obj:
    return pod(obj)["containers"][0]


def sc(obj: Obj) -> Obj:
    return c0(obj)["securityContext"]


def psc(obj: Obj) -> Obj:
    return pod(obj)["securityContext"]


def host_path(path: str) -> Mutation:
    def mutate(obj: Obj) -> None:
        pod(obj)["volumes"].append({"name": "host", "hostPath": {"path": path}})
        c0(obj)["volumeMounts"].append({"name": "host", "mountPath": "/host", "readOnly": True})

    return mutate


def add_cap(cap: str) -> Mutation:
    return lambda obj: sc(obj)["capabilities"].__setitem__("add", [cap])


def rule(groups: list[str], resources: list[str], verbs: list[str]) -> Mutation:
    return lambda obj: obj["rules"].append({"apiGroups": groups, "resources": resources, "verbs": verbs})


def subject(kind: str, name: str) -> Mutation:
    return lambda obj: obj["subjects"].append(
        {"kind": kind, "name": name, "apiGroup": "rbac.authorization.k8s.io"}
    )


def observed(key: str, value: Any) -> Mutation:
    return lambda obj: obj["observed"].__setitem__(key, value)


def data(key: str, value: str) -> Mutation:
    return lambda obj: obj["data"].__setitem__(key, value)


def set_path(path: str, value: Any) -> Mutation:
    def mutate(obj: Obj) -> None:
        keys = path.strip("/").split("/")
        target = obj
        for key in keys[:-1]:
            target = target.setdefault(key, {})
        target[keys[-1]] = value

    return mutate


def _seq(*mutations: Mutation) -> Mutation:
    def mutate(obj: Obj) -> None:
        for m in mutations:
            m(obj)

    return mutate


def _unlabel(key: str) -> Mutation:
    return lambda obj: obj["metadata"]["labels"].pop(key, None)


# control id -> (the GOOD fixture it starts from, the mutation that makes it fail)
FAILING: dict[str, tuple[str, Mutation]] = {
    "WL-PRIVILEGED": ("Deployment", lambda o: sc(o).__setitem__("privileged", True)),
    "WL-HOST-NETWORK": ("Deployment", lambda o: pod(o).__setitem__("hostNetwork", True)),
    "WL-HOST-PID": ("Deployment", lambda o: pod(o).__setitem__("hostPID", True)),
    "WL-HOST-IPC": ("Deployment", lambda o: pod(o).__setitem__("hostIPC", True)),
    "WL-HOST-PATH": ("Deployment", host_path("/data")),
    "WL-HOST-PATH-READONLY": (
        "Deployment",
        _seq(host_path("/data"), lambda o: c0(o)["volumeMounts"][-1].pop("readOnly")),
    ),
    "WL-HOST-PATH-RUNTIME-SOCKET": ("Deployment", host_path("/var/run/docker.sock")),
    "WL-HOST-PATH-KUBELET": ("Deployment", host_path("/var/lib/kubelet/pods")),
    "WL-HOST-PATH-ROOT": ("Deployment", host_path("/")),
    "WL-HOST-PATH-PROC": ("Deployment", host_path("/proc")),
    "WL-HOST-PATH-LOGS": ("Deployment", host_path("/var/log/")),
    "WL-HOST-PORTS": ("Deployment", lambda o: c0(o)["ports"][0].__setitem__("hostPort", 8080)),
    "WL-CAPS-BASELINE": ("Deployment", add_cap("SYS_ADMIN")),
    "WL-SECCOMP-NOT-UNCONFINED": (
        "Deployment",
        lambda o: psc(o).__setitem__("seccompProfile", {"type": "Unconfined"}),
    ),
    "WL-APPARMOR": (
        "Deployment",
        lambda o: o["spec"]["template"]["metadata"].__setitem__(
            "annotations", {"container.apparmor.security.beta.kubernetes.io/web": "unconfined"}
        ),
    ),
    "WL-SELINUX": ("Deployment", lambda o: psc(o).__setitem__("seLinuxOptions", {"type": "spc_t"})),
    "WL-PROC-MOUNT": ("Deployment", lambda o: sc(o).__setitem__("procMount", "Unmasked")),
    "WL-SYSCTLS": (
        "Deployment",
        lambda o: psc(o).__setitem__("sysctls", [{"name": "kernel.msgmax", "value": "1"}]),
    ),
    "WL-WINDOWS-HOST-PROCESS": (
        "Deployment",
        lambda o: sc(o).__setitem__("windowsOptions", {"hostProcess": True}),
    ),
    "WL-PRIVILEGE-ESCALATION": ("Deployment", lambda o: sc(o).pop("allowPrivilegeEscalation")),
    "WL-RUN-AS-NON-ROOT": (
        "Deployment",
        lambda o: (sc(o).pop("runAsNonRoot"), psc(o).pop("runAsNonRoot"), psc(o).pop("runAsUser")),
    ),
    "WL-RUN-AS-USER-NOT-ROOT": ("Deployment", lambda o: sc(o).__setitem__("runAsUser", 0)),
    "WL-DROP-ALL": ("Deployment", lambda o: sc(o)["capabilities"].__setitem__("drop", ["NET_RAW"])),
    "WL-CAPS-RESTRICTED": ("Deployment", add_cap("CHOWN")),
    "WL-SECCOMP": ("Deployment", lambda o: psc(o).pop("seccompProfile")),
    "WL-VOLUME-TYPES": (
        "Deployment",
        lambda o: pod(o)["volumes"].append({"name": "n", "nfs": {"server": "x", "path": "/"}}),
    ),
    "WL-NET-RAW": ("Deployment", lambda o: sc(o).pop("capabilities")),
    "WL-READ-ONLY-ROOT": ("Deployment", lambda o: sc(o).__setitem__("readOnlyRootFilesystem", False)),
    "WL-HIGH-UID": ("Deployment", lambda o: psc(o).__setitem__("runAsUser", 1000)),
    "WL-RUN-AS-GROUP-NOT-ROOT": ("Deployment", lambda o: psc(o).__setitem__("runAsGroup", 0)),
    "WL-FS-GROUP-NOT-ROOT": ("Deployment", lambda o: psc(o).__setitem__("fsGroup", 0)),
    "WL-SUPPLEMENTAL-GROUPS": ("Deployment", lambda o: psc(o).__setitem__("supplementalGroups", [0, 5])),
    "WL-SHARE-PROCESS-NAMESPACE": ("Deployment", lambda o: pod(o).__setitem__("shareProcessNamespace", True)),
    "WL-AUTOMOUNT-TOKEN": ("Deployment", lambda o: pod(o).pop("automountServiceAccountToken")),
    "WL-DEFAULT-SERVICE-ACCOUNT": ("Deployment", lambda o: pod(o).pop("serviceAccountName")),
    "WL-SECRETS-IN-ENV": (
        "Deployment",
        lambda o: c0(o).__setitem__(
            "env", [{"name": "DB", "valueFrom": {"secretKeyRef": {"name": "db", "key": "url"}}}]
        ),
    ),
    "WL-LITERAL-CREDENTIALS": (
        "Deployment",
        lambda o: c0(o).__setitem__("env", [{"name": "DB_PASSWORD", "value": "x"}]),
    ),
    "WL-SECRET-MOUNTS-READONLY": ("Deployment", lambda o: c0(o)["volumeMounts"][1].pop("readOnly")),
    "WL-SECRET-VOLUME-MODE": (
        "Deployment",
        lambda o: pod(o)["volumes"][1]["secret"].__setitem__("defaultMode", 0o644),
    ),
    "WL-LIMITS-CPU": ("Deployment", lambda o: c0(o)["resources"]["limits"].pop("cpu")),
    "WL-LIMITS-MEMORY": ("Deployment", lambda o: c0(o)["resources"]["limits"].pop("memory")),
    "WL-REQUESTS-CPU": ("Deployment", lambda o: c0(o)["resources"]["requests"].pop("cpu")),
    "WL-REQUESTS-MEMORY": ("Deployment", lambda o: c0(o)["resources"]["requests"].pop("memory")),
    "WL-REQUESTS-WITHIN-LIMITS": (
        "Deployment",
        lambda o: c0(o)["resources"]["requests"].__setitem__("memory", "1Gi"),
    ),
    "WL-EMPTYDIR-SIZE-LIMIT": ("Deployment", lambda o: pod(o)["volumes"][0].__setitem__("emptyDir", {})),
    "WL-LIVENESS-PROBE": ("Deployment", lambda o: c0(o).pop("livenessProbe")),
    "WL-READINESS-PROBE": ("Deployment", lambda o: c0(o).pop("readinessProbe")),
    "WL-IMAGE-TAG": ("Deployment", lambda o: c0(o).__setitem__("image", "nginx")),
    "WL-IMAGE-DIGEST": ("Deployment", lambda o: c0(o).__setitem__("image", "nginx:1.27")),
    "WL-NO-EPHEMERAL-CONTAINERS": (
        "Deployment",
        lambda o: pod(o).__setitem__("ephemeralContainers", [container("debug")]),
    ),
    "WL-CONTROL-PLANE-TOLERATION": (
        "Deployment",
        lambda o: pod(o).__setitem__(
            "tolerations", [{"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"}]
        ),
    ),
    "WL-NOT-DEFAULT-NAMESPACE": ("Deployment", lambda o: o["metadata"].__setitem__("namespace", "default")),
    "WL-INVENTORY-LABEL": ("Deployment", lambda o: o["metadata"].__setitem__("labels", {})),
    "WL-REPLICAS": ("Deployment", lambda o: o["spec"].__setitem__("replicas", 1)),
    "WL-PDB": (
        "Deployment",
        lambda o: o["spec"]["template"]["metadata"].__setitem__("labels", {"app": "other"}),
    ),
    # RBAC
    "RBAC-CLUSTER-ADMIN": (
        "RoleBinding",
        lambda o: o.__setitem__("roleRef", {"kind": "ClusterRole", "name": "cluster-admin"}),
    ),
    "RBAC-WILDCARD-VERBS": ("Role", rule(["apps"], ["deployments"], ["*"])),
    "RBAC-WILDCARD-RESOURCES": ("Role", rule(["apps"], ["*"], ["get"])),
    "RBAC-WILDCARD-API-GROUPS": ("Role", rule(["*"], ["deployments"], ["get"])),
    "RBAC-SECRETS-LIST": ("Role", rule([""], ["secrets"], ["list"])),
    "RBAC-SECRETS-GET": ("Role", rule([""], ["secrets"], ["get"])),
    "RBAC-SECRETS-WRITE": ("Role", rule([""], ["secrets"], ["patch"])),
    "RBAC-ESCALATE": ("ClusterRole", rule(["rbac.authorization.k8s.io"], ["clusterroles"], ["escalate"])),
    "RBAC-BIND": ("ClusterRole", rule(["rbac.authorization.k8s.io"], ["roles"], ["bind"])),
    "RBAC-IMPERSONATE": ("ClusterRole", rule([""], ["users"], ["impersonate"])),
    "RBAC-RBAC-WRITE": ("Role", rule(["rbac.authorization.k8s.io"], ["rolebindings"], ["create"])),
    "RBAC-CREATE-PODS": ("Role", rule([""], ["pods"], ["create"])),
    "RBAC-WORKLOAD-WRITE-ALL": ("Role", rule(["apps"], ["*"], ["patch"])),
    "RBAC-PODS-EXEC": ("Role", rule([""], ["pods/exec"], ["create"])),
    "RBAC-PORT-FORWARD": ("Role", rule([""], ["pods/portforward"], ["create"])),
    "RBAC-NODES-PROXY": ("ClusterRole", rule([""], ["nodes/proxy"], ["get"])),
    "RBAC-TOKEN-CREATE": ("Role", rule([""], ["serviceaccounts/token"], ["create"])),
    "RBAC-PV-CREATE": ("ClusterRole", rule([""], ["persistentvolumes"], ["create"])),
    "RBAC-CSR-APPROVE": (
        "ClusterRole",
        rule(["certificates.k8s.io"], ["certificatesigningrequests/approval"], ["update"]),
    ),
    "RBAC-WEBHOOK-WRITE": (
        "ClusterRole",
        rule(["admissionregistration.k8s.io"], ["mutatingwebhookconfigurations"], ["create"]),
    ),
    "RBAC-DELETE-EVENTS": ("Role", rule([""], ["events"], ["delete"])),
    "RBAC-NAMESPACE-DELETE": ("ClusterRole", rule([""], ["namespaces"], ["delete"])),
    "RBAC-AGGREGATE-ALL": (
        "ClusterRole",
        lambda o: o.__setitem__("aggregationRule", {"clusterRoleSelectors": [{}]}),
    ),
    "RBAC-ANONYMOUS": ("RoleBinding", subject("User", "system:anonymous")),
    "RBAC-UNAUTHENTICATED": ("RoleBinding", subject("Group", "system:unauthenticated")),
    "RBAC-AUTHENTICATED": ("RoleBinding", subject("Group", "system:authenticated")),
    "RBAC-MASTERS": ("RoleBinding", subject("Group", "system:masters")),
    "RBAC-DEFAULT-SA-BOUND": (
        "RoleBinding",
        lambda o: o["subjects"].append({"kind": "ServiceAccount", "name": "default"}),
    ),
    "RBAC-DEFAULT-SA-AUTOMOUNT": ("ServiceAccount", lambda o: o.pop("automountServiceAccountToken")),
    "RBAC-LEGACY-TOKEN": ("Secret", lambda o: o.__setitem__("type", "kubernetes.io/service-account-token")),
    # network
    "NET-DEFAULT-DENY-INGRESS": ("Namespace", lambda o: o["metadata"].__setitem__("name", "bare")),
    "NET-DEFAULT-DENY-EGRESS": ("Namespace", lambda o: o["metadata"].__setitem__("name", "bare")),
    "NET-WORKLOAD-POLICY": ("Deployment", lambda o: o["metadata"].__setitem__("namespace", "bare")),
    "NET-NODEPORT": ("Service", lambda o: o["spec"].__setitem__("type", "NodePort")),
    "NET-LOADBALANCER-SOURCES": ("LoadBalancer", lambda o: o["spec"].pop("loadBalancerSourceRanges")),
    "NET-EXTERNAL-IPS": ("Service", lambda o: o["spec"].__setitem__("externalIPs", ["198.51.100.1"])),
    "NET-EXTERNAL-NAME": ("Service", lambda o: o["spec"].__setitem__("type", "ExternalName")),
    "NET-INGRESS-TLS": ("Ingress", lambda o: o["spec"].pop("tls")),
    "NET-INGRESS-TLS-HOSTS": ("Ingress", lambda o: o["spec"]["rules"].append({"host": "admin.example.com"})),
    "NET-INGRESS-HOST": ("Ingress", lambda o: o["spec"]["rules"].append({"http": {}})),
    "NET-INGRESS-SNIPPETS": (
        "Ingress",
        lambda o: o["metadata"].__setitem__(
            "annotations", {"nginx.ingress.kubernetes.io/server-snippet": "location / {}"}
        ),
    ),
    "NET-POLICY-SOURCES": ("NetworkPolicy", lambda o: o["spec"]["ingress"][0].pop("from")),
    "NET-POLICY-INGRESS-ANYWHERE": (
        "NetworkPolicy",
        lambda o: o["spec"]["ingress"][0]["from"].append({"ipBlock": {"cidr": "0.0.0.0/0"}}),
    ),
    "NET-POLICY-EGRESS-ANYWHERE": ("NetworkPolicyEgress", lambda o: o["spec"]["egress"][0].pop("ports")),
    # namespaces
    "NS-PSA-ENFORCE": ("Namespace", _unlabel("pod-security.kubernetes.io/enforce")),
    "NS-PSA-RESTRICTED": (
        "Namespace",
        lambda o: o["metadata"]["labels"].__setitem__("pod-security.kubernetes.io/enforce", "baseline"),
    ),
    "NS-PSA-WARN": ("Namespace", _unlabel("pod-security.kubernetes.io/warn")),
    "NS-PSA-VERSION": ("Namespace", _unlabel("pod-security.kubernetes.io/enforce-version")),
    "NS-DEFAULT-RESTRICTED": (
        "Namespace",
        _seq(
            lambda o: o["metadata"].__setitem__("name", "default"),
            _unlabel("pod-security.kubernetes.io/enforce"),
        ),
    ),
    "NS-RESOURCE-QUOTA": ("Namespace", lambda o: o["metadata"].__setitem__("name", "bare")),
    "NS-LIMIT-RANGE": ("Namespace", lambda o: o["metadata"].__setitem__("name", "bare")),
    "PDB-ALLOWS-EVICTION": ("PodDisruptionBudget", lambda o: o["spec"].__setitem__("maxUnavailable", 0)),
    "PDB-SELECTS": (
        "PodDisruptionBudget",
        lambda o: o["spec"].__setitem__("selector", {"matchLabels": {"a": "b"}}),
    ),
    # configmaps
    "CM-CREDENTIAL-KEYS": ("ConfigMap", data("db_password", "hunter2")),
    "CM-PRIVATE-KEYS": (
        "ConfigMap",
        data("tls", "-----BEGIN RSA PRIVATE KEY-----\nMIIE\n-----END RSA PRIVATE KEY-----"),
    ),
    "CM-CLOUD-KEYS": ("ConfigMap", data("aws", "AKIAIOSFODNN7EXAMPLE")),
    "CM-DSN-PASSWORDS": ("ConfigMap", data("DATABASE_URL", "postgresql://app:s3cret@db:5432/shop")),
    "CM-JWT": (
        "ConfigMap",
        data(
            "auth",
            "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
        ),
    ),
    "CM-PII-KEYS": ("ConfigMap", data("customer_email_addresses", "-")),
    "CM-SPECIAL-CATEGORY-KEYS": ("ConfigMap", data("patient_health_records", "-")),
    "CM-EMAIL-LISTS": ("ConfigMap", data("notify", " ".join(f"user{i}@example.com" for i in range(5)))),
    "CM-CARD-KEYS": ("ConfigMap", data("card_number", "-")),
    "CM-CARD-NUMBERS": ("ConfigMap", data("test", "pay with 4012 8888 8888 1881 please")),
    # databases
    "DB-SSL": ("PostgresServer", observed("ssl", "off")),
    "DB-TLS-MIN-VERSION": ("PostgresServer", observed("sslMinProtocolVersion", "TLSv1")),
    "DB-CONNECTION-ENCRYPTED": ("PostgresServer", observed("connectionSsl", False)),
    "DB-PASSWORD-ENCRYPTION": ("PostgresServer", observed("passwordEncryption", "md5")),
    "DB-LOG-CONNECTIONS": ("PostgresServer", observed("logConnections", "off")),
    "DB-LOG-DISCONNECTIONS": ("PostgresServer", observed("logDisconnections", "off")),
    "DB-LOG-STATEMENT": ("PostgresServer", observed("logStatement", "none")),
    "DB-DATA-CHECKSUMS": ("PostgresServer", observed("dataChecksums", "off")),
    "DB-SUPPORTED-VERSION": ("PostgresServer", observed("serverVersionNum", 120010)),
    "DB-NO-SUPERUSER": ("PostgresServer", observed("superuser", True)),
    "DB-NO-CREATEROLE": ("PostgresServer", observed("createRole", True)),
    "DB-NO-CREATEDB": ("PostgresServer", observed("createDb", True)),
    "DB-PRIMARY-COVERED": ("PostgresServer", observed("replicas", 0)),
    # Fortress resources
    "FTR-LEDGER-SNAPSHOTS": ("CreditLedger", set_path("/spec/snapshotInterval", 1_000_000)),
    "FTR-LEDGER-RETENTION": ("CreditLedger", set_path("/spec/retention/snapshotsKept", 1)),
    "FTR-LEDGER-PROJECTION": ("CreditLedger", set_path("/spec/projection/enabled", False)),
    "FTR-LEDGER-IDEMPOTENCY": ("CreditLedger", set_path("/spec/retention/idempotencyKeyTtl", "1h")),
    "FTR-LEDGER-MIGRATE": ("CreditLedger", set_path("/spec/migrate", False)),
    "FTR-LEDGER-READY": (
        "CreditLedger",
        set_path(
            "/status/conditions", [{"type": "Ready", "status": "False", "reason": "DatabaseUnreachable"}]
        ),
    ),
    "FTR-DR-TWO-REGIONS": ("DRPlan", lambda o: o["metadata"].__setitem__("name", "lonely")),
    "FTR-DR-HEALTHY-REGIONS": ("DRPlan", set_path("/status/healthyRegions", 1)),
    "FTR-DR-FENCING": ("DRPlan", set_path("/spec/fencing", "none")),
    "FTR-DR-LOCATIONS": ("DRPlan", lambda o: o["metadata"].__setitem__("name", "same-place")),
    "FTR-DR-PROMOTABLE": ("DRPlan", lambda o: o["metadata"].__setitem__("name", "one-promotable")),
    "FTR-DR-RPO": ("DRPlan", set_path("/spec/rpoTarget", "1h")),
    "FTR-DR-READY": (
        "DRPlan",
        set_path("/status/conditions", [{"type": "Ready", "status": "False", "reason": "X"}]),
    ),
    "FTR-DRREGION-PLAN": ("DRRegion", set_path("/spec/planRef", "missing")),
    "FTR-DRREGION-NOT-FENCED": ("DRRegion", set_path("/status/fenced", True)),
    "FTR-ROLLOUT-ANALYSIS": ("CanaryRollout", lambda o: o["spec"].pop("analysis")),
    "FTR-ROLLOUT-MISSING-DATA": ("CanaryRollout", set_path("/spec/analysis/missingData", "ignore")),
    "FTR-ROLLOUT-FAILURE-LIMIT": ("CanaryRollout", set_path("/spec/analysis/failureLimit", 10)),
    "FTR-ROLLOUT-BLUEGREEN-ANALYSIS": (
        "BlueGreen",
        set_path("/spec/strategy/blueGreen/prePromotionAnalysis", False),
    ),
    "FTR-SHARD-REPLICAS": ("ShardCluster", lambda o: o["spec"]["shards"][0].pop("replicas")),
    "FTR-SHARDS-READY": ("ShardCluster", set_path("/status/conditions", [])),
    "FTR-SCAN-SCHEDULED": ("ComplianceScan", lambda o: o["spec"].pop("schedule")),
    "FTR-SCAN-FRAMEWORKS": ("ComplianceScan", set_path("/spec/frameworks", ["SOC2"])),
    "FTR-SCAN-EXCLUSIONS": (
        "ComplianceScan",
        set_path("/spec/excludeNamespaces", ["kube-system", "payments"]),
    ),
}

for _cap in (
    "SYS_ADMIN",
    "NET_ADMIN",
    "SYS_PTRACE",
    "SYS_MODULE",
    "DAC_READ_SEARCH",
    "SYS_RAWIO",
    "BPF",
    "SYS_BOOT",
    "SYS_TIME",
    "MKNOD",
):
    FAILING[f"WL-CAP-{_cap.replace('_', '-')}"] = ("Deployment", add_cap(_cap))

# Extra world objects some failing fixtures need (a plan whose regions share a location, ...).
EXTRA_WORLD: list[Obj] = (
    [
        {
            "apiVersion": "fortress.io/v1alpha1",
            "kind": "DRPlan",
            "metadata": {"name": n, "namespace": NS},
            "spec": {},
        }
        for n in ("same-place", "one-promotable")
    ]
    + [
        {
            **region(f"sp-{i}", "eu-west-1"),
            "spec": {**region("x", "eu-west-1")["spec"], "planRef": "same-place"},
        }
        for i in range(2)
    ]
    + [
        {
            **region(f"op-{i}", f"loc-{i}"),
            "spec": {**region("x", f"loc-{i}")["spec"], "planRef": "one-promotable", "promotable": i == 0},
        }
        for i in range(2)
    ]
)


# control id -> (GOOD fixture, mutation) where the compliant fixture alone would be not applicable
PASSING: dict[str, tuple[str, Mutation]] = {
    "NS-DEFAULT-RESTRICTED": ("Namespace", lambda o: o["metadata"].__setitem__("name", "default")),
}


def failing(control_id: str) -> Obj:
    base, mutate = FAILING[control_id]
    obj = copy.deepcopy(GOOD[base])
    mutate(obj)
    return obj


def passing(control_id: str) -> Obj:
    base, mutate = PASSING.get(control_id, (FAILING[control_id][0], lambda o: None))
    obj = copy.deepcopy(GOOD[base])
    mutate(obj)
    return obj
