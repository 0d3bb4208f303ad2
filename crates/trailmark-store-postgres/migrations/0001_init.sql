-- Trailmark PostgreSQL store, schema version 1. Everything lives in schema
-- trailmark_ledger; applied by the store under an advisory lock.

CREATE SCHEMA IF NOT EXISTS trailmark_ledger;

-- One row per tenant log: its size (the next seq). An append locks the row
-- (FOR UPDATE) for the whole transaction: that is what sequences one tenant
-- across any number of servers.
CREATE TABLE trailmark_ledger.tenants (
    name text PRIMARY KEY,
    size bigint NOT NULL
);

-- One row per entry. pos is the global append order (newest-first paging).
-- envelope is the leaf bytes; the columns beside it index it. payload, salt,
-- ip and search are the erasable part.
CREATE TABLE trailmark_ledger.entries (
    pos bigint GENERATED ALWAYS AS IDENTITY,
    tenant text NOT NULL,
    seq bigint NOT NULL,
    id text NOT NULL,
    occurred_at bigint NOT NULL,
    actor_id text NOT NULL,
    action text NOT NULL,
    resource_type text,
    resource_id text,
    outcome text NOT NULL,
    envelope bytea NOT NULL,
    leaf_hash bytea NOT NULL,
    payload text,
    salt bytea,
    ip text,
    search tsvector,
    PRIMARY KEY (tenant, seq)
);
CREATE UNIQUE INDEX entries_id ON trailmark_ledger.entries (tenant, id);
CREATE UNIQUE INDEX entries_pos ON trailmark_ledger.entries (pos);
CREATE INDEX entries_time ON trailmark_ledger.entries (tenant, occurred_at);
CREATE INDEX entries_actor ON trailmark_ledger.entries (tenant, actor_id, pos);
CREATE INDEX entries_resource ON trailmark_ledger.entries (tenant, resource_type, resource_id, pos);
CREATE INDEX entries_action ON trailmark_ledger.entries (tenant, action, pos);
CREATE INDEX entries_ip ON trailmark_ledger.entries (tenant, ip) WHERE ip IS NOT NULL;
CREATE INDEX entries_search ON trailmark_ledger.entries USING gin (search);

-- Every complete inner tree node (level 1 and up), one row each; level 0
-- is entries.leaf_hash.
CREATE TABLE trailmark_ledger.nodes (
    tenant text NOT NULL,
    level smallint NOT NULL,
    idx bigint NOT NULL,
    hash bytea NOT NULL,
    PRIMARY KEY (tenant, level, idx)
);

-- Every signed checkpoint, never deleted. Servers sharing a signing key sign
-- the same size identically (Ed25519 is deterministic), so a second insert
-- of one size is the same note and is ignored.
CREATE TABLE trailmark_ledger.checkpoints (
    tenant text NOT NULL,
    size bigint NOT NULL,
    root bytea NOT NULL,
    note text NOT NULL,
    signed_at bigint NOT NULL,
    PRIMARY KEY (tenant, size)
);

-- API keys: the SHA-256 digest of the secret, never the secret.
CREATE TABLE trailmark_ledger.keys (
    id text PRIMARY KEY,
    digest bytea NOT NULL UNIQUE,
    name text NOT NULL,
    scopes text NOT NULL,
    tenant text,
    created_at bigint NOT NULL,
    revoked_at bigint
);
