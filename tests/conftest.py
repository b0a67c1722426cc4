"""Shared fixtures: real PostgreSQL clusters and the Kubernetes API (see tests/support)."""

pytest_plugins = ["tests.support.postgres", "tests.support.kubeapi"]
