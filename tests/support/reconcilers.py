"""Reconcilers that stand in for a subsystem in tests of the operator's shared machinery.

The plugin, the loop and the API-server semantics are tested on SyntheticDataset objects, whose own
reconciler may not be built (it then reports ``NotImplemented``). ``SPEC_READY`` makes every valid
SyntheticDataset ``Ready=True`` so those tests exercise the shared code, not a subsystem.
"""

from __future__ import annotations

from fortress.core.loop import ObjectRef, ReconcilerFactory, StepContext
from fortress.core.outcome import Outcome
from fortress.core.services import Services


class SpecReadyReconciler:
    """A valid spec is Ready (phase Accepted, reason SpecAccepted); nothing else is driven."""

    def __init__(self, _services: Services, ref: ObjectRef) -> None:
        self.ref = ref

    async def step(self, ctx: StepContext) -> Outcome:
        return Outcome(True, "SpecAccepted", f"{self.ref.info.kind} spec accepted (test)", "Accepted")

    async def close(self, deleted: bool) -> None:
        return None


SPEC_READY: dict[str, ReconcilerFactory] = {"SyntheticDataset": SpecReadyReconciler}
