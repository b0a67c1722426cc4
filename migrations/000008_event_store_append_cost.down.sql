-- Back to migration 000001's per-row trigger and event-type index (same guarantees, slower appends).

DROP TRIGGER event_store_record_keys ON event_store;

CREATE TRIGGER event_store_record_keys
    AFTER INSERT ON event_store
    FOR EACH ROW EXECUTE FUNCTION event_store_record_keys();

DROP FUNCTION event_store_record_keys_statement();

CREATE INDEX event_store_type_position_idx ON event_store (event_type, global_position);
