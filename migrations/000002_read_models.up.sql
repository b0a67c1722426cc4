-- Read models projected from the event store, and each projection's checkpoint.

CREATE TABLE credit_balances_read_model (
    tenant_id     text        NOT NULL,
    balance       bigint      NOT NULL DEFAULT 0,
    reserved      bigint      NOT NULL DEFAULT 0,
    -- Derived by the database so it can never disagree with balance and reserved.
    available     bigint      GENERATED ALWAYS AS (balance - reserved) STORED,
    version       bigint      NOT NULL DEFAULT 0 CHECK (version >= 0),
    -- global_position of the last event folded into this row (makes projection replays idempotent).
    last_position bigint      NOT NULL DEFAULT 0 CHECK (last_position >= 0),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT credit_balances_read_model_pkey PRIMARY KEY (tenant_id),
    CONSTRAINT credit_balances_read_model_reserved_check CHECK (reserved >= 0)
);

-- Tenants running low on credit.
CREATE INDEX credit_balances_read_model_available_idx ON credit_balances_read_model (available);

CREATE TABLE projection_checkpoints (
    projection text        NOT NULL,
    position   bigint      NOT NULL DEFAULT 0 CHECK (position >= 0),
    updated_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT projection_checkpoints_pkey PRIMARY KEY (projection)
);
