"""The Kubernetes permissions Fortress needs: declared per subsystem, checked against the code.

The chart's RBAC is generated from these declarations (``python -m fortress.assets`` writes
``charts/fortress/files/rbac.yaml``), and a test scans the source (:func:`code_uses`) so that a
Kubernetes call the declarations do not cover fails the build, as does a grant nothing uses.

A subsystem adds its permissions in ``fortress/<name>/rbac.py``::

    from fortress.rbac import Rule

    RULES = [Rule("apps", ("deployments",), ("get", "list", "watch", "create", "patch"), "blue/green")]

``component`` says which ServiceAccount needs the rule: ``operator`` (``fortress run``), ``api``
(``fortress api``), ``healthcheck`` (the chart's ``helm test`` Pod, ``fortress healthcheck``) or
``drill`` (the chart's DR drill CronJob, ``fortress dr drill``); the last two run CLI commands, which
the scanner does not attribute, so their rules are ``indirect``. ``cluster=True`` marks a
cluster-scoped resource (a ClusterRole even in the chart's namespaced mode);
``watching_namespaces=True`` a rule needed only when the operator watches a list of namespaces;
``indirect=True`` a grant no call site shows (a library's, such as Kopf's, or a CLI command's).
"""

from __future__ import annotations

import ast
import functools
import itertools
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fortress import discovery
from fortress.api import GROUP, KINDS

COMPONENTS = ("operator", "api", "healthcheck", "drill")
VERBS = ("get", "list", "watch", "create", "update", "patch", "delete", "deletecollection")
FORTRESS_PLURALS = tuple(info.plural for info in KINDS)


@dataclass(frozen=True)
class Rule:
    """One grant: verbs on resources of an API group, and why Fortress needs them."""

    group: str  # "" is the core API
    resources: tuple[str, ...]
    verbs: tuple[str, ...]
    why: str
    component: str = "operator"
    cluster: bool = False
    watching_namespaces: bool = False
    indirect: bool = False

    def __post_init__(self) -> None:
        if self.component not in COMPONENTS:
            raise ValueError(f"Rule.component must be one of {COMPONENTS}, got {self.component!r}")
        for value in (self.group, *self.resources, *self.verbs):
            if "*" in value:
                raise ValueError(f"Rule {self.why!r}: wildcards are not allowed ({value!r})")
        unknown = [verb for verb in self.verbs if verb not in VERBS]
        if unknown or not self.verbs or not self.resources:
            raise ValueError(f"Rule {self.why!r}: verbs must be among {VERBS}, got {self.verbs!r}")

    def grants(self, component: str, group: str, resource: str, verb: str) -> bool:
        return (
            self.component == component
            and self.group == group
            and resource in self.resources
            and verb in self.verbs
        )


FOUNDATION: tuple[Rule, ...] = (
    Rule(
        GROUP,
        FORTRESS_PLURALS,
        ("get", "list", "watch", "patch"),
        "Kopf watches every kind (and adds its finalizer for the per-object daemons)",
    ),
    Rule(
        GROUP,
        tuple(f"{plural}/status" for plural in FORTRESS_PLURALS),
        ("patch",),
        "the per-object loop writes status through the status subresource (core.loop)",
        indirect=True,
    ),
    Rule("", ("events",), ("create",), "the per-object loops post Events (adapters.kube.Kube.post_event)"),
    Rule("", ("secrets",), ("get",), "connection strings are read by secretKeyRef"),
    Rule(
        "apiextensions.k8s.io",
        ("customresourcedefinitions",),
        ("list", "watch"),
        "Kopf scans the CRDs to find the served resources",
        cluster=True,
        indirect=True,
    ),
    Rule(
        "",
        ("namespaces",),
        ("list", "watch"),
        "Kopf observes the watched namespaces (only when FORTRESS_NAMESPACES is set)",
        cluster=True,
        watching_namespaces=True,
        indirect=True,
    ),
    Rule(
        "apiextensions.k8s.io",
        ("customresourcedefinitions",),
        ("get",),
        "`fortress healthcheck --crds` (helm test) reads each Fortress CRD's Established condition",
        component="healthcheck",
        cluster=True,
        indirect=True,
    ),
)


def all_rules() -> list[Rule]:
    """The foundation's rules plus every subsystem's ``rbac.RULES``."""
    rules = list(FOUNDATION)
    for module in discovery.modules("rbac"):
        declared = getattr(module, "RULES", None)
        if declared is None:
            raise AttributeError(f"{module.__name__} has no RULES list")
        rules.extend(declared)
    return rules


def granted(rules: Iterable[Rule], component: str, group: str, resource: str, verb: str) -> bool:
    return any(rule.grants(component, group, resource, verb) for rule in rules)


def chart_document(rules: Iterable[Rule]) -> dict[str, Any]:
    """The rules as the chart reads them: per component, namespaced and cluster-scoped lists.

    Resources sharing a group and verb set are merged, and everything is sorted, so the output is
    stable whatever order subsystems are discovered in.
    """
    merged: dict[tuple[str, str, bool, bool, tuple[str, ...]], set[str]] = {}
    for rule in rules:
        key = (rule.component, rule.group, rule.cluster, rule.watching_namespaces, tuple(sorted(rule.verbs)))
        merged.setdefault(key, set()).update(rule.resources)
    # A resource granted more verbs elsewhere keeps both entries: RBAC rules are additive.
    document: dict[str, Any] = {c: {"namespaced": [], "cluster": []} for c in COMPONENTS}
    for (component, group, cluster, watching, verbs), resources in sorted(merged.items()):
        entry: dict[str, Any] = {
            "apiGroups": [group],
            "resources": sorted(resources),
            "verbs": [verb for verb in VERBS if verb in verbs],
        }
        if watching:
            entry["whenWatchingNamespaces"] = True
        document[component]["cluster" if cluster else "namespaced"].append(entry)
    return document


# --------------------------------------------------------------------------- what the code calls


@dataclass(frozen=True)
class Endpoint:
    """What one typed-client method does: a verb on a resource of a group."""

    group: str | None  # None: given by the call's arguments (CustomObjectsApi)
    resource: str | None
    verb: str
    namespaced: bool
    subresource: str = ""


@dataclass(frozen=True)
class Use:
    """A Kubernetes access found in the source; any candidate grant satisfies it."""

    component: str
    candidates: tuple[tuple[str, str], ...]  # (group, resource) alternatives
    verb: str
    where: str

    def describe(self) -> str:
        names = " or ".join(f"{resource}.{group or 'core'}" for group, resource in self.candidates)
        return f"{self.where}: {self.verb} {names} ({self.component})"


_DEF = re.compile(r"^    def (\w+)\(", re.MULTILINE)
_METHOD = re.compile(r"method='(\w+)',\s*resource_path='([^']+)'")  # kubernetes >= 31
_CALL_API = re.compile(r"call_api\(\s*'([^']+)',\s*'(\w+)'")  # older generators
_HTTP_VERBS = {"POST": "create", "PUT": "update", "PATCH": "patch"}


def _endpoint(method: str, path: str) -> Endpoint | None:
    parts = path.strip("/").split("/")
    if parts[0] == "api" and len(parts) > 2:
        group: str | None = ""
        rest = parts[2:]
    elif parts[0] == "apis" and len(parts) > 3:
        group = None if parts[1] == "{group}" else parts[1]
        rest = parts[3:]
    else:
        return None  # discovery documents, /version, /logs
    watch = rest[0] == "watch"
    if watch:
        rest = rest[1:]
    namespaced = len(rest) >= 3 and rest[0] == "namespaces" and rest[1] == "{namespace}"
    if namespaced:
        rest = rest[2:]
    resource = None if rest[0] == "{plural}" else rest[0]
    named = len(rest) >= 2
    subresource = rest[2] if len(rest) >= 3 else ""
    if watch:
        verb = "watch"
    elif method == "GET":
        verb = "get" if named else "list"
    elif method == "DELETE":
        verb = "delete" if named else "deletecollection"
    elif method in _HTTP_VERBS:
        verb = _HTTP_VERBS[method]
    else:
        return None
    return Endpoint(group, resource, verb, namespaced, subresource)


@functools.lru_cache(maxsize=1)
def client_methods() -> dict[str, tuple[Endpoint, ...]]:
    """Every typed-client method name of the ``kubernetes`` package and what it accesses."""
    import kubernetes.client.api as api_package

    found: dict[str, set[Endpoint]] = {}
    for source in sorted(Path(api_package.__path__[0]).glob("*_api.py")):
        text = source.read_text()
        starts = list(_DEF.finditer(text))
        for index, start in enumerate(starts):
            end = starts[index + 1].start() if index + 1 < len(starts) else len(text)
            body = text[start.end() : end]
            name = start.group(1)
            if (match := _METHOD.search(body)) and name.startswith("_") and name.endswith("_serialize"):
                name, (method, path) = name[1 : -len("_serialize")], match.groups()
            elif (old := _CALL_API.search(body)) and name.endswith("_with_http_info"):
                name, (path, method) = name[: -len("_with_http_info")], old.groups()
            else:
                continue
            endpoint = _endpoint(method, path)
            if endpoint is not None:
                found.setdefault(name, set()).add(endpoint)
    return {name: tuple(sorted(endpoints, key=repr)) for name, endpoints in found.items()}


_KOPF_RESOURCE_HANDLERS = {
    "create",
    "update",
    "delete",
    "resume",
    "field",
    "event",
    "daemon",
    "timer",
    "index",
}
_KOPF_READ_ONLY = {"event", "index"}
_KOPF_EVENTS = {"event", "info", "warn", "exception"}
_IMPORTED_CONSTANTS = {"GROUP": GROUP}


def _constants(tree: ast.Module) -> dict[str, str]:
    values = dict(_IMPORTED_CONSTANTS)
    for node in tree.body:
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant):
            value = node.value.value
            for target in node.targets:
                if isinstance(target, ast.Name) and isinstance(value, str):
                    values[target.id] = value
    return values


def _literal(node: ast.AST | None, constants: dict[str, str]) -> str | None:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.Name):
        return constants.get(node.id)
    if isinstance(node, ast.Attribute) and node.attr == "group":
        return GROUP  # KindInfo.group (info.group, INFO.group)
    return None


def _dotted(node: ast.AST) -> str:
    if isinstance(node, ast.Attribute):
        return f"{_dotted(node.value)}.{node.attr}"
    if isinstance(node, ast.Name):
        return node.id
    return "?"


def _candidates(group: str | None, resource: str | None) -> tuple[tuple[str, str], ...]:
    """Resolve a possibly dynamic (group, plural): unresolved ones are taken as Fortress kinds."""
    if resource is None:
        return tuple((GROUP, plural) for plural in FORTRESS_PLURALS)
    if group is None:
        group = GROUP if resource in FORTRESS_PLURALS else "?"
    return ((group, resource),)


def _kopf_resource(call: ast.Call, constants: dict[str, str]) -> tuple[str | None, str | None]:
    positional = [_literal(arg, constants) for arg in call.args]
    keywords = {kw.arg: _literal(kw.value, constants) for kw in call.keywords if kw.arg}
    group, plural = keywords.get("group"), keywords.get("plural") or keywords.get("kind")
    if len(positional) == 3:
        group, plural = positional[0], positional[2]
    elif len(positional) == 2 and positional[0] is not None:
        first = positional[0]
        group = "" if first == "v1" else first.split("/")[0]
        plural = positional[1]
    elif len(positional) == 1 and positional[0] is not None:
        plural, _, dotted_group = positional[0].partition(".")
        group = dotted_group or None
    if plural is not None and group is None:
        group = _builtin_group(plural)
    return group, plural


def _builtin_group(plural: str) -> str | None:
    for endpoints in client_methods().values():
        for endpoint in endpoints:
            if endpoint.resource == plural and endpoint.group is not None:
                return endpoint.group
    return None


def _component(relative: Path) -> str | None:
    """Which ServiceAccount runs the code in this file (None: runs as the user, or not at all)."""
    top = relative.parts[0]
    if relative.name == "plugin.py" and len(relative.parts) == 1:
        return None
    if top == "commands":
        return None  # the CLI runs with the user's credentials
    if top == "http" or (len(relative.parts) == 2 and relative.name == "api.py" and top != "api"):
        return "api"
    return "operator"


# Generic clients that take a resource descriptor, e.g. ``io.patch(DEPLOYMENTS, ns, name, body)``
# with ``DEPLOYMENTS = Resource("apps", "v1", "deployments")``: method name -> verb.
DESCRIPTOR_VERBS = {
    "get": "get",
    "list": "list",
    "pages": "list",
    "watch": "watch",
    "create": "create",
    "patch": "patch",
    "replace": "update",
    "update": "update",
    "delete": "delete",
}
Descriptors = dict[str, tuple[str | None, str | None]]


def resource_descriptors(tree: ast.Module) -> Descriptors:
    """Module-level ``NAME = <...Resource...>(group, version, plural)`` constants, annotated or not."""
    constants = _constants(tree)
    found: Descriptors = {}
    for node in tree.body:
        if not (isinstance(node, (ast.Assign, ast.AnnAssign)) and isinstance(node.value, ast.Call)):
            continue
        call = node.value
        if "Resource" not in _dotted(call.func).split(".")[-1] or len(call.args) < 3:
            continue
        group, plural = _literal(call.args[0], constants), _literal(call.args[2], constants)
        for target in node.targets if isinstance(node, ast.Assign) else [node.target]:
            if isinstance(target, ast.Name):
                found[target.id] = (group, plural)
    return found


def scan_source(text: str, component: str, where: str, descriptors: Descriptors | None = None) -> list[Use]:
    """The Kubernetes accesses in one module's source (``descriptors``: resource constants in scope)."""
    tree = ast.parse(text)
    constants = _constants(tree)
    descriptors = {**(descriptors or {}), **resource_descriptors(tree)}
    methods = client_methods()
    uses: list[Use] = []

    def add(candidates: tuple[tuple[str, str], ...], verb: str, node: ast.AST) -> None:
        uses.append(Use(component, candidates, verb, f"{where}:{getattr(node, 'lineno', 0)}"))

    def endpoint_uses(node: ast.AST, endpoints: tuple[Endpoint, ...], args: ast.Call | None) -> None:
        alternatives: dict[str, list[tuple[str, str]]] = {}
        for endpoint in endpoints:
            group, resource = endpoint.group, endpoint.resource
            if args is not None and (group is None or resource is None):
                plural_index = 3 if endpoint.namespaced else 2
                keywords = {kw.arg: kw.value for kw in args.keywords if kw.arg}
                group_node = args.args[0] if args.args else keywords.get("group")
                plural_node = args.args[plural_index] if len(args.args) > plural_index else None
                group = _literal(group_node, constants) if group is None else group
                resource = _literal(plural_node or keywords.get("plural"), constants)
            candidates = _candidates(group, resource)
            suffix = f"/{endpoint.subresource}" if endpoint.subresource else ""
            for group_name, resource_name in candidates:
                alternatives.setdefault(endpoint.verb, []).append((group_name, resource_name + suffix))
        for verb, found in alternatives.items():
            add(tuple(dict.fromkeys(found)), verb, node)

    called: set[int] = set()
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        name = _dotted(node.func)
        if isinstance(node.func, ast.Attribute) and node.func.attr in methods:
            called.add(id(node.func))
            endpoint_uses(node, methods[node.func.attr], node)
            if any(kw.arg == "watch" for kw in node.keywords):
                endpoint_uses(node, _watching(methods[node.func.attr]), node)
        parts = name.split(".")
        if parts[0] == "kopf":
            handler = parts[-1]
            if handler in _KOPF_RESOURCE_HANDLERS and (len(parts) == 2 or parts[1] == "on"):
                group, plural = _kopf_resource(node, constants)
                candidates = _candidates(group, plural)
                verbs = ["list", "watch"] + ([] if handler in _KOPF_READ_ONLY else ["patch"])
                for verb in verbs:
                    add(candidates, verb, node)
        if name.endswith(".stream") and node.args and isinstance(node.args[0], ast.Attribute):
            target = node.args[0]
            if target.attr in methods:
                called.add(id(target))
                endpoint_uses(node, methods[target.attr], node)
                endpoint_uses(node, _watching(methods[target.attr]), node)
    for node in ast.walk(tree):  # io.patch(DEPLOYMENTS, ...), to_thread(io.create, SERVICES, ...)
        if isinstance(node, ast.Call):
            _descriptor_uses(node, descriptors, add)
    for node in ast.walk(tree):  # kopf.info(...), (kopf.warn if ... else kopf.info)(...)
        if isinstance(node, ast.Attribute) and _dotted(node) in {f"kopf.{n}" for n in _KOPF_EVENTS}:
            add((("", "events"),), "create", node)
    for node in ast.walk(tree):  # methods passed by reference, e.g. asyncio.to_thread(api.read_x, ...)
        if isinstance(node, ast.Attribute) and node.attr in methods and id(node) not in called:
            parent_call = _call_taking(tree, node)
            endpoint_uses(node, methods[node.attr], parent_call)
    return uses


def _descriptor_uses(
    call: ast.Call, descriptors: Descriptors, add: Callable[[tuple[tuple[str, str], ...], str, ast.AST], None]
) -> None:
    pairs: list[tuple[ast.AST, ast.AST]] = []
    if isinstance(call.func, ast.Attribute) and call.args:
        pairs.append((call.func, call.args[0]))
    pairs += list(itertools.pairwise(call.args))  # a bound method passed on with its resource
    subresource = next(
        (
            kw.value.value
            for kw in call.keywords
            if kw.arg == "subresource" and isinstance(kw.value, ast.Constant)
        ),
        None,
    )
    for method, resource in pairs:
        if not (isinstance(method, ast.Attribute) and method.attr in DESCRIPTOR_VERBS):
            continue
        name = resource.attr if isinstance(resource, ast.Attribute) else getattr(resource, "id", None)
        if name not in descriptors:
            continue
        group, plural = descriptors[name]
        suffix = f"/{subresource}" if isinstance(subresource, str) else ""
        candidates = tuple((g, r + suffix) for g, r in _candidates(group, plural))
        add(candidates, DESCRIPTOR_VERBS[method.attr], call)


def _watching(endpoints: tuple[Endpoint, ...]) -> tuple[Endpoint, ...]:
    """A list call made with ``watch=True`` (or through ``Watch().stream``) also watches."""
    return tuple(Endpoint(e.group, e.resource, "watch", e.namespaced) for e in endpoints if e.verb == "list")


def _call_taking(tree: ast.Module, target: ast.Attribute) -> ast.Call | None:
    """For ``to_thread(api.get_namespaced_custom_object, group, ...)``: a view of the call's arguments."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and node.args and node.args[0] is target:
            return ast.Call(func=target, args=node.args[1:], keywords=node.keywords)
    return None


def code_uses(package_dir: Path | None = None) -> list[Use]:
    """Every Kubernetes access in the package, attributed to the component that runs it."""
    root = package_dir or Path(__file__).resolve().parent
    sources = {path: path.read_text() for path in sorted(root.rglob("*.py"))}
    descriptors: Descriptors = {}
    for text in sources.values():  # resource constants are imported across modules
        descriptors.update(resource_descriptors(ast.parse(text)))
    uses: list[Use] = []
    for path, text in sources.items():
        relative = path.relative_to(root)
        component = _component(relative)
        if component is None:
            continue
        uses.extend(scan_source(text, component, f"fortress/{relative}", descriptors))
    return uses


@dataclass
class Audit:
    """Calls no rule grants, and direct grants no call uses."""

    missing: list[Use] = field(default_factory=list)
    unused: list[tuple[Rule, str, str]] = field(default_factory=list)

    def __iter__(self) -> Iterator[str]:
        for use in self.missing:
            yield f"not granted: {use.describe()}"
        for rule, resource, verb in self.unused:
            yield f"granted but unused: {verb} {resource}.{rule.group or 'core'} ({rule.why})"


def audit(rules: Iterable[Rule], uses: Iterable[Use]) -> Audit:
    rules, uses = list(rules), list(uses)
    result = Audit()
    seen: set[tuple[str, str, str, str]] = set()
    for use in uses:
        ok = False
        for group, resource in use.candidates:
            if granted(rules, use.component, group, resource, use.verb):
                seen.add((use.component, group, resource, use.verb))
                ok = True
        if not ok:
            result.missing.append(use)
    for rule in rules:
        if rule.indirect:
            continue
        for resource in rule.resources:
            for verb in rule.verbs:
                if (rule.component, rule.group, resource, verb) not in seen:
                    result.unused.append((rule, resource, verb))
    return result
