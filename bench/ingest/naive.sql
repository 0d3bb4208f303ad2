-- The naive PostgreSQL audit log Trailmark is compared with: a jsonb table
-- whose rows are chained by a trigger computing SHA-256 over the previous
-- row's hash and the new row. The chain needs one writer at a time, so the
-- trigger takes a transaction-scoped advisory lock.
DROP TABLE IF EXISTS naive_audit;
CREATE TABLE naive_audit (
    id bigserial PRIMARY KEY,
    body jsonb NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    prev_hash bytea,
    hash bytea NOT NULL
);
CREATE INDEX naive_audit_actor ON naive_audit ((body -> 'actor' ->> 'id'), created_at);
CREATE OR REPLACE FUNCTION naive_audit_chain() RETURNS trigger AS $$
BEGIN
    PERFORM pg_advisory_xact_lock(7878);
    SELECT hash INTO NEW.prev_hash FROM naive_audit ORDER BY id DESC LIMIT 1;
    NEW.hash := sha256(coalesce(NEW.prev_hash, ''::bytea) || convert_to(NEW.body::text, 'UTF8'));
    RETURN NEW;
END
$$ LANGUAGE plpgsql;
CREATE TRIGGER naive_audit_chain BEFORE INSERT ON naive_audit
    FOR EACH ROW EXECUTE FUNCTION naive_audit_chain();
