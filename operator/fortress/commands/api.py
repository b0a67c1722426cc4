"""``fortress api``: serve the HTTP API, or print / check its OpenAPI document."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from pathlib import Path

from fortress import metrics
from fortress.http.auth import TokenStore
from fortress.http.runner import serve
from fortress.http.server import OPENAPI_PATH, ApiConfig, build_app, openapi_text
from fortress.settings import Settings


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    settings = Settings.from_env()
    parser = subparsers.add_parser("api", help="serve the HTTP API")
    parser.add_argument("--host", default="0.0.0.0")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument(
        "--tokens",
        type=Path,
        default=settings.api_tokens_file,
        help="token file (FORTRESS_API_TOKENS_FILE), e.g. a mounted Secret",
    )
    parser.add_argument(
        "--dsn", default=settings.database_dsn, help="ledger database (FORTRESS_DATABASE_DSN)"
    )
    parser.add_argument(
        "--shard-config",
        type=Path,
        default=os.environ.get("FORTRESS_SHARD_CONFIG") or None,
        help="ShardCluster routing config (FORTRESS_SHARD_CONFIG; see fortress.sharding.api)",
    )
    parser.add_argument(
        "--connect-timeout",
        type=_seconds,
        default=os.environ.get("FORTRESS_API_CONNECT_TIMEOUT") or "5",
        help="seconds to open a database connection before answering 503 (FORTRESS_API_CONNECT_TIMEOUT)",
    )
    parser.add_argument(
        "--statement-timeout",
        type=_seconds,
        default=os.environ.get("FORTRESS_API_STATEMENT_TIMEOUT") or "10",
        help="seconds a request may spend in the database before 503 (FORTRESS_API_STATEMENT_TIMEOUT)",
    )
    parser.add_argument(
        "--metrics-port", type=int, default=0, help="serve Prometheus /metrics on this port (0: off)"
    )
    parser.add_argument("--openapi", action="store_true", help="print the OpenAPI document and exit")
    parser.add_argument("--write-openapi", action="store_true", help=f"write {OPENAPI_PATH} and exit")
    parser.add_argument(
        "--check-openapi", action="store_true", help="exit 1 when the checked-in document drifted"
    )
    parser.set_defaults(func=_run)


def _seconds(text: str) -> float:
    """A timeout in seconds, from 0.1 to 3600."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not 0.1 <= value <= 3600:
        raise argparse.ArgumentTypeError(f"must be from 0.1 to 3600 seconds, got {text}")
    return value


def _run(args: argparse.Namespace) -> int:
    text = openapi_text()
    if args.openapi:
        sys.stdout.write(text)
        return 0
    if args.write_openapi:
        OPENAPI_PATH.parent.mkdir(parents=True, exist_ok=True)
        OPENAPI_PATH.write_text(text)
        print(OPENAPI_PATH)
        return 0
    if args.check_openapi:
        if not OPENAPI_PATH.exists() or OPENAPI_PATH.read_text() != text:
            print(
                f"{OPENAPI_PATH} differs from the routes: run `fortress api --write-openapi`", file=sys.stderr
            )
            return 1
        return 0
    if args.tokens is None:
        print("error: no token file: pass --tokens or set FORTRESS_API_TOKENS_FILE", file=sys.stderr)
        return 2
    try:
        tokens = TokenStore.from_file(args.tokens)
    except (OSError, ValueError) as error:
        print(f"error: cannot load tokens from {args.tokens}: {error}", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    config = ApiConfig(
        database_dsn=args.dsn,
        shard_config=args.shard_config,
        connect_timeout=args.connect_timeout,
        statement_timeout=args.statement_timeout,
    )
    server = metrics.serve(args.metrics_port) if args.metrics_port else None
    try:
        asyncio.run(serve(build_app(config, tokens), args.host, args.port))
    finally:
        if server is not None:
            server.stop()
    return 0
