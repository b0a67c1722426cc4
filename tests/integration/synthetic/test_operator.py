"""SyntheticDataset in the operator, against the local kube-apiserver and real PostgreSQL.

A million users written with COPY, the operator stopped mid-way and started again: the final count
is exact and the digest equals the uninterrupted stream's. A spec change swaps a new table in while
a reader counts rows in a loop: it only ever sees a whole dataset. A decoy read by another role
raises the alarm within a check interval; the operator's own reads (resume count, primary key,
ANALYZE) do not. A table of the target's name that the operator did not make is never touched.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
from typing import Any

import asyncpg
import pytest
from kubernetes import client

from fortress.adapters import migrations
from fortress.api import GROUP, VERSION
from fortress.metrics import synthetic as synthetic_metrics
from fortress.synthetic import render
from fortress.synthetic.generate import Recipe, blocks, generator
from tests.support.kubeapi import KubeTarget, running_operator, wait_for
from tests.support.postgres import PgCluster

pytestmark = pytest.mark.postgres
PLURAL = "syntheticdatasets"


def _secret(k8s: client.ApiClient, namespace: str, name: str, dsn: str) -> None:
    client.CoreV1Api(k8s).create_namespaced_secret(
        namespace,
        client.V1Secret(
            metadata=client.V1ObjectMeta(name=name), data={"dsn": base64.b64encode(dsn.encode()).decode()}
        ),
    )


def _dataset(name: str, table: str, count: int, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "SyntheticDataset",
        "metadata": {"name": name},
        "spec": {
            "kind": "users",
            "count": count,
            "seed": 7,
            "target": {
                "type": "postgres",
                "postgres": {
                    "connection": {"secretKeyRef": {"name": "target", "key": "dsn"}},
                    "table": table,
                },
            },
            **spec,
        },
    }


def _get(api: client.CustomObjectsApi, namespace: str, name: str) -> dict[str, Any]:
    return api.get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name)  # type: ignore[no-any-return]


def _condition(obj: dict[str, Any], type_: str) -> dict[str, Any]:
    return next((c for c in (obj.get("status") or {}).get("conditions") or [] if c["type"] == type_), {})


def _ready_with(api: client.CustomObjectsApi, namespace: str, name: str, generated: int) -> Any:
    def check() -> dict[str, Any] | None:
        obj = _get(api, namespace, name)
        ready = _condition(obj, "Ready")
        done = ready.get("status") == "True" and (obj.get("status") or {}).get("generated") == generated
        return obj if done and ready.get("observedGeneration") == obj["metadata"]["generation"] else None

    return check


def uninterrupted_digest(recipe: Recipe) -> str:
    digest = hashlib.sha256()
    for block in blocks(generator(recipe)):
        digest.update(render.text(block).encode())
    return digest.hexdigest()


async def test_a_million_records_resume_after_a_stop_without_duplicates_or_gaps(
    kube_api: KubeTarget, k8s: client.ApiClient, namespace: str, pg: PgCluster
) -> None:
    count = 1_000_000
    api = client.CustomObjectsApi(k8s)
    _secret(k8s, namespace, "target", pg.dsn())
    body = _dataset("million", "decoy_users", count, chunkSize=50_000)
    async with running_operator(kube_api, namespaces=(namespace,)):
        api.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, body)

        def midway() -> dict[str, Any] | None:
            status = _get(api, namespace, "million").get("status") or {}
            return status if 200_000 <= (status.get("generated") or 0) < 800_000 else None

        progress = await wait_for(midway, timeout=120, interval=0.1)
        assert progress["total"] == count and progress["recordsPerSecond"] > 0
        assert _condition(_get(api, namespace, "million"), "Progressing")["status"] == "True"
        assert _condition(_get(api, namespace, "million"), "Ready")["status"] == "False"
    # the operator stopped mid-COPY: only whole chunks are in the staging table, no live table yet
    conn = await asyncpg.connect(pg.dsn())
    try:
        assert await conn.fetchval("SELECT to_regclass('decoy_users')") is None
        staged = await conn.fetchval(
            "SELECT sum(n_live_tup) FROM pg_stat_user_tables WHERE schemaname = 'fortress_synthetic'"
        )
        stage = await conn.fetchval(
            "SELECT relname FROM pg_stat_user_tables WHERE schemaname = 'fortress_synthetic'"
        )
        rows = await conn.fetchval(f'SELECT count(*) FROM fortress_synthetic."{stage}"')
        assert rows % 50_000 == 0 and 0 < rows < count, (rows, staged)
    finally:
        await conn.close()
    async with running_operator(kube_api, namespaces=(namespace,)):
        obj = await wait_for(_ready_with(api, namespace, "million", count), timeout=240, interval=0.5)
    status = obj["status"]
    conn = await asyncpg.connect(pg.dsn())
    try:
        assert await conn.fetchval("SELECT count(*) FROM decoy_users") == count
        assert await conn.fetchval("SELECT count(DISTINCT id) FROM decoy_users") == count
        assert await conn.fetchval("SELECT max(id) FROM decoy_users") == count - 1
        assert await conn.fetchval("SELECT count(DISTINCT email) FROM decoy_users") == count
        leftovers = await conn.fetchval(
            "SELECT count(*) FROM pg_tables WHERE schemaname = 'fortress_synthetic'"
        )
        assert leftovers == 0
    finally:
        await conn.close()
    expected = await asyncio.to_thread(uninterrupted_digest, Recipe("users", count, seed=7))
    assert status["digest"] == expected
    quality = status["quality"]
    assert quality["uniqueRecords"] >= 0.99 and quality["learned"] and quality["fitted"]
    assert all(f["passed"] for f in quality["fitted"]), quality["fitted"]


async def test_a_spec_change_swaps_the_table_atomically_while_a_reader_counts(
    kube_api: KubeTarget, k8s: client.ApiClient, namespace: str, pg: PgCluster
) -> None:
    api = client.CustomObjectsApi(k8s)
    _secret(k8s, namespace, "target", pg.dsn())
    async with running_operator(kube_api, namespaces=(namespace,)):
        api.create_namespaced_custom_object(
            GROUP, VERSION, namespace, PLURAL, _dataset("swap", "people", 100_000, chunkSize=10_000)
        )
        first = await wait_for(_ready_with(api, namespace, "swap", 100_000), timeout=120)
        seen: list[int] = []
        errors: list[str] = []
        stop = asyncio.Event()

        async def reader() -> None:
            conn = await asyncpg.connect(pg.dsn())
            try:
                while not stop.is_set():
                    try:
                        seen.append(await conn.fetchval("SELECT count(*) FROM people"))
                    except asyncpg.PostgresError as error:
                        errors.append(str(error))
            finally:
                await conn.close()

        task = asyncio.create_task(reader())
        try:
            api.patch_namespaced_custom_object(
                GROUP, VERSION, namespace, PLURAL, "swap", {"spec": {"count": 150_000}}
            )
            second = await wait_for(_ready_with(api, namespace, "swap", 150_000), timeout=120)
            await asyncio.sleep(0.5)
        finally:
            stop.set()
            await task
    assert not errors, errors[:3]
    assert set(seen) == {100_000, 150_000}, sorted(set(seen))
    assert seen.index(150_000) > 0 and all(n == 150_000 for n in seen[seen.index(150_000) :])
    assert first["status"]["digest"] != second["status"]["digest"]


async def test_a_decoy_read_by_another_role_raises_the_alarm_and_the_operators_reads_do_not(
    kube_api: KubeTarget, k8s: client.ApiClient, namespace: str, pg: PgCluster
) -> None:
    api, core = client.CustomObjectsApi(k8s), client.CoreV1Api(k8s)
    await migrations.up(pg.dsn(), migrations.default_migrations_dir())  # audit_trail
    _secret(k8s, namespace, "target", pg.dsn())
    interval = 2.0
    body = _dataset("honey", "customers", 30_000, chunkSize=5_000, decoy={"checkInterval": "2s"})
    before = synthetic_metrics.DECOY_READS.labels(namespace, "honey")._value.get()
    async with running_operator(kube_api, namespaces=(namespace,)):
        api.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, body)
        await wait_for(_ready_with(api, namespace, "honey", 30_000), timeout=120)
        # the operator's own reads (resume count, primary key, ANALYZE) are not someone else's
        await asyncio.sleep(3 * interval)
        quiet = _get(api, namespace, "honey")
        assert _condition(quiet, "DecoyTouched")["status"] == "False", quiet["status"]
        assert quiet["status"]["decoy"]["reads"] == 0
        conn = await asyncpg.connect(pg.dsn())
        try:
            await conn.execute("CREATE ROLE intruder LOGIN; GRANT SELECT ON customers TO intruder")
        finally:
            await conn.close()
        intruder = await asyncpg.connect(pg.dsn(user="intruder"))
        try:
            rows = await intruder.fetch("SELECT email FROM customers LIMIT 3")
            assert len(rows) == 3
        finally:
            await intruder.close()
        touched_at = asyncio.get_running_loop().time()

        def touched() -> dict[str, Any] | None:
            obj = _get(api, namespace, "honey")
            return obj if _condition(obj, "DecoyTouched").get("status") == "True" else None

        obj = await wait_for(touched, timeout=interval + 3, interval=0.1)
        assert asyncio.get_running_loop().time() - touched_at <= interval + 3
        assert obj["status"]["decoy"]["reads"] >= 1
        assert _condition(obj, "Ready")["status"] == "True"  # the dataset is whole; it was read

        def warned() -> list[Any]:
            return [e for e in core.list_namespaced_event(namespace).items if e.reason == "DecoyTouched"]

        events = await wait_for(warned, timeout=10)
        assert events[0].type == "Warning" and "customers" in events[0].message
    assert synthetic_metrics.DECOY_READS.labels(namespace, "honey")._value.get() >= before + 1
    conn = await asyncpg.connect(pg.dsn())
    try:
        audit = await conn.fetch(
            "SELECT action, namespace, resource_name, details FROM audit_trail "
            "WHERE resource_kind = 'SyntheticDataset'"
        )
    finally:
        await conn.close()
    assert [(a["action"], a["namespace"], a["resource_name"]) for a in audit] == [
        ("synthetic.decoy.read", namespace, "honey")
    ]


async def test_a_table_the_operator_did_not_make_is_refused_and_left_alone(
    kube_api: KubeTarget, k8s: client.ApiClient, namespace: str, pg: PgCluster
) -> None:
    api = client.CustomObjectsApi(k8s)
    _secret(k8s, namespace, "target", pg.dsn())
    conn = await asyncpg.connect(pg.dsn())
    try:
        await conn.execute(
            "CREATE TABLE accounts (id bigint, owner text); INSERT INTO accounts VALUES (1, 'real')"
        )
    finally:
        await conn.close()
    async with running_operator(kube_api, namespaces=(namespace,)):
        api.create_namespaced_custom_object(
            GROUP, VERSION, namespace, PLURAL, _dataset("clash", "accounts", 1000)
        )

        def refused() -> dict[str, Any] | None:
            ready = _condition(_get(api, namespace, "clash"), "Ready")
            return ready if ready.get("reason") == "TargetNotOwned" else None

        ready = await wait_for(refused, timeout=30)
        assert ready["status"] == "False" and "accounts" in ready["message"]
        assert "spec.target.postgres.table" in ready["message"]
        await asyncio.sleep(2)
    conn = await asyncpg.connect(pg.dsn())
    try:
        assert [tuple(r) for r in await conn.fetch("SELECT * FROM accounts")] == [(1, "real")]
        assert (
            await conn.fetchval("SELECT count(*) FROM pg_tables WHERE schemaname = 'fortress_synthetic'") == 0
        )
    finally:
        await conn.close()


async def test_deleting_a_dataset_drops_its_table_unless_retained(
    kube_api: KubeTarget, k8s: client.ApiClient, namespace: str, pg: PgCluster
) -> None:
    api = client.CustomObjectsApi(k8s)
    _secret(k8s, namespace, "target", pg.dsn())
    async with running_operator(kube_api, namespaces=(namespace,)):
        api.create_namespaced_custom_object(
            GROUP, VERSION, namespace, PLURAL, _dataset("gone", "t_gone", 2000)
        )
        api.create_namespaced_custom_object(
            GROUP, VERSION, namespace, PLURAL, _dataset("kept", "t_kept", 2000, retainOnDelete=True)
        )
        await wait_for(_ready_with(api, namespace, "gone", 2000), timeout=60)
        await wait_for(_ready_with(api, namespace, "kept", 2000), timeout=60)
        for name in ("gone", "kept"):
            api.delete_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name)

        def deleted() -> bool:
            return not api.list_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL)["items"]

        await wait_for(deleted, timeout=30)
    conn = await asyncpg.connect(pg.dsn())
    try:
        assert await conn.fetchval("SELECT to_regclass('t_gone')") is None
        assert await conn.fetchval("SELECT count(*) FROM t_kept") == 2000
    finally:
        await conn.close()


async def test_a_regenerate_request_writes_a_new_table_with_the_same_records(
    kube_api: KubeTarget, k8s: client.ApiClient, namespace: str, pg: PgCluster
) -> None:
    api = client.CustomObjectsApi(k8s)
    _secret(k8s, namespace, "target", pg.dsn())
    async with running_operator(kube_api, namespaces=(namespace,)):
        api.create_namespaced_custom_object(
            GROUP, VERSION, namespace, PLURAL, _dataset("again", "t_again", 5000)
        )
        first = (await wait_for(_ready_with(api, namespace, "again", 5000), timeout=60))["status"]
        conn = await asyncpg.connect(pg.dsn())
        try:
            before = await conn.fetchval("SELECT 't_again'::regclass::oid")
            request = {"spec": {"request": {"action": "regenerate", "requestId": "again-1"}}}
            api.patch_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, "again", request)

            def regenerated() -> dict[str, Any] | None:
                obj = _get(api, namespace, "again")
                status = obj.get("status") or {}
                done = (status.get("lastRequest") or {}).get("requestId") == "again-1"
                return (
                    status
                    if done
                    and status.get("generationKey") != first["generationKey"]
                    and _condition(obj, "Ready").get("status") == "True"
                    else None
                )

            second = await wait_for(regenerated, timeout=60)
            after = await conn.fetchval("SELECT 't_again'::regclass::oid")
        finally:
            await conn.close()
    assert second["lastRequest"]["outcome"] == "Accepted" and second["lastRequest"]["action"] == "regenerate"
    assert second["digest"] == first["digest"] and after != before
