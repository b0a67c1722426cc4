"""Rebalancing: a pure planner (what to scan and move next) and an executor that moves keys in batches.

When the ring changes, the operator publishes a transition (the ring being left and the target ring) in
the ConfigMap ``<name>-ring`` before any key moves, so every router knows both rings (see
``fortress.sharding.router``). The executor then walks each source database of the old ring in key order
(keyset pages) and, for every key whose target owner lives in another database, runs a batch:

1. lock the batch's rows on the source (``SELECT ... FOR UPDATE SKIP LOCKED``; rows a writer or a prepared
   transaction holds are skipped and picked up by a later pass);
2. copy them to the target exactly (value, version, updated_at), overwriting any older copy a crashed batch
   left there, and commit on the target;
3. verify: read the rows back from the target and compare value and version; a mismatch aborts the batch
   (the source keeps every row);
4. switch ownership and delete from the source in one step: the delete commits on the source, releasing the
   row locks. From that instant a router finds the key absent on the source and uses the target.

A write to a key in flight: the router locks the key's row on the source first. While the batch holds it,
the write waits; after the batch commits, the write finds the row gone and goes to the target, which
already has the copy. If the writer held the lock first, the batch skips the row. No router creates a
moving key on its source, so "absent on the source" never becomes false again during the transition.

The checkpoint (``source:last-key``, persisted in ``status.rebalance.checkpoint``) advances only after a
page's batches committed, so a crash or restart resumes from it; re-running a page is harmless because
moved keys are no longer on the source. After the Moving phase a Verifying pass rescans every source from
the start and moves whatever is left (skipped rows, stray writes) until a pass finds nothing, and only then
is the rebalance Completed and the previous ring dropped. Shards that share one database (same identity)
never copy between themselves. The rate is limited to ``maxKeysPerSecond`` by pacing after each batch.

Removing a shard: the planner refuses while the shard is in a published ring; mark it ``draining: true``
first (it leaves the target ring, all its keys move), then remove it once the rebalance is Completed.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from enum import StrEnum

from fortress.metrics import sharding as metrics
from fortress.sharding import store
from fortress.sharding.ring import Ring, RingSpec, RoutingState
from fortress.sharding.router import Router


class Phase(StrEnum):
    IDLE = "Idle"
    PLANNING = "Planning"
    MOVING = "Moving"
    VERIFYING = "Verifying"
    COMPLETED = "Completed"
    PAUSED = "Paused"


class RebalanceError(Exception):
    """A batch failed verification or the plan's input is inconsistent."""


class InvalidCheckpoint(ValueError):
    pass


# ----------------------------------------------------------------------------- planner (pure)


@dataclass(frozen=True)
class Checkpoint:
    """Progress within a pass: every key of ``source`` up to and including ``after`` has been handled."""

    source: str
    after: str = ""

    def encode(self) -> str:
        return f"{self.source}:{self.after}"

    @classmethod
    def decode(cls, text: str | None) -> Checkpoint | None:
        """Parse ``source:after`` (shard ids contain no colon; the key may); None for an empty value."""
        if not text:
            return None
        source, sep, after = text.partition(":")
        if not sep or not source:
            raise InvalidCheckpoint(f"checkpoint {text!r} is not 'source-shard:last-key'")
        return cls(source, after)


@dataclass(frozen=True)
class ScanPlan:
    source: str
    after: str
    limit: int


@dataclass(frozen=True)
class BatchPlan:
    """The moves of one scanned page, grouped by target and cut into batches, and the next checkpoint."""

    source: str
    batches: tuple[tuple[str, tuple[str, ...]], ...]  # (target shard, keys)
    next_checkpoint: Checkpoint | None  # None: the pass is over

    @property
    def keys(self) -> int:
        return sum(len(keys) for _, keys in self.batches)


def source_groups(old: Ring, identities: Mapping[str, str]) -> tuple[str, ...]:
    """One source shard per database of the old ring (the first id of each identity), sorted."""
    seen: dict[str, str] = {}
    for shard in sorted(old.shard_ids):
        seen.setdefault(identities.get(shard, shard), shard)
    return tuple(sorted(seen.values()))


def plan_scan(
    old: Ring, identities: Mapping[str, str], checkpoint: Checkpoint | None, limit: int
) -> ScanPlan | None:
    """The next page to scan (None when the pass has covered every source)."""
    if limit < 1:
        raise ValueError(f"scan limit must be >= 1, got {limit}")
    sources = source_groups(old, identities)
    if checkpoint is None:
        return ScanPlan(sources[0], "", limit)
    if checkpoint.source not in sources:
        raise InvalidCheckpoint(
            f"checkpoint source {checkpoint.source!r} is not a source of the ring being left "
            f"({', '.join(sources)})"
        )
    return ScanPlan(checkpoint.source, checkpoint.after, limit)


def target_of(new: Ring, identities: Mapping[str, str], source: str, key: str) -> str | None:
    """The shard ``key`` (found on ``source``) must move to, or None when it stays in its database."""
    owner = new.owner(key)
    return None if identities.get(owner, owner) == identities.get(source, source) else owner


def plan_batch(
    old: Ring,
    new: Ring,
    identities: Mapping[str, str],
    scan: ScanPlan,
    scanned: Sequence[str],
    batch_size: int,
) -> BatchPlan:
    """Which of the scanned keys move where (in batches of at most ``batch_size``), and where to go next."""
    if batch_size < 1:
        raise ValueError(f"batch size must be >= 1, got {batch_size}")
    if len(scanned) > scan.limit:
        raise RebalanceError(f"scan returned {len(scanned)} keys, more than its limit {scan.limit}")
    # Keys come in the database's collation order, which need not be Python's: only check what holds anyway.
    if len(set(scanned)) != len(scanned):
        raise RebalanceError("scanned keys repeat: the scan is not a keyset page")
    if scan.after and scan.after in scanned:
        raise RebalanceError(f"scanned keys must come after the checkpoint key {scan.after!r}")
    by_target: dict[str, list[str]] = {}
    for key in scanned:
        target = target_of(new, identities, scan.source, key)
        if target is not None:
            by_target.setdefault(target, []).append(key)
    batches = tuple(
        (target, tuple(keys[i : i + batch_size]))
        for target, keys in sorted(by_target.items())
        for i in range(0, len(keys), batch_size)
    )
    if len(scanned) == scan.limit:
        following: Checkpoint | None = Checkpoint(scan.source, scanned[-1])
    else:
        sources = source_groups(old, identities)
        index = sources.index(scan.source)
        following = Checkpoint(sources[index + 1]) if index + 1 < len(sources) else None
    return BatchPlan(scan.source, batches, following)


def pace_delay(moved: int, elapsed: float, max_per_second: int) -> float:
    """Seconds to wait so that ``moved`` keys took at least ``moved / max_per_second`` seconds."""
    if max_per_second < 1:
        raise ValueError(f"maxKeysPerSecond must be >= 1, got {max_per_second}")
    return max(0.0, moved / max_per_second - elapsed)


def eta_seconds(remaining: int, rate: float | None) -> int | None:
    if remaining <= 0:
        return 0
    if not rate or rate <= 0:
        return None
    return int(remaining / rate + 0.999)


# ----------------------------------------------------------------------------- progress


@dataclass(frozen=True)
class Progress:
    """The rebalance state persisted in ``status.rebalance``."""

    phase: Phase
    from_ring: str
    to_ring: str
    total: int = 0
    moved: int = 0
    checkpoint: Checkpoint | None = None
    rate: float | None = None
    eta_seconds: int | None = None

    def wire(self) -> dict[str, object]:
        data: dict[str, object] = {
            "phase": self.phase.value,
            "moved": self.moved,
            "total": self.total,
            "fromRing": self.from_ring,
            "toRing": self.to_ring,
        }
        if self.rate is not None:
            data["rate"] = round(self.rate, 1)
        if self.eta_seconds is not None:
            data["etaSeconds"] = self.eta_seconds
        if self.checkpoint is not None:
            data["checkpoint"] = self.checkpoint.encode()
        return data

    @classmethod
    def from_wire(cls, data: Mapping[str, object] | None) -> Progress | None:
        if not data or not data.get("fromRing") or not data.get("toRing"):
            return None
        try:
            phase = Phase(str(data.get("phase") or Phase.PLANNING))
            checkpoint = Checkpoint.decode(str(data["checkpoint"])) if data.get("checkpoint") else None
        except ValueError:
            phase, checkpoint = Phase.PLANNING, None
        rate = data.get("rate")
        eta = data.get("etaSeconds")
        return cls(
            phase=phase,
            from_ring=str(data["fromRing"]),
            to_ring=str(data["toRing"]),
            total=_int(data.get("total")),
            moved=_int(data.get("moved")),
            checkpoint=checkpoint,
            rate=float(rate) if isinstance(rate, int | float) else None,
            eta_seconds=int(eta) if isinstance(eta, int) else None,
        )


def _int(value: object) -> int:
    return int(value) if isinstance(value, int | float) else 0


# ----------------------------------------------------------------------------- ring transitions (pure)


class RingAction(StrEnum):
    PUBLISH = "Publish"  # first publication of the ring (no ConfigMap yet)
    STABLE = "Stable"  # nothing to do
    START = "Start"  # publish the transition and plan the moves
    CONTINUE = "Continue"  # a transition is in progress
    FINISH = "Finish"  # the moves are complete: publish the target ring alone
    REFUSE = "Refuse"  # the change would drop data


@dataclass(frozen=True)
class RingDecision:
    action: RingAction
    routing: RoutingState | None  # the routing state to publish (None: leave the ConfigMap as it is)
    progress: Progress | None
    message: str = ""


def decide_ring(
    desired: RingSpec,
    published: RoutingState | None,
    spec_shards: Sequence[str],
    progress: Progress | None,
    *,
    cluster: str = "",
    paused: bool = False,
) -> RingDecision:
    """How the published ring moves towards the spec (pure).

    ``desired`` is the ring of the spec's non-draining shards; ``published`` what routers use now;
    ``spec_shards`` every shard id in the spec (draining ones included).
    """
    target = Ring(desired)
    if published is None:
        return RingDecision(RingAction.PUBLISH, RoutingState(target, None, cluster), None, "ring published")
    known = set(spec_shards)
    in_use = set(published.shard_ids())
    missing = sorted(in_use - known)
    if missing:
        where = "the ring being left or the target ring" if published.moving else "the published ring"
        return RingDecision(
            RingAction.REFUSE,
            None,
            progress,
            f"shard(s) {', '.join(missing)} were removed from spec.shards while still in {where}; their keys "
            "would be lost. Put them back with draining: true, wait for the rebalance to complete, then "
            "remove them",
        )
    current = published.current
    if published.moving and published.previous is not None:
        return _moving(target, published.previous, current, progress, cluster, paused)
    if target.fingerprint == current.fingerprint:
        if current.spec != desired:  # same layout, another replication factor: nothing moves
            return RingDecision(
                RingAction.PUBLISH, RoutingState(target, None, cluster), progress, "ring updated"
            )
        return RingDecision(RingAction.STABLE, None, progress, f"ring {current.fingerprint} is stable")
    fresh = Progress(Phase.PAUSED if paused else Phase.PLANNING, current.fingerprint, target.fingerprint)
    return RingDecision(
        RingAction.START,
        RoutingState(target, current, cluster),
        fresh,
        f"ring changed: rebalancing from {current.fingerprint} to {target.fingerprint}",
    )


def _moving(
    target: Ring, previous: Ring, current: Ring, progress: Progress | None, cluster: str, paused: bool
) -> RingDecision:
    """A transition from ``previous`` to ``current`` is published: finish it, or continue (or pause) it."""
    if (
        progress is None
        or progress.from_ring != previous.fingerprint
        or progress.to_ring != current.fingerprint
    ):
        progress = Progress(Phase.PLANNING, previous.fingerprint, current.fingerprint)
    if progress.phase is Phase.COMPLETED:
        return RingDecision(
            RingAction.FINISH,
            RoutingState(current, None, cluster),
            progress,
            f"rebalance complete: {progress.moved} keys moved to ring {current.fingerprint}",
        )
    note = ""
    if target.fingerprint != current.fingerprint:
        note = "; spec.shards changed again: the next rebalance starts when this one completes"
    if paused and progress.phase is not Phase.PAUSED:
        progress = replace(progress, phase=Phase.PAUSED)
    elif not paused and progress.phase is Phase.PAUSED:
        progress = replace(progress, phase=Phase.PLANNING)
    return RingDecision(
        RingAction.CONTINUE,
        None,
        progress,
        f"rebalancing from ring {previous.fingerprint} to {current.fingerprint}: {progress.moved}/"
        f"{progress.total} keys moved ({progress.phase.value}){note}",
    )


# ----------------------------------------------------------------------------- executor


Hook = Callable[[str], Awaitable[None] | None]
Save = Callable[[Progress], Awaitable[None]]


@dataclass
class Rebalancer:
    """Moves keys from ``old`` to ``new`` through a router that knows both rings (resumable)."""

    router: Router
    old: Ring
    new: Ring
    batch_size: int = 500
    max_keys_per_second: int = 5000
    scan_size: int = 10_000
    identities: Mapping[str, str] = field(default_factory=dict)  # shard id -> database identity
    save: Save | None = None
    hook: Hook | None = None
    save_interval: float = 1.0
    labels: tuple[str, str] = ("", "")  # namespace, name for metrics
    clock: Callable[[], float] = time.monotonic
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep
    _last_save: float = field(default=float("-inf"), init=False)
    _skipped: int = field(default=0, init=False)
    _window: list[tuple[float, int]] = field(default_factory=list, init=False)

    def __post_init__(self) -> None:
        if not self.identities:
            self.identities = {s: e.dsn for s, e in self.router.endpoints.items()}

    async def _step(self, name: str) -> None:
        if self.hook is not None:
            result = self.hook(name)
            if inspect.isawaitable(result):
                await result

    async def _save(self, progress: Progress, force: bool = False) -> None:
        now = self.clock()
        if self.save is not None and (force or now - self._last_save >= self.save_interval):
            self._last_save = now
            await self.save(progress)

    def _rate(self, moved: int) -> float | None:
        now = self.clock()
        self._window.append((now, moved))
        self._window = [(t, m) for t, m in self._window if now - t <= 5.0] or [(now, moved)]
        first_t, first_m = self._window[0]
        return (moved - first_m) / (now - first_t) if now > first_t else None

    async def count_remaining(self) -> int:
        """Keys still waiting to move (a full scan of every source database)."""
        remaining = 0
        checkpoint: Checkpoint | None = None
        while (scan := plan_scan(self.old, self.identities, checkpoint, self.scan_size)) is not None:
            keys = await self._scan(scan)
            plan = plan_batch(self.old, self.new, self.identities, scan, keys, self.batch_size)
            remaining += plan.keys
            checkpoint = plan.next_checkpoint
            if checkpoint is None:
                break
        return remaining

    async def _scan(self, scan: ScanPlan) -> list[str]:
        async with self.router.connection(scan.source, "rebalance_scan") as conn:
            return await store.scan_keys(conn, scan.after, scan.limit, self.router.config.query_timeout * 4)

    async def run(self, progress: Progress, *, recount: bool = True) -> Progress:
        """Drive the rebalance from ``progress`` to Completed (unless Paused), saving progress on the way.

        Resuming a Moving rebalance (``recount``) first counts the keys still to move, so that ``moved``
        is ``total - remaining`` whatever the last saved progress said; the scan restarts at the checkpoint.
        """
        if progress.phase in (Phase.PAUSED, Phase.COMPLETED):
            return progress
        if progress.phase in (Phase.PLANNING, Phase.IDLE) or (progress.phase is Phase.MOVING and recount):
            remaining = await self.count_remaining()
            total = progress.total if progress.total else remaining
            moved = max(0, total - remaining) if progress.total else 0
            progress = replace(progress, phase=Phase.MOVING, total=max(total, moved + remaining), moved=moved)
            metrics.REBALANCE_REMAINING.labels(*self.labels).set(remaining)
            await self._save(progress, force=True)
            await self._step("planned")
        if progress.phase is Phase.MOVING:
            progress = await self._pass(progress, progress.checkpoint)
            progress = replace(progress, phase=Phase.VERIFYING, checkpoint=None)
            await self._save(progress, force=True)
        while progress.phase is Phase.VERIFYING:
            before = progress.moved
            progress = await self._pass(progress, progress.checkpoint)
            if progress.moved == before and not self._skipped:
                progress = replace(progress, phase=Phase.COMPLETED, checkpoint=None, eta_seconds=0)
                progress = replace(progress, total=max(progress.total, progress.moved))
            else:
                progress = replace(progress, checkpoint=None)
                if self._skipped:  # rows held by writers or prepared transactions: try again shortly
                    await self.sleep(0.2)
            await self._save(progress, force=True)
        metrics.REBALANCE_REMAINING.labels(*self.labels).set(0)
        return progress

    async def _pass(self, progress: Progress, checkpoint: Checkpoint | None) -> Progress:
        self._skipped = 0
        started, moved_at_start = self.clock(), progress.moved
        while (scan := plan_scan(self.old, self.identities, checkpoint, self.scan_size)) is not None:
            keys = await self._scan(scan)
            plan = plan_batch(self.old, self.new, self.identities, scan, keys, self.batch_size)
            for target, batch in plan.batches:
                moved = await self.move_batch(scan.source, target, batch)
                self._skipped += len(batch) - moved
                progress = replace(progress, moved=progress.moved + moved)
                metrics.REBALANCE_MOVED.labels(*self.labels).inc(moved)
                rate = self._rate(progress.moved)
                remaining = max(0, progress.total - progress.moved)
                progress = replace(progress, rate=rate, eta_seconds=eta_seconds(remaining, rate))
                metrics.REBALANCE_REMAINING.labels(*self.labels).set(remaining)
                await self._save(progress)
                delay = pace_delay(
                    progress.moved - moved_at_start, self.clock() - started, self.max_keys_per_second
                )
                if delay > 0:
                    await self.sleep(delay)
            checkpoint = plan.next_checkpoint
            progress = replace(progress, checkpoint=checkpoint, total=max(progress.total, progress.moved))
            await self._save(progress)
            await self._step("page")
            if checkpoint is None:
                break
        return progress

    async def move_batch(self, source: str, target: str, keys: Sequence[str]) -> int:
        """Copy, verify, switch and delete one batch; the number of keys moved (locked rows are skipped)."""
        timeout = self.router.config.query_timeout * 4
        async with self.router.connections((source, target), "rebalance") as conns:
            src, dst = conns[source], conns[target]
            async with src.transaction():
                rows = await store.lock_rows(src, keys, timeout)
                if not rows:
                    return 0
                await self._step("locked")
                async with dst.transaction():
                    await store.copy_rows(dst, rows, timeout)
                await self._step("copied")
                verified = await store.verify_rows(dst, rows, timeout)
                if verified != len(rows):
                    raise RebalanceError(
                        f"verification failed moving {len(rows)} keys from {source} to {target}: only "
                        f"{verified} match; the source keeps them"
                    )
                await self._step("verified")
                deleted = await store.delete_rows(src, [r[0] for r in rows], timeout)
                if deleted != len(rows):
                    raise RebalanceError(f"deleted {deleted} of {len(rows)} locked rows on {source}")
                await self._step("deleting")
            await self._step("switched")
            return len(rows)
