-- The query indexes and the search index leave this file (issue 16): an
-- indexer thread keeps them in a second file (`<database>-index`), off the
-- path that must finish before an event is acknowledged. What stays here is
-- what appends and proofs need: the position (rowid), a tenant's entries by
-- seq and by id, the tenant's newest first, and an id in any tenant (the
-- last three grow at their ends: seq and position rise, ids are UUIDv7).
-- The index file is built from these rows when it is missing.
DROP INDEX IF EXISTS entries_time;
DROP INDEX IF EXISTS entries_actor;
DROP INDEX IF EXISTS entries_resource;
DROP INDEX IF EXISTS entries_action;
DROP INDEX IF EXISTS entries_ip;
DROP INDEX IF EXISTS entries_outcome;
DROP INDEX IF EXISTS entries_request;
DROP TABLE IF EXISTS entries_fts;
-- What an erasure took from entries the index file may still hold (the ip
-- and request id keys, the payload's words): the indexer removes them there
-- and then deletes these rows.
CREATE TABLE index_redo (
    id INTEGER PRIMARY KEY,
    pos INTEGER NOT NULL,
    tenant TEXT NOT NULL,
    ip TEXT,
    request_id TEXT
);
