"""Compliance: a control catalogue as data, pure evaluation, scoring, evidence, reports and remediation.

The pure core (``model``, ``controls``, ``engine``, ``scoring``, ``exceptions``, ``evidence``,
``policyreport``, ``remediation``, ``reports``) takes Kubernetes objects as plain dicts and never does
I/O; ``fortress scan -f`` runs it on manifest files.
"""
