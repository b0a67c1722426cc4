"""The only modules that do I/O: Kubernetes, PostgreSQL and migrations."""
