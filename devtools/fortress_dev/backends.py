"""The PostgreSQL servers behind the examples' Secrets, for the demo and the tests.

``examples/`` reference four Secrets; each key gets a server of its own, shaped as the example
expects: one ledger database, four shards that allow prepared transactions, three regions in
streaming replication (aws us-east-1 primary, azure eastus and gcp us-central1 standbys), and the
database of the decoy SyntheticDataset.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from dataclasses import dataclass, field

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from fortress_dev.postgres import PgCluster, PgFactory

SHARD_KEYS = ("shard-a", "shard-b", "shard-c", "shard-d")
REGION_KEYS = ("aws-us-east-1", "azure-eastus", "gcp-us-central1")  # the first is the primary


@dataclass
class ExampleBackends:
    """Servers by Secret name and key; ``clusters`` keeps them for clean-up and fault injection."""

    secrets: dict[str, dict[str, str]] = field(default_factory=dict)
    clusters: dict[str, PgCluster] = field(default_factory=dict)


def provision(factory: PgFactory) -> ExampleBackends:
    """Start every server the examples need (blocking: call through ``asyncio.to_thread``)."""
    backends = ExampleBackends()

    def add(secret: str, key: str, cluster: PgCluster) -> None:
        backends.secrets.setdefault(secret, {})[key] = cluster.dsn()
        backends.clusters[f"{secret}/{key}"] = cluster

    add("credits-db", "dsn", factory.create())
    add("decoy-db", "dsn", factory.create())
    for key in SHARD_KEYS:
        add("tenants-shards", key, factory.create(max_prepared_transactions=10))
    primary = factory.create(wal_log_hints=True, max_wal_senders=10)
    add("orders-regions", REGION_KEYS[0], primary)
    for key in REGION_KEYS[1:]:
        add("orders-regions", key, factory.create_replica(primary, application_name=key))
    return backends


def secret_body(name: str, namespace: str, data: Mapping[str, str]) -> client.V1Secret:
    return client.V1Secret(
        metadata=client.V1ObjectMeta(name=name, namespace=namespace),
        type="Opaque",
        data={k: base64.b64encode(v.encode()).decode() for k, v in data.items()},
    )


def apply_secrets(api: client.ApiClient, namespace: str, secrets: Mapping[str, Mapping[str, str]]) -> None:
    """Create or replace each Secret (blocking)."""
    core = client.CoreV1Api(api)
    for name, data in secrets.items():
        body = secret_body(name, namespace, data)
        try:
            core.create_namespaced_secret(namespace, body)
        except ApiException as error:
            if error.status != 409:
                raise
            core.replace_namespaced_secret(name, namespace, body)


def close(factory: PgFactory, backends: ExampleBackends) -> None:
    for cluster in backends.clusters.values():
        factory.destroy(cluster)
