"""``kubectl fortress``: the kubectl plugin (``kubectl-fortress`` on PATH).

Verbs:
  get [KIND [NAME]]   every Fortress resource with its phase and Ready condition, and the objects it
                      owns (ConfigMaps, Services, Deployments, Endpoints and Fortress resources, found
                      by ownerReferences) as a tree; ``-o json`` for scripts; ``--watch`` re-renders on
                      every change (polling every ``--interval`` s, until ``--timeout`` s or Ctrl-C;
                      with ``-o json`` one JSON document per line); ``--until-ready`` ends the watch
                      once every listed resource is Ready.
  rollout, dr, shards, scan, ledger, synth
                      the capability's own commands (the module ``fortress.commands.<name>``, also
                      ``fortress <name> ...``); in a version without that capability they exit 2,
                      saying "not available in this version".

Global options (before the verb): ``--kubeconfig FILE``, ``--context NAME``.

Exit codes:
  0    every listed resource is Ready (or none is listed); a delegated command succeeded
  1    some listed resource is not Ready (for --watch: at the end); a delegated command's "not done"
  2    usage error: bad arguments, unknown kind, or a verb not available in this version
  3    Kubernetes API error: no kubeconfig, server unreachable, forbidden
  130  interrupted
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib
import importlib.util
import json
import os
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from fortress.adapters.kube import (
    CONFIGMAPS,
    DEPLOYMENTS,
    ENDPOINTS,
    SERVICES,
    ApiException,
    BlockingKube,
    Resource,
    custom,
    load_cluster,
)
from fortress.api import KINDS, KindInfo
from fortress.core.conditions import READY, find
from fortress.core.time import parse

EXIT_OK, EXIT_NOT_READY, EXIT_USAGE, EXIT_API, EXIT_INTERRUPTED = 0, 1, 2, 3, 130

# Plugin verb -> candidate modules of fortress.commands (the first that exists serves the verb).
VERB_GROUPS: dict[str, tuple[str, ...]] = {
    "rollout": ("rollout", "rollouts"),
    "dr": ("dr", "disaster"),
    "shards": ("shards", "sharding", "shard"),
    "scan": ("scan", "compliance"),
    "ledger": ("ledger",),
    "synth": ("synth", "synthetic"),
}
VERB_HELP = {
    "rollout": "CanaryRollout: promote, abort, retry, pause, resume",
    "dr": "DRPlan: status, failover, switchover, drill",
    "shards": "ShardCluster: status, rebalance progress",
    "scan": "ComplianceScan: run, results",
    "ledger": "CreditLedger: balances, replay",
    "synth": "SyntheticDataset: progress, quality, regenerate; generate records locally",
}


# --------------------------------------------------------------------------- reading the cluster


@dataclass(frozen=True)
class OwnedKind:
    """A built-in kind whose objects a Fortress resource may own."""

    kind: str
    resource: Resource
    summary: Callable[[dict[str, Any]], str]


def _deployment_summary(obj: dict[str, Any]) -> str:
    status, spec = obj.get("status") or {}, obj.get("spec") or {}
    return f"{status.get('readyReplicas') or 0}/{spec.get('replicas') or 0} ready"


def _service_summary(obj: dict[str, Any]) -> str:
    spec = obj.get("spec") or {}
    kind = spec.get("type") or "ClusterIP"
    return kind if kind == "ExternalName" else f"{kind} {spec.get('clusterIP') or ''}".strip()


def _endpoints_summary(obj: dict[str, Any]) -> str:
    count = sum(len(subset.get("addresses") or []) for subset in obj.get("subsets") or [])
    return f"{count} address{'es' if count != 1 else ''}"


def _configmap_summary(obj: dict[str, Any]) -> str:
    count = len(obj.get("data") or {}) + len(obj.get("binaryData") or {})
    return f"{count} key{'s' if count != 1 else ''}"


OWNED_KINDS: tuple[OwnedKind, ...] = (
    OwnedKind("Deployment", DEPLOYMENTS, _deployment_summary),
    OwnedKind("Service", SERVICES, _service_summary),
    OwnedKind("Endpoints", ENDPOINTS, _endpoints_summary),
    OwnedKind("ConfigMap", CONFIGMAPS, _configmap_summary),
)


@dataclass
class Node:
    """One object of the tree: a Fortress resource or an object it owns."""

    kind: str
    namespace: str
    name: str
    uid: str
    owners: tuple[str, ...]
    created: dt.datetime | None
    fortress: bool
    row: dict[str, Any] = field(default_factory=dict)  # Fortress resources: phase, ready, ...
    summary: str = ""  # owned objects: a short status
    children: list[Node] = field(default_factory=list)


@dataclass
class Listing:
    """What ``get`` found: the Fortress resources (roots first) and warnings about partial reads."""

    roots: list[Node]
    resources: list[Node]
    warnings: list[str]


def _ready(obj: dict[str, Any]) -> dict[str, Any]:
    return dict(find((obj.get("status") or {}).get("conditions"), READY) or {})


def resource_row(info: KindInfo, obj: dict[str, Any]) -> dict[str, Any]:
    """The row ``-o json`` prints for one Fortress resource (without its owned objects)."""
    meta = obj.get("metadata") or {}
    status = obj.get("status") or {}
    ready = _ready(obj)
    return {
        "kind": info.kind,
        "namespace": meta.get("namespace", ""),
        "name": meta.get("name", ""),
        "uid": meta.get("uid", ""),
        "phase": status.get("phase"),
        "ready": ready.get("status", "Unknown"),
        "reason": ready.get("reason"),
        "message": ready.get("message") or status.get("message"),
        "observedGeneration": status.get("observedGeneration"),
        "generation": meta.get("generation"),
        "created": meta.get("creationTimestamp"),
    }


def select_kinds(kind: str | None) -> list[KindInfo]:
    """The kinds ``get KIND`` names (kind, plural, singular or short name; all when None)."""
    if kind is None or kind.lower() in ("all", "fortress"):
        return list(KINDS)
    wanted = kind.lower().split(".")[0]
    for info in KINDS:
        if wanted in (info.kind.lower(), info.plural, info.singular, *info.short_names):
            return [info]
    known = ", ".join(f"{info.kind} ({'/'.join(info.short_names)})" for info in KINDS)
    raise LookupError(f"unknown kind {kind!r}; Fortress kinds: {known}")


def collect(
    kube: BlockingKube,
    namespace: str | None,
    kinds: Sequence[KindInfo] = KINDS,
    name: str | None = None,
    owned: bool = True,
) -> Listing:
    """Read the Fortress resources (and, with ``owned``, the objects they own) and build the tree."""
    resources: list[Node] = []
    for info in kinds:
        items = kube.list(custom(info.group, info.version, info.plural), namespace or None)
        for obj in items:
            meta = obj.get("metadata") or {}
            if name and meta.get("name") != name:
                continue
            resources.append(
                Node(
                    kind=info.kind,
                    namespace=meta.get("namespace", ""),
                    name=meta.get("name", ""),
                    uid=meta.get("uid", ""),
                    owners=tuple(ref.get("uid", "") for ref in meta.get("ownerReferences") or []),
                    created=parse(meta.get("creationTimestamp")),
                    fortress=True,
                    row=resource_row(info, obj),
                )
            )
    warnings: list[str] = []
    children: list[Node] = []
    if owned and resources:
        children, warnings = _owned_objects(kube, namespace, {node.uid for node in resources})
    return build_tree(resources, children, warnings)


def _owned_objects(kube: BlockingKube, namespace: str | None, uids: set[str]) -> tuple[list[Node], list[str]]:
    found: list[Node] = []
    warnings: list[str] = []
    for kind in OWNED_KINDS:
        try:
            listing = kube.list(kind.resource, namespace or None)
        except ApiException as error:
            if error.status in (403, 404):
                warnings.append(f"cannot list {kind.kind} objects ({error.status} {error.reason}): not shown")
                continue
            raise
        for obj in listing:
            meta = obj.get("metadata") or {}
            owners = tuple(ref.get("uid", "") for ref in meta.get("ownerReferences") or [])
            if not set(owners) & uids:
                continue
            found.append(
                Node(
                    kind=kind.kind,
                    namespace=meta.get("namespace") or "",
                    name=meta.get("name") or "",
                    uid=meta.get("uid") or "",
                    owners=owners,
                    created=parse(meta.get("creationTimestamp")),
                    fortress=False,
                    summary=kind.summary(obj),
                )
            )
    return found, warnings


def build_tree(resources: list[Node], owned: Iterable[Node], warnings: list[str] | None = None) -> Listing:
    """Attach each object to its first listed owner; Fortress resources nobody listed owns are roots."""
    by_uid = {node.uid: node for node in resources if node.uid}
    roots: list[Node] = []
    for node in [*resources, *sorted(owned, key=lambda n: (n.kind, n.name))]:
        parent = next((by_uid[uid] for uid in node.owners if uid in by_uid and uid != node.uid), None)
        if parent is not None:
            parent.children.append(node)
        elif node.fortress:
            roots.append(node)
    roots.sort(key=lambda n: (n.namespace, n.kind, n.name))
    return Listing(roots, resources, list(warnings or []))


# --------------------------------------------------------------------------- rendering


def age(created: dt.datetime | None, now: dt.datetime) -> str:
    """kubectl's age (its HumanDuration): 90s, 5m10s, 47m, 3h5m, 20h, 3d4h, 30d, 2y10d."""
    if created is None:
        return "-"
    seconds = max(0, int((now - created).total_seconds()))
    minutes, hours, days = seconds // 60, seconds // 3600, seconds // 86400
    if seconds < 120:
        return f"{seconds}s"
    if minutes < 10:
        return f"{minutes}m{seconds % 60}s" if seconds % 60 else f"{minutes}m"
    if hours < 3:
        return f"{minutes}m"
    if hours < 8:
        return f"{hours}h{minutes % 60}m" if minutes % 60 else f"{hours}h"
    if hours < 48:
        return f"{hours}h"
    if hours < 192:
        return f"{days}d{hours % 24}h" if hours % 24 else f"{days}d"
    if days < 365 * 2:
        return f"{days}d"
    years, rest = days // 365, days % 365
    return f"{years}y{rest}d" if rest else f"{years}y"


def table_rows(listing: Listing, now: dt.datetime) -> list[list[str]]:
    """NAMESPACE, NAME (a tree), READY, PHASE, REASON, AGE per object."""
    rows: list[list[str]] = []

    def visit(node: Node, prefix: str, branch: str) -> None:
        label = f"{branch}{node.kind}/{node.name}"
        if node.fortress:
            row = node.row
            cells = [
                str(row.get("ready") or "-"),
                str(row.get("phase") or "-"),
                str(row.get("reason") or "-"),
            ]
        else:
            cells = [node.summary or "-", "", ""]
        rows.append([node.namespace or "-", label, *cells, age(node.created, now)])
        for index, child in enumerate(node.children):
            last = index == len(node.children) - 1
            visit(child, prefix + ("   " if last else "│  "), prefix + ("└─ " if last else "├─ "))

    for root in listing.roots:
        visit(root, "", "")
    return rows


def render_table(listing: Listing, now: dt.datetime | None = None) -> str:
    headers = ["NAMESPACE", "NAME", "READY", "PHASE", "REASON", "AGE"]
    cells = table_rows(listing, now or dt.datetime.now(dt.UTC))
    if not cells:
        return "No Fortress resources found."
    widths = [max([len(h)] + [len(row[i]) for row in cells]) for i, h in enumerate(headers)]
    lines = [
        "   ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in [headers, *cells]
    ]
    return "\n".join(lines)


def _owned_json(node: Node) -> dict[str, Any]:
    return {
        "kind": node.kind,
        "namespace": node.namespace,
        "name": node.name,
        "status": node.summary,
        "owned": [_owned_json(child) for child in node.children if not child.fortress],
    }


def render_json(listing: Listing, indent: int | None = 2) -> str:
    """``{"items": [row + owner + owned], "warnings": [...]}``; items are every listed resource."""
    owner_of = {child.uid: node.uid for node in listing.resources for child in node.children}
    items = []
    for node in sorted(listing.resources, key=lambda n: (n.namespace, n.kind, n.name)):
        item = dict(node.row)
        item["owner"] = owner_of.get(node.uid)
        item["owned"] = [_owned_json(child) for child in node.children if not child.fortress]
        items.append(item)
    return json.dumps({"items": items, "warnings": listing.warnings}, indent=indent)


def exit_code(listing: Listing) -> int:
    return EXIT_OK if all(node.row.get("ready") == "True" for node in listing.resources) else EXIT_NOT_READY


# --------------------------------------------------------------------------- the command line


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="kubectl fortress", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--kubeconfig", default=None, help="kubeconfig file (default: $KUBECONFIG, ~/.kube/config)"
    )
    parser.add_argument("--context", default=None, help="kubeconfig context")
    verbs = parser.add_subparsers(dest="verb", metavar="VERB")
    get = verbs.add_parser("get", help="list Fortress resources, their status and what they own")
    get.add_argument(
        "kind", nargs="?", help="one kind (CanaryRollout, cro, canaryrollouts, ...); all when absent"
    )
    get.add_argument("name", nargs="?", help="one resource name")
    get.add_argument("-n", "--namespace", default=None, help="one namespace (default: all)")
    get.add_argument("-A", "--all-namespaces", action="store_true", help="every namespace (the default)")
    get.add_argument("-o", "--output", choices=["table", "json"], default="table")
    get.add_argument("--no-owned", dest="owned", action="store_false", help="do not list owned objects")
    get.add_argument("-w", "--watch", action="store_true", help="re-render on every change")
    get.add_argument("--interval", type=_positive_float, default=2.0, help="seconds between polls (--watch)")
    get.add_argument("--timeout", type=_positive_float, default=None, help="stop watching after SECONDS")
    get.add_argument(
        "--until-ready", action="store_true", help="with --watch: stop once every listed resource is Ready"
    )
    for verb, text in VERB_HELP.items():
        verbs.add_parser(verb, help=text, add_help=False)
    return parser


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected seconds, got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive number of seconds, got {text!r}")
    return value


def _split_globals(argv: Sequence[str]) -> tuple[list[str], str | None, list[str]]:
    """(global options, the verb, the verb's arguments), without interpreting the verb's options."""
    globals_: list[str] = []
    index = 0
    while index < len(argv):
        word = argv[index]
        if word in ("--kubeconfig", "--context") and index + 1 < len(argv):
            globals_ += argv[index : index + 2]
            index += 2
        elif word.startswith(("--kubeconfig=", "--context=")):
            globals_.append(word)
            index += 1
        elif word.startswith("-"):
            return globals_ + list(argv[index:]), None, []
        else:
            return globals_, word, list(argv[index + 1 :])
    return globals_, None, []


def command_module(verb: str) -> Any | None:
    """The ``fortress.commands`` module serving a plugin verb, or None in a version without it."""
    for candidate in VERB_GROUPS[verb]:
        qualified = f"fortress.commands.{candidate}"
        if importlib.util.find_spec(qualified) is not None:
            return importlib.import_module(qualified)
    return None


def delegate(verb: str, rest: list[str], kubeconfig: str | None, context: str | None) -> int:
    """Run a capability's verb with its own parser (the same as ``fortress <verb> ...``)."""
    module = command_module(verb)
    if module is None:
        print(
            f"kubectl fortress {verb}: not available in this version (no fortress.commands."
            f"{VERB_GROUPS[verb][0]} module)",
            file=sys.stderr,
        )
        return EXIT_USAGE
    parser = argparse.ArgumentParser(prog="kubectl fortress")
    subparsers = parser.add_subparsers(dest="command", metavar="VERB")
    module.register(subparsers)
    choices: dict[str, argparse.ArgumentParser] = subparsers.choices
    name = verb if verb in choices else next(iter(choices))
    options = {option for action in choices[name]._actions for option in action.option_strings}
    extra: list[str] = []
    if kubeconfig:
        os.environ["KUBECONFIG"] = kubeconfig
        if "--kubeconfig" in options and "--kubeconfig" not in rest:
            extra += ["--kubeconfig", kubeconfig]
    if context and "--context" in options and "--context" not in rest:
        extra += ["--context", context]
    try:
        args = parser.parse_args([name, *extra, *rest])
    except SystemExit as stop:
        return EXIT_OK if stop.code in (0, None) else EXIT_USAGE
    func = getattr(args, "func", None)
    if func is None:
        choices[name].print_help(sys.stderr)
        return EXIT_USAGE
    try:
        return int(func(args))
    except ApiException as error:
        print(f"error: Kubernetes API answered {error.status}: {error.reason}", file=sys.stderr)
        return EXIT_API


def _get(args: argparse.Namespace, out: Callable[[str], None]) -> int:
    try:
        kinds = select_kinds(args.kind)
    except LookupError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_USAGE
    namespace = None if args.all_namespaces else args.namespace
    try:
        cluster = load_cluster(args.kubeconfig, args.context)
        with BlockingKube(cluster) as kube:

            def read() -> Listing:
                return collect(kube, namespace, kinds, args.name, owned=args.owned)

            if args.watch:
                return watch(
                    read, args.output, args.interval, args.timeout, out, until_ready=args.until_ready
                )
            listing = read()
    except ApiException as error:
        print(f"error: Kubernetes API answered {error.status}: {error.reason}", file=sys.stderr)
        return EXIT_API
    except Exception as error:  # configuration errors: no kubeconfig, unreachable server
        print(f"error: {error}", file=sys.stderr)
        return EXIT_API
    for warning in listing.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    out(render_json(listing) if args.output == "json" else render_table(listing))
    return exit_code(listing)


def watch(
    read: Callable[[], Listing],
    output: str,
    interval: float,
    timeout: float | None,
    out: Callable[[str], None],
    *,
    until_ready: bool = False,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> int:
    """Print the listing, then again whenever it changes, until ``timeout`` (or, with ``until_ready``,
    until something is listed and all of it is Ready); return the last state's exit code."""
    deadline = None if timeout is None else clock() + timeout
    shown: str | None = None
    code = EXIT_NOT_READY
    while True:
        listing = read()
        code = exit_code(listing)
        text = render_json(listing, indent=None) if output == "json" else render_table(listing)
        if text != shown:
            stamp = dt.datetime.now(dt.UTC).strftime("%H:%M:%S")
            out(text if output == "json" else (f"-- {stamp}\n{text}" if shown is not None else text))
            shown = text
        if until_ready and listing.resources and code == EXIT_OK:
            return code
        if deadline is not None and clock() + interval > deadline:
            return code
        sleep(interval)


def main(argv: Sequence[str] | None = None) -> int:
    arguments = list(sys.argv[1:] if argv is None else argv)
    globals_, verb, rest = _split_globals(arguments)
    parser = _parser()
    if verb in VERB_GROUPS:
        options = parser.parse_args(globals_)  # validates the global options only
        try:
            return delegate(verb, rest, options.kubeconfig, options.context)
        except KeyboardInterrupt:
            return EXIT_INTERRUPTED
    try:
        args = parser.parse_args(arguments)
    except SystemExit as stop:
        return EXIT_OK if stop.code in (0, None) else EXIT_USAGE
    if args.verb is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    try:
        return _get(args, lambda text: print(text, flush=True))
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
