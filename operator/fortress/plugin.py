"""``kubectl fortress``: the kubectl plugin (``kubectl-fortress`` on PATH).

Verbs: ``get`` lists every Fortress resource with its phase and Ready condition. Exit codes:
0 all listed resources Ready (or none), 1 some not Ready, 2 usage error, 3 API error.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from fortress.adapters.kube import load_cluster
from fortress.api import GROUP, KINDS, VERSION

EXIT_OK, EXIT_NOT_READY, EXIT_USAGE, EXIT_API = 0, 1, 2, 3


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="kubectl fortress", description=__doc__)
    parser.add_argument("--kubeconfig", default=None)
    parser.add_argument("--context", default=None)
    verbs = parser.add_subparsers(dest="verb", metavar="VERB")
    get = verbs.add_parser("get", help="list every Fortress resource with its status")
    get.add_argument("-n", "--namespace", default=None, help="one namespace (default: all)")
    get.add_argument("-o", "--output", choices=["table", "json"], default="table")
    return parser


def _ready(obj: dict[str, Any]) -> dict[str, Any]:
    for condition in (obj.get("status") or {}).get("conditions") or []:
        if condition.get("type") == "Ready":
            return condition  # type: ignore[no-any-return]
    return {}


def collect(api: client.CustomObjectsApi, namespace: str | None) -> list[dict[str, Any]]:
    """One row per Fortress resource."""
    rows = []
    for info in KINDS:
        if namespace:
            listing = api.list_namespaced_custom_object(GROUP, VERSION, namespace, info.plural)
        else:
            listing = api.list_cluster_custom_object(GROUP, VERSION, info.plural)
        items: list[dict[str, Any]] = dict(listing).get("items", [])  # type: ignore[call-overload]
        for obj in items:
            ready = _ready(obj)
            status = obj.get("status") or {}
            rows.append(
                {
                    "kind": info.kind,
                    "namespace": obj["metadata"].get("namespace", ""),
                    "name": obj["metadata"]["name"],
                    "phase": status.get("phase"),
                    "ready": ready.get("status", "Unknown"),
                    "reason": ready.get("reason"),
                    "message": status.get("message"),
                    "observedGeneration": status.get("observedGeneration"),
                    "generation": obj["metadata"].get("generation"),
                }
            )
    return rows


def render_table(rows: list[dict[str, Any]]) -> str:
    headers = ("NAMESPACE", "KIND", "NAME", "PHASE", "READY", "REASON")
    keys = ("namespace", "kind", "name", "phase", "ready", "reason")
    cells = [[str(row.get(k) or "-") for k in keys] for row in rows]
    widths = [max([len(h)] + [len(c[i]) for c in cells]) for i, h in enumerate(headers)]
    lines = ["   ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip()]
    lines += ["   ".join(c.ljust(w) for c, w in zip(cell, widths, strict=True)).rstrip() for cell in cells]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.verb is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    try:
        cluster = load_cluster(args.kubeconfig, args.context)
        with client.ApiClient(cluster.configuration) as api:
            rows = collect(client.CustomObjectsApi(api), args.namespace)
    except ApiException as error:
        print(f"error: Kubernetes API answered {error.status}: {error.reason}", file=sys.stderr)
        return EXIT_API
    except Exception as error:  # configuration errors: no kubeconfig, unreachable server
        print(f"error: {error}", file=sys.stderr)
        return EXIT_API
    if args.output == "json":
        print(json.dumps({"items": rows}, indent=2))
    else:
        print(render_table(rows) if rows else "No Fortress resources found.")
    return EXIT_OK if all(r["ready"] == "True" for r in rows) else EXIT_NOT_READY


if __name__ == "__main__":
    sys.exit(main())
