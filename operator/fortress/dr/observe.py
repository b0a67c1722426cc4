"""What one check of a DRPlan observes, and the context its actions share.

The check takes the plan's Lease (or learns that another replica holds it), lists the plan's
regions with their connection strings, probes every region at once and reads where the Service
points. :class:`Check` carries what was observed into the actions (housekeeping or a promotion) and
writes through the plan's loop: the plan's status, each region's status, Events.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from fortress.adapters.kube import Kube, meta
from fortress.api.common import SecretKeyRef
from fortress.api.drplan import DRPlanSpec, Operation
from fortress.api.drregion import INFO as REGION_INFO
from fortress.api.drregion import DRRegionSpec
from fortress.core import merge
from fortress.core.errors import Secret, describe
from fortress.core.loop import Logger, ObjectRef, StepContext
from fortress.core.time import seconds_of
from fortress.core.validation import validate_spec
from fortress.dr import kubeio, lease, probe
from fortress.dr.decision import RegionState
from fortress.dr.status import Note, region_state
from fortress.dr.topology import Probe, Topology, build

Clock = Callable[[], dt.datetime]
SecretReader = Callable[[SecretKeyRef], Awaitable[str]]  # a secretKeyRef -> its value


@dataclass
class Region:
    """One DRRegion of the plan as this check found it."""

    name: str
    uid: str | None
    generation: int | None
    spec: DRRegionSpec
    state: RegionState
    status: dict[str, Any]  # as listed, then as this check wrote it
    dsn: str | None = None
    dsn_error: str | None = None

    def secret(self, namespace: str) -> Secret | None:
        """The region's connection string, named by its Secret and key (for error messages)."""
        if self.dsn is None:
            return None
        ref = self.spec.connection.secret_key_ref
        return Secret.of(self.dsn, namespace, ref.name, ref.key)


@dataclass
class Check:
    """One check of one plan: what it observed, and the writes of the plan's loop."""

    ctx: StepContext
    spec: DRPlanSpec
    regions: dict[str, Region]
    topology: Topology
    timeout: float  # of one action on a region's PostgreSQL
    clock: Clock
    kube: Kube
    secrets: list[Secret] = field(init=False)  # the regions' connection strings, to name in errors

    def __post_init__(self) -> None:
        self.secrets = [s for s in (r.secret(self.namespace) for r in self.regions.values()) if s]

    @property
    def namespace(self) -> str:
        return self.ctx.namespace

    @property
    def plan(self) -> str:
        return self.ctx.name

    @property
    def log(self) -> Logger:
        return self.ctx.logger

    def dsn(self, name: str) -> str:
        """A region's connection string; LookupError naming its Secret when it could not be read."""
        dsn = self.regions[name].dsn
        if dsn is None:
            raise LookupError(self.regions[name].dsn_error or f"no DSN for {name}")
        return dsn

    def describe(self, error: BaseException) -> str:
        """An error as text for status and Events: the regions' connection strings never shown."""
        return describe(error, self.secrets)

    def in_progress(self) -> Operation | None:
        """The operation the plan's status records as under way."""
        raw = self.ctx.status.get("inProgress")
        return Operation.model_validate(raw) if raw else None

    def region_ref(self, name: str) -> ObjectRef:
        return ObjectRef(REGION_INFO, self.namespace, name)

    async def write_plan(self, fields: Mapping[str, Any]) -> None:
        """Merge ``fields`` into the plan's status now (before acting on what they record)."""
        await self.ctx.write_status(fields)

    async def write_region(self, name: str, patch: Mapping[str, Any]) -> None:
        """Merge ``patch`` into a region's status now (the plan's loop owns it)."""
        region = self.regions[name]
        await self.ctx.write_status_of(self.region_ref(name), region.status, patch)
        region.status = merge.apply(region.status, patch)

    async def post(self, note: Note) -> None:
        """An Event about the plan, or about one of its regions."""
        if note.region is None:
            await self.ctx.post(note.event())
        else:
            region = self.regions[note.region]
            await self.ctx.post(note.event(), about=self.region_ref(note.region), uid=region.uid)
        (self.log.warning if note.type == "Warning" else self.log.info)("%s: %s", note.reason, note.message)


async def take_lease(
    kube: Kube, namespace: str, plan: str, spec: DRPlanSpec, identity: str, now: dt.datetime
) -> str | None:
    """None when this replica may act for the plan (the Lease taken or renewed); else why not."""
    name = lease.lease_name(plan)
    current = await kubeio.read_lease(kube, namespace, name)
    step = lease.step(current, identity, now, seconds_of(spec.lease_duration))
    if not step.holds:
        return f"lease: {step.reason}"
    if step.record is not None:
        written = await kubeio.write_lease(kube, namespace, name, step.record, exists=current is not None)
        if not written:
            return "lease: another replica took it first"
    return None


async def read_regions(
    kube: Kube, namespace: str, plan: str, spec: DRPlanSpec, secret: SecretReader
) -> dict[str, Region]:
    """The plan's valid regions (an invalid one is reported by its own loop), with their DSNs."""
    found: dict[str, Region] = {}
    for item in await kubeio.list_regions(kube, namespace, plan):
        validated = validate_spec(REGION_INFO, item.get("spec"))
        if validated.spec is None or not validated.valid:
            continue
        rspec = validated.spec
        assert isinstance(rspec, DRRegionSpec)
        info = meta(item)
        name = str(info.get("name"))
        status = dict(item.get("status") or {})
        endpoint = kubeio.service_endpoint(spec.service.mode, rspec.endpoint.host, rspec.endpoint.port)
        state = region_state(name, rspec, status, endpoint)
        region = Region(name, info.get("uid"), info.get("generation"), rspec, state, status)
        try:
            region.dsn = await secret(rspec.connection.secret_key_ref)
        except LookupError as error:  # names the Secret and key, never a value
            region.dsn_error = str(error)
        found[name] = region
    return found


async def probe_regions(
    regions: Mapping[str, Region], namespace: str, primary: str | None, timeout: float, clock: Clock
) -> Topology:
    """Probe every region at once; their roles and lag against the (recorded) primary."""

    async def one(region: Region) -> Probe:
        if region.dsn is None:
            return Probe.unreachable(clock(), region.dsn_error or "no DSN")
        secret = region.secret(namespace)
        return await probe.probe(region.dsn, timeout, clock, [secret] if secret else [])

    names = list(regions)
    probes = await asyncio.gather(*(one(regions[n]) for n in names))
    last_lsn = regions[primary].state.last_lsn if primary is not None and primary in regions else None
    return build(dict(zip(names, probes, strict=True)), primary, last_lsn)


async def read_service(kube: Kube, namespace: str, spec: DRPlanSpec, log: Logger) -> str | None:
    """Where the plan's Service points now; None (and a warning) when it cannot be read."""
    try:
        return await kubeio.service_target(kube, namespace, spec.service)
    except Exception as error:  # observed again on the next check
        log.warning("reading Service %s failed: %s", spec.service.name, describe(error))
        return None
