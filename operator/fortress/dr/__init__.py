"""Multi-region PostgreSQL disaster recovery: DRPlan and DRRegion.

Pure: ``topology`` (what one check saw), ``election`` (what to do about it), ``lease`` (who may act),
``conninfo`` and ``status`` (status patches). Adapters: ``probe`` and ``actions`` (asyncpg),
``kube_actions`` (Kubernetes), ``rejoin`` (pg_rewind / pg_basebackup on a region's host). Glue:
``check`` (one check: observe, decide, act, write status) and ``handlers`` (Kopf).
"""
