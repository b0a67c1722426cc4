"""One ShardCluster's live state in the operator, and the pure summary of what it observed.

``Controller.sync`` observes (Secrets -> DSNs, a probe per shard, the published ring ConfigMap), decides
(``rebalance.decide_ring``, pure), acts (publish the ConfigMap, start/stop the rebalance task) and returns
the ``Outcome`` (``summarize``, pure). The Kopf reconcile handler and the per-cluster daemon both call it,
serialised by a lock; the daemon also runs 2PC recovery every ``spec.transactions.recoveryInterval``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from kubernetes.client.exceptions import ApiException

from fortress.adapters import migrations
from fortress.adapters.kube import Kube
from fortress.adapters.postgres import PoolRegistry
from fortress.api.common import parse_duration
from fortress.api.shardcluster import INFO, ShardClusterSpec
from fortress.core.outcome import ConditionUpdate, EventNote, Outcome
from fortress.metrics import sharding as metrics
from fortress.sharding.breaker import BreakerConfig
from fortress.sharding.errors import ShardingError
from fortress.sharding.rebalance import Phase, Progress, Rebalancer, RingAction, RingDecision, decide_ring
from fortress.sharding.recovery import RecoveryReport, recover
from fortress.sharding.ring import Ring, RingError, RingSpec, RoutingState, ShardWeight, imbalance
from fortress.sharding.router import Router, RouterConfig, ShardEndpoint

log = logging.getLogger("fortress.sharding")

PREPARED_CONDITION = "PreparedTransactions"
REBALANCED_CONDITION = "Rebalanced"
DATABASES_CONDITION = "DistinctDatabases"
REBALANCE_SYNC_SECONDS = 2.0
ERROR_RETRY_SECONDS = 5.0
MISSING_SCHEMA = "tables shard_data/distributed_tx_log missing"
FIX_SCHEMA = "set spec.migrate: true or run `fortress migrate up` against the shard"


def ring_configmap_name(name: str) -> str:
    return f"{name}-ring"


def desired_ring(spec: ShardClusterSpec) -> RingSpec:
    """The ring of the spec: every shard that is not draining."""
    return RingSpec.of(
        [ShardWeight(s.id, s.weight) for s in spec.shards if not s.draining],
        virtual_nodes=spec.virtual_nodes,
        hash_function=str(spec.hash_function),
        replication_factor=spec.replication_factor,
    )


def router_config(spec: ShardClusterSpec) -> RouterConfig:
    return RouterConfig(
        query_timeout=parse_duration(spec.query_timeout).total_seconds(),
        breaker=BreakerConfig(
            failure_threshold=spec.circuit_breaker.failure_threshold,
            open_duration=parse_duration(spec.circuit_breaker.open_duration).total_seconds(),
        ),
    )


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
            data["lastError"] = self.error[:1000]
        return data


@dataclass(frozen=True)
class Observed:
    """Everything a sync observed and decided, for the summary."""

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


def summarize(observed: Observed) -> Outcome:
    """Status fields, conditions, Ready and events from one observation (pure)."""
    spec, probes = observed.spec, observed.probes
    published = observed.published
    in_use = set(published.shard_ids()) if published else {s.id for s in spec.shards if not s.draining}
    shards = [probes[s.id].wire() if s.id in probes else {"id": s.id, "healthy": False} for s in spec.shards]
    # shards sharing a database are counted once; the imbalance is per unit of weight over the current ring
    counted = {p.identity or p.id: p.keys for p in probes.values() if p.keys is not None and p.id in in_use}
    totals = [k for k in counted.values() if k is not None]
    ring_weights = (
        {s.id: s.weight for s in published.current.spec.shards}
        if published
        else {s.id: s.weight for s in spec.shards if not s.draining}
    )
    grouped: dict[str, int] = {}
    group_weights: dict[str, int] = {}
    for probe in probes.values():
        if probe.keys is not None and probe.id in ring_weights:
            group = probe.identity or probe.id
            grouped[group] = probe.keys
            group_weights[group] = group_weights.get(group, 0) + ring_weights[probe.id]
    value = imbalance(grouped, group_weights)
    fields: dict[str, Any] = {
        "shards": shards,
        "shardCount": len(published.current.shard_ids) if published else None,
        "totalKeys": sum(totals) if totals else 0,
        "imbalance": round(value, 3) if value is not None else None,
        "ringConfigMap": ring_configmap_name(observed.name) if published else None,
        "ringFingerprint": published.current.fingerprint if published else None,
        "rebalance": (observed.progress.wire() if observed.progress else {"phase": Phase.IDLE.value}),
        "inDoubtTransactions": observed.in_doubt,
        "coordinator": min(s.id for s in spec.shards),
    }
    conditions: list[ConditionUpdate] = []
    events: list[EventNote] = []

    disabled = sorted(p.id for p in probes.values() if p.max_prepared_transactions == 0)
    if disabled:
        message = (
            f"shard(s) {', '.join(disabled)} have max_prepared_transactions = 0: cross-shard transactions "
            "touching them are refused; set max_prepared_transactions > 0 and restart those servers"
        )
        conditions.append(ConditionUpdate(PREPARED_CONDITION, False, "PreparedTransactionsDisabled", message))
        events.append(EventNote("Warning", "PreparedTransactionsDisabled", message))
    elif probes and all(p.max_prepared_transactions for p in probes.values()):
        conditions.append(
            ConditionUpdate(PREPARED_CONDITION, True, "Enabled", "every shard accepts prepared transactions")
        )

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
        conditions.append(ConditionUpdate(DATABASES_CONDITION, False, "SharedDatabase", message))
        events.append(EventNote("Warning", "SharedDatabase", message))
    elif probes:
        conditions.append(
            ConditionUpdate(DATABASES_CONDITION, True, "Distinct", "every shard has its own database")
        )

    decision, progress = observed.decision, observed.progress
    moving = bool(published and published.moving)
    if decision is not None and decision.action is RingAction.REFUSE:
        conditions.append(
            ConditionUpdate(REBALANCED_CONDITION, False, "ShardRemovalRefused", decision.message)
        )
        events.append(EventNote("Warning", "ShardRemovalRefused", decision.message))
    elif moving and progress is not None:
        reason = "Paused" if progress.phase is Phase.PAUSED else "Rebalancing"
        message = f"{progress.phase.value}: {progress.moved}/{progress.total} keys moved"
        if observed.rebalance_error:
            message += f"; last error: {observed.rebalance_error}"
        conditions.append(ConditionUpdate(REBALANCED_CONDITION, False, reason, message))
    elif observed.held:
        conditions.append(ConditionUpdate(REBALANCED_CONDITION, False, "Held", observed.held))
    elif published is not None:
        target = Ring(desired_ring(spec)) if not observed.endpoint_errors else None
        if target is not None and target.fingerprint != published.current.fingerprint:
            conditions.append(ConditionUpdate(REBALANCED_CONDITION, False, "Pending", "ring change pending"))
        else:
            message = f"ring {published.current.fingerprint} is stable"
            conditions.append(ConditionUpdate(REBALANCED_CONDITION, True, "RingStable", message))

    if observed.ring_error:
        message = f"ring ConfigMap {ring_configmap_name(observed.name)} is unreadable: {observed.ring_error}"
        events.append(EventNote("Warning", "RingConfigMapInvalid", message))
        return Outcome(
            False, "RingConfigMapInvalid", message, "Blocked", fields, tuple(conditions), tuple(events)
        )
    if observed.endpoint_errors:
        detail = "; ".join(f"{k}: {v}" for k, v in sorted(observed.endpoint_errors.items()))
        events.append(EventNote("Warning", "SecretNotFound", detail))
        return Outcome(
            False, "SecretNotFound", detail, "Unavailable", fields, tuple(conditions), tuple(events)
        )
    if decision is not None and decision.action is RingAction.REFUSE:
        return Outcome(
            False,
            "ShardRemovalRefused",
            decision.message,
            "Blocked",
            fields,
            tuple(conditions),
            tuple(events),
        )
    unhealthy = sorted(p.id for p in probes.values() if not p.healthy and p.id in in_use)
    if unhealthy:
        detail = "; ".join(f"{i}: {probes[i].error or 'unhealthy'}" for i in unhealthy)
        no_schema = [i for i in unhealthy if probes[i].schema_ok is False]
        reason = "SchemaMissing" if no_schema and len(no_schema) == len(unhealthy) else "ShardUnavailable"
        message = f"{len(unhealthy)} of {len(in_use)} shard(s) unavailable: {detail}"
        return Outcome(False, reason, message, "Degraded", fields, tuple(conditions), tuple(events))
    ring = published.current.fingerprint if published else "-"
    keys = fields["totalKeys"]
    if moving and progress is not None:
        message = (
            f"serving {keys} keys; rebalancing to ring {ring}: {progress.moved}/{progress.total} moved "
            f"({progress.phase.value})"
        )
        return Outcome(True, "Rebalancing", message, "Rebalancing", fields, tuple(conditions), tuple(events))
    count = len(published.current.shard_ids) if published else 0
    message = f"serving {keys} keys over {count} shards, ring {ring}"
    if fields["imbalance"] is not None:
        message += f", imbalance {fields['imbalance']}"
    return Outcome(True, "Serving", message, "Ready", fields, tuple(conditions), tuple(events))


# ----------------------------------------------------------------------------- controller (I/O)


@dataclass
class Controller:
    """The operator-side state of one ShardCluster."""

    namespace: str
    name: str
    kube: Kube
    pools: PoolRegistry
    router: Router | None = None
    progress: Progress | None = None
    published: RoutingState | None = None
    probes: dict[str, ShardProbe] = field(default_factory=dict)
    in_doubt: int | None = None
    last_recovery: RecoveryReport | None = None
    rebalance_error: str | None = None
    transition_started: float | None = None
    posted: set[str] = field(default_factory=set)
    migration_errors: dict[str, str] = field(
        default_factory=dict
    )  # reasons of the warnings last posted as Events
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    _task: asyncio.Task[None] | None = None
    _rebalancer: Rebalancer | None = None
    _uid: str | None = None
    _status_lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    @property
    def cluster(self) -> str:
        return f"{self.namespace}/{self.name}"

    @property
    def rebalancing(self) -> bool:
        return bool(self.published and self.published.moving)

    # ------------------------------------------------------------- observe

    async def _resolve(self, spec: ShardClusterSpec) -> tuple[list[ShardEndpoint], dict[str, str]]:
        endpoints: list[ShardEndpoint] = []
        errors: dict[str, str] = {}
        for shard in spec.shards:
            try:
                dsn = await self._secret(
                    shard.connection.secret_key_ref.name, shard.connection.secret_key_ref.key
                )
                replicas = tuple(
                    [
                        await self._secret(r.connection.secret_key_ref.name, r.connection.secret_key_ref.key)
                        for r in shard.replicas
                    ]
                )
            except LookupError as error:
                errors[shard.id] = str(error)
                continue
            endpoints.append(ShardEndpoint(shard.id, dsn.strip(), tuple(r.strip() for r in replicas)))
        return endpoints, errors

    async def _secret(self, name: str, key: str) -> str:
        return await self.kube.secret_value(self.namespace, name, key)

    async def _probe(self, shard_id: str) -> ShardProbe:
        assert self.router is not None
        timeout = self.router.config.query_timeout
        try:
            async with self.router.connection(shard_id, "probe") as conn:
                row = await conn.fetchrow(
                    "SELECT current_setting('max_prepared_transactions')::int AS mpt, "
                    "to_regclass('shard_data') IS NOT NULL AND to_regclass('distributed_tx_log') IS NOT NULL "
                    "AS schema_ok, current_database() AS db, "
                    "to_char(pg_postmaster_start_time(), 'YYYYMMDDHH24MISSUS') AS started",
                    timeout=timeout,
                )
                identity = f"{row['db']}@{row['started']}"
                with contextlib.suppress(Exception):
                    async with conn.transaction():
                        system = await conn.fetchval("SELECT system_identifier FROM pg_control_system()")
                        identity = f"{system}/{identity}"
                keys = None
                if row["schema_ok"]:
                    keys = int(await conn.fetchval("SELECT count(*) FROM shard_data", timeout=timeout * 4))
        except ShardingError as error:
            return ShardProbe(shard_id, False, str(self.router.circuit_state(shard_id)), error=str(error))
        circuit = str(self.router.circuit_state(shard_id))
        if not row["schema_ok"]:
            failed = self.migration_errors.get(shard_id)
            return ShardProbe(
                shard_id,
                False,
                circuit,
                max_prepared_transactions=row["mpt"],
                identity=identity,
                schema_ok=False,
                error=f"{MISSING_SCHEMA}: migration failed: {failed}"
                if failed
                else f"{MISSING_SCHEMA}: {FIX_SCHEMA}",
            )
        return ShardProbe(shard_id, True, circuit, keys, row["mpt"], identity, True)

    async def _read_ring(self) -> RoutingState | None:
        try:
            config_map = await asyncio.to_thread(
                self.kube.core.read_namespaced_config_map, ring_configmap_name(self.name), self.namespace
            )
        except ApiException as error:
            if error.status == 404:
                return None
            raise
        return RoutingState.from_configmap_data(config_map.data)

    async def _write_ring(self, routing: RoutingState) -> None:
        """Create or update the ConfigMap ``<name>-ring`` (owned by the ShardCluster, so deleted with it)."""
        name = ring_configmap_name(self.name)
        metadata: dict[str, Any] = {
            "name": name,
            "namespace": self.namespace,
            "labels": {"app.kubernetes.io/managed-by": "fortress", "fortress.io/shardcluster": self.name},
        }
        if self._uid:
            metadata["ownerReferences"] = [
                {
                    "apiVersion": f"{INFO.group}/{INFO.version}",
                    "kind": INFO.kind,
                    "name": self.name,
                    "uid": self._uid,
                    "controller": True,
                    "blockOwnerDeletion": True,
                }
            ]
        body = {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": metadata,
            "data": routing.to_configmap_data(),
        }

        def write() -> None:
            try:
                self.kube.core.patch_namespaced_config_map(name, self.namespace, body)
            except ApiException as error:
                if error.status != 404:
                    raise
                self.kube.core.create_namespaced_config_map(self.namespace, body)  # type: ignore[arg-type]

        await asyncio.to_thread(write)

    # ------------------------------------------------------------- sync

    def _configure(self, spec: ShardClusterSpec, endpoints: Sequence[ShardEndpoint]) -> None:
        config = router_config(spec)
        if self.router is None:
            placeholder = RoutingState(Ring(desired_ring(spec)), None, self.cluster)
            self.router = Router(endpoints, self.published or placeholder, config, pools=self.pools)
        else:
            self.router.update(endpoints=endpoints, config=config)

    async def _migrate(self, endpoints: Sequence[ShardEndpoint]) -> None:
        """Apply pending migrations to the given shards; failures end up in their probe's error."""
        assert self.router is not None
        timeout = self.router.config.query_timeout
        for endpoint in endpoints:
            try:
                applied = await migrations.up(
                    endpoint.dsn,
                    migrations.default_migrations_dir(),
                    connect_timeout=timeout,
                    lock_timeout=30,
                )
                self.migration_errors.pop(endpoint.id, None)
                if applied:
                    log.info("%s: shard %s migrated to version %d", self.cluster, endpoint.id, applied[-1])
            except migrations.MigrationError as error:
                self.migration_errors[endpoint.id] = str(error)

    async def sync(
        self, spec: ShardClusterSpec, body: Mapping[str, Any], *, migrate: bool = False
    ) -> Outcome:
        """Observe, decide, act; the outcome to write in status.

        With ``spec.migrate``, shards found without the schema are migrated (every shard when ``migrate``:
        the reconcile of a create, update or resume also applies migrations added by a newer release).
        """
        async with self.lock:
            self._uid = (body.get("metadata") or {}).get("uid") or self._uid
            endpoints, endpoint_errors = await self._resolve(spec)
            self._configure(spec, endpoints)
            assert self.router is not None
            known = {e.id for e in endpoints}
            if spec.migrate and migrate:
                await self._migrate(endpoints)
            results = await asyncio.gather(*(self._probe(s) for s in sorted(known)))
            unmigrated = [e for e in endpoints if any(p.id == e.id and p.schema_ok is False for p in results)]
            if spec.migrate and unmigrated and not migrate:
                await self._migrate(unmigrated)
                again = {p.id: p for p in await asyncio.gather(*(self._probe(e.id) for e in unmigrated))}
                results = [again.get(p.id, p) for p in results]
            self.probes = {p.id: p for p in results}
            for probe in results:
                if probe.keys is not None:
                    metrics.SHARD_KEYS.labels(self.namespace, self.name, probe.id).set(probe.keys)
            status = body.get("status") or {}
            if self.progress is None:
                self.progress = Progress.from_wire(status.get("rebalance"))
            try:
                published = await self._read_ring()
            except RingError as error:
                return summarize(
                    Observed(
                        spec,
                        self.name,
                        self.probes,
                        endpoint_errors,
                        None,
                        None,
                        self.progress,
                        self.in_doubt,
                        ring_error=str(error),
                    )
                )
            decision = decide_ring(
                desired_ring(spec),
                published,
                [s.id for s in spec.shards],
                self.progress,
                cluster=self.cluster,
                paused=spec.rebalance.paused,
            )
            held = None
            routing = decision.routing
            if routing is not None:
                lacking = sorted(set(routing.shard_ids()) - known)
                if lacking and decision.action is RingAction.START:
                    held = f"ring change waits for the connection of shard(s) {', '.join(lacking)}"
                    decision = replace(decision, action=RingAction.STABLE, routing=None)
                else:
                    await self._write_ring(routing)
                    published = routing
                    if decision.action is RingAction.START:
                        self.transition_started = time.monotonic()
                        self.rebalance_error = None
                        log.info("%s: %s", self.cluster, decision.message)
            self.published = published
            if published is not None:
                self.router.update(routing=published)
            running = self._task is not None and not self._task.done()
            if not running or decision.action is not RingAction.CONTINUE:
                self.progress = decision.progress
            elif decision.progress is not None and decision.progress.phase is Phase.PAUSED and self.progress:
                self.progress = replace(
                    self.progress, phase=Phase.PAUSED
                )  # the executor's own progress, held
            self._steer(spec, known)
            outcome = summarize(
                Observed(
                    spec,
                    self.name,
                    self.probes,
                    endpoint_errors,
                    published,
                    decision,
                    self.progress,
                    self.in_doubt,
                    rebalance_error=self.rebalance_error,
                    held=held,
                )
            )
            if outcome.fields.get("imbalance") is not None:
                metrics.IMBALANCE.labels(self.namespace, self.name).set(outcome.fields["imbalance"])
            return outcome

    # ------------------------------------------------------------- rebalance task

    def _steer(self, spec: ShardClusterSpec, known: set[str]) -> None:
        """Start, retune or stop the rebalance task to match the published ring and the spec."""
        published, progress = self.published, self.progress
        if published is None or not published.moving or progress is None or progress.phase is Phase.PAUSED:
            self._cancel()
            return
        if progress.phase is Phase.COMPLETED:
            return
        if self._task is not None and not self._task.done():
            if self._rebalancer is not None:
                self._rebalancer.batch_size = spec.rebalance.batch_size
                self._rebalancer.max_keys_per_second = spec.rebalance.max_keys_per_second
            return
        if not set(published.shard_ids()) <= known:
            return
        delay = parse_duration(spec.rebalance.propagation_delay).total_seconds()
        started = self.transition_started if self.transition_started is not None else time.monotonic()
        self.transition_started = started
        wait = max(0.0, started + delay - time.monotonic())
        assert published.previous is not None and self.router is not None
        identities = {p.id: p.identity for p in self.probes.values() if p.identity}
        for shard_id, endpoint in self.router.endpoints.items():
            identities.setdefault(shard_id, endpoint.dsn)
        self._rebalancer = Rebalancer(
            self.router,
            published.previous,
            published.current,
            batch_size=spec.rebalance.batch_size,
            max_keys_per_second=spec.rebalance.max_keys_per_second,
            scan_size=max(spec.rebalance.batch_size, 10_000),
            identities=identities,
            save=self._save_progress,
            labels=(self.namespace, self.name),
        )
        self._task = asyncio.create_task(
            self._run(self._rebalancer, progress, wait), name=f"rebalance {self.cluster}"
        )

    async def _run(self, rebalancer: Rebalancer, progress: Progress, wait: float) -> None:
        try:
            if wait > 0:
                await asyncio.sleep(wait)
            result = await rebalancer.run(progress)
            async with self.lock:
                self.progress = result
            await self._patch_status({"rebalance": result.wire()})
        except asyncio.CancelledError:
            raise
        except Exception as error:
            self.rebalance_error = f"{type(error).__name__}: {error}"
            log.warning("%s: rebalance stopped: %s (retrying)", self.cluster, self.rebalance_error)
            await asyncio.sleep(ERROR_RETRY_SECONDS)
        finally:
            self._task = None
            self.wake.set()

    async def _save_progress(self, progress: Progress) -> None:
        self.progress = progress
        await self._patch_status({"rebalance": progress.wire()})

    def _cancel(self) -> None:
        if self._task is not None and not self._task.done():
            self._task.cancel()
        self._task = None

    async def stop(self) -> None:
        task = self._task
        self._cancel()
        if task is not None:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    # ------------------------------------------------------------- recovery and status

    async def recover(self, spec: ShardClusterSpec) -> RecoveryReport | None:
        if self.router is None:
            return None
        grace = parse_duration(spec.transactions.in_doubt_grace_period).total_seconds()
        report = await recover(self.router, self.cluster, grace)
        self.last_recovery = report
        self.in_doubt = report.in_doubt
        metrics.IN_DOUBT.labels(self.namespace, self.name).set(report.in_doubt)
        if report.committed or report.rolled_back:
            log.info(
                "%s: recovery committed %d and rolled back %d prepared transaction(s); %d in doubt",
                self.cluster,
                report.committed,
                report.rolled_back,
                report.in_doubt,
            )
        return report

    async def _patch_status(self, status: Mapping[str, Any]) -> None:
        async with self._status_lock:
            try:
                await asyncio.to_thread(
                    self.kube.custom.patch_namespaced_custom_object_status,
                    INFO.group,
                    INFO.version,
                    self.namespace,
                    INFO.plural,
                    self.name,
                    {"status": dict(status)},
                )
            except ApiException as error:
                if error.status != 404:
                    log.warning("%s: status patch failed: %s", self.cluster, error.reason)

    async def write_status(self, status: Mapping[str, Any]) -> None:
        await self._patch_status(status)
