"""One SyntheticDataset in the operator: generate, write, swap in, watch the decoy, clean up.

PostgreSQL target: a step finds the live table; when it is not this dataset's of the current
generation key, the reconciler runs a generation task (owned here, like the ledger's projector)
that writes the records into a staging table one COPY per chunk, resuming after the records already
there, then swaps it in atomically and wakes the loop. The task writes its progress between steps
(``ctx.write_status``); every other status field comes from the step's outcome. A live table of the
current key is Ready; with ``spec.decoy`` each step compares its read counters with the baseline
taken when it went live. ConfigMap target: the records (at most 5,000) are generated in a worker
thread and written as one CSV key. Deleting the resource drops what it made unless
``spec.retainOnDelete``.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import time
from collections.abc import Iterator
from dataclasses import replace
from typing import Any, Final, cast

import asyncpg

from fortress.adapters.kube import CONFIGMAPS, meta, owner_reference
from fortress.api.common import API_VERSION, RequestOutcome
from fortress.api.syntheticdataset import SyntheticDatasetSpec
from fortress.core.errors import Secret, database, describe
from fortress.core.health import Checks
from fortress.core.loop import ObjectRef, StepContext
from fortress.core.outcome import ConditionUpdate, EventNote, Outcome
from fortress.core.requests import handled, handled_id, pending
from fortress.core.services import Services
from fortress.core.time import now, seconds_of, stamp
from fortress.metrics import synthetic as metrics
from fortress.synthetic import plan, quality, render, status, store
from fortress.synthetic.generate import Block, Generator, Recipe, check_locale, chunks, generator

CONNECT_TIMEOUT: Final = 10.0
MAX_BACKOFF: Final = 30.0
PROGRESS_EVERY: Final = 1.0
OWNER_ANNOTATION: Final = "fortress.io/synthetic-dataset"
KEY_ANNOTATION: Final = "fortress.io/generation-key"
DIGEST_ANNOTATION: Final = "fortress.io/digest"
RECORDS_ANNOTATION: Final = "fortress.io/records"
DB_ERRORS: Final = (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError)

log = logging.getLogger("fortress.synthetic")


def token_digests(blocks: list[Block], column: int | None) -> list[bytes]:
    """SHA-256 digests of the API tokens in the blocks (as the API's TokenStore keeps tokens)."""
    if column is None:
        return []
    out: list[bytes] = []
    for block in blocks:
        has = ~block.nulls[column]
        out += [hashlib.sha256(t.encode()).digest() for t in block.fields[column][has].tolist()]
    return out


def token_column(gen: Generator) -> int | None:
    names = [c.name for c in gen.columns]
    return names.index("api_token") if "api_token" in names else None


def _render_next(
    chunk_iter: Iterator[list[Block]], tokens: int | None
) -> tuple[bytes, int, list[bytes]] | None:
    """The next chunk as canonical bytes, its record count and token digests (in a worker thread)."""
    parts = next(chunk_iter, None)
    if parts is None:
        return None
    data = "".join(render.text(b) for b in parts).encode()
    return data, sum(len(b) for b in parts), token_digests(parts, tokens)


def _hash_prefix(gen: Generator, records: int, digest: Any) -> list[bytes]:
    """Feed the canonical bytes of records 0 .. records-1 to ``digest``; their token digests."""
    tokens = token_column(gen)
    found: list[bytes] = []
    for parts in chunks(gen, 65_536, 0, records):
        digest.update("".join(render.text(b) for b in parts).encode())
        found += token_digests(parts, tokens)
    return found


def _config_map_payload(recipe: Recipe) -> tuple[str, str, int, dict[str, Any], list[bytes]]:
    """CSV text, digest, record count, quality and token digests of a small dataset (blocking)."""
    gen = generator(recipe)
    parts = [b for chunk in chunks(gen, recipe.total) for b in chunk]
    digest = hashlib.sha256("".join(render.text(b) for b in parts).encode()).hexdigest()
    csv = render.csv_header(gen.columns) + "".join(render.csv(b) for b in parts)
    report = quality.assess(gen).wire()
    return csv, digest, sum(len(b) for b in parts), report, token_digests(parts, token_column(gen))


class SyntheticReconciler:
    """Generates one SyntheticDataset into its target and watches it as a decoy."""

    def __init__(self, services: Services, ref: ObjectRef) -> None:
        self.services, self.ref = services, ref
        self.owner = f"{ref.namespace}/{ref.name}"
        self._job: asyncio.Task[None] | None = None
        self._job_key: str | None = None
        self.progress: status.Progress | None = None
        self._spec: SyntheticDatasetSpec | None = None
        self._uid: str | None = None
        self._dsn: str | None = None
        self._audit_dsn: str | None = None
        self._checks: Checks | None = None

    # ---- the step -------------------------------------------------------------------------------------

    async def step(self, ctx: StepContext) -> Outcome:
        spec = cast(SyntheticDatasetSpec, ctx.spec)
        self._spec, self._uid, self._checks = spec, ctx.uid, ctx.checks
        problem = await asyncio.to_thread(check_locale, spec.locale)
        if problem is not None:
            await self._stop_job()
            return status.invalid("spec.locale", problem)
        recipe = plan.recipe_of(spec)
        request = pending(spec.request, handled_id(ctx.status))
        regenerate = plan.regenerate_id(ctx.status)
        recorded: dict[str, Any] = {}
        if request is not None:
            regenerate = request.request_id
            recorded["lastRequest"] = handled(
                request.request_id,
                str(request.action),
                RequestOutcome.ACCEPTED,
                "regenerating into a new table, swapped in when complete",
                now(),
            )
        key = plan.generation_key(recipe, regenerate)
        try:
            if spec.decoy is not None and spec.decoy.audit is not None:
                audit_ref = spec.decoy.audit.secret_key_ref
                self._audit_dsn = await self.services.secret(ctx.namespace, audit_ref)
            if spec.target.type == "configMap":
                outcome = await self._config_map(ctx, spec, recipe, key)
            else:
                outcome = await self._postgres(ctx, spec, recipe, key)
        except LookupError as error:
            await self._stop_job()
            outcome = status.not_ready("SecretNotFound", f"{error}; create it with the connection string")
        if recorded:
            outcome = replace(outcome, fields={**outcome.fields, **recorded})
        return outcome

    # ---- ConfigMap ----------------------------------------------------------------------------------

    async def _config_map(
        self, ctx: StepContext, spec: SyntheticDatasetSpec, recipe: Recipe, key: str
    ) -> Outcome:
        await self._stop_job()
        name = spec.target.config_map or f"{ctx.name}-data"
        target = f"configmap/{name}"
        kube = self.services.kube
        existing = await kube.get(CONFIGMAPS, ctx.namespace, name)
        annotations = dict(meta(existing).get("annotations") or {})
        if existing is not None and annotations.get(OWNER_ANNOTATION) != self.owner:
            return self._refused(f"ConfigMap {ctx.namespace}/{name}", "spec.target.configMap")
        fields: dict[str, Any] = {"generationKey": key}
        if existing is not None and annotations.get(KEY_ANNOTATION) == key:
            records = int(annotations.get(RECORDS_ANNOTATION) or 0)
            fields["digest"] = annotations.get(DIGEST_ANNOTATION)
            if ctx.status.get("generationKey") != key or not ctx.status.get("quality"):
                _, _, _, fields["quality"], _ = await asyncio.to_thread(_config_map_payload, recipe)
            return status.ready(records, target, fields)
        started = time.monotonic()
        csv, digest, records, report, tokens = await asyncio.to_thread(_config_map_payload, recipe)
        if tokens:
            await self._register_tokens(ctx, tokens)
        body: dict[str, Any] = {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {
                "name": name,
                "namespace": ctx.namespace,
                "labels": {"app.kubernetes.io/managed-by": "fortress", OWNER_ANNOTATION: ctx.name},
                "annotations": {
                    OWNER_ANNOTATION: self.owner,
                    KEY_ANNOTATION: key,
                    DIGEST_ANNOTATION: digest,
                    RECORDS_ANNOTATION: str(records),
                },
            },
            "data": {f"{recipe.kind}.csv": csv},
        }
        if not spec.retain_on_delete and ctx.uid:
            owner = owner_reference(API_VERSION, self.ref.info.kind, ctx.name, ctx.uid)
            body["metadata"]["ownerReferences"] = [owner]
        if existing is None:
            await kube.create(CONFIGMAPS, ctx.namespace, body)
        else:
            await kube.replace(CONFIGMAPS, ctx.namespace, name, body)
        elapsed = max(time.monotonic() - started, 1e-6)
        metrics.RECORDS_GENERATED.labels(recipe.kind, "configMap").inc(records)
        metrics.GENERATION_RATE.labels(ctx.namespace, ctx.name).set(records / elapsed)
        fields.update(
            digest=digest,
            quality=report,
            lastGeneratedAt=stamp(now()),
            recordsPerSecond=round(records / elapsed, 1),
        )
        if tokens:
            fields["decoy"] = {"tokens": len(tokens)}
        return status.ready(records, target, fields)

    def _refused(self, what: str, field: str) -> Outcome:
        return status.not_ready(
            "TargetNotOwned",
            f"{what} exists and was not made for SyntheticDataset {self.owner}: it is never overwritten; "
            f"remove it or choose another {field}",
            warn=True,
            requeue_after=60.0,
        )

    # ---- PostgreSQL ---------------------------------------------------------------------------------

    async def _pool(self, dsn: str) -> Any:
        """The pool of ``dsn`` held for this dataset (its target or its audit database)."""
        purpose = "audit" if dsn == self._audit_dsn and dsn != self._dsn else "target"
        owner = (*self.ref.key, purpose)
        return await asyncio.wait_for(self.services.pools.hold(owner, dsn), CONNECT_TIMEOUT)

    async def _postgres(
        self, ctx: StepContext, spec: SyntheticDatasetSpec, recipe: Recipe, key: str
    ) -> Outcome:
        assert spec.target.postgres is not None
        ref = spec.target.postgres.connection.secret_key_ref
        table = spec.target.postgres.table
        dsn = await self.services.secret(ctx.namespace, ref)
        self._dsn = dsn
        secret = Secret.of(dsn, ctx.namespace, ref.name, ref.key)
        where = database(dsn, secret)
        target = f"postgres table {table} in {where}"
        try:
            pool = await self._pool(dsn)
            async with pool.acquire() as conn:
                live = await store.live_table(conn, table)
            view = plan.TargetView(live is not None, live.marker if live is not None else None)
            action = plan.decide(self.owner, key, view)
            if action is plan.Action.REFUSE:
                await self._stop_job()
                return self._refused(f"table {table} in {where}", "spec.target.postgres.table")
            decoy = None
            if spec.decoy is not None and live is not None:
                decoy = await self._watch(ctx, pool, table, target, secret)
        except DB_ERRORS as error:
            await self.services.pools.discard(dsn)
            return status.not_ready("DatabaseUnavailable", f"cannot use {where}: {describe(error, [secret])}")
        if action is plan.Action.READY:
            await self._stop_job()
            assert live is not None and live.marker is not None
            marker = live.marker
            fields: dict[str, Any] = {
                "generationKey": key,
                "digest": marker.digest,
                "lastGeneratedAt": marker.generated_at,
                "quality": marker.quality,
            }
            if decoy is not None:
                fields["decoy"] = decoy[2]
            interval = (
                seconds_of(spec.decoy.check_interval) if spec.decoy is not None else status.READY_SECONDS
            )
            return status.ready(
                int(marker.records or 0), target, fields, decoy[:2] if decoy else None, interval
            )
        self._ensure_job(ctx, spec, recipe, key, dsn, secret)
        progress = self.progress or status.Progress(0, recipe.total, None)
        outcome = status.generating(progress, target, {"generationKey": key})
        if decoy is not None:  # the previous dataset is still live, and still a decoy
            outcome = replace(
                outcome,
                fields={**outcome.fields, "decoy": decoy[2]},
                conditions=(*outcome.conditions, decoy[0]),
                events=(*outcome.events, *decoy[1]),
            )
        return outcome

    async def _watch(
        self, ctx: StepContext, pool: Any, table: str, target: str, secret: Secret
    ) -> tuple[ConditionUpdate, tuple[EventNote, ...], dict[str, Any]] | None:
        """Check the live table's read counters against the baseline (DecoyTouched, metric, audit)."""
        async with pool.acquire() as conn:
            counted = await store.scans(conn, table)
        if counted is None:
            return None
        before = dict(ctx.status.get("decoy") or {})
        verdict = plan.assess_decoy(before, *counted)
        since = before.get("lastTouchedAt") if not verdict.rebaselined else None
        events: tuple[EventNote, ...] = ()
        if verdict.new:
            since = since or stamp(now())
            metrics.DECOY_READS.labels(ctx.namespace, ctx.name).inc(verdict.new)
            ctx.logger.warning("decoy %s: %d new read(s) of table %s", self.owner, verdict.new, table)
            problem = await self._audit_read(ctx, pool, table, verdict)
            if problem:
                events = (EventNote("Warning", "AuditUnavailable", problem),)
        condition, notes = status.decoy_condition(verdict, target, since)
        fields = {
            "reads": verdict.reads,
            "relid": verdict.relid,
            "baselineScans": verdict.baseline,
            "lastTouchedAt": since if verdict.reads else None,
        }
        return condition, (*notes, *events), fields

    async def _audit_read(
        self, ctx: StepContext, pool: Any, table: str, verdict: plan.DecoyVerdict
    ) -> str | None:
        """Write the audit record of new reads; what went wrong, or None."""
        details = {
            "table": table,
            "newReads": verdict.new,
            "reads": verdict.reads,
            "source": "pg_stat_user_tables",
        }
        try:
            if self._audit_dsn is not None:
                audit_pool = await self._pool(self._audit_dsn)
            elif await _has_audit(pool):
                audit_pool = pool
            else:
                return (
                    "no audit_trail table in the target database and no spec.decoy.audit: the read is "
                    "counted and alerted on, but not audited"
                )
            async with audit_pool.acquire() as conn:
                await store.audit(conn, "synthetic.decoy.read", ctx.namespace, ctx.name, "success", details)
        except DB_ERRORS as error:
            return f"audit record not written: {describe(error, self._secrets(ctx))}"
        return None

    def _secrets(self, ctx: StepContext) -> list[Secret]:
        found = []
        for dsn in (self._dsn, self._audit_dsn):
            if dsn:
                found.append(Secret(dsn, "<the connection string>"))
        return found

    async def _register_tokens(self, ctx: StepContext, digests: list[bytes]) -> None:
        if self._audit_dsn is None:
            raise LookupError("spec.decoy.audit is required to register decoy API tokens")
        pool = await self._pool(self._audit_dsn)
        async with pool.acquire() as conn:
            await store.register_tokens(conn, ctx.namespace, ctx.name, digests)

    # ---- the generation task --------------------------------------------------------------------------

    def _ensure_job(
        self, ctx: StepContext, spec: SyntheticDatasetSpec, recipe: Recipe, key: str, dsn: str, secret: Secret
    ) -> None:
        running = self._job is not None and not self._job.done()
        if running and self._job_key == key:
            return
        if self._job is not None:
            self._job.cancel()
            ctx.checks.passed("generation")  # the old job's errors are not the new one's
        self._job_key = key
        self.progress = None
        self._job = asyncio.create_task(
            self._generate(ctx, spec, recipe, key, dsn, secret), name=f"generate {self.ref}"
        )

    async def _generate(
        self, ctx: StepContext, spec: SyntheticDatasetSpec, recipe: Recipe, key: str, dsn: str, secret: Secret
    ) -> None:
        """Write the dataset until it is live; every failure is shown and retried with a backoff."""
        backoff = 1.0
        while True:
            try:
                await self._write(ctx, spec, recipe, key, dsn)
                ctx.checks.passed("generation")
                ctx.loop.wake()
                return
            except asyncio.CancelledError:
                raise
            except store.NotOwnedError:
                ctx.checks.passed("generation")
                ctx.loop.wake()  # the step refuses and says why
                return
            except Exception as error:  # a generation that dies silently is worse than one that retries
                text = ctx.checks.failed("generation", error, [secret, *self._secrets(ctx)])
                ctx.logger.warning("generation of %s: %s; retrying in %.0fs", self.owner, text, backoff)
                if not isinstance(error, (LookupError, *DB_ERRORS)):
                    ctx.logger.debug("generation failure", exc_info=error)
                current = self.progress or status.Progress(0, recipe.total, None)
                self.progress = replace(current, last_error=text)
                ctx.loop.wake()
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, MAX_BACKOFF)

    async def _write(
        self, ctx: StepContext, spec: SyntheticDatasetSpec, recipe: Recipe, key: str, dsn: str
    ) -> None:
        assert spec.target.postgres is not None and ctx.uid is not None
        table = spec.target.postgres.table
        gen = await asyncio.to_thread(generator, recipe)
        names = [c.name for c in gen.columns]
        stage = store.staging_name(ctx.uid, key)
        pool = await self._pool(dsn)
        async with pool.acquire() as conn:
            await store.ensure_staging(
                conn, stage, [(c.name, c.sql) for c in gen.columns], store.Marker(self.owner, key)
            )
            done = await store.staged_rows(conn, stage)
            await store.drop_staging(conn, ctx.uid, keep=stage)
        digest = hashlib.sha256()
        tokens = await asyncio.to_thread(_hash_prefix, gen, done, digest) if done else []
        total, token_col = recipe.total, token_column(gen)
        last_error = self.progress.last_error if self.progress else None
        self.progress = status.Progress(done, total, None, last_error)
        started, written, reported = time.monotonic(), 0, 0.0
        chunk_iter = chunks(gen, spec.chunk_size, start=done)
        upcoming = asyncio.ensure_future(asyncio.to_thread(_render_next, chunk_iter, token_col))
        try:
            while (item := await upcoming) is not None:
                data, count, found = item
                upcoming = asyncio.ensure_future(asyncio.to_thread(_render_next, chunk_iter, token_col))
                async with pool.acquire() as conn:
                    await store.copy(conn, stage, names, data)
                digest.update(data)
                tokens += found
                done, written = done + count, written + count
                metrics.RECORDS_GENERATED.labels(recipe.kind, "postgres").inc(count)
                rate = written / max(time.monotonic() - started, 1e-6)
                metrics.GENERATION_RATE.labels(ctx.namespace, ctx.name).set(rate)
                self.progress = status.Progress(done, total, rate, None)
                if time.monotonic() - reported >= PROGRESS_EVERY:
                    reported = time.monotonic()
                    await ctx.write_status({**self.progress.fields(), "generationKey": key})
        finally:
            upcoming.cancel()
        report = await asyncio.to_thread(quality.assess, gen)
        marker = store.Marker(self.owner, key, done, digest.hexdigest(), stamp(now()), report.wire())
        if tokens:
            await self._register_tokens(ctx, tokens)
        async with pool.acquire() as conn:
            await store.finish(conn, stage, marker)
            relid = await store.swap(conn, stage, table, self.owner)
            await conn.execute("SELECT pg_stat_force_next_flush()")
        if spec.decoy is not None:
            async with pool.acquire() as conn:
                counted = await store.scans(conn, table)
            baseline = counted[1] if counted is not None and counted[0] == relid else None
            decoy: dict[str, Any] = {
                "reads": 0,
                "relid": relid,
                "baselineScans": baseline,
                "lastTouchedAt": None,
            }
            if tokens:
                decoy["tokens"] = len(tokens)
            await ctx.write_status({"decoy": decoy})
        ctx.logger.info("%s: %d records live in table %s (digest %s)", self.owner, done, table, marker.digest)

    async def _stop_job(self) -> None:
        task, self._job, self._job_key = self._job, None, None
        if self._checks is not None:
            self._checks.passed("generation")
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    # ---- deletion -------------------------------------------------------------------------------------

    async def close(self, deleted: bool) -> None:
        await self._stop_job()
        spec = self._spec
        try:
            if deleted and spec is not None and not spec.retain_on_delete:
                await self._drop(spec)
        except Exception as error:  # the object is gone either way: say what was left behind
            secrets = [Secret(d, "<the connection string>") for d in (self._dsn, self._audit_dsn) if d]
            log.warning("%s deleted; its data could not be dropped: %s", self.owner, describe(error, secrets))
        finally:
            await self.services.pools.release_all(self.ref.key)  # its pools close unless shared

    async def _drop(self, spec: SyntheticDatasetSpec) -> None:
        ns, name = self.ref.namespace, self.ref.name
        if spec.target.type == "configMap":
            cm = spec.target.config_map or f"{name}-data"
            found = await self.services.kube.get(CONFIGMAPS, ns, cm)
            if (
                found is not None
                and (meta(found).get("annotations") or {}).get(OWNER_ANNOTATION) == self.owner
            ):
                await self.services.kube.delete(CONFIGMAPS, ns, cm)
        elif spec.target.postgres is not None and self._dsn is not None:
            pool = await self._pool(self._dsn)
            async with pool.acquire() as conn:
                await store.drop_live(conn, spec.target.postgres.table, self.owner)
                if self._uid:
                    await store.drop_staging(conn, self._uid)
        if self._audit_dsn is not None and spec.decoy is not None and spec.decoy.api_tokens:
            pool = await self._pool(self._audit_dsn)
            async with pool.acquire() as conn:
                await store.unregister_tokens(conn, ns, name)
        with contextlib.suppress(KeyError):
            metrics.GENERATION_RATE.remove(ns, name)


async def _has_audit(pool: Any) -> bool:
    async with pool.acquire() as conn:
        return await store.has_table(conn, "audit_trail")
