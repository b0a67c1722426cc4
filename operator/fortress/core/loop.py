"""The per-object loop: the one runtime of every Fortress kind, and the only writer of their status.

Kopf runs one daemon per object, and the daemon runs one :class:`ObjectLoop`. A *step* validates the
spec (an invalid one is reported as ``Ready=False, reason=InvalidSpec`` naming the field, with a
Warning Event) and hands the valid spec to the kind's :class:`Reconciler`, which observes, decides
(purely) and acts, and returns an :class:`~fortress.core.outcome.Outcome`. The loop then writes what
changed in status as one merge patch, posts the step's Events (each once while it holds), and sleeps
until the outcome's ``requeue_after`` or until woken: by a spec change, by an object the kind watches,
or by another loop. A step that raises is reported as ``Ready=Unknown, reason=StepFailed`` and
retried with a backoff; nothing a spec holds can make the loop itself fail. A check or background
task of the reconciler that fails (:mod:`fortress.core.health`) holds ``Ready`` back the same way,
as ``reason=CheckFailed``, until it passes again.

Because this loop is the only writer of its object's status, the status it last wrote is the truth
(a watch event may still carry an older one), so no step ever acts on a stale status. A reconciler
keeps whatever it needs between steps on itself: one reconciler object lives as long as its loop.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final, Protocol, TypeVar, cast

from fortress import metrics
from fortress.adapters.kube import Resource, custom
from fortress.api.common import API_VERSION, Model
from fortress.api.kind import KindInfo
from fortress.core import merge
from fortress.core.conditions import READY, is_true
from fortress.core.errors import describe
from fortress.core.health import Checks
from fortress.core.outcome import INVALID_SPEC, EventNote, Outcome, invalid_outcome, status_patch
from fortress.core.services import Services
from fortress.core.time import now as utc_now
from fortress.core.validation import validate_spec
from fortress.logs import ObjectLog, names_object

log = logging.getLogger("fortress")

RESYNC_SECONDS: Final = 300.0  # a step at least this often, whatever the reconciler asks
ERROR_BACKOFF: Final = (1.0, 2.0, 5.0, 10.0, 30.0, 60.0)
STEP_FAILED: Final = "StepFailed"
NOT_IMPLEMENTED: Final = "NotImplemented"
Logger = logging.Logger | logging.LoggerAdapter[Any]


@dataclass(frozen=True)
class ObjectRef:
    """One object of a Fortress kind."""

    info: KindInfo
    namespace: str
    name: str

    @property
    def resource(self) -> Resource:
        return custom(self.info.group, self.info.version, self.info.plural, self.info.kind)

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.info.kind, self.namespace, self.name)

    def involved(self, uid: str | None) -> dict[str, Any]:
        """The object as an Event's involvedObject."""
        return {
            "apiVersion": API_VERSION,
            "kind": self.info.kind,
            "name": self.name,
            "namespace": self.namespace,
            "uid": uid,
        }

    def __str__(self) -> str:
        return f"{self.info.kind} {self.namespace}/{self.name}"


class Reconciler(Protocol):
    """What a subsystem provides per object; one instance lives as long as the object's loop."""

    async def step(self, ctx: StepContext) -> Outcome | None:
        """Observe, decide, act; the outcome to record (None: this step writes no status)."""
        ...

    async def close(self, deleted: bool) -> None:
        """Release what the reconciler holds; ``deleted``: the object is gone (not the operator stopping)."""
        ...


ReconcilerFactory = Callable[[Services, ObjectRef], Reconciler]
R = TypeVar("R")


class NotImplementedReconciler:
    """The reconciler of a kind whose capability is not built yet: it says so, never Ready=True."""

    def __init__(self, _services: Services, ref: ObjectRef) -> None:
        self.ref = ref

    async def step(self, ctx: StepContext) -> Outcome:
        kind = self.ref.info.kind
        message = f"{kind} spec is valid, but this operator does not act on {kind} resources yet"
        return Outcome(ready=False, reason=NOT_IMPLEMENTED, message=message, phase="NotImplemented")

    async def close(self, deleted: bool) -> None:
        return None


@dataclass
class StepContext:
    """What one step of a reconciler gets: the object as last seen and the validated spec."""

    ref: ObjectRef
    body: Mapping[str, Any]
    spec: Model
    status: Mapping[str, Any]  # as this loop last wrote it (else as watched)
    generation: int | None
    uid: str | None
    changed: bool  # first step, or the spec changed since the previous step
    logger: Logger
    services: Services
    loop: ObjectLoop

    @property
    def namespace(self) -> str:
        return self.ref.namespace

    @property
    def name(self) -> str:
        return self.ref.name

    @property
    def checks(self) -> Checks:
        """The object's named checks: record a failure of a check or background task, or its passing."""
        return self.loop.checks

    @property
    def meta(self) -> Mapping[str, Any]:
        return cast(Mapping[str, Any], self.body.get("metadata") or {})

    async def write_status(self, fields: Mapping[str, Any]) -> None:
        """Merge ``fields`` into this object's status now (e.g. progress of a long task)."""
        await self.loop.write_fields(fields)

    async def write_status_of(
        self, ref: ObjectRef, current: Mapping[str, Any] | None, patch: Mapping[str, Any]
    ) -> None:
        """Write another object's status that this loop owns (e.g. a DRPlan's regions)."""
        await self.loop.write_other(ref, current, patch)

    async def post(self, note: EventNote, about: ObjectRef | None = None, uid: str | None = None) -> None:
        """Post an Event about this object (or ``about``), once while the same note holds."""
        target = about or self.ref
        await self.loop.post(note, target, uid if about is not None else self.uid)


@dataclass
class _Memory:
    """What the loop keeps between steps."""

    status: dict[str, Any] | None = None  # as last written, None before the first write
    uid: str | None = None
    generation: int | None = None
    posted: dict[tuple[str, str], set[tuple[str, str, str]]] = field(default_factory=dict)
    posting: dict[tuple[str, str], set[tuple[str, str, str]]] = field(default_factory=dict)
    failures: int = 0


class ObjectLoop:
    """Steps one object until its daemon is stopped; the only writer of its status."""

    def __init__(
        self, ref: ObjectRef, reconciler: Reconciler, services: Services, logger: Logger = log
    ) -> None:
        self.ref = ref
        self.reconciler = reconciler
        self.services = services
        self.logger: Logger = (
            logger if names_object(logger) else ObjectLog(logger, ref.info.kind, ref.namespace, ref.name)
        )
        self._wake = asyncio.Event()
        self._stepping = asyncio.Lock()
        self._writing = asyncio.Lock()
        self._memory = _Memory()
        self.gone = False
        self.checks = Checks(ref.info.kind, wake=self._wake_after_step)

    # ---- waking -------------------------------------------------------------------------------------

    def wake(self) -> None:
        """Run a step as soon as the current one (if any) ends."""
        self._wake.set()

    def _wake_after_step(self) -> None:
        """A check changed: show it in a step (the running step, if any, shows it already)."""
        if not self._stepping.locked():
            self.wake()

    def notice(self, body: Mapping[str, Any]) -> None:
        """A watch event of the object: wake for a spec change (status-only events are our own writes)."""
        meta = body.get("metadata") or {}
        if meta.get("generation") != self._memory.generation or meta.get("deletionTimestamp"):
            self.wake()

    async def _sleep(self, seconds: float, stopped: Any) -> None:
        waits = {asyncio.ensure_future(self._wake.wait()), asyncio.ensure_future(stopped.wait())}
        try:
            await asyncio.wait(waits, timeout=max(0.0, seconds), return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in waits:
                task.cancel()

    async def run(self, body: Mapping[str, Any], stopped: Any) -> None:
        """Step, then sleep until requeued or woken, until ``stopped`` (a Kopf DaemonStopped) is set."""
        while not stopped and not self.gone:
            try:
                delay = await self.step(body)
            except asyncio.CancelledError:
                raise
            except Exception as error:  # writing status or Events failed: retried, the loop lives on
                self._memory.failures += 1
                metrics.STEP_ERRORS.labels(self.ref.info.kind, type(error).__name__).inc()
                delay = ERROR_BACKOFF[min(self._memory.failures - 1, len(ERROR_BACKOFF) - 1)]
                self.logger.warning(
                    "status of %s not written, retrying in %.0fs: %s", self.ref, delay, describe(error)
                )
            if stopped or self.gone:
                return
            await self._sleep(delay, stopped)

    # ---- one step -----------------------------------------------------------------------------------

    def _status_of(self, body: Mapping[str, Any]) -> Mapping[str, Any]:
        """The status as this loop last wrote it; on the first step, as watched (then ours)."""
        uid = (body.get("metadata") or {}).get("uid")
        if self._memory.uid != uid:  # first step, or a new object under the same name
            self._memory = _Memory(uid=uid)
        if self._memory.status is None:
            self._memory.status = dict(body.get("status") or {})
        return self._memory.status

    async def step(self, body: Mapping[str, Any]) -> float:
        """One step; the seconds until the next one."""
        async with self._stepping:
            self._wake.clear()
            started = time.perf_counter()
            kind = self.ref.info.kind
            meta = body.get("metadata") or {}
            if meta.get("deletionTimestamp"):
                return RESYNC_SECONDS  # the daemon is being stopped
            status = self._status_of(body)
            generation = meta.get("generation")
            validated = validate_spec(self.ref.info, body.get("spec"))
            try:
                if not validated.valid or validated.spec is None:
                    outcome: Outcome | None = invalid_outcome(validated)
                else:
                    ctx = StepContext(
                        ref=self.ref,
                        body=body,
                        spec=validated.spec,
                        status=status,
                        generation=generation,
                        uid=meta.get("uid"),
                        changed=generation != self._memory.generation,
                        logger=self.logger,
                        services=self.services,
                        loop=self,
                    )
                    outcome = await self.reconciler.step(ctx)
                    if outcome is not None:
                        outcome = self.checks.apply(outcome)
                self._memory.generation = generation
                self._memory.failures = 0
            except asyncio.CancelledError:
                raise
            except Exception as error:  # reported, counted and retried: a loop never dies of a step
                outcome = self._failed(error, status)
            finally:
                metrics.RECONCILE_SECONDS.labels(kind).observe(time.perf_counter() - started)
                metrics.LAST_STEP.labels(kind, self.ref.namespace, self.ref.name).set(time.time())
            if outcome is None:
                await self._flush_events()
                return RESYNC_SECONDS
            await self._record(outcome, generation, meta.get("uid"))
            if outcome.reason == STEP_FAILED:
                return ERROR_BACKOFF[min(self._memory.failures - 1, len(ERROR_BACKOFF) - 1)]
            if outcome.reason == INVALID_SPEC:
                return RESYNC_SECONDS
            return min(
                outcome.requeue_after if outcome.requeue_after is not None else RESYNC_SECONDS, RESYNC_SECONDS
            )

    def _failed(self, error: BaseException, status: Mapping[str, Any]) -> Outcome:
        self._memory.failures += 1
        text = describe(error)
        metrics.STEP_ERRORS.labels(self.ref.info.kind, type(error).__name__).inc()
        delay = ERROR_BACKOFF[min(self._memory.failures - 1, len(ERROR_BACKOFF) - 1)]
        self.logger.warning("step failed (%s), retrying in %.0fs: %s", self.ref, delay, text)
        self.logger.debug("step failure of %s", self.ref, exc_info=error)
        return Outcome(
            ready=None,
            reason=STEP_FAILED,
            message=f"the last step failed and is retried: {text}",
            phase=str(status.get("phase") or "Unknown"),
        )

    async def _record(self, outcome: Outcome, generation: int | None, uid: str | None) -> None:
        kind = self.ref.info.kind
        written = await self._write_outcome(outcome, generation)
        if written is not None:
            ready = is_true(written.get("conditions"), READY)
            metrics.RESOURCE_READY.labels(kind, self.ref.namespace, self.ref.name).set(1 if ready else 0)
        result = {True: "ok", False: "notready", None: "error"}[outcome.ready]
        if outcome.reason == INVALID_SPEC:
            result = "invalid"
        metrics.RECONCILES.labels(kind, result).inc()  # counted once what they count is written
        if result == "invalid":
            metrics.INVALID_SPECS.labels(kind).inc()
        for note in outcome.events:
            await self.post(note, self.ref, uid)
        await self._flush_events()

    # ---- status -------------------------------------------------------------------------------------

    async def _write_outcome(self, outcome: Outcome, generation: int | None) -> dict[str, Any] | None:
        async with self._writing:
            base = self._memory.status or {}
            patch = status_patch(outcome, base, generation, utc_now())
            return await self._patch_own(base, patch)

    async def write_fields(self, fields: Mapping[str, Any]) -> None:
        """Merge ``fields`` into this object's status (serialised with every other write)."""
        async with self._writing:
            await self._patch_own(self._memory.status or {}, fields)

    async def _patch_own(self, base: Mapping[str, Any], patch: Mapping[str, Any]) -> dict[str, Any] | None:
        delta = merge.changes(base, patch)
        if not delta:
            return dict(base)
        written = await self._patch(self.ref, delta)
        if written is None:
            self.gone = True
            return None
        self._memory.status = dict(written.get("status") or {})
        return self._memory.status

    async def write_other(
        self, ref: ObjectRef, current: Mapping[str, Any] | None, patch: Mapping[str, Any]
    ) -> None:
        """Write the status of an object this loop owns the status of."""
        delta = merge.changes(current or {}, patch)
        if not delta:
            return
        async with self._writing:
            written = await self._patch(ref, delta)
        other = self.services.loops.get(*ref.key)
        if written is not None and other is not None and other is not self:
            other.written_by_owner(written)

    def written_by_owner(self, body: Mapping[str, Any]) -> None:
        """The loop that owns this object's status wrote it: that is the status now (the next own
        write is computed against it, not against what this loop wrote before)."""
        uid = (body.get("metadata") or {}).get("uid")
        if self._memory.status is not None and uid == self._memory.uid:
            self._memory.status = dict(body.get("status") or {})

    async def _patch(self, ref: ObjectRef, delta: Mapping[str, Any]) -> dict[str, Any] | None:
        """Patch the status subresource; None when the object is gone."""
        try:
            return await self.services.kube.patch(
                ref.resource, ref.namespace, ref.name, {"status": dict(delta)}, subresource="status"
            )
        except Exception as error:
            if getattr(error, "status", None) == 404:
                return None
            raise

    # ---- events -------------------------------------------------------------------------------------

    async def post(self, note: EventNote, about: ObjectRef, uid: str | None) -> None:
        """Post ``note`` unless the same note was posted in the previous step and still holds."""
        target = (about.info.kind, about.name)
        signature = (note.type, note.reason, note.message)
        self._memory.posting.setdefault(target, set()).add(signature)
        if signature in self._memory.posted.get(target, set()):
            return
        try:
            await self.services.kube.post_event(
                about.involved(uid), note.type, note.reason, note.message, component="fortress"
            )
        except Exception as error:  # an Event is best effort
            self.logger.warning("event %s about %s not posted: %s", note.reason, about, describe(error))

    async def _flush_events(self) -> None:
        """End a step: the notes it posted are the ones that hold now."""
        self._memory.posted, self._memory.posting = self._memory.posting, {}

    async def close(self, deleted: bool) -> None:
        await self.reconciler.close(deleted)
        if deleted:
            metrics.forget_resource(self.ref.info.kind, self.ref.namespace, self.ref.name)


class Loops:
    """Every running loop of one operator, by kind, namespace and name (the one index of them)."""

    def __init__(self) -> None:
        self._loops: dict[tuple[str, str, str], ObjectLoop] = {}

    def add(self, loop: ObjectLoop) -> None:
        self._loops[loop.ref.key] = loop

    def remove(self, loop: ObjectLoop) -> None:
        if self._loops.get(loop.ref.key) is loop:
            del self._loops[loop.ref.key]

    def get(self, kind: str, namespace: str, name: str) -> ObjectLoop | None:
        return self._loops.get((kind, namespace, name))

    def wake(self, kind: str, namespace: str, name: str) -> bool:
        """Wake one object's loop; False when it has none (yet)."""
        found = self.get(kind, namespace, name)
        if found is not None:
            found.wake()
        return found is not None

    def reconciler(self, kind: str, namespace: str, name: str, type_: type[R]) -> R | None:
        """The reconciler of one object's loop, when it runs and is a ``type_``."""
        found = self.get(kind, namespace, name)
        return found.reconciler if found is not None and isinstance(found.reconciler, type_) else None

    def of_kind(self, kind: str) -> list[ObjectLoop]:
        return [loop for key, loop in self._loops.items() if key[0] == kind]

    def __len__(self) -> int:
        return len(self._loops)
