"""One CreditLedger in the operator: database upkeep, the projector, and the figures its status shows.

A step resolves the DSN from the Secret; on a spec change (and hourly) it migrates (``spec.migrate``),
creates monthly event partitions ahead, purges expired idempotency keys and prunes old snapshots;
every step reads the figures (eventsTotal, lastGlobalPosition, projection lag, snapshots,
schemaVersion). The projector runs as a task of this reconciler while ``spec.projection.enabled``:
every failure is retried with a backoff (a projector never falls silent), shown as
``status.projection.lastError``, posted once as a Warning Event ``ProjectorError``, and holds
``Ready`` at ``Unknown, reason=CheckFailed`` (check ``projector``) until the projector catches up again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any, Final, cast

import asyncpg

from fortress.adapters import migrations
from fortress.api.creditledger import CreditLedgerSpec
from fortress.core.errors import Secret, database, describe
from fortress.core.health import Checks
from fortress.core.loop import Logger, ObjectRef, StepContext
from fortress.core.outcome import Outcome
from fortress.core.services import Services
from fortress.core.time import parse_duration
from fortress.ledger.projections import BalanceProjector
from fortress.ledger.status import Observed, ProjectorHealth, not_ready, ready_outcome
from fortress.ledger.store import EventStore

CONNECT_TIMEOUT: Final = 10.0
PROJECTOR_MAX_BACKOFF: Final = 10.0
MAINTENANCE_SECONDS: Final = 3600.0

# What a database problem looks like from asyncpg and the socket layer.
DB_ERRORS: Final = (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError)

log = logging.getLogger("fortress.ledger")


async def observe(pool: Any) -> Observed:
    """Read the figures of the status from the ledger database."""
    stats = await EventStore(pool).stats()
    lag = await BalanceProjector(pool).lag()
    row = None
    if await pool.fetchval("SELECT to_regclass('schema_migrations') IS NOT NULL"):
        row = await pool.fetchrow("SELECT version, dirty FROM schema_migrations LIMIT 1")
    version = int(row["version"]) if row is not None else None
    return Observed(
        schema_version=version,
        dirty=bool(row["dirty"]) if row is not None else False,
        events_total=stats.events_total,
        last_global_position=stats.last_global_position,
        snapshots=stats.snapshots,
        aggregates=stats.aggregates,
        lag=lag,
    )


class LedgerReconciler:
    """Keeps one CreditLedger's database in shape and its projector running."""

    def __init__(self, services: Services, ref: ObjectRef) -> None:
        self.services, self.ref = services, ref
        self.health = ProjectorHealth()
        self._maintained: tuple[int | None, str, float] | None = None  # generation, DSN, when
        self._projector: asyncio.Task[None] | None = None
        self._projecting: tuple[str, int, float] | None = None  # DSN, batch size, poll interval
        self._checks: Checks | None = None

    async def _pool(self, dsn: str, purpose: str = "database") -> Any:
        """The pool of ``dsn``, held for this ledger's steps (or its projector): a new DSN (the Secret
        changed) lets go of the old pool, which closes when nobody else holds it."""
        owner = (*self.ref.key, purpose)
        return await asyncio.wait_for(self.services.pools.hold(owner, dsn), CONNECT_TIMEOUT)

    def _maintenance_due(self, generation: int | None, dsn: str) -> bool:
        done = self._maintained
        return (
            done is None or done[:2] != (generation, dsn) or time.monotonic() - done[2] > MAINTENANCE_SECONDS
        )

    async def _maintain(self, spec: CreditLedgerSpec, dsn: str, logger: Logger) -> None:
        if spec.migrate:
            await migrations.up(dsn, migrations.default_migrations_dir(), connect_timeout=CONNECT_TIMEOUT)
        store = EventStore(
            await self._pool(dsn),
            snapshot_interval=spec.snapshot_interval,
            idempotency_ttl=parse_duration(spec.retention.idempotency_key_ttl),
        )
        created = await store.ensure_partitions(spec.retention.partitions_ahead)
        await store.purge_expired_keys()
        await store.prune_snapshots(spec.retention.snapshots_kept)
        if created:
            logger.info("created event partitions %s", ", ".join(created))

    async def step(self, ctx: StepContext) -> Outcome:
        spec = cast(CreditLedgerSpec, ctx.spec)
        self._checks = ctx.checks
        ref = spec.database.secret_key_ref
        try:
            dsn = await self.services.secret(ctx.namespace, ref)
        except LookupError as error:
            await self._stop_projector()
            return not_ready(
                "SecretNotFound",
                f"spec.database.secretKeyRef: {error}; create Secret {ctx.namespace}/{ref.name} "
                f"with key {ref.key!r} holding the ledger's PostgreSQL DSN",
                warn=True,
            )
        secret = Secret.of(dsn, ctx.namespace, ref.name, ref.key)
        where = database(dsn, secret)
        try:
            if self._maintenance_due(ctx.generation, dsn):
                await self._maintain(spec, dsn, ctx.logger)
                self._maintained = (ctx.generation, dsn, time.monotonic())
            observed = await observe(await self._pool(dsn))
        except migrations.DatabaseUnavailableError as error:
            return not_ready("DatabaseUnavailable", f"ledger database {where}: {describe(error, [secret])}")
        except migrations.MigrationError as error:
            return not_ready("MigrationFailed", f"ledger database {where}: {describe(error, [secret])}")
        except asyncpg.UndefinedTableError as error:
            return not_ready(
                "SchemaMissing",
                f"ledger database {where} has no ledger schema ({describe(error, [secret])}); "
                "set spec.migrate: true or run `fortress migrate up`",
            )
        except DB_ERRORS as error:
            self._maintained = None
            await self.services.pools.discard(dsn)
            return not_ready(
                "DatabaseUnavailable", f"cannot use ledger database {where}: {describe(error, [secret])}"
            )
        self._steer_projector(spec, dsn, secret, ctx)
        return ready_outcome(observed, spec.projection.enabled, self.health)

    # ---- the projector --------------------------------------------------------------------------------

    def _steer_projector(self, spec: CreditLedgerSpec, dsn: str, secret: Secret, ctx: StepContext) -> None:
        """Start, restart (DSN or settings changed) or stop the projector task to match the spec."""
        wanted = None
        if spec.projection.enabled:
            poll = max(parse_duration(spec.projection.poll_interval).total_seconds(), 0.05)
            wanted = (dsn, spec.projection.batch_size, poll)
        running = self._projector is not None and not self._projector.done()
        if running and wanted == self._projecting:
            return
        if self._projector is not None:
            self._projector.cancel()
            ctx.checks.passed("projector")  # the old projector's errors are not the new one's
        self._projector, self._projecting = None, wanted
        if wanted is not None:
            self._projector = asyncio.create_task(
                self._project(*wanted, secret, ctx.loop.wake, ctx.logger, ctx.checks),
                name=f"projector {self.ref}",
            )

    async def _project(
        self,
        dsn: str,
        batch_size: int,
        poll: float,
        secret: Secret,
        wake: Any,
        logger: Logger,
        checks: Checks,
    ) -> None:
        """Project events into the read model until cancelled; every failure is retried."""
        backoff = 1.0
        while True:
            try:
                projector = BalanceProjector(await self._pool(dsn, "projector"), batch_size=batch_size)
                applied = await projector.catch_up()
                backoff = 1.0
                checks.passed("projector")
                if self.health.last_error is not None:
                    self.health.recovered()
                    wake()
                if not applied:
                    await asyncio.sleep(poll)
            except asyncio.CancelledError:
                raise
            except Exception as error:  # a projector that dies silently is worse than one that retries
                expected = isinstance(error, (LookupError, *DB_ERRORS))
                text = describe(error, [secret])
                checks.failed("projector", error, [secret])
                logger.warning("projector: %s; retrying in %.0fs", text, backoff)
                if not expected:
                    logger.debug("projector failure", exc_info=error)
                if self.health.failed(text):
                    wake()  # the next step shows it in status and posts it once
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, PROJECTOR_MAX_BACKOFF)

    async def _stop_projector(self) -> None:
        task, self._projector, self._projecting = self._projector, None, None
        if self._checks is not None:
            self._checks.passed("projector")  # no projector: nothing of it to hold Ready back
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    async def close(self, deleted: bool) -> None:
        await self._stop_projector()
        await self.services.pools.release_all(self.ref.key)
