//! The SQL install generates in Rust: `trailmark.set_context` for the mode.
//! (Each covered table's capture function and triggers are made by
//! `trailmark.attach_capture` in sql/install.sql, which the event trigger
//! runs too.)

/// The channel the triggers notify when they add to the outbox (the name
/// `trailmark.attach_capture` and `trailmark.capture_truncate` notify).
pub const CHANNEL: &str = "trailmark_outbox";

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
/// error naming it, and so (capture version 18) is an `actor_type` that is
/// not an actor type or a `tenant` that is not a tenant id (core's
/// [`trailmark_core::ActorType`] and [`trailmark_core::TenantId::PATTERN`]):
/// the drainer would repair either (`unknown`; the drain's own tenant), and an
/// event meant for one tenant would land in another. The empty string clears
/// either, as null does. The check is a few C-level operations, and
/// `trailmark.refuse_context` names the culprit only when it fails.
pub(super) fn set_context_sql(wal: bool) -> String {
    let quoted = |words: &[&str]| {
        words
            .iter()
            .map(|k| format!("'{k}'"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let keys = quoted(&context_keys());
    let types: Vec<&str> = trailmark_core::ActorType::ALL
        .iter()
        .map(|t| t.as_str())
        .collect();
    let actor_types = quoted(&types);
    let pattern = trailmark_core::TenantId::PATTERN;
    // In WAL mode the message is written by an assignment, not `PERFORM`:
    // PL/pgSQL evaluates an assignment's simple expression without starting
    // the executor (`PERFORM` runs a query), 1.02x the single-row UPDATE's
    // rate (bench/results/capture.md). The settings need a query (one
    // `set_config` for every key).
    let (declare, apply) = if wal {
        (
            "DECLARE\n    trailmark_written pg_lsn;\n",
            // Then an empty message (`trailmark.end_messages` in
            // sql/install.sql says why): a call in a savepoint followed by a
            // change outside it had the change decoded first, without it.
            "trailmark_written := pg_logical_emit_message(true, 'trailmark', context::text);
    trailmark_written := pg_logical_emit_message(true, 'trailmark.end', '');",
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
        IF trailmark_key = 'actor_type' AND NOT trailmark_value #>> '{{}}' = ANY (ARRAY['', {actor_types}]) THEN
            RAISE EXCEPTION 'trailmark.set_context: actor_type must be one of {type_list} (or null to clear it), not %',
                trailmark_value::text;
        END IF;
        IF trailmark_key = 'tenant' AND trailmark_value #>> '{{}}' <> '' AND trailmark_value #>> '{{}}' !~ '{pattern}' THEN
            RAISE EXCEPTION 'trailmark.set_context: tenant must be 1 to {max} characters, start with a letter or digit and use only letters, digits, ''.'', ''_'' and ''-'' (or null to clear it), not %',
                trailmark_value::text;
        END IF;
    END LOOP;
END
$trailmark$;
CREATE OR REPLACE FUNCTION trailmark.set_context(context jsonb) RETURNS void
LANGUAGE plpgsql AS $trailmark$
{declare}BEGIN
    IF jsonb_typeof(context) IS DISTINCT FROM 'object'
       OR context - ARRAY[{keys}] <> '{{}}'::jsonb
       OR jsonb_path_exists(context, 'strict $.* ? (@.type() == \"object\" || @.type() == \"array\" || @.type() == \"boolean\")')
       OR NOT coalesce(context ->> 'actor_type', '') = ANY (ARRAY['', {actor_types}])
       OR coalesce(context ->> 'tenant', '') !~ '^$|{pattern}' THEN
        PERFORM trailmark.refuse_context(context);
    END IF;
    {apply}
END
$trailmark$;",
        hint = context_keys().join(", "),
        type_list = types.join(", "),
        max = trailmark_core::TenantId::MAX_LEN,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The prefixes the drainer reads messages by are those the SQL writes
    /// (`trailmark.capture_truncate` and `trailmark.record_switch` name
    /// their own), and the setting install sets the one the SQL reads.
    #[test]
    fn the_message_prefixes_are_the_ones_install_sql_writes() {
        for prefix in [
            super::super::TRUNCATE_PREFIX,
            super::super::SWITCH_PREFIX,
            super::super::CREATE_PREFIX,
            super::super::REWRITE_PREFIX,
            super::super::END_PREFIX,
        ] {
            let written = format!("pg_logical_emit_message(true, '{prefix}'");
            assert!(super::super::INSTALL_SQL.contains(&written), "{written}");
        }
        // So is the setting that keeps the event trigger out of capture's
        // own DDL (install's Rust sets it too).
        let read = format!(
            "current_setting('{}', true) = 'on'",
            super::super::wal::OWN_DDL
        );
        assert!(super::super::INSTALL_SQL.contains(&read), "{read}");
    }

    /// Everything install sends PostgreSQL is ASCII, comments included: the
    /// server converts a statement to the database's encoding before it
    /// parses it, and a LATIN1 database refused install over one `…` in a
    /// comment (`character with byte sequence 0xe2 0x80 0xa6 in encoding
    /// "UTF8" has no equivalent in encoding "LATIN1"`).
    #[test]
    fn what_install_sends_is_ascii_for_any_database_encoding() {
        assert!(super::super::INSTALL_SQL.is_ascii());
        assert!(crate::seen::TABLE.is_ascii());
        assert!(set_context_sql(false).is_ascii() && set_context_sql(true).is_ascii());
    }
}
