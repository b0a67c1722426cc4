-- Disaster recovery: the regions of each DRPlan, observed replication lag, and every failover.

-- One row per DRRegion (namespace, name), as last observed by its DRPlan.
CREATE TABLE cloud_regions (
    namespace        text        NOT NULL,
    name             text        NOT NULL,
    plan             text        NOT NULL,
    provider         text        NOT NULL,
    location         text        NULL,
    role             text        NOT NULL DEFAULT 'Unknown',
    endpoint_host    text        NULL,
    endpoint_port    integer     NULL CHECK (endpoint_port BETWEEN 1 AND 65535),
    priority         integer     NOT NULL DEFAULT 100,
    promotable       boolean     NOT NULL DEFAULT true,
    healthy          boolean     NULL,
    fenced           boolean     NOT NULL DEFAULT false,
    fenced_reason    text        NULL,
    last_checked_at  timestamptz NULL,
    labels           jsonb       NOT NULL DEFAULT '{}'::jsonb,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT cloud_regions_pkey PRIMARY KEY (namespace, name),
    CONSTRAINT cloud_regions_provider_check CHECK (provider IN ('aws', 'azure', 'gcp', 'other')),
    CONSTRAINT cloud_regions_role_check CHECK (role IN ('Primary', 'Standby', 'Fenced', 'Unknown'))
);

-- At most one primary per plan (split-brain guard): a failover demotes or fences the old primary
-- before recording the new one.
CREATE UNIQUE INDEX cloud_regions_one_primary_idx ON cloud_regions (namespace, plan) WHERE role = 'Primary';

-- Replication lag samples from a plan's primary to one standby (the basis of RPO estimates).
-- Samples go with their region: deleting a region deletes its samples.
CREATE TABLE replication_log (
    id            bigint           GENERATED ALWAYS AS IDENTITY,
    namespace     text             NOT NULL,
    plan          text             NOT NULL,
    source_region text             NOT NULL,
    target_region text             NOT NULL,
    state         text             NULL,
    sent_lsn      pg_lsn           NULL,
    replay_lsn    pg_lsn           NULL,
    lag_bytes     bigint           NULL CHECK (lag_bytes >= 0),
    lag_seconds   double precision NULL CHECK (lag_seconds >= 0),
    observed_at   timestamptz      NOT NULL DEFAULT now(),
    details       jsonb            NOT NULL DEFAULT '{}'::jsonb,
    CONSTRAINT replication_log_pkey PRIMARY KEY (id),
    CONSTRAINT replication_log_source_fkey FOREIGN KEY (namespace, source_region)
        REFERENCES cloud_regions (namespace, name) ON DELETE CASCADE,
    CONSTRAINT replication_log_target_fkey FOREIGN KEY (namespace, target_region)
        REFERENCES cloud_regions (namespace, name) ON DELETE CASCADE,
    CONSTRAINT replication_log_regions_check CHECK (source_region <> target_region)
);

-- Latest sample per region pair; the foreign keys' referencing side; time-based pruning.
CREATE INDEX replication_log_pair_idx
    ON replication_log (namespace, source_region, target_region, observed_at DESC);
CREATE INDEX replication_log_target_idx ON replication_log (namespace, target_region);
CREATE INDEX replication_log_observed_idx ON replication_log USING brin (observed_at);

-- One row per failover or switchover of a DRPlan, with its measured RTO and RPO. History outlives
-- the regions it names, so there are no foreign keys to cloud_regions.
CREATE TABLE failover_events (
    id           bigint           GENERATED ALWAYS AS IDENTITY,
    namespace    text             NOT NULL,
    plan         text             NOT NULL,
    type         text             NOT NULL DEFAULT 'failover',
    from_region  text             NULL,
    to_region    text             NOT NULL,
    reason       text             NOT NULL,
    -- NULL while in progress.
    outcome      text             NULL,
    detected_at  timestamptz      NULL,
    promoted_at  timestamptz      NULL,
    completed_at timestamptz      NULL,
    rto_seconds  double precision NULL CHECK (rto_seconds >= 0),
    rpo_bytes    bigint           NULL CHECK (rpo_bytes >= 0),
    rpo_seconds  double precision NULL CHECK (rpo_seconds >= 0),
    details      jsonb            NOT NULL DEFAULT '{}'::jsonb,
    recorded_at  timestamptz      NOT NULL DEFAULT now(),
    CONSTRAINT failover_events_pkey PRIMARY KEY (id),
    CONSTRAINT failover_events_type_check CHECK (type IN ('failover', 'switchover')),
    CONSTRAINT failover_events_regions_check CHECK (from_region IS DISTINCT FROM to_region),
    CONSTRAINT failover_events_outcome_check CHECK (outcome IN ('succeeded', 'failed', 'aborted')),
    CONSTRAINT failover_events_order_check CHECK (promoted_at >= detected_at AND completed_at >= detected_at)
);

-- A plan's history, newest first; failovers into or out of a region.
CREATE INDEX failover_events_plan_idx ON failover_events (namespace, plan, recorded_at DESC);
CREATE INDEX failover_events_to_region_idx ON failover_events (namespace, to_region);
CREATE INDEX failover_events_from_region_idx ON failover_events (namespace, from_region)
    WHERE from_region IS NOT NULL;
