-- Reverts 000003_sharding.

DROP TABLE distributed_tx_log;
DROP TABLE shard_data;
