-- The node tail keeps each level's nodes in 256 slots (the node's index
-- modulo 256) that the next strip writes over, instead of rows deleted when
-- their strip fills. Deleting them freed pages that the next split of any
-- table took back out of order; SQLite's page swap for that passes through
-- the page number at 1 GiB, and until the file reaches 1 GiB every commit
-- after such a swap walked the writer's whole page cache
-- (bench/results/ingest.md). A slot's row is overwritten in place. A row
-- whose idx is not in its level's last strip is stale: readers ask for the
-- idx they need, so they never see one.
CREATE TABLE node_tail_slots (
    tenant TEXT NOT NULL,
    level INTEGER NOT NULL,
    slot INTEGER NOT NULL,
    idx INTEGER NOT NULL,
    hash BLOB NOT NULL,
    PRIMARY KEY (tenant, level, slot)
) WITHOUT ROWID;
INSERT INTO node_tail_slots (tenant, level, slot, idx, hash)
SELECT tenant, level, idx % 256, idx, hash FROM node_tail;
DROP TABLE node_tail;
ALTER TABLE node_tail_slots RENAME TO node_tail;
