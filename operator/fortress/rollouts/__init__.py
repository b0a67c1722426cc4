"""CanaryRollout: blue-green and staged canary releases with Prometheus analysis and rollback.

Pure planners (``canary``, ``bluegreen``, ``planner``) turn the spec, the state kept in ``.status`` and
what was observed into a plan; adapters (``kubeio``, ``traffic``, ``analysis``, ``store``) observe and
execute it; ``driver`` runs one reconcile; ``handlers`` is the Kopf glue.
"""
