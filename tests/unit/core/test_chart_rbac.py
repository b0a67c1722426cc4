"""Least-privilege RBAC: the code's Kubernetes calls are exactly what the declared rules grant, and
the chart renders exactly those rules (no wildcard), cluster-wide or per watched namespace."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from fortress import assets, rbac
from fortress.api import GROUP
from tests.unit.core.test_chart import ALL_CASES, CASES, NAMESPACE, documents

RULES = rbac.all_rules()
FORBIDDEN_VERBS = {"*", "escalate", "bind", "impersonate"}


def test_every_kubernetes_call_in_the_code_is_granted_and_every_grant_used() -> None:
    problems = list(rbac.audit(RULES, rbac.code_uses()))
    hint = (
        "\nDeclare what the code needs in operator/fortress/<subsystem>/rbac.py (RULES = [Rule(...)]),"
        " remove grants nothing uses (or mark them indirect=True with the reason), then run"
        " `python -m fortress.assets`."
    )
    assert problems == [], "\n".join(problems) + hint


def test_the_chart_rules_file_is_generated_from_the_declarations() -> None:
    path = assets.chart_dir() / "files" / "rbac.yaml"
    assert path.read_text() == assets.rbac_yaml(), "run `python -m fortress.assets`"


# --------------------------------------------------------------------------- the scanner itself

SCANNED = [
    ("core.read_namespaced_secret(name, ns)", "get", [("", "secrets")]),
    ("await asyncio.to_thread(self.core.list_namespaced_config_map, ns)", "list", [("", "configmaps")]),
    ("apps.patch_namespaced_deployment_scale(n, ns, body)", "patch", [("apps", "deployments/scale")]),
    ("apps.replace_namespaced_deployment_status(n, ns, b)", "update", [("apps", "deployments/status")]),
    ("core.delete_collection_namespaced_pod(ns)", "deletecollection", [("", "pods")]),
    ("core.create_namespaced_endpoints(ns, body)", "create", [("", "endpoints")]),
    ("coord.read_namespaced_lease(n, ns)", "get", [("coordination.k8s.io", "leases")]),
    ("w.stream(core.list_namespaced_service, ns)", "watch", [("", "services")]),
    ("core.list_namespaced_pod(ns, watch=True)", "watch", [("", "pods")]),
    (
        "custom.patch_namespaced_custom_object('gateway.networking.k8s.io', 'v1', ns, 'httproutes', n, b)",
        "patch",
        [("gateway.networking.k8s.io", "httproutes")],
    ),
    ("custom.get_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, n)", "get", [(GROUP, "drregions")]),
    ("custom.list_cluster_custom_object(g, v, p)", "list", [(GROUP, p) for p in rbac.FORTRESS_PLURALS]),
    ("kopf.info(body, reason='x', message='y')", "create", [("", "events")]),
    ("(kopf.warn if bad else kopf.info)(body, reason='x', message='y')", "create", [("", "events")]),
]


@pytest.mark.parametrize(("line", "verb", "candidates"), SCANNED, ids=[s[0][:50] for s in SCANNED])
def test_the_scanner_finds_the_access(line: str, verb: str, candidates: list[tuple[str, str]]) -> None:
    source = f"PLURAL = 'drregions'\n{line}\n"
    uses = rbac.scan_source(source, "operator", "x.py")
    assert any(use.verb == verb and set(use.candidates) == set(candidates) for use in uses), [
        use.describe() for use in uses
    ]


def test_the_scanner_reads_kopf_handlers() -> None:
    source = (
        "@kopf.on.event('v1', 'pods', registry=r)\ndef a(**_): ...\n"
        "@kopf.daemon('apps', 'v1', 'deployments', registry=r)\ndef b(**_): ...\n"
        "@kopf.on.update(group=info.group, version='v1alpha1', plural=info.plural, registry=r)\n"
        "def c(**_): ...\n"
    )
    found = {(use.verb, use.candidates) for use in rbac.scan_source(source, "operator", "x.py")}
    assert ("watch", (("", "pods"),)) in found and ("patch", (("", "pods"),)) not in found
    assert ("patch", (("apps", "deployments"),)) in found
    assert ("patch", tuple((GROUP, p) for p in rbac.FORTRESS_PLURALS)) in found


def test_the_scanner_reads_generic_clients_with_resource_descriptors() -> None:
    source = (
        "DEPLOYMENTS = Resource('apps', 'v1', 'deployments')\n"
        "ROLLOUTS = Resource(INFO.group, INFO.version, INFO.plural)\n"
        "LEASES: Final = Resource('coordination.k8s.io', 'v1', 'leases', kind='Lease')\n"
        "await kube.get(LEASES, ns, name)\n"
        "await self.io.patch(DEPLOYMENTS, ns, name, body)\n"
        "await self.io.patch(ROLLOUTS, ns, name, body, subresource='status')\n"
        "jobs.append(_bind(self.io.replace, SERVICES, ns, name, body))\n"
        "await io.list(INGRESSES, ns)\n"
        "CONFIGMAPS: Final = Resource('', 'v1', 'configmaps', kind='ConfigMap')\n"
        "await kube.get(CONFIGMAPS, ns, name)\n"
    )
    elsewhere = {"SERVICES": ("", "services")}  # imported from another module
    found = {(use.verb, use.candidates) for use in rbac.scan_source(source, "operator", "x.py", elsewhere)}
    assert ("patch", (("apps", "deployments"),)) in found
    assert ("get", (("coordination.k8s.io", "leases"),)) in found  # an annotated constant
    assert ("patch", tuple((GROUP, f"{p}/status") for p in rbac.FORTRESS_PLURALS)) in found
    assert ("update", (("", "services"),)) in found
    assert ("get", (("", "configmaps"),)) in found  # an annotated constant
    assert not [use for use in found if use[0] == "list"]  # INGRESSES is no known descriptor


def test_missing_and_unused_grants_are_reported() -> None:
    uses = rbac.scan_source("apps.list_namespaced_deployment(ns)\n", "operator", "x.py")
    audit = rbac.audit([rbac.Rule("", ("configmaps",), ("get",), "test")], uses)
    assert [u.verb for u in audit.missing] == ["list"]
    assert [(r.resources, verb) for r, _, verb in audit.unused] == [(("configmaps",), "get")]


def test_the_api_component_is_told_apart_from_the_operator() -> None:
    assert rbac._component(rbac.Path("ledger/api.py")) == "api"
    assert rbac._component(rbac.Path("http/app.py")) == "api"
    assert rbac._component(rbac.Path("ledger/handlers.py")) == "operator"
    assert rbac._component(rbac.Path("plugin.py")) is None  # runs as the kubectl user
    assert rbac._component(rbac.Path("commands/rollout.py")) is None


@pytest.mark.parametrize(
    "kwargs",
    [
        {"group": "*", "resources": ("pods",), "verbs": ("get",)},
        {"group": "", "resources": ("*",), "verbs": ("get",)},
        {"group": "", "resources": ("pods",), "verbs": ("*",)},
        {"group": "", "resources": ("pods",), "verbs": ("escalate",)},
        {"group": "", "resources": ("pods",), "verbs": ()},
        {"group": "", "resources": ("pods",), "verbs": ("get",), "component": "plugin"},
    ],
)
def test_rules_refuse_wildcards_and_unknown_verbs(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        rbac.Rule(why="test", **kwargs)


# --------------------------------------------------------------------------- the rendered RBAC


def _granted(rules: list[dict[str, Any]]) -> set[tuple[str, str, str]]:
    return {
        (group, resource, verb)
        for rule in rules
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    }


def _declared(component: str, cluster: bool | None, watching: bool) -> set[tuple[str, str, str]]:
    return {
        (rule.group, resource, verb)
        for rule in RULES
        if rule.component == component
        and (cluster is None or rule.cluster == cluster)
        and (watching or not rule.watching_namespaces)
        for resource in rule.resources
        for verb in rule.verbs
    }


@ALL_CASES
def test_rbac_has_no_wildcard_or_escalation(case: str) -> None:
    for doc in documents(case):
        if doc["kind"] in ("Role", "ClusterRole"):
            for rule in doc["rules"]:
                assert not {"*"} & {*rule["apiGroups"], *rule["resources"]}, doc["metadata"]["name"]
                assert not FORBIDDEN_VERBS & set(rule["verbs"]), doc["metadata"]["name"]
                assert "nonResourceURLs" not in rule and "resourceNames" not in rule


@pytest.mark.parametrize("case", ["default", "watching-with-clusterrole", "custom", "monitoring"])
def test_cluster_mode_grants_exactly_the_declared_rules(case: str) -> None:
    watching = bool(CASES[case].get("watchNamespaces"))
    roles = {doc["metadata"]["name"]: doc for doc in documents(case, "ClusterRole")}
    assert not documents(case, "Role")
    operator = next(doc for name, doc in roles.items() if name.endswith("-operator"))
    assert _granted(operator["rules"]) == _declared("operator", None, watching)
    api_role = [doc for name, doc in roles.items() if name.endswith("-api")]
    assert _granted(api_role[0]["rules"] if api_role else []) == _declared("api", None, watching)
    assert ("", "namespaces", "list") in _granted(operator["rules"]) or not watching


def test_namespaced_mode_grants_namespaced_rules_per_watched_namespace() -> None:
    roles = documents("namespaced", "Role")
    assert {doc["metadata"]["namespace"] for doc in roles} == {"team-a", "team-b"}
    for role in roles:
        component = "api" if role["metadata"]["name"].endswith("-api") else "operator"
        assert _granted(role["rules"]) == _declared(component, False, True), role["metadata"]["name"]
    assert {r["metadata"]["name"] for r in roles if r["metadata"]["name"].endswith("-api")} == (
        {"fortress-api"} if _declared("api", False, True) else set()
    )
    (cluster_role,) = [
        doc
        for doc in documents("namespaced", "ClusterRole")
        if doc["metadata"]["labels"]["app.kubernetes.io/component"] == "operator"
    ]
    assert _granted(cluster_role["rules"]) == _declared("operator", True, True)
    for binding in documents("namespaced", "RoleBinding") + documents("namespaced", "ClusterRoleBinding"):
        (subject,) = binding["subjects"]
        account = f"fortress-{binding['metadata']['labels']['app.kubernetes.io/component']}"
        assert subject == {"kind": "ServiceAccount", "name": account, "namespace": NAMESPACE}


def test_bindings_point_at_rendered_roles_and_accounts() -> None:
    for case in CASES:
        docs = documents(case)
        names = {(d["kind"], d["metadata"].get("namespace"), d["metadata"]["name"]) for d in docs}
        accounts = {d["metadata"]["name"] for d in docs if d["kind"] == "ServiceAccount"}
        for binding in [d for d in docs if d["kind"] in ("RoleBinding", "ClusterRoleBinding")]:
            ref = binding["roleRef"]
            assert (ref["kind"], binding["metadata"].get("namespace"), ref["name"]) in names
            assert binding["subjects"][0]["name"] in accounts


def test_no_rbac_objects_when_disabled() -> None:
    kinds = {doc["kind"] for doc in documents("minimal")}
    assert not kinds & {"Role", "RoleBinding", "ClusterRole", "ClusterRoleBinding"}


def test_the_rules_file_is_what_the_template_reads() -> None:
    document = yaml.safe_load((assets.chart_dir() / "files" / "rbac.yaml").read_text())
    assert set(document) == set(rbac.COMPONENTS)
    assert document == rbac.chart_document(RULES)
