-- Decoy API tokens: digests (SHA-256) of the fake tokens SyntheticDatasets hand to decoy users. The API
-- refuses every one of them (they are never in its token file) and, finding the digest here, records the
-- attempt as an intrusion in audit_trail.

CREATE TABLE synthetic_decoy_tokens (
    digest     bytea       NOT NULL,
    namespace  text        NOT NULL,
    dataset    text        NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT synthetic_decoy_tokens_pkey PRIMARY KEY (digest),
    CONSTRAINT synthetic_decoy_tokens_digest_check CHECK (octet_length(digest) = 32)
);

CREATE INDEX synthetic_decoy_tokens_dataset_idx ON synthetic_decoy_tokens (namespace, dataset);
