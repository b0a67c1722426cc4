"""One CanaryRollout in the operator: observe, decide (pure), act, and the outcome its status records.

A step reads the state from the status the loop last wrote, the pod template, both colours'
Deployments and (when due) an analysis sample; :func:`~fortress.rollouts.planner.decide` turns them
into a plan; :mod:`~fortress.rollouts.act` applies it in the order that keeps traffic on available
pods; :mod:`~fortress.rollouts.history` records the rows of spec.database. The loop writes the
outcome and posts its Events, then steps again when the plan asks (a pause ends, an analysis is due,
a scale-down is due), when a Deployment of the rollout changes, or when the spec changes. Every
decision is made from status, so an operator restarted mid-rollout resumes where it was.
"""

from __future__ import annotations

import time
from typing import Any, cast

import aiohttp
from pydantic import ValidationError

from fortress.adapters.kube import owner_reference
from fortress.api.canaryrollout import INFO, CanaryRolloutSpec
from fortress.api.common import API_VERSION
from fortress.core.loop import ObjectRef, StepContext
from fortress.core.outcome import Outcome
from fortress.core.services import Services
from fortress.core.time import now as utc_now
from fortress.core.time import parse, stamp_ms
from fortress.metrics import rollouts as metrics
from fortress.rollouts import act, history, observe, workload
from fortress.rollouts.model import COLOURS, AnalysisSample, Observed, Plan, template_hash
from fortress.rollouts.planner import analysis_due, decide
from fortress.rollouts.status import outcome, parse_state, unreadable


class RolloutReconciler:
    """Steps one CanaryRollout; keeps what it saw and wrote between steps (never the state itself)."""

    def __init__(self, services: Services, ref: ObjectRef) -> None:
        self.services, self.ref = services, ref
        self.deployments = observe.DeploymentCache()
        self.applied = act.Applied()
        self.history = history.HistoryRecorder()
        self._session: aiohttp.ClientSession | None = None

    def remember_deployment(self, colour: str, obj: dict[str, Any] | None) -> None:
        """A Deployment of the rollout as a watch event showed it (None: deleted)."""
        self.deployments.remember(colour, obj, time.monotonic())

    async def step(self, ctx: StepContext) -> Outcome:
        started = time.perf_counter()
        try:
            return await self._step(ctx, cast(CanaryRolloutSpec, ctx.spec))
        finally:
            metrics.ROLLOUT_STEP_SECONDS.observe(time.perf_counter() - started)

    async def _step(self, ctx: StepContext, spec: CanaryRolloutSpec) -> Outcome:
        try:
            state = parse_state(ctx.status)
        except ValidationError as error:
            return unreadable(error)
        now = utc_now()
        kube, namespace, name = self.services.kube, ctx.namespace, ctx.name
        read = await observe.template(kube, spec, namespace)
        desired = template_hash(read.template) if read.template is not None else None
        objects = await observe.deployments(kube, self.deployments, namespace, name)
        views = {c: workload.view(c, objects[c]) for c in COLOURS}
        sample = None
        if read.problem is None and analysis_due(spec, state, now):
            sample = await observe.measure(self.services, self._http(), spec, state, (namespace, name), now)
        plan = decide(spec, state, Observed(now, desired, views, sample, read.problem))
        plan.status.selector = workload.pod_selector(name)

        owner = owner_reference(API_VERSION, INFO.kind, name, ctx.uid or "")
        release = act.Release(namespace, name, owner, spec, read.template, desired)
        errors = await act.converge(kube, self.deployments, self.applied, plan, release, objects)
        if plan.rollback and sample is not None:
            metrics.ROLLOUT_ROLLBACK_SECONDS.observe((utc_now() - sample.at).total_seconds())
        errors += await act.write_flags(kube, self.applied, plan, release)
        notes = await act.retire_reference(kube, plan, release, read.referenced, errors)
        observe_metrics(spec, plan, sample, namespace, name)
        problems = await self.history.sync(
            self.services, spec, plan.status, (namespace, name), read.template, ctx.logger
        )
        result = outcome(plan, errors, [*notes, *history.notes(problems)])
        return history.reported(result, spec, self.history)

    def _http(self) -> aiohttp.ClientSession:
        """The HTTP session of this rollout's analysis queries (opened on first use)."""
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession()
        return self._session

    async def close(self, deleted: bool) -> None:
        await self.services.pools.release_all(self.ref.key)  # the history database's pool
        if self._session is not None:
            await self._session.close()
            self._session = None
        if deleted:
            metrics.forget(self.ref.namespace, self.ref.name)


def observe_metrics(
    spec: CanaryRolloutSpec, plan: Plan, sample: AnalysisSample | None, namespace: str, name: str
) -> None:
    """The rollout's metrics after a step: phase, weight, the sample's results, finished releases."""
    state = plan.status
    metrics.set_phase(namespace, name, state.phase)
    metrics.ROLLOUT_CANARY_WEIGHT.labels(namespace, name).set(state.canary_weight or 0)
    if sample is not None:
        measured_at = stamp_ms(sample.at)
        for result in (r for r in state.metrics if r.measured_at == measured_at):
            metrics.ROLLOUT_ANALYSIS.labels(namespace, name, result.name, result.result).inc()
            if result.value is not None:
                metrics.ROLLOUT_METRIC_VALUE.labels(namespace, name, result.name).set(result.value)
    for record in plan.finished:
        begun, ended = parse(record.started_at), parse(record.finished_at)
        if begun and ended:
            took = (ended - begun).total_seconds()
            metrics.ROLLOUT_DURATION.labels(spec.strategy.type, record.outcome).observe(took)
    if plan.rollback and state.abort_reason:
        metrics.ROLLOUT_ROLLBACKS.labels(namespace, name, state.abort_reason).inc()
