-- Reverts 000004_disaster_recovery.

DROP TABLE failover_events;
DROP TABLE replication_log;
DROP TABLE cloud_regions;
