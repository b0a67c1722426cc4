"""The source of truth: pydantic models of every Fortress resource's spec and status."""

from fortress.api import (
    canaryrollout,
    compliancescan,
    creditledger,
    drplan,
    drregion,
    shardcluster,
    syntheticdataset,
)
from fortress.api.common import API_VERSION, CATEGORY, GROUP, VERSION
from fortress.api.kind import KindInfo, SpecIssue

KINDS: tuple[KindInfo, ...] = (
    canaryrollout.INFO,
    shardcluster.INFO,
    drplan.INFO,
    drregion.INFO,
    compliancescan.INFO,
    creditledger.INFO,
    syntheticdataset.INFO,
)
BY_KIND: dict[str, KindInfo] = {info.kind: info for info in KINDS}
BY_PLURAL: dict[str, KindInfo] = {info.plural: info for info in KINDS}

__all__ = [
    "API_VERSION",
    "BY_KIND",
    "BY_PLURAL",
    "CATEGORY",
    "GROUP",
    "KINDS",
    "VERSION",
    "KindInfo",
    "SpecIssue",
]
