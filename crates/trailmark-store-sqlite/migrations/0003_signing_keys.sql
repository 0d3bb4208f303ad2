-- The public keys that sign this trail, oldest first. A server whose key is
-- not the newest one refuses to start, so a second server with another seed
-- cannot sign a trail nobody can verify. ordinal 0 is the first key; a
-- rotated-in key carries the transition statement signed by the key before.
CREATE TABLE signing_keys (
    ordinal INTEGER PRIMARY KEY,
    public_key BLOB NOT NULL UNIQUE,
    origin_prefix TEXT NOT NULL,
    added_at INTEGER NOT NULL,
    transition TEXT
);
