"""Fixtures of the CanaryRollout integration tests.

- ``promlab``: a real Prometheus scraping a sample app whose error rate and latency the tests control.
- ``gateway_api``: the API server serves Gateway API HTTPRoutes (its own CRD, else a minimal one
  vendored in ``data/``, installed for the session).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from fortress_dev.kube import install_crds
from fortress_dev.promlab import PrometheusProcess, SampleApp, prometheus_binary
from tests.integration.rollouts.support import gateway_api_served
from tests.support.kubeapi import KubeTarget

SKIP_REASON = "the prometheus binary is not installed (Debian package `prometheus`; make test installs it)"
GATEWAY_CRD_DIR = Path(__file__).parent / "data"
HTTPROUTE_CRD = "httproutes.gateway.networking.k8s.io"


@dataclass
class PromLab:
    prometheus: PrometheusProcess
    app: SampleApp

    @property
    def url(self) -> str:
        return self.prometheus.url


@pytest.fixture(scope="session")
def promlab() -> Iterator[PromLab]:
    """Prometheus (1 s scrapes) on a free port with a temp config, scraping the in-process sample app."""
    if prometheus_binary() is None:
        pytest.skip(SKIP_REASON)
    app = SampleApp(rps=200.0)
    app.start()
    prometheus = PrometheusProcess([app.target], scrape_interval="1s")
    try:
        prometheus.start()
        yield PromLab(prometheus, app)
    finally:
        prometheus.stop()
        app.stop()


@pytest.fixture(scope="session")
def gateway_api(kube_api: KubeTarget) -> Iterator[str]:
    """``gateway.networking.k8s.io/v1`` HTTPRoutes are served; the value says by what.

    An API server without the Gateway API gets the minimal HTTPRoute CRD of ``data/`` (schema-less
    spec), waited for until Established and served, and removed at the end of the session. Skips, with
    the reason, only when the CRD cannot be installed (e.g. no permission on an existing cluster).
    """
    with contextlib.closing(kube_api.api_client()) as api:
        if gateway_api_served(api):
            yield "the API server's own Gateway API"
            return
        try:
            install_crds(api, GATEWAY_CRD_DIR, timeout=60)
        except (ApiException, TimeoutError) as error:
            reason = getattr(error, "reason", None) or error
            pytest.skip(f"no Gateway API on this API server and its HTTPRoute CRD not installable: {reason}")
        deadline = time.monotonic() + 30
        while not gateway_api_served(api):
            if time.monotonic() > deadline:
                pytest.fail("the HTTPRoute CRD is Established but gateway.networking.k8s.io/v1 not served")
            time.sleep(0.2)
        try:
            yield f"the vendored minimal CRD {HTTPROUTE_CRD}"
        finally:
            with contextlib.suppress(ApiException):
                client.ApiextensionsV1Api(api).delete_custom_resource_definition(HTTPROUTE_CRD)
