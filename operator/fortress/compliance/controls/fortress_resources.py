"""Controls on Fortress's own resources: ledgers, DR plans and regions, rollouts, shards, scans."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fortress.compliance.context import Context
from fortress.compliance.controls._base import Where, control, direct
from fortress.compliance.model import NOT_APPLICABLE, PASS, Control, Obj, Result, Severity, fail, passed
from fortress.core.time import parse_duration

AREA = "fortress"
H, C, M, L = Severity.HIGH, Severity.CRITICAL, Severity.MEDIUM, Severity.LOW


def _spec(obj: Obj) -> dict[str, Any]:
    spec = obj.get("spec")
    return spec if isinstance(spec, dict) else {}


def _status(obj: Obj) -> dict[str, Any] | None:
    status = obj.get("status")
    return status if isinstance(status, dict) and status else None


def _key(obj: Obj) -> tuple[str, str]:
    meta = obj.get("metadata") or {}
    return str(meta.get("namespace") or ""), str(meta.get("name") or "")


def _seconds(value: Any, default: str) -> float:
    try:
        return parse_duration(str(value or default)).total_seconds()
    except ValueError:
        return 0.0


def _ready(obj: Obj, ctx: Context) -> Result:
    status = _status(obj)
    if status is None:
        return NOT_APPLICABLE
    for condition in status.get("conditions") or []:
        if isinstance(condition, dict) and condition.get("type") == "Ready":
            if condition.get("status") == "True":
                return PASS
            return fail(
                f"Ready is {condition.get('status')}: {condition.get('reason')}", "/status/conditions"
            )
    return fail("no Ready condition", "/status/conditions")


def _ledger_snapshots(obj: Obj, ctx: Context) -> Result:
    interval = _spec(obj).get("snapshotInterval", 100)
    return passed(
        isinstance(interval, int) and 1 <= interval <= 10_000,
        f"snapshotInterval {interval} is outside 1..10000",
        "/spec/snapshotInterval",
    )


def _ledger_kept(obj: Obj, ctx: Context) -> Result:
    kept = (_spec(obj).get("retention") or {}).get("snapshotsKept", 3)
    return passed(
        isinstance(kept, int) and kept >= 2, f"only {kept} snapshot kept", "/spec/retention/snapshotsKept"
    )


def _ledger_projection(obj: Obj, ctx: Context) -> Result:
    enabled = (_spec(obj).get("projection") or {}).get("enabled", True)
    return passed(enabled is not False, "the read-model projector is disabled", "/spec/projection/enabled")


def _ledger_idempotency(obj: Obj, ctx: Context) -> Result:
    ttl = (_spec(obj).get("retention") or {}).get("idempotencyKeyTtl")
    return passed(
        _seconds(ttl, "24h") >= 86400,
        f"idempotencyKeyTtl {ttl} is under 24h",
        "/spec/retention/idempotencyKeyTtl",
    )


def _ledger_migrate(obj: Obj, ctx: Context) -> Result:
    return passed(_spec(obj).get("migrate", True) is not False, "schema migrations are off", "/spec/migrate")


def _regions(obj: Obj, ctx: Context) -> list[Obj]:
    namespace, name = _key(obj)
    return ctx.dr_regions.get((namespace, name), [])


def _dr_two_regions(obj: Obj, ctx: Context) -> Result:
    status = _status(obj)
    count = len(status.get("regions") or []) if status else 0
    count = max(count, len(_regions(obj, ctx)))
    return passed(count >= 2, f"the plan has {count} region(s)", "/metadata/name")


def _dr_healthy(obj: Obj, ctx: Context) -> Result:
    status = _status(obj)
    if status is None or status.get("healthyRegions") is None:
        return NOT_APPLICABLE
    healthy = status["healthyRegions"]
    return passed(healthy >= 2, f"only {healthy} healthy region(s)", "/status/healthyRegions")


def _dr_fencing(obj: Obj, ctx: Context) -> Result:
    fencing = _spec(obj).get("fencing", "readOnly")
    return passed(fencing in ("readOnly", "stop"), f"fencing is {fencing}", "/spec/fencing")


def _dr_locations(obj: Obj, ctx: Context) -> Result:
    regions = _regions(obj, ctx)
    if len(regions) < 2:
        return NOT_APPLICABLE
    locations = {(_spec(r).get("provider"), _spec(r).get("location")) for r in regions}
    return passed(len(locations) >= 2, "every region is in the same location", "/metadata/name")


def _dr_promotable(obj: Obj, ctx: Context) -> Result:
    regions = _regions(obj, ctx)
    if len(regions) < 2:
        return NOT_APPLICABLE
    promotable = sum(1 for r in regions if _spec(r).get("promotable", True) is not False)
    return passed(promotable >= 2, f"{promotable} promotable region(s): no failover target", "/metadata/name")


def _dr_rpo(obj: Obj, ctx: Context) -> Result:
    rpo = _spec(obj).get("rpoTarget", "30s")
    return passed(_seconds(rpo, "30s") <= 900, f"rpoTarget {rpo} is above 15m", "/spec/rpoTarget")


def _region_plan(obj: Obj, ctx: Context) -> Result:
    namespace, _ = _key(obj)
    plan = _spec(obj).get("planRef")
    return passed(
        (namespace, plan) in ctx.dr_plans, f"planRef {plan} names no DRPlan in the scan", "/spec/planRef"
    )


def _region_fenced(obj: Obj, ctx: Context) -> Result:
    status = _status(obj)
    if status is None or status.get("fenced") is None:
        return NOT_APPLICABLE
    return passed(status.get("fenced") is not True, f"fenced: {status.get('fencedReason')}", "/status/fenced")


def _analysis(obj: Obj) -> dict[str, Any]:
    return _spec(obj).get("analysis") or {}


def _ro_prometheus(obj: Obj, ctx: Context) -> Result:
    return passed(
        bool(_analysis(obj).get("prometheusAddress")),
        "no Prometheus analysis is configured",
        "/spec/analysis/prometheusAddress",
    )


def _ro_missing_data(obj: Obj, ctx: Context) -> Result:
    mode = _analysis(obj).get("missingData", "inconclusive")
    return passed(
        mode != "ignore",
        "missing metrics are ignored: a silent canary is promoted",
        "/spec/analysis/missingData",
    )


def _ro_failure_limit(obj: Obj, ctx: Context) -> Result:
    limit = _analysis(obj).get("failureLimit", 1)
    return passed(
        isinstance(limit, int) and limit <= 3,
        f"failureLimit {limit} tolerates many failures",
        "/spec/analysis/failureLimit",
    )


def _ro_blue_green(obj: Obj, ctx: Context) -> Result:
    strategy = _spec(obj).get("strategy") or {}
    if strategy.get("type") != "blueGreen":
        return NOT_APPLICABLE
    analysis = (strategy.get("blueGreen") or {}).get("prePromotionAnalysis", True)
    return passed(
        analysis is not False,
        "blue-green promotes without analysis",
        "/spec/strategy/blueGreen/prePromotionAnalysis",
    )


def _shard_replicas(obj: Obj, ctx: Context) -> Result:
    for i, shard in enumerate(_spec(obj).get("shards") or []):
        if isinstance(shard, dict) and not shard.get("replicas"):
            return fail(f"shard {shard.get('id')} has no replica", f"/spec/shards/{i}")
    return PASS


def _scan_scheduled(obj: Obj, ctx: Context) -> Result:
    spec = _spec(obj)
    if spec.get("suspend") is True:
        return fail("the scan is suspended", "/spec/suspend")
    return passed(bool(spec.get("schedule")), "the scan runs once: no schedule", "/spec/schedule")


def _scan_frameworks(obj: Obj, ctx: Context) -> Result:
    frameworks = set(_spec(obj).get("frameworks") or [])
    missing = sorted({"SOC2", "ISO27001", "GDPR", "PCI_DSS"} - frameworks)
    return passed(not missing, f"does not score {', '.join(missing)}", "/spec/frameworks")


def _scan_excludes(obj: Obj, ctx: Context) -> Result:
    excluded = set(_spec(obj).get("excludeNamespaces") or []) - {
        "kube-system",
        "kube-public",
        "kube-node-lease",
    }
    return passed(not excluded, f"excludes {', '.join(sorted(excluded))}", "/spec/excludeNamespaces")


def _k(*kinds: str) -> Where:
    return {"kinds": kinds, "area": AREA}


def _ready_control(kind: str, short: str, profiles: tuple[str, ...]) -> Control:
    return control(
        f"FTR-{short}-READY",
        f"{kind}s report Ready",
        severity=M,
        check=_ready,
        profiles=profiles,
        source=direct("SOC 2 A1.2 / ISO A.8.16: monitored operation"),
        description=f"The {kind}'s Ready condition is True (not applicable before it has a status).",
        rationale="A resource that is not Ready is not doing what its specification asks.",
        remediation="Read the condition's reason and message.",
        **_k(kind),
    )


Check = Callable[[Obj, Context], Result]

CONTROLS: tuple[Control, ...] = (
    control(
        "FTR-LEDGER-SNAPSHOTS",
        "Ledgers snapshot their aggregates",
        severity=L,
        check=_ledger_snapshots,
        profiles=("data",),
        source=direct("ISO/IEC 27001 A.8.13"),
        description="spec.snapshotInterval is between 1 and 10000 events.",
        rationale="Snapshots bound recovery time of an aggregate's state.",
        remediation="Set spec.snapshotInterval to 100.",
        **_k("CreditLedger"),
    ),
    control(
        "FTR-LEDGER-RETENTION",
        "Ledgers keep at least two snapshots",
        severity=M,
        check=_ledger_kept,
        profiles=("data", "continuity"),
        source=direct("ISO/IEC 27001 A.8.13"),
        description="spec.retention.snapshotsKept is at least 2.",
        rationale="A single snapshot is lost with one bad write.",
        remediation="Set spec.retention.snapshotsKept to 3.",
        **_k("CreditLedger"),
    ),
    control(
        "FTR-LEDGER-PROJECTION",
        "Ledger read models are projected",
        severity=L,
        check=_ledger_projection,
        profiles=("data",),
        source=direct("SOC 2 PI1.4"),
        description="spec.projection.enabled is not false.",
        rationale="A stopped projector serves stale balances.",
        remediation="Set spec.projection.enabled to true.",
        **_k("CreditLedger"),
    ),
    control(
        "FTR-LEDGER-IDEMPOTENCY",
        "Ledgers keep idempotency keys for a day",
        severity=M,
        check=_ledger_idempotency,
        profiles=("data",),
        source=direct("SOC 2 PI1.4"),
        description="spec.retention.idempotencyKeyTtl is at least 24h.",
        rationale="Retried commands apply twice once their key is forgotten.",
        remediation="Set idempotencyKeyTtl to 24h or more.",
        **_k("CreditLedger"),
    ),
    control(
        "FTR-LEDGER-MIGRATE",
        "Ledger schemas are kept current",
        severity=L,
        check=_ledger_migrate,
        profiles=("change",),
        source=direct("ISO/IEC 27001 A.8.32"),
        description="spec.migrate is not false.",
        rationale="A ledger on an old schema misses integrity constraints added since.",
        remediation="Set spec.migrate to true.",
        **_k("CreditLedger"),
    ),
    _ready_control("CreditLedger", "LEDGER", ("monitoring", "data")),
    control(
        "FTR-DR-TWO-REGIONS",
        "DR plans have at least two regions",
        severity=H,
        check=_dr_two_regions,
        profiles=("continuity",),
        source=direct("ISO/IEC 27001 A.8.14"),
        description="At least two DRRegions name the plan (from the scan, or the plan's status).",
        rationale="Failover needs somewhere to fail over to.",
        remediation="Add a DRRegion with spec.planRef naming the plan.",
        **_k("DRPlan"),
    ),
    control(
        "FTR-DR-HEALTHY-REGIONS",
        "DR plans have two healthy regions",
        severity=H,
        check=_dr_healthy,
        profiles=("continuity", "monitoring"),
        source=direct("ISO/IEC 27001 A.5.30"),
        description="status.healthyRegions is at least 2 (not applicable before the first check).",
        rationale="An unhealthy standby cannot take over.",
        remediation="Repair the unhealthy region.",
        **_k("DRPlan"),
    ),
    control(
        "FTR-DR-FENCING",
        "DR plans fence the old primary",
        severity=H,
        check=_dr_fencing,
        profiles=("continuity", "data"),
        source=direct("ISO/IEC 27001 A.5.30"),
        description="spec.fencing is readOnly or stop.",
        rationale="Two writable primaries corrupt data (split brain).",
        remediation="Set spec.fencing to readOnly.",
        **_k("DRPlan"),
    ),
    control(
        "FTR-DR-LOCATIONS",
        "DR regions are in different locations",
        severity=M,
        check=_dr_locations,
        profiles=("continuity",),
        source=direct("ISO/IEC 27001 A.8.14"),
        description="The plan's regions span at least two provider/location pairs.",
        rationale="Regions in one location fail together.",
        remediation="Place a region elsewhere.",
        **_k("DRPlan"),
    ),
    control(
        "FTR-DR-PROMOTABLE",
        "DR plans have a promotable standby",
        severity=M,
        check=_dr_promotable,
        profiles=("continuity",),
        source=direct("ISO/IEC 27001 A.5.30"),
        description="At least two of the plan's regions are promotable.",
        rationale="A plan whose standbys cannot be promoted cannot fail over.",
        remediation="Set spec.promotable: true on a standby.",
        **_k("DRPlan"),
    ),
    control(
        "FTR-DR-RPO",
        "DR plans target an RPO of 15 minutes or less",
        severity=L,
        check=_dr_rpo,
        profiles=("continuity",),
        source=direct("SOC 2 A1.2"),
        description="spec.rpoTarget is at most 15m.",
        rationale="The recovery point objective bounds how much data a failover may lose.",
        remediation="Lower spec.rpoTarget.",
        **_k("DRPlan"),
    ),
    _ready_control("DRPlan", "DR", ("monitoring", "continuity")),
    control(
        "FTR-DRREGION-PLAN",
        "DR regions belong to a plan",
        severity=M,
        check=_region_plan,
        profiles=("continuity",),
        source=direct("ISO/IEC 27001 A.5.30"),
        description="spec.planRef names a DRPlan of the same namespace present in the scan.",
        rationale="A region without a plan is never failed over to.",
        remediation="Fix spec.planRef.",
        **_k("DRRegion"),
    ),
    control(
        "FTR-DRREGION-NOT-FENCED",
        "DR regions are not left fenced",
        severity=M,
        check=_region_fenced,
        profiles=("continuity",),
        source=direct("ISO/IEC 27001 A.5.30"),
        description="status.fenced is not true (not applicable before the first check).",
        rationale="A fenced region is out of the plan until it is re-cloned.",
        remediation="Re-clone the region and clear the fence.",
        **_k("DRRegion"),
    ),
    control(
        "FTR-ROLLOUT-ANALYSIS",
        "Rollouts are analysed",
        severity=M,
        check=_ro_prometheus,
        profiles=("change", "monitoring"),
        source=direct("ISO/IEC 27001 A.8.32"),
        description="spec.analysis.prometheusAddress is set.",
        rationale="Without analysis a bad release is promoted on time alone.",
        remediation="Set spec.analysis.prometheusAddress.",
        **_k("CanaryRollout"),
    ),
    control(
        "FTR-ROLLOUT-MISSING-DATA",
        "Rollouts do not ignore missing metrics",
        severity=M,
        check=_ro_missing_data,
        profiles=("change",),
        source=direct("ISO/IEC 27001 A.8.32"),
        description="spec.analysis.missingData is not ignore.",
        rationale="Ignoring absent data promotes a canary nobody measured.",
        remediation="Set missingData to inconclusive.",
        **_k("CanaryRollout"),
    ),
    control(
        "FTR-ROLLOUT-FAILURE-LIMIT",
        "Rollouts roll back after few failures",
        severity=L,
        check=_ro_failure_limit,
        profiles=("change",),
        source=direct("ISO/IEC 27001 A.8.32"),
        description="spec.analysis.failureLimit is at most 3.",
        rationale="A high limit keeps a failing canary serving traffic.",
        remediation="Lower failureLimit.",
        **_k("CanaryRollout"),
    ),
    control(
        "FTR-ROLLOUT-BLUEGREEN-ANALYSIS",
        "Blue-green rollouts analyse before promotion",
        severity=M,
        check=_ro_blue_green,
        profiles=("change",),
        source=direct("ISO/IEC 27001 A.8.32"),
        description="strategy.blueGreen.prePromotionAnalysis is not false (canary strategies n/a).",
        rationale="Promotion switches all traffic at once.",
        remediation="Set prePromotionAnalysis: true.",
        **_k("CanaryRollout"),
    ),
    control(
        "FTR-SHARD-REPLICAS",
        "Every shard has a replica",
        severity=M,
        check=_shard_replicas,
        profiles=("continuity", "availability"),
        source=direct("ISO/IEC 27001 A.8.14"),
        description="Each spec.shards[] lists at least one replica.",
        rationale="A shard with one copy loses its keys with its server.",
        remediation="Add spec.shards[].replicas.",
        **_k("ShardCluster"),
    ),
    _ready_control("ShardCluster", "SHARDS", ("monitoring", "availability")),
    control(
        "FTR-SCAN-SCHEDULED",
        "Compliance scans run on a schedule",
        severity=M,
        check=_scan_scheduled,
        profiles=("assurance",),
        source=direct("SOC 2 CC4.1"),
        description="spec.schedule is set and spec.suspend is not true.",
        rationale="Controls are monitored continuously, not once.",
        remediation="Set spec.schedule, e.g. 0 2 * * *.",
        **_k("ComplianceScan"),
    ),
    control(
        "FTR-SCAN-FRAMEWORKS",
        "Compliance scans score every framework",
        severity=L,
        check=_scan_frameworks,
        profiles=("assurance",),
        source=direct("ISO/IEC 27001 A.5.36"),
        description="spec.frameworks lists SOC2, ISO27001, GDPR and PCI_DSS.",
        rationale="A framework not scored is not monitored.",
        remediation="Add the missing frameworks.",
        **_k("ComplianceScan"),
    ),
    control(
        "FTR-SCAN-EXCLUSIONS",
        "Compliance scans exclude only system namespaces",
        severity=L,
        check=_scan_excludes,
        profiles=("assurance",),
        source=direct("ISO/IEC 27001 A.5.36"),
        description="spec.excludeNamespaces lists nothing beyond kube-system, kube-public, kube-node-lease.",
        rationale="Every excluded namespace is unmonitored.",
        remediation="Use exceptions for specific findings instead.",
        **_k("ComplianceScan"),
    ),
)
