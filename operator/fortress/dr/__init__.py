"""Multi-region PostgreSQL disaster recovery: DRPlan and DRRegion.

Pure: ``topology`` (what one check saw), ``decision``, ``judge`` and ``election`` (what to do about
it), ``lease`` (who may act), ``conninfo`` and ``status`` (the statuses and Events). Adapters:
``probe``, ``actions`` and ``history`` (asyncpg), ``kubeio`` (Kubernetes, over the shared client),
``rejoin`` (pg_rewind / pg_basebackup on a region's host). The check: ``reconciler`` (one check per
step of the plan's loop) on ``observe``, ``housekeep`` and ``promote``; ``handlers`` is the glue.
``control`` and ``api`` serve ``fortress dr``, the kubectl plugin and the HTTP API.
"""
