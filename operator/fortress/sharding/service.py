"""The HTTP API's view of one ShardCluster: its configuration file, and the router and coordinator over it.

The file (``ApiConfig.shard_config`` or ``$FORTRESS_SHARD_CONFIG``; the format is in
:mod:`fortress.sharding.api`) names the ring file and each shard's DSN; the ring file is re-read when it
changes, so a rebalance the operator publishes reaches the API within ``refreshSeconds``.
"""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated

import yaml
from pydantic import BaseModel, ConfigDict, Field, StringConstraints
from pydantic.alias_generators import to_camel

from fortress.api.common import DNS_LABEL_PATTERN
from fortress.core.time import DURATION_PATTERN, seconds_of
from fortress.http.errors import ApiError
from fortress.sharding.breaker import BreakerConfig
from fortress.sharding.ring import RingError, RoutingState
from fortress.sharding.router import Router, RouterConfig, ShardEndpoint
from fortress.sharding.twophase import Coordinator

log = logging.getLogger("fortress.sharding.api")


class Wire(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")


# ----------------------------------------------------------------------------- configuration


class ShardConnection(Wire):
    dsn: str | None = Field(default=None, description="libpq URI of the shard's primary.")
    dsn_file: str | None = Field(default=None, description="File holding the DSN (a mounted Secret key).")
    replicas: list[str] = Field(default_factory=list, description="DSNs of read replicas.")


class RingSource(Wire):
    file: str = Field(description="The ring document (ConfigMap <name>-ring, key ring.json) as a file.")
    refresh_seconds: float = Field(default=2.0, gt=0, le=3600, description="How often the file is checked.")


class CircuitBreakerConfig(Wire):
    failure_threshold: int = Field(default=5, ge=1, le=1000)
    open_duration: str = Field(default="30s", pattern=DURATION_PATTERN)


class ShardApiConfig(Wire):
    """The API process's view of one ShardCluster."""

    ring: RingSource
    shards: dict[Annotated[str, StringConstraints(pattern=DNS_LABEL_PATTERN)], ShardConnection] = Field(
        min_length=1, description="Shard id (a DNS label, as in spec.shards) -> connection."
    )
    query_timeout: str = Field(default="5s", pattern=DURATION_PATTERN)
    lock_timeout: str = Field(default="2s", pattern=DURATION_PATTERN)
    transaction_timeout: str = Field(default="10s", pattern=DURATION_PATTERN)
    circuit_breaker: CircuitBreakerConfig = Field(default_factory=CircuitBreakerConfig)
    coordinator: str | None = None


def load_config(path: Path) -> tuple[ShardApiConfig, list[ShardEndpoint]]:
    """Parse the config file and resolve DSNs (blocking file reads: call through ``asyncio.to_thread``)."""
    text = path.read_text()
    document = json.loads(text) if text.lstrip().startswith("{") else yaml.safe_load(text)
    config = ShardApiConfig.model_validate(document)
    endpoints = []
    for shard_id, connection in sorted(config.shards.items()):
        dsn = connection.dsn
        if dsn is None and connection.dsn_file:
            dsn = Path(connection.dsn_file).read_text().strip()
        if not dsn:
            raise ValueError(f"shards.{shard_id}: give dsn or dsnFile")
        endpoints.append(ShardEndpoint(shard_id, dsn, tuple(connection.replicas)))
    if config.coordinator is not None and config.coordinator not in config.shards:
        raise ValueError(f"coordinator {config.coordinator!r} is not one of the configured shards")
    return config, endpoints


def read_ring(path: Path) -> tuple[float, RoutingState]:
    """The ring file's mtime and routing state (blocking)."""
    mtime = path.stat().st_mtime
    return mtime, RoutingState.from_document(json.loads(path.read_text()))


@dataclass
class ShardService:
    """What the routes use: a router and a coordinator over the configured cluster (None: not configured)."""

    router: Router | None = None
    coordinator: Coordinator | None = None
    ring_file: Path | None = None
    refresh_seconds: float = 2.0
    ring_mtime: float = 0.0
    problem: str = "sharding is not configured: set FORTRESS_SHARD_CONFIG (see fortress.sharding.api)"
    tasks: list[asyncio.Task[None]] = field(default_factory=list)

    def require(self) -> tuple[Router, Coordinator]:
        if self.router is None or self.coordinator is None:
            raise ApiError(503, "sharding_not_configured", self.problem)
        return self.router, self.coordinator

    async def refresh(self) -> None:
        """Pick up a new ring document (the operator rewrites it when a rebalance starts or ends)."""
        if self.ring_file is None or self.router is None:
            return
        try:
            mtime = (await asyncio.to_thread(self.ring_file.stat)).st_mtime
            if mtime == self.ring_mtime:
                return
            self.ring_mtime, routing = await asyncio.to_thread(read_ring, self.ring_file)
        except (OSError, ValueError, RingError) as error:
            log.warning("ring file %s unreadable, keeping the current ring: %s", self.ring_file, error)
            return
        self.router.update(routing=routing)
        log.info("ring updated: %s", routing.to_document()["phase"])

    async def watch(self) -> None:
        while True:
            await asyncio.sleep(self.refresh_seconds)
            await self.refresh()


async def build_service(path: Path) -> ShardService:
    config, endpoints = await asyncio.to_thread(load_config, path)
    ring_file = Path(config.ring.file)
    mtime, routing = await asyncio.to_thread(read_ring, ring_file)
    missing = sorted(set(routing.shard_ids()) - {e.id for e in endpoints})
    if missing:
        raise ValueError(f"the ring names shard(s) {', '.join(missing)} that the config has no DSN for")
    router = Router(
        endpoints,
        routing,
        RouterConfig(
            query_timeout=seconds_of(config.query_timeout),
            lock_timeout=seconds_of(config.lock_timeout),
            breaker=BreakerConfig(
                failure_threshold=config.circuit_breaker.failure_threshold,
                open_duration=seconds_of(config.circuit_breaker.open_duration),
            ),
        ),
    )
    coordinator = Coordinator(
        router,
        routing.cluster,
        coordinator_shard=config.coordinator,
        timeout=seconds_of(config.transaction_timeout),
    )
    return ShardService(router, coordinator, ring_file, config.ring.refresh_seconds, mtime)
