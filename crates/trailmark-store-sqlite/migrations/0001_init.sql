-- Trailmark embedded store, schema version 1.

-- One row per tenant log: its size (the next seq).
CREATE TABLE tenants (
    name TEXT PRIMARY KEY,
    size INTEGER NOT NULL
) WITHOUT ROWID;

-- One row per entry. pos is the global append order (newest-first paging).
-- The envelope blob is the leaf bytes; the columns beside it index it. The
-- erasable part (payload, salt, and the ip derived from it) is set to NULL
-- by erasure or retention; the envelope and leaf hash stay.
CREATE TABLE entries (
    pos INTEGER PRIMARY KEY,
    tenant TEXT NOT NULL,
    seq INTEGER NOT NULL,
    id TEXT NOT NULL,
    occurred_at INTEGER NOT NULL,
    actor_id TEXT NOT NULL,
    action TEXT NOT NULL,
    resource_type TEXT,
    resource_id TEXT,
    outcome TEXT NOT NULL,
    envelope BLOB NOT NULL,
    leaf_hash BLOB NOT NULL,
    payload TEXT,
    salt BLOB,
    ip TEXT
);
CREATE UNIQUE INDEX entries_seq ON entries (tenant, seq);
CREATE UNIQUE INDEX entries_id ON entries (tenant, id);
CREATE INDEX entries_time ON entries (tenant, occurred_at);
CREATE INDEX entries_actor ON entries (tenant, actor_id);
CREATE INDEX entries_resource ON entries (tenant, resource_type, resource_id);
CREATE INDEX entries_action ON entries (tenant, action);
CREATE INDEX entries_ip ON entries (tenant, ip) WHERE ip IS NOT NULL;

-- Free-text search over ids, action and payload text (q=): which entries
-- hold each word, nothing more (contentless, no positions), which keeps the
-- index small and cheap to extend. Rows are deleted with their payload.
CREATE VIRTUAL TABLE entries_fts USING fts5 (
    body, tokenize = 'unicode61', content = '', contentless_delete = 1, detail = none
);

-- Complete tree nodes, 256 consecutive nodes of one level per row
-- (32 bytes each; the last strip of a level grows until full).
CREATE TABLE node_strips (
    tenant TEXT NOT NULL,
    level INTEGER NOT NULL,
    strip INTEGER NOT NULL,
    data BLOB NOT NULL,
    PRIMARY KEY (tenant, level, strip)
) WITHOUT ROWID;

-- Every signed checkpoint, never deleted.
CREATE TABLE checkpoints (
    tenant TEXT NOT NULL,
    size INTEGER NOT NULL,
    root BLOB NOT NULL,
    note TEXT NOT NULL,
    signed_at INTEGER NOT NULL,
    PRIMARY KEY (tenant, size)
) WITHOUT ROWID;

-- API keys: the SHA-256 digest of the secret, never the secret.
CREATE TABLE keys (
    id TEXT PRIMARY KEY,
    digest BLOB NOT NULL UNIQUE,
    name TEXT NOT NULL,
    scopes TEXT NOT NULL,
    tenant TEXT,
    created_at INTEGER NOT NULL,
    revoked_at INTEGER
) WITHOUT ROWID;
