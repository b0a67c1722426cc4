"""What a check may read besides its object: indexes over every object of the scan, built once."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from fortress.compliance.model import Obj
from fortress.compliance.pods import PodView, pod_view


def labels_match(selector: dict[str, Any] | None, labels: dict[str, str]) -> bool:
    """Kubernetes label selector semantics (matchLabels and matchExpressions); {} matches all."""
    if not isinstance(selector, dict):
        return False
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    for expr in selector.get("matchExpressions") or []:
        key, op, values = expr.get("key"), expr.get("operator"), expr.get("values") or []
        if op == "In" and labels.get(key) not in values:
            return False
        if op == "NotIn" and labels.get(key) in values:
            return False
        if op == "Exists" and key not in labels:
            return False
        if op == "DoesNotExist" and key in labels:
            return False
    return True


def _ns(obj: Obj) -> str:
    return str((obj.get("metadata") or {}).get("namespace") or "")


def _name(obj: Obj) -> str:
    return str((obj.get("metadata") or {}).get("name") or "")


@dataclass
class Context:
    """Indexes over the scanned objects (by namespace), and the clock the checks read."""

    now: datetime = field(default_factory=lambda: datetime.now(UTC))
    network_policies: dict[str, list[Obj]] = field(default_factory=lambda: defaultdict(list))
    pdbs: dict[str, list[Obj]] = field(default_factory=lambda: defaultdict(list))
    quotas: set[str] = field(default_factory=set)
    limit_ranges: set[str] = field(default_factory=set)
    pod_labels: dict[str, list[dict[str, str]]] = field(default_factory=lambda: defaultdict(list))
    dr_regions: dict[tuple[str, str], list[Obj]] = field(default_factory=lambda: defaultdict(list))
    dr_plans: set[tuple[str, str]] = field(default_factory=set)
    databases: list[Obj] = field(default_factory=list)
    _view_of: Any = None
    _view: PodView | None = None

    @classmethod
    def build(cls, objects: Iterable[Obj], now: datetime | None = None) -> Context:
        ctx = cls(now=now or datetime.now(UTC))
        for obj in objects:
            ctx.add(obj)
        return ctx

    def add(self, obj: Obj) -> None:
        kind, ns = obj.get("kind"), _ns(obj)
        if kind == "NetworkPolicy":
            self.network_policies[ns].append(obj)
        elif kind == "PodDisruptionBudget":
            self.pdbs[ns].append(obj)
        elif kind == "ResourceQuota":
            self.quotas.add(ns)
        elif kind == "LimitRange":
            self.limit_ranges.add(ns)
        elif kind == "DRRegion":
            plan = str((obj.get("spec") or {}).get("planRef") or "")
            self.dr_regions[(ns, plan)].append(obj)
        elif kind == "DRPlan":
            self.dr_plans.add((ns, _name(obj)))
        elif kind == "PostgresServer":
            self.databases.append(obj)
        else:
            view = pod_view(obj)
            self._view_of, self._view = obj, view
            if view is not None:
                self.pod_labels[ns].append(dict(view.metadata.get("labels") or {}))

    def pod(self, obj: Obj) -> PodView | None:
        """The object's pod view, computed once per object however many controls read it."""
        if self._view_of is not obj:
            self._view_of, self._view = obj, pod_view(obj)
        return self._view

    def selected(self, namespace: str, labels: dict[str, str], policy_type: str) -> bool:
        """Whether a NetworkPolicy of ``namespace`` selects pods with ``labels`` for Ingress or Egress."""
        for policy in self.network_policies.get(namespace, ()):
            spec = policy.get("spec") or {}
            types = spec.get("policyTypes") or (["Ingress", "Egress"] if "egress" in spec else ["Ingress"])
            if policy_type in types and labels_match(spec.get("podSelector") or {}, labels):
                return True
        return False
