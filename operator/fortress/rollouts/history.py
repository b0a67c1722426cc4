"""``deployment_history`` and ``feature_flags`` of a rollout with spec.database: best effort, retried.

The rows are derived from the state in status (see :mod:`fortress.rollouts.store`), so they are synced
only when the parts of the state they show changed, and again after a failure. A failure never stops
the release: it is described (the database named by its Secret, never its DSN) and reported as a
``HistoryNotRecorded`` Warning while it holds, and in the ``HistoryRecorded`` condition. A Secret that
is missing (or lacks its key) is a configuration error, not a passing failure: the rollout goes on, but
it is ``Ready=False, reason=SecretNotFound`` naming the Secret and key until the Secret exists.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any, Final

from fortress.api.canaryrollout import CanaryRolloutSpec, CanaryRolloutStatus
from fortress.core.errors import Secret, database, describe
from fortress.core.loop import Logger
from fortress.core.outcome import ConditionUpdate, EventNote, Outcome
from fortress.core.services import Services
from fortress.rollouts import store, workload

CONNECT_TIMEOUT: Final = 10.0
NOT_RECORDED: Final = "HistoryNotRecorded"
RECORDED: Final = "HistoryRecorded"
SECRET_NOT_FOUND: Final = "SecretNotFound"


def fingerprint(state: CanaryRolloutStatus) -> str:
    """What the rows show of the state: a new value means they must be synced again (pure)."""
    return repr(
        (
            state.history,
            state.canary_revision,
            state.phase,
            state.rollout_started_at,
            state.steps,
            state.flags,
        )
    )


def notes(problems: tuple[str, ...]) -> tuple[EventNote, ...]:
    """The Warning Events of the problems met (pure)."""
    return tuple(EventNote("Warning", NOT_RECORDED, problem) for problem in problems)


@dataclass
class HistoryRecorder:
    """The rows of one rollout: what was last synced, and the problems found (while they hold)."""

    synced: str | None = None  # the fingerprint of the state last synced
    problems: tuple[str, ...] = ()
    missing: str | None = None  # the history Secret (or its key) is missing: what the lookup said

    async def sync(
        self,
        services: Services,
        spec: CanaryRolloutSpec,
        state: CanaryRolloutStatus,
        target: tuple[str, str],
        template: Mapping[str, Any] | None,
        logger: Logger,
    ) -> tuple[str, ...]:
        """Sync the rows when the state they show changed; the problems to report."""
        if spec.database is None:
            self.synced, self.problems, self.missing = None, (), None
            return ()
        wanted = fingerprint(state)
        if wanted == self.synced:
            return self.problems
        namespace, name = target
        ref = spec.database.secret_key_ref
        dsn = ""
        try:
            dsn = await services.secret(namespace, ref)
        except LookupError as error:  # names the Secret and key, never a value
            self.missing = f"spec.database.secretKeyRef: {error}"
            label = Secret.of("", namespace, ref.name, ref.key).label
            self.synced, self.problems = None, (f"history database {label}: {describe(error)}",)
            return self.problems
        self.missing = None
        try:
            owner = ("CanaryRollout", namespace, name, "history")
            pool = await asyncio.wait_for(services.pools.hold(owner, dsn), CONNECT_TIMEOUT)
            image = workload.image_of(template)
            found = await store.sync(
                pool, namespace=namespace, rollout=name, spec=spec, state=state, image=image
            )
        except Exception as error:
            secret = Secret.of(dsn, namespace, ref.name, ref.key)
            text = f"history database {database(dsn or None, secret)}: {describe(error, [secret])}"
            logger.warning("%s/%s: %s", namespace, name, text)
            self.synced, self.problems = None, (text,)
            return self.problems
        self.synced, self.problems = wanted, tuple(found)
        return self.problems


def reported(result: Outcome, spec: CanaryRolloutSpec, recorder: HistoryRecorder) -> Outcome:
    """The step's outcome with the history's condition; Ready=False while its Secret is missing (pure)."""
    if spec.database is None:
        return result
    if recorder.missing is not None:
        ref = spec.database.secret_key_ref
        message = (
            f"{recorder.missing}; create it with key {ref.key!r} holding the history database's DSN "
            "(the release goes on, unrecorded)"
        )
        condition = ConditionUpdate(RECORDED, False, SECRET_NOT_FOUND, message)
        return replace(
            result,
            ready=False,
            reason=SECRET_NOT_FOUND,
            message=f"{message}; {result.message}" if result.message else message,
            conditions=(*result.conditions, condition),
        )
    if recorder.problems:
        condition = ConditionUpdate(RECORDED, False, NOT_RECORDED, "; ".join(recorder.problems))
    else:
        condition = ConditionUpdate(RECORDED, True, "Recorded", "deployment history and flags recorded")
    return replace(result, conditions=(*result.conditions, condition))
