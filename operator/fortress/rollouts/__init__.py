"""CanaryRollout: blue-green and staged canary releases with Prometheus analysis and rollback.

Pure planners (``canary``, ``bluegreen``, ``planner``) turn the spec, the state kept in ``.status`` and
what was observed into a plan; ``status`` reads that state back and turns a plan into the outcome the
loop records. ``reconciler`` runs one step: ``observe`` (template, Deployments, an analysis sample),
``act`` (Deployments, ``traffic``, flags), ``history`` (``store``'s rows); ``handlers`` is the Kopf glue.
"""
