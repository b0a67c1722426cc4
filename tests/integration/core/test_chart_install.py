"""The chart installed with the Helm SDK on a real API server (the local control plane or
FORTRESS_TEST_KUBECONFIG): every object is accepted, the ServiceAccounts get exactly the declared
permissions, the pods pass PodSecurity admission at "restricted", and the operator runs under its
ServiceAccount's own token. Skips on the in-memory emulator."""

from __future__ import annotations

import asyncio
import contextlib
import re
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import helm_python as helm
import pytest
import yaml
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from fortress import rbac
from fortress.api import GROUP, KINDS, VERSION
from fortress.paths import repo_root
from tests.support.kubeapi import KubeTarget, running_operator, wait_for

pytestmark = pytest.mark.realapi
CHART = repo_root() / "charts" / "fortress"


@contextlib.contextmanager
def installed(target: KubeTarget, namespace: str, values: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """The chart installed as a unique release in ``namespace`` (uninstalled afterwards)."""
    name = f"f{uuid.uuid4().hex[:8]}"
    with helm.Config(kubeconfig_path=str(target.kubeconfig), namespace=namespace) as config:
        release = config.install(str(CHART), name, values, namespace=namespace, timeout=120)
        try:
            yield release
        finally:
            config.uninstall(name, ignore_not_found=True, timeout=120)


def _denied(message: str) -> bool:
    """A log line about HTTP 403 or Forbidden (a whole number: uids such as 2e6e4034-... contain 403)."""
    return "Forbidden" in message or re.search(r"\b403\b", message) is not None


def _manifests(release: dict[str, Any]) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(release["manifest"]) if doc]


def _allowed(
    k8s: client.ApiClient, user: str, namespace: str | None, group: str, resource: str, verb: str
) -> bool:
    plural, _, subresource = resource.partition("/")
    review = client.V1SubjectAccessReview(
        spec=client.V1SubjectAccessReviewSpec(
            user=user,
            groups=["system:serviceaccounts", "system:authenticated"],
            resource_attributes=client.V1ResourceAttributes(
                group=group, resource=plural, subresource=subresource or None, verb=verb, namespace=namespace
            ),
        )
    )
    return bool(client.AuthorizationV1Api(k8s).create_subject_access_review(review).status.allowed)


@pytest.mark.parametrize("namespaced", [False, True], ids=["cluster-mode", "namespaced-mode"])
def test_install_grants_exactly_the_declared_permissions(
    real_kube_api: KubeTarget, k8s: client.ApiClient, namespace: str, namespaced: bool
) -> None:
    watched = f"{namespace}-w"
    client.CoreV1Api(k8s).create_namespace({"metadata": {"name": watched}})
    values = {"rbac": {"namespaced": namespaced}, "watchNamespaces": [watched] if namespaced else []}
    try:
        with installed(real_kube_api, namespace, values) as release:
            kinds = {doc["kind"] for doc in _manifests(release)}
            assert {"Deployment", "Service", "ServiceAccount", "ClusterRole", "NetworkPolicy"} <= kinds
            operator = next(
                d
                for d in _manifests(release)
                if d["kind"] == "Deployment" and "-operator" in d["metadata"]["name"]
            )
            account = operator["spec"]["template"]["spec"]["serviceAccountName"]
            user = f"system:serviceaccount:{namespace}:{account}"
            for rule in rbac.all_rules():
                if rule.component != "operator" or (rule.watching_namespaces and not namespaced):
                    continue
                for resource in rule.resources:
                    for verb in rule.verbs:
                        where = None if rule.cluster else watched
                        assert _allowed(k8s, user, where, rule.group, resource, verb), (verb, resource)
            assert not _allowed(k8s, user, watched, "", "secrets", "list")
            assert not _allowed(k8s, user, watched, "", "pods", "create")
            assert not _allowed(k8s, user, watched, GROUP, "creditledgers", "delete")
            if namespaced:  # nothing namespaced outside the watched namespaces
                assert not _allowed(k8s, user, "default", GROUP, "creditledgers", "list")
    finally:
        with contextlib.suppress(ApiException):
            client.CoreV1Api(k8s).delete_namespace(watched)


def test_pods_pass_restricted_pod_security_admission(
    real_kube_api: KubeTarget, k8s: client.ApiClient, namespace: str
) -> None:
    core = client.CoreV1Api(k8s)
    labels = {
        "pod-security.kubernetes.io/enforce": "restricted",
        "pod-security.kubernetes.io/enforce-version": "latest",
    }
    core.patch_namespace(namespace, {"metadata": {"labels": labels}})
    privileged = {
        "metadata": {"name": "control"},
        "spec": {"containers": [{"name": "c", "image": "x", "securityContext": {"privileged": True}}]},
    }
    try:
        core.create_namespaced_pod(namespace, privileged, dry_run="All")
        pytest.skip("this API server does not enforce Pod Security admission")
    except ApiException as error:
        assert error.status == 403
    with installed(real_kube_api, namespace, {}) as release:
        for deployment in [d for d in _manifests(release) if d["kind"] == "Deployment"]:
            template = deployment["spec"]["template"]
            pod = {
                "metadata": {"name": deployment["metadata"]["name"], **template["metadata"]},
                "spec": template["spec"],
            }
            core.create_namespaced_pod(namespace, pod, dry_run="All")  # raises 403 when not restricted


def _token_kubeconfig(
    target: KubeTarget, k8s: client.ApiClient, namespace: str, account: str, path: Path
) -> Path:
    request = client.AuthenticationV1TokenRequest(
        spec=client.V1TokenRequestSpec(audiences=[], expiration_seconds=3600)
    )
    token = (
        client.CoreV1Api(k8s)
        .create_namespaced_service_account_token(account, namespace, request)
        .status.token
    )
    admin = yaml.safe_load(target.kubeconfig.read_text())
    admin["users"] = [{"name": "operator", "user": {"token": token}}]
    for context in admin["contexts"]:
        context["context"]["user"] = "operator"
    path.write_text(yaml.safe_dump(admin))
    return path


def _example_objects(namespace: str) -> list[dict[str, Any]]:
    objects = []
    for path in sorted((repo_root() / "examples").glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc and doc.get("apiVersion", "").startswith(f"{GROUP}/"):
                doc["metadata"]["namespace"] = namespace
                objects.append(doc)
    return objects


def _secret_refs(node: Any) -> Iterator[tuple[str, str]]:
    if isinstance(node, dict):
        ref = node.get("secretKeyRef")
        if isinstance(ref, dict) and "name" in ref and "key" in ref:
            yield ref["name"], ref["key"]
        for value in node.values():
            yield from _secret_refs(value)
    elif isinstance(node, list):
        for value in node:
            yield from _secret_refs(value)


def _apply_examples(k8s: client.ApiClient, namespace: str) -> int:
    """Every example in ``namespace``, with Secrets pointing at a database that refuses connections."""
    from fortress.api import BY_KIND

    objects = _example_objects(namespace)
    secrets: dict[str, set[str]] = {}
    for obj in objects:
        for name, key in _secret_refs(obj.get("spec")):
            secrets.setdefault(name, set()).add(key)
    core, custom = client.CoreV1Api(k8s), client.CustomObjectsApi(k8s)
    for name, keys in secrets.items():
        data = dict.fromkeys(keys, "postgresql://nobody@127.0.0.1:1/none")
        core.create_namespaced_secret(namespace, {"metadata": {"name": name}, "stringData": data})
    for obj in objects:
        custom.create_namespaced_custom_object(GROUP, VERSION, namespace, BY_KIND[obj["kind"]].plural, obj)
    return len(objects)


@pytest.mark.parametrize("namespaced", [False, True], ids=["cluster-wide", "namespaced"])
async def test_the_operator_works_with_only_the_chart_permissions(
    real_kube_api: KubeTarget,
    k8s: client.ApiClient,
    namespace: str,
    tmp_path: Path,
    namespaced: bool,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Run the operator in-process under the chart's ServiceAccount token and reconcile every
    example: nothing it does may be Forbidden (databases are unreachable here, which is fine)."""
    watched = (namespace,) if namespaced else ()
    values = {"rbac": {"namespaced": namespaced}, "watchNamespaces": list(watched), "api": {"enabled": False}}
    custom = client.CustomObjectsApi(k8s)
    with installed(real_kube_api, namespace, values) as release:
        operator = next(d for d in _manifests(release) if d["kind"] == "Deployment")
        account = operator["spec"]["template"]["spec"]["serviceAccountName"]
        kubeconfig = _token_kubeconfig(
            real_kube_api, k8s, namespace, account, tmp_path / "operator.kubeconfig"
        )
        as_operator = KubeTarget(real_kube_api.flavour, kubeconfig)
        async with running_operator(as_operator, namespaces=watched):
            count = _apply_examples(k8s, namespace)

            def all_observed() -> bool:
                found = 0
                for info in KINDS:
                    listing = custom.list_namespaced_custom_object(GROUP, VERSION, namespace, info.plural)
                    found += sum(
                        1 for o in listing["items"] if (o.get("status") or {}).get("observedGeneration")
                    )
                return found == count

            try:
                await wait_for(all_observed, timeout=90)
                reconciled = True
                await asyncio.sleep(3)  # let daemons and timers make their first calls
            except TimeoutError:
                reconciled = False
    messages = [r.getMessage() for r in caplog.records]
    # Namespaces of other tests stay Terminating on a bare control plane (no namespace controller);
    # writing into them is refused with 403 "being terminated", which is not a permission problem.
    forbidden = sorted({m[:300] for m in messages if _denied(m) and "being terminated" not in m})
    assert forbidden == [], "\n".join(forbidden)
    assert reconciled, "not every example was reconciled in 90 s"


def test_a_denial_is_told_from_a_uid_containing_403() -> None:
    assert _denied("APIForbiddenError('...', {'code': 403})") and _denied("Forbidden: cannot list pods")
    assert not _denied(
        "Unprocessed streams left for [(creditledgers, '2e6e4034-27fd-4076-b57b-6c2186ea757d')]."
    )
