"""The consistent-hash ring (pure: no I/O, no clock, no randomness).

Layout, format version 1 (a pure function of the shard list, identical across processes and versions):

* the hash function is ``xxh3_64`` (default) or ``xxh64`` from xxhash, seed 0, over UTF-8 bytes, read as
  an unsigned 64-bit integer;
* a shard of weight ``w`` contributes ``w * virtualNodes`` points; point ``i`` (``0 <= i < w * V``) of
  shard ``s`` is the hash of the virtual-node key ``f"{s}#{i}"`` (``VNODE_KEY_FORMAT``);
* points are sorted by (hash, shard id), so even a hash collision between two shards orders the same way
  everywhere;
* a key's owner is the shard of the first point whose hash is ``>=`` the key's hash, wrapping around to
  the first point; its preference list continues clockwise from there, skipping shards already listed,
  until ``replicationFactor`` distinct shards are found.

Lookups are a ``bisect`` over the precomputed sorted list of point hashes. The ring is serialised (shard
list, parameters and a fingerprint of the layout, not the points) to the ConfigMap ``<name>-ring``, so
any client can rebuild it and route without the operator; ``RoutingState`` adds the ring being left while
a rebalance moves keys.
"""

from __future__ import annotations

import bisect
import hashlib
import json
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import xxhash

FORMAT_VERSION = 1
VNODE_KEY_FORMAT = "{shard}#{index}"
LOOKUP_RULE = (
    "owner = shard of the first point with hash >= hash(key) (wrapping); hash = HASH_FUNCTION(utf8(key), "
    "seed=0) as uint64; points: hash(utf8(f'{shard}#{i}')) for i in range(weight * virtualNodes), "
    "sorted by (hash, shard)"
)
CONFIGMAP_KEY = "ring.json"
MAX_POINTS = 8_000_000

HASH_FUNCTIONS: dict[str, Callable[[bytes], int]] = {
    "xxh3_64": xxhash.xxh3_64_intdigest,
    "xxh64": xxhash.xxh64_intdigest,
}


class RingError(ValueError):
    """An invalid ring definition or serialised ring."""


@dataclass(frozen=True, order=True)
class ShardWeight:
    """One shard of a ring and its relative capacity."""

    id: str
    weight: int = 1


@dataclass(frozen=True)
class RingSpec:
    """Everything the layout depends on (plus the replication factor of preference lists)."""

    shards: tuple[ShardWeight, ...]
    virtual_nodes: int = 256
    hash_function: str = "xxh3_64"
    replication_factor: int = 1

    @classmethod
    def of(
        cls,
        shards: Iterable[ShardWeight | tuple[str, int] | str],
        virtual_nodes: int = 256,
        hash_function: str = "xxh3_64",
        replication_factor: int = 1,
    ) -> RingSpec:
        """A normalised spec (shards sorted by id); raises RingError on invalid input."""
        normal: list[ShardWeight] = []
        for item in shards:
            if isinstance(item, ShardWeight):
                normal.append(item)
            elif isinstance(item, str):
                normal.append(ShardWeight(item))
            else:
                normal.append(ShardWeight(item[0], item[1]))
        spec = cls(tuple(sorted(normal)), virtual_nodes, hash_function, replication_factor)
        spec.validate()
        return spec

    def validate(self) -> None:
        if not self.shards:
            raise RingError("a ring needs at least one shard")
        ids = [s.id for s in self.shards]
        if len(set(ids)) != len(ids):
            dupes = sorted({i for i in ids if ids.count(i) > 1})
            raise RingError(f"duplicate shard ids: {', '.join(dupes)}")
        for shard in self.shards:
            if not isinstance(shard.id, str) or not shard.id or shard.id.strip() != shard.id:
                raise RingError(f"invalid shard id {shard.id!r}: a non-empty string without outer spaces")
            if not isinstance(shard.weight, int) or isinstance(shard.weight, bool) or shard.weight < 1:
                raise RingError(f"shard {shard.id}: weight must be an integer >= 1, got {shard.weight!r}")
        if not isinstance(self.virtual_nodes, int) or self.virtual_nodes < 1:
            raise RingError(f"virtualNodes must be an integer >= 1, got {self.virtual_nodes!r}")
        if self.hash_function not in HASH_FUNCTIONS:
            raise RingError(f"unknown hash function {self.hash_function!r}: use xxh3_64 or xxh64")
        if not 1 <= self.replication_factor <= len(self.shards):
            raise RingError(
                f"replicationFactor {self.replication_factor} must be between 1 and the "
                f"{len(self.shards)} shard(s) of the ring"
            )
        points = sum(s.weight for s in self.shards) * self.virtual_nodes
        if points > MAX_POINTS:
            raise RingError(f"the ring would have {points} points, more than {MAX_POINTS}")

    @property
    def shard_ids(self) -> tuple[str, ...]:
        return tuple(s.id for s in self.shards)

    def to_dict(self) -> dict[str, Any]:
        return {
            "hashFunction": self.hash_function,
            "virtualNodes": self.virtual_nodes,
            "replicationFactor": self.replication_factor,
            "shards": [{"id": s.id, "weight": s.weight} for s in self.shards],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RingSpec:
        try:
            shards = [ShardWeight(str(s["id"]), s.get("weight", 1)) for s in data["shards"]]
            return cls.of(
                shards,
                virtual_nodes=data.get("virtualNodes", 256),
                hash_function=data.get("hashFunction", "xxh3_64"),
                replication_factor=data.get("replicationFactor", 1),
            )
        except (KeyError, TypeError, AttributeError) as error:
            raise RingError(f"malformed ring definition: {error!r}") from None


class Move(NamedTuple):
    """A key whose owner changes between two rings."""

    key: str
    source: str
    target: str


class Ring:
    """An immutable ring layout with O(log n) lookups."""

    def __init__(self, spec: RingSpec) -> None:
        spec.validate()
        self.spec = spec
        self._hash = HASH_FUNCTIONS[spec.hash_function]
        points: list[tuple[int, str]] = []
        for shard in spec.shards:
            for index in range(shard.weight * spec.virtual_nodes):
                vnode = VNODE_KEY_FORMAT.format(shard=shard.id, index=index)
                points.append((self._hash(vnode.encode()), shard.id))
        points.sort()
        self._hashes: list[int] = [p[0] for p in points]
        self._owners: list[str] = [p[1] for p in points]
        self.owner: Callable[[str], str] = _lookup(self._hashes, self._owners, self._hash)
        digest = hashlib.sha256(f"fortress-ring-v{FORMAT_VERSION}:{spec.hash_function}:".encode())
        for point_hash, owner in points:
            digest.update(point_hash.to_bytes(8, "big"))
            digest.update(owner.encode())
            digest.update(b"\0")
        self.fingerprint = digest.hexdigest()[:16]

    @classmethod
    def build(
        cls,
        shards: Iterable[ShardWeight | tuple[str, int] | str],
        virtual_nodes: int = 256,
        hash_function: str = "xxh3_64",
        replication_factor: int = 1,
    ) -> Ring:
        return cls(RingSpec.of(shards, virtual_nodes, hash_function, replication_factor))

    def __repr__(self) -> str:
        return f"Ring({','.join(self.shard_ids)} x{self.spec.virtual_nodes}, {self.fingerprint})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Ring) and other.fingerprint == self.fingerprint and other.spec == self.spec

    def __hash__(self) -> int:
        return hash(self.fingerprint)

    @property
    def shard_ids(self) -> tuple[str, ...]:
        return self.spec.shard_ids

    @property
    def points(self) -> int:
        return len(self._hashes)

    def hash_key(self, key: str) -> int:
        return self._hash(key.encode())

    def owners(self, keys: Iterable[str]) -> list[str]:
        """The owner of each key, in order."""
        return list(map(self.owner, keys))

    def preference_list(self, key: str, n: int | None = None) -> tuple[str, ...]:
        """``n`` (default: replicationFactor) distinct shards for ``key``, its owner first."""
        wanted = self.spec.replication_factor if n is None else n
        if not 1 <= wanted <= len(self.shard_ids):
            raise RingError(f"preference list of {wanted} shards from a ring of {len(self.shard_ids)}")
        size = len(self._owners)
        start = bisect.bisect_left(self._hashes, self._hash(key.encode()))
        found: list[str] = []
        for step in range(size):
            shard = self._owners[(start + step) % size]
            if shard not in found:
                found.append(shard)
                if len(found) == wanted:
                    break
        return tuple(found)

    def shares(self) -> dict[str, float]:
        """The exact fraction of the hash space each shard owns."""
        space = float(2**64)
        shares = dict.fromkeys(self.shard_ids, 0.0)
        previous = self._hashes[-1] - 2**64  # the arc before the first point wraps from the last one
        for point_hash, owner in zip(self._hashes, self._owners, strict=True):
            shares[owner] += (point_hash - previous) / space
            previous = point_hash
        return shares

    def to_dict(self) -> dict[str, Any]:
        return {**self.spec.to_dict(), "fingerprint": self.fingerprint, "points": self.points}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Ring:
        """Rebuild a serialised ring; RingError when its fingerprint does not match the rebuilt layout."""
        ring = cls(RingSpec.from_dict(data))
        expected = data.get("fingerprint")
        if expected is not None and expected != ring.fingerprint:
            raise RingError(
                f"ring fingerprint mismatch: serialised {expected}, rebuilt {ring.fingerprint} "
                "(different layout rules or a corrupted definition)"
            )
        return ring


def _lookup(hashes: list[int], owners: list[str], hash_: Callable[[bytes], int]) -> Callable[[str], str]:
    """``owner(key)``: a closure over locals, the fastest lookup CPython offers (no attribute loads)."""
    wrapped = [*owners, owners[0]]  # index len(hashes) wraps around to the first point
    find = bisect.bisect_left

    def owner(key: str) -> str:
        """The shard owning ``key``."""
        return wrapped[find(hashes, hash_(key.encode()))]

    return owner


def moved_keys(old: Ring, new: Ring, keys: Iterable[str]) -> Iterator[Move]:
    """Exactly the keys (from ``keys``, any iterable) whose owner differs between ``old`` and ``new``."""
    if old.fingerprint == new.fingerprint:
        return
    for key in keys:
        source, target = old.owner(key), new.owner(key)
        if source != target:
            yield Move(key, source, target)


def imbalance(
    counts: Mapping[str, int] | Sequence[int], weights: Mapping[str, int] | None = None
) -> float | None:
    """Max/mean keys per shard (1.0 is perfect); None without shards or keys.

    With ``weights`` (shard id -> weight), keys are counted per unit of weight: a shard of weight 2 holding
    twice the keys of a shard of weight 1 is balanced.
    """
    if isinstance(counts, Mapping):
        pairs = [(n, (weights or {}).get(k, 1)) for k, n in counts.items()]
    else:
        pairs = [(n, 1) for n in counts]
    total, weight = sum(n for n, _ in pairs), sum(w for _, w in pairs)
    if not pairs or total == 0 or weight <= 0:
        return None
    return max(n / w for n, w in pairs) / (total / weight)


@dataclass(frozen=True)
class Location:
    """Where a key lives under a routing state: its owner, and the shard it may still be on."""

    owner: str
    source: str | None = None  # set while the key moves from ``source`` to ``owner``

    @property
    def moving(self) -> bool:
        return self.source is not None


@dataclass(frozen=True)
class RoutingState:
    """The ring routers use: the current one, plus the ring being left while a rebalance runs."""

    current: Ring
    previous: Ring | None = None
    cluster: str = ""  # "namespace/name" of the ShardCluster

    @property
    def moving(self) -> bool:
        return self.previous is not None and self.previous.fingerprint != self.current.fingerprint

    def locate(self, key: str) -> Location:
        owner = self.current.owner(key)
        if self.previous is None:
            return Location(owner)
        source = self.previous.owner(key)
        return Location(owner, source if source != owner else None)

    def shard_ids(self) -> tuple[str, ...]:
        """Every shard a key may be on: those of both rings, sorted."""
        ids = set(self.current.shard_ids)
        if self.previous is not None:
            ids |= set(self.previous.shard_ids)
        return tuple(sorted(ids))

    def to_document(self) -> dict[str, Any]:
        return {
            "formatVersion": FORMAT_VERSION,
            "cluster": self.cluster,
            "phase": "Moving" if self.moving else "Stable",
            "keyFormat": VNODE_KEY_FORMAT,
            "lookup": LOOKUP_RULE,
            "current": self.current.to_dict(),
            "previous": self.previous.to_dict() if self.moving and self.previous is not None else None,
        }

    def to_configmap_data(self) -> dict[str, str]:
        """The ``data`` of the ConfigMap ``<name>-ring``."""
        return {CONFIGMAP_KEY: json.dumps(self.to_document(), indent=2, sort_keys=True) + "\n"}

    @classmethod
    def from_document(cls, document: Mapping[str, Any]) -> RoutingState:
        if not isinstance(document, Mapping):
            raise RingError("ring document must be a JSON object")
        version = document.get("formatVersion")
        if version != FORMAT_VERSION:
            raise RingError(f"unsupported ring formatVersion {version!r}: this client reads {FORMAT_VERSION}")
        if not isinstance(document.get("current"), Mapping):
            raise RingError("ring document has no 'current' ring")
        previous = document.get("previous")
        return cls(
            current=Ring.from_dict(document["current"]),
            previous=Ring.from_dict(previous) if isinstance(previous, Mapping) else None,
            cluster=str(document.get("cluster") or ""),
        )

    @classmethod
    def from_configmap_data(cls, data: Mapping[str, str] | None) -> RoutingState:
        """Parse the ConfigMap data; RingError naming the problem when it is missing or malformed."""
        raw = (data or {}).get(CONFIGMAP_KEY)
        if raw is None:
            raise RingError(f"ConfigMap has no {CONFIGMAP_KEY!r} key")
        try:
            document = json.loads(raw)
        except ValueError as error:
            raise RingError(f"{CONFIGMAP_KEY} is not valid JSON: {error}") from None
        return cls.from_document(document)
