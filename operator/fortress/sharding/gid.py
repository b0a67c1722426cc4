"""Global transaction ids of cross-shard transactions (pure).

Format (``GID_PATTERN``): ``fx1:<cluster-tag>:<coordinator-shard>:<txid>:<participant-shard>``, where
cluster-tag is 8 hex digits of xxh64("namespace/name") (recovery only touches its own cluster's gids) and
txid is 32 hex digits; the decision log's gid is the same without the participant part.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

import xxhash

GID_VERSION: Final = "fx1"
GID_PATTERN: Final = re.compile(
    r"^fx1:(?P<tag>[0-9a-f]{8}):(?P<coordinator>[a-z0-9]([-a-z0-9]*[a-z0-9])?):(?P<txid>[0-9a-f]{32})"
    r"(:(?P<participant>[a-z0-9]([-a-z0-9]*[a-z0-9])?))?$"
)
SHARD_ID: Final = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


def cluster_tag(cluster: str) -> str:
    """The 8-hex-digit tag of a ShardCluster ("namespace/name") in its gids."""
    return xxhash.xxh64_hexdigest(cluster.encode())[:8]


@dataclass(frozen=True)
class Gid:
    """A parsed gid: a participant's (``participant`` set) or the decision log's."""

    tag: str
    coordinator: str
    txid: str
    participant: str | None = None

    @property
    def log_gid(self) -> str:
        return f"{GID_VERSION}:{self.tag}:{self.coordinator}:{self.txid}"

    def for_participant(self, shard_id: str) -> str:
        return f"{self.log_gid}:{shard_id}"

    @classmethod
    def parse(cls, text: str) -> Gid | None:
        match = GID_PATTERN.match(text)
        if match is None:
            return None
        return cls(match["tag"], match["coordinator"], match["txid"], match["participant"])
