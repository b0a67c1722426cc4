"""pytest fixtures for throwaway PostgreSQL clusters (the clusters themselves: fortress_dev.postgres)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from fortress.adapters.pgbin import find_bindir
from fortress_dev import backends
from fortress_dev.postgres import SKIP_REASON, STATS, PgCluster, PgFactory

__all__ = ["PgCluster", "PgFactory", "example_backends", "pg", "pg_dsn", "pg_factory"]


@pytest.fixture(scope="session")
def pg_factory() -> Iterator[PgFactory]:
    """Session-wide cluster factory; stops and removes every cluster at the end of the session."""
    bindir = find_bindir()
    if bindir is None:
        pytest.skip(SKIP_REASON)
    factory = PgFactory(bindir)
    try:
        _ = factory.template
        yield factory
    finally:
        factory.close()


@pytest.fixture
def pg(pg_factory: PgFactory) -> Iterator[PgCluster]:
    """A fresh, running cluster for one test."""
    cluster = pg_factory.create()
    try:
        yield cluster
    finally:
        pg_factory.destroy(cluster)


@pytest.fixture
def pg_dsn(pg: PgCluster) -> str:
    """DSN of the ``pg`` cluster's ``postgres`` database."""
    return pg.dsn()


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Report the template initdb time and per-cluster create+start times."""
    if STATS.template_seconds is None:
        return
    line = f"postgres fixture: template initdb {STATS.template_seconds:.2f}s"
    for label, times in (("clusters", STATS.cluster_seconds), ("replicas", STATS.replica_seconds)):
        if times:
            mean = sum(times) / len(times)
            line += f"; {len(times)} {label}, create+start mean {mean:.2f}s, max {max(times):.2f}s"
    terminalreporter.write_line(line)


@pytest.fixture
def example_backends(pg_factory: PgFactory) -> Iterator[backends.ExampleBackends]:
    """The PostgreSQL servers behind the examples' Secrets (9 clusters, 3 of them replicating)."""
    servers = backends.provision(pg_factory)
    try:
        yield servers
    finally:
        backends.close(pg_factory, servers)
