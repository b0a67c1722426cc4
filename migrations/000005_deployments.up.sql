-- Progressive delivery: the history of every rollout revision, and feature flags.

-- One row per rollout of a CanaryRollout: a release of one pod-template revision.
CREATE TABLE deployment_history (
    id            bigint      GENERATED ALWAYS AS IDENTITY,
    namespace     text        NOT NULL,
    rollout       text        NOT NULL,
    -- Pod-template hash of the release; the same revision may be released again later.
    revision      text        NOT NULL,
    previous_revision text   NULL,
    -- blueGreen or canary.
    strategy      text        NOT NULL,
    image         text        NULL,
    -- NULL while in progress; then for example Succeeded, RolledBack or Superseded.
    outcome       text        NULL,
    reason        text        NULL,
    steps         jsonb       NOT NULL DEFAULT '[]'::jsonb,
    analysis      jsonb       NOT NULL DEFAULT '{}'::jsonb,
    started_at    timestamptz NOT NULL DEFAULT now(),
    finished_at   timestamptz NULL,
    CONSTRAINT deployment_history_pkey PRIMARY KEY (id),
    CONSTRAINT deployment_history_finished_check CHECK (finished_at >= started_at),
    -- A release of a revision starts once: recording it again is an idempotent upsert.
    CONSTRAINT deployment_history_release_key UNIQUE (namespace, rollout, revision, started_at)
);

-- A rollout's history, newest first; at most one release in progress per rollout.
CREATE INDEX deployment_history_rollout_idx ON deployment_history (namespace, rollout, started_at DESC);
CREATE UNIQUE INDEX deployment_history_one_in_progress_idx ON deployment_history (namespace, rollout)
    WHERE outcome IS NULL;

-- Feature flags. namespace is the flag's scope: a Kubernetes namespace, or '' for cluster-wide flags.
-- rollout names the CanaryRollout (in the same namespace) that switches the flag on at stage
-- enable_at_stage and off on rollback; NULL for flags managed by hand.
CREATE TABLE feature_flags (
    namespace       text        NOT NULL DEFAULT '',
    name            text        NOT NULL,
    enabled         boolean     NOT NULL DEFAULT false,
    rollout         text        NULL,
    enable_at_stage smallint    NULL CHECK (enable_at_stage >= 0),
    -- Share of subjects (percent) that see the flag while it is enabled.
    percentage      smallint    NOT NULL DEFAULT 100,
    rules           jsonb       NOT NULL DEFAULT '[]'::jsonb,
    description     text        NULL,
    version         bigint      NOT NULL DEFAULT 1 CHECK (version > 0),
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT feature_flags_pkey PRIMARY KEY (namespace, name),
    CONSTRAINT feature_flags_percentage_check CHECK (percentage BETWEEN 0 AND 100)
);

-- Flags a rollout drives (switched together on stage changes and rollbacks); lookups by name.
CREATE INDEX feature_flags_rollout_idx ON feature_flags (namespace, rollout) WHERE rollout IS NOT NULL;
CREATE INDEX feature_flags_name_idx ON feature_flags (name);
