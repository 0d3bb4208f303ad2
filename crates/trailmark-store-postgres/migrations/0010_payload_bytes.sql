-- What a removal walk needs to know of an entry's payload without looking
-- it up in its partition: its size in bytes (payload, salt, ip and
-- request_id, as the store counts them when it writes the payload), NULL
-- when the entry has none. Cleared when the entry is marked removed.
ALTER TABLE trailmark_ledger.entries ADD COLUMN payload_bytes bigint;
UPDATE trailmark_ledger.entries e
SET payload_bytes = octet_length(p.payload) + octet_length(p.salt)
    + coalesce(octet_length(p.ip), 0) + coalesce(octet_length(p.request_id), 0)
FROM trailmark_ledger.payloads p
WHERE p.pos = e.pos AND p.received_at = e.received_at AND e.removed_kind IS NULL;

-- entries.search holds words only for entries whose payload is gone: the
-- index covers those rows alone (a kept entry adds nothing to it).
DROP INDEX trailmark_ledger.entries_search;
CREATE INDEX entries_search ON trailmark_ledger.entries USING gin (search)
 WHERE search IS NOT NULL;
