"""Demo step: a sample app rolled through its canary stages, then a bad release rolled back.

On the full local control plane (``make controlplane``) and on a cluster given with ``--kubeconfig``
the real Deployment controller, scheduler and kwok's fake nodes run the rollouts' Deployments: nothing
is simulated. Only where no controller runs (the emulator, a bare kube-apiserver) do Deployments get
no pods; there their ``status`` is simulated as a Deployment controller would write it once every pod
is available: for the examples during the whole demo (``environment``) and for the sample app during
its story; the demo says so.
Analysis runs against the real ``prometheus`` binary, when installed, scraping an in-process sample
app whose error rate the demo sets; without it the release advances on its pauses alone and the
rollback is shown with the ``abort`` verb instead (nothing pretends to be Prometheus).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import time
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from fortress.adapters.kube import BlockingKube, Cluster
from fortress.api import GROUP, VERSION
from fortress.commands.rollout import send
from fortress.core.conditions import READY, find
from fortress.rollouts import store
from fortress.rollouts.model import template_hash
from fortress_dev.deployments import simulated_availability
from fortress_dev.promlab import PrometheusProcess, SampleApp, prometheus_binary

NAME = "storefront"
PLURAL = "canaryrollouts"
EXAMPLES = ("checkout", "payments")


def _template(version: str) -> dict[str, Any]:
    return {
        "metadata": {"labels": {"app": NAME}},
        "spec": {
            "containers": [
                {
                    "name": "web",
                    "image": f"ghcr.io/example/storefront:{version}",
                    "ports": [{"containerPort": 8080}],
                }
            ]
        },
    }


def _body(prometheus: str | None) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "service": NAME,
        "replicas": 10,
        "template": _template("1.0"),
        "strategy": {
            "type": "canary",
            "canary": {
                "stages": [
                    {"weight": 10, "pause": {"duration": "2s"}},
                    {"weight": 50, "pause": {"duration": "1s"}},
                    {"weight": 100, "pause": {"duration": "500ms"}},
                ]
            },
        },
        "progressDeadline": "30s",
        "scaleDownDelay": "1s",
        "abortScaleDownDelay": "1s",
        "featureFlags": [{"name": "one-click-checkout", "enableAtStage": 1}],
        "database": {"secretKeyRef": {"name": "rollouts-db", "key": "dsn"}},
    }
    if prometheus:
        spec["analysis"] = {
            "prometheusAddress": prometheus,
            "interval": "1s",
            "failureLimit": 0,
            "thresholds": {"maxErrorRate": 0.02, "maxP95LatencyMs": 300},
        }
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "CanaryRollout",
        "metadata": {"name": NAME},
        "spec": spec,
    }


def _status(api: client.ApiClient, namespace: str, name: str) -> dict[str, Any]:
    found = client.CustomObjectsApi(api).get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name)
    return dict((found if isinstance(found, dict) else {}).get("status") or {})


def _ready(status: dict[str, Any]) -> dict[str, Any]:
    return dict(find(status.get("conditions"), READY) or {})


def _selector(api: client.ApiClient, namespace: str) -> dict[str, str]:
    service = client.CoreV1Api(api).read_namespaced_service(NAME, namespace)
    return dict((service.spec.selector if service.spec else None) or {})


def _prepare(api: client.ApiClient, namespace: str, dsn: str, body: dict[str, Any]) -> None:
    core = client.CoreV1Api(api)
    secret = client.V1Secret(
        metadata=client.V1ObjectMeta(name="rollouts-db", namespace=namespace),
        data={"dsn": base64.b64encode(dsn.encode()).decode()},
    )
    try:
        core.create_namespaced_secret(namespace, secret)
    except ApiException as error:
        if error.status != 409:
            raise
    client.CustomObjectsApi(api).create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, body)


def _abort(cluster: Cluster, namespace: str) -> str:
    """``fortress rollout abort`` on the sample app; the request id."""
    with BlockingKube(cluster) as kube:
        return send(kube, namespace, NAME, "abort")


def _flags(status: dict[str, Any]) -> str:
    return ", ".join(f"{f['name']} {'on' if f['enabled'] else 'off'}" for f in status.get("flags") or [])


def _event_reasons(api: client.ApiClient, namespace: str) -> list[str]:
    """The reasons of the sample app's Events, oldest first (by their microsecond eventTime)."""
    items = client.CoreV1Api(api).list_namespaced_event(namespace).items
    mine = [e for e in items if e.involved_object and e.involved_object.name == NAME]
    return [str(e.reason) for e in sorted(mine, key=_posted)]


def _posted(event: Any) -> tuple[str, str]:
    """When an Event was posted (eventTime, else its first timestamp), then its name."""
    moment = event.event_time or event.first_timestamp
    return (moment.isoformat() if moment else "", str(event.metadata.name if event.metadata else ""))


def _runs(words: list[str]) -> str:
    """``a, b, b, b, c`` as ``a, b x3, c``."""
    runs: list[list[Any]] = []
    for word in words:
        if runs and runs[-1][0] == word:
            runs[-1][1] += 1
        else:
            runs.append([word, 1])
    return ", ".join(word if count == 1 else f"{word} x{count}" for word, count in runs)


async def _wait(
    api: client.ApiClient, namespace: str, predicate: Any, what: str, timeout: float = 30.0
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    status: dict[str, Any] = {}
    while time.monotonic() < deadline:
        status = await asyncio.to_thread(_status, api, namespace, NAME)
        if predicate(status):
            return status
        await asyncio.sleep(0.1)
    raise RuntimeError(f"{NAME}: {what} not reached in {timeout:.0f}s; status: {status.get('message')}")


def _simulating(ctx: Any) -> bool:
    return not getattr(ctx, "controllers", False)


def _sample_app_deployment(name: str) -> bool:
    return name.startswith(f"{NAME}-")


@contextlib.asynccontextmanager
async def environment(ctx: Any) -> AsyncIterator[None]:
    """For the whole demo: the examples' Deployments become available where no controller runs."""
    if not _simulating(ctx):
        yield
        return
    ctx.say(
        f"CanaryRollout: no controllers in this Kubernetes API; the status of the rollouts' Deployments in "
        f"{ctx.namespace} is simulated (as the Deployment controller reports all pods available)"
    )
    async with simulated_availability(ctx.api, ctx.namespace, delay=0.5, hold=_sample_app_deployment):
        yield


async def demo(ctx: Any) -> None:
    """Roll the sample app through its stages and show a rollback; raise on failure."""
    say, api, namespace = ctx.say, ctx.api, ctx.namespace
    say("")
    say("CanaryRollout")
    for name in EXAMPLES:
        status = await asyncio.to_thread(_status, api, namespace, name)
        ready = _ready(status)
        say(f"  example {name}: {status.get('phase')}, Ready={ready.get('status')} ({ready.get('reason')})")
        if ready.get("status") != "True":
            raise RuntimeError(f"example {name} is not Ready: {status.get('message')}")
    if _simulating(ctx):
        say(
            "  note: this Kubernetes API runs no controllers, so Deployments get no pods; their "
            "status.availableReplicas is simulated as the Deployment controller would report it"
        )
    revisions = {v: template_hash(_template(v)) for v in ("1.0", "1.1", "1.2")}
    app: SampleApp | None = None
    prometheus: PrometheusProcess | None = None
    if prometheus_binary():
        app = SampleApp(namespace, NAME, rps=200.0)
        await asyncio.to_thread(app.start)
        for revision in revisions.values():
            app.set(revision, error_rate=0.001, latency_ms=40)
        prometheus = PrometheusProcess([app.target], scrape_interval="1s")
        started = time.monotonic()
        await asyncio.to_thread(prometheus.start)
        say(
            f"  Prometheus {prometheus.url} (real binary, up in {time.monotonic() - started:.1f}s) scrapes "
            f"a sample app at {app.target}; analysis every 1s, maxErrorRate 2 %, maxP95LatencyMs 300"
        )
    else:
        say(
            "  prometheus binary not found: no analysis (stages advance on their pauses); the rollback is "
            "shown with `fortress rollout abort`"
        )
    try:
        await _run(ctx, revisions, app, prometheus)
    finally:
        if prometheus is not None:
            await asyncio.to_thread(prometheus.stop)
        if app is not None:
            await asyncio.to_thread(app.stop)


async def _run(
    ctx: Any, revisions: dict[str, str], app: SampleApp | None, prometheus: PrometheusProcess | None
) -> None:
    say, api, namespace = ctx.say, ctx.api, ctx.namespace
    body = _body(prometheus.url if prometheus else None)
    custom = client.CustomObjectsApi(api)

    async def patch_spec(spec: dict[str, Any]) -> None:
        await asyncio.to_thread(
            custom.patch_namespaced_custom_object, GROUP, VERSION, namespace, PLURAL, NAME, {"spec": spec}
        )

    async with contextlib.AsyncExitStack() as stack:
        if _simulating(ctx):
            # the sample app's Deployments only: the examples' are simulated by ``environment``
            only_the_app = simulated_availability(
                api, namespace, delay=0.2, hold=lambda name: not _sample_app_deployment(name)
            )
            await stack.enter_async_context(only_the_app)
        begin = time.monotonic()
        await asyncio.to_thread(_prepare, api, namespace, ctx.dsn, body)
        first = await _wait(api, namespace, lambda st: st.get("phase") == "Succeeded", "initial release")
        took = time.monotonic() - begin
        say(f"  {NAME} 1.0 ({first['stableRevision']}) released on blue, 10 pods, in {took:.1f}s")
        if prometheus is not None:
            await asyncio.to_thread(
                prometheus.wait_for_data, f'http_requests_total{{fortress_io_revision="{revisions["1.1"]}"}}'
            )

        begin = time.monotonic()
        await patch_spec({"template": _template("1.1")})
        seen: list[int] = []

        def stages(st: dict[str, Any]) -> bool:
            weight = st.get("canaryWeight")
            if st.get("stageReadyAt") and weight and (not seen or seen[-1] != weight):
                seen.append(weight)
                metrics = ", ".join(
                    f"{m['name']} {m['value']:.3g}"
                    for m in st.get("metrics") or []
                    if m.get("value") is not None
                )
                stage = st["currentStage"] + 1
                line = f"    {time.monotonic() - begin:4.1f}s  stage {stage}: {weight:3d} % to 1.1"
                say(line + (f"  (last analysis: {metrics})" if metrics else ""))
            return st.get("phase") == "Succeeded" and st.get("stableRevision") == revisions["1.1"]

        done = await _wait(api, namespace, stages, "promotion of 1.1")
        selector = await asyncio.to_thread(_selector, api, namespace)
        say(
            f"  1.1 promoted in {time.monotonic() - begin:.1f}s: Service {NAME} selects "
            f"{selector.get('fortress.io/colour')}; flags: {_flags(done)}"
        )

        begin = time.monotonic()
        more_flags = [*body["spec"]["featureFlags"], {"name": "instant-search", "enableAtStage": 0}]
        await patch_spec({"template": _template("1.2"), "featureFlags": more_flags})
        at_first = await _wait(
            api, namespace, lambda st: (st.get("canaryWeight") or 0) > 0, "1.2 at its first stage"
        )
        next_step = "now it fails 50 % of its requests" if app is not None else "now it is aborted by hand"
        say(
            f"  1.2 on blue at its first stage ({time.monotonic() - begin:.1f}s), with a new flag: "
            f"{_flags(at_first)}; {next_step}"
        )
        injected = time.monotonic()
        if app is not None:
            app.set(revisions["1.2"], error_rate=0.5, latency_ms=40)
        else:
            await asyncio.to_thread(_abort, ctx.cluster, namespace)
        failed = await _wait(
            api, namespace, lambda st: st.get("phase") in ("Degraded", "RolledBack"), "rollback"
        )
        selector = await asyncio.to_thread(_selector, api, namespace)
        stable = selector.get("fortress.io/colour")
        if stable != failed.get("stableColour"):
            raise RuntimeError(f"after the rollback the Service selects {stable}, not the stable colour")
        cause = "50 % errors injected" if app is not None else "abort requested"
        say(f"  rolled back {time.monotonic() - injected:.1f}s after {cause}: {failed['message']}")
        say(
            f"  Service {NAME} selects {stable} only (100 % stable); Ready={_ready(failed).get('status')} "
            f"({_ready(failed).get('reason')})"
        )
        await _wait(
            api, namespace, lambda st: st.get("phase") == "RolledBack", "scale-down of the failed colour"
        )
        say(f"  flags after the rollback: {_flags(failed)} (ConfigMap {NAME}-flags and feature_flags)")
        reasons = await asyncio.to_thread(_event_reasons, api, namespace)
        say(f"  Events of {NAME} ({len(reasons)}): {_runs(reasons)}")
    pool = await ctx_pool(ctx)
    try:
        rows = await store.history(pool, namespace, NAME)
        flags = await store.flags(pool, namespace, NAME)
    finally:
        await pool.close()
    say(
        "  deployment_history: "
        + "; ".join(
            f"{r['image'].rsplit(':', 1)[-1] if r['image'] else r['revision']} {r['outcome']}"
            for r in reversed(rows)
        )
    )
    say(f"  feature_flags: {flags}")
    if [r["outcome"] for r in rows[:2]] != ["RolledBack", "Succeeded"]:
        raise RuntimeError(f"unexpected deployment_history: {rows}")
    if flags != {"one-click-checkout": True, "instant-search": False}:
        raise RuntimeError(f"unexpected feature_flags: {flags}")


async def ctx_pool(ctx: Any) -> Any:
    return await asyncpg.create_pool(ctx.dsn, min_size=1, max_size=2)
