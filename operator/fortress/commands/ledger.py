"""``fortress ledger``: rebuild the credit read model from the event store, or show where it stands."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys

import asyncpg

from fortress.adapters.postgres import open_pool
from fortress.core.errors import Secret, describe, endpoint
from fortress.ledger.projections import BalanceProjector
from fortress.ledger.store import EventStore
from fortress.settings import Settings

DB_ERRORS = (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError)


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    settings = Settings.from_env()
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--dsn", default=settings.database_dsn, help="ledger database DSN (default: $FORTRESS_DATABASE_DSN)"
    )
    parser = subparsers.add_parser("ledger", help="credit ledger maintenance (rebuild, status)")
    verbs = parser.add_subparsers(dest="ledger_verb", metavar="VERB", required=True)
    rebuild = verbs.add_parser(
        "rebuild", parents=[common], help="empty the balance read model and replay every event into it"
    )
    rebuild.add_argument("--batch-size", type=int, default=5000, help="events per statement (default 5000)")
    rebuild.set_defaults(func=_run, action="rebuild")
    status = verbs.add_parser("status", parents=[common], help="events, positions, snapshots and lag as JSON")
    status.set_defaults(func=_run, action="status")


async def _main(args: argparse.Namespace) -> dict[str, object]:
    pool = await open_pool(args.dsn, min_size=1, max_size=2)
    try:
        projector = BalanceProjector(pool, batch_size=getattr(args, "batch_size", 500))
        result: dict[str, object] = {}
        if args.action == "rebuild":
            result["eventsApplied"] = await projector.rebuild()
        stats = await EventStore(pool).stats()
        lag = await projector.lag()
        result.update(
            eventsTotal=stats.events_total,
            accounts=stats.aggregates,
            lastGlobalPosition=stats.last_global_position,
            snapshots=stats.snapshots,
            projection={
                "position": lag.position,
                "lagEvents": lag.events,
                "lagSeconds": round(lag.seconds, 3),
            },
        )
        return result
    finally:
        await pool.close()


def _run(args: argparse.Namespace) -> int:
    if not args.dsn:
        print("error: no database: pass --dsn or set FORTRESS_DATABASE_DSN", file=sys.stderr)
        return 2
    if getattr(args, "batch_size", 1) < 1:
        print("error: --batch-size must be at least 1", file=sys.stderr)
        return 2
    try:
        result = asyncio.run(_main(args))
    except DB_ERRORS as error:
        text = describe(error, [Secret(args.dsn, "<the DSN>")])
        print(f"error: ledger database {endpoint(args.dsn)}: {text}", file=sys.stderr)
        return 1
    print(json.dumps(result, indent=2))
    return 0
