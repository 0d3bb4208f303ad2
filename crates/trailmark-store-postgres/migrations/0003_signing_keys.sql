-- The public keys that sign this trail, oldest first. A server whose key is
-- not the newest one refuses to start, so a second server with another seed
-- cannot sign a trail nobody can verify. ordinal 0 is the first key (two
-- servers starting at once on an empty ledger: the first insert wins); a
-- rotated-in key carries the transition statement signed by the key before.
CREATE TABLE trailmark_ledger.signing_keys (
    ordinal integer PRIMARY KEY,
    public_key bytea NOT NULL UNIQUE,
    origin_prefix text NOT NULL,
    added_at bigint NOT NULL,
    transition text
);
