"""ShardCluster: consistent-hash sharding over PostgreSQL, online rebalancing and cross-shard 2PC.

Modules: ``ring`` (pure layout), ``breaker`` (pure circuit breaker), ``errors``, ``store`` (SQL on one
shard), ``router`` (keyed JSON values over the shards), ``gid`` and ``operations`` (pure parts of
cross-shard transactions), ``twophase`` (the coordinator), ``recovery_plan`` (pure) and ``recovery``
(2PC recovery), ``rebalance`` (planner and executor), ``settings`` and ``status`` (pure: the spec's
settings, the status summary), ``probes`` and ``kubeio`` (shard probes, the ring ConfigMap),
``reconciler`` (one cluster's observe/decide/act), ``handlers`` (Kopf glue), ``api`` (HTTP routes).
"""
