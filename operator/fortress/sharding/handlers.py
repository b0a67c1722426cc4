"""Kopf glue of the ShardCluster kind: its per-object loop runs a :class:`ShardClusterReconciler`."""

from __future__ import annotations

from fortress.api.shardcluster import INFO
from fortress.core.loop import ReconcilerFactory
from fortress.sharding.reconciler import ShardClusterReconciler

RECONCILERS: dict[str, ReconcilerFactory] = {INFO.kind: ShardClusterReconciler}
