-- The common hand-written audit: a row-level trigger writing jsonb old/new
-- with the actor from the same setting.
CREATE TABLE audit_log (
    id bigserial PRIMARY KEY,
    table_name text NOT NULL,
    op text NOT NULL,
    old_row jsonb,
    new_row jsonb,
    actor text,
    at timestamptz NOT NULL DEFAULT now()
);
CREATE FUNCTION audit_row() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO audit_log (table_name, op, old_row, new_row, actor)
    VALUES (TG_TABLE_NAME, TG_OP,
            CASE WHEN TG_OP <> 'INSERT' THEN to_jsonb(OLD) END,
            CASE WHEN TG_OP <> 'DELETE' THEN to_jsonb(NEW) END,
            current_setting('trailmark.actor_id', true));
    RETURN NULL;
END
$$;
CREATE TRIGGER audit_row AFTER INSERT OR UPDATE OR DELETE ON pgbench_accounts
    FOR EACH ROW EXECUTE FUNCTION audit_row();
