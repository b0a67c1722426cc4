-- Reverts 000001_event_store. Dropping event_store drops every partition and their triggers.

DROP TABLE aggregate_snapshots;
DROP FUNCTION ensure_event_store_partitions(integer);
DROP TABLE event_store;
DROP TABLE event_idempotency_keys;
DROP TABLE event_stream_versions;
DROP FUNCTION event_idempotency_keys_guard();
DROP FUNCTION event_store_reject_change();
DROP FUNCTION event_store_record_keys();
DROP SEQUENCE event_store_global_position_seq;
