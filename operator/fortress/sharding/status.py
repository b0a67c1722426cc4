"""What a ShardCluster's status says, from what one step observed and decided (pure).

One function per concern: the shard rows and totals (:func:`shard_fields`), the PreparedTransactions,
DistinctDatabases and Rebalanced conditions, and Ready (:func:`readiness`); :func:`summarize` puts them
into one :class:`~fortress.core.outcome.Outcome`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from fortress.api.shardcluster import ShardClusterSpec
from fortress.core.outcome import ConditionUpdate, EventNote, Outcome
from fortress.sharding.rebalance import Phase, Progress, RingAction, RingDecision
from fortress.sharding.ring import Ring, RoutingState, imbalance
from fortress.sharding.settings import desired_ring, ring_configmap_name

PREPARED_CONDITION: Final = "PreparedTransactions"
REBALANCED_CONDITION: Final = "Rebalanced"
DATABASES_CONDITION: Final = "DistinctDatabases"
MISSING_SCHEMA: Final = "tables shard_data/distributed_tx_log missing"
FIX_SCHEMA: Final = "set spec.migrate: true or run `fortress migrate up` against the shard"
LAST_ERROR_LIMIT: Final = 1000
REBALANCE_KEYS: Final = ("moved", "total", "fromRing", "toRing", "rate", "etaSeconds", "checkpoint")

Finding = tuple[ConditionUpdate | None, EventNote | None]


@dataclass(frozen=True)
class ShardProbe:
    """What one probe of a shard found."""

    id: str
    healthy: bool
    circuit: str = "Closed"
    keys: int | None = None
    max_prepared_transactions: int | None = None
    identity: str | None = None
    schema_ok: bool | None = None
    error: str | None = None

    def wire(self) -> dict[str, Any]:
        data: dict[str, Any] = {"id": self.id, "healthy": self.healthy, "circuit": self.circuit}
        if self.keys is not None:
            data["keys"] = self.keys
        if self.max_prepared_transactions is not None:
            data["preparedTransactionsEnabled"] = self.max_prepared_transactions > 0
        if self.error:
            data["lastError"] = self.error[:LAST_ERROR_LIMIT]
        return data


@dataclass(frozen=True)
class Observed:
    """Everything a step observed and decided, for the summary."""

    spec: ShardClusterSpec
    name: str
    probes: Mapping[str, ShardProbe]
    endpoint_errors: Mapping[str, str]
    published: RoutingState | None
    decision: RingDecision | None
    progress: Progress | None
    in_doubt: int | None
    ring_error: str | None = None
    rebalance_error: str | None = None
    held: str | None = None  # why a ring change waits (e.g. a Secret is missing)

    @property
    def in_use(self) -> set[str]:
        """The shards of the published ring (of the spec's ring before one is published)."""
        if self.published is not None:
            return set(self.published.shard_ids())
        return {s.id for s in self.spec.shards if not s.draining}

    @property
    def moving(self) -> bool:
        return bool(self.published and self.published.moving)


def rebalance_field(progress: Progress | None) -> dict[str, Any]:
    """``status.rebalance``: the progress, each field it lacks removed (a merge patch), or Idle."""
    wire = progress.wire() if progress is not None else {"phase": Phase.IDLE.value}
    return {**dict.fromkeys(REBALANCE_KEYS), **wire}


def weighted_imbalance(observed: Observed) -> float | None:
    """Max/mean keys per unit of weight over the current ring; shards sharing a database count once."""
    published, spec = observed.published, observed.spec
    if published is not None:
        weights = {s.id: s.weight for s in published.current.spec.shards}
    else:
        weights = {s.id: s.weight for s in spec.shards if not s.draining}
    grouped: dict[str, int] = {}
    group_weights: dict[str, int] = {}
    for probe in observed.probes.values():
        if probe.keys is not None and probe.id in weights:
            group = probe.identity or probe.id
            grouped[group] = probe.keys
            group_weights[group] = group_weights.get(group, 0) + weights[probe.id]
    return imbalance(grouped, group_weights)


def shard_fields(observed: Observed) -> dict[str, Any]:
    """The status fields: shard rows, totals, the ring, the rebalance, in-doubt transactions."""
    spec, probes, published = observed.spec, observed.probes, observed.published
    rows = [probes[s.id].wire() if s.id in probes else {"id": s.id, "healthy": False} for s in spec.shards]
    in_use = observed.in_use
    counted = {p.identity or p.id: p.keys for p in probes.values() if p.keys is not None and p.id in in_use}
    value = weighted_imbalance(observed)
    return {
        "shards": rows,
        "shardCount": len(published.current.shard_ids) if published else None,
        "totalKeys": sum(k for k in counted.values() if k is not None),
        "imbalance": round(value, 3) if value is not None else None,
        "ringConfigMap": ring_configmap_name(observed.name) if published else None,
        "ringFingerprint": published.current.fingerprint if published else None,
        "rebalance": rebalance_field(observed.progress),
        "inDoubtTransactions": observed.in_doubt,
        "coordinator": min(s.id for s in spec.shards),
    }


def prepared_condition(probes: Mapping[str, ShardProbe]) -> Finding:
    """PreparedTransactions: False (and a Warning) when a shard has max_prepared_transactions = 0."""
    disabled = sorted(p.id for p in probes.values() if p.max_prepared_transactions == 0)
    if disabled:
        message = (
            f"shard(s) {', '.join(disabled)} have max_prepared_transactions = 0: cross-shard transactions "
            "touching them are refused; set max_prepared_transactions > 0 and restart those servers"
        )
        reason = "PreparedTransactionsDisabled"
        return ConditionUpdate(PREPARED_CONDITION, False, reason, message), EventNote(
            "Warning", reason, message
        )
    if probes and all(p.max_prepared_transactions for p in probes.values()):
        message = "every shard accepts prepared transactions"
        return ConditionUpdate(PREPARED_CONDITION, True, "Enabled", message), None
    return None, None


def databases_condition(probes: Mapping[str, ShardProbe]) -> Finding:
    """DistinctDatabases: False (and a Warning) when shards share one database."""
    by_identity: dict[str, list[str]] = {}
    for probe in probes.values():
        if probe.identity:
            by_identity.setdefault(probe.identity, []).append(probe.id)
    shared = sorted(sorted(ids) for ids in by_identity.values() if len(ids) > 1)
    if shared:
        groups = "; ".join(", ".join(ids) for ids in shared)
        message = (
            f"shards share a database ({groups}): their keys are not spread and never copied between them"
        )
        condition = ConditionUpdate(DATABASES_CONDITION, False, "SharedDatabase", message)
        return condition, EventNote("Warning", "SharedDatabase", message)
    if probes:
        return ConditionUpdate(
            DATABASES_CONDITION, True, "Distinct", "every shard has its own database"
        ), None
    return None, None


def rebalanced_condition(observed: Observed) -> Finding:
    """Rebalanced: refused, rebalancing or paused, held, pending, or stable on the published ring."""
    decision, progress, published = observed.decision, observed.progress, observed.published
    if decision is not None and decision.action is RingAction.REFUSE:
        condition = ConditionUpdate(REBALANCED_CONDITION, False, "ShardRemovalRefused", decision.message)
        return condition, EventNote("Warning", "ShardRemovalRefused", decision.message)
    if observed.moving and progress is not None:
        reason = "Paused" if progress.phase is Phase.PAUSED else "Rebalancing"
        message = f"{progress.phase.value}: {progress.moved}/{progress.total} keys moved"
        if observed.rebalance_error:
            message += f"; last error: {observed.rebalance_error}"
        return ConditionUpdate(REBALANCED_CONDITION, False, reason, message), None
    if observed.held:
        return ConditionUpdate(REBALANCED_CONDITION, False, "Held", observed.held), None
    if published is None:
        return None, None
    target = Ring(desired_ring(observed.spec)) if not observed.endpoint_errors else None
    if target is not None and target.fingerprint != published.current.fingerprint:
        return ConditionUpdate(REBALANCED_CONDITION, False, "Pending", "ring change pending"), None
    message = f"ring {published.current.fingerprint} is stable"
    return ConditionUpdate(REBALANCED_CONDITION, True, "RingStable", message), None


@dataclass(frozen=True)
class Verdict:
    """The Ready condition and the phase."""

    ready: bool
    reason: str
    message: str
    phase: str
    event: EventNote | None = None


def unavailable(observed: Observed) -> Verdict | None:
    """Not Ready when a shard of the ring is unhealthy (SchemaMissing when none has the schema)."""
    probes, in_use = observed.probes, observed.in_use
    unhealthy = sorted(p.id for p in probes.values() if not p.healthy and p.id in in_use)
    if not unhealthy:
        return None
    detail = "; ".join(f"{i}: {probes[i].error or 'unhealthy'}" for i in unhealthy)
    no_schema = [i for i in unhealthy if probes[i].schema_ok is False]
    reason = "SchemaMissing" if no_schema and len(no_schema) == len(unhealthy) else "ShardUnavailable"
    return Verdict(
        False, reason, f"{len(unhealthy)} of {len(in_use)} shard(s) unavailable: {detail}", "Degraded"
    )


def readiness(observed: Observed, fields: Mapping[str, Any]) -> Verdict:
    """Ready: blocked, unavailable, rebalancing or serving."""
    if observed.ring_error:
        name = ring_configmap_name(observed.name)
        message = f"ring ConfigMap {name} is unreadable: {observed.ring_error}"
        return Verdict(
            False,
            "RingConfigMapInvalid",
            message,
            "Blocked",
            EventNote("Warning", "RingConfigMapInvalid", message),
        )
    if observed.endpoint_errors:
        detail = "; ".join(f"{k}: {v}" for k, v in sorted(observed.endpoint_errors.items()))
        return Verdict(
            False, "SecretNotFound", detail, "Unavailable", EventNote("Warning", "SecretNotFound", detail)
        )
    decision = observed.decision
    if decision is not None and decision.action is RingAction.REFUSE:
        return Verdict(False, "ShardRemovalRefused", decision.message, "Blocked")
    down = unavailable(observed)
    if down is not None:
        return down
    published, progress = observed.published, observed.progress
    ring = published.current.fingerprint if published else "-"
    keys = fields["totalKeys"]
    if observed.moving and progress is not None:
        message = (
            f"serving {keys} keys; rebalancing to ring {ring}: {progress.moved}/{progress.total} moved "
            f"({progress.phase.value})"
        )
        return Verdict(True, "Rebalancing", message, "Rebalancing")
    count = len(published.current.shard_ids) if published else 0
    message = f"serving {keys} keys over {count} shards, ring {ring}"
    if fields["imbalance"] is not None:
        message += f", imbalance {fields['imbalance']}"
    return Verdict(True, "Serving", message, "Ready")


def summarize(observed: Observed) -> Outcome:
    """Status fields, conditions, Ready and Events from one observation."""
    fields = shard_fields(observed)
    findings = [
        prepared_condition(observed.probes),
        databases_condition(observed.probes),
        rebalanced_condition(observed),
    ]
    verdict = readiness(observed, fields)
    conditions = tuple(c for c, _ in findings if c is not None)
    events = tuple(e for _, e in findings if e is not None) + ((verdict.event,) if verdict.event else ())
    return Outcome(verdict.ready, verdict.reason, verdict.message, verdict.phase, fields, conditions, events)
