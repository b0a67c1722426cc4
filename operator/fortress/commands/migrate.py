"""``fortress migrate``: apply, revert, inspect and force the database schema version."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from pathlib import Path

from fortress.adapters import migrations as m

DSN_ENV = "FORTRESS_DATABASE_DSN"
PROG = "fortress migrate"


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
    return value


def _count_or_all(text: str) -> int | None:
    return None if text.lower() == "all" else _positive_int(text)


def _version_or_none(text: str) -> int | None:
    if text.lower() in ("none", "-1"):
        return None
    return _positive_int(text)


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``migrate`` subcommand (verbs: up, down, status, force) to a CLI's subparsers."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--dsn",
        default=argparse.SUPPRESS,
        help=f"PostgreSQL DSN, e.g. postgresql://user@host:5432/db (default: ${DSN_ENV})",
    )
    common.add_argument(
        "--dir",
        type=Path,
        default=argparse.SUPPRESS,
        help=f"migrations directory (default: ${m.MIGRATIONS_DIR_ENV}, else the bundled migrations)",
    )
    common.add_argument(
        "--lock-timeout",
        type=float,
        default=argparse.SUPPRESS,
        metavar="SECONDS",
        help="give up if another run holds the migration lock this long (default: wait)",
    )
    parser = subparsers.add_parser(
        "migrate",
        parents=[common],
        help="apply or inspect database schema migrations",
        description="Apply, revert and inspect the SQL migrations (golang-migrate compatible).",
    )
    parser.set_defaults(func=run)
    verbs = parser.add_subparsers(dest="migrate_verb", metavar="VERB", required=True)
    up = verbs.add_parser("up", parents=[common], help="apply pending migrations (all, or the next N)")
    up.add_argument("n", nargs="?", type=_positive_int, default=None, metavar="N")
    down = verbs.add_parser("down", parents=[common], help="revert the last N migrations (default 1) or all")
    down.add_argument("n", nargs="?", type=_count_or_all, default=1, metavar="N|all")
    verbs.add_parser("status", parents=[common], help="show the current version and pending migrations")
    force = verbs.add_parser(
        "force", parents=[common], help="record VERSION as current and clean, without running SQL"
    )
    force.add_argument("version", type=_version_or_none, metavar="VERSION", help="a version, or 'none'")


def _version_text(version: int | None, labels: dict[int, str]) -> str:
    if version is None:
        return "none"
    return f"{version} ({labels[version]})" if version in labels else str(version)


async def _dispatch(args: argparse.Namespace, dsn: str, directory: Path) -> list[str]:
    """Run the verb and return the lines to print."""
    verb: str = args.migrate_verb
    lock_timeout: float | None = getattr(args, "lock_timeout", None)
    loaded = await asyncio.to_thread(m.load_migrations, directory)
    labels = {migration.version: migration.label for migration in loaded}
    if verb == "status":
        state = await m.status(dsn, directory)
        lines = [
            f"directory: {directory}",
            f"version:   {_version_text(state.version, labels)}, {'DIRTY' if state.dirty else 'clean'}",
            f"latest:    {_version_text(state.latest, labels)}",
        ]
        if not state.known:
            lines.append("warning:   the database version is not among the migrations")
        if state.pending:
            lines.append(f"pending:   {len(state.pending)}")
            lines.extend(f"  {migration.label}" for migration in state.pending)
        else:
            lines.append("pending:   none")
        if state.dirty:
            lines.append(str(m.DirtyDatabaseError(state.version)))
        return lines
    if verb == "up":
        applied = await m.up(dsn, directory, args.n, lock_timeout=lock_timeout)
        lines = [f"applied  {labels[version]}" for version in applied]
    elif verb == "down":
        reverted = await m.down(dsn, directory, args.n, lock_timeout=lock_timeout)
        lines = [f"reverted {labels[version]}" for version in reverted]
    elif verb == "force":
        await m.force(dsn, args.version, directory, lock_timeout=lock_timeout)
        return [f"forced version {_version_text(args.version, labels)}, clean"]
    else:  # pragma: no cover - argparse restricts the verbs
        raise m.MigrationError(f"unknown verb {verb!r}")
    state = await m.status(dsn, directory)
    if not lines:
        lines.append("no change")
    lines.append(f"database is at version {_version_text(state.version, labels)}")
    return lines


def run(args: argparse.Namespace) -> int:
    """Entry point set as ``func``: run the verb, print results; 1 on errors, 2 on usage errors."""
    dsn: str | None = getattr(args, "dsn", None) or os.environ.get(DSN_ENV)
    if not dsn:
        print(f"{PROG}: error: no database given: pass --dsn or set {DSN_ENV}", file=sys.stderr)
        return 2
    directory: Path = getattr(args, "dir", None) or m.default_migrations_dir()
    try:
        lines = asyncio.run(_dispatch(args, dsn, directory))
    except m.MigrationError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130
    print("\n".join(lines))
    return 0
