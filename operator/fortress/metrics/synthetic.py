"""Collectors of synthetic datasets: records generated, the generation rate, decoy touches."""

from __future__ import annotations

from prometheus_client import Counter, Gauge

from fortress.metrics import REGISTRY

RECORDS_GENERATED = Counter(
    "fortress_synthetic_records_generated_total",
    "Records generated and written, by dataset kind (users, transactions, timeseries) and target type.",
    ["kind", "target"],
    registry=REGISTRY,
)
GENERATION_RATE = Gauge(
    "fortress_synthetic_generation_records_per_second",
    "Records per second of the running (or last) generation of a SyntheticDataset.",
    ["namespace", "name"],
    registry=REGISTRY,
)
DECOY_READS = Counter(
    "fortress_synthetic_decoy_reads_total",
    "Reads of a decoy table the operator did not make (pg_stat_user_tables scans), by dataset.",
    ["namespace", "name"],
    registry=REGISTRY,
)
DECOY_TOKENS_PRESENTED = Counter(
    "fortress_synthetic_decoy_tokens_presented_total",
    "Requests to the Fortress API that presented a decoy API token (refused with 401), by dataset.",
    ["namespace", "name"],
    registry=REGISTRY,
)
