"""Operator glue of the CreditLedger kind: reconcile, the projector daemon and the status refresh timer.

Reconcile: resolve the DSN from the Secret, migrate (``spec.migrate``), create monthly event partitions
ahead, purge expired idempotency keys, prune old snapshots, then report eventsTotal,
lastGlobalPosition, projection {position, lagEvents, lagSeconds}, snapshots and schemaVersion. A
missing Secret or an unreachable database gives Ready=False with the reason and a retry.
A daemon per CreditLedger runs the projector (any failure is retried within seconds and shown as
``status.projection.lastError`` and a Warning Event); a timer refreshes the status figures every few
seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

import asyncpg
import kopf

from fortress.adapters import migrations
from fortress.adapters.postgres import redact
from fortress.api.common import parse_duration
from fortress.api.creditledger import INFO, CreditLedgerSpec
from fortress.core.outcome import Outcome
from fortress.core.reconciler import ReconcileRequest
from fortress.core.validation import validate_spec
from fortress.ledger.projections import BalanceProjector, Lag
from fortress.ledger.store import EventStore

KIND: Final = "CreditLedger"
STATUS_REFRESH_SECONDS: Final = 5.0
RETRY_SECONDS: Final = 10.0
CONNECT_TIMEOUT: Final = 10.0
PROJECTOR_MAX_BACKOFF: Final = 10.0
PHASE_READY: Final = "Active"
PHASE_PENDING: Final = "Pending"

# What a database problem looks like from asyncpg and the socket layer.
DB_ERRORS: Final = (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError)

log = logging.getLogger("fortress.ledger")


@dataclass(frozen=True)
class Observed:
    """The ledger's figures, read from its database."""

    schema_version: int | None
    dirty: bool
    events_total: int
    last_global_position: int
    snapshots: int
    aggregates: int
    lag: Lag


def ready_outcome(observed: Observed, projection_enabled: bool) -> Outcome:
    """The Ready outcome and status fields for what was observed (pure)."""
    fields = {
        "schemaVersion": observed.schema_version,
        "eventsTotal": observed.events_total,
        "lastGlobalPosition": observed.last_global_position,
        "snapshots": observed.snapshots,
        "projection": {
            "position": observed.lag.position,
            "lagEvents": observed.lag.events,
            "lagSeconds": round(observed.lag.seconds, 3),
        },
    }
    if observed.dirty:
        return Outcome(
            ready=False,
            reason="SchemaDirty",
            message=f"the database schema is dirty at version {observed.schema_version}: "
            "a migration failed; see `fortress migrate status`",
            phase=PHASE_PENDING,
            fields=fields,
            requeue_after=RETRY_SECONDS,
        )
    projecting = "projector running" if projection_enabled else "projector disabled"
    message = (
        f"{observed.events_total} events in {observed.aggregates} accounts, "
        f"projection lag {observed.lag.events} events; {projecting}"
    )
    return Outcome(ready=True, reason="LedgerReady", message=message, phase=PHASE_READY, fields=fields)


def not_ready(reason: str, message: str) -> Outcome:
    return Outcome(
        ready=False, reason=reason, message=message, phase=PHASE_PENDING, requeue_after=RETRY_SECONDS
    )


def _describe(error: BaseException) -> str:
    text = str(error).strip()
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


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


async def _dsn(request: ReconcileRequest, spec: CreditLedgerSpec) -> str | Outcome:
    ref = spec.database.secret_key_ref
    try:
        return str(await request.services.secret_dsn(request.namespace, ref))
    except LookupError as error:
        return not_ready(
            "SecretNotFound",
            f"spec.database.secretKeyRef: {error}; create Secret {request.namespace}/{ref.name} "
            f"with key {ref.key!r} holding the ledger's PostgreSQL DSN",
        )


async def _pool(services: Any, dsn: str) -> Any:
    return await asyncio.wait_for(services.pools.get(dsn), CONNECT_TIMEOUT)


async def reconcile(request: ReconcileRequest) -> Outcome:
    """Bring the ledger database in line with the spec and report its figures."""
    spec = request.spec
    assert isinstance(spec, CreditLedgerSpec)
    if request.services is None:
        return not_ready("OperatorStarting", "the operator's services are not started yet")
    dsn = await _dsn(request, spec)
    if isinstance(dsn, Outcome):
        return dsn
    where = redact(dsn)
    try:
        if spec.migrate:
            await migrations.up(dsn, migrations.default_migrations_dir(), connect_timeout=CONNECT_TIMEOUT)
        pool = await _pool(request.services, dsn)
        store = EventStore(
            pool,
            snapshot_interval=spec.snapshot_interval,
            idempotency_ttl=parse_duration(spec.retention.idempotency_key_ttl),
        )
        created = await store.ensure_partitions(spec.retention.partitions_ahead)
        await store.purge_expired_keys()
        await store.prune_snapshots(spec.retention.snapshots_kept)
        observed = await observe(pool)
    except migrations.DatabaseUnavailableError as error:
        return not_ready("DatabaseUnavailable", f"ledger database {where}: {error}")
    except migrations.MigrationError as error:
        return not_ready("MigrationFailed", f"ledger database {where}: {error}")
    except asyncpg.UndefinedTableError as error:
        return not_ready(
            "SchemaMissing",
            f"ledger database {where} has no ledger schema ({error}); set spec.migrate: true "
            "or run `fortress migrate up`",
        )
    except DB_ERRORS as error:
        await request.services.pools.discard(dsn)
        return not_ready("DatabaseUnavailable", f"cannot use ledger database {where}: {_describe(error)}")
    if created:
        request.logger.info("created event partitions %s", ", ".join(created))
    return ready_outcome(observed, spec.projection.enabled)


async def refresh(request: ReconcileRequest) -> Outcome:
    """Re-read the figures (no migrations, no maintenance): the periodic status refresh."""
    spec = request.spec
    assert isinstance(spec, CreditLedgerSpec)
    if request.services is None:
        return not_ready("OperatorStarting", "the operator's services are not started yet")
    dsn = await _dsn(request, spec)
    if isinstance(dsn, Outcome):
        return dsn
    try:
        observed = await observe(await _pool(request.services, dsn))
    except DB_ERRORS as error:
        await request.services.pools.discard(dsn)
        return not_ready(
            "DatabaseUnavailable", f"cannot use ledger database {redact(dsn)}: {_describe(error)}"
        )
    return ready_outcome(observed, spec.projection.enabled)


def _spec(body: Any) -> CreditLedgerSpec | None:
    validated = validate_spec(INFO, body.get("spec"))
    spec = validated.spec if validated.valid else None
    return spec if isinstance(spec, CreditLedgerSpec) else None


def register(registry: kopf.OperatorRegistry, services: Callable[[], Any]) -> None:
    """The projector daemon and the status refresh timer of every CreditLedger."""
    kinds: dict[str, Any] = {"registry": registry, "group": INFO.group, "version": INFO.version}

    @kopf.daemon(plural=INFO.plural, id="ledger-projector", cancellation_timeout=5.0, **kinds)
    async def projector(
        stopped: kopf.DaemonStopped,
        body: kopf.Body,
        namespace: str | None,
        memo: kopf.Memo,
        logger: logging.Logger | logging.LoggerAdapter[Any],
        **_: Any,
    ) -> None:
        await run_projector(stopped, body, namespace or "", services, logger, health_of(memo))

    @kopf.timer(plural=INFO.plural, id="ledger-status", interval=STATUS_REFRESH_SECONDS, **kinds)
    async def status(
        body: kopf.Body,
        patch: kopf.Patch,
        memo: kopf.Memo,
        logger: logging.Logger | logging.LoggerAdapter[Any],
        **_: Any,
    ) -> None:
        from fortress.runtime import reconcile_once

        if _spec(body) is None:
            return  # the reconcile reports the invalid spec; nothing to refresh
        _outcome, fields = await reconcile_once(INFO, refresh, body, services(), logger)
        error = health_of(memo).last_error
        shown = ((body.get("status") or {}).get("projection") or {}).get("lastError")
        if error != shown:  # a merge patch: None removes the field
            fields["projection"] = {**(fields.get("projection") or {}), "lastError": error}
        for key, value in fields.items():
            patch.status[key] = value


@dataclass
class ProjectorHealth:
    """What the projector daemon last met, shared with the status timer through Kopf's per-object memo."""

    last_error: str | None = None
    failures: int = 0

    def failed(self, error: str) -> bool:
        """Record a failure; True when it differs from the previous one (worth an Event)."""
        new = error != self.last_error
        self.last_error, self.failures = error, self.failures + 1
        return new

    def recovered(self) -> None:
        self.last_error, self.failures = None, 0


def health_of(memo: Any) -> ProjectorHealth:
    """The object's ProjectorHealth, created on first use."""
    health = memo.get("ledger_projector")
    if not isinstance(health, ProjectorHealth):
        health = memo["ledger_projector"] = ProjectorHealth()
    return health


async def run_projector(
    stopped: Any,
    body: Any,
    namespace: str,
    services: Callable[[], Any],
    logger: logging.Logger | logging.LoggerAdapter[Any],
    health: ProjectorHealth | None = None,
) -> None:
    """Project events into the read model until ``stopped``.

    Every failure is retried with a backoff capped at ``PROJECTOR_MAX_BACKOFF`` (the projector must
    not fall silent): expected database trouble as a warning, anything else with its traceback. The
    last error is kept in ``health`` (shown as ``status.projection.lastError``) and each new one is a
    Warning Event.
    """
    health = health if health is not None else ProjectorHealth()
    backoff = 1.0
    while not stopped:
        spec = _spec(body)
        if spec is None or not spec.projection.enabled:
            await stopped.wait(RETRY_SECONDS)
            continue
        poll = max(parse_duration(spec.projection.poll_interval).total_seconds(), 0.05)
        try:
            dsn = await services().secret_dsn(namespace, spec.database.secret_key_ref)
            pool = await _pool(services(), dsn)
            projector = BalanceProjector(pool, batch_size=spec.projection.batch_size)
            started = dt.datetime.now(dt.UTC)
            applied = await projector.catch_up()
            backoff = 1.0
            health.recovered()
            if applied:
                elapsed = (dt.datetime.now(dt.UTC) - started).total_seconds()
                logger.debug("projected %d events in %.3fs", applied, elapsed)
            else:
                await stopped.wait(poll)
        except asyncio.CancelledError:
            raise
        except Exception as error:  # a projector that dies silently is worse than one that retries
            expected = isinstance(error, (LookupError, *DB_ERRORS))
            text = _describe(error)
            logger.warning("projector: %s; retrying in %.0fs", text, backoff, exc_info=not expected)
            if health.failed(text):
                with contextlib.suppress(Exception):
                    kopf.warn(body, reason="ProjectorError", message=text[:1000])
            await stopped.wait(backoff)
            backoff = min(backoff * 2, PROJECTOR_MAX_BACKOFF)
