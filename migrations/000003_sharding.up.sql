-- Sharded key-value data and the coordinator log of two-phase-commit transactions.

CREATE TABLE shard_data (
    key        text        NOT NULL,
    value      jsonb       NOT NULL,
    -- Optimistic concurrency: writers update WHERE version = the version they read.
    version    bigint      NOT NULL DEFAULT 1 CHECK (version > 0),
    updated_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT shard_data_pkey PRIMARY KEY (key)
);

-- One row per global transaction id (the gid given to PREPARE TRANSACTION on every participant).
-- The decision is made durable here before any participant commits or rolls back (presumed abort:
-- a prepared transaction without a 'commit' row is rolled back by recovery); completed_at is set
-- once every participant has finished, so recovery only scans rows where it is NULL.
CREATE TABLE distributed_tx_log (
    gid          text        NOT NULL,
    decision     text        NULL,
    participants text[]      NOT NULL DEFAULT '{}',
    created_at   timestamptz NOT NULL DEFAULT now(),
    decided_at   timestamptz NULL,
    completed_at timestamptz NULL,
    CONSTRAINT distributed_tx_log_pkey PRIMARY KEY (gid),
    CONSTRAINT distributed_tx_log_decision_check CHECK (decision IN ('commit', 'abort')),
    CONSTRAINT distributed_tx_log_decided_check CHECK ((decision IS NULL) = (decided_at IS NULL)),
    CONSTRAINT distributed_tx_log_completed_check CHECK (completed_at IS NULL OR decision IS NOT NULL)
);

-- Recovery: transactions not yet completed, oldest first.
CREATE INDEX distributed_tx_log_pending_idx ON distributed_tx_log (created_at) WHERE completed_at IS NULL;
