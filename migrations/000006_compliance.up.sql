-- Compliance: frameworks and their controls, scan findings, and the evidence collected for them.

CREATE TABLE compliance_frameworks (
    id          text        NOT NULL,
    name        text        NOT NULL,
    version     text        NOT NULL,
    description text        NULL,
    enabled     boolean     NOT NULL DEFAULT true,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT compliance_frameworks_pkey PRIMARY KEY (id),
    CONSTRAINT compliance_frameworks_name_version_key UNIQUE (name, version)
);

CREATE TABLE compliance_controls (
    framework_id text        NOT NULL,
    control_id   text        NOT NULL,
    title        text        NOT NULL,
    description  text        NULL,
    severity     text        NOT NULL DEFAULT 'medium',
    automated    boolean     NOT NULL DEFAULT true,
    spec         jsonb       NOT NULL DEFAULT '{}'::jsonb,
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT compliance_controls_pkey PRIMARY KEY (framework_id, control_id),
    CONSTRAINT compliance_controls_framework_fkey FOREIGN KEY (framework_id)
        REFERENCES compliance_frameworks (id) ON DELETE CASCADE,
    CONSTRAINT compliance_controls_severity_check CHECK (severity IN ('low', 'medium', 'high', 'critical'))
);

-- One row per (control, resource) problem. A scan that sees it again bumps last_seen_at; a scan that
-- no longer sees it resolves it. At most one unresolved finding per control and resource.
CREATE TABLE compliance_findings (
    id            bigint      GENERATED ALWAYS AS IDENTITY,
    framework_id  text        NOT NULL,
    control_id    text        NOT NULL,
    scan          text        NULL,
    namespace     text        NOT NULL DEFAULT '',
    resource      text        NOT NULL,
    status        text        NOT NULL DEFAULT 'open',
    severity      text        NOT NULL,
    message       text        NOT NULL DEFAULT '',
    details       jsonb       NOT NULL DEFAULT '{}'::jsonb,
    first_seen_at timestamptz NOT NULL DEFAULT now(),
    last_seen_at  timestamptz NOT NULL DEFAULT now(),
    resolved_at   timestamptz NULL,
    CONSTRAINT compliance_findings_pkey PRIMARY KEY (id),
    CONSTRAINT compliance_findings_control_fkey FOREIGN KEY (framework_id, control_id)
        REFERENCES compliance_controls (framework_id, control_id) ON DELETE CASCADE,
    CONSTRAINT compliance_findings_status_check CHECK (status IN ('open', 'suppressed', 'resolved')),
    CONSTRAINT compliance_findings_severity_check CHECK (severity IN ('low', 'medium', 'high', 'critical')),
    CONSTRAINT compliance_findings_resolved_check CHECK ((status = 'resolved') = (resolved_at IS NOT NULL)),
    CONSTRAINT compliance_findings_seen_check CHECK (last_seen_at >= first_seen_at)
);

CREATE UNIQUE INDEX compliance_findings_unresolved_idx
    ON compliance_findings (framework_id, control_id, namespace, resource)
    WHERE status <> 'resolved';
CREATE INDEX compliance_findings_open_idx ON compliance_findings (severity, first_seen_at)
    WHERE status = 'open';
CREATE INDEX compliance_findings_namespace_idx ON compliance_findings (namespace, resource);
CREATE INDEX compliance_findings_scan_idx ON compliance_findings (scan, last_seen_at DESC);

-- Evidence is write-once: it cannot be updated, and can be deleted only after retain_until.
CREATE TABLE compliance_evidence (
    id           bigint      GENERATED ALWAYS AS IDENTITY,
    framework_id text        NOT NULL,
    control_id   text        NOT NULL,
    finding_id   bigint      NULL,
    scan         text        NULL,
    kind         text        NOT NULL,
    uri          text        NULL,
    content      jsonb       NOT NULL DEFAULT '{}'::jsonb,
    sha256       text        NOT NULL,
    collected_at timestamptz NOT NULL DEFAULT now(),
    retain_until timestamptz NULL,
    CONSTRAINT compliance_evidence_pkey PRIMARY KEY (id),
    CONSTRAINT compliance_evidence_control_fkey FOREIGN KEY (framework_id, control_id)
        REFERENCES compliance_controls (framework_id, control_id) ON DELETE RESTRICT,
    CONSTRAINT compliance_evidence_finding_fkey FOREIGN KEY (finding_id)
        REFERENCES compliance_findings (id) ON DELETE RESTRICT,
    CONSTRAINT compliance_evidence_sha256_check CHECK (sha256 ~ '^[0-9a-f]{64}$')
);

CREATE INDEX compliance_evidence_control_idx ON compliance_evidence (framework_id, control_id, collected_at DESC);
CREATE INDEX compliance_evidence_finding_idx ON compliance_evidence (finding_id) WHERE finding_id IS NOT NULL;
CREATE INDEX compliance_evidence_retain_idx ON compliance_evidence (retain_until) WHERE retain_until IS NOT NULL;

CREATE FUNCTION compliance_evidence_guard() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' AND OLD.retain_until IS NOT NULL AND OLD.retain_until <= now() THEN
        RETURN OLD;
    END IF;
    RAISE EXCEPTION 'compliance evidence is write-once: % is not allowed%', TG_OP,
            CASE WHEN TG_OP = 'DELETE' THEN ' before its retention period ends' ELSE '' END
        USING ERRCODE = 'prohibited_sql_statement_attempted';
END
$$;

CREATE TRIGGER compliance_evidence_write_once
    BEFORE UPDATE OR DELETE ON compliance_evidence
    FOR EACH ROW EXECUTE FUNCTION compliance_evidence_guard();

CREATE TRIGGER compliance_evidence_no_truncate
    BEFORE TRUNCATE ON compliance_evidence
    FOR EACH STATEMENT EXECUTE FUNCTION compliance_evidence_guard();
