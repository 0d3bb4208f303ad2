-- Witness cosignatures (c2sp.org/tlog-cosignature) of stored checkpoints:
-- one note signature line per witness and checkpoint, never deleted.
CREATE TABLE trailmark_ledger.cosignatures (
    tenant text NOT NULL,
    size bigint NOT NULL,
    witness text NOT NULL,
    line text NOT NULL,
    PRIMARY KEY (tenant, size, witness)
);
