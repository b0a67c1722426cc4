"""Kubernetes access: cluster configuration for Kopf and the typed client, run off the event loop.

The ``kubernetes`` client is synchronous, so every call goes through ``asyncio.to_thread``.
"""

from __future__ import annotations

import asyncio
import base64
from dataclasses import dataclass
from typing import Any

import kopf
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException


@dataclass(frozen=True)
class Cluster:
    """How to reach one Kubernetes API server."""

    configuration: client.Configuration

    @property
    def server(self) -> str:
        return str(self.configuration.host)

    def connection_info(self) -> kopf.ConnectionInfo:
        """The same credentials in the form Kopf's login handler returns."""
        c = self.configuration
        token = (c.api_key or {}).get("authorization") or (c.api_key or {}).get("BearerToken")
        scheme = None
        if token and " " in token:
            scheme, token = token.split(" ", 1)
        return kopf.ConnectionInfo(
            server=c.host,
            ca_path=c.ssl_ca_cert or None,
            insecure=not c.verify_ssl,
            certificate_path=c.cert_file or None,
            private_key_path=c.key_file or None,
            scheme=scheme,
            token=token or None,
        )


def load_cluster(kubeconfig: str | None = None, context: str | None = None) -> Cluster:
    """Load a kubeconfig (or the in-cluster service account when none is given and none is found).

    Synchronous file I/O: call it before the event loop starts or via ``asyncio.to_thread``.
    """
    configuration = client.Configuration()
    try:
        config.load_kube_config(  # type: ignore[no-untyped-call]
            config_file=kubeconfig, context=context, client_configuration=configuration
        )
    except config.ConfigException:
        if kubeconfig is not None:
            raise
        config.load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
    return Cluster(configuration)


class Kube:
    """Thin async facade over the typed client for what the operator reads and writes."""

    def __init__(self, cluster: Cluster) -> None:
        self._api = client.ApiClient(cluster.configuration)
        self.core = client.CoreV1Api(self._api)
        self.apps = client.AppsV1Api(self._api)
        self.custom = client.CustomObjectsApi(self._api)

    async def secret_value(self, namespace: str, name: str, key: str) -> str:
        """The decoded value of one Secret key; a clear error when the Secret or key is missing."""
        try:
            secret = await asyncio.to_thread(self.core.read_namespaced_secret, name, namespace)
        except ApiException as error:
            if error.status == 404:
                raise LookupError(f"Secret {namespace}/{name} not found") from error
            raise
        data = secret.data or {}
        if key not in data:
            raise LookupError(f"Secret {namespace}/{name} has no key {key!r}")
        return base64.b64decode(data[key]).decode()

    async def get_custom(self, group: str, version: str, namespace: str, plural: str, name: str) -> Any:
        return await asyncio.to_thread(
            self.custom.get_namespaced_custom_object, group, version, namespace, plural, name
        )

    async def close(self) -> None:
        await asyncio.to_thread(self._api.close)
