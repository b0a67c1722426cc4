"""Kopf glue of the SyntheticDataset kind: its per-object loop runs a :class:`SyntheticReconciler`."""

from __future__ import annotations

from fortress.api.syntheticdataset import INFO
from fortress.core.loop import ReconcilerFactory
from fortress.synthetic.reconciler import SyntheticReconciler

RECONCILERS: dict[str, ReconcilerFactory] = {INFO.kind: SyntheticReconciler}
