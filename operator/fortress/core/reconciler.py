"""The contract between the Kopf glue and each subsystem's reconcile logic."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from fortress.api.common import Model
from fortress.api.kind import KindInfo
from fortress.core.outcome import Outcome


@dataclass(frozen=True)
class ReconcileRequest:
    """Everything a subsystem's reconcile gets: the validated spec and the object as observed."""

    info: KindInfo
    spec: Model
    name: str
    namespace: str
    generation: int | None
    body: Mapping[str, Any]
    status: Mapping[str, Any]
    now: dt.datetime
    logger: logging.Logger | logging.LoggerAdapter[Any]
    services: Any = None  # the running operator's shared adapters (Kube client, pools)


Reconciler = Callable[[ReconcileRequest], Awaitable[Outcome]]


async def accept(request: ReconcileRequest) -> Outcome:
    """The default reconcile: the spec is valid and accepted; nothing else is driven yet."""
    return Outcome(
        ready=True,
        reason="SpecAccepted",
        message=f"{request.info.kind} spec accepted",
        phase="Accepted",
    )
