"""One ShardCluster in the operator: shards probed, the ring published, keys rebalanced, 2PC recovered.

A step resolves each shard's DSN from its Secret and configures the router; migrates the shards
(``spec.migrate``: every shard on a spec change or the first step, else only those found without the
schema); probes each shard; reads the ring ConfigMap ``<name>-ring``; decides how the published ring
moves towards the spec (:func:`~fortress.sharding.rebalance.decide_ring`, pure) and publishes it; starts,
retunes or stops the rebalance task; runs 2PC recovery when due; and returns the summary
(:func:`~fortress.sharding.status.summarize`, pure). It comes back at the next health check (every 2 s
while a rebalance runs) or the next recovery run, whichever comes first.

The rebalance runs as a task of this reconciler: it saves its checkpoints in ``status.rebalance`` through
the loop's writer and wakes the loop when it ends. Recovery runs inside a step: it needs the router the
step configures, its figure (in-doubt transactions) belongs in that step's status, and its state lives in
PostgreSQL, so running it in line keeps one writer and nothing to coordinate.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import replace
from typing import Any, Final, cast

from fortress.api.shardcluster import ShardClusterSpec
from fortress.core.errors import Secret, describe
from fortress.core.loop import Logger, ObjectRef, StepContext
from fortress.core.outcome import Outcome
from fortress.core.services import Services
from fortress.metrics import sharding as metrics
from fortress.sharding.kubeio import read_ring, write_ring
from fortress.sharding.probes import migrate, probe
from fortress.sharding.rebalance import Phase, Progress, Rebalancer, RingAction, RingDecision, decide_ring
from fortress.sharding.recovery import RecoveryReport, recover
from fortress.sharding.ring import Ring, RingError, RoutingState
from fortress.sharding.router import Router, ShardEndpoint
from fortress.sharding.settings import Intervals, desired_ring, next_step_in, router_config
from fortress.sharding.status import Observed, ShardProbe, rebalance_field, summarize

ERROR_RETRY_SECONDS: Final = 5.0

Write = Callable[[Mapping[str, Any]], Awaitable[None]]


class ShardClusterReconciler:
    """What the operator holds for one ShardCluster between steps."""

    def __init__(self, services: Services, ref: ObjectRef) -> None:
        self.services, self.ref = services, ref
        self.cluster = f"{ref.namespace}/{ref.name}"
        self.router: Router | None = None
        self.progress: Progress | None = None
        self.published: RoutingState | None = None
        self.probes: dict[str, ShardProbe] = {}
        self.in_doubt: int | None = None
        self.last_recovery: RecoveryReport | None = None
        self.migration_errors: dict[str, str] = {}
        self.rebalance_error: str | None = None
        self.transition_started: float | None = None
        self._lock = asyncio.Lock()  # a step's observe/decide/act against the rebalance task's result
        self._task: asyncio.Task[None] | None = None
        self._rebalancer: Rebalancer | None = None
        self._next_recovery = 0.0  # monotonic; the first recovery runs in the first step

    @property
    def rebalancing(self) -> bool:
        return bool(self.published and self.published.moving)

    def secrets(self) -> list[Secret]:
        """Every shard DSN in play, to name instead of showing it."""
        endpoints = self.router.endpoints.values() if self.router is not None else ()
        return [secret for endpoint in endpoints for secret in endpoint.secrets()]

    async def step(self, ctx: StepContext) -> Outcome:
        spec = cast(ShardClusterSpec, ctx.spec)
        intervals = Intervals.of(spec)
        async with self._lock:
            observed = await self._sync(spec, ctx)
        if time.monotonic() >= self._next_recovery:
            await self._recover(intervals.in_doubt_grace, ctx)
            self._next_recovery = time.monotonic() + intervals.recovery
        outcome = summarize(replace(observed, in_doubt=self.in_doubt))
        if outcome.fields.get("imbalance") is not None:
            metrics.IMBALANCE.labels(ctx.namespace, ctx.name).set(outcome.fields["imbalance"])
        until_recovery = self._next_recovery - time.monotonic()
        delay = next_step_in(intervals.health_check, self.rebalancing, until_recovery)
        return replace(outcome, requeue_after=delay)

    # ---- observe ---------------------------------------------------------------------------------------

    async def _sync(self, spec: ShardClusterSpec, ctx: StepContext) -> Observed:
        """Observe, decide and act; what the summary needs."""
        endpoints, endpoint_errors = await self._resolve(spec, ctx.namespace)
        router = self._configure(spec, endpoints)
        known = {e.id for e in endpoints}
        await self._observe_shards(spec, router, endpoints, migrate_all=ctx.changed, logger=ctx.logger)
        if self.progress is None:
            self.progress = Progress.from_wire(ctx.status.get("rebalance"))
        observed = Observed(
            spec, ctx.name, self.probes, endpoint_errors, None, None, self.progress, self.in_doubt
        )
        try:
            published = await read_ring(self.services.kube, ctx.namespace, ctx.name)
        except RingError as error:
            return replace(observed, ring_error=str(error))
        decision, held, published = await self._publish(spec, published, known, ctx)
        self.published = published
        if published is not None:
            router.update(routing=published)
        self._track(decision)
        self._steer(spec, known, ctx)
        return replace(
            observed,
            published=published,
            decision=decision,
            progress=self.progress,
            rebalance_error=self.rebalance_error,
            held=held,
        )

    async def _resolve(
        self, spec: ShardClusterSpec, namespace: str
    ) -> tuple[list[ShardEndpoint], dict[str, str]]:
        """Each shard's DSNs from its Secrets, labelled by Secret and key; the shards whose lookup failed."""
        endpoints: list[ShardEndpoint] = []
        errors: dict[str, str] = {}
        for shard in spec.shards:
            refs = [shard.connection.secret_key_ref, *(r.connection.secret_key_ref for r in shard.replicas)]
            try:
                values = [(await self.services.secret(namespace, ref)).strip() for ref in refs]
            except LookupError as error:  # names the Secret and key, never a value
                errors[shard.id] = str(error)
                continue
            labels = tuple(
                Secret.of(v, namespace, r.name, r.key).label for v, r in zip(values, refs, strict=True)
            )
            endpoints.append(ShardEndpoint(shard.id, values[0], tuple(values[1:]), labels))
        return endpoints, errors

    def _configure(self, spec: ShardClusterSpec, endpoints: Sequence[ShardEndpoint]) -> Router:
        config = router_config(spec)
        if self.router is None:
            placeholder = RoutingState(Ring(desired_ring(spec)), None, self.cluster)
            self.router = Router(endpoints, self.published or placeholder, config)
        else:
            self.router.update(endpoints=endpoints, config=config)
        return self.router

    async def _observe_shards(
        self,
        spec: ShardClusterSpec,
        router: Router,
        endpoints: Sequence[ShardEndpoint],
        *,
        migrate_all: bool,
        logger: Logger,
    ) -> None:
        """Migrate (``spec.migrate``) and probe every shard with a connection."""
        if spec.migrate and migrate_all:
            await self._migrate(router, endpoints, logger)
        found = await self._probe(router, [e.id for e in endpoints])
        unmigrated = [e for e in endpoints if found[e.id].schema_ok is False]
        if spec.migrate and unmigrated and not migrate_all:
            await self._migrate(router, unmigrated, logger)
            found.update(await self._probe(router, [e.id for e in unmigrated]))
        self.probes = found
        for shard in found.values():
            if shard.keys is not None:
                metrics.SHARD_KEYS.labels(self.ref.namespace, self.ref.name, shard.id).set(shard.keys)

    async def _probe(self, router: Router, shard_ids: Sequence[str]) -> dict[str, ShardProbe]:
        ids = sorted(shard_ids)
        results = await asyncio.gather(*(probe(router, s, self.migration_errors.get(s)) for s in ids))
        return {p.id: p for p in results}

    async def _migrate(self, router: Router, endpoints: Sequence[ShardEndpoint], logger: Logger) -> None:
        """Apply pending migrations; a failure ends up in the shard's probe error."""
        for shard_id, error in (await migrate(endpoints, router.config.query_timeout, logger)).items():
            if error is None:
                self.migration_errors.pop(shard_id, None)
            else:
                self.migration_errors[shard_id] = error

    # ---- decide and act --------------------------------------------------------------------------------

    async def _publish(
        self, spec: ShardClusterSpec, published: RoutingState | None, known: set[str], ctx: StepContext
    ) -> tuple[RingDecision, str | None, RoutingState | None]:
        """Decide the ring and publish it; the decision, why a change is held, and the ring now published."""
        decision = decide_ring(
            desired_ring(spec),
            published,
            [s.id for s in spec.shards],
            self.progress,
            cluster=self.cluster,
            paused=spec.rebalance.paused,
        )
        routing = decision.routing
        if routing is None:
            return decision, None, published
        lacking = sorted(set(routing.shard_ids()) - known)
        if lacking and decision.action is RingAction.START:
            held = f"ring change waits for the connection of shard(s) {', '.join(lacking)}"
            return replace(decision, action=RingAction.STABLE, routing=None), held, published
        await write_ring(self.services.kube, ctx.namespace, ctx.name, ctx.uid, routing)
        if decision.action is RingAction.START:
            self.transition_started = time.monotonic()
            self.rebalance_error = None
            ctx.logger.info("%s", decision.message)
        return decision, None, routing

    def _track(self, decision: RingDecision) -> None:
        """The progress to show: the decision's, or the running executor's own (only its pause is decided)."""
        if not self._running() or decision.action is not RingAction.CONTINUE:
            self.progress = decision.progress
        elif decision.progress is not None and decision.progress.phase is Phase.PAUSED and self.progress:
            self.progress = replace(self.progress, phase=Phase.PAUSED)

    # ---- the rebalance task ----------------------------------------------------------------------------

    def _running(self) -> bool:
        return self._task is not None and not self._task.done()

    def _steer(self, spec: ShardClusterSpec, known: set[str], ctx: StepContext) -> None:
        """Start, retune or stop the rebalance task to match the published ring and the spec."""
        published, progress = self.published, self.progress
        if published is None or not published.moving or progress is None or progress.phase is Phase.PAUSED:
            self._cancel()
            ctx.checks.passed("rebalance")  # no rebalance runs: none fails
            return
        if progress.phase is Phase.COMPLETED:
            return
        if self._running():
            if self._rebalancer is not None:
                self._rebalancer.batch_size = spec.rebalance.batch_size
                self._rebalancer.max_keys_per_second = spec.rebalance.max_keys_per_second
            return
        if set(published.shard_ids()) <= known:
            self._start(spec, published, progress, ctx)

    def _start(
        self, spec: ShardClusterSpec, published: RoutingState, progress: Progress, ctx: StepContext
    ) -> None:
        assert published.previous is not None and self.router is not None
        started = self.transition_started if self.transition_started is not None else time.monotonic()
        self.transition_started = started
        wait = max(0.0, started + Intervals.of(spec).propagation_delay - time.monotonic())
        identities = {p.id: p.identity for p in self.probes.values() if p.identity}
        for shard_id, endpoint in self.router.endpoints.items():
            identities.setdefault(shard_id, endpoint.dsn)  # compared only, never shown
        write = self._writer(ctx.loop.write_fields, ctx.logger)

        async def save(saved: Progress) -> None:
            self.progress = saved
            ctx.checks.passed("rebalance")  # it moves keys again
            await write({"rebalance": rebalance_field(saved)})

        self._rebalancer = Rebalancer(
            self.router,
            published.previous,
            published.current,
            batch_size=spec.rebalance.batch_size,
            max_keys_per_second=spec.rebalance.max_keys_per_second,
            scan_size=max(spec.rebalance.batch_size, 10_000),
            identities=identities,
            save=save,
            labels=(ctx.namespace, ctx.name),
        )
        run = self._run(self._rebalancer, progress, wait, write, ctx)
        self._task = asyncio.create_task(run, name=f"rebalance {self.ref}")

    def _writer(self, write: Write, logger: Logger) -> Write:
        """The loop's status writer for checkpoints: a failed write is logged, the rebalance goes on."""

        async def best_effort(fields: Mapping[str, Any]) -> None:
            try:
                await write(fields)
            except Exception as error:  # the next checkpoint (or step) writes it again
                logger.warning("rebalance progress not written: %s", describe(error, self.secrets()))

        return best_effort

    async def _run(
        self,
        rebalancer: Rebalancer,
        progress: Progress,
        wait: float,
        write: Write,
        ctx: StepContext,
    ) -> None:
        wake, logger = ctx.loop.wake, ctx.logger
        try:
            if wait > 0:
                await asyncio.sleep(wait)
            result = await rebalancer.run(progress)
            async with self._lock:
                self.progress = result
            ctx.checks.passed("rebalance")
            await write({"rebalance": rebalance_field(result)})
        except asyncio.CancelledError:
            raise
        except Exception as error:  # shown in the Rebalanced condition; retried from the checkpoint
            self.rebalance_error = ctx.checks.failed("rebalance", error, self.secrets())
            logger.warning(
                "rebalance stopped: %s (retrying in %.0fs)", self.rebalance_error, ERROR_RETRY_SECONDS
            )
            wake()
            await asyncio.sleep(ERROR_RETRY_SECONDS)
        finally:
            if self._task is asyncio.current_task():
                self._task = None
            wake()

    def _cancel(self) -> None:
        if self._running():
            assert self._task is not None
            self._task.cancel()
        self._task = None

    # ---- recovery and closing --------------------------------------------------------------------------

    async def _recover(self, grace: float, ctx: StepContext) -> None:
        """Resolve in-doubt prepared transactions; a failed run holds Ready back (CheckFailed) and is
        retried at the next interval."""
        logger = ctx.logger
        if self.router is None:
            return
        try:
            report = await recover(self.router, self.cluster, grace)
        except Exception as error:
            text = ctx.checks.failed("recovery", error, self.secrets())
            logger.warning("2PC recovery failed: %s", text)
            return
        ctx.checks.passed("recovery")
        self.last_recovery, self.in_doubt = report, report.in_doubt
        metrics.IN_DOUBT.labels(self.ref.namespace, self.ref.name).set(report.in_doubt)
        if report.committed or report.rolled_back:
            logger.info(
                "recovery committed %d and rolled back %d prepared transaction(s); %d in doubt",
                report.committed,
                report.rolled_back,
                report.in_doubt,
            )

    async def close(self, deleted: bool) -> None:
        """Stop the rebalance task and close the router's pools."""
        task = self._task
        self._cancel()
        if task is not None:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if self.router is not None:
            await self.router.close()
