"""A local environment for the demo and the tests: PostgreSQL clusters and a Kubernetes API.

Nothing here runs in production; it needs the ``dev`` extra (kmock) and PostgreSQL binaries.
"""
