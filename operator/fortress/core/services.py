"""What one running operator shares with every subsystem: its Kubernetes client, pools and loops."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Final

from fortress.adapters.kube import Cluster, Kube
from fortress.adapters.postgres import PoolRegistry
from fortress.api.common import SecretKeyRef

if TYPE_CHECKING:
    from fortress.core.loop import Loops

SECRET_TTL: Final = 10.0
"""Seconds a Secret value read by :meth:`Services.secret` is reused before it is read again (a loop that
steps every few seconds, or a projector polling, does not GET its Secret each time; a changed Secret
is seen within this time)."""


@dataclass
class Services:
    """The adapters of one operator instance, handed to each per-object loop (typed, never ``Any``)."""

    cluster: Cluster
    kube: Kube
    loops: Loops
    identity: str  # this operator replica's name (e.g. in failover Leases)
    pools: PoolRegistry = field(default_factory=PoolRegistry)
    secret_ttl: float = SECRET_TTL
    clock: Callable[[], float] = time.monotonic
    _secrets: dict[tuple[str, str, str], tuple[float, str]] = field(default_factory=dict, repr=False)

    async def secret(self, namespace: str, ref: SecretKeyRef) -> str:
        """The value a ``secretKeyRef`` points to (LookupError naming the Secret and key when absent).

        A value read less than ``secret_ttl`` seconds ago is reused; a missing Secret is never cached.
        """
        key = (namespace, ref.name, ref.key)
        cached = self._secrets.get(key)
        now = self.clock()
        if cached is not None and now - cached[0] < self.secret_ttl:
            return cached[1]
        value = await self.kube.secret_value(namespace, ref.name, ref.key)
        self._secrets[key] = (now, value)
        return value
