"""ShardCluster: consistent-hash sharding over PostgreSQL, online rebalancing and cross-shard 2PC.

Modules: ``ring`` (pure layout), ``breaker`` (pure circuit breaker), ``errors``, ``store`` (SQL on one
shard), ``router`` (keyed JSON values over the shards), ``twophase`` (cross-shard transactions and
recovery), ``rebalance`` (planner and executor), ``controller`` (one cluster's observe/decide/act),
``handlers`` (Kopf glue), ``api`` (HTTP routes), ``demo``.
"""
