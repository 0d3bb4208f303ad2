-- Witness cosignatures (c2sp.org/tlog-cosignature) of stored checkpoints:
-- one note signature line per witness and checkpoint, never deleted.
CREATE TABLE cosignatures (
    tenant TEXT NOT NULL,
    size INTEGER NOT NULL,
    witness TEXT NOT NULL,
    line TEXT NOT NULL,
    PRIMARY KEY (tenant, size, witness)
) WITHOUT ROWID;
