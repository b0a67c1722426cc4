"""Seeded corpora of Kubernetes manifests for the compliance benchmark and the agreement test.

Every workload kind (Pod, Deployment, StatefulSet, DaemonSet, Job, CronJob) with settings drawn at
random so each compliance check both passes and fails somewhere: privilege, host namespaces and
ports, users, capabilities, read-only root, resources, probes, image tags and digests, seccomp,
service account tokens, Secrets in env; init containers on some pods; plus Services, Roles,
RoleBindings, ConfigMaps and NetworkPolicies.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import yaml

KINDS = ("Pod", "Deployment", "StatefulSet", "DaemonSet", "Job", "CronJob")
IMAGES = (
    "nginx",
    "nginx:latest",
    "nginx:1.27.3",
    "registry.example.com/shop/api:2.4.1",
    "registry.example.com/shop/api@sha256:" + "b" * 64,
    "redis:7.2",
)


def _maybe(rng: random.Random, p: float = 0.5) -> bool:
    return rng.random() < p


def container(rng: random.Random, name: str, *, app: bool = True) -> dict[str, Any]:
    out: dict[str, Any] = {"name": name, "image": rng.choice(IMAGES)}
    sc: dict[str, Any] = {}
    if _maybe(rng, 0.15):
        sc["privileged"] = True
    if _maybe(rng, 0.6):
        sc["allowPrivilegeEscalation"] = _maybe(rng, 0.2)
    if _maybe(rng, 0.6):
        sc["readOnlyRootFilesystem"] = _maybe(rng, 0.8)
    if _maybe(rng, 0.5):
        sc["runAsNonRoot"] = _maybe(rng, 0.85)
    if _maybe(rng, 0.4):
        sc["runAsUser"] = rng.choice((0, 1000, 10001, 65532))
    caps: dict[str, Any] = {}
    if _maybe(rng, 0.5):
        caps["drop"] = rng.choice((["ALL"], ["NET_RAW"], ["ALL"], ["CHOWN"]))
    if _maybe(rng, 0.2):
        caps["add"] = rng.choice(
            (["NET_ADMIN"], ["SYS_ADMIN"], ["NET_BIND_SERVICE"], ["NET_RAW"], ["SYS_TIME"])
        )
    if caps:
        sc["capabilities"] = caps
    if _maybe(rng, 0.3):
        sc["seccompProfile"] = {"type": rng.choice(("RuntimeDefault", "Unconfined", "RuntimeDefault"))}
    if sc:
        out["securityContext"] = sc
    resources: dict[str, Any] = {}
    for kind, values in (
        ("requests", {"cpu": "100m", "memory": "128Mi"}),
        ("limits", {"cpu": "1", "memory": "1Gi"}),
    ):
        chosen = {k: v for k, v in values.items() if _maybe(rng, 0.6)}
        if chosen:
            resources[kind] = chosen
    if resources:
        out["resources"] = resources
    if app:
        out["ports"] = [{"containerPort": 8080, **({"hostPort": 8080} if _maybe(rng, 0.1) else {})}]
        if _maybe(rng, 0.6):
            out["livenessProbe"] = {"httpGet": {"path": "/healthz", "port": 8080}}
        if _maybe(rng, 0.6):
            out["readinessProbe"] = {"httpGet": {"path": "/ready", "port": 8080}}
    if _maybe(rng, 0.2):
        out["env"] = [{"name": "DB_URL", "valueFrom": {"secretKeyRef": {"name": "db", "key": "url"}}}]
    return out


def pod_spec(rng: random.Random) -> dict[str, Any]:
    spec: dict[str, Any] = {"containers": [container(rng, "app")]}
    if _maybe(rng, 0.25):
        spec["containers"].append(container(rng, "sidecar"))
    if _maybe(rng, 0.25):
        spec["initContainers"] = [container(rng, "init", app=False)]
    for flag in ("hostNetwork", "hostPID", "hostIPC"):
        if _maybe(rng, 0.08):
            spec[flag] = True
    if _maybe(rng, 0.5):
        spec["automountServiceAccountToken"] = not _maybe(rng, 0.7)
    if _maybe(rng, 0.6):
        spec["serviceAccountName"] = "app"
    psc: dict[str, Any] = {}
    if _maybe(rng, 0.4):
        psc["runAsNonRoot"] = True
    if _maybe(rng, 0.3):
        psc["runAsUser"] = rng.choice((1000, 10001, 0))
    if _maybe(rng, 0.4):
        psc["seccompProfile"] = {"type": "RuntimeDefault"}
    if psc:
        spec["securityContext"] = psc
    if _maybe(rng, 0.1):
        spec["volumes"] = [{"name": "sock", "hostPath": {"path": "/var/run/docker.sock"}}]
        spec["containers"][0]["volumeMounts"] = [{"name": "sock", "mountPath": "/var/run/docker.sock"}]
    return spec


def workload(rng: random.Random, index: int) -> dict[str, Any]:
    kind = KINDS[index % len(KINDS)]
    name = f"app-{index}"
    namespace = rng.choice(("shop", "payments", "default", "shop"))
    labels = {"app.kubernetes.io/name": name}
    meta = {"name": name, "namespace": namespace, "labels": labels}
    template = {"metadata": {"labels": labels}, "spec": pod_spec(rng)}
    if kind == "Pod":
        return {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": template["spec"]}
    if kind in ("Job", "CronJob"):
        template["spec"]["restartPolicy"] = "Never"
        job = {"template": template}
        if kind == "Job":
            return {"apiVersion": "batch/v1", "kind": "Job", "metadata": meta, "spec": job}
        return {
            "apiVersion": "batch/v1",
            "kind": "CronJob",
            "metadata": meta,
            "spec": {"schedule": "*/5 * * * *", "jobTemplate": {"spec": job}},
        }
    spec: dict[str, Any] = {"selector": {"matchLabels": labels}, "template": template}
    if kind != "DaemonSet":
        spec["replicas"] = rng.choice((1, 2, 3))
    if kind == "StatefulSet":
        spec["serviceName"] = name
    return {"apiVersion": "apps/v1", "kind": kind, "metadata": meta, "spec": spec}


def other(rng: random.Random, index: int) -> dict[str, Any]:
    name, namespace = f"obj-{index}", rng.choice(("shop", "payments"))
    meta = {"name": name, "namespace": namespace}
    choice = index % 4
    if choice == 0:
        return {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": meta,
            "spec": {
                "type": rng.choice(("ClusterIP", "NodePort", "LoadBalancer")),
                "ports": [{"port": 80}],
                "selector": {"app": name},
            },
        }
    if choice == 1:
        verbs = rng.choice((["get", "list"], ["*"], ["create"]))
        resources = rng.choice((["configmaps"], ["secrets"], ["*"], ["pods/exec"]))
        return {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "Role",
            "metadata": meta,
            "rules": [{"apiGroups": [""], "resources": resources, "verbs": verbs}],
        }
    if choice == 2:
        data = rng.choice(({"LOG_LEVEL": "info"}, {"db_password": "hunter2"}, {"url": "postgres://a:b@db/x"}))
        return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta, "data": data}
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": meta,
        "spec": {"podSelector": {}, "policyTypes": ["Ingress"]},
    }


def corpus(count: int, seed: int = 7, workload_share: float = 0.8) -> list[dict[str, Any]]:
    """``count`` objects: ``workload_share`` of them workloads, the rest other kinds."""
    rng = random.Random(seed)
    return [workload(rng, i) if rng.random() < workload_share else other(rng, i) for i in range(count)]


def write(objects: list[dict[str, Any]], directory: Path) -> list[Path]:
    """One manifest file per object under ``directory`` (created)."""
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for index, obj in enumerate(objects):
        path = directory / f"{index:05d}-{obj['kind'].lower()}.yaml"
        path.write_text(yaml.safe_dump(obj, sort_keys=False))
        paths.append(path)
    return paths
