-- Settings kept beside the trail (alert rules, webhook endpoints): one JSON
-- document per name, with a version every change increments.
CREATE TABLE trailmark_ledger.settings (
    name text PRIMARY KEY,
    value text NOT NULL,
    version bigint NOT NULL,
    updated_at bigint NOT NULL
);
