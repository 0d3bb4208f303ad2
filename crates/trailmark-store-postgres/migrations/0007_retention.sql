-- Retention policies: payloads of a tenant's entries of one target (all, a
-- resource type, an action) expire max_age_days after they were received.
CREATE TABLE trailmark_ledger.retention_policies (
    tenant text NOT NULL,
    target_kind text NOT NULL,
    target_value text NOT NULL,
    max_age_days integer NOT NULL,
    updated_at bigint NOT NULL,
    PRIMARY KEY (tenant, target_kind, target_value)
);
-- Legal holds: while released_at is NULL, nothing they cover is removed.
CREATE TABLE trailmark_ledger.holds (
    id text PRIMARY KEY,
    tenant text NOT NULL,
    scope_kind text NOT NULL,
    scope_value text NOT NULL,
    reason text NOT NULL,
    placed_by text NOT NULL,
    placed_at bigint NOT NULL,
    released_at bigint
);
