"""``fortress shards status``: per-shard health and key counts, and the rebalance progress of ShardClusters.

Reads the ShardClusters' status through the Kubernetes API (the kubectl plugin calls ``collect`` and
``render``). Exit codes: 0 every listed cluster Ready, 1 some are not (or none found), 2 usage, 3 API error.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping, Sequence
from typing import Any

from fortress.adapters.kube import ApiException, BlockingKube, custom, load_cluster
from fortress.api.shardcluster import INFO

EXIT_OK, EXIT_NOT_READY, EXIT_USAGE, EXIT_API = 0, 1, 2, 3
BAR_WIDTH = 30


def summary(obj: Mapping[str, Any]) -> dict[str, Any]:
    """One ShardCluster's status as a plain dict (what ``-o json`` prints)."""
    status = obj.get("status") or {}
    ready: dict[str, Any] = next((c for c in status.get("conditions") or [] if c.get("type") == "Ready"), {})
    rebalance = dict(status.get("rebalance") or {"phase": "Idle"})
    total, moved = int(rebalance.get("total") or 0), int(rebalance.get("moved") or 0)
    rebalance["percent"] = round(100.0 * moved / total, 1) if total else (100.0 if moved == 0 else 0.0)
    meta = obj.get("metadata") or {}
    return {
        "namespace": meta.get("namespace", ""),
        "name": meta.get("name", ""),
        "ready": ready.get("status", "Unknown"),
        "reason": ready.get("reason", ""),
        "phase": status.get("phase") or "-",
        "message": status.get("message") or "",
        "ring": status.get("ringFingerprint"),
        "ringConfigMap": status.get("ringConfigMap"),
        "coordinator": status.get("coordinator"),
        "shardCount": status.get("shardCount"),
        "totalKeys": status.get("totalKeys"),
        "imbalance": status.get("imbalance"),
        "inDoubtTransactions": status.get("inDoubtTransactions"),
        "shards": list(status.get("shards") or []),
        "rebalance": rebalance,
    }


SHARD_CLUSTERS = custom(INFO.group, INFO.version, INFO.plural, INFO.kind)


def collect(kube: BlockingKube, namespace: str | None, name: str | None) -> list[dict[str, Any]]:
    """Summaries of one ShardCluster, or of all of them (in a namespace or cluster-wide)."""
    if name:
        if not namespace:
            raise ValueError("a ShardCluster name needs --namespace")
        obj = kube.get(SHARD_CLUSTERS, namespace, name)
        if obj is None:
            raise LookupError(f"ShardCluster {namespace}/{name} not found")
        return [summary(obj)]
    items = kube.list(SHARD_CLUSTERS, namespace)
    return [
        summary(obj)
        for obj in sorted(items, key=lambda o: (o["metadata"]["namespace"], o["metadata"]["name"]))
    ]


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip()]
    lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in rows]
    return lines


def _text(value: Any) -> str:
    return "-" if value is None else str(value)


def render(cluster: Mapping[str, Any]) -> str:
    """A readable report of one cluster: summary, rebalance progress bar and a per-shard table."""
    reb = cluster["rebalance"]
    lines = [
        f"ShardCluster {cluster['namespace']}/{cluster['name']}: {cluster['phase']} "
        f"(Ready={cluster['ready']} {cluster['reason']})",
        f"  ring {_text(cluster['ring'])} in ConfigMap {_text(cluster['ringConfigMap'])}, "
        f"{_text(cluster['shardCount'])} shards, {_text(cluster['totalKeys'])} keys, "
        f"imbalance {_text(cluster['imbalance'])}, coordinator {_text(cluster['coordinator'])}, "
        f"in-doubt transactions {_text(cluster['inDoubtTransactions'])}",
    ]
    total, moved = int(reb.get("total") or 0), int(reb.get("moved") or 0)
    filled = (
        int(BAR_WIDTH * moved / total) if total else (BAR_WIDTH if reb.get("phase") == "Completed" else 0)
    )
    bar = "#" * filled + "." * (BAR_WIDTH - filled)
    line = f"  rebalance {reb.get('phase', 'Idle')}: [{bar}] {moved}/{total} ({reb['percent']}%)"
    if reb.get("rate") is not None:
        line += f", {reb['rate']} keys/s"
    if reb.get("etaSeconds") is not None:
        line += f", ETA {reb['etaSeconds']}s"
    if reb.get("fromRing"):
        line += f", ring {reb['fromRing']} -> {reb.get('toRing')}"
    lines.append(line)
    if reb.get("checkpoint"):
        lines.append(f"  checkpoint {reb['checkpoint']}")
    rows = [
        [
            str(s.get("id")),
            "yes" if s.get("healthy") else "NO",
            _text(s.get("circuit")),
            _text(s.get("keys")),
            {True: "yes", False: "NO"}.get(s.get("preparedTransactionsEnabled"), "-"),
            _text(s.get("lastError"))[:80] if s.get("lastError") else "",
        ]
        for s in cluster["shards"]
    ]
    lines += [
        "  " + line for line in _table(["SHARD", "HEALTHY", "CIRCUIT", "KEYS", "2PC", "LAST ERROR"], rows)
    ]
    if cluster["message"]:
        lines.append(f"  {cluster['message']}")
    return "\n".join(lines)


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser("shards", help="ShardCluster status and rebalance progress")
    verbs = parser.add_subparsers(dest="shards_verb", metavar="VERB", required=True)
    status = verbs.add_parser("status", help="per-shard health, key counts and rebalance progress")
    status.add_argument("name", nargs="?", help="one ShardCluster (default: all)")
    status.add_argument("-n", "--namespace", default=None, help="namespace (default: all)")
    status.add_argument("--kubeconfig", default=None)
    status.add_argument("--context", default=None)
    status.add_argument("-o", "--output", choices=["table", "json"], default="table")
    status.set_defaults(func=_status)


def _status(args: argparse.Namespace) -> int:
    if args.name and not args.namespace:
        print("error: a ShardCluster name needs -n/--namespace", file=sys.stderr)
        return EXIT_USAGE
    try:
        with BlockingKube(load_cluster(args.kubeconfig, args.context)) as kube:
            found = collect(kube, args.namespace, args.name)
    except ApiException as error:
        print(f"error: Kubernetes API: {error.status} {error.reason}", file=sys.stderr)
        return EXIT_API
    except Exception as error:  # kubeconfig problems and the like
        print(f"error: {error}", file=sys.stderr)
        return EXIT_API
    if args.output == "json":
        print(json.dumps(found, indent=2))
    else:
        print("\n\n".join(render(c) for c in found) if found else "no ShardClusters found")
    return EXIT_OK if found and all(c["ready"] == "True" for c in found) else EXIT_NOT_READY
