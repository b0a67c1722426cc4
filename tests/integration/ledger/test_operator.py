"""The CreditLedger handlers with the Kubernetes API fixture and a real PostgreSQL database."""

from __future__ import annotations

import base64
import copy
from typing import Any

import pytest
import yaml
from kubernetes import client

from fortress.api import GROUP, VERSION
from fortress.ledger import events as ev
from fortress.ledger.store import EventStore
from fortress.paths import examples_dir
from tests.integration.ledger.support import migrated_pool
from tests.support.kubeapi import KubeTarget, running_operator, wait_for
from tests.support.postgres import PgCluster

pytestmark = pytest.mark.postgres


def _ledger(name: str, secret: str) -> dict[str, Any]:
    body = yaml.safe_load((examples_dir() / "creditledger-main.yaml").read_text())
    body = copy.deepcopy(body)
    body["metadata"]["name"] = name
    body["spec"]["database"]["secretKeyRef"]["name"] = secret
    body["spec"]["projection"]["pollInterval"] = "100ms"
    return body  # type: ignore[no-any-return]


def _ready(api: client.CustomObjectsApi, namespace: str, name: str, status: str) -> dict[str, Any] | None:
    obj = api.get_namespaced_custom_object(GROUP, VERSION, namespace, "creditledgers", name)
    for condition in (obj.get("status") or {}).get("conditions") or []:
        if condition["type"] == "Ready" and condition["status"] == status:
            return obj  # type: ignore[no-any-return]
    return None


async def test_ledger_reaches_ready_with_figures_and_missing_secret_is_named(
    kube_api: KubeTarget, k8s: client.ApiClient, namespace: str, pg: PgCluster
) -> None:
    pool = await migrated_pool(pg)
    try:
        store = EventStore(pool)
        for n in range(12):
            await store.execute(f"tenant-{n % 3}", ev.Purchase(10 + n))
        core, api = client.CoreV1Api(k8s), client.CustomObjectsApi(k8s)
        core.create_namespaced_secret(
            namespace,
            client.V1Secret(
                metadata=client.V1ObjectMeta(name="ledger-db"),
                data={"dsn": base64.b64encode(pg.dsn().encode()).decode()},
            ),
        )
        async with running_operator(kube_api, namespaces=(namespace,)):
            for body in (_ledger("good", "ledger-db"), _ledger("orphan", "no-such-secret")):
                api.create_namespaced_custom_object(GROUP, VERSION, namespace, "creditledgers", body)

            def caught_up() -> dict[str, Any] | None:
                obj = _ready(api, namespace, "good", "True")
                projection = ((obj or {}).get("status") or {}).get("projection") or {}
                return obj if projection.get("position") == 12 and projection.get("lagEvents") == 0 else None

            good = (await wait_for(caught_up, timeout=40))["status"]
            assert good["eventsTotal"] == 12 and good["lastGlobalPosition"] == 12
            assert good["schemaVersion"] >= 1 and good["snapshots"] == 0 and good["phase"] == "Active"
            assert good["projection"]["lagSeconds"] == 0
            balances = await pool.fetch(
                "SELECT tenant_id, balance FROM credit_balances_read_model ORDER BY 1"
            )
            assert [r["balance"] for r in balances] == [
                10 + 13 + 16 + 19,
                11 + 14 + 17 + 20,
                12 + 15 + 18 + 21,
            ]
            partitions = await pool.fetchval(
                "SELECT count(*) FROM pg_inherits WHERE inhparent = 'event_store'::regclass"
            )
            assert partitions >= 5  # default + this month + 3 ahead

            # An event the projector cannot apply stops it at that event (a ledger never skips one),
            # and the status and an Event say why.
            await pool.execute(
                "INSERT INTO event_store (aggregate_type, aggregate_id, version, event_type, data) "
                "VALUES ('credit_account', 'tenant-0', 5, 'CreditsPurchased', '{\"amount\": \"lots\"}')"
            )

            def stuck() -> dict[str, Any] | None:
                obj = api.get_namespaced_custom_object(GROUP, VERSION, namespace, "creditledgers", "good")
                projection = (obj.get("status") or {}).get("projection") or {}
                return obj if projection.get("lastError") and projection.get("lagEvents") == 1 else None

            projection = (await wait_for(stuck, timeout=40))["status"]["projection"]
            assert "CorruptStream" in projection["lastError"] and "lots" in projection["lastError"]
            assert projection["position"] == 12
            events = await wait_for(
                lambda: [
                    e
                    for e in core.list_namespaced_event(namespace).items
                    if e.reason == "ProjectorError" and e.involved_object.name == "good"
                ],
                timeout=20,
            )
            assert events[0].type == "Warning" and "lots" in events[0].message
            # ... and the ledger no longer claims Ready: its projector is a failing check.
            held = (await wait_for(lambda: _ready(api, namespace, "good", "Unknown"), timeout=20))["status"]
            ready = next(c for c in held["conditions"] if c["type"] == "Ready")
            assert ready["reason"] == "CheckFailed" and "projector failed: CorruptStream" in ready["message"]

            orphan = (await wait_for(lambda: _ready(api, namespace, "orphan", "False"), timeout=60))["status"]
            ready = next(c for c in orphan["conditions"] if c["type"] == "Ready")
            assert ready["reason"] == "SecretNotFound"
            assert "no-such-secret" in ready["message"] and "spec.database.secretKeyRef" in ready["message"]
    finally:
        await pool.close()


async def test_unreachable_database_is_not_ready_with_reason(
    kube_api: KubeTarget, k8s: client.ApiClient, namespace: str
) -> None:
    core, api = client.CoreV1Api(k8s), client.CustomObjectsApi(k8s)
    dead = "postgresql://postgres@127.0.0.1:9/nowhere"  # nothing listens on the discard port
    core.create_namespaced_secret(
        namespace,
        client.V1Secret(
            metadata=client.V1ObjectMeta(name="dead-db"),
            data={"dsn": base64.b64encode(dead.encode()).decode()},
        ),
    )
    async with running_operator(kube_api, namespaces=(namespace,)):
        api.create_namespaced_custom_object(
            GROUP, VERSION, namespace, "creditledgers", _ledger("dead", "dead-db")
        )
        obj = await wait_for(lambda: _ready(api, namespace, "dead", "False"), timeout=60)
        ready = next(c for c in obj["status"]["conditions"] if c["type"] == "Ready")
        assert ready["reason"] == "DatabaseUnavailable"
        assert "127.0.0.1:9" in ready["message"]
