//! The SQL an install creates for each covered table: its capture function and its statement-level triggers.

use crate::table::{TableSpec, ident, literal};

pub(super) const TRIGGER_PREFIX: &str = "trailmark_";
/// The channel the triggers notify when they add to the outbox.
pub const CHANNEL: &str = "trailmark_outbox";

/// The capture function of one table: one `INSERT … SELECT` per statement,
/// rows read as `alias.*` under `trailmark_` aliases (so an application column
/// named like an alias is never taken for the row), UPDATE rows paired by
/// primary key — `=` is exact on key columns, which are never null, and lets
/// PostgreSQL hash-join a bulk update — or by position when a key changed or
/// there is none (PostgreSQL fills both transition tables row by row, in step).
///
/// Excluded columns are named by number at each statement, so renaming one
/// never lets its values out, and by the names they were excluded under,
/// so a column dropped and added again under its name (a new number) stays
/// out too; a key column renamed after install makes the key pairing fall
/// back to position instead of failing the application's statement.
///
/// It runs as its owner (`SECURITY DEFINER`, `search_path` fixed to
/// `pg_catalog`): the writing role needs no right in schema `trailmark`, and
/// may not write the outbox itself (docs/CAPTURE.md).
pub(super) fn function_sql(
    function: &str,
    pk: &[String],
    exclude_attnums: &[i16],
    excluded_names: &[String],
) -> String {
    let by_number = if exclude_attnums.is_empty() {
        "'{}'::text[]".to_owned()
    } else {
        let numbers = exclude_attnums
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(",");
        format!(
            "ARRAY(SELECT attname::text FROM pg_attribute WHERE attrelid = TG_RELID AND attnum = ANY ('{{{numbers}}}'::int2[]))"
        )
    };
    let excluded = if excluded_names.is_empty() {
        by_number
    } else {
        let names = excluded_names
            .iter()
            .map(|n| literal(n))
            .collect::<Vec<_>>()
            .join(", ");
        format!("{by_number} || ARRAY[{names}]::text[]")
    };
    let cols = "txid, stmt, op, schema_name, table_name, old_row, new_row, context";
    let positional = format!(
        "INSERT INTO trailmark.outbox ({cols})
        SELECT txid_current(), trailmark_stmt, 'update', TG_TABLE_SCHEMA, TG_TABLE_NAME, o.j - trailmark_excluded, n.j - trailmark_excluded, trailmark_ctx
        FROM (SELECT row_number() OVER () AS trailmark_rn, to_jsonb(trailmark_t.*) AS j FROM trailmark_old trailmark_t) o
        JOIN (SELECT row_number() OVER () AS trailmark_rn, to_jsonb(trailmark_t.*) AS j FROM trailmark_new trailmark_t) n
        USING (trailmark_rn);"
    );
    let by_key = if pk.is_empty() {
        String::new()
    } else {
        let join = pk
            .iter()
            .map(|c| format!("trailmark_o.{col} = trailmark_n.{col}", col = ident(c)))
            .collect::<Vec<_>>()
            .join(" AND ");
        format!(
            "-- Pair by key in one pass; the rare statement that changed a key
        -- (fewer pairs than rows) is paired by position instead.
        BEGIN
            INSERT INTO trailmark.outbox ({cols})
            SELECT txid_current(), trailmark_stmt, 'update', TG_TABLE_SCHEMA, TG_TABLE_NAME,
                   to_jsonb(trailmark_o.*) - trailmark_excluded, to_jsonb(trailmark_n.*) - trailmark_excluded, trailmark_ctx
            FROM trailmark_old trailmark_o JOIN trailmark_new trailmark_n ON {join};
            GET DIAGNOSTICS trailmark_matched = ROW_COUNT;
        EXCEPTION WHEN undefined_column THEN
            trailmark_matched := -1; -- a key column was renamed since install: pair by position
        END;
        IF trailmark_matched = trailmark_total THEN
            PERFORM pg_notify('{CHANNEL}', '');
            RETURN NULL;
        END IF;
        IF trailmark_matched > 0 THEN
            DELETE FROM trailmark.outbox WHERE txid = txid_current() AND stmt = trailmark_stmt
                AND schema_name = TG_TABLE_SCHEMA AND table_name = TG_TABLE_NAME;
        END IF;"
        )
    };
    format!(
        "CREATE OR REPLACE FUNCTION trailmark.{function}() RETURNS trigger LANGUAGE plpgsql
    SECURITY DEFINER SET search_path = pg_catalog, pg_temp SET TimeZone = 'UTC' AS $trailmark$
DECLARE
    trailmark_excluded text[] := {excluded};
    trailmark_stmt integer := coalesce(nullif(current_setting('trailmark.stmt', true), ''), '0')::integer + 1;
    trailmark_ctx jsonb := trailmark.context();
    trailmark_matched bigint;
    trailmark_total bigint;
BEGIN
    -- The statement's number within its transaction (1, 2, ...).
    PERFORM set_config('trailmark.stmt', trailmark_stmt::text, true);
    IF TG_OP = 'INSERT' THEN
        INSERT INTO trailmark.outbox (txid, stmt, op, schema_name, table_name, new_row, context)
        SELECT txid_current(), trailmark_stmt, 'insert', TG_TABLE_SCHEMA, TG_TABLE_NAME, to_jsonb(trailmark_n.*) - trailmark_excluded, trailmark_ctx
        FROM trailmark_new trailmark_n;
    ELSIF TG_OP = 'DELETE' THEN
        INSERT INTO trailmark.outbox (txid, stmt, op, schema_name, table_name, old_row, context)
        SELECT txid_current(), trailmark_stmt, 'delete', TG_TABLE_SCHEMA, TG_TABLE_NAME, to_jsonb(trailmark_o.*) - trailmark_excluded, trailmark_ctx
        FROM trailmark_old trailmark_o;
    ELSE
        SELECT count(*) INTO trailmark_total FROM trailmark_old;
        IF trailmark_total = 1 THEN
            -- One row each side: they are the pair (the common single-row UPDATE).
            INSERT INTO trailmark.outbox (txid, stmt, op, schema_name, table_name, old_row, new_row, context)
            SELECT txid_current(), trailmark_stmt, 'update', TG_TABLE_SCHEMA, TG_TABLE_NAME,
                   to_jsonb(trailmark_o.*) - trailmark_excluded, to_jsonb(trailmark_n.*) - trailmark_excluded, trailmark_ctx
            FROM trailmark_old trailmark_o, trailmark_new trailmark_n;
            PERFORM pg_notify('{CHANNEL}', '');
            RETURN NULL;
        END IF;
        {by_key}
        {positional}
    END IF;
    -- Wakes a listening drainer at commit (one notice per transaction).
    PERFORM pg_notify('{CHANNEL}', '');
    RETURN NULL;
END
$trailmark$;"
    )
}

pub(super) fn trigger_sql(function: &str, table: &TableSpec) -> String {
    let q = table.quoted();
    let name = |op: &str| ident(&format!("{TRIGGER_PREFIX}{op}"));
    format!(
        "DROP TRIGGER IF EXISTS {ins} ON {q};
         DROP TRIGGER IF EXISTS {upd} ON {q};
         DROP TRIGGER IF EXISTS {del} ON {q};
         DROP TRIGGER IF EXISTS {tru} ON {q};
         CREATE TRIGGER {ins} AFTER INSERT ON {q} REFERENCING NEW TABLE AS trailmark_new
             FOR EACH STATEMENT EXECUTE FUNCTION trailmark.{function}();
         CREATE TRIGGER {upd} AFTER UPDATE ON {q} REFERENCING OLD TABLE AS trailmark_old NEW TABLE AS trailmark_new
             FOR EACH STATEMENT EXECUTE FUNCTION trailmark.{function}();
         CREATE TRIGGER {del} AFTER DELETE ON {q} REFERENCING OLD TABLE AS trailmark_old
             FOR EACH STATEMENT EXECUTE FUNCTION trailmark.{function}();
         CREATE TRIGGER {tru} AFTER TRUNCATE ON {q}
             FOR EACH STATEMENT EXECUTE FUNCTION trailmark.capture_truncate();",
        ins = name("insert"),
        upd = name("update"),
        del = name("delete"),
        tru = name("truncate"),
    )
}

/// The context keys `trailmark.set_context` takes: the setting names
/// `trailmark.<key>` that `trailmark.context()` reads (the one list is
/// `CaptureContext::SETTINGS`).
fn context_keys() -> Vec<&'static str> {
    trailmark_core::CaptureContext::SETTINGS
        .iter()
        .map(|s| s.trim_start_matches("trailmark."))
        .collect()
}

/// `trailmark.set_context(jsonb)`: the one call that attaches context in
/// either mode. In trigger mode it sets the transaction-local settings the
/// triggers read (one statement for every key); in WAL mode it writes the
/// keys given as a transactional logical message (prefix `trailmark`), which
/// the drainer reads in place among the transaction's changes and merges as
/// settings merge (null clears a key). Generated per mode: the application's
/// transaction pays only for what its mode reads (in WAL mode the settings
/// would cost about 5% of a single-row UPDATE's rate, bench/results/capture.md).
/// An unknown key, or a value that is not a string, a number or null, is an
/// error naming it: the check is three C-level operations, and
/// `trailmark.refuse_context` names the culprit only when it fails.
pub(super) fn set_context_sql(wal: bool) -> String {
    let keys = context_keys()
        .iter()
        .map(|k| format!("'{k}'"))
        .collect::<Vec<_>>()
        .join(", ");
    // In WAL mode the message is written by an assignment, not `PERFORM`:
    // PL/pgSQL evaluates an assignment's simple expression without starting
    // the executor (`PERFORM` runs a query), 1.02x the single-row UPDATE's
    // rate (bench/results/capture.md). The settings need a query (one
    // `set_config` for every key).
    let (declare, apply) = if wal {
        (
            "DECLARE\n    trailmark_written pg_lsn;\n",
            "trailmark_written := pg_logical_emit_message(true, 'trailmark', context::text);",
        )
    } else {
        (
            "",
            "PERFORM set_config('trailmark.' || key, coalesce(value #>> '{}', ''), true) FROM jsonb_each(context);",
        )
    };
    format!(
        "CREATE OR REPLACE FUNCTION trailmark.refuse_context(context jsonb) RETURNS void
LANGUAGE plpgsql AS $trailmark$
DECLARE
    trailmark_key text;
    trailmark_value jsonb;
BEGIN
    IF jsonb_typeof(context) IS DISTINCT FROM 'object' THEN
        RAISE EXCEPTION 'trailmark.set_context: give a JSON object of context, e.g. {{\"actor_id\": \"42\", \"ip\": \"203.0.113.7\"}}';
    END IF;
    FOR trailmark_key, trailmark_value IN SELECT key, value FROM jsonb_each(context) LOOP
        IF NOT trailmark_key = ANY (ARRAY[{keys}]) THEN
            RAISE EXCEPTION 'trailmark.set_context: unknown key %', to_json(trailmark_key)
                USING HINT = 'the keys are {hint}';
        END IF;
        IF jsonb_typeof(trailmark_value) NOT IN ('string', 'number', 'null') THEN
            RAISE EXCEPTION 'trailmark.set_context: % must be a string (or null to clear it), not %',
                trailmark_key, jsonb_typeof(trailmark_value);
        END IF;
    END LOOP;
END
$trailmark$;
CREATE OR REPLACE FUNCTION trailmark.set_context(context jsonb) RETURNS void
LANGUAGE plpgsql AS $trailmark$
{declare}BEGIN
    IF jsonb_typeof(context) IS DISTINCT FROM 'object'
       OR context - ARRAY[{keys}] <> '{{}}'::jsonb
       OR jsonb_path_exists(context, 'strict $.* ? (@.type() == \"object\" || @.type() == \"array\" || @.type() == \"boolean\")') THEN
        PERFORM trailmark.refuse_context(context);
    END IF;
    {apply}
END
$trailmark$;",
        hint = context_keys().join(", "),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Everything install sends PostgreSQL is ASCII, comments included: the
    /// server converts a statement to the database's encoding before it
    /// parses it, and a LATIN1 database refused install over one `…` in a
    /// comment (`character with byte sequence 0xe2 0x80 0xa6 in encoding
    /// "UTF8" has no equivalent in encoding "LATIN1"`).
    #[test]
    fn what_install_sends_is_ascii_for_any_database_encoding() {
        assert!(super::super::INSTALL_SQL.is_ascii());
        assert!(crate::seen::TABLE.is_ascii());
        for (pk, excluded, names) in [
            (&[][..], &[][..], &[][..]),
            (
                &["id".to_owned()][..],
                &[2_i16, 5][..],
                &["token".to_owned()][..],
            ),
        ] {
            assert!(function_sql("capture_1", pk, excluded, names).is_ascii());
        }
        assert!(set_context_sql(false).is_ascii() && set_context_sql(true).is_ascii());
        let table = TableSpec::parse("public.t").unwrap();
        assert!(trigger_sql("capture_1", &table).is_ascii());
    }
}
