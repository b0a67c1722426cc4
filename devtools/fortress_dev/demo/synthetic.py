"""Demo step: the decoy customers table, its quality figures, and an intruder's read raising the alarm.

The example SyntheticDataset ``decoy-customers`` writes 50,000 users into the demo's decoy database;
this step waits until it is live, prints its digest and quality, reads three rows as a role of its
own (an intruder would), and waits for the operator to set ``DecoyTouched``.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import asyncpg
from kubernetes import client

from fortress.api import GROUP, VERSION
from fortress.commands.synth import describe_dataset

NAME = "decoy-customers"


def _dataset(api: client.ApiClient, namespace: str) -> dict[str, Any]:
    found = client.CustomObjectsApi(api).get_namespaced_custom_object(
        GROUP, VERSION, namespace, "syntheticdatasets", NAME
    )
    return dict(found) if isinstance(found, dict) else {}


def _condition(obj: dict[str, Any], type_: str) -> dict[str, Any]:
    conditions = (obj.get("status") or {}).get("conditions") or []
    return next((c for c in conditions if c.get("type") == type_), {})


async def _until(ctx: Any, what: str, check: Any, timeout: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        obj = await asyncio.to_thread(_dataset, ctx.api, ctx.namespace)
        if check(obj):
            return obj
        if time.monotonic() > deadline:
            raise RuntimeError(
                f"SyntheticDataset {NAME}: {what} not seen in {timeout:.0f}s: {obj.get('status')}"
            )
        await asyncio.sleep(0.5)


async def demo(ctx: Any) -> None:
    """Show the decoy table and its alarm; raise on failure."""
    ctx.say("")
    ctx.say("== Synthetic data: a decoy customers table ==")
    dsn = ctx.secrets.get("decoy-db", {}).get("dsn")
    if not dsn:
        raise RuntimeError("the demo backends provide no decoy-db Secret")
    obj = await _until(ctx, "Ready", lambda o: _condition(o, "Ready").get("status") == "True", 180)
    for line in describe_dataset(obj).splitlines():
        ctx.say(line)
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(
            "DO $$ BEGIN CREATE ROLE demo_intruder LOGIN; EXCEPTION WHEN duplicate_object THEN NULL; END $$"
        )
        await conn.execute("GRANT SELECT ON customers TO demo_intruder")
    finally:
        await conn.close()
    intruder = await asyncpg.connect(dsn, user="demo_intruder")
    try:
        rows = await intruder.fetch("SELECT first_name, last_name, email FROM customers LIMIT 3")
    finally:
        await intruder.close()
    ctx.say("an intruder (role demo_intruder) reads: " + "; ".join(f"{r[0]} {r[1]} <{r[2]}>" for r in rows))
    started = time.monotonic()
    obj = await _until(
        ctx, "DecoyTouched", lambda o: _condition(o, "DecoyTouched").get("status") == "True", 90
    )
    touched = _condition(obj, "DecoyTouched").get("message")
    ctx.say(f"DecoyTouched=True after {time.monotonic() - started:.1f}s: {touched}")
