-- The request_id filter: the request an entry came from (context.request_id
-- of its payload; Trailmark's own records carry the X-Request-Id they were
-- made for). Derived from the payload like ip, so erasable with it. Entries
-- stored before get theirs from their payloads.
ALTER TABLE trailmark_ledger.entries ADD COLUMN request_id text;
UPDATE trailmark_ledger.entries SET request_id = payload::jsonb #>> '{context,request_id}'
 WHERE payload IS NOT NULL AND jsonb_typeof(payload::jsonb #> '{context,request_id}') = 'string';
CREATE INDEX entries_request ON trailmark_ledger.entries (tenant, request_id, pos)
 WHERE request_id IS NOT NULL;
