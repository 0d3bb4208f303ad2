-- Entries counted per tenant, stats list, hour and value, so that stats over
-- a window read its whole hours here instead of their entries (read.rs,
-- `stats`). `list` is the stats list: 0 outcome, 1 action, 2 actor,
-- 3 resource type (entries without one are not counted by it); `hour` the
-- hour's number since the epoch (occurred_at / 3600000). An entry's counted
-- columns never change (removal and erasure keep them), so a count only grows.
CREATE TABLE trailmark_ledger.hour_counts (
    tenant text NOT NULL,
    list smallint NOT NULL,
    hour bigint NOT NULL,
    value text NOT NULL,
    n bigint NOT NULL,
    PRIMARY KEY (tenant, list, hour, value)
);

-- How far each tenant is counted in hour_counts: every entry whose seq is
-- below `seq`, none above. A tenant without a row is counted up to 0.
-- Counting a tenant locks its row, so two servers never count an entry twice.
CREATE TABLE trailmark_ledger.counted (
    tenant text PRIMARY KEY,
    seq bigint NOT NULL
);
