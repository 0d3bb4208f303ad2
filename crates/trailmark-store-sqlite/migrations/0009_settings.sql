-- Settings kept beside the trail (alert rules, webhook endpoints): one JSON
-- document per name, with a version every change increments.
CREATE TABLE settings (
    name TEXT PRIMARY KEY,
    value TEXT NOT NULL,
    version INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
) WITHOUT ROWID;
