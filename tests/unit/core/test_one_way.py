"""One way to do each thing, checked in the source: one Kubernetes client, one status writer, clean imports.

- Only ``fortress/adapters/kube.py`` builds a Kubernetes API client (``ApiClient``, ``CoreV1Api``, ...).
- Only ``fortress/core/loop.py`` writes the status of a resource (the per-object loop), whatever the kind.
- No subsystem imports another subsystem, ``fortress.commands``, ``fortress.runtime`` or the dev tools.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from fortress import discovery

PACKAGE = Path(discovery.__file__).resolve().parent
KUBE_ADAPTER = "adapters/kube.py"
STATUS_WRITER = "core/loop.py"


def sources() -> dict[str, ast.Module]:
    return {
        str(path.relative_to(PACKAGE)): ast.parse(path.read_text(), str(path))
        for path in sorted(PACKAGE.rglob("*.py"))
    }


def _kubernetes_client_names(tree: ast.Module) -> set[str]:
    """Names bound to ``kubernetes.client`` or its API classes in a module."""
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module in ("kubernetes", "kubernetes.client"):
            for alias in node.names:
                if node.module == "kubernetes" and alias.name == "client":
                    names.add(alias.asname or "client")
                elif alias.name == "ApiClient" or alias.name.endswith("Api"):
                    names.add(alias.asname or alias.name)
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("kubernetes"):
                    names.add(alias.asname or alias.name.split(".")[0])
    return names


def client_constructions(relative: str, tree: ast.Module) -> list[str]:
    """Calls that build a Kubernetes API client (``client.ApiClient(...)``, ``CoreV1Api(...)``)."""
    bound = _kubernetes_client_names(tree)
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
        root = func
        while isinstance(root, ast.Attribute):
            root = root.value
        rooted = isinstance(root, ast.Name) and root.id in bound
        if (name == "ApiClient" or (name.endswith("Api") and name[:1].isupper())) and (
            rooted or name in bound
        ):
            found.append(f"{relative}:{node.lineno} builds {name}")
    return found


def status_writes(relative: str, tree: ast.Module) -> list[str]:
    """Places that write a resource's status."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            if name.endswith("_status") and name.startswith(("patch_", "replace_")):
                found.append(f"{relative}:{node.lineno} calls {name}")
            for keyword in node.keywords:
                if (
                    keyword.arg == "subresource"
                    and isinstance(keyword.value, ast.Constant)
                    and keyword.value.value == "status"
                ):
                    found.append(f"{relative}:{node.lineno} patches the status subresource")
        if isinstance(node, (ast.Assign, ast.AugAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for target in targets:
                if (
                    isinstance(target, ast.Subscript)
                    and isinstance(target.value, ast.Attribute)
                    and target.value.attr == "status"
                    and isinstance(target.value.value, ast.Name)
                    and target.value.value.id == "patch"
                ):
                    found.append(f"{relative}:{node.lineno} writes patch.status (Kopf)")
    return found


def test_only_the_shared_adapter_builds_a_kubernetes_client() -> None:
    offenders = [
        line
        for relative, tree in sources().items()
        if relative != KUBE_ADAPTER
        for line in client_constructions(relative, tree)
    ]
    assert offenders == []


def test_only_the_per_object_loop_writes_status() -> None:
    offenders = [
        line
        for relative, tree in sources().items()
        if relative != STATUS_WRITER
        for line in status_writes(relative, tree)
    ]
    assert offenders == []
    assert status_writes(STATUS_WRITER, sources()[STATUS_WRITER]), "the loop itself must be found writing"


@pytest.mark.parametrize("subsystem", discovery.subsystems())
def test_a_subsystem_imports_only_shared_code(subsystem: str) -> None:
    others = set(discovery.subsystems()) - {subsystem}
    forbidden = {f"fortress.{name}" for name in others} | {
        "fortress.commands",
        "fortress.runtime",
        "fortress_dev",
    }
    offenders = []
    for relative, tree in sources().items():
        if not relative.startswith(f"{subsystem}/"):
            continue
        for node in ast.walk(tree):
            modules: list[str] = []
            if isinstance(node, ast.ImportFrom) and node.module:
                modules = [node.module]
            elif isinstance(node, ast.Import):
                modules = [alias.name for alias in node.names]
            for module in modules:
                if any(module == f or module.startswith(f"{f}.") for f in forbidden):
                    offenders.append(f"{relative}:{node.lineno} imports {module}")
    assert offenders == []


def test_the_checks_catch_what_they_look_for() -> None:
    code = ast.parse(
        "from kubernetes import client\n"
        "api = client.ApiClient(cfg)\n"
        "core = client.CoreV1Api(api)\n"
        "custom.patch_namespaced_custom_object_status(g, v, n, p, name, body)\n"
        "kube.patch(R, ns, name, body, subresource='status')\n"
        "patch.status['phase'] = 'x'\n"
    )
    assert len(client_constructions("x.py", code)) == 2
    assert len(status_writes("x.py", code)) == 3
