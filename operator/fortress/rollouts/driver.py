"""One step of a CanaryRollout: observe, decide (pure), execute, write status; one at a time per object.

Both the Kopf handlers (spec changes) and the per-rollout daemon (stages, analysis, pods) run steps
through the same per-object lock. Each step re-reads the object, so it always decides from the latest
state. ``status.stateVersion`` counts the state's changes: when a status write lands out of order
(the framework's own status patch after a handler can arrive after a newer step's write), the
newer state kept in memory wins and is written again, so a request is never acted on twice.

Execution order keeps traffic on available pods: creations and scale-ups first, then traffic, then
template changes and scale-downs (skipped when the traffic write failed).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, cast

import aiohttp
from pydantic import ValidationError

from fortress.adapters.postgres import redact
from fortress.api.canaryrollout import INFO, CanaryRolloutSpec, CanaryRolloutStatus, StrategyType
from fortress.api.common import API_VERSION
from fortress.core.outcome import EventNote, Outcome, status_patch
from fortress.core.time import parse, stamp_ms
from fortress.core.time import stamp as rfc3339
from fortress.core.validation import validate_spec
from fortress.metrics import rollouts as metrics
from fortress.rollouts import analysis, store, workload
from fortress.rollouts.kubeio import CONFIGMAPS, DEPLOYMENTS, EVENTS, KubeIO, Resource
from fortress.rollouts.model import (
    BLUE,
    COLOURS,
    LABEL_REVISION,
    AnalysisSample,
    Measurement,
    Observed,
    Plan,
    Raw,
    other,
    template_hash,
)
from fortress.rollouts.planner import analysis_due, decide
from fortress.rollouts.traffic import RouterContext, router_for
from fortress.rollouts.traffic.base import managed_labels, selector
from fortress.rollouts.transitions import applied_stage_of

log = logging.getLogger("fortress.rollouts")

ROLLOUTS = Resource(INFO.group, INFO.version, INFO.plural)
_BASE_FIELDS = {"observed_generation", "phase", "message", "conditions"}
_STATUS_KEYS = {f.alias or name for name, f in CanaryRolloutStatus.model_fields.items()} | set(
    CanaryRolloutStatus.model_fields
)


def flags_configmap(rollout: str) -> str:
    return f"{rollout}-flags"


@dataclass
class Entry:
    """Per-object bookkeeping of one operator process."""

    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    cached: CanaryRolloutStatus | None = None
    flags_written: tuple[tuple[str, bool], ...] | None = None
    db_fingerprint: str | None = None
    db_error: str | None = None
    last_error: str | None = None
    # The colours' Deployments as last seen (a GET, a watch event or our own write), with the time.
    deployments: dict[str, tuple[dict[str, Any] | None, float]] = field(default_factory=dict)
    # The traffic last applied, and when: not re-applied (nor re-read) until it changes or RESYNC.
    traffic: tuple[Any, float] | None = None


RESYNC_SECONDS = 30.0  # cached Deployments and applied traffic are re-read at least this often
RETRY_SECONDS = 1.0  # after a failed write


def _version(obj: Mapping[str, Any] | None) -> int | None:
    try:
        return int(((obj or {}).get("metadata") or {}).get("resourceVersion"))  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None


@dataclass(frozen=True)
class StepResult:
    outcome: Outcome
    status: dict[str, Any]
    delay: float
    plan: Plan
    errors: tuple[str, ...] = ()


def parse_state(raw: Mapping[str, Any]) -> CanaryRolloutStatus:
    """The state kept in status (keys of other writers ignored); ValidationError when unreadable."""
    return CanaryRolloutStatus.model_validate({k: v for k, v in raw.items() if k in _STATUS_KEYS})


def _content(state: CanaryRolloutStatus) -> dict[str, Any]:
    return state.model_dump(exclude={"state_version", "message", "conditions", "observed_generation"})


def _differs(patch: Mapping[str, Any], current: Mapping[str, Any]) -> bool:
    return any(current.get(k) != v for k, v in patch.items())


class Driver:
    """Runs steps for every CanaryRollout of one operator instance."""

    def __init__(
        self,
        kube_api: Any,
        pools: Any = None,
        secret_value: Any = None,
        workers: int | None = None,
        owns_api: bool = False,
    ) -> None:
        self.io = KubeIO(kube_api, workers=workers)
        self._api = kube_api
        self._owns_api = owns_api
        self._pools = pools
        self._secret_value: Callable[[str, str, str], Awaitable[str]] | None = secret_value
        self._entries: dict[tuple[str, str], Entry] = {}
        self._session: aiohttp.ClientSession | None = None
        self._events = 0
        self.watching = False  # set by the first Deployment watch event; until then: a GET per step

    # ---- bookkeeping -------------------------------------------------------------------------------

    def entry(self, namespace: str, name: str) -> Entry:
        key = (namespace, name)
        found = self._entries.get(key)
        if found is None:
            found = self._entries[key] = Entry()
        return found

    def wake(self, namespace: str, name: str) -> None:
        found = self._entries.get((namespace, name))
        if found is not None:
            found.wake.set()

    def forget(self, namespace: str, name: str) -> None:
        self._entries.pop((namespace, name), None)
        metrics.forget(namespace, name)

    async def sleep(self, namespace: str, name: str, delay: float, stopped: Any) -> None:
        """Until ``delay`` passes, the rollout is woken, or ``stopped`` (a Kopf DaemonStopped) is set."""
        entry = self.entry(namespace, name)
        waits = {asyncio.ensure_future(entry.wake.wait()), asyncio.ensure_future(stopped.wait())}
        try:
            await asyncio.wait(waits, timeout=max(0.0, delay), return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in waits:
                task.cancel()

    async def session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession()
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
        await asyncio.to_thread(self.io.close)
        if self._owns_api:
            await asyncio.to_thread(self._api.close)

    # ---- one step ----------------------------------------------------------------------------------

    def remember_deployment(
        self, namespace: str, rollout: str, colour: str, obj: dict[str, Any] | None
    ) -> None:
        """A Deployment of a rollout as a watch event showed it (None: deleted); newer versions win."""
        self.watching = True  # Deployment events arrive: cached Deployments stay current
        entry = self.entry(namespace, rollout)
        current = entry.deployments.get(colour)
        old, new = _version(current[0] if current else None), _version(obj)
        if old is not None and new is not None and new < old:
            return
        entry.deployments[colour] = (obj, time.monotonic())

    async def step(
        self, namespace: str, name: str, body: Mapping[str, Any] | None = None
    ) -> StepResult | None:
        """Observe, decide, execute and record one CanaryRollout; None when it is gone or invalid.

        ``body`` is the object as the caller's watch saw it (Kopf keeps a daemon's body live); the
        state in it may be older than what this process last wrote, which ``stateVersion`` reveals.
        """
        entry = self.entry(namespace, name)
        async with entry.lock:
            entry.wake.clear()
            started = time.perf_counter()
            try:
                return await self._step(entry, namespace, name, body)
            finally:
                metrics.ROLLOUT_STEP_SECONDS.observe(time.perf_counter() - started)

    async def _deployment(
        self, entry: Entry, namespace: str, name: str, colour: str
    ) -> dict[str, Any] | None:
        cached = entry.deployments.get(colour)
        if self.watching and cached is not None and time.monotonic() - cached[1] < RESYNC_SECONDS:
            return cached[0]  # kept current by the Deployment watch and by our own writes
        found = await self.io.get(DEPLOYMENTS, namespace, workload.deployment_name(name, colour))
        entry.deployments[colour] = (found, time.monotonic())
        return found

    async def _write_deployment(self, entry: Entry, colour: str, call: Callable[[], Awaitable[Any]]) -> None:
        written = await call()
        if isinstance(written, dict) and written:
            entry.deployments[colour] = (written, time.monotonic())

    async def _step(
        self, entry: Entry, namespace: str, name: str, given: Mapping[str, Any] | None
    ) -> StepResult | None:
        body = dict(given) if given is not None else await self.io.get(ROLLOUTS, namespace, name)
        if body is None or (body.get("metadata") or {}).get("deletionTimestamp"):
            return None
        validated = validate_spec(INFO, body.get("spec"))
        if not validated.valid or validated.spec is None:
            return None  # the framework reports InvalidSpec
        spec = cast(CanaryRolloutSpec, validated.spec)
        meta = body.get("metadata") or {}
        raw_status = body.get("status") or {}
        generation = meta.get("generation")
        try:
            state = parse_state(raw_status)
        except ValidationError as error:
            if entry.cached is None:
                return self._unreadable(spec, raw_status, generation, error)
            state = entry.cached
        if entry.cached is not None and (entry.cached.state_version or 0) > (state.state_version or 0):
            state = entry.cached  # a stale write landed after ours: ours is the truth
        now = dt.datetime.now(dt.UTC)

        template, problem, referenced = await self._template(spec, namespace)
        desired = template_hash(template) if template is not None else None
        found = await asyncio.gather(*(self._deployment(entry, namespace, name, c) for c in COLOURS))
        objects = dict(zip(COLOURS, found, strict=True))
        views = {c: workload.view(c, objects[c]) for c in COLOURS}
        sample = None
        if problem is None and analysis_due(spec, state, now):
            sample = await self._measure(spec, state, namespace, name, now)
        plan = decide(spec, state, Observed(now, desired, views, sample, problem))

        owner = {
            "apiVersion": API_VERSION,
            "kind": INFO.kind,
            "name": name,
            "uid": meta.get("uid", ""),
            "controller": True,
            "blockOwnerDeletion": True,
        }
        errors = await self._execute(entry, plan, spec, namespace, name, owner, template, desired, objects)
        if plan.rollback and sample is not None:
            metrics.ROLLOUT_ROLLBACK_SECONDS.observe((dt.datetime.now(dt.UTC) - sample.at).total_seconds())
        errors += await self._flags(entry, plan, namespace, name, owner)
        retired = await self._retire_reference(plan, spec, namespace, referenced, errors)

        new_state = plan.status
        if _content(new_state) != _content(state):
            new_state.state_version = (state.state_version or 0) + 1
        else:
            new_state.state_version = state.state_version or 0
        fields = new_state.model_dump(by_alias=True, mode="json", exclude=_BASE_FIELDS)
        message = new_state.message or ""
        ready, reason = plan.ready, plan.reason
        if errors:
            ready, reason = False, "ApplyFailed"
            message = f"{message}; could not apply: {'; '.join(errors)}"
        outcome = Outcome(
            ready=ready,
            reason=reason,
            message=message,
            phase=new_state.phase or "Succeeded",
            fields=fields,
            conditions=plan.conditions,
        )
        patch = status_patch(outcome, raw_status, generation, now)
        if _differs(patch, raw_status):
            await self.io.patch(ROLLOUTS, namespace, name, {"status": patch}, subresource="status")
        entry.cached = new_state

        notes = list(plan.events) + retired
        error_text = "; ".join(errors) or None
        if error_text and error_text != entry.last_error:
            notes.append(_note("Warning", "ApplyFailed", error_text))
        entry.last_error = error_text
        await self._post_events(notes, namespace, name, meta.get("uid", ""))
        self._observe_metrics(spec, plan, sample, namespace, name)
        db_problems = await self._record(entry, spec, new_state, namespace, name, template)
        if db_problems:
            await self._post_events(
                [_note("Warning", "HistoryNotRecorded", p) for p in db_problems],
                namespace,
                name,
                meta.get("uid", ""),
            )
        delay = plan.requeue_after or 30.0
        if errors:
            delay = min(delay, RETRY_SECONDS)  # a write that failed (traffic above all) is retried soon
        return StepResult(outcome, patch, delay, plan, tuple(errors))

    def _unreadable(
        self, spec: CanaryRolloutSpec, raw: Mapping[str, Any], generation: int | None, error: ValidationError
    ) -> StepResult:
        message = f"status unreadable, nothing changed: {error.errors()[0]['msg']}"
        state = CanaryRolloutStatus(phase="Degraded", message=message)
        plan = Plan(
            status=state, deployments=(), traffic=None, ready=False, reason="StatusUnreadable", conditions=()
        )
        outcome = Outcome(ready=False, reason="StatusUnreadable", message=message, phase="Degraded")
        now = dt.datetime.now(dt.UTC)
        return StepResult(outcome, status_patch(outcome, raw, generation, now), 30.0, plan)

    # ---- observe -----------------------------------------------------------------------------------

    async def _template(
        self, spec: CanaryRolloutSpec, namespace: str
    ) -> tuple[dict[str, Any] | None, str | None, dict[str, Any] | None]:
        """The pod template to release, the problem reading it, and the workloadRef Deployment."""
        if spec.template is not None:
            return dict(spec.template), None, None
        assert spec.workload_ref is not None
        ref = spec.workload_ref.name
        found = await self.io.get(DEPLOYMENTS, namespace, ref)
        if found is None:
            return None, f"spec.workloadRef: Deployment {namespace}/{ref} not found", None
        template = (found.get("spec") or {}).get("template")
        if not isinstance(template, dict):
            return None, f"spec.workloadRef: Deployment {namespace}/{ref} has no pod template", found
        return template, None, found

    async def _retire_reference(
        self,
        plan: Plan,
        spec: CanaryRolloutSpec,
        namespace: str,
        referenced: Mapping[str, Any] | None,
        errors: list[str],
    ) -> list[EventNote]:
        """Scale the taken-over workloadRef Deployment to 0 once the rollout's own pods serve."""
        patch = workload.retire_reference(referenced, serving=plan.ready and plan.traffic is not None)
        if patch is None or errors or referenced is None:
            return []
        ref = str((referenced.get("metadata") or {}).get("name"))
        try:
            await self.io.patch(DEPLOYMENTS, namespace, ref, patch)
        except Exception as error:
            errors.append(f"workloadRef Deployment {ref}: {_describe(error)}")
            return []
        before = int((referenced.get("spec") or {}).get("replicas", 1) or 0)
        colour = plan.status.stable_colour or BLUE
        return [
            _note(
                "Normal",
                "WorkloadTakenOver",
                f"Deployment {ref} scaled from {before} to 0 pods: the rollout's {colour} pods serve "
                f"Service {spec.service}; {ref} stays the source of the pod template",
            )
        ]

    async def _measure(
        self, spec: CanaryRolloutSpec, state: CanaryRolloutStatus, namespace: str, name: str, now: dt.datetime
    ) -> AnalysisSample:
        stage = applied_stage_of(state) if spec.strategy.type == StrategyType.CANARY else None
        found_checks = analysis.checks(spec, stage)
        revision = state.canary_revision or ""
        target = analysis.Target(namespace, name, revision, other(state.stable_colour or BLUE))
        token = None
        ref = spec.analysis.bearer_token
        if ref is not None and self._secret_value is not None:
            try:
                token = await self._secret_value(namespace, ref.name, ref.key)
            except LookupError as error:
                failed = tuple(Measurement(c.name, Raw.ERROR, None, c.max, str(error)) for c in found_checks)
                return AnalysisSample(now, revision, failed)
        address = spec.analysis.prometheus_address or ""
        prometheus = analysis.Prometheus(address, await self.session(), token)
        return await prometheus.measure(found_checks, target, now)

    # ---- execute -----------------------------------------------------------------------------------

    async def _execute(
        self,
        entry: Entry,
        plan: Plan,
        spec: CanaryRolloutSpec,
        namespace: str,
        name: str,
        owner: Mapping[str, Any],
        template: Mapping[str, Any] | None,
        desired: str | None,
        objects: Mapping[str, dict[str, Any] | None],
    ) -> list[str]:
        errors: list[str] = []
        if not plan.deployments:
            return errors  # the workload cannot be read: nothing is created or moved until it can
        first: list[Callable[[], Awaitable[Any]]] = []
        last: list[Callable[[], Awaitable[Any]]] = []
        for wanted in plan.deployments:
            obj = objects.get(wanted.colour)
            dep_name = workload.deployment_name(name, wanted.colour)
            body: dict[str, Any] | None = None
            if wanted.revision is not None and wanted.revision == desired and template is not None:
                body = workload.deployment(
                    rollout=name,
                    namespace=namespace,
                    colour=wanted.colour,
                    revision=desired,
                    template=template,
                    replicas=wanted.replicas,
                    owner=owner,
                )  # the Deployment this colour should run (it is re-templated to it)
            if obj is None:
                if body is not None and wanted.replicas > 0:
                    create = _bind(self.io.create, DEPLOYMENTS, namespace, body)
                    first.append(_bind(self._write_deployment, entry, wanted.colour, create))
                continue
            current_revision = ((obj.get("metadata") or {}).get("labels") or {}).get(LABEL_REVISION)
            current_replicas = int((obj.get("spec") or {}).get("replicas", 1) or 0)
            if body is not None and current_revision != desired:
                patch = {
                    "metadata": {
                        "labels": body["metadata"]["labels"],
                        "annotations": body["metadata"]["annotations"],
                    },
                    "spec": {
                        "replicas": wanted.replicas,
                        "template": _replacing(
                            (obj.get("spec") or {}).get("template"), body["spec"]["template"]
                        ),
                    },
                }
                write = _bind(self.io.patch, DEPLOYMENTS, namespace, dep_name, patch)
                last.append(_bind(self._write_deployment, entry, wanted.colour, write))
            elif current_replicas != wanted.replicas:
                patch = {"spec": {"replicas": wanted.replicas}}
                target = first if wanted.replicas > current_replicas else last
                write = _bind(self.io.patch, DEPLOYMENTS, namespace, dep_name, patch)
                target.append(_bind(self._write_deployment, entry, wanted.colour, write))
        for call in first:
            try:
                await call()
            except Exception as error:
                entry.deployments.clear()  # re-read them next time
                errors.append(_describe(error))
        traffic_ok = True
        ctx = RouterContext(
            io=self.io,
            namespace=namespace,
            rollout=name,
            service=spec.service,
            owner=owner,
            template=template,
            routing=spec.traffic_routing,
        )
        preview = spec.strategy.blue_green.preview_service if spec.strategy.blue_green else None
        wanted_traffic = (
            plan.traffic,
            plan.status.stable_colour,
            spec.service,
            preview,
            spec.traffic_routing,
        )
        fresh = entry.traffic is not None and time.monotonic() - entry.traffic[1] < RESYNC_SECONDS
        if not (fresh and entry.traffic is not None and entry.traffic[0] == wanted_traffic):
            try:
                if plan.traffic is not None:
                    await router_for(spec.traffic_routing.type).apply(ctx, plan.traffic)
                    if preview and plan.traffic.preview:
                        ports = await ctx.stable_ports()
                        await ctx.ensure_service_selector(
                            preview, selector(name, plan.traffic.preview), ports
                        )
                else:
                    await ctx.ensure_service_exists(plan.status.stable_colour or BLUE)
                entry.traffic = (wanted_traffic, time.monotonic())
            except Exception as error:
                entry.traffic = None
                traffic_ok = False
                errors.append(f"traffic: {_describe(error)}")
        if traffic_ok:
            for call in last:
                try:
                    await call()
                except Exception as error:
                    entry.deployments.clear()
                    errors.append(_describe(error))
        return errors

    async def _flags(
        self, entry: Entry, plan: Plan, namespace: str, name: str, owner: Mapping[str, Any]
    ) -> list[str]:
        wanted = tuple((f.name, f.enabled) for f in plan.status.flags)
        if wanted == entry.flags_written:
            return []
        data = {flag: "true" if on else "false" for flag, on in wanted}
        cm_name = flags_configmap(name)
        try:
            current = await self.io.get(CONFIGMAPS, namespace, cm_name)
            if current is None:
                body = {
                    "apiVersion": "v1",
                    "kind": "ConfigMap",
                    "metadata": {
                        "name": cm_name,
                        "namespace": namespace,
                        "labels": managed_labels(name),
                        "ownerReferences": [dict(owner)],
                    },
                    "data": data,
                }
                await self.io.create(CONFIGMAPS, namespace, body)
            elif (current.get("data") or {}) != data:
                removed = {k: None for k in (current.get("data") or {}) if k not in data}
                await self.io.patch(CONFIGMAPS, namespace, cm_name, {"data": {**removed, **data}})
        except Exception as error:
            return [f"ConfigMap {cm_name}: {_describe(error)}"]
        entry.flags_written = wanted
        return []

    async def _post_events(self, notes: list[EventNote], namespace: str, name: str, uid: str) -> None:
        for note in notes:
            self._events += 1
            stamp = rfc3339(dt.datetime.now(dt.UTC))
            body = {
                "apiVersion": "v1",
                "kind": "Event",
                "metadata": {"name": f"{name}.{time.time_ns():x}{self._events:x}", "namespace": namespace},
                "involvedObject": {
                    "apiVersion": API_VERSION,
                    "kind": INFO.kind,
                    "name": name,
                    "namespace": namespace,
                    "uid": uid,
                },
                "reason": note.reason,
                "message": note.message[:1024],
                "type": note.type,
                "source": {"component": "fortress-rollouts"},
                "reportingComponent": "fortress-rollouts",
                "reportingInstance": "fortress",
                "firstTimestamp": stamp,
                "lastTimestamp": stamp,
                "count": 1,
            }
            try:
                await self.io.create(EVENTS, namespace, body)
            except Exception as error:  # events are best effort
                log.warning("event %s for %s/%s not posted: %s", note.reason, namespace, name, error)

    def _observe_metrics(
        self,
        spec: CanaryRolloutSpec,
        plan: Plan,
        sample: AnalysisSample | None,
        namespace: str,
        name: str,
    ) -> None:
        state = plan.status
        metrics.set_phase(namespace, name, state.phase)
        metrics.ROLLOUT_CANARY_WEIGHT.labels(namespace, name).set(state.canary_weight or 0)
        if sample is not None:
            stamp = stamp_ms(sample.at)
            for result in (r for r in state.metrics if r.measured_at == stamp):
                metrics.ROLLOUT_ANALYSIS.labels(namespace, name, result.name, result.result).inc()
                if result.value is not None:
                    metrics.ROLLOUT_METRIC_VALUE.labels(namespace, name, result.name).set(result.value)
        for record in plan.finished:
            begun, ended = parse(record.started_at), parse(record.finished_at)
            if begun and ended:
                metrics.ROLLOUT_DURATION.labels(spec.strategy.type, record.outcome).observe(
                    (ended - begun).total_seconds()
                )
        if plan.rollback and state.abort_reason:
            metrics.ROLLOUT_ROLLBACKS.labels(namespace, name, state.abort_reason).inc()

    async def _record(
        self,
        entry: Entry,
        spec: CanaryRolloutSpec,
        state: CanaryRolloutStatus,
        namespace: str,
        name: str,
        template: Mapping[str, Any] | None,
    ) -> list[str]:
        """deployment_history and feature_flags, when spec.database is set (best effort, retried)."""
        ref = spec.database
        if ref is None or self._pools is None or self._secret_value is None:
            return []
        fingerprint = repr(
            (
                state.history,
                state.canary_revision,
                state.phase,
                state.rollout_started_at,
                state.steps,
                state.flags,
            )
        )
        if fingerprint == entry.db_fingerprint:
            return []
        dsn = ""
        try:
            dsn = await self._secret_value(namespace, ref.secret_key_ref.name, ref.secret_key_ref.key)
            pool = await self._pools.get(dsn)
            problems = await store.sync(
                pool,
                namespace=namespace,
                rollout=name,
                spec=spec,
                state=state,
                image=workload.image_of(template),
            )
        except Exception as error:
            text = f"database {redact(dsn) if dsn else ref.secret_key_ref.name}: {_describe(error)}"
            log.warning("%s/%s: %s", namespace, name, text)
            first_time = entry.db_error != text
            entry.db_error = text
            return [text] if first_time else []
        entry.db_fingerprint = fingerprint
        entry.db_error = None
        return problems


def _bind(func: Callable[..., Awaitable[Any]], *args: Any) -> Callable[[], Awaitable[Any]]:
    async def call() -> Any:
        return await func(*args)

    return call


def _replacing(current: Any, wanted: Mapping[str, Any]) -> dict[str, Any]:
    """A merge patch turning ``current`` into ``wanted`` (keys absent from ``wanted`` removed)."""
    if not isinstance(current, dict):
        return dict(wanted)
    patch: dict[str, Any] = {k: None for k in current if k not in wanted}
    for key, value in wanted.items():
        if isinstance(value, dict) and isinstance(current.get(key), dict):
            patch[key] = _replacing(current[key], value)
        else:
            patch[key] = value
    return patch


def _describe(error: BaseException) -> str:
    status = getattr(error, "status", None)
    body = getattr(error, "body", None)
    if status:
        return f"HTTP {status}: {str(body)[:200] if body else getattr(error, 'reason', '')}"
    return str(error) or type(error).__name__


def _note(kind: str, reason: str, message: str) -> EventNote:
    return EventNote(kind, reason, message)
