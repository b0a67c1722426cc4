-- Audit trail: who did what to which resource, when, and with what outcome. Append-only.

CREATE TABLE audit_trail (
    id            bigint      GENERATED ALWAYS AS IDENTITY,
    occurred_at   timestamptz NOT NULL DEFAULT now(),
    actor         text        NOT NULL,
    action        text        NOT NULL,
    resource_kind text        NOT NULL,
    namespace     text        NOT NULL DEFAULT '',
    resource_name text        NOT NULL DEFAULT '',
    outcome       text        NOT NULL,
    request_id    text        NULL,
    source_ip     inet        NULL,
    details       jsonb       NOT NULL DEFAULT '{}'::jsonb,
    CONSTRAINT audit_trail_pkey PRIMARY KEY (id),
    CONSTRAINT audit_trail_outcome_check CHECK (outcome IN ('success', 'failure', 'denied'))
);

CREATE INDEX audit_trail_occurred_idx ON audit_trail USING brin (occurred_at);
CREATE INDEX audit_trail_actor_idx ON audit_trail (actor, occurred_at DESC);
CREATE INDEX audit_trail_resource_idx ON audit_trail (resource_kind, namespace, resource_name, occurred_at DESC);
CREATE INDEX audit_trail_request_idx ON audit_trail (request_id) WHERE request_id IS NOT NULL;

CREATE FUNCTION audit_trail_reject_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_trail is append-only: % is not allowed', TG_OP
        USING ERRCODE = 'prohibited_sql_statement_attempted';
END
$$;

CREATE TRIGGER audit_trail_append_only
    BEFORE UPDATE OR DELETE ON audit_trail
    FOR EACH ROW EXECUTE FUNCTION audit_trail_reject_change();

CREATE TRIGGER audit_trail_no_truncate
    BEFORE TRUNCATE ON audit_trail
    FOR EACH STATEMENT EXECUTE FUNCTION audit_trail_reject_change();
