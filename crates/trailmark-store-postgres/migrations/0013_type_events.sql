-- A record's history also reads the events about its whole resource type,
-- which name no record (a captured table's truncate, rewrite, pause and
-- resume): newest first by position, a page at a time, without sorting
-- every such event of the type first (an application may send many: an
-- export of every invoice). `resource_id IS NULL` orders nothing in the
-- index of records (tenant, resource_type, resource_id, pos); this one
-- holds only those events.
CREATE INDEX entries_type_whole ON trailmark_ledger.entries (tenant, resource_type, pos)
 WHERE resource_type IS NOT NULL AND resource_id IS NULL;
