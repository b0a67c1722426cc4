"""The chart's day-2 templates: the ``helm test`` Pod, the migrations hook Job (and its backups), the DR
drill CronJob, the API's HorizontalPodAutoscaler and Ingress. Rendered with the Helm SDK for the value
sets of ``test_chart.CASES`` (kubernetes-validate, lint, names and NOTES run there for every case);
here: what each renders, the restricted Pod Security Standard for every pod template, the arguments
the CLI accepts, the generated RBAC, the values schema, and that every new value is exercised."""

from __future__ import annotations

import copy
import functools
from typing import Any

import helm_python as helm
import pytest
import yaml

from fortress import rbac
from fortress.cli import parser as cli_parser
from tests.unit.core.test_chart import (
    ALL_CASES,
    CASES,
    NAMESPACE,
    RELEASE,
    _chart,
    documents,
    find,
    render,
    restricted_violations,
)

NEW_SECTIONS = ("api.autoscaling", "api.ingress", "tests", "migrations", "drills")


def pod_templates(docs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """``Kind/name`` -> pod spec, for every Pod, Deployment, Job and CronJob."""
    found = {}
    for doc in docs:
        kind, name = doc["kind"], doc["metadata"]["name"]
        if kind == "Pod":
            found[f"{kind}/{name}"] = doc["spec"]
        elif kind in ("Deployment", "Job"):
            found[f"{kind}/{name}"] = doc["spec"]["template"]["spec"]
        elif kind == "CronJob":
            found[f"{kind}/{name}"] = doc["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    return found


@functools.cache
def _upgrade_documents(case: str, revision: int) -> tuple[dict[str, Any], ...]:
    rendered = _chart().render(
        CASES[case], name=RELEASE, namespace=NAMESPACE, revision=revision, is_install=False, is_upgrade=True
    )
    return tuple(
        doc
        for path, text in sorted(rendered.items())
        if not path.endswith(".txt")
        for doc in yaml.safe_load_all(text)
        if doc
    )


def _labels(doc: dict[str, Any]) -> dict[str, str]:
    return doc["metadata"].get("labels") or {}


def _component(docs: list[dict[str, Any]], kind: str, component: str) -> list[dict[str, Any]]:
    return [
        d for d in docs if d["kind"] == kind and _labels(d).get("app.kubernetes.io/component") == component
    ]


def _granted(rules: list[dict[str, Any]]) -> set[tuple[str, str, str]]:
    return {
        (g, r, v)
        for rule in rules
        for g in rule["apiGroups"]
        for r in rule["resources"]
        for v in rule["verbs"]
    }


def _declared(component: str) -> set[tuple[str, str, str]]:
    return {
        (rule.group, resource, verb)
        for rule in rbac.all_rules()
        if rule.component == component
        for resource in rule.resources
        for verb in rule.verbs
    }


def _accepted(argv: list[str]) -> Any:
    try:
        args = cli_parser().parse_args(argv)
    except SystemExit:
        pytest.fail(f"`fortress {' '.join(argv)}` is rejected by the CLI")
    assert getattr(args, "func", None) is not None
    return args


# --------------------------------------------------------------------------- every pod template


@ALL_CASES
def test_every_pod_template_meets_the_restricted_standard(case: str) -> None:
    docs = documents(case) + (list(_upgrade_documents(case, 2)) if case.startswith("day2") else [])
    for name, pod in pod_templates(docs).items():
        assert restricted_violations(pod) == [], name
        for container in [*(pod.get("initContainers") or []), *pod["containers"]]:
            assert container["securityContext"]["readOnlyRootFilesystem"] is True, name
            assert container["resources"]["requests"] and container["resources"]["limits"]["memory"], name


@ALL_CASES
def test_every_fortress_container_runs_a_command_the_cli_accepts(case: str) -> None:
    docs = documents(case) + (list(_upgrade_documents(case, 2)) if case.startswith("day2") else [])
    for name, pod in pod_templates(docs).items():
        if name.startswith("Deployment/"):
            continue  # test_chart.test_container_arguments_are_accepted_by_the_cli
        for container in pod["containers"]:
            assert "command" not in container, name  # the image's entry point: fortress
            _accepted([str(a) for a in container["args"]])


# --------------------------------------------------------------------------- helm test


def test_the_test_pod_checks_the_api_the_operator_and_the_crds() -> None:
    docs = documents("day2")
    pod = find("day2", "Pod", "-healthcheck")
    assert pod["metadata"]["annotations"]["helm.sh/hook"] == "test"
    assert pod["spec"]["restartPolicy"] == "Never"
    container = pod["spec"]["containers"][0]
    assert (
        container["image"]
        == find("day2", "Deployment", "-operator")["spec"]["template"]["spec"]["containers"][0]["image"]
    )
    args = _accepted([str(a) for a in container["args"]])
    assert args.crds and (args.attempts, args.interval) == (10, 3.0)
    (api_url,) = args.api
    (operator_url,) = args.operator
    services = {d["metadata"]["name"]: d for d in documents("day2", "Service")}
    for url, port_name in ((api_url, "http"), (operator_url, "liveness")):
        host, port = url.removeprefix("http://").split(":")
        service_name, namespace, _ = host.split(".", 2)
        assert namespace == NAMESPACE
        ports = {p["name"]: p["port"] for p in services[service_name]["spec"]["ports"]}
        assert ports[port_name] == int(port), url
    # its ServiceAccount may read CRDs and nothing else
    account = pod["spec"]["serviceAccountName"]
    assert pod["spec"]["automountServiceAccountToken"] is True
    (binding,) = [
        b for b in docs if b["kind"] == "ClusterRoleBinding" and b["subjects"][0]["name"] == account
    ]
    (role,) = [
        r for r in docs if r["kind"] == "ClusterRole" and r["metadata"]["name"] == binding["roleRef"]["name"]
    ]
    assert (
        _granted(role["rules"])
        == _declared("healthcheck")
        == {("apiextensions.k8s.io", "customresourcedefinitions", "get")}
    )


@pytest.mark.parametrize(
    ("values", "api", "operator"),
    [
        ({"api": {"enabled": False}}, False, True),
        ({"operator": {"replicas": 0}}, True, False),
        ({"api": {"enabled": False}, "operator": {"replicas": 0}}, False, False),
    ],
)
def test_the_test_pod_skips_what_is_not_installed(values: dict[str, Any], api: bool, operator: bool) -> None:
    text = next(t for p, t in render(values).items() if p.endswith("tests/healthcheck.yaml"))
    argv = [str(a) for a in yaml.safe_load(text)["spec"]["containers"][0]["args"]]
    assert any(a.startswith("--api=") for a in argv) is api
    assert any(a.startswith("--operator=") for a in argv) is operator
    assert "--crds" in argv
    health_service = [
        d for t in render(values).values() if not t.startswith("Fortress") for d in yaml.safe_load_all(t) if d
    ]
    assert any(d["metadata"]["name"].endswith("-operator-health") for d in health_service) is operator


def test_tests_disabled_render_no_test_objects() -> None:
    assert not _component(documents("day2-alt"), "Pod", "healthcheck")
    assert not _component(documents("day2-alt"), "ServiceAccount", "healthcheck")
    assert not [d for d in documents("day2-alt") if d["metadata"]["name"].endswith("-operator-health")]


@pytest.mark.parametrize(("case", "api_rule"), [("day2", True), ("default", False), ("day2-alt", False)])
def test_network_policies_let_the_test_pod_in(case: str, api_rule: bool) -> None:
    tests_on = CASES[case].get("tests", {}).get("enabled", True)
    for policy in documents(case, "NetworkPolicy"):
        component = policy["spec"]["podSelector"]["matchLabels"]["app.kubernetes.io/component"]
        from_test = [
            rule
            for rule in policy["spec"]["ingress"]
            for peer in rule.get("from") or []
            if (peer.get("podSelector") or {}).get("matchLabels", {}).get("app.kubernetes.io/component")
            == "healthcheck"
        ]
        expected = tests_on and (component == "operator" or api_rule)
        assert bool(from_test) is expected, (case, component)
        if from_test:
            port = "liveness" if component == "operator" else "http"
            assert from_test[0]["ports"] == [{"port": port, "protocol": "TCP"}]


def test_notes_tell_how_to_run_the_tests() -> None:
    notes = next(text for path, text in render(CASES["day2"]).items() if path.endswith("NOTES.txt"))
    assert f"helm test {RELEASE} -n {NAMESPACE} --logs" in notes
    assert "Ingress: https://api.fortress.example.com/api" in notes and "letsencrypt" in notes
    assert "Autoscaled: 3 to 9 replicas" in notes
    assert "fortress migrate up` on ledger, orders" in notes
    assert "/dumps/fortress-r1-<database>.dump on claim fortress-backups" in notes
    assert "CronJob fortress-dr-drill (@weekly)" in notes
    alt = next(text for path, text in render(CASES["day2-alt"]).items() if path.endswith("NOTES.txt"))
    assert "helm test" not in alt and "Backups first" not in alt and "in orders" in alt


# --------------------------------------------------------------------------- migrations hook


def test_the_migrations_job_is_a_pre_install_and_pre_upgrade_hook() -> None:
    job = find("day2", "Job", "-migrate")
    annotations = job["metadata"]["annotations"]
    assert annotations["helm.sh/hook"] == "pre-install,pre-upgrade"
    assert "before-hook-creation" in annotations["helm.sh/hook-delete-policy"]
    spec = job["spec"]
    assert (spec["backoffLimit"], spec["activeDeadlineSeconds"]) == (1, 900)
    pod = spec["template"]["spec"]
    assert pod["automountServiceAccountToken"] is False and pod["restartPolicy"] == "Never"
    by_name = {c["name"]: c for c in pod["containers"]}
    assert set(by_name) == {"migrate-ledger", "migrate-orders"}
    for name, secret, key in (("ledger", "ledger-db", "dsn"), ("orders", "orders-db", "url")):
        container = by_name[f"migrate-{name}"]
        args = _accepted([str(a) for a in container["args"]])
        assert (args.migrate_verb, args.lock_timeout, args.n) == ("up", 120.0, None)
        env = {e["name"]: e for e in container["env"]}
        assert env["FORTRESS_DATABASE_DSN"]["valueFrom"]["secretKeyRef"] == {"name": secret, "key": key}
        assert container["resources"]["limits"]["memory"] == "128Mi"


def test_without_a_lock_timeout_migrate_waits() -> None:
    (container,) = find("day2-alt", "Job", "-migrate")["spec"]["template"]["spec"]["containers"]
    assert [str(a) for a in container["args"]] == ["migrate", "up"]
    assert "initContainers" not in find("day2-alt", "Job", "-migrate")["spec"]["template"]["spec"]


def _backup_values(on_install: bool) -> dict[str, Any]:
    values = copy.deepcopy(CASES["day2-alt"])
    values["migrations"]["backup"] = {"enabled": True, "onInstall": on_install, "existingClaim": "dumps"}
    return values


def _job_pod(rendered: dict[str, str]) -> dict[str, Any]:
    text = next(t for p, t in rendered.items() if p.endswith("migrations.yaml"))
    return yaml.safe_load(text)["spec"]["template"]["spec"]  # type: ignore[no-any-return]


@pytest.mark.parametrize(("on_install", "install_backs_up"), [(False, False), (True, True)])
def test_backups_run_before_an_upgrade_migrates(on_install: bool, install_backs_up: bool) -> None:
    values = _backup_values(on_install)
    install = _job_pod(render(values))
    assert ("initContainers" in install) is install_backs_up
    upgrade = _job_pod(
        _chart().render(
            values, name=RELEASE, namespace=NAMESPACE, revision=7, is_install=False, is_upgrade=True
        )
    )
    (backup,) = upgrade["initContainers"]
    assert backup["name"] == "backup-ledger" and backup["command"] == ["pg_dump"]
    assert backup["image"] == "docker.io/library/postgres:17-alpine"
    assert backup["args"] == [
        "--format=custom",
        f"--file=/backups/{RELEASE}-r7-ledger.dump",
        "--dbname=$(FORTRESS_DATABASE_DSN)",
    ]
    env = {e["name"]: e for e in backup["env"]}
    assert env["FORTRESS_DATABASE_DSN"]["valueFrom"]["secretKeyRef"] == {"name": "ledger-db", "key": "dsn"}
    assert backup["volumeMounts"] == [{"name": "backups", "mountPath": "/backups"}]
    assert upgrade["volumes"] == [{"name": "backups", "persistentVolumeClaim": {"claimName": "dumps"}}]
    assert restricted_violations(upgrade) == []


def test_backup_values_reach_the_init_containers() -> None:
    pod = find("day2", "Job", "-migrate")["spec"]["template"]["spec"]
    assert [c["name"] for c in pod["initContainers"]] == ["backup-ledger", "backup-orders"]
    for container in pod["initContainers"]:
        assert container["image"] == "registry.example.com/postgres:17.2"
        assert (
            container["imagePullPolicy"] == "Always" and container["resources"]["limits"]["memory"] == "1Gi"
        )
        assert container["volumeMounts"] == [{"name": "backups", "mountPath": "/dumps"}]
    assert pod["volumes"][0]["persistentVolumeClaim"]["claimName"] == "fortress-backups"


def test_migrations_off_by_default() -> None:
    assert not documents("default", "Job") and not documents("default", "CronJob")


# --------------------------------------------------------------------------- DR drill


def test_the_drill_cronjob_requests_switchovers_on_labelled_plans() -> None:
    cron = find("day2", "CronJob", "-dr-drill")
    spec = cron["spec"]
    assert (spec["schedule"], spec["timeZone"], spec["concurrencyPolicy"]) == (
        "@weekly",
        "Europe/Berlin",
        "Forbid",
    )
    assert (spec["successfulJobsHistoryLimit"], spec["failedJobsHistoryLimit"]) == (1, 5)
    job = spec["jobTemplate"]["spec"]
    assert (job["backoffLimit"], job["activeDeadlineSeconds"]) == (2, 1200)
    pod = job["template"]["spec"]
    args = _accepted([str(a) for a in pod["containers"][0]["args"]])
    assert (args.dr_verb, args.all_namespaces, args.selector, args.wait) == (
        "drill",
        True,
        "fortress.io/drill=true,tier=gold",
        300.0,
    )
    docs = documents("day2")
    account = pod["serviceAccountName"]
    assert find("day2", "ServiceAccount", "-drill")["metadata"]["name"] == account
    (binding,) = [
        b for b in docs if b["kind"] == "ClusterRoleBinding" and b["subjects"][0]["name"] == account
    ]
    (role,) = [
        r for r in docs if r["kind"] == "ClusterRole" and r["metadata"]["name"] == binding["roleRef"]["name"]
    ]
    assert _granted(role["rules"]) == _declared("drill")


def test_a_drill_of_one_namespace_gets_a_role_there() -> None:
    cron = find("day2-alt", "CronJob", "-dr-drill")
    argv = [str(a) for a in cron["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]["args"]]
    args = _accepted(argv)
    assert (args.namespace, args.all_namespaces, args.selector, args.wait) == (
        "orders",
        False,
        "fortress.io/drill=true",
        600.0,
    )
    (role,) = _component(documents("day2-alt"), "Role", "drill")
    assert role["metadata"]["namespace"] == "orders" and _granted(role["rules"]) == _declared("drill")
    (binding,) = _component(documents("day2-alt"), "RoleBinding", "drill")
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "Role",
        "name": role["metadata"]["name"],
    }
    assert not _component(documents("day2-alt"), "ClusterRole", "drill")


def test_without_rbac_no_drill_or_test_roles() -> None:
    values = copy.deepcopy(CASES["day2"])
    values["rbac"] = {"create": False}
    docs = [
        d for p, t in render(values).items() if not p.endswith(".txt") for d in yaml.safe_load_all(t) if d
    ]
    assert not [d for d in docs if d["kind"] in ("Role", "ClusterRole", "RoleBinding", "ClusterRoleBinding")]
    assert sorted(d["kind"] for d in docs if d["metadata"]["name"].endswith("-drill")) == [
        "CronJob",
        "ServiceAccount",
    ]


# --------------------------------------------------------------------------- API: HPA and Ingress


def test_the_api_autoscaler_replaces_the_replica_count() -> None:
    hpa = find("day2", "HorizontalPodAutoscaler", "-api")
    deployment = find("day2", "Deployment", "-api")
    assert "replicas" not in deployment["spec"]
    assert hpa["spec"]["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": deployment["metadata"]["name"],
    }
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (3, 9)
    targets = {m["resource"]["name"]: m["resource"]["target"] for m in hpa["spec"]["metrics"]}
    assert targets == {
        "cpu": {"type": "Utilization", "averageUtilization": 60},
        "memory": {"type": "Utilization", "averageUtilization": 80},
    }
    # the API pods request what utilisation is measured against
    assert deployment["spec"]["template"]["spec"]["containers"][0]["resources"]["requests"]["cpu"]
    alt = find("day2-alt", "HorizontalPodAutoscaler", "-api")
    assert [m["resource"]["name"] for m in alt["spec"]["metrics"]] == ["memory"]
    assert find("default", "Deployment", "-api")["spec"]["replicas"] == 2
    assert not documents("default", "HorizontalPodAutoscaler")


@pytest.mark.parametrize(("case", "pdb"), [("day2", 1), ("day2-alt", 0)])
def test_the_api_pdb_follows_the_autoscaler_minimum(case: str, pdb: int) -> None:
    found = [d for d in documents(case, "PodDisruptionBudget") if d["metadata"]["name"].endswith("-api")]
    assert len(found) == pdb
    if found:
        assert found[0]["spec"]["minAvailable"] == 1


def test_the_ingress_routes_to_the_api_service_with_tls() -> None:
    ingress = find("day2", "Ingress", "-api")
    service = find("day2", "Service", "-api")
    assert ingress["spec"]["ingressClassName"] == "nginx"
    assert ingress["metadata"]["annotations"] == {
        "nginx.ingress.kubernetes.io/proxy-body-size": "1m",
        "cert-manager.io/cluster-issuer": "letsencrypt",
    }
    assert ingress["spec"]["tls"] == [
        {"hosts": ["api.fortress.example.com"], "secretName": "fortress-api-tls"}
    ]
    (rule,) = ingress["spec"]["rules"]
    assert rule["host"] == "api.fortress.example.com"
    (path,) = rule["http"]["paths"]
    assert (path["path"], path["pathType"]) == ("/api", "Exact")
    backend = path["backend"]["service"]
    assert backend["name"] == service["metadata"]["name"]
    assert backend["port"]["name"] in {p["name"] for p in service["spec"]["ports"]}
    alt = find("day2-alt", "Ingress", "-api")
    assert alt["metadata"]["annotations"] == {"cert-manager.io/issuer": "ca"}
    assert alt["spec"]["tls"][0]["secretName"] == "api-cert" and "ingressClassName" not in alt["spec"]


def test_an_ingress_without_tls() -> None:
    text = next(
        t for p, t in render({"api": {"ingress": {"enabled": True}}}).items() if p.endswith("ingress.yaml")
    )
    ingress = yaml.safe_load(text)
    assert "tls" not in ingress["spec"] and "annotations" not in ingress["metadata"]
    assert not [
        t
        for p, t in render({"api": {"enabled": False, "ingress": {"enabled": True}}}).items()
        if p.endswith("ingress.yaml") and t.strip()
    ]


# --------------------------------------------------------------------------- values: schema and coverage

BAD_VALUES: list[tuple[dict[str, Any], str]] = [
    ({"api": {"autoscaling": {"minReplicas": 0}}}, "/api/autoscaling/minReplicas"),
    ({"api": {"autoscaling": {"maxReplicas": "many"}}}, "/api/autoscaling/maxReplicas"),
    (
        {"api": {"autoscaling": {"targetCPUUtilizationPercentage": 0}}},
        "/api/autoscaling/targetCPUUtilizationPercentage",
    ),
    ({"api": {"autoscaling": {"scaleUp": True}}}, "scaleUp"),
    ({"api": {"ingress": {"host": "Not A Host"}}}, "/api/ingress/host"),
    ({"api": {"ingress": {"path": "api"}}}, "/api/ingress/path"),
    ({"api": {"ingress": {"pathType": "Regex"}}}, "/api/ingress/pathType"),
    ({"api": {"ingress": {"tls": {"secretName": "Bad_Name"}}}}, "/api/ingress/tls/secretName"),
    ({"api": {"ingress": {"tls": {"enabled": "yes"}}}}, "/api/ingress/tls/enabled"),
    ({"tests": {"attempts": 0}}, "/tests/attempts"),
    ({"tests": {"interval": 0}}, "/tests/interval"),
    ({"migrations": {"enabled": True}}, "/migrations/databases"),
    (
        {"migrations": {"databases": [{"name": "Ledger", "existingSecret": "s", "key": "dsn"}]}},
        "/migrations/databases/0/name",
    ),
    ({"migrations": {"databases": [{"name": "ledger", "key": "dsn"}]}}, "existingSecret"),
    ({"migrations": {"lockTimeout": 0}}, "/migrations/lockTimeout"),
    ({"migrations": {"backup": {"enabled": True}}}, "existingClaim"),
    ({"migrations": {"backup": {"path": "backups"}}}, "/migrations/backup/path"),
    ({"migrations": {"backup": {"image": {"tag": ""}}}}, "/migrations/backup/image/tag"),
    ({"drills": {"dr": {"schedule": "nightly"}}}, "/drills/dr/schedule"),
    ({"drills": {"dr": {"selector": "drill"}}}, "/drills/dr/selector"),
    ({"drills": {"dr": {"namespace": "Orders"}}}, "/drills/dr/namespace"),
    ({"drills": {"dr": {"wait": -1}}}, "/drills/dr/wait"),
    ({"drills": {"audit": {"enabled": True}}}, "audit"),
]


@pytest.mark.parametrize(("values", "path"), BAD_VALUES, ids=[p for _, p in BAD_VALUES])
def test_bad_values_are_rejected_naming_the_field(values: dict[str, Any], path: str) -> None:
    with pytest.raises(helm.HelmValuesError) as error:
        render(values)
    assert path in str(error.value)


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"api": {"autoscaling": {"enabled": True, "minReplicas": 5, "maxReplicas": 4}}}, "must not exceed"),
        (
            {"api": {"autoscaling": {"enabled": True, "targetCPUUtilizationPercentage": None}}},
            "needs targetCPUUtilizationPercentage or targetMemoryUtilizationPercentage",
        ),
        ({"api": {"ingress": {"tls": {"enabled": True, "clusterIssuer": "a", "issuer": "b"}}}}, "not both"),
        ({"api": {"ingress": {"tls": {"issuer": "b"}}}}, "needs tls.enabled"),
        (
            {"migrations": {"databases": [{"name": "a", "existingSecret": "s", "key": "k"}] * 2}},
            "the name a appears twice",
        ),
    ],
)
def test_conflicting_values_fail_the_render(values: dict[str, Any], message: str) -> None:
    with pytest.raises(helm.HelmError, match=message):
        render(values)


def _leaves(node: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(node, dict) and node and not (prefix.endswith(("resources", "annotations")) and prefix):
        found: dict[str, Any] = {}
        for key, value in node.items():
            found.update(_leaves(value, f"{prefix}.{key}" if prefix else key))
        return found
    return {prefix: node}


def _at(values: dict[str, Any], path: str) -> Any:
    node: Any = values
    for key in path.split("."):
        if not isinstance(node, dict) or key not in node:
            return KeyError
        node = node[key]
    return node


def test_every_new_value_is_set_by_a_case_to_something_else_than_its_default() -> None:
    defaults = _chart().values
    new = {path: value for path, value in _leaves(defaults).items() if path.startswith(NEW_SECTIONS)}
    assert len(new) > 30, sorted(new)
    missing = [
        path
        for path, default in new.items()
        if not any(_at(case, path) not in (KeyError, default) for case in CASES.values())
    ]
    assert missing == [], missing
