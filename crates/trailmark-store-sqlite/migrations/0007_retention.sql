-- Retention policies: payloads of a tenant's entries of one target (all, a
-- resource type, an action) expire max_age_days after they were received.
CREATE TABLE retention_policies (
    tenant TEXT NOT NULL,
    target_kind TEXT NOT NULL,
    target_value TEXT NOT NULL,
    max_age_days INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (tenant, target_kind, target_value)
) WITHOUT ROWID;
-- Legal holds: while released_at is NULL, nothing they cover is removed.
CREATE TABLE holds (
    id TEXT PRIMARY KEY,
    tenant TEXT NOT NULL,
    scope_kind TEXT NOT NULL,
    scope_value TEXT NOT NULL,
    reason TEXT NOT NULL,
    placed_by TEXT NOT NULL,
    placed_at INTEGER NOT NULL,
    released_at INTEGER
) WITHOUT ROWID;
-- Facts about the file itself. The writer zeroes what it frees
-- (secure_delete) from this version on; free pages of a database written
-- before may still hold old rows, so the first scrub vacuums once.
CREATE TABLE store_flags (name TEXT PRIMARY KEY) WITHOUT ROWID;
INSERT INTO store_flags SELECT 'vacuum_before_scrub' WHERE EXISTS (SELECT 1 FROM entries);
