"""Kopf glue of the CreditLedger kind: its per-object loop runs a :class:`LedgerReconciler`."""

from __future__ import annotations

from fortress.api.creditledger import INFO
from fortress.core.loop import ReconcilerFactory
from fortress.ledger.reconciler import LedgerReconciler

RECONCILERS: dict[str, ReconcilerFactory] = {INFO.kind: LedgerReconciler}
