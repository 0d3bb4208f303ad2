-- Trailmark change capture (its schema version is `VERSION` in
-- src/install/upgrade.rs, written to trailmark.meta after this). Applied by
-- `trailmark capture pg install`; safe to apply again (it only replaces what it
-- owns, and upgrades what an older version installed).

CREATE SCHEMA IF NOT EXISTS trailmark;
-- A schema uninstall left (set_context alone, a no-op) says so in its comment;
-- installed again, it no longer does.
COMMENT ON SCHEMA trailmark IS NULL;

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
-- Version 17 (here, first, so that what install does to the outbox below
-- finds its guard as it should be): the outbox holds captured changes the
-- ledger has not yet acknowledged, and only capture changes it: the capture
-- functions add rows (and take back their own statement's rows to pair them
-- again), the drainer deletes the rows the ledger acknowledged. An UPDATE, DELETE or
-- TRUNCATE of it by hand (by its owner: no other role may write it; as when
-- the outbox grew while no drainer ran) changed or lost changes before they
-- reached the trail, with no trace, and is refused (SQLSTATE TMX04).
-- Capture's own deletes set trailmark.own_outbox ('on'): the drainer for its
-- session, a capture function around its statement. Enabled ALWAYS, as the
-- capture triggers are (a session with session_replication_role = replica
-- skips any other). Undrained changes are given up knowingly with
-- trailmark capture pg uninstall --drop-pending. (Named outbox_guard: the
-- prefix trailmark_ is what marks capture's triggers on covered tables.)
CREATE OR REPLACE FUNCTION trailmark.outbox_guard() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF TG_OP = 'DELETE' AND current_setting('trailmark.own_outbox', true) = 'on' THEN
        RETURN NULL;
    END IF;
    RAISE EXCEPTION 'trailmark: % of trailmark.outbox refused: it holds captured changes not yet in the audit trail, which only capture changes', TG_OP
        USING ERRCODE = 'TMX04',
              HINT = 'drain them (trailmark capture pg drain, or trailmark serve --capture-source); to give them up knowingly, trailmark capture pg uninstall --drop-pending';
END
$$;
-- What is wrong with the guard (missing, or enabled otherwise than
-- ALWAYS), or NULL: the one rule for the event trigger and status.
CREATE OR REPLACE FUNCTION trailmark.outbox_guard_fault() RETURNS text
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
    SELECT CASE coalesce((SELECT t.tgenabled::text FROM pg_trigger t
                          WHERE t.tgrelid = 'trailmark.outbox'::regclass
                            AND t.tgname = 'outbox_guard'), 'missing')
        WHEN 'A' THEN NULL
        WHEN 'missing' THEN 'has lost its guard (trigger outbox_guard)'
        WHEN 'D' THEN 'has its guard (trigger outbox_guard) disabled'
        WHEN 'R' THEN 'has its guard (trigger outbox_guard) enabled for replica sessions only'
        ELSE 'has its guard (trigger outbox_guard) enabled so that sessions with session_replication_role = replica skip it'
    END
$$;
DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_trigger WHERE tgrelid = 'trailmark.outbox'::regclass
                   AND tgname = 'outbox_guard') THEN
        CREATE TRIGGER outbox_guard BEFORE UPDATE OR DELETE OR TRUNCATE
            ON trailmark.outbox FOR EACH STATEMENT EXECUTE FUNCTION trailmark.outbox_guard();
    END IF;
    -- (Capture's own DDL: the event trigger finds the guard as it was.)
    PERFORM set_config('trailmark.republishing', 'on', true);
    ALTER TABLE trailmark.outbox ENABLE ALWAYS TRIGGER outbox_guard;
    PERFORM set_config('trailmark.republishing', '', true);
END
$$;
-- Version 8: the rows are written by the capture functions as their owner
-- (SECURITY DEFINER), so the role that made the change is the session's
-- (`SET ROLE`'s if one is set), not `current_user` (the owner there).
-- Version 16: the one rule for it, which capture's records of DDL (a drop,
-- an attach, a rewrite, a switch by hand) name the role by too. A plain
-- SQL function (no SET, not SECURITY DEFINER): PostgreSQL inlines it into
-- the outbox INSERT's plan, so the default costs what its expression did.
CREATE OR REPLACE FUNCTION trailmark.acting_role() RETURNS text
LANGUAGE sql STABLE AS $$
    SELECT coalesce(nullif(pg_catalog.current_setting('role'), 'none'), session_user)
$$;
ALTER TABLE trailmark.outbox ALTER COLUMN db_role SET DEFAULT trailmark.acting_role();

-- Version 8: any role may look in the schema, so that the application's
-- role, which need not own anything here, may call trailmark.set_context
-- (and the integrations may ask whether it exists). Its tables stay the
-- owner's: looking in a schema reads no table.
GRANT USAGE ON SCHEMA trailmark TO PUBLIC;

-- What is installed, for status and upgrades.
CREATE TABLE IF NOT EXISTS trailmark.meta (
    key text PRIMARY KEY,
    value text NOT NULL
);

-- Each covered table and its options: the key the trigger pairs rows by and
-- the drainer names records by, the columns that never leave the database,
-- the soft-delete column and the resource type events carry.
CREATE TABLE IF NOT EXISTS trailmark.tables (
    schema_name text NOT NULL,
    table_name text NOT NULL,
    key_columns text[] NOT NULL,
    exclude text[] NOT NULL DEFAULT '{}',
    exclude_attnums smallint[] NOT NULL DEFAULT '{}',
    soft_delete text,
    resource_type text,
    installed_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (schema_name, table_name)
);
-- Version 3: capture paused (`trailmark capture pg pause`) since when; NULL
-- while it runs. A pause and a resume are outbox rows of their own, so the
-- trail records them in order with the changes around them.
ALTER TABLE trailmark.tables ADD COLUMN IF NOT EXISTS paused_at timestamptz;
-- Version 16: and a rewrite (trailmark.record_rewrite below).
ALTER TABLE trailmark.outbox DROP CONSTRAINT IF EXISTS outbox_op_check;
ALTER TABLE trailmark.outbox ADD CONSTRAINT outbox_op_check
    CHECK (op IN ('insert', 'update', 'delete', 'truncate', 'pause', 'resume', 'rewrite'));

-- Version 4: how changes are captured ('trigger': the triggers write the
-- outbox; 'wal': logical decoding of publication `trailmark` through slot
-- `trailmark`), set by install; each table's replica identity in WAL mode
-- ('full': old values of every column; 'key': of the key only) and the column
-- whose value names its records (`resource.name`).
INSERT INTO trailmark.meta (key, value) VALUES ('mode', 'trigger') ON CONFLICT (key) DO NOTHING;
ALTER TABLE trailmark.tables ADD COLUMN IF NOT EXISTS replica_identity text;
-- Version 15: each partition of the table at any depth, by oid, with its
-- parent's (a jsonb object), as trailmark.follow_partitions last saw them:
-- what trailmark.record_dropped knows a dropped partition by.
ALTER TABLE trailmark.tables ADD COLUMN IF NOT EXISTS members jsonb;
-- Version 16: how capture's records name a partition (a truncate's, a
-- rewrite's `metadata.partition`, an attach's reason): schema.name, as
-- PostgreSQL's catalog spells them, unquoted. The one rule for the four
-- places that name one (one of them, a partition dropped, from what
-- pg_event_trigger_dropped_objects says, the catalog row gone).
CREATE OR REPLACE FUNCTION trailmark.partition_name(schema_name text, table_name text) RETURNS text
LANGUAGE sql IMMUTABLE AS $$
    SELECT schema_name || '.' || table_name
$$;

-- Version 14: whether capture is in WAL mode (trailmark.meta's 'mode'). The
-- one reading of it for the functions below.
CREATE OR REPLACE FUNCTION trailmark.wal_mode() RETURNS boolean
LANGUAGE sql STABLE AS $$
    SELECT EXISTS (SELECT FROM trailmark.meta WHERE key = 'mode' AND value = 'wal')
$$;
ALTER TABLE trailmark.tables ADD COLUMN IF NOT EXISTS name_column text;
-- Version 11 (trigger mode): the stored generated columns a table's capture
-- function leaves out (by number: PostgreSQL 15's logical decoding never
-- sends them), so that `status` names a table whose generated columns
-- changed since (one added is captured by trigger mode until install runs
-- again; one whose expression was dropped stays left out). NULL: not
-- recorded (WAL mode, or installed before this version).
ALTER TABLE trailmark.tables ADD COLUMN IF NOT EXISTS generated_attnums smallint[];

-- Version 12: a covered table's oid (`relid`), by which its options follow
-- it through a rename (ALTER TABLE ... RENAME TO, ... SET SCHEMA): the
-- event trigger below, or install where there is none, records its new
-- name, and keeps the names it had (`former_schemas` and `former_tables`,
-- in step), so that a change made under one and drained after still finds
-- the table's options (outbox rows and the WAL name a table as it was when
-- the change was made). NULL: installed before this version.
ALTER TABLE trailmark.tables ADD COLUMN IF NOT EXISTS relid oid;
ALTER TABLE trailmark.tables ADD COLUMN IF NOT EXISTS former_schemas text[] NOT NULL DEFAULT '{}';
ALTER TABLE trailmark.tables ADD COLUMN IF NOT EXISTS former_tables text[] NOT NULL DEFAULT '{}';

-- Version 12: a table's primary key columns in key order (none: empty).
-- The one rule for install, status and the event trigger below.
CREATE OR REPLACE FUNCTION trailmark.key_columns(relid oid) RETURNS text[]
LANGUAGE sql STABLE AS $$
    SELECT ARRAY(
        SELECT a.attname::text FROM pg_catalog.pg_index i
        JOIN pg_catalog.pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY (i.indkey)
        WHERE i.indrelid = $1 AND i.indisprimary
        ORDER BY array_position(i.indkey, a.attnum))
$$;

-- The covered tables renamed since their names were recorded (those whose
-- oid is in `relids`; every one for NULL), with the names they have now.
-- The one rule for the event trigger, install and status.
CREATE OR REPLACE FUNCTION trailmark.renamed(relids oid[])
RETURNS TABLE (schema_name text, table_name text, now_schema text, now_table text)
LANGUAGE sql STABLE AS $$
    SELECT t.schema_name, t.table_name, n.nspname::text, c.relname::text
    FROM trailmark.tables t
    JOIN pg_catalog.pg_class c ON c.oid = t.relid
    JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
    WHERE ($1 IS NULL OR t.relid = ANY ($1))
      AND (n.nspname::text, c.relname::text) IS DISTINCT FROM (t.schema_name, t.table_name)
$$;

-- Records the names those tables have now, keeping the ones they had;
-- answers 'schema.table was renamed schema.table' for each.
CREATE OR REPLACE FUNCTION trailmark.follow_renames(relids oid[]) RETURNS SETOF text
LANGUAGE sql AS $$
    UPDATE trailmark.tables t
    SET schema_name = r.now_schema, table_name = r.now_table,
        former_schemas = t.former_schemas || r.schema_name,
        former_tables = t.former_tables || r.table_name
    FROM trailmark.renamed($1) r
    WHERE t.schema_name = r.schema_name AND t.table_name = r.table_name
    RETURNING r.schema_name || '.' || r.table_name || ' was renamed ' || r.now_schema || '.' || r.now_table
$$;
REVOKE ALL ON FUNCTION trailmark.follow_renames(oid[]) FROM PUBLIC;

-- Version 13: the numbers of a covered table's soft-delete and name
-- columns, by which a rename of either is followed (the drainer reads them
-- from the rows by name). NULL: none, or not recorded (before this
-- version, or a table covered by the event trigger, with no options).
ALTER TABLE trailmark.tables ADD COLUMN IF NOT EXISTS soft_delete_attnum smallint;
ALTER TABLE trailmark.tables ADD COLUMN IF NOT EXISTS name_attnum smallint;

-- Records the names the soft-delete and name columns of the covered tables
-- in `relids` (every one for NULL) have now, found by their numbers (one
-- dropped keeps its name: status names it); answers 'schema.table:
-- soft-delete column a was renamed b' for each table changed. The one rule
-- for the event trigger and install.
CREATE OR REPLACE FUNCTION trailmark.follow_option_columns(relids oid[]) RETURNS SETOF text
LANGUAGE sql AS $$
    WITH now AS (
        SELECT t.schema_name, t.table_name, t.soft_delete, t.name_column,
               coalesce(s.attname::text, t.soft_delete) AS soft_delete_now,
               coalesce(n.attname::text, t.name_column) AS name_column_now
        FROM trailmark.tables t
        LEFT JOIN pg_catalog.pg_attribute s
          ON s.attrelid = t.relid AND s.attnum = t.soft_delete_attnum AND NOT s.attisdropped
        LEFT JOIN pg_catalog.pg_attribute n
          ON n.attrelid = t.relid AND n.attnum = t.name_attnum AND NOT n.attisdropped
        WHERE ($1 IS NULL OR t.relid = ANY ($1))
    )
    UPDATE trailmark.tables t
    SET soft_delete = now.soft_delete_now, name_column = now.name_column_now
    FROM now
    WHERE t.schema_name = now.schema_name AND t.table_name = now.table_name
      AND (now.soft_delete_now, now.name_column_now) IS DISTINCT FROM (now.soft_delete, now.name_column)
    RETURNING now.schema_name || '.' || now.table_name || ': ' || concat_ws(', ',
        CASE WHEN now.soft_delete_now IS DISTINCT FROM now.soft_delete
             THEN 'soft-delete column ' || now.soft_delete || ' was renamed ' || now.soft_delete_now END,
        CASE WHEN now.name_column_now IS DISTINCT FROM now.name_column
             THEN 'name column ' || now.name_column || ' was renamed ' || now.name_column_now END)
$$;
REVOKE ALL ON FUNCTION trailmark.follow_option_columns(oid[]) FROM PUBLIC;

-- Version 12: the schemas covered whole (`install --all`): a table made in
-- one later is covered (with no options) at once by the event trigger
-- (both modes from version 13), else by the next install (`status` names
-- it until then).
CREATE TABLE IF NOT EXISTS trailmark.schemas (
    schema_name text PRIMARY KEY,
    covered_at timestamptz NOT NULL DEFAULT now()
);

-- How far the drainer got: the last outbox id it sent and had acknowledged.
-- Version 16 (WAL mode): where the drainer told the replication slot it
-- may forget the WAL, recorded before the slot hears it. The slot moves
-- only so, or by hand (pg_replication_slot_advance; a slot dropped and made
-- again stands at its making): a slot standing past its record skipped
-- changes nobody captured, and the drainer refuses it as a capture gap
-- (trailmark.slot_moved) until install records where it stands, saying so.
CREATE TABLE IF NOT EXISTS trailmark.slot_confirmed (
    slot_name text PRIMARY KEY,
    lsn pg_lsn NOT NULL,
    recorded_at timestamptz NOT NULL
);
-- The one rule for the drainer, install and status: the slot's position
-- and the record it is past, when it is.
CREATE OR REPLACE FUNCTION trailmark.slot_moved(slot text, OUT recorded pg_lsn, OUT now_at pg_lsn)
RETURNS SETOF record LANGUAGE sql STABLE AS $$
    SELECT c.lsn, s.confirmed_flush_lsn
    FROM trailmark.slot_confirmed c
    JOIN pg_replication_slots s ON s.slot_name = c.slot_name
    WHERE c.slot_name = $1 AND s.confirmed_flush_lsn > c.lsn
$$;

CREATE TABLE IF NOT EXISTS trailmark.drained (
    id integer PRIMARY KEY CHECK (id = 1),
    last_outbox_id bigint NOT NULL,
    rows_total bigint NOT NULL,
    drained_at timestamptz NOT NULL,
    drainer text NOT NULL
);

-- Version 11: where ordered event ids start (src/ids.rs), recorded once and
-- never changed: by install from nothing (fresh: from the first change on),
-- or, after an upgrade from a version before ordered ids, by the first
-- drainer, holding the drain lock (past every outbox row there is and at the
-- WAL written so far). The owner's function, so that a drainer's role needs
-- EXECUTE on it (granted with --drainer-role), not INSERT on trailmark.meta.
CREATE OR REPLACE FUNCTION trailmark.record_ids(fresh boolean) RETURNS void
LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
    INSERT INTO trailmark.meta (key, value)
    SELECT 'ids.outbox_from', CASE WHEN fresh THEN '0'
        ELSE (SELECT coalesce(max(id) + 1, 0) FROM trailmark.outbox)::text END
    UNION ALL SELECT 'ids.wal_from', CASE WHEN fresh THEN '0/0'
        ELSE pg_current_wal_lsn()::text END
    UNION ALL SELECT 'ids.wal_change_from', CASE WHEN fresh THEN '0/0'
        ELSE pg_current_wal_lsn()::text END
    UNION ALL SELECT 'ids.install', md5(random()::text || clock_timestamp()::text)
    ON CONFLICT (key) DO NOTHING
$$;
REVOKE ALL ON FUNCTION trailmark.record_ids(boolean) FROM PUBLIC;

-- The context the application attached with set_config('trailmark.*', ..., true).
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

-- The statement's number within its transaction (1, 2, ...), so the rows one
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

-- The statement-level trigger bodies are generated per table
-- (trailmark.capture_<table oid>, by trailmark.attach_capture below), with
-- the table's key and excluded columns written into plain SQL: no dynamic
-- SQL runs on the application's write path.

-- Version 14: the relations a covered table's capture triggers go on: the
-- table and, when it is partitioned, each partition below it at any depth.
-- A statement-level trigger fires for the table a statement names, not for
-- the table a row lands in: a statement that names a partition (INSERT INTO
-- orders_2026_11 ...) fires the partition's triggers only, and one that
-- names the table fires the table's only (its transition tables hold the
-- rows of every partition). Foreign tables are left out (no transition
-- tables; their rows live elsewhere, and WAL mode never sees them either).
-- The one rule for attach_capture, follow_partitions, enable_capture and
-- status.
CREATE OR REPLACE FUNCTION trailmark.capture_members(relid oid) RETURNS SETOF oid
LANGUAGE sql STABLE AS $$
    SELECT $1
    UNION
    SELECT p.relid FROM pg_catalog.pg_partition_tree($1) p
    JOIN pg_catalog.pg_class c ON c.oid = p.relid
    WHERE p.level > 0 AND c.relkind IN ('r', 'p')
$$;

-- Version 15: the names of capture's triggers, all that any member of a
-- covered table may have (trailmark.member_triggers says which it needs).
CREATE OR REPLACE FUNCTION trailmark.trigger_names() RETURNS text[]
LANGUAGE sql IMMUTABLE AS $$
    SELECT ARRAY['trailmark_insert', 'trailmark_update', 'trailmark_delete', 'trailmark_truncate',
                 'trailmark_replica']
$$;

-- Version 15: the capture triggers one member of a covered table
-- (trailmark.capture_members) needs, by name. Trigger mode: the four
-- statement-level ones, and on a member that holds rows (not a partitioned
-- table, whose rows are its partitions') trailmark_replica, row-level,
-- fired by sessions with session_replication_role = replica only: a
-- logical replication worker applies each change row by row and fires no
-- statement-level INSERT, UPDATE or DELETE trigger, so without it the
-- changes a subscription replicates into a covered table were not captured
-- (see the capture functions below). WAL mode: the TRUNCATE trigger on
-- each member of a partitioned table (trailmark.capture_truncate). The one
-- rule for follow_partitions, uncaptured_members, enable_triggers,
-- drop_capture_triggers, the event trigger and status.
CREATE OR REPLACE FUNCTION trailmark.member_triggers(member oid, target oid) RETURNS text[]
LANGUAGE sql STABLE AS $$
    SELECT CASE
        WHEN trailmark.wal_mode() THEN
            CASE WHEN (SELECT c.relkind FROM pg_catalog.pg_class c WHERE c.oid = $2) = 'p'
                 THEN ARRAY['trailmark_truncate'] ELSE '{}'::text[] END
        WHEN (SELECT c.relkind FROM pg_catalog.pg_class c WHERE c.oid = $1) = 'p'
            THEN array_remove(trailmark.trigger_names(), 'trailmark_replica')
        ELSE trailmark.trigger_names() END
$$;

-- Version 15: how a capture trigger is enabled when capture runs, as
-- pg_trigger.tgenabled says it: ALWAYS ('A': a session with
-- session_replication_role = replica fires it too), or, trailmark_replica,
-- REPLICA ('R': such sessions only).
CREATE OR REPLACE FUNCTION trailmark.enabled_as(trigger_name text) RETURNS "char"
LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE WHEN $1 = 'trailmark_replica' THEN 'R'::"char" ELSE 'A'::"char" END
$$;

-- Version 15: whether this session is a logical replication worker
-- (applying a subscription's changes, or copying a table's first rows),
-- read once a session (the setting trailmark.replication_worker). Setting
-- it by hand changes which trigger captures a replica session's rows, not
-- whether: a session not run as a replica fires no trailmark_replica, and
-- its statement-level triggers never ask.
CREATE OR REPLACE FUNCTION trailmark.in_replication_worker() RETURNS boolean
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    known text := current_setting('trailmark.replication_worker', true);
BEGIN
    IF known IS NULL OR known NOT IN ('true', 'false') THEN
        known := coalesce((SELECT a.backend_type LIKE 'logical replication %worker'
                           FROM pg_stat_get_activity(pg_backend_pid()) a), false)::text;
        PERFORM set_config('trailmark.replication_worker', known, false);
    END IF;
    RETURN known = 'true';
END
$$;

-- Version 15 (WAL mode): ends a run of capture's transactional logical
-- messages with one more, empty (prefix trailmark.end), which the drainer
-- ignores. PostgreSQL's logical decoding places a message by where its WAL
-- record ends, and a change by where its record begins: a message written
-- in a subtransaction (the event trigger's, an EXCEPTION block's) that
-- ends exactly where the transaction's next change begins ties with it,
-- and was seen decoded after it (a table renamed to a covered name, then
-- updated: the update came before the creates of the rows it held). The
-- empty message takes the tie; the ones before it end strictly earlier.
-- Called after capture's own messages (record_whole, record_entered,
-- record_switch).
CREATE OR REPLACE FUNCTION trailmark.end_messages() RETURNS void
LANGUAGE sql AS $$
    SELECT FROM pg_logical_emit_message(true, 'trailmark.end', '')
$$;

-- Version 15: what a truncate writes, the one rule for capture_truncate and
-- for rows that leave a covered table by DDL (a partition detached or
-- dropped, the table dropped: the event triggers below), which give
-- `reason` (the context's reason, and in WAL mode the role that did it,
-- as a pause by hand carries them; trigger mode's outbox row has the role).
-- Version 16: and what a rewrite writes (op 'rewrite': a table's rows
-- rewritten by DDL that may change their values, trailmark.record_rewrite
-- below): the same record of the whole table, or of one partition.
CREATE OR REPLACE FUNCTION trailmark.record_whole(op text, covered_schema text, covered_table text,
                                                  part text, reason text) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    message text;
    written pg_lsn;
BEGIN
    IF trailmark.wal_mode() THEN
        message := jsonb_strip_nulls(jsonb_build_object(
            'schema', covered_schema, 'table', covered_table, 'partition', part, 'reason', reason,
            'role', CASE WHEN reason IS NOT NULL
                         THEN trailmark.acting_role() END))::text;
        IF op = 'rewrite' THEN
            written := pg_logical_emit_message(true, 'trailmark.rewrite', message);
        ELSE
            written := pg_logical_emit_message(true, 'trailmark.truncate', message);
        END IF;
        PERFORM trailmark.end_messages();
        RETURN;
    END IF;
    INSERT INTO trailmark.outbox (txid, stmt, op, schema_name, table_name, old_row, context)
    VALUES (txid_current(), trailmark.next_statement(), op, covered_schema, covered_table,
            CASE WHEN part IS NOT NULL THEN jsonb_build_object('partition', part) END,
            trailmark.context() || CASE WHEN reason IS NULL THEN '{}'::jsonb
                                        ELSE jsonb_build_object('reason', reason) END);
    PERFORM pg_notify('trailmark_outbox', '');
END
$$;
REVOKE ALL ON FUNCTION trailmark.record_whole(text, text, text, text, text) FROM PUBLIC;
-- (Version 15's name for it, when it wrote truncates only.)
DROP FUNCTION IF EXISTS trailmark.record_truncate(text, text, text, text);

-- Version 15: rows that enter a covered table by DDL: with a partition
-- attached (ALTER TABLE ... ATTACH PARTITION of a table that holds rows),
-- or held by a table when it came to be covered (trailmark.cover_made: made
-- by CREATE TABLE AS or SELECT INTO in a schema covered whole, renamed to a
-- covered name, moved into a schema covered whole). Each row of `part` a
-- create of the covered table `target`, in the same transaction, without
-- the columns capture leaves out (trailmark.excluded_expression), with
-- `reason` and the role that did it. Trigger mode: outbox rows, one
-- statement; WAL mode: a transactional logical message a row (prefix
-- trailmark.create; PostgreSQL's logical decoding sends no change for
-- these).
CREATE OR REPLACE FUNCTION trailmark.record_entered(target oid, part oid, reason text) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    t record;
    excluded text[];
    r jsonb;
    written pg_lsn;
BEGIN
    SELECT * INTO STRICT t FROM trailmark.tables WHERE relid = target;
    EXECUTE 'SELECT ' || trailmark.excluded_expression(target) INTO excluded;
    IF trailmark.wal_mode() THEN
        FOR r IN EXECUTE format('SELECT to_jsonb(p.*) FROM %s p', part::regclass) LOOP
            written := pg_logical_emit_message(true, 'trailmark.create', jsonb_build_object(
                'schema', t.schema_name, 'table', t.table_name, 'row', r - excluded, 'reason', reason,
                'role', trailmark.acting_role())::text);
        END LOOP;
        PERFORM trailmark.end_messages();
        RETURN;
    END IF;
    EXECUTE format('INSERT INTO trailmark.outbox (txid, stmt, op, schema_name, table_name, new_row, context)
                    SELECT txid_current(), $1, ''insert'', $2, $3, to_jsonb(p.*) - $4, $5 FROM %s p', part::regclass)
    USING trailmark.next_statement(), t.schema_name, t.table_name, excluded,
          trailmark.context() || jsonb_build_object('reason', reason);
    PERFORM pg_notify('trailmark_outbox', '');
END
$$;
REVOKE ALL ON FUNCTION trailmark.record_entered(oid, oid, text) FROM PUBLIC;

-- The TRUNCATE trigger of every covered table in trigger mode, and of each
-- member of a covered partitioned table in WAL mode. Its argument is the
-- covered table's oid (version 14; triggers made before have none, and sit
-- on the covered table itself). Run as its owner (version 8), as the
-- generated bodies are: the role that writes a covered table needs no right
-- on the outbox, and no role but the owner may write outbox rows of its own
-- making.
--
-- A TRUNCATE of the covered table is one truncate; one of a partition
-- (TRUNCATE orders_2026_11, version 14) is a truncate of the covered table
-- whose old side names the partition (`{"partition": "public.orders_2026_11"}`):
-- its rows, and only they, are gone. Truncating a table truncates every
-- partition below it, and fires their TRUNCATE triggers too, after its own:
-- each trigger marks the partitions below its table (the setting
-- trailmark.truncating, for the rest of the client's statement), and a
-- trigger finding its own mark takes it and records nothing, so a TRUNCATE
-- is recorded once, for the table it named. In WAL mode PostgreSQL's
-- logical decoding sends the covered table's own truncate (publishing
-- through the root), but none for a partition truncated alone: that one is
-- written as a transactional logical message (prefix trailmark.truncate)
-- which the drainer reads in its place among the transaction's changes.
-- A table detached since (its trigger left behind) records nothing.
CREATE OR REPLACE FUNCTION trailmark.capture_truncate() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    covered oid := CASE WHEN TG_NARGS > 0 THEN TG_ARGV[0]::oid ELSE TG_RELID END;
    marks jsonb := nullif(current_setting('trailmark.truncating', true), '')::jsonb;
    here text := statement_timestamp()::text;
    covered_schema text := TG_TABLE_SCHEMA;
    covered_table text := TG_TABLE_NAME;
    paused timestamptz;
    part text;
BEGIN
    IF marks ->> 'at' IS DISTINCT FROM here THEN
        marks := jsonb_build_object('at', here, 'skip', '[]'::jsonb);
    END IF;
    IF marks -> 'skip' ? TG_RELID::text THEN
        PERFORM set_config('trailmark.truncating',
            jsonb_set(marks, '{skip}', (marks -> 'skip') - TG_RELID::text)::text, true);
        RETURN NULL;
    END IF;
    PERFORM set_config('trailmark.truncating', jsonb_set(marks, '{skip}', (marks -> 'skip')
        || to_jsonb(ARRAY(SELECT p.relid::oid::text FROM pg_partition_tree(TG_RELID) p WHERE p.level > 0)))::text, true);
    IF covered <> TG_RELID THEN
        SELECT n.nspname::text, c.relname::text, x.paused_at INTO covered_schema, covered_table, paused
        FROM pg_partition_ancestors(TG_RELID) a
        JOIN pg_class c ON c.oid = a.relid JOIN pg_namespace n ON n.oid = c.relnamespace
        LEFT JOIN trailmark.tables x ON x.relid = c.oid
        WHERE a.relid = covered;
        IF NOT FOUND THEN
            RETURN NULL; -- no longer a partition of the covered table
        END IF;
        part := trailmark.partition_name(TG_TABLE_SCHEMA, TG_TABLE_NAME);
    END IF;
    IF trailmark.wal_mode() AND (part IS NULL OR paused IS NOT NULL) THEN
        RETURN NULL; -- the table's own is decoded from the WAL
    END IF;
    PERFORM trailmark.record_whole('truncate', covered_schema, covered_table, part, NULL);
    RETURN NULL;
END
$$;

-- Version 13: a table's stored generated columns, by number. The one rule
-- for the capture functions (which leave them out), WAL mode's column
-- lists (which may not name one), install and status.
CREATE OR REPLACE FUNCTION trailmark.generated_attnums(relid oid) RETURNS smallint[]
LANGUAGE sql STABLE AS $$
    SELECT ARRAY(
        SELECT a.attnum FROM pg_catalog.pg_attribute a
        WHERE a.attrelid = $1 AND a.attnum > 0 AND NOT a.attisdropped AND a.attgenerated <> ''
        ORDER BY a.attnum)
$$;

-- Version 14: runs a DDL command capture's own functions need, keeping the
-- event trigger below out of it (the setting trailmark.republishing): that
-- command's work is the caller's, and the event trigger would take it for
-- the application's or a hand's (capture's ALTER TABLE ... ENABLE TRIGGER
-- run inside it could make the triggers being made; its DROP TRIGGER and
-- ALTER PUBLICATION would be recorded as capture switched by hand). The
-- one guard for enable_triggers, drop_capture_triggers and
-- alter_publication (install's Rust sets the same setting around its own).
CREATE OR REPLACE FUNCTION trailmark.own_ddl(command text) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    was text := current_setting('trailmark.republishing', true);
BEGIN
    PERFORM set_config('trailmark.republishing', 'on', true);
    EXECUTE command;
    PERFORM set_config('trailmark.republishing', coalesce(was, ''), true);
END
$$;
REVOKE ALL ON FUNCTION trailmark.own_ddl(text) FROM PUBLIC;

-- Version 14: enables the capture triggers on one relation, ALWAYS, or
-- disables them (trailmark.own_ddl). Version 15: trailmark_replica enabled
-- REPLICA (trailmark.enabled_as).
CREATE OR REPLACE FUNCTION trailmark.enable_triggers(rel oid, enabled boolean) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    g name;
BEGIN
    FOR g IN
        SELECT t.tgname FROM pg_trigger t
        WHERE t.tgrelid = rel
          AND t.tgname = ANY (trailmark.trigger_names())
        ORDER BY t.tgname
    LOOP
        PERFORM trailmark.own_ddl(format('ALTER TABLE %s %s TRIGGER %I', rel::regclass,
            CASE WHEN NOT enabled THEN 'DISABLE'
                 WHEN trailmark.enabled_as(g) = 'R' THEN 'ENABLE REPLICA'
                 ELSE 'ENABLE ALWAYS' END, g));
    END LOOP;
END
$$;
REVOKE ALL ON FUNCTION trailmark.enable_triggers(oid, boolean) FROM PUBLIC;

-- Version 14 (WAL mode): alters publication trailmark as capture's own
-- functions need (`command`: what follows ALTER PUBLICATION trailmark;
-- trailmark.own_ddl): the event trigger records a publication altered by
-- hand, and would take the step between dropping a table and adding it
-- back (a column list made anew) for a pause.
CREATE OR REPLACE FUNCTION trailmark.alter_publication(command text) RETURNS void
LANGUAGE sql AS $$
    SELECT trailmark.own_ddl('ALTER PUBLICATION trailmark ' || command)
$$;
REVOKE ALL ON FUNCTION trailmark.alter_publication(text) FROM PUBLIC;

-- Version 14: records that capture of a covered table was paused or
-- resumed ('pause', 'resume'): its state in trailmark.tables, and what the
-- drainer makes a capture.paused or capture.resumed event of, in order
-- with the changes around it, carrying the context (and `reason`, when
-- given, as the context's reason): an outbox row (trigger mode) or a
-- transactional logical message (WAL mode, prefix trailmark.switch). The
-- one rule for `trailmark capture pg pause|resume` and the event trigger
-- (capture switched by hand: triggers disabled, the publication altered).
CREATE OR REPLACE FUNCTION trailmark.record_switch(target oid, op text, reason text) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    t record;
    written pg_lsn;
BEGIN
    UPDATE trailmark.tables SET paused_at = CASE WHEN op = 'pause' THEN now() END
    WHERE relid = target RETURNING * INTO STRICT t;
    IF trailmark.wal_mode() THEN
        -- The decoder reads it in order with the changes; the context is
        -- the transaction's (trailmark.set_context), and the role and the
        -- reason, when given, the switch's own.
        written := pg_logical_emit_message(true, 'trailmark.switch', jsonb_strip_nulls(jsonb_build_object(
            'op', op, 'schema', t.schema_name, 'table', t.table_name, 'reason', reason,
            'role', CASE WHEN reason IS NOT NULL
                         THEN trailmark.acting_role() END))::text);
        PERFORM trailmark.end_messages();
        RETURN;
    END IF;
    INSERT INTO trailmark.outbox (txid, stmt, op, schema_name, table_name, context)
    VALUES (txid_current(), trailmark.next_statement(), op, t.schema_name, t.table_name,
            trailmark.context() || CASE WHEN reason IS NULL THEN '{}'::jsonb
                                        ELSE jsonb_build_object('reason', reason) END);
    PERFORM pg_notify('trailmark_outbox', '');
END
$$;
REVOKE ALL ON FUNCTION trailmark.record_switch(oid, text, text) FROM PUBLIC;

-- Version 13 (trigger mode): enables a covered table's capture triggers,
-- ALWAYS, or disables them (a pause); version 14: those of its partitions
-- too (trailmark.capture_members). ALWAYS: a trigger enabled
-- as CREATE TRIGGER leaves it does not fire in a session with
-- session_replication_role = replica (a logical replication subscriber's
-- apply worker, a restore or a bulk load run so to skip foreign key
-- checks), whose writes WAL mode captures. The one rule for install
-- (attach_capture below), the event trigger, pause and resume.
CREATE OR REPLACE FUNCTION trailmark.enable_capture(target oid, enabled boolean) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    PERFORM trailmark.enable_triggers(m, enabled) FROM trailmark.capture_members(target) m;
    IF enabled THEN
        -- Version 14: and makes those dropped meanwhile (a pause recorded
        -- by the event trigger for triggers dropped by hand; the table
        -- resumed first, so they are made enabled).
        PERFORM trailmark.follow_partitions(target);
    END IF;
END
$$;
REVOKE ALL ON FUNCTION trailmark.enable_capture(oid, boolean) FROM PUBLIC;

-- Version 15: the tables that hold capture triggers made for a covered
-- table but are no longer its members (trailmark.capture_members): a
-- partition detached since, whose rows are no longer the table's. Known by
-- what the triggers call: the table's capture function, or
-- capture_truncate with the table's oid. The one rule for
-- drop_capture_triggers and the event trigger (which records the detach).
CREATE OR REPLACE FUNCTION trailmark.detached_members(target oid) RETURNS SETOF regclass
LANGUAGE sql STABLE AS $$
    SELECT DISTINCT g.tgrelid::regclass FROM pg_catalog.pg_trigger g
    WHERE g.tgname LIKE 'trailmark\_%'
      AND (g.tgfoid = to_regprocedure(format('trailmark.%I()', 'capture_' || $1))
           OR (g.tgfoid = 'trailmark.capture_truncate()'::regprocedure
               AND g.tgargs = convert_to($1::text, 'UTF8') || decode('00', 'hex')))
      AND g.tgrelid NOT IN (SELECT trailmark.capture_members($1))
$$;

-- Version 14: removes the capture triggers made for a covered table: with
-- `everything`, those on each of its members too; without, only those on
-- tables that are no longer its members (trailmark.detached_members).
CREATE OR REPLACE FUNCTION trailmark.drop_capture_triggers(target oid, everything boolean) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp SET client_min_messages = warning AS $$
DECLARE
    r oid;
    op text;
BEGIN
    FOR r IN
        SELECT d::oid FROM trailmark.detached_members(target) d
        UNION
        SELECT m FROM trailmark.capture_members(target) m WHERE everything
        ORDER BY 1
    LOOP
        FOREACH op IN ARRAY trailmark.trigger_names() LOOP
            -- (Capture's own: not recorded as dropped by hand.)
            PERFORM trailmark.own_ddl(format('DROP TRIGGER IF EXISTS %I ON %s', op, r::regclass));
        END LOOP;
    END LOOP;
END
$$;
REVOKE ALL ON FUNCTION trailmark.drop_capture_triggers(oid, boolean) FROM PUBLIC;

-- Version 14: the members of a covered table (trailmark.capture_members)
-- without all the capture triggers its mode needs
-- (trailmark.member_triggers). The one rule for follow_partitions below,
-- the event trigger (triggers dropped by hand) and status (which names
-- partitions made while the event trigger was absent).
CREATE OR REPLACE FUNCTION trailmark.uncaptured_members(target oid) RETURNS SETOF regclass
LANGUAGE sql STABLE AS $$
    SELECT m::regclass
    FROM trailmark.capture_members($1) m
    WHERE NOT trailmark.member_triggers(m, $1) <@ ARRAY(
        SELECT g.tgname::text FROM pg_catalog.pg_trigger g WHERE g.tgrelid = m)
    ORDER BY m
$$;

-- Version 14: gives each member of a covered table (trailmark.capture_members)
-- the capture triggers its mode needs that it lacks, and removes them from
-- tables that are no longer members (trailmark.member_triggers). In
-- trigger mode each member gets the table's four statement-level triggers
-- (its capture function writes every member's rows as the table's) and,
-- version 15, a member that holds rows trailmark_replica; in WAL mode each member of a partitioned table gets the
-- TRUNCATE trigger only (PostgreSQL's logical decoding sends no truncate of
-- a partition when publishing through the root). A member made (CREATE
-- TABLE ... PARTITION OF, at any depth) or attached (ATTACH PARTITION)
-- later gets them from the event trigger below, in the same transaction,
-- before a row can land in it; the triggers of the table and of the members
-- that have them are left alone (no lock on them but the command's own).
-- New triggers are enabled as trailmark.enabled_as says, or, trigger mode
-- and the table paused, disabled. The one rule for attach_capture and the
-- event trigger. Version 15: and records the partitions in
-- trailmark.tables.members.
CREATE OR REPLACE FUNCTION trailmark.follow_partitions(target oid) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp SET client_min_messages = warning AS $$
DECLARE
    wal boolean := trailmark.wal_mode();
    enabled boolean := wal OR (SELECT paused_at IS NULL FROM trailmark.tables WHERE relid = target);
    fn text := format('trailmark.%I', 'capture_' || target);
    m regclass;
    op text;
BEGIN
    PERFORM trailmark.drop_capture_triggers(target, false);
    FOR m IN SELECT trailmark.uncaptured_members(target) LOOP
        FOREACH op IN ARRAY trailmark.member_triggers(m, target) LOOP
            CONTINUE WHEN EXISTS (SELECT FROM pg_trigger g WHERE g.tgrelid = m AND g.tgname = op);
            EXECUTE format(CASE op
                -- (Its WHEN spares a replica session that is not a worker
                -- a call a row once the session knows: trailmark.in_replication_worker.)
                WHEN 'trailmark_replica' THEN 'CREATE TRIGGER trailmark_replica AFTER INSERT OR UPDATE OR DELETE ON %1$s
                    FOR EACH ROW WHEN (pg_catalog.current_setting(''trailmark.replication_worker'', true)
                                       IS DISTINCT FROM ''false'') EXECUTE FUNCTION %2$s()'
                WHEN 'trailmark_insert' THEN 'CREATE TRIGGER trailmark_insert AFTER INSERT ON %1$s
                    REFERENCING NEW TABLE AS trailmark_new FOR EACH STATEMENT EXECUTE FUNCTION %2$s()'
                WHEN 'trailmark_update' THEN 'CREATE TRIGGER trailmark_update AFTER UPDATE ON %1$s
                    REFERENCING OLD TABLE AS trailmark_old NEW TABLE AS trailmark_new FOR EACH STATEMENT EXECUTE FUNCTION %2$s()'
                WHEN 'trailmark_delete' THEN 'CREATE TRIGGER trailmark_delete AFTER DELETE ON %1$s
                    REFERENCING OLD TABLE AS trailmark_old FOR EACH STATEMENT EXECUTE FUNCTION %2$s()'
                ELSE 'CREATE TRIGGER trailmark_truncate AFTER TRUNCATE ON %1$s
                    FOR EACH STATEMENT EXECUTE FUNCTION trailmark.capture_truncate(%3$L)' END,
                m, fn, target::text);
        END LOOP;
        PERFORM trailmark.enable_triggers(m, enabled);
    END LOOP;
    -- Version 15: the partitions as they are now (trailmark.record_dropped).
    UPDATE trailmark.tables t SET members = now_.members
    FROM (SELECT coalesce(jsonb_object_agg(p.relid::oid::text, p.parentrelid::oid::text), '{}') AS members
          FROM pg_partition_tree(target) p WHERE p.level > 0) now_
    WHERE t.relid = target AND t.members IS DISTINCT FROM now_.members;
END
$$;
REVOKE ALL ON FUNCTION trailmark.follow_partitions(oid) FROM PUBLIC;

-- Version 15: the SQL expression (text[]) naming the columns capture
-- leaves out of a covered table's rows: its excluded and stored generated
-- columns by the table's numbers, turned into names as it is evaluated,
-- and the names they were excluded under. Written into each capture
-- function (below), and evaluated for rows that enter the table by
-- ATTACH PARTITION or held by a table made covered (trailmark.record_entered):
-- the one rule.
CREATE OR REPLACE FUNCTION trailmark.excluded_expression(target oid) RETURNS text
LANGUAGE sql STABLE AS $$
    SELECT CASE WHEN cardinality(l.left_out) = 0 THEN '''{}''::text[]'
                ELSE format('ARRAY(SELECT attname::text FROM pg_attribute WHERE attrelid = %s AND attnum = ANY (%L::int2[]))',
                            $1, l.left_out::text) END
        || CASE WHEN cardinality(t.exclude) > 0
                THEN ' || ARRAY[' || (SELECT string_agg(quote_literal(n), ', ') FROM unnest(t.exclude) n) || ']::text[]'
                ELSE '' END
    FROM trailmark.tables t
    CROSS JOIN LATERAL (SELECT t.exclude_attnums || trailmark.generated_attnums($1) AS left_out) l
    WHERE t.relid = $1
$$;

-- Version 13 (trigger mode): makes a covered table's capture function
-- (trailmark.capture_<table oid>) from its options in trailmark.tables
-- and records the generated columns it leaves out. Made here, not by the
-- CLI, so that the event trigger below can make it too (a table made in a
-- schema covered whole, one dropped and made again, a generated column
-- added, version 14: its key changed). Version 14: the function is the
-- triggers' on each partition of the table too (trailmark.attach_capture
-- below), and writes their rows as the table's, with the table's excluded
-- columns (by the table's numbers, turned into names: a partition's own
-- numbers may differ).
--
-- The function: one INSERT ... SELECT per statement, rows read as
-- alias.* under trailmark_ aliases (so an application column named like an
-- alias is never taken for the row), UPDATE rows paired by primary key
-- (`=` is exact on key columns, which are never null, and lets PostgreSQL
-- hash-join a bulk update) or by position when a key changed or there is
-- none (PostgreSQL fills both transition tables row by row, in step).
-- Excluded columns are named by number at each statement, so renaming one
-- never lets its values out, and by the names they were excluded under, so
-- a column dropped and added again under its name (a new number) stays out
-- too; stored generated columns are left out by number (PostgreSQL 15's
-- logical decoding never sends them: both modes capture the same columns).
-- A key column renamed after install makes the key pairing fall back to
-- position instead of failing the application's statement. It runs as its
-- owner (SECURITY DEFINER, search_path fixed): the writing role needs no
-- right in schema trailmark, and may not write the outbox itself.
-- The key and the columns are written into plain SQL: no dynamic SQL runs
-- on the application's write path.
-- Version 15: it is also the body of the row-level trailmark_replica
-- (trailmark.member_triggers), which writes one outbox row for each row a
-- logical replication worker applies or copies (its old and new values as
-- they are: no pairing), and the statement-level triggers leave a worker's
-- rows to it; a session not run as a replica never fires it.
-- (Its DROP ... IF EXISTS notices are kept from the session: the event
-- trigger runs it inside the application's own DDL.)
CREATE OR REPLACE FUNCTION trailmark.make_capture_function(target oid) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp SET client_min_messages = warning AS $attach$
DECLARE
    t record;
    generated smallint[] := trailmark.generated_attnums(target);
    excluded text := trailmark.excluded_expression(target);
    join_on text;
    by_key text := '';
    cols text := 'txid, stmt, op, schema_name, table_name, old_row, new_row, context';
BEGIN
    SELECT * INTO STRICT t FROM trailmark.tables WHERE relid = target;
    IF cardinality(t.key_columns) > 0 THEN
        join_on := (SELECT string_agg(format('trailmark_o.%1$I = trailmark_n.%1$I', c), ' AND ')
                    FROM unnest(t.key_columns) c);
        by_key := format($key$-- Pair by key in one pass; the rare statement that changed a key
        -- (fewer pairs than rows) is paired by position instead.
        BEGIN
            INSERT INTO trailmark.outbox (%1$s)
            SELECT txid_current(), trailmark_stmt, 'update', trailmark_schema, trailmark_table,
                   to_jsonb(trailmark_o.*) - trailmark_excluded, to_jsonb(trailmark_n.*) - trailmark_excluded, trailmark_ctx
            FROM trailmark_old trailmark_o JOIN trailmark_new trailmark_n ON %2$s;
            GET DIAGNOSTICS trailmark_matched = ROW_COUNT;
        EXCEPTION WHEN undefined_column THEN
            trailmark_matched := -1; -- a key column was renamed since install: pair by position
        END;
        IF trailmark_matched = trailmark_total THEN
            PERFORM pg_notify('trailmark_outbox', '');
            RETURN NULL;
        END IF;
        IF trailmark_matched > 0 THEN
            -- (Capture's own delete: trailmark.outbox_guard lets it by.)
            PERFORM set_config('trailmark.own_outbox', 'on', true);
            DELETE FROM trailmark.outbox WHERE txid = txid_current() AND stmt = trailmark_stmt
                AND schema_name = trailmark_schema AND table_name = trailmark_table;
            PERFORM set_config('trailmark.own_outbox', '', true);
        END IF;$key$, cols, join_on);
    END IF;
    EXECUTE format($fn$CREATE OR REPLACE FUNCTION trailmark.%1$I() RETURNS trigger LANGUAGE plpgsql
    SECURITY DEFINER SET search_path = pg_catalog, pg_temp SET TimeZone = 'UTC' AS $trailmark$
DECLARE
    trailmark_excluded text[];
    trailmark_stmt integer;
    trailmark_ctx jsonb;
    trailmark_matched bigint;
    trailmark_total bigint;
    trailmark_schema text := TG_TABLE_SCHEMA;
    trailmark_table text := TG_TABLE_NAME;
BEGIN
    IF TG_LEVEL = 'ROW' THEN
        -- trailmark_replica, fired in a session run as a replica only: a
        -- logical replication worker's rows are captured here, one by one
        -- (it fires no statement-level INSERT, UPDATE or DELETE trigger
        -- when it applies a change); any other such session's rows are
        -- captured by the statement-level triggers (enabled ALWAYS). Asked
        -- before anything else is read: such a session's first statement
        -- calls this for each of its rows.
        CASE current_setting('trailmark.replication_worker', true)
            WHEN 'false' THEN
                RETURN NULL;
            WHEN 'true' THEN
                NULL;
            ELSE
                IF NOT trailmark.in_replication_worker() THEN
                    RETURN NULL;
                END IF;
        END CASE;
    ELSIF current_setting('session_replication_role') = 'replica' AND trailmark.in_replication_worker() THEN
        -- A worker's table copy fires these too: its rows are captured
        -- by trailmark_replica, once.
        RETURN NULL;
    END IF;
    trailmark_excluded := %2$s;
    trailmark_stmt := coalesce(nullif(current_setting('trailmark.stmt', true), ''), '0')::integer + 1;
    trailmark_ctx := trailmark.context();
    IF TG_RELID <> %5$s THEN
        -- A statement naming one of the table's partitions: its rows are
        -- the table's, under the name the table has now. A table detached
        -- since (its triggers left behind) is no longer captured.
        SELECT n.nspname, c.relname INTO trailmark_schema, trailmark_table
        FROM pg_partition_ancestors(TG_RELID) a
        JOIN pg_class c ON c.oid = a.relid JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE a.relid = %5$s;
        IF NOT FOUND THEN
            RETURN NULL;
        END IF;
    END IF;
    -- The statement's number within its transaction (1, 2, ...).
    PERFORM set_config('trailmark.stmt', trailmark_stmt::text, true);
    IF TG_LEVEL = 'ROW' THEN
        INSERT INTO trailmark.outbox (txid, stmt, op, schema_name, table_name, old_row, new_row, context)
        VALUES (txid_current(), trailmark_stmt, lower(TG_OP), trailmark_schema, trailmark_table,
                CASE WHEN TG_OP <> 'INSERT' THEN to_jsonb(OLD) - trailmark_excluded END,
                CASE WHEN TG_OP <> 'DELETE' THEN to_jsonb(NEW) - trailmark_excluded END, trailmark_ctx);
    ELSIF TG_OP = 'INSERT' THEN
        INSERT INTO trailmark.outbox (txid, stmt, op, schema_name, table_name, new_row, context)
        SELECT txid_current(), trailmark_stmt, 'insert', trailmark_schema, trailmark_table, to_jsonb(trailmark_n.*) - trailmark_excluded, trailmark_ctx
        FROM trailmark_new trailmark_n;
    ELSIF TG_OP = 'DELETE' THEN
        INSERT INTO trailmark.outbox (txid, stmt, op, schema_name, table_name, old_row, context)
        SELECT txid_current(), trailmark_stmt, 'delete', trailmark_schema, trailmark_table, to_jsonb(trailmark_o.*) - trailmark_excluded, trailmark_ctx
        FROM trailmark_old trailmark_o;
    ELSE
        SELECT count(*) INTO trailmark_total FROM trailmark_old;
        IF trailmark_total = 1 THEN
            -- One row each side: they are the pair (the common single-row UPDATE).
            INSERT INTO trailmark.outbox (txid, stmt, op, schema_name, table_name, old_row, new_row, context)
            SELECT txid_current(), trailmark_stmt, 'update', trailmark_schema, trailmark_table,
                   to_jsonb(trailmark_o.*) - trailmark_excluded, to_jsonb(trailmark_n.*) - trailmark_excluded, trailmark_ctx
            FROM trailmark_old trailmark_o, trailmark_new trailmark_n;
            PERFORM pg_notify('trailmark_outbox', '');
            RETURN NULL;
        END IF;
        %3$s
        INSERT INTO trailmark.outbox (%4$s)
        SELECT txid_current(), trailmark_stmt, 'update', trailmark_schema, trailmark_table, o.j - trailmark_excluded, n.j - trailmark_excluded, trailmark_ctx
        FROM (SELECT row_number() OVER () AS trailmark_rn, to_jsonb(trailmark_t.*) AS j FROM trailmark_old trailmark_t) o
        JOIN (SELECT row_number() OVER () AS trailmark_rn, to_jsonb(trailmark_t.*) AS j FROM trailmark_new trailmark_t) n
        USING (trailmark_rn);
    END IF;
    -- Wakes a listening drainer at commit (one notice per transaction).
    PERFORM pg_notify('trailmark_outbox', '');
    RETURN NULL;
END
$trailmark$$fn$, 'capture_' || target, excluded, by_key, cols, target);
    UPDATE trailmark.tables SET generated_attnums = generated WHERE relid = target;
END
$attach$;
REVOKE ALL ON FUNCTION trailmark.make_capture_function(oid) FROM PUBLIC;

-- Version 13 (trigger mode), 14 (both modes): attaches capture to a
-- covered table from its options in trailmark.tables. Trigger mode: its
-- capture function (above), and its triggers on it and each of its
-- partitions (trailmark.follow_partitions), made anew. WAL mode: no
-- function, no triggers but the TRUNCATE triggers of a partitioned
-- table's members. The one rule for install and the event trigger.
CREATE OR REPLACE FUNCTION trailmark.attach_capture(target oid) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp SET client_min_messages = warning AS $$
BEGIN
    PERFORM trailmark.drop_capture_triggers(target, true);
    IF trailmark.wal_mode() THEN
        EXECUTE format('DROP FUNCTION IF EXISTS trailmark.%I()', 'capture_' || target);
        UPDATE trailmark.tables SET generated_attnums = NULL WHERE relid = target;
    ELSE
        PERFORM trailmark.make_capture_function(target);
    END IF;
    PERFORM trailmark.follow_partitions(target);
END
$$;
REVOKE ALL ON FUNCTION trailmark.attach_capture(oid) FROM PUBLIC;

-- Version 5 (WAL mode): the columns a table with excluded columns is published with:
-- every live column but the excluded ones, by number as the triggers
-- exclude them (a renamed excluded column stays out; a column added later
-- comes in). The one rule for the publication and for `status`.
-- Version 12: nor a column named as an excluded one was (one dropped and
-- added again under that name has a new number, and was published), as the
-- triggers leave it out too; nor a stored generated column: PostgreSQL 15
-- refuses one in a column list ("cannot use generated column"), so a table
-- with excluded columns and a generated one could not be installed in WAL
-- mode (nor a column added to it published by the event trigger). Its
-- logical decoding never sends one anyway, and the triggers leave them out.
CREATE OR REPLACE FUNCTION trailmark.publishable(schema_name text, table_name text)
RETURNS TABLE (attnum smallint, attname name) LANGUAGE sql STABLE AS $$
    SELECT a.attnum, a.attname
    FROM trailmark.tables t
    JOIN pg_attribute a ON a.attrelid = to_regclass(format('%I.%I', t.schema_name, t.table_name))
    WHERE t.schema_name = $1 AND t.table_name = $2
      AND a.attnum > 0 AND NOT a.attisdropped
      AND NOT a.attnum = ANY (trailmark.generated_attnums(a.attrelid))
      AND NOT a.attnum = ANY (t.exclude_attnums) AND NOT a.attname::text = ANY (t.exclude)
$$;

-- The same, as a column list to publish with.
CREATE OR REPLACE FUNCTION trailmark.published_columns(schema_name text, table_name text)
RETURNS text LANGUAGE sql STABLE AS $$
    SELECT string_agg(quote_ident(c.attname), ', ' ORDER BY c.attnum)
    FROM trailmark.publishable($1, $2) c
$$;

-- Version 9 (WAL mode): the partitions of a covered table that hold its rows
-- (the leaves below it; none for a table that is not partitioned), each
-- quoted for SQL, with its replica identity (`pg_class.relreplident`). The
-- one rule for install (which sets their identity), status (which names
-- those unlike the table's) and the event trigger below.
CREATE OR REPLACE FUNCTION trailmark.partitions(schema_name text, table_name text)
RETURNS TABLE (relation text, identity "char") LANGUAGE sql STABLE AS $$
    SELECT format('%I.%I', n.nspname, c.relname), c.relreplident
    FROM pg_partition_tree(to_regclass(format('%I.%I', $1, $2))) p
    JOIN pg_class c ON c.oid = p.relid
    JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE p.isleaf AND p.level > 0
$$;

-- Version 10 (WAL mode): what each replica identity install records for a
-- table (`trailmark.tables.replica_identity`) is to PostgreSQL: the clause
-- of ALTER TABLE ... REPLICA IDENTITY and the code `pg_class.relreplident`
-- then holds. The one mapping for install (which sets it), status (which
-- names partitions unlike their table) and the event trigger below.
CREATE OR REPLACE FUNCTION trailmark.replica_identity(recorded text)
RETURNS TABLE (clause text, code "char") LANGUAGE sql IMMUTABLE AS $$
    SELECT v.clause, v.code::"char"
    FROM (VALUES ('key', 'DEFAULT', 'd'), ('full', 'FULL', 'f')) AS v (recorded, clause, code)
    WHERE v.recorded = $1
$$;

-- Version 13: the first primary key column capture cannot keep, if any:
-- one excluded (`exclude`: the key tells records apart, and in WAL mode
-- PostgreSQL refuses UPDATE and DELETE when a publication's column list
-- leaves out the replica identity) or one generated (left out of captured
-- rows: every record's id would be the same). The one rule for install
-- and the event trigger.
CREATE OR REPLACE FUNCTION trailmark.key_fault(relid oid, exclude text[])
RETURNS TABLE (column_name text, excluded boolean) LANGUAGE sql STABLE AS $$
    SELECT a.attname::text, a.attname::text = ANY ($2)
    FROM unnest(trailmark.key_columns($1)) WITH ORDINALITY k (name, i)
    JOIN pg_catalog.pg_attribute a ON a.attrelid = $1 AND a.attname::text = k.name
    WHERE a.attname::text = ANY ($2) OR a.attnum = ANY (trailmark.generated_attnums($1))
    ORDER BY a.attname::text = ANY ($2) DESC, k.i
    LIMIT 1
$$;

-- Version 14: an error naming the primary key column capture cannot keep
-- (trailmark.key_fault), if any. The one wording for the event trigger's
-- refusals (a table covered anew, a key changed).
CREATE OR REPLACE FUNCTION trailmark.refuse_key_fault(relid oid, exclude text[]) RETURNS void
LANGUAGE plpgsql STABLE AS $$
DECLARE
    fault record;
BEGIN
    SELECT * INTO fault FROM trailmark.key_fault(relid, exclude);
    IF FOUND THEN
        RAISE EXCEPTION 'its primary key column % is %, so its records could not be told apart',
            fault.column_name, CASE WHEN fault.excluded THEN 'excluded' ELSE 'generated' END;
    END IF;
END
$$;

-- Version 13: the captured columns of a table (not in `exclude`) whose
-- names say they may hold a secret (a password, a token, a key): a word of
-- the name (split at what is not a letter or a digit, and at a capital
-- after a small letter)
-- is password, passwd, passphrase, pwd, secret, token, salt, otp or
-- credential(s), or two words are api, private, access or secret and key.
-- Install warns of each for the tables it is given, and the event trigger
-- for a table it covers. The one rule.
CREATE OR REPLACE FUNCTION trailmark.secret_like(relid oid, exclude text[]) RETURNS text[]
LANGUAGE sql STABLE AS $$
    SELECT ARRAY(
        SELECT a.attname::text FROM pg_catalog.pg_attribute a
        WHERE a.attrelid = $1 AND a.attnum > 0 AND NOT a.attisdropped
          AND NOT a.attname::text = ANY ($2)
          AND regexp_replace(lower(regexp_replace(a.attname, '([a-z0-9])([A-Z])', '\1_\2', 'g')),
                             '[^a-z0-9]+', '_', 'g')
              ~ '(^|_)(password|passwd|passphrase|pwd|secret|token|salt|otp|credentials?|(api|private|access|secret)_?key)(_|$)'
        ORDER BY a.attnum)
$$;

-- Version 13 (WAL mode): a covered table as a member of the publication:
-- its name, with the column list trailmark.published_columns gives when it
-- has excluded columns (NULL when no column is left). The one rule for
-- install and the event trigger. Version 16: ONLY the table. Without it
-- PostgreSQL adds the table's inheritance children (CREATE TABLE ...
-- INHERITS) as members too, with their own identity (the key, or none):
-- the application's UPDATE of the table failed at once for a child without
-- a key ("cannot update table ... because it does not have a replica
-- identity and publishes updates"), and a child's changes came under its
-- own name though it was not covered. (A partitioned table's partitions
-- are its members either way: publish_via_partition_root.) Children not
-- covered are named by trailmark.uncovered_children below.
CREATE OR REPLACE FUNCTION trailmark.publication_member(schema_name text, table_name text)
RETURNS text LANGUAGE sql STABLE AS $$
    SELECT 'ONLY ' || format('%I.%I', $1, $2)
           || CASE WHEN cardinality(t.exclude) = 0 THEN ''
                   ELSE ' (' || trailmark.published_columns($1, $2) || ')' END
    FROM trailmark.tables t WHERE t.schema_name = $1 AND t.table_name = $2
$$;

-- Version 16: a covered table's inheritance children (CREATE TABLE ...
-- INHERITS, ALTER TABLE ... INHERIT; at any depth; not partitions) that are
-- not covered themselves. Their rows show in the table's reads, but a
-- statement naming a child fires no trigger of the table's, and WAL mode
-- publishes the table ONLY: their changes are not captured, but in trigger
-- mode for a statement naming the table (its transition tables hold the
-- children's rows). The one rule for install's warning and status.
CREATE OR REPLACE FUNCTION trailmark.uncovered_children(relid oid) RETURNS SETOF regclass
LANGUAGE sql STABLE AS $$
    WITH RECURSIVE below (child) AS (
        SELECT i.inhrelid FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
        WHERE i.inhparent = $1 AND NOT c.relispartition
        UNION
        SELECT i.inhrelid FROM pg_inherits i JOIN below b ON i.inhparent = b.child
    )
    SELECT b.child::regclass FROM below b
    WHERE NOT EXISTS (SELECT FROM trailmark.tables t WHERE t.relid = b.child)
    ORDER BY b.child::regclass::text
$$;

-- Version 14: records the primary key a covered table has now (one added,
-- dropped, or made of other columns by the application's migration: ALTER
-- TABLE ... ADD PRIMARY KEY, DROP CONSTRAINT), by which the drainer names
-- its records and, in trigger mode, its capture function (made again)
-- pairs an UPDATE's rows; before, until install ran again, every record
-- was named by the old key's columns (null once they were dropped) and
-- status named the table. Refused, an error naming why (the event trigger
-- turns it into a warning; status names the table), when capture could
-- not keep the key (trailmark.key_fault). In WAL mode a table left with no
-- key whose replica identity is its key logs nothing to tell its rows
-- apart, and PostgreSQL refuses its UPDATE and DELETE while it is
-- published: a warning says so.
CREATE OR REPLACE FUNCTION trailmark.follow_key(target oid) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp SET client_min_messages = warning AS $$
DECLARE
    t record;
BEGIN
    SELECT * INTO STRICT t FROM trailmark.tables WHERE relid = target;
    PERFORM trailmark.refuse_key_fault(target, t.exclude);
    UPDATE trailmark.tables SET key_columns = trailmark.key_columns(target)
    WHERE relid = target RETURNING * INTO t;
    IF NOT trailmark.wal_mode() THEN
        PERFORM trailmark.make_capture_function(target);
    ELSIF cardinality(t.key_columns) = 0 AND t.replica_identity = 'key' THEN
        RAISE WARNING 'trailmark: %.% has no primary key now and its replica identity is its key: PostgreSQL refuses its UPDATE and DELETE while it is published; give it a primary key, or install again with --replica-identity %.%=full',
            t.schema_name, t.table_name, t.schema_name, t.table_name;
    END IF;
END
$$;
REVOKE ALL ON FUNCTION trailmark.follow_key(oid) FROM PUBLIC;

-- Version 13: covers a table the event trigger below finds made, in either
-- mode, in the transaction that made it: one made in (or moved into) a
-- schema covered whole (install --all), with no options, as the next
-- install would cover it; or one made (or renamed) under the name of a
-- covered table that was dropped, with that table's options (its excluded
-- columns by the names they were excluded under, each of which it must
-- have). Refused (an error naming why, which the event trigger turns into
-- a warning; status names the table until install runs again) when its
-- key could not be kept (trailmark.key_fault).
CREATE OR REPLACE FUNCTION trailmark.cover_made(target oid, command text) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp SET client_min_messages = warning AS $$
DECLARE
    c record;
    t record;
    wal boolean := trailmark.wal_mode();
    missing text;
    fresh boolean := false;
    secrets text[];
BEGIN
    SELECT n.nspname::text AS schema_name, k.relname::text AS table_name INTO STRICT c
    FROM pg_class k JOIN pg_namespace n ON n.oid = k.relnamespace WHERE k.oid = target;
    SELECT * INTO t FROM trailmark.tables
    WHERE schema_name = c.schema_name AND table_name = c.table_name;
    IF NOT FOUND THEN
        fresh := true;
        INSERT INTO trailmark.tables (schema_name, table_name, key_columns, replica_identity, relid)
        VALUES (c.schema_name, c.table_name, trailmark.key_columns(target),
                CASE WHEN wal THEN 'full' END, target)
        RETURNING * INTO t;
    ELSE
        SELECT e.name INTO missing FROM unnest(t.exclude) e (name)
        WHERE NOT EXISTS (SELECT FROM pg_attribute a WHERE a.attrelid = target
                          AND a.attname::text = e.name AND a.attnum > 0 AND NOT a.attisdropped)
        LIMIT 1;
        IF FOUND THEN
            RAISE EXCEPTION 'it has no column % (excluded from the table dropped before it)', missing;
        END IF;
        IF t.relid IS NOT NULL THEN
            EXECUTE format('DROP FUNCTION IF EXISTS trailmark.%I()', 'capture_' || t.relid);
        END IF;
        UPDATE trailmark.tables
        SET relid = target, key_columns = trailmark.key_columns(target), generated_attnums = NULL,
            soft_delete_attnum = (SELECT a.attnum FROM pg_attribute a WHERE a.attrelid = target
                                  AND a.attname::text = t.soft_delete AND NOT a.attisdropped),
            name_attnum = (SELECT a.attnum FROM pg_attribute a WHERE a.attrelid = target
                           AND a.attname::text = t.name_column AND NOT a.attisdropped),
            exclude_attnums = ARRAY(
                SELECT a.attnum FROM unnest(t.exclude) WITH ORDINALITY e (name, i)
                JOIN pg_attribute a ON a.attrelid = target AND a.attname::text = e.name
                                   AND a.attnum > 0 AND NOT a.attisdropped
                ORDER BY e.i)
        WHERE schema_name = c.schema_name AND table_name = c.table_name
        RETURNING * INTO t;
    END IF;
    PERFORM trailmark.refuse_key_fault(target, t.exclude);
    -- Covered with no options (a schema covered whole): say which of its
    -- columns may hold secrets, as install does.
    secrets := CASE WHEN fresh THEN trailmark.secret_like(target, '{}') END;
    IF cardinality(secrets) > 0 THEN
        RAISE WARNING 'trailmark: %.% is captured (made in a schema covered whole) with columns whose names say they may hold secrets: %; if they do, exclude them (trailmark capture pg install --exclude)',
            c.schema_name, c.table_name, array_to_string(secrets, ', ');
    END IF;
    PERFORM trailmark.attach_capture(target);
    IF wal THEN
        EXECUTE format('ALTER TABLE %I.%I REPLICA IDENTITY %s', c.schema_name, c.table_name,
                       (SELECT clause FROM trailmark.replica_identity(coalesce(t.replica_identity, 'full'))));
        -- (Its ALTER TABLE above ran the event trigger, which may have put
        -- it in already.)
        IF t.paused_at IS NULL AND NOT EXISTS (
            SELECT FROM pg_publication_tables p WHERE p.pubname = 'trailmark'
            AND p.schemaname = c.schema_name AND p.tablename = c.table_name)
        THEN
            PERFORM trailmark.alter_publication('ADD TABLE '
                || trailmark.publication_member(c.schema_name, c.table_name));
        END IF;
    END IF;
    -- Version 15: the rows it holds are the covered table's from now on:
    -- creates (trailmark.record_entered; a table made empty holds none).
    IF t.paused_at IS NULL THEN
        PERFORM trailmark.record_entered(target, m, 'held when it came to be covered, by ' || command)
        FROM trailmark.capture_members(target) m JOIN pg_class k ON k.oid = m
        WHERE k.relkind = 'r';
    END IF;
END
$$;
DROP FUNCTION IF EXISTS trailmark.cover_made(oid);
REVOKE ALL ON FUNCTION trailmark.cover_made(oid, text) FROM PUBLIC;

-- WAL mode: a publication's column list is fixed, so a column added to a
-- table with excluded columns would not be captured. After each ALTER TABLE
-- of such a published table its list is set again, in the same transaction.
-- Version 16 (WAL mode): a covered table published with a column list
-- (it has excluded columns) could not have a captured column's type
-- changed at all (ALTER TABLE ... ALTER COLUMN ... TYPE: PostgreSQL 15
-- refuses it, "cannot alter type of a column used by a publication WHERE
-- clause", the list naming the column; a framework's migration widening a
-- varchar failed), nor one dropped without CASCADE. At the start of an
-- ALTER TABLE (event trigger trailmark_release, ddl_command_start, which
-- is told no table) each such table the command's text names (the word,
-- any case: a false match costs a needless step, never a change) is taken
-- out of the publication, as capture's own DDL; the same command's end
-- (trailmark.republish) puts it back with its list made anew, in the same
-- transaction, before any change can be written to it; a command that
-- fails takes both back with it. Logical decoding reads each change with
-- the catalog as of that change, so none of any transaction's changes is
-- decoded without the table. Left alone while the end's event trigger
-- would not fire (disabled, or enabled otherwise than this one).
CREATE OR REPLACE FUNCTION trailmark.release_column_lists() RETURNS event_trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    r record;
    query text;
    released oid[] := '{}';
BEGIN
    IF current_setting('trailmark.republishing', true) = 'on' THEN
        RETURN;
    END IF;
    query := lower(current_query());
    FOR r IN
        SELECT t.relid, t.schema_name, t.table_name
        FROM pg_publication p
        JOIN pg_publication_rel pr ON pr.prpubid = p.oid
        JOIN trailmark.tables t ON t.relid = pr.prrelid
        WHERE p.pubname = 'trailmark' AND pr.prattrs IS NOT NULL AND t.paused_at IS NULL
          -- (the substring first: cheap, and most commands name none)
          AND strpos(query, lower(t.table_name)) > 0
          AND query ~ ('(^|[^[:alnum:]_])'
                       || regexp_replace(lower(t.table_name), '([^[:alnum:]_])', '\\\1', 'g')
                       || '([^[:alnum:]_]|$)')
        ORDER BY t.relid
    LOOP
        IF cardinality(released) = 0 AND NOT EXISTS (
            SELECT FROM pg_event_trigger e JOIN pg_event_trigger s ON s.evtenabled = e.evtenabled
            WHERE e.evtname = 'trailmark_republish' AND s.evtname = 'trailmark_release'
              AND e.evtenabled <> 'D') THEN
            RETURN;
        END IF;
        PERFORM trailmark.alter_publication(format('DROP TABLE %I.%I', r.schema_name, r.table_name));
        released := released || r.relid;
    END LOOP;
    IF cardinality(released) > 0 THEN
        PERFORM set_config('trailmark.released', array_to_string(released, ','), true);
    END IF;
END
$$;

-- Version 16 (WAL mode): what is wrong with publication trailmark for
-- capture, NULL when nothing: it must exist under that name, publish
-- inserts, updates, deletes and truncates, and publish a partitioned
-- table's changes as the table's (publish_via_partition_root). Changed by
-- hand (ALTER PUBLICATION trailmark SET (publish = 'insert'), RENAME TO),
-- the covered tables' other changes went uncaptured with no record, or
-- (renamed) the slot could decode nothing more. The one rule for the
-- event trigger, which refuses such a command, and status.
CREATE OR REPLACE FUNCTION trailmark.publication_fault() RETURNS text
LANGUAGE sql STABLE AS $$
    SELECT CASE
        WHEN p.oid IS NULL THEN 'no longer exists by that name'
        WHEN NOT (p.pubinsert AND p.pubupdate AND p.pubdelete AND p.pubtruncate) THEN
            'no longer publishes '
            || concat_ws(', ', CASE WHEN NOT p.pubinsert THEN 'inserts' END,
                               CASE WHEN NOT p.pubupdate THEN 'updates' END,
                               CASE WHEN NOT p.pubdelete THEN 'deletes' END,
                               CASE WHEN NOT p.pubtruncate THEN 'truncates' END)
        WHEN NOT p.pubviaroot THEN
            'no longer publishes a partitioned table''s changes as its own (publish_via_partition_root)'
    END
    FROM (SELECT 1) one LEFT JOIN pg_publication p ON p.pubname = 'trailmark'
$$;

-- Version 9: a partition made (CREATE TABLE ... PARTITION OF) or attached
-- (ALTER TABLE ... ATTACH PARTITION) under a covered table would keep
-- PostgreSQL's default replica identity, and its updates carry no old
-- values: after each such command, every partition of the table whose
-- identity is not the one install gave the table gets it, in the same
-- transaction, before a row can land in it.
-- Version 12 (both modes): a covered table renamed (ALTER TABLE ... RENAME
-- TO, ... SET SCHEMA) has its options recorded under its new name, in the
-- same transaction (trailmark.follow_renames above).
-- Version 13 (both modes): a table made in (or moved into) a schema covered
-- whole, or made (or renamed) under the name of a covered table that was
-- dropped, is covered in the same transaction (trailmark.cover_made above);
-- in trigger mode a covered table whose generated columns changed gets its
-- capture function made again (trailmark.make_capture_function above).
-- It never fails the application's DDL: a failure is a WARNING naming the
-- table (then `trailmark capture pg install` sets the list or the identity).
CREATE OR REPLACE FUNCTION trailmark.republish() RETURNS event_trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    r record;
    -- The relations the command made or changed, read once (version 13:
    -- each reading builds every command's description).
    objs oid[] := ARRAY(SELECT DISTINCT d.objid FROM pg_event_trigger_ddl_commands() d
                        WHERE d.classid = 'pg_class'::regclass);
    wal boolean;
    -- Version 16: the tables this command's start took out of the
    -- publication (trailmark.release_column_lists).
    released oid[] := string_to_array(nullif(current_setting('trailmark.released', true), ''), ',')::oid[];
BEGIN
    -- Only a permanent (or unlogged, version 14) table can be covered: a
    -- command on none (a temporary table made per request, say) stops
    -- here, before reading anything else (ALTER PUBLICATION and DROP
    -- TRIGGER, below, name no table); so does one that capture's own
    -- functions run (trailmark.own_ddl).
    IF current_setting('trailmark.republishing', true) = 'on' THEN
        RETURN;
    END IF;
    -- Version 16: first, whatever the command was, the tables its start
    -- took out of the publication go back in, each with its list made
    -- anew; if one cannot, the command fails (SQLSTATE TMX03) rather than
    -- leave the table's changes uncaptured.
    IF released IS NOT NULL THEN
        PERFORM set_config('trailmark.released', '', true);
        BEGIN
            -- (A table the command renamed goes back under its new name.)
            PERFORM trailmark.follow_renames(released);
            FOR r IN
                SELECT t.schema_name, t.table_name
                FROM trailmark.tables t
                WHERE t.relid = ANY (released)
                  AND NOT EXISTS (SELECT FROM pg_publication_tables p WHERE p.pubname = 'trailmark'
                                  AND p.schemaname = t.schema_name AND p.tablename = t.table_name)
                ORDER BY t.relid
            LOOP
                PERFORM trailmark.alter_publication('ADD TABLE '
                    || trailmark.publication_member(r.schema_name, r.table_name));
            END LOOP;
        EXCEPTION WHEN OTHERS THEN
            RAISE EXCEPTION 'trailmark: % could not be put back in publication trailmark after %: %',
                (SELECT string_agg(x::regclass::text, ', ') FROM unnest(released) x), TG_TAG, SQLERRM
                USING ERRCODE = 'TMX03',
                      HINT = 'its changes would go uncaptured: the command is refused; trailmark capture pg status names what is wrong';
        END;
    END IF;
    -- Version 17: the outbox's guard dropped or switched off by hand
    -- (DROP TRIGGER, ALTER TABLE trailmark.outbox DISABLE TRIGGER, ...):
    -- refused (TMX04), as what it refuses. An ALTER TABLE of another table
    -- is not held to it (a guard lost while this event trigger was off
    -- must not stop the application's migrations; status names it).
    IF ((TG_TAG = 'ALTER TABLE' AND to_regclass('trailmark.outbox') = ANY (objs))
        OR TG_TAG IN ('DROP TRIGGER', 'ALTER TRIGGER'))
       AND trailmark.outbox_guard_fault() IS NOT NULL THEN
        RAISE EXCEPTION 'trailmark: trailmark.outbox % after this command: its captured changes not yet in the audit trail could be changed or lost with no trace',
            trailmark.outbox_guard_fault()
            USING ERRCODE = 'TMX04',
                  HINT = 'the guard is capture''s own: leave it as install made it (install puts it back); to give up undrained changes knowingly, trailmark capture pg uninstall --drop-pending';
    END IF;
    IF TG_TAG NOT IN ('ALTER PUBLICATION', 'DROP TRIGGER')
       AND NOT EXISTS (SELECT FROM pg_class c WHERE c.oid = ANY (objs) AND c.relpersistence IN ('p', 'u')) THEN
        RETURN;
    END IF;
    wal := trailmark.wal_mode();
    -- Version 14 (WAL mode): a covered table taken out of the publication
    -- by hand (ALTER PUBLICATION trailmark DROP TABLE, SET TABLE without
    -- it) is a pause on the record, with the role that did it; put back by
    -- hand, a resume (trailmark.record_switch). `capture pg pause|resume`
    -- record their own switch first, so theirs match.
    IF TG_TAG = 'ALTER PUBLICATION' THEN
        -- Version 16 (WAL mode): publication trailmark's options changed,
        -- or the publication renamed, by hand: refused (TMX02), as its drop.
        IF wal AND trailmark.publication_fault() IS NOT NULL THEN
            RAISE EXCEPTION 'trailmark: publication trailmark % after this command: capture reads the changes of the covered tables through it (WAL mode), and they would go uncaptured with no record',
                trailmark.publication_fault()
                USING ERRCODE = 'TMX02',
                      HINT = 'to stop capture on the record use trailmark capture pg pause; to remove capture, trailmark capture pg uninstall';
        END IF;
        IF wal THEN
            FOR r IN
                SELECT t.relid, t.paused_at IS NULL AS was_running
                FROM trailmark.tables t
                WHERE t.relid IS NOT NULL AND EXISTS (SELECT FROM pg_class c WHERE c.oid = t.relid)
                  AND (t.paused_at IS NULL) <> EXISTS (
                      SELECT FROM pg_publication_tables p WHERE p.pubname = 'trailmark'
                      AND p.schemaname = t.schema_name AND p.tablename = t.table_name)
                ORDER BY t.schema_name, t.table_name
            LOOP
                BEGIN
                    PERFORM trailmark.record_switch(r.relid,
                        CASE WHEN r.was_running THEN 'pause' ELSE 'resume' END,
                        CASE WHEN r.was_running
                             THEN 'taken out of publication trailmark by ALTER PUBLICATION'
                             ELSE 'put back in publication trailmark by ALTER PUBLICATION' END);
                EXCEPTION WHEN OTHERS THEN
                    RAISE WARNING 'trailmark: the publication switched by hand for %: not recorded: % (run trailmark capture pg status)',
                        r.relid::regclass, SQLERRM;
                END;
            END LOOP;
            -- A covered table published by hand with a column it excludes
            -- (ADD TABLE or SET TABLE without its column list) gets its
            -- list back at once: excluded columns never leave the
            -- database. If it cannot, the table leaves the publication
            -- (a pause on the record) rather than publish them.
            FOR r IN
                SELECT t.relid, t.schema_name, t.table_name
                FROM trailmark.tables t
                JOIN pg_publication_tables p ON p.pubname = 'trailmark'
                 AND p.schemaname = t.schema_name AND p.tablename = t.table_name
                WHERE cardinality(t.exclude) > 0
                  AND EXISTS (SELECT FROM unnest(p.attnames) a (name)
                              WHERE NOT a.name = ANY (ARRAY(SELECT c.attname FROM trailmark.publishable(t.schema_name, t.table_name) c)))
                ORDER BY t.schema_name, t.table_name
            LOOP
                BEGIN
                    PERFORM trailmark.alter_publication(format('DROP TABLE %I.%I', r.schema_name, r.table_name));
                    PERFORM trailmark.alter_publication('ADD TABLE '
                        || trailmark.publication_member(r.schema_name, r.table_name));
                EXCEPTION WHEN OTHERS THEN
                    BEGIN
                        PERFORM trailmark.alter_publication(format('DROP TABLE %I.%I', r.schema_name, r.table_name));
                        PERFORM trailmark.record_switch(r.relid, 'pause',
                            'published by hand with excluded columns, and its column list could not be set: ' || SQLERRM);
                    EXCEPTION WHEN OTHERS THEN
                        -- Neither: the ALTER PUBLICATION fails (TMX01
                        -- passes the handler at the end).
                        RAISE EXCEPTION 'trailmark: %.% would be published with columns it excludes: %',
                            r.schema_name, r.table_name, SQLERRM USING ERRCODE = 'TMX01';
                    END;
                END;
            END LOOP;
        END IF;
        RETURN;
    END IF;
    -- Version 14: capture triggers dropped by hand (DROP TRIGGER
    -- trailmark_insert ON ...). Trigger mode: a pause on the record, as
    -- for triggers disabled (below); `capture pg resume` makes them again.
    -- WAL mode (a partitioned table's TRUNCATE triggers, capture's own
    -- workings): made again at once.
    IF TG_TAG = 'DROP TRIGGER' THEN
        FOR r IN
            SELECT t.relid, t.paused_at IS NULL AS running,
                   (SELECT string_agg(u::text, ', ') FROM trailmark.uncaptured_members(t.relid) u) AS missing
            FROM trailmark.tables t
            WHERE t.relid IS NOT NULL AND EXISTS (SELECT FROM pg_class c WHERE c.oid = t.relid)
            ORDER BY t.schema_name, t.table_name
        LOOP
            CONTINUE WHEN r.missing IS NULL;
            BEGIN
                IF wal THEN
                    PERFORM trailmark.follow_partitions(r.relid);
                ELSIF r.running THEN
                    PERFORM trailmark.record_switch(r.relid, 'pause',
                        'capture triggers dropped by DROP TRIGGER (on ' || r.missing || ')');
                END IF;
            EXCEPTION WHEN OTHERS THEN
                RAISE WARNING 'trailmark: capture triggers dropped by hand on %: not recorded: % (run trailmark capture pg status)',
                    r.relid::regclass, SQLERRM;
            END;
        END LOOP;
        RETURN;
    END IF;
    IF TG_TAG = 'ALTER TABLE' THEN
        -- Version 12: first, a covered table renamed keeps its options
        -- (and its column list below finds it under its new name).
        BEGIN
            PERFORM trailmark.follow_renames(objs);
        EXCEPTION WHEN OTHERS THEN
            RAISE WARNING 'trailmark: the options of a covered table renamed were not moved to its new name: % (run trailmark capture pg install)', SQLERRM;
        END;
        -- Version 13: and a renamed soft-delete or name column is followed.
        BEGIN
            PERFORM trailmark.follow_option_columns(objs);
        EXCEPTION WHEN OTHERS THEN
            RAISE WARNING 'trailmark: a renamed soft-delete or name column was not followed: % (run trailmark capture pg install)', SQLERRM;
        END;
        -- Version 14 (WAL mode): a covered table the command took out of
        -- the publication is put back, its column list made anew: DROP
        -- COLUMN ... CASCADE of a column its list names (PostgreSQL
        -- refuses the drop without CASCADE, and with it drops the table's
        -- place in the publication, saying only NOTICE). In the command's
        -- own transaction: none of the table's later changes is missed.
        FOR r IN
            SELECT DISTINCT t.schema_name, t.table_name
            FROM unnest(objs) d (objid)
            JOIN trailmark.tables t ON t.relid = d.objid
            WHERE t.paused_at IS NULL
              AND wal
              AND NOT EXISTS (SELECT FROM pg_publication_tables p WHERE p.pubname = 'trailmark'
                              AND p.schemaname = t.schema_name AND p.tablename = t.table_name)
        LOOP
            BEGIN
                PERFORM trailmark.alter_publication('ADD TABLE '
                    || trailmark.publication_member(r.schema_name, r.table_name));
            EXCEPTION WHEN OTHERS THEN
                RAISE WARNING 'trailmark: %.% left the publication and was not put back: % (run trailmark capture pg install)',
                    r.schema_name, r.table_name, SQLERRM;
            END;
        END LOOP;
        -- Version 14: and a changed primary key (trailmark.follow_key).
        FOR r IN
            SELECT DISTINCT t.schema_name, t.table_name, t.relid
            FROM unnest(objs) d (objid)
            JOIN trailmark.tables t ON t.relid = d.objid
            WHERE t.key_columns <> trailmark.key_columns(t.relid)
        LOOP
            BEGIN
                PERFORM trailmark.follow_key(r.relid);
            EXCEPTION WHEN OTHERS THEN
                RAISE WARNING 'trailmark: the new primary key of %.% is not followed: % (run trailmark capture pg install)',
                    r.schema_name, r.table_name, SQLERRM;
            END;
        END LOOP;
        FOR r IN
            SELECT DISTINCT t.schema_name, t.table_name
            FROM unnest(objs) c (objid)
            JOIN trailmark.tables t
              ON c.objid = to_regclass(format('%I.%I', t.schema_name, t.table_name))
            JOIN pg_publication_tables p
              ON p.pubname = 'trailmark' AND p.schemaname = t.schema_name AND p.tablename = t.table_name
            WHERE cardinality(t.exclude_attnums) > 0
              -- (one put back above has its list made anew)
              AND t.relid <> ALL (coalesce(released, '{}'))
        LOOP
            BEGIN
                PERFORM trailmark.alter_publication(format('DROP TABLE %I.%I', r.schema_name, r.table_name));
                PERFORM trailmark.alter_publication('ADD TABLE '
                    || trailmark.publication_member(r.schema_name, r.table_name));
            EXCEPTION WHEN OTHERS THEN
                RAISE WARNING 'trailmark: the capture column list of %.% was not updated: % (run trailmark capture pg install)',
                    r.schema_name, r.table_name, SQLERRM;
            END;
        END LOOP;
    END IF;
    -- Version 13 (both modes): a table made in a schema covered whole
    -- (install --all), or moved into one, is covered at once, in the same
    -- transaction, as the next install would cover it (no options); one
    -- made or renamed under the name of a covered table that was dropped
    -- is covered with that table's options (trailmark.cover_made). Its
    -- first rows are captured. (Version 12 did the first in WAL mode only.)
    IF TG_TAG IN ('CREATE TABLE', 'CREATE TABLE AS', 'SELECT INTO', 'ALTER TABLE') THEN
        FOR r IN
            SELECT DISTINCT n.nspname::text AS schema_name, c.relname::text AS table_name, c.oid AS relid
            FROM unnest(objs) d (objid)
            JOIN pg_class c ON c.oid = d.objid
            JOIN pg_namespace n ON n.oid = c.relnamespace
            LEFT JOIN trailmark.tables t
              ON t.schema_name = n.nspname::text AND t.table_name = c.relname::text
            WHERE c.relkind IN ('r', 'p')
              AND NOT c.relispartition
              -- Version 14: unlogged too in trigger mode (install --all
              -- covers them); WAL mode cannot capture one (no WAL is
              -- written for its changes), and covers it once it is made
              -- logged (ALTER TABLE ... SET LOGGED).
              AND (c.relpersistence = 'p'
                   OR (c.relpersistence = 'u'
                       AND NOT wal))
              AND CASE WHEN t.schema_name IS NULL
                       THEN EXISTS (SELECT FROM trailmark.schemas s WHERE s.schema_name = n.nspname::text)
                       ELSE t.relid IS NOT NULL AND t.relid <> c.oid
                            AND NOT EXISTS (SELECT FROM pg_class o WHERE o.oid = t.relid) END
        LOOP
            BEGIN
                PERFORM trailmark.cover_made(r.relid, TG_TAG);
            EXCEPTION WHEN OTHERS THEN
                RAISE WARNING 'trailmark: %.% is not captured: % (run trailmark capture pg install)',
                    r.schema_name, r.table_name, SQLERRM;
            END;
        END LOOP;
    END IF;
    -- Version 14 (trigger mode): capture triggers switched by hand (ALTER
    -- TABLE ... DISABLE TRIGGER, on the table or a partition of it: a bulk
    -- load skipping its triggers, or someone skipping the audit) are a
    -- pause on the record, with the role that did it and which triggers;
    -- enabled again (ENABLE TRIGGER), a resume, and ALWAYS again. Before,
    -- only status named them.
    IF TG_TAG = 'ALTER TABLE'
       AND NOT wal THEN
        FOR r IN
            SELECT DISTINCT t.relid, t.paused_at IS NOT NULL AS paused,
                   (SELECT string_agg(g.tgrelid::regclass::text || ' ' || g.tgname, ', '
                                      ORDER BY g.tgrelid::regclass::text, g.tgname)
                    FROM pg_trigger g
                    WHERE g.tgrelid IN (SELECT trailmark.capture_members(t.relid))
                      AND g.tgname = ANY (trailmark.trigger_names())
                      AND g.tgenabled = 'D') AS disabled
            FROM unnest(objs) d (objid)
            LEFT JOIN LATERAL pg_partition_ancestors(d.objid) a ON true
            JOIN trailmark.tables t ON t.relid = coalesce(a.relid, d.objid)
        LOOP
            BEGIN
                IF r.disabled IS NOT NULL AND NOT r.paused THEN
                    PERFORM trailmark.record_switch(r.relid, 'pause',
                        'capture triggers disabled by ALTER TABLE ... DISABLE TRIGGER (' || r.disabled || ')');
                ELSIF r.disabled IS NULL AND r.paused
                      AND NOT EXISTS (SELECT FROM trailmark.uncaptured_members(r.relid)) THEN
                    PERFORM trailmark.record_switch(r.relid, 'resume',
                        'capture triggers enabled again by ALTER TABLE ... ENABLE TRIGGER');
                    PERFORM trailmark.enable_capture(r.relid, true);
                END IF;
            EXCEPTION WHEN OTHERS THEN
                RAISE WARNING 'trailmark: capture triggers switched by hand on %: not recorded: % (run trailmark capture pg status)',
                    r.relid::regclass, SQLERRM;
            END;
        END LOOP;
    END IF;
    -- Version 14 (WAL mode): a partitioned table's TRUNCATE triggers
    -- disabled by hand, or enabled so that replica sessions skip them, are
    -- capture's own workings: enabled ALWAYS again at once.
    IF TG_TAG = 'ALTER TABLE'
       AND wal THEN
        FOR r IN
            SELECT DISTINCT g.tgrelid
            FROM unnest(objs) d (objid)
            JOIN pg_trigger g ON g.tgrelid = d.objid
            WHERE g.tgname = 'trailmark_truncate' AND g.tgenabled <> 'A'
        LOOP
            BEGIN
                PERFORM trailmark.enable_triggers(r.tgrelid, true);
            EXCEPTION WHEN OTHERS THEN
                RAISE WARNING 'trailmark: the capture TRUNCATE trigger of % was not enabled again: % (run trailmark capture pg install)',
                    r.tgrelid::regclass, SQLERRM;
            END;
        END LOOP;
    END IF;
    -- Version 13 (trigger mode): a covered table whose stored generated
    -- columns changed (one added, say) gets its capture function made
    -- again, which leaves them out as WAL mode does.
    IF TG_TAG = 'ALTER TABLE'
       AND NOT wal THEN
        FOR r IN
            SELECT DISTINCT t.schema_name, t.table_name, t.relid
            FROM unnest(objs) d (objid)
            JOIN trailmark.tables t ON t.relid = d.objid
            -- (NULL: WAL mode's tables, or one an install is switching.)
            WHERE t.generated_attnums <> trailmark.generated_attnums(t.relid)
        LOOP
            BEGIN
                PERFORM trailmark.make_capture_function(r.relid);
            EXCEPTION WHEN OTHERS THEN
                RAISE WARNING 'trailmark: the capture function of %.% was not made again for its generated columns: % (run trailmark capture pg install)',
                    r.schema_name, r.table_name, SQLERRM;
            END;
        END LOOP;
    END IF;
    -- Only a command on a partition or a partitioned table can make one.
    IF EXISTS (
        SELECT FROM pg_class c WHERE c.oid = ANY (objs) AND (c.relispartition OR c.relkind = 'p'))
    THEN
        -- Version 14 (both modes): a partition made or attached under a
        -- covered table gets its capture triggers, and one detached loses
        -- them (trailmark.follow_partitions). Version 15: a partition
        -- detached is recorded first, as a truncate naming it (its rows
        -- left the table), with the role that did it, unless capture of
        -- the table is paused.
        FOR r IN
            SELECT DISTINCT t.schema_name, t.table_name, t.relid, t.paused_at IS NULL AS running,
                   t.members
            FROM unnest(objs) d (objid)
            CROSS JOIN LATERAL pg_partition_ancestors(d.objid) a
            JOIN trailmark.tables t ON t.relid = a.relid
        LOOP
            BEGIN
                PERFORM trailmark.record_whole('truncate', r.schema_name, r.table_name, trailmark.partition_name(n.nspname, c.relname),
                                                  'partition detached by ALTER TABLE ... DETACH PARTITION')
                FROM trailmark.detached_members(r.relid) d
                JOIN pg_class c ON c.oid = d JOIN pg_namespace n ON n.oid = c.relnamespace
                WHERE r.running;
                -- Version 15: and the rows of a partition attached (one
                -- made by CREATE TABLE ... PARTITION OF holds none).
                PERFORM trailmark.record_entered(r.relid, m, format(
                    'attached with partition %s by ALTER TABLE ... ATTACH PARTITION', trailmark.partition_name(n.nspname, c.relname)))
                FROM trailmark.capture_members(r.relid) m
                JOIN pg_class c ON c.oid = m JOIN pg_namespace n ON n.oid = c.relnamespace
                WHERE r.running AND r.members IS NOT NULL AND m <> r.relid AND c.relkind = 'r'
                  AND NOT r.members ? m::text;
                PERFORM trailmark.follow_partitions(r.relid);
            EXCEPTION WHEN OTHERS THEN
                RAISE WARNING 'trailmark: the capture triggers of the partitions of %.% were not made: % (run trailmark capture pg install)',
                    r.schema_name, r.table_name, SQLERRM;
            END;
        END LOOP;
        FOR r IN
            SELECT p.relation AS partition,
                   format('%I.%I', t.schema_name, t.table_name) AS covered,
                   i.clause AS identity
            FROM trailmark.tables t
            CROSS JOIN LATERAL trailmark.replica_identity(t.replica_identity) i
            CROSS JOIN LATERAL trailmark.partitions(t.schema_name, t.table_name) p
            WHERE wal
              AND p.identity <> i.code
              AND EXISTS (
                  SELECT FROM pg_partition_tree(to_regclass(format('%I.%I', t.schema_name, t.table_name))) q
                  WHERE q.relid = ANY (objs))
            ORDER BY 1
        LOOP
            BEGIN
                EXECUTE format('ALTER TABLE %s REPLICA IDENTITY %s', r.partition, r.identity);
            EXCEPTION WHEN OTHERS THEN
                RAISE WARNING 'trailmark: the replica identity of partition % of % was not set: % (run trailmark capture pg install)',
                    r.partition, r.covered, SQLERRM;
            END;
        END LOOP;
    END IF;
EXCEPTION
    WHEN SQLSTATE 'TMX01' OR SQLSTATE 'TMX02' OR SQLSTATE 'TMX03' OR SQLSTATE 'TMX04' THEN
        RAISE;
    WHEN OTHERS THEN
        RAISE WARNING 'trailmark: capture column lists or partition identities were not updated: % (run trailmark capture pg install)', SQLERRM;
END
$$;

-- Version 15: rows that leave a covered table when a table is dropped (DROP
-- TABLE, DROP SCHEMA ... CASCADE, DROP OWNED): the covered table itself, or
-- a partition of it, are recorded as a truncate (the partition named), in
-- the dropping transaction, with the role that did it and the command as
-- the reason, unless capture of the table is paused. Before, a dropped
-- table's rows left without a trace in the trail. When the drop is seen
-- (sql_drop) a dropped partition's place is gone from the catalog: it is
-- found in trailmark.tables.members (follow_partitions keeps it); a
-- partition dropped with its parent, or with the covered table, is the
-- parent's or the table's drop, recorded once. A command that drops no
-- permanent table (a temporary one) is left at once.
CREATE OR REPLACE FUNCTION trailmark.record_dropped() RETURNS event_trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    r record;
    -- The dropped tables, read once: oids and schema.name, in step.
    gone oid[];
    names text[];
    permanent boolean;
    publication boolean;
BEGIN
    IF current_setting('trailmark.republishing', true) = 'on' THEN
        RETURN; -- capture's own (uninstall, a switch to trigger mode)
    END IF;
    SELECT coalesce(array_agg(d.objid) FILTER (WHERE d.object_type = 'table'), '{}'),
           coalesce(array_agg(trailmark.partition_name(d.schema_name, d.object_name)) FILTER (WHERE d.object_type = 'table'), '{}'),
           coalesce(bool_or(d.object_type = 'table' AND NOT d.is_temporary), false),
           coalesce(bool_or(d.object_type = 'publication' AND d.object_identity = 'trailmark'), false)
    INTO gone, names, permanent, publication
    FROM pg_event_trigger_dropped_objects() d
    WHERE d.objsubid = 0;
    -- WAL mode: publication trailmark dropped by hand (DROP PUBLICATION,
    -- DROP OWNED) would stop capture of every covered table, with no record
    -- in the trail and a slot that can no longer decode what follows: the
    -- command is refused (SQLSTATE TMX02).
    IF publication AND trailmark.wal_mode() THEN
        RAISE EXCEPTION 'trailmark: publication trailmark is how capture reads the changes of the covered tables (WAL mode): dropped, their changes would go uncaptured with no record'
            USING ERRCODE = 'TMX02',
                  HINT = 'to stop capture on the record use trailmark capture pg pause; to remove capture, trailmark capture pg uninstall';
    END IF;
    IF NOT permanent THEN
        RETURN;
    END IF;
    FOR r IN
        SELECT t.schema_name, t.table_name, NULL::text AS part, t.paused_at IS NULL AS running
        FROM trailmark.tables t WHERE t.relid = ANY (gone)
        UNION ALL
        SELECT t.schema_name, t.table_name, d.name, t.paused_at IS NULL
        FROM trailmark.tables t
        CROSS JOIN LATERAL jsonb_each_text(coalesce(t.members, '{}')) m (member, parent)
        JOIN unnest(gone, names) d (objid, name) ON d.objid = m.member::oid
        WHERE t.relid <> ALL (gone) AND m.parent::oid <> ALL (gone)
        ORDER BY 1, 2, 3 NULLS FIRST
    LOOP
        CONTINUE WHEN NOT r.running;
        BEGIN
            PERFORM trailmark.record_whole('truncate', r.schema_name, r.table_name, r.part,
                CASE WHEN r.part IS NULL THEN 'table' ELSE 'partition' END || ' dropped by ' || TG_TAG);
        EXCEPTION WHEN OTHERS THEN
            RAISE WARNING 'trailmark: %.% dropped: not recorded: %', r.schema_name, r.table_name, SQLERRM;
        END;
    END LOOP;
    -- Forgotten, so that a table made later under a dropped one's oid is
    -- never taken for a partition.
    UPDATE trailmark.tables t SET members = t.members - gone::text[]
    WHERE t.members ?| gone::text[];
END
$$;

-- Version 16: a covered table's rows rewritten by DDL that may change
-- their values, which neither mode saw before: ALTER TABLE ... ALTER
-- COLUMN ... TYPE (each value converted, or computed by USING; also
-- ALTER TYPE of a composite type a typed table is made of), and ADD COLUMN
-- with a value computed for each row (a volatile default, an identity or a
-- stored generated column). PostgreSQL fires no row trigger and logical
-- decoding sends no change for a rewrite. One record of the table (of the
-- partition rewritten, named, as a truncate of one is), op 'rewrite', in
-- the rewriting transaction, with the command and what it changes as the
-- reason and the role that did it (trailmark.record_whole), unless capture
-- of the table is paused. It cannot say which values changed: when it
-- fires the catalog already holds the new column types, and the rows,
-- still in the old ones, read through it are garbage (seen), so no row is
-- read. A rewrite that keeps every value (SET LOGGED or UNLOGGED, SET
-- ACCESS METHOD) and a type change that needs none (varchar(10) to
-- varchar(20)) record nothing.
CREATE OR REPLACE FUNCTION trailmark.record_rewrite() RETURNS event_trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    rewritten oid := pg_event_trigger_table_rewrite_oid();
    why integer := pg_event_trigger_table_rewrite_reason();
    r record;
BEGIN
    -- PostgreSQL's reasons (a bit each): 1 persistence, 2 a column added
    -- with a value for each row, 4 a column's type, 8 access method.
    IF why & 6 = 0 OR current_setting('trailmark.republishing', true) = 'on' THEN
        RETURN;
    END IF;
    FOR r IN
        SELECT t.schema_name, t.table_name, CASE WHEN t.relid <> rewritten THEN trailmark.partition_name(n.nspname, c.relname) END AS part
        FROM trailmark.tables t
        JOIN pg_class c ON c.oid = rewritten JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE t.paused_at IS NULL AND (t.relid = rewritten OR t.members ? rewritten::text)
        ORDER BY 1, 2
    LOOP
        BEGIN
            PERFORM trailmark.record_whole('rewrite', r.schema_name, r.table_name, r.part,
                'rows rewritten by ' || TG_TAG || ': '
                || concat_ws('; ', CASE WHEN why & 4 <> 0 THEN 'a column''s type changed (each value converted, or computed by USING)' END,
                                   CASE WHEN why & 2 <> 0 THEN 'a column added with a value computed for each row' END));
        EXCEPTION WHEN OTHERS THEN
            RAISE WARNING 'trailmark: %.% rewritten: not recorded: %', r.schema_name, r.table_name, SQLERRM;
        END;
    END LOOP;
END
$$;

-- Event triggers need a superuser; without one, what the event trigger
-- does is done by the next install (`status` says what waits for it).
-- Version 16: made by a function, which install calls once the mode is
-- recorded (after this file: until then the ones made before stand):
-- trailmark_release serves WAL mode only (column lists), and trigger
-- mode's ALTER TABLE does not call it.
CREATE OR REPLACE FUNCTION trailmark.make_event_triggers() RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF NOT (SELECT rolsuper FROM pg_roles WHERE rolname = current_user) THEN
        RETURN;
    END IF;
    DROP EVENT TRIGGER IF EXISTS trailmark_republish;
    CREATE EVENT TRIGGER trailmark_republish ON ddl_command_end
        WHEN TAG IN ('ALTER TABLE', 'CREATE TABLE', 'CREATE TABLE AS', 'SELECT INTO', 'ALTER PUBLICATION',
                     'DROP TRIGGER')
        EXECUTE FUNCTION trailmark.republish();
    DROP EVENT TRIGGER IF EXISTS trailmark_dropped;
    CREATE EVENT TRIGGER trailmark_dropped ON sql_drop
        WHEN TAG IN ('DROP TABLE', 'DROP SCHEMA', 'DROP OWNED', 'DROP PUBLICATION')
        EXECUTE FUNCTION trailmark.record_dropped();
    DROP EVENT TRIGGER IF EXISTS trailmark_rewritten;
    CREATE EVENT TRIGGER trailmark_rewritten ON table_rewrite
        EXECUTE FUNCTION trailmark.record_rewrite();
    -- ALWAYS, as the capture triggers are (version 13): an event trigger
    -- enabled as CREATE leaves it does not fire in a session with
    -- session_replication_role = replica (a bulk load or a restore run so
    -- to skip foreign key checks), whose DDL then went unrecorded (a
    -- covered table dropped, its rows rewritten) and unfollowed.
    ALTER EVENT TRIGGER trailmark_republish ENABLE ALWAYS;
    ALTER EVENT TRIGGER trailmark_dropped ENABLE ALWAYS;
    ALTER EVENT TRIGGER trailmark_rewritten ENABLE ALWAYS;
    DROP EVENT TRIGGER IF EXISTS trailmark_release;
    IF trailmark.wal_mode() THEN
        CREATE EVENT TRIGGER trailmark_release ON ddl_command_start
            WHEN TAG IN ('ALTER TABLE')
            EXECUTE FUNCTION trailmark.release_column_lists();
        ALTER EVENT TRIGGER trailmark_release ENABLE ALWAYS;
    END IF;
END
$$;
REVOKE ALL ON FUNCTION trailmark.make_event_triggers() FROM PUBLIC;
