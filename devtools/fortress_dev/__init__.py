"""Fortress's development tools: the local environment of the demo, the tests and the benchmarks.

PostgreSQL clusters, a Kubernetes API (a local kube-apiserver or an in-memory emulator), local DR
regions, a Prometheus lab, simulated Deployment status, and the demo (``fortress demo``, registered
through the ``fortress.commands`` entry point). Nothing here ships in the operator's wheel or image.
"""
