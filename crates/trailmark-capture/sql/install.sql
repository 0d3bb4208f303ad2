-- Trailmark change capture, schema version 1. Applied by
-- `trailmark capture pg install`; safe to apply again (it only replaces what it owns).

CREATE SCHEMA IF NOT EXISTS trailmark;

-- One row per changed row, written inside the application's transaction.
CREATE TABLE IF NOT EXISTS trailmark.outbox (
    id bigserial PRIMARY KEY,
    txid bigint NOT NULL,
    stmt integer NOT NULL,
    op text NOT NULL CHECK (op IN ('insert', 'update', 'delete', 'truncate')),
    schema_name text NOT NULL,
    table_name text NOT NULL,
    old_row jsonb,
    new_row jsonb,
    context jsonb NOT NULL,
    db_role text NOT NULL DEFAULT current_user,
    captured_at timestamptz NOT NULL DEFAULT clock_timestamp()
);

-- What is installed, for status and upgrades.
CREATE TABLE IF NOT EXISTS trailmark.meta (
    key text PRIMARY KEY,
    value text NOT NULL
);
INSERT INTO trailmark.meta (key, value) VALUES ('version', '1')
    ON CONFLICT (key) DO UPDATE SET value = excluded.value;

-- The context the application attached with set_config('trailmark.*', …, true).
CREATE OR REPLACE FUNCTION trailmark.context() RETURNS jsonb
LANGUAGE sql STABLE AS $$
    SELECT jsonb_strip_nulls(jsonb_build_object(
        'actor_id', nullif(current_setting('trailmark.actor_id', true), ''),
        'actor_type', nullif(current_setting('trailmark.actor_type', true), ''),
        'actor_name', nullif(current_setting('trailmark.actor_name', true), ''),
        'ip', nullif(current_setting('trailmark.ip', true), ''),
        'user_agent', nullif(current_setting('trailmark.user_agent', true), ''),
        'request_id', nullif(current_setting('trailmark.request_id', true), ''),
        'session_id', nullif(current_setting('trailmark.session_id', true), ''),
        'tenant', nullif(current_setting('trailmark.tenant', true), ''),
        'reason', nullif(current_setting('trailmark.reason', true), '')
    ))
$$;

-- The statement's number within its transaction (1, 2, …), so the rows one
-- statement changed can be shown as one group.
CREATE OR REPLACE FUNCTION trailmark.next_statement() RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    n integer := coalesce(nullif(current_setting('trailmark.stmt', true), ''), '0')::integer + 1;
BEGIN
    PERFORM set_config('trailmark.stmt', n::text, true);
    RETURN n;
END
$$;

-- Statement-level trigger body: one INSERT … SELECT per statement, whatever
-- the number of rows. Rows are read as `alias.*` under `trailmark_` aliases, so
-- that an application column named like an alias can never be taken for the row. TG_ARGV[0]: primary key columns (comma-separated, may be
-- empty); TG_ARGV[1]: columns never copied (comma-separated).
CREATE OR REPLACE FUNCTION trailmark.capture() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    pk text[] := string_to_array(nullif(TG_ARGV[0], ''), ',');
    excluded text[] := coalesce(string_to_array(nullif(TG_ARGV[1], ''), ','), '{}');
    stmt integer := trailmark.next_statement();
    ctx jsonb := trailmark.context();
    matched bigint;
    total bigint;
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO trailmark.outbox (txid, stmt, op, schema_name, table_name, new_row, context)
        SELECT txid_current(), stmt, 'insert', TG_TABLE_SCHEMA, TG_TABLE_NAME, to_jsonb(trailmark_n.*) - excluded, ctx
        FROM trailmark_new trailmark_n;
    ELSIF TG_OP = 'DELETE' THEN
        INSERT INTO trailmark.outbox (txid, stmt, op, schema_name, table_name, old_row, context)
        SELECT txid_current(), stmt, 'delete', TG_TABLE_SCHEMA, TG_TABLE_NAME, to_jsonb(trailmark_o.*) - excluded, ctx
        FROM trailmark_old trailmark_o;
    ELSIF TG_OP = 'UPDATE' THEN
        -- Pair old and new rows by primary key. If a key changed (or there is
        -- none), pair them by position: PostgreSQL fills both transition
        -- tables row by row, in step.
        IF pk IS NOT NULL THEN
            EXECUTE format(
                'SELECT count(*) FROM trailmark_old trailmark_o JOIN trailmark_new trailmark_n ON %s',
                (SELECT string_agg(format('trailmark_o.%I IS NOT DISTINCT FROM trailmark_n.%I', c, c), ' AND ') FROM unnest(pk) c))
            INTO matched;
        END IF;
        SELECT count(*) INTO total FROM trailmark_old;
        IF pk IS NOT NULL AND matched = total THEN
            EXECUTE format(
                'INSERT INTO trailmark.outbox (txid, stmt, op, schema_name, table_name, old_row, new_row, context)
                 SELECT txid_current(), $1, ''update'', $2, $3,
                        to_jsonb(trailmark_o.*) - $4, to_jsonb(trailmark_n.*) - $4, $5
                 FROM trailmark_old trailmark_o JOIN trailmark_new trailmark_n ON %s',
                (SELECT string_agg(format('trailmark_o.%I IS NOT DISTINCT FROM trailmark_n.%I', c, c), ' AND ') FROM unnest(pk) c))
            USING stmt, TG_TABLE_SCHEMA, TG_TABLE_NAME, excluded, ctx;
        ELSE
            INSERT INTO trailmark.outbox (txid, stmt, op, schema_name, table_name, old_row, new_row, context)
            SELECT txid_current(), stmt, 'update', TG_TABLE_SCHEMA, TG_TABLE_NAME, o.j - excluded, n.j - excluded, ctx
            FROM (SELECT row_number() OVER () AS trailmark_rn, to_jsonb(trailmark_t.*) AS j
                  FROM trailmark_old trailmark_t) o
            JOIN (SELECT row_number() OVER () AS trailmark_rn, to_jsonb(trailmark_t.*) AS j
                  FROM trailmark_new trailmark_t) n USING (trailmark_rn);
        END IF;
    END IF;
    RETURN NULL;
END
$$;

CREATE OR REPLACE FUNCTION trailmark.capture_truncate() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO trailmark.outbox (txid, stmt, op, schema_name, table_name, context)
    VALUES (txid_current(), trailmark.next_statement(), 'truncate', TG_TABLE_SCHEMA, TG_TABLE_NAME, trailmark.context());
    RETURN NULL;
END
$$;
