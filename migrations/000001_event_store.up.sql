-- Event store: the append-only log aggregates are rebuilt from, plus aggregate snapshots.
--
-- Partitioning and uniqueness
--   event_store is RANGE-partitioned by month on recorded_at, so old months can be detached and
--   archived without rewriting the table. PostgreSQL only accepts unique constraints on a partitioned
--   table when they include the partition key, so event_store itself can only guarantee
--   (global_position, recorded_at). The global guarantees live in two small non-partitioned tables,
--   written by an AFTER INSERT trigger in the same transaction as the event:
--   * event_stream_versions: primary key (aggregate_id, version) is the optimistic-concurrency check
--     (a concurrent writer of the same version waits, then fails with unique_violation), event_id and
--     global_position are unique, and recorded_at tells which partition holds the event.
--   * event_idempotency_keys: primary key (key) lets an idempotency key be used by one event only. A
--     caller may reserve a key first (first_position NULL, with its request_hash); the trigger then
--     binds it to the event. An event carrying a key that is already bound fails with unique_violation.
--     Keys with expires_at set may be deleted once expired (nothing else may delete them), after which
--     the key can be used again: the guarantee holds for the retention window; NULL never expires.
--
-- Append-only, enforced here
--   Row triggers on the parent reject UPDATE and DELETE; PostgreSQL clones them onto every partition.
--   Statement triggers are not cloned and a TRUNCATE of a partition does not fire the parent's, so
--   ensure_event_store_partitions() puts a TRUNCATE trigger on the parent and on every partition.
--   Dropping or detaching a partition (retention) remains an explicit, privileged DDL operation.
--
-- global_position comes from one sequence shared by all partitions: unique and increasing in
-- allocation order, but transactions may commit out of order, so readers tailing the log by position
-- must tolerate gaps that fill in later.

CREATE SEQUENCE event_store_global_position_seq AS bigint;

CREATE TABLE event_store (
    global_position bigint      NOT NULL DEFAULT nextval('event_store_global_position_seq'),
    event_id        uuid        NOT NULL DEFAULT gen_random_uuid(),
    aggregate_type  text        NOT NULL,
    aggregate_id    text        NOT NULL,
    version         bigint      NOT NULL CHECK (version >= 0),
    event_type      text        NOT NULL,
    data            jsonb       NOT NULL DEFAULT '{}'::jsonb,
    metadata        jsonb       NOT NULL DEFAULT '{}'::jsonb,
    idempotency_key text        NULL,
    recorded_at     timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT event_store_pkey PRIMARY KEY (global_position, recorded_at)
) PARTITION BY RANGE (recorded_at);

-- Reading one stream in version order (each partition carries its own copy of the index).
CREATE INDEX event_store_stream_idx ON event_store (aggregate_id, version);
-- Subscriptions by event type, in log order.
CREATE INDEX event_store_type_position_idx ON event_store (event_type, global_position);

CREATE TABLE event_stream_versions (
    aggregate_id    text        NOT NULL,
    version         bigint      NOT NULL,
    event_id        uuid        NOT NULL,
    global_position bigint      NOT NULL,
    recorded_at     timestamptz NOT NULL,
    CONSTRAINT event_stream_versions_pkey PRIMARY KEY (aggregate_id, version),
    CONSTRAINT event_stream_versions_event_id_key UNIQUE (event_id),
    CONSTRAINT event_stream_versions_global_position_key UNIQUE (global_position)
);

CREATE TABLE event_idempotency_keys (
    key            text        NOT NULL,
    request_hash   text        NULL,
    aggregate_id   text        NULL,
    first_position bigint      NULL,
    created_at     timestamptz NOT NULL DEFAULT now(),
    expires_at     timestamptz NULL,
    CONSTRAINT event_idempotency_keys_pkey PRIMARY KEY (key),
    CONSTRAINT event_idempotency_keys_expiry_check CHECK (expires_at IS NULL OR expires_at > created_at)
);

CREATE INDEX event_idempotency_keys_expires_idx ON event_idempotency_keys (expires_at)
    WHERE expires_at IS NOT NULL;

CREATE FUNCTION event_store_record_keys() RETURNS trigger
LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
DECLARE
    bound_position bigint;
BEGIN
    INSERT INTO event_stream_versions (aggregate_id, version, event_id, global_position, recorded_at)
    VALUES (NEW.aggregate_id, NEW.version, NEW.event_id, NEW.global_position, NEW.recorded_at);

    IF NEW.idempotency_key IS NOT NULL THEN
        INSERT INTO event_idempotency_keys AS k (key, request_hash, aggregate_id, first_position)
        VALUES (NEW.idempotency_key, NEW.metadata ->> 'request_hash', NEW.aggregate_id, NEW.global_position)
        ON CONFLICT (key) DO UPDATE
            SET first_position = EXCLUDED.first_position,
                aggregate_id = coalesce(k.aggregate_id, EXCLUDED.aggregate_id),
                request_hash = coalesce(k.request_hash, EXCLUDED.request_hash)
            WHERE k.first_position IS NULL;
        IF NOT FOUND THEN
            SELECT first_position INTO bound_position FROM event_idempotency_keys WHERE key = NEW.idempotency_key;
            RAISE EXCEPTION 'idempotency key "%" is already used by the event at global position %',
                    NEW.idempotency_key, bound_position
                USING ERRCODE = 'unique_violation',
                      CONSTRAINT = 'event_idempotency_keys_pkey',
                      TABLE = 'event_idempotency_keys';
        END IF;
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER event_store_record_keys
    AFTER INSERT ON event_store
    FOR EACH ROW EXECUTE FUNCTION event_store_record_keys();

CREATE FUNCTION event_store_reject_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% is append-only: % is not allowed', TG_TABLE_NAME, TG_OP
        USING ERRCODE = 'prohibited_sql_statement_attempted',
              HINT = 'Events are immutable: append a compensating event instead.';
END
$$;

CREATE TRIGGER event_store_append_only
    BEFORE UPDATE OR DELETE ON event_store
    FOR EACH ROW EXECUTE FUNCTION event_store_reject_change();

CREATE TRIGGER event_store_no_truncate
    BEFORE TRUNCATE ON event_store
    FOR EACH STATEMENT EXECUTE FUNCTION event_store_reject_change();

CREATE TRIGGER event_stream_versions_append_only
    BEFORE UPDATE OR DELETE ON event_stream_versions
    FOR EACH ROW EXECUTE FUNCTION event_store_reject_change();

CREATE TRIGGER event_stream_versions_no_truncate
    BEFORE TRUNCATE ON event_stream_versions
    FOR EACH STATEMENT EXECUTE FUNCTION event_store_reject_change();

-- Idempotency keys: a bound key is immutable except for its expiry; only expired keys may be deleted.
CREATE FUNCTION event_idempotency_keys_guard() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        IF OLD.expires_at IS NULL OR OLD.expires_at > now() THEN
            RAISE EXCEPTION 'idempotency key "%" has not expired and cannot be deleted', OLD.key
                USING ERRCODE = 'prohibited_sql_statement_attempted';
        END IF;
        RETURN OLD;
    END IF;
    IF NEW.key IS DISTINCT FROM OLD.key
       OR (OLD.first_position IS NOT NULL AND (
               NEW.first_position IS DISTINCT FROM OLD.first_position
            OR NEW.aggregate_id IS DISTINCT FROM OLD.aggregate_id
            OR NEW.request_hash IS DISTINCT FROM OLD.request_hash)) THEN
        RAISE EXCEPTION 'idempotency key "%" is bound to an event and cannot be changed', OLD.key
            USING ERRCODE = 'prohibited_sql_statement_attempted';
    END IF;
    RETURN NEW;
END
$$;

CREATE TRIGGER event_idempotency_keys_guard
    BEFORE UPDATE OR DELETE ON event_idempotency_keys
    FOR EACH ROW EXECUTE FUNCTION event_idempotency_keys_guard();

CREATE TRIGGER event_idempotency_keys_no_truncate
    BEFORE TRUNCATE ON event_idempotency_keys
    FOR EACH STATEMENT EXECUTE FUNCTION event_store_reject_change();

-- Creates the default partition and monthly partitions (UTC months) from the current month up to
-- months_ahead months ahead, and makes sure every partition has its TRUNCATE guard. Idempotent and
-- safe to call concurrently; returns the names of the partitions it created. A month whose rows
-- already sit in the default partition is skipped with a WARNING (moving them would need a DELETE).
-- Call it ahead of time (for example daily): creating a partition briefly locks event_store.
CREATE FUNCTION ensure_event_store_partitions(months_ahead integer DEFAULT 2) RETURNS SETOF text
LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
DECLARE
    parent      regclass := 'event_store'::regclass;
    schema_name text;
    this_month  timestamp := date_trunc('month', now() AT TIME ZONE 'UTC');
    lower_ts    timestamp;
    upper_ts    timestamp;
    part_name   text;
    part        record;
BEGIN
    IF months_ahead IS NULL OR months_ahead < 0 OR months_ahead > 120 THEN
        RAISE EXCEPTION 'months_ahead must be between 0 and 120, got %', months_ahead
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    SELECT n.nspname INTO schema_name
      FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
     WHERE c.oid = parent;
    -- Serializes concurrent callers (this mode conflicts with itself) without blocking appends.
    LOCK TABLE event_store IN SHARE UPDATE EXCLUSIVE MODE;

    IF to_regclass(format('%I.%I', schema_name, 'event_store_default')) IS NULL THEN
        EXECUTE format('CREATE TABLE %I.%I PARTITION OF %s DEFAULT', schema_name, 'event_store_default', parent);
        RETURN NEXT 'event_store_default';
    END IF;

    FOR i IN 0..months_ahead LOOP
        lower_ts := this_month + make_interval(months => i);
        upper_ts := this_month + make_interval(months => i + 1);
        part_name := 'event_store_' || to_char(lower_ts, 'YYYY_MM');
        CONTINUE WHEN to_regclass(format('%I.%I', schema_name, part_name)) IS NOT NULL;
        IF EXISTS (SELECT 1 FROM event_store_default
                    WHERE recorded_at >= lower_ts AT TIME ZONE 'UTC'
                      AND recorded_at < upper_ts AT TIME ZONE 'UTC') THEN
            RAISE WARNING 'not creating partition %: event_store_default already holds rows for that month',
                part_name;
            CONTINUE;
        END IF;
        EXECUTE format('CREATE TABLE %I.%I PARTITION OF %s FOR VALUES FROM (%L) TO (%L)',
                       schema_name, part_name, parent,
                       to_char(lower_ts, 'YYYY-MM-DD"T"HH24:MI:SS"+00"'),
                       to_char(upper_ts, 'YYYY-MM-DD"T"HH24:MI:SS"+00"'));
        RETURN NEXT part_name;
    END LOOP;

    -- Statement triggers are not inherited: guard every partition, including attached ones.
    FOR part IN
        SELECT i.inhrelid::regclass AS rel
          FROM pg_inherits i
         WHERE i.inhparent = parent
           AND NOT EXISTS (SELECT 1 FROM pg_trigger t
                            WHERE t.tgrelid = i.inhrelid AND t.tgname = 'event_store_no_truncate')
    LOOP
        EXECUTE format('CREATE TRIGGER event_store_no_truncate BEFORE TRUNCATE ON %s '
                       'FOR EACH STATEMENT EXECUTE FUNCTION event_store_reject_change()', part.rel);
    END LOOP;
    RETURN;
END
$$;

SELECT ensure_event_store_partitions(2);

CREATE TABLE aggregate_snapshots (
    aggregate_id text        NOT NULL,
    version      bigint      NOT NULL CHECK (version >= 0),
    state        jsonb       NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT aggregate_snapshots_pkey PRIMARY KEY (aggregate_id, version)
);
