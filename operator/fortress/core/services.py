"""What one running operator shares with every subsystem: its Kubernetes client, pools and loops."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from fortress.adapters.kube import Cluster, Kube
from fortress.adapters.postgres import PoolRegistry
from fortress.api.common import SecretKeyRef

if TYPE_CHECKING:
    from fortress.core.loop import Loops


@dataclass
class Services:
    """The adapters of one operator instance, handed to each per-object loop (typed, never ``Any``)."""

    cluster: Cluster
    kube: Kube
    loops: Loops
    identity: str  # this operator replica's name (e.g. in failover Leases)
    pools: PoolRegistry = field(default_factory=PoolRegistry)

    async def secret(self, namespace: str, ref: SecretKeyRef) -> str:
        """The value a ``secretKeyRef`` points to (LookupError naming the Secret and key when absent)."""
        return await self.kube.secret_value(namespace, ref.name, ref.key)
