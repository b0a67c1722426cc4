"""Everything a check does besides a promotion: fences, lifted fences, the Service, standbys, notes.

Also the actions a promotion shares (fence one region, repoint standbys, point the Service). Each is
idempotent, and a failure is collected as text (connection strings named by their Secret, never
shown) for the plan's message rather than raised: the next check tries again.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fortress.dr import actions, kubeio
from fortress.dr.decision import Decision
from fortress.dr.observe import Check
from fortress.dr.status import Executed, Note


async def fence(check: Check, name: str, fenced_now: dict[str, str], errors: list[str]) -> None:
    """Fence one region now; how it was fenced goes to ``fenced_now``, a failure to ``errors``."""
    try:
        result = await actions.fence(check.dsn(name), check.spec.fencing, check.timeout)
        fenced_now[name] = result.detail
    except Exception as error:
        errors.append(f"fencing {name}: {check.describe(error)}")


async def follow(
    check: Check, names: tuple[str, ...], upstream: str | None, errors: list[str]
) -> tuple[str, ...]:
    """Point each standby at ``upstream``; those that now follow it."""
    if upstream is None:
        return ()
    done: list[str] = []
    for name in names:
        try:
            await actions.follow(check.dsn(name), check.dsn(upstream), check.timeout)
            done.append(name)
        except Exception as error:
            errors.append(f"pointing {name} at {upstream}: {check.describe(error)}")
    return tuple(done)


async def point_service(check: Check, region: str) -> str:
    """Point the plan's Service at one region's endpoint; where it points now."""
    endpoint = check.regions[region].spec.endpoint
    return await kubeio.point_service(
        check.kube, check.namespace, check.spec.service, check.plan, endpoint.host, endpoint.port
    )


async def housekeep(
    check: Check, decision: Decision, service_now: str | None, last_request: Mapping[str, Any] | None
) -> Executed:
    """Everything but a promotion: fences, rejoins, repointing standbys and the Service."""
    errors: list[str] = []
    notes: list[Note] = []
    fenced_now: dict[str, str] = {}
    reasons = await _apply_fences(check, decision, fenced_now, errors, notes)
    await _lift_fences(check, decision, errors, notes)
    service = service_now
    if decision.service_to is not None:
        try:
            service = await point_service(check, decision.service_to)
            notes.append(Note("Normal", "ServicePointed", f"Service -> {decision.service_to} ({service})"))
        except Exception as error:
            errors.append(f"pointing the Service at {decision.service_to}: {check.describe(error)}")
    followed = await follow(check, decision.follow, decision.primary, errors)
    notes += region_notes(check, decision)
    return Executed(
        primary=decision.primary,
        service_endpoint=service,
        in_progress=None if decision.abandoned else check.in_progress(),
        last_request=last_request,
        fenced_now=fenced_now,
        fence_reasons=reasons,
        followed=followed,
        errors=tuple(errors),
        notes=tuple(notes),
    )


async def _apply_fences(
    check: Check, decision: Decision, fenced_now: dict[str, str], errors: list[str], notes: list[Note]
) -> dict[str, str]:
    """Fence the writable regions the decision names; why each of them is fenced."""
    reasons: dict[str, str] = {}
    for name in decision.fence:
        old = check.regions[name].status
        why = old.get("fencedReason") if old.get("fenced") else None
        reasons[name] = why or f"a second primary besides {decision.primary}: fenced"
        await fence(check, name, fenced_now, errors)
        if name in fenced_now:
            notes.append(Note("Warning", "Fenced", f"{reasons[name]} ({fenced_now[name]})", name))
    return reasons


async def _lift_fences(check: Check, decision: Decision, errors: list[str], notes: list[Note]) -> None:
    """Hand an abandoned switchover's old primary its writes back."""
    for name in decision.lift_fence:
        try:
            await actions.lift_fence(check.dsn(name), check.timeout)
            notes.append(Note("Normal", "FenceLifted", "switchover abandoned: writes allowed again", name))
        except Exception as error:
            errors.append(f"lifting the fence on {name}: {check.describe(error)}")


def region_notes(check: Check, decision: Decision) -> list[Note]:
    """Notes on what the decision found: rejoined regions, re-clones, a rejected request, a given-up
    operation."""
    notes = [
        Note("Normal", "Rejoined", f"rejoined as a standby of {decision.primary}; fence cleared", name)
        for name in decision.unfence
    ]
    for name, verdict in decision.regions.items():
        was = bool(check.regions[name].status.get("needsReclone"))
        if verdict.needs_reclone and not was:
            message = f"cannot follow {decision.primary}'s timeline: re-clone it"
            notes.append(Note("Warning", "NeedsReclone", message, name))
    if decision.request_note:
        notes.append(Note("Warning", "RequestRejected", decision.request_note))
    if decision.abandoned:
        notes.append(Note("Warning", "OperationAbandoned", decision.abandoned))
    return notes
