-- The request_id filter: the request an entry came from (context.request_id
-- of its payload; Trailmark's own records carry the X-Request-Id they were
-- made for). Derived from the payload like ip, so erasable with it. Entries
-- stored before get theirs from their payloads.
ALTER TABLE entries ADD COLUMN request_id TEXT;
UPDATE entries SET request_id = json_extract(payload, '$.context.request_id')
 WHERE payload IS NOT NULL AND json_type(payload, '$.context.request_id') = 'text';
CREATE INDEX entries_request ON entries (tenant, request_id) WHERE request_id IS NOT NULL;
