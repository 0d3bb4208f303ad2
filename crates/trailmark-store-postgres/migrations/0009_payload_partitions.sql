-- Payloads leave the entries table for one partitioned by the time each
-- entry was received, in 7-day spans: what retention removes by age is then
-- dropped a partition at a time, and what erasure removes is rewritten out
-- of one partition, not the whole trail. The envelopes, leaf hashes and
-- the columns that index them stay in entries.

-- The span of received times an entry's payload is kept in: 7 days,
-- counted from the Unix epoch, in milliseconds. The one place the span is
-- defined; the store asks these functions rather than repeating it.
CREATE FUNCTION trailmark_ledger.payload_span(received_at bigint) RETURNS int8range
LANGUAGE sql IMMUTABLE AS $$
    SELECT int8range(s, s + 604800000)
    FROM (SELECT received_at - ((received_at % 604800000) + 604800000) % 604800000 AS s) AS start
$$;

-- The partition of the span starting at `start`: payloads_YYYYMMDD (UTC).
CREATE FUNCTION trailmark_ledger.payload_partition(start bigint) RETURNS text
LANGUAGE sql IMMUTABLE AS $$
    SELECT 'payloads_' || to_char(to_timestamp(start / 1000) AT TIME ZONE 'UTC', 'YYYYMMDD')
$$;

-- Creates the partition for `received_at` if it is missing (under an
-- advisory lock, so servers creating it at once create it once) and
-- returns its span.
CREATE FUNCTION trailmark_ledger.ensure_payload_partition(received_at bigint) RETURNS int8range
LANGUAGE plpgsql AS $$
DECLARE
    span int8range := trailmark_ledger.payload_span(received_at);
    name text := trailmark_ledger.payload_partition(lower(span));
BEGIN
    IF to_regclass('trailmark_ledger.' || name) IS NULL THEN
        PERFORM pg_advisory_xact_lock(7630311266);
        IF to_regclass('trailmark_ledger.' || name) IS NULL THEN
            EXECUTE format(
                'CREATE TABLE trailmark_ledger.%I PARTITION OF trailmark_ledger.payloads
                 FOR VALUES FROM (%s) TO (%s)', name, lower(span), upper(span));
        END IF;
    END IF;
    RETURN span;
END
$$;

-- One row per entry whose payload is kept. search holds every word of the
-- entry (envelope and payload); ip and request_id derive from the payload.
CREATE TABLE trailmark_ledger.payloads (
    pos bigint NOT NULL,
    received_at bigint NOT NULL,
    tenant text NOT NULL,
    payload text NOT NULL,
    salt bytea NOT NULL,
    ip text,
    request_id text,
    search tsvector NOT NULL,
    PRIMARY KEY (pos, received_at)
) PARTITION BY RANGE (received_at);
CREATE INDEX payloads_ip ON trailmark_ledger.payloads (tenant, ip, pos) WHERE ip IS NOT NULL;
CREATE INDEX payloads_request ON trailmark_ledger.payloads (tenant, request_id, pos)
 WHERE request_id IS NOT NULL;
CREATE INDEX payloads_search ON trailmark_ledger.payloads USING gin (search);

-- Spans whose partition holds payloads of removed entries: the scrub
-- drops the partition or rewrites it. marked changes with every removal,
-- so a scrub clears only what it saw.
CREATE SEQUENCE trailmark_ledger.scrub_marks;
CREATE TABLE trailmark_ledger.scrub_pending (
    start bigint PRIMARY KEY,
    marked bigint NOT NULL
);

-- Work the store does once, outside a transaction, after a migration.
CREATE TABLE trailmark_ledger.maintenance (task text PRIMARY KEY);

ALTER TABLE trailmark_ledger.entries ADD COLUMN received_at bigint;
UPDATE trailmark_ledger.entries SET received_at = (extract(epoch FROM
    (convert_from(envelope, 'UTF8')::jsonb ->> 'received_at')::timestamptz) * 1000)::bigint;
ALTER TABLE trailmark_ledger.entries ALTER COLUMN received_at SET NOT NULL;

SELECT trailmark_ledger.ensure_payload_partition(received_at)
FROM (SELECT DISTINCT lower(trailmark_ledger.payload_span(received_at)) AS received_at
      FROM trailmark_ledger.entries WHERE payload IS NOT NULL) AS spans;
INSERT INTO trailmark_ledger.payloads
    (pos, received_at, tenant, payload, salt, ip, request_id, search)
SELECT pos, received_at, tenant, payload, salt, ip, request_id, search
FROM trailmark_ledger.entries WHERE payload IS NOT NULL;

-- entries.search now holds the envelope's words of entries whose payload
-- is gone (so they are still found by their ids), and nothing otherwise.
UPDATE trailmark_ledger.entries SET search = NULL WHERE payload IS NOT NULL;
ALTER TABLE trailmark_ledger.entries DROP COLUMN payload, DROP COLUMN salt,
    DROP COLUMN ip, DROP COLUMN request_id;
-- Dropped columns keep their bytes in the rows until the table is
-- rewritten: the store runs VACUUM (FULL) once.
INSERT INTO trailmark_ledger.maintenance (task) VALUES ('rewrite entries');
