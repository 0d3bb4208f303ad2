-- The nodes of a level's last, partial strip live one row each (issue 16):
-- a commit inserts only the nodes it completed instead of rewriting the
-- partial strip of every level it touched (up to 8 KiB each, over overflow
-- pages, every old page zeroed by secure_delete). When a strip fills, the
-- writer stores it whole in node_strips and deletes its rows here.
CREATE TABLE node_tail (
    tenant TEXT NOT NULL,
    level INTEGER NOT NULL,
    idx INTEGER NOT NULL,
    hash BLOB NOT NULL,
    PRIMARY KEY (tenant, level, idx)
) WITHOUT ROWID;

-- Partial strips written before this version move here, one row a node.
WITH RECURSIVE k (i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM k WHERE i < 254)
INSERT INTO node_tail (tenant, level, idx, hash)
SELECT s.tenant, s.level, s.strip * 256 + k.i, substr(s.data, k.i * 32 + 1, 32)
FROM node_strips AS s JOIN k ON k.i * 32 < length(s.data)
WHERE length(s.data) < 8192;
DELETE FROM node_strips WHERE length(data) < 8192;
