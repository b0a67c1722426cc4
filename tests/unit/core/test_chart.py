"""The Helm chart: lint, render for several value sets, Kubernetes schema validation, values schema,
the restricted Pod Security Standard, and container arguments the CLI accepts.

Rendering uses the Helm v4 SDK (``helm-python-sdk``), offline. The helpers here (``render``,
``CASES``) are shared by the other ``test_chart_*`` modules.
"""

from __future__ import annotations

import base64
import functools
import shlex
from pathlib import Path
from typing import Any

import helm_python as helm
import kubernetes_validate
import pytest
import yaml

import fortress
from fortress import rbac
from fortress.cli import parser as cli_parser
from fortress.http.auth import TokenStore
from fortress.paths import repo_root

CHART = repo_root() / "charts" / "fortress"
RELEASE, NAMESPACE = "fortress", "fortress-system"

# Value sets rendered by every test below: defaults and the alternatives users choose.
CASES: dict[str, dict[str, Any]] = {
    "default": {},
    "namespaced": {"rbac": {"namespaced": True}, "watchNamespaces": ["team-a", "team-b"]},
    "watching-with-clusterrole": {"watchNamespaces": ["team-a"]},
    "monitoring": {
        "monitoring": {
            "serviceMonitor": {"enabled": True, "labels": {"release": "kube-prometheus-stack"}},
            "prometheusRule": {"enabled": True, "labels": {"release": "kube-prometheus-stack"}},
            "grafanaDashboard": {"enabled": True, "namespace": "grafana"},
        }
    },
    "api-off": {"api": {"enabled": False}, "monitoring": {"prometheusRule": {"enabled": True}}},
    "api-metrics": {
        "api": {"metrics": {"enabled": True, "port": 9091}},
        "monitoring": {"serviceMonitor": {"enabled": True}, "prometheusRule": {"enabled": True}},
    },
    "custom": {
        "fullnameOverride": "fx",
        "commonLabels": {"team": "platform"},
        "image": {
            "repository": "registry.example.com/fortress",
            "tag": "0.1.0-rc1",
            "digest": "sha256:" + "a" * 64,
            "pullPolicy": "Always",
        },
        "imagePullSecrets": [{"name": "regcred"}],
        "database": {"existingSecret": "fortress-db", "key": "url"},
        "operator": {
            "verbose": True,
            "podDisruptionBudget": {"enabled": True},
            "nodeSelector": {"kubernetes.io/os": "linux"},
            "tolerations": [
                {"key": "dedicated", "operator": "Equal", "value": "ops", "effect": "NoSchedule"}
            ],
            "extraEnv": [{"name": "TZ", "value": "UTC"}],
            "priorityClassName": "system-cluster-critical",
        },
        "api": {
            "replicas": 1,
            "tokens": {"existingSecret": "api-tokens", "key": "tokens.json"},
            "service": {"type": "LoadBalancer", "port": 8443},
        },
        "networkPolicy": {
            "apiFrom": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "ingress"}}}],
            "metricsFrom": [
                {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}
            ],
            "egress": [{"to": [{"ipBlock": {"cidr": "10.0.0.0/8"}}]}],
        },
    },
    # day-2 operations (test_chart_day2.py): every new value, in two alternative sets
    "day2": {
        "api": {
            "autoscaling": {
                "enabled": True,
                "minReplicas": 3,
                "maxReplicas": 9,
                "targetCPUUtilizationPercentage": 60,
                "targetMemoryUtilizationPercentage": 80,
            },
            "ingress": {
                "enabled": True,
                "className": "nginx",
                "host": "api.fortress.example.com",
                "path": "/api",
                "pathType": "Exact",
                "annotations": {"nginx.ingress.kubernetes.io/proxy-body-size": "1m"},
                "tls": {"enabled": True, "clusterIssuer": "letsencrypt"},
            },
        },
        "tests": {"enabled": True, "attempts": 10, "interval": 3},
        "migrations": {
            "enabled": True,
            "databases": [
                {"name": "ledger", "existingSecret": "ledger-db", "key": "dsn"},
                {"name": "orders", "existingSecret": "orders-db", "key": "url"},
            ],
            "lockTimeout": 120,
            "activeDeadlineSeconds": 900,
            "backoffLimit": 1,
            "resources": {"requests": {"cpu": "20m", "memory": "32Mi"}, "limits": {"memory": "128Mi"}},
            "backup": {
                "enabled": True,
                "onInstall": True,
                "existingClaim": "fortress-backups",
                "path": "/dumps",
                "image": {
                    "repository": "registry.example.com/postgres",
                    "tag": "17.2",
                    "pullPolicy": "Always",
                },
                "resources": {"requests": {"cpu": "20m", "memory": "32Mi"}, "limits": {"memory": "1Gi"}},
            },
        },
        "drills": {
            "dr": {
                "enabled": True,
                "schedule": "@weekly",
                "timeZone": "Europe/Berlin",
                "selector": "fortress.io/drill=true,tier=gold",
                "wait": 300,
                "activeDeadlineSeconds": 1200,
                "backoffLimit": 2,
                "successfulJobsHistoryLimit": 1,
                "failedJobsHistoryLimit": 5,
                "resources": {"requests": {"cpu": "20m", "memory": "32Mi"}, "limits": {"memory": "128Mi"}},
            }
        },
        "networkPolicy": {"apiFrom": [{"namespaceSelector": {"matchLabels": {"name": "ingress"}}}]},
    },
    "day2-alt": {
        "api": {
            "autoscaling": {
                "enabled": True,
                "minReplicas": 1,
                "maxReplicas": 2,
                "targetCPUUtilizationPercentage": None,
                "targetMemoryUtilizationPercentage": 75,
            },
            "ingress": {"enabled": True, "tls": {"enabled": True, "secretName": "api-cert", "issuer": "ca"}},
        },
        "tests": {"enabled": False},
        "migrations": {
            "enabled": True,
            "databases": [{"name": "ledger", "existingSecret": "ledger-db", "key": "dsn"}],
            "lockTimeout": None,
        },
        "drills": {"dr": {"enabled": True, "namespace": "orders"}},
    },
    "minimal": {
        "rbac": {"create": False},
        "networkPolicy": {"enabled": False},
        "operator": {"serviceAccount": {"create": False, "name": "existing-operator"}, "replicas": 0},
        "api": {"serviceAccount": {"create": False}, "podDisruptionBudget": {"enabled": False}},
    },
}


@functools.cache
def _chart() -> helm.Chart:
    return helm.Chart.load(str(CHART))


def render(values: dict[str, Any] | None = None) -> dict[str, str]:
    """Template path -> rendered text (NOTES.txt included)."""
    return _chart().render(values or {}, name=RELEASE, namespace=NAMESPACE, is_install=True)


@functools.cache
def _case_documents(case: str) -> tuple[dict[str, Any], ...]:
    documents: list[dict[str, Any]] = []
    for path, text in sorted(render(CASES[case]).items()):
        if not path.endswith(".txt"):
            documents.extend(doc for doc in yaml.safe_load_all(text) if doc)
    return tuple(documents)


def documents(case: str, kind: str | None = None) -> list[dict[str, Any]]:
    return [doc for doc in _case_documents(case) if kind is None or doc["kind"] == kind]


def find(case: str, kind: str, suffix: str) -> dict[str, Any]:
    matches = [doc for doc in documents(case, kind) if doc["metadata"]["name"].endswith(suffix)]
    assert len(matches) == 1, f"{case}: expected one {kind} *{suffix}, found {len(matches)}"
    return matches[0]


def pod_specs(case: str) -> dict[str, dict[str, Any]]:
    return {doc["metadata"]["name"]: doc["spec"]["template"]["spec"] for doc in documents(case, "Deployment")}


ALL_CASES = pytest.mark.parametrize("case", sorted(CASES))


# --------------------------------------------------------------------------- chart and lint


def test_chart_metadata_follows_the_package() -> None:
    meta = _chart().metadata
    assert meta["apiVersion"] == "v2"
    assert meta["name"] == "fortress"
    assert meta["version"] == fortress.__version__ and meta["appVersion"] == fortress.__version__


@ALL_CASES
def test_lint_is_clean(case: str) -> None:
    report = helm.lint(str(CHART), CASES[case], strict=True, namespace=NAMESPACE)
    problems = [m for m in report["messages"] if m["severity"] >= 2]
    assert report["errors"] == [] and problems == [], problems


def test_chart_carries_the_generated_crds() -> None:
    names = {Path(crd["filename"]).name for crd in _chart().crds}
    assert names == {path.name for path in (repo_root() / "crds").glob("*.yaml")}


# --------------------------------------------------------------------------- Kubernetes schemas

# monitoring.coreos.com kinds are not in the Kubernetes schemas kubernetes-validate ships: they are
# checked against the fields of the prometheus-operator CRDs the chart uses.
_DURATION = {"type": "string", "pattern": "^([0-9]+(ms|s|m|h|d|w|y))+$"}
_STRING_MAP = {"type": "object", "additionalProperties": {"type": "string"}}
_META = {
    "type": "object",
    "required": ["name", "namespace"],
    "properties": {"name": {"type": "string", "maxLength": 253}, "labels": _STRING_MAP},
}
MONITORING_SCHEMAS: dict[str, dict[str, Any]] = {
    "ServiceMonitor": {
        "type": "object",
        "required": ["apiVersion", "kind", "metadata", "spec"],
        "properties": {
            "apiVersion": {"const": "monitoring.coreos.com/v1"},
            "metadata": _META,
            "spec": {
                "type": "object",
                "required": ["selector", "endpoints"],
                "additionalProperties": False,
                "properties": {
                    "selector": {"type": "object", "required": ["matchLabels"]},
                    "namespaceSelector": {"type": "object"},
                    "endpoints": {
                        "type": "array",
                        "minItems": 1,
                        "items": {
                            "type": "object",
                            "required": ["port"],
                            "additionalProperties": False,
                            "properties": {
                                "port": {"type": "string"},
                                "path": {"type": "string"},
                                "interval": _DURATION,
                                "scrapeTimeout": _DURATION,
                                "honorLabels": {"type": "boolean"},
                                "relabelings": {
                                    "type": "array",
                                    "items": {
                                        "type": "object",
                                        "properties": {"action": {"enum": ["replace", "keep", "drop"]}},
                                    },
                                },
                            },
                        },
                    },
                },
            },
        },
    },
    "PrometheusRule": {
        "type": "object",
        "required": ["apiVersion", "kind", "metadata", "spec"],
        "properties": {
            "apiVersion": {"const": "monitoring.coreos.com/v1"},
            "metadata": _META,
            "spec": {
                "type": "object",
                "required": ["groups"],
                "properties": {
                    "groups": {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "required": ["name", "rules"],
                            "properties": {
                                "name": {"type": "string", "minLength": 1},
                                "rules": {
                                    "type": "array",
                                    "minItems": 1,
                                    "items": {
                                        "type": "object",
                                        "required": ["alert", "expr", "labels", "annotations"],
                                        "additionalProperties": False,
                                        "properties": {
                                            "alert": {"type": "string", "pattern": "^[A-Za-z][A-Za-z0-9]*$"},
                                            "expr": {"type": "string", "minLength": 1},
                                            "for": _DURATION,
                                            "labels": {**_STRING_MAP, "required": ["severity"]},
                                            "annotations": {**_STRING_MAP, "required": ["summary"]},
                                        },
                                    },
                                },
                            },
                        },
                    }
                },
            },
        },
    },
}


@ALL_CASES
def test_every_manifest_validates(case: str) -> None:
    import jsonschema

    version = kubernetes_validate.latest_version()
    kinds = set()
    for doc in documents(case):
        kinds.add(doc["kind"])
        if doc["apiVersion"].startswith("monitoring.coreos.com/"):
            jsonschema.validate(doc, MONITORING_SCHEMAS[doc["kind"]])
        else:
            kubernetes_validate.validate(doc, version, strict=True)
    assert {"Deployment", "ServiceAccount"} <= kinds or case == "minimal"


@ALL_CASES
def test_names_are_unique_and_namespaced_where_they_must_be(case: str) -> None:
    cluster_scoped = {"ClusterRole", "ClusterRoleBinding"}
    seen = set()
    for doc in documents(case):
        meta = doc["metadata"]
        key = (doc["kind"], meta.get("namespace"), meta["name"])
        assert key not in seen, key
        seen.add(key)
        assert (doc["kind"] in cluster_scoped) == ("namespace" not in meta), key
        assert meta["labels"]["app.kubernetes.io/instance"] == RELEASE


# --------------------------------------------------------------------------- values schema

BAD_VALUES: list[tuple[dict[str, Any], str]] = [
    ({"operator": {"replicas": 2}}, "/operator/replicas"),
    ({"operator": {"replicas": "one"}}, "/operator/replicas"),
    ({"operator": {"metricsPort": 0}}, "/operator/metricsPort"),
    ({"api": {"port": 70000}}, "/api/port"),
    ({"api": {"replicas": -1}}, "/api/replicas"),
    ({"api": {"enabled": "yes"}}, "/api/enabled"),
    ({"api": {"service": {"type": "Ingress"}}}, "/api/service/type"),
    ({"api": {"tokens": {"key": ""}}}, "/api/tokens/key"),
    ({"image": {"pullPolicy": "Sometimes"}}, "/image/pullPolicy"),
    ({"image": {"repository": ""}}, "/image/repository"),
    ({"image": {"digest": "latest"}}, "/image/digest"),
    ({"watchNamespaces": ["Team_A"]}, "/watchNamespaces/0"),
    ({"watchNamespaces": ["a", "a"]}, "/watchNamespaces"),
    ({"rbac": {"namespaced": True}}, "/watchNamespaces"),
    ({"rbac": {"namespaced": "true"}}, "/rbac/namespaced"),
    ({"monitoring": {"serviceMonitor": {"interval": "soon"}}}, "/monitoring/serviceMonitor/interval"),
    ({"database": {"existingSecret": "Not A Name"}}, "/database/existingSecret"),
    ({"operatr": {"replicas": 1}}, "operatr"),
    ({"api": {"tokenz": {}}}, "tokenz"),
]


@pytest.mark.parametrize(("values", "path"), BAD_VALUES, ids=[p for _, p in BAD_VALUES])
def test_bad_values_are_rejected_naming_the_field(values: dict[str, Any], path: str) -> None:
    with pytest.raises(helm.HelmValuesError) as error:
        render(values)
    assert path in str(error.value)


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"operator": {"metricsPort": 8080, "livenessPort": 8080}}, "must differ"),
        ({"api": {"metrics": {"enabled": True, "port": 8000}}}, "must differ"),
    ],
)
def test_conflicting_ports_fail_the_render(values: dict[str, Any], message: str) -> None:
    with pytest.raises(helm.HelmError, match=message):
        render(values)


def test_schema_accepts_every_case_and_the_defaults() -> None:
    for values in CASES.values():
        _chart().validate_schema(_chart().merge_values(values))


# --------------------------------------------------------------------------- restricted pod security

_ALLOWED_VOLUMES = {"configMap", "csi", "downwardAPI", "emptyDir", "ephemeral", "persistentVolumeClaim"}
_ALLOWED_VOLUMES |= {"projected", "secret"}


def restricted_violations(pod: dict[str, Any]) -> list[str]:
    """What breaks the Kubernetes "restricted" Pod Security Standard (baseline checks included)."""
    problems: list[str] = []
    pod_sc = pod.get("securityContext") or {}
    for flag in ("hostNetwork", "hostPID", "hostIPC"):
        if pod.get(flag):
            problems.append(f"{flag} is set")
    for volume in pod.get("volumes") or []:
        kinds = set(volume) - {"name"}
        if not kinds <= _ALLOWED_VOLUMES:
            problems.append(f"volume {volume['name']} uses {sorted(kinds - _ALLOWED_VOLUMES)}")
    if pod_sc.get("runAsUser") == 0:
        problems.append("pod runAsUser is 0")
    if (pod_sc.get("seccompProfile") or {}).get("type") == "Unconfined":
        problems.append("pod seccompProfile is Unconfined")
    if pod_sc.get("sysctls"):
        problems.append("pod sets sysctls")
    containers = [*(pod.get("initContainers") or []), *(pod.get("containers") or [])]
    for container in containers:
        name = container["name"]
        sc = container.get("securityContext") or {}
        caps = sc.get("capabilities") or {}
        if sc.get("privileged"):
            problems.append(f"{name}: privileged")
        if sc.get("allowPrivilegeEscalation") is not False:
            problems.append(f"{name}: allowPrivilegeEscalation is not false")
        if "ALL" not in (caps.get("drop") or []):
            problems.append(f"{name}: capabilities do not drop ALL")
        if set(caps.get("add") or []) - {"NET_BIND_SERVICE"}:
            problems.append(f"{name}: adds capabilities {caps['add']}")
        non_root = sc.get("runAsNonRoot", pod_sc.get("runAsNonRoot"))
        if non_root is not True:
            problems.append(f"{name}: runAsNonRoot is not true")
        if sc.get("runAsUser", pod_sc.get("runAsUser")) == 0:
            problems.append(f"{name}: runAsUser is 0")
        seccomp = (sc.get("seccompProfile") or pod_sc.get("seccompProfile") or {}).get("type")
        if seccomp not in ("RuntimeDefault", "Localhost"):
            problems.append(f"{name}: seccompProfile is {seccomp or 'unset'}")
        if sc.get("procMount", "Default") != "Default":
            problems.append(f"{name}: procMount {sc['procMount']}")
        if any(port.get("hostPort") for port in container.get("ports") or []):
            problems.append(f"{name}: hostPort")
    return problems


def _compliant_pod() -> dict[str, Any]:
    return {
        "securityContext": {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}},
        "containers": [
            {
                "name": "c",
                "securityContext": {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}},
            }
        ],
        "volumes": [{"name": "tmp", "emptyDir": {}}],
    }


def _broken(path: str, value: Any) -> dict[str, Any]:
    pod = _compliant_pod()
    target: Any = pod
    keys = path.split(".")
    for key in keys[:-1]:
        target = target[int(key)] if key.isdigit() else target.setdefault(key, {})
    target[keys[-1]] = value
    return pod


@pytest.mark.parametrize(
    ("pod", "problem"),
    [
        (_broken("hostNetwork", True), "hostNetwork"),
        (_broken("volumes", [{"name": "h", "hostPath": {"path": "/"}}]), "hostPath"),
        (_broken("securityContext.runAsNonRoot", False), "runAsNonRoot"),
        (_broken("securityContext.seccompProfile", {"type": "Unconfined"}), "Unconfined"),
        (_broken("containers.0.securityContext.allowPrivilegeEscalation", True), "allowPrivilegeEscalation"),
        (_broken("containers.0.securityContext.capabilities", {"drop": ["NET_RAW"]}), "drop ALL"),
        (
            _broken("containers.0.securityContext.capabilities", {"drop": ["ALL"], "add": ["SYS_ADMIN"]}),
            "adds",
        ),
        (_broken("containers.0.securityContext.privileged", True), "privileged"),
        (_broken("containers.0.securityContext.runAsUser", 0), "runAsUser is 0"),
        (_broken("containers.0.ports", [{"containerPort": 80, "hostPort": 80}]), "hostPort"),
    ],
)
def test_the_restricted_checker_catches_each_violation(pod: dict[str, Any], problem: str) -> None:
    assert restricted_violations(_compliant_pod()) == []
    found = restricted_violations(pod)
    assert any(problem in p for p in found), found


@ALL_CASES
def test_pods_meet_the_restricted_pod_security_standard(case: str) -> None:
    for name, pod in pod_specs(case).items():
        assert restricted_violations(pod) == [], name
        for container in pod["containers"]:
            assert container["securityContext"]["readOnlyRootFilesystem"] is True, name
            assert container["resources"]["requests"] and container["resources"]["limits"]["memory"]


# --------------------------------------------------------------------------- workloads


@ALL_CASES
def test_one_active_operator(case: str) -> None:
    operator = find(case, "Deployment", "-operator")
    assert operator["spec"]["strategy"] == {"type": "Recreate"}
    assert operator["spec"]["replicas"] <= 1


def _args(container: dict[str, Any]) -> list[str]:
    return [str(arg) for arg in container.get("args", [])]


def _api_has_metrics_port() -> bool:
    subparsers = cli_parser()._subparsers
    assert subparsers is not None
    api = subparsers._group_actions[0].choices["api"]  # type: ignore[attr-defined]
    return any("--metrics-port" in action.option_strings for action in api._actions)


@ALL_CASES
def test_container_arguments_are_accepted_by_the_cli(case: str) -> None:
    waiting = None
    for name, pod in sorted(pod_specs(case).items()):
        argv = _args(pod["containers"][0])
        if argv[0] == "api" and "--metrics-port" in " ".join(argv) and not _api_has_metrics_port():
            waiting = f"{name}: `fortress api` has no --metrics-port yet, so api.metrics.enabled cannot work"
            continue
        try:
            args = cli_parser().parse_args(argv)
        except SystemExit:
            pytest.fail(f"{name}: `fortress {shlex.join(argv)}` is rejected by the CLI")
        assert getattr(args, "func", None) is not None, name
    if waiting:
        pytest.skip(waiting)


@ALL_CASES
def test_probes_and_ports_line_up(case: str) -> None:
    for name, pod in pod_specs(case).items():
        container = pod["containers"][0]
        ports = {port["name"]: port["containerPort"] for port in container["ports"]}
        for probe in ("livenessProbe", "readinessProbe"):
            http = container[probe]["httpGet"]
            assert http["path"] == "/healthz" and http["port"] in ports, (name, probe)
        argv = _args(container)
        if argv[0] == "run":
            assert container["livenessProbe"]["httpGet"]["port"] == "liveness"
            assert f"--liveness-port={ports['liveness']}" in argv
            assert f"--metrics-port={ports['metrics']}" in argv
        else:
            assert f"--port={ports['http']}" in argv


@ALL_CASES
def test_services_select_pods_and_target_named_ports(case: str) -> None:
    deployments = documents(case, "Deployment")
    for service in documents(case, "Service"):
        selector = service["spec"]["selector"]
        targets = [
            d for d in deployments if selector.items() <= d["spec"]["template"]["metadata"]["labels"].items()
        ]
        assert len(targets) == 1, service["metadata"]["name"]
        names = {p["name"] for p in targets[0]["spec"]["template"]["spec"]["containers"][0]["ports"]}
        assert {p["targetPort"] for p in service["spec"]["ports"]} <= names


def test_operator_environment_follows_the_values() -> None:
    env = {e["name"]: e for e in pod_specs("namespaced")["fortress-operator"]["containers"][0]["env"]}
    assert env["FORTRESS_NAMESPACES"]["value"] == "team-a,team-b"
    env = {e["name"]: e for e in pod_specs("custom")["fx-operator"]["containers"][0]["env"]}
    assert env["FORTRESS_DATABASE_DSN"]["valueFrom"]["secretKeyRef"] == {"name": "fortress-db", "key": "url"}
    assert env["TZ"]["value"] == "UTC" and env["FORTRESS_NAMESPACES"]["value"] == ""


@pytest.mark.parametrize("case", ["default", "custom"])
def test_api_reads_its_tokens_from_a_mounted_secret(case: str) -> None:
    pod = next(spec for name, spec in pod_specs(case).items() if name.endswith("-api"))
    container = pod["containers"][0]
    env = {e["name"]: e.get("value") for e in container["env"]}
    mount = next(m for m in container["volumeMounts"] if m["name"] == "tokens")
    volume = next(v for v in pod["volumes"] if v["name"] == "tokens")["secret"]
    key = volume["items"][0]["key"]
    assert env["FORTRESS_API_TOKENS_FILE"] == f"{mount['mountPath']}/{key}" and mount["readOnly"]
    # the API's ServiceAccount token is mounted exactly when some API route calls Kubernetes
    assert pod["automountServiceAccountToken"] is any(r.component == "api" for r in rbac.all_rules())
    if case == "custom":
        assert volume["secretName"] == "api-tokens" and not documents(case, "Secret")


def test_the_generated_token_file_is_one_the_api_loads(tmp_path: Path) -> None:
    secret = find("default", "Secret", "-api-tokens")
    text = base64.b64decode(secret["data"]["tokens.yaml"]).decode()
    store = TokenStore.from_text(text)
    token = yaml.safe_load(text)["tokens"][0]["token"]
    assert len(token) >= 32 and store.authenticate(f"Bearer {token}").name == "admin"


def test_api_off_renders_no_api_objects() -> None:
    names = [doc["metadata"]["name"] for doc in documents("api-off")]
    assert not [name for name in names if "-api" in name]


@pytest.mark.parametrize(("case", "expected"), [("default", 1), ("custom", 0), ("minimal", 0)])
def test_api_pdb_only_with_several_replicas(case: str, expected: int) -> None:
    assert len(
        [d for d in documents(case, "PodDisruptionBudget") if d["metadata"]["name"].endswith("-api")]
    ) == (expected)


@ALL_CASES
def test_network_policies_open_only_the_named_ports(case: str) -> None:
    policies = documents(case, "NetworkPolicy")
    if CASES[case].get("networkPolicy", {}).get("enabled") is False:
        assert policies == []
        return
    specs = pod_specs(case)
    for policy in policies:
        component = policy["spec"]["podSelector"]["matchLabels"]["app.kubernetes.io/component"]
        pod = next(spec for name, spec in specs.items() if name.endswith(f"-{component}"))
        names = {p["name"] for p in pod["containers"][0]["ports"]}
        for rule in policy["spec"]["ingress"]:
            assert rule["ports"] and {p["port"] for p in rule["ports"]} <= names
        assert ("Egress" in policy["spec"]["policyTypes"]) == bool(
            CASES[case].get("networkPolicy", {}).get("egress")
        )


@ALL_CASES
def test_notes_render(case: str) -> None:
    notes = next(text for path, text in render(CASES[case]).items() if path.endswith("NOTES.txt"))
    assert f"release {RELEASE}" in notes and "kubectl fortress get" in notes
