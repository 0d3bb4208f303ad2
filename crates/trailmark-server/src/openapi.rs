//! The `OpenAPI` 3.1 document served at `/openapi.json`, built here beside the
//! router. `tests/openapi.rs` snapshots it, so any API change shows in review.

use serde_json::{Map, Value, json};
use trailmark_store::Exact;

fn param(name: &str, location: &str, description: &str) -> Value {
    json!({"name": name, "in": location, "required": location == "path",
           "description": description, "schema": {"type": "string"}})
}

/// The parameters of the event filters: the tenant, every exact filter
/// ([`Exact`], the one list), then search, time and paging.
fn filter_params() -> Vec<(&'static str, &'static str)> {
    let mut all = vec![(
        "tenant",
        "Tenant to read (a key bound to a tenant sees only that one).",
    )];
    all.extend(Exact::ALL.iter().map(|f| (f.param(), f.describe())));
    all.extend([
        (
            "q",
            "Words that must all appear in the event (ids, action, names, values).",
        ),
        ("since", "RFC 3339; occurred_at at or after."),
        ("until", "RFC 3339; occurred_at before."),
        ("days", "Only the last N days."),
        ("limit", "Page size, 1 to 1000 (default 50)."),
        ("cursor", "next_cursor of the previous page."),
    ]);
    all
}

fn filters(skip: &[&str]) -> Vec<Value> {
    filter_params()
        .into_iter()
        .filter(|(n, _)| !skip.contains(n))
        .map(|(n, d)| param(n, "query", d))
        .collect()
}

#[allow(clippy::needless_pass_by_value)] // callers build the list inline
fn op(summary: &str, scope: &str, params: Vec<Value>, ok: (&str, &str)) -> Value {
    json!({
        "summary": summary,
        "description": format!("Needs a key with the {scope} scope (admin implies every scope)."),
        "parameters": &params,
        "responses": {
            ok.0: {"description": ok.1},
            "400": {"description": "Bad input: {\"errors\":[{\"index\",\"path\",\"message\"}]}"},
            "401": {"description": "Missing, unknown or revoked key."},
            "403": {"description": "The key lacks the scope or the tenant."},
        },
        "security": [{"bearer": []}],
    })
}

/// The JSON Schemas of the typed answers (`crate::wire`), generated from
/// the types the handlers return, and each route's answer pointed at its
/// schema: a change to what a handler returns changes this document.
fn typed_answers(paths: &mut Map<String, Value>) -> Map<String, Value> {
    use crate::wire::{
        AppendedBatch, CheckpointsPage, ConsistencyProof, EntriesPage, EventDetail, EventsPage,
        History, InclusionProof, Keys, NewKeyOut, Revoked, SigningKeys, StatsOut, Tenants,
    };
    use schemars::generate::{Contract, SchemaSettings};
    let mut g = SchemaSettings::draft2020_12()
        .with(|s| {
            s.definitions_path = "/components/schemas".into();
            s.contract = Contract::Serialize;
        })
        .into_generator();
    let answers = [
        ("/v1/events", "get", "200", g.subschema_for::<EventsPage>()),
        (
            "/v1/events",
            "post",
            "201",
            g.subschema_for::<AppendedBatch>(),
        ),
        (
            "/v1/events/{id}",
            "get",
            "200",
            g.subschema_for::<EventDetail>(),
        ),
        (
            "/v1/resources/{type}/{id}/history",
            "get",
            "200",
            g.subschema_for::<History>(),
        ),
        (
            "/v1/entries",
            "get",
            "200",
            g.subschema_for::<EntriesPage>(),
        ),
        ("/v1/stats", "get", "200", g.subschema_for::<StatsOut>()),
        ("/v1/tenants", "get", "200", g.subschema_for::<Tenants>()),
        (
            "/v1/checkpoints",
            "get",
            "200",
            g.subschema_for::<CheckpointsPage>(),
        ),
        (
            "/v1/proofs/inclusion",
            "get",
            "200",
            g.subschema_for::<InclusionProof>(),
        ),
        (
            "/v1/proofs/consistency",
            "get",
            "200",
            g.subschema_for::<ConsistencyProof>(),
        ),
        ("/v1/keys", "get", "200", g.subschema_for::<Keys>()),
        ("/v1/keys", "post", "201", g.subschema_for::<NewKeyOut>()),
        (
            "/v1/keys/{id}",
            "delete",
            "200",
            g.subschema_for::<Revoked>(),
        ),
        (
            "/v1/signing-keys",
            "get",
            "200",
            g.subschema_for::<SigningKeys>(),
        ),
    ];
    let removal = removal_answers(&mut g);
    let alerts = alert_answers(&mut g);
    for (path, method, status, schema) in answers.into_iter().chain(removal).chain(alerts) {
        if let Some(answer) = paths
            .get_mut(path)
            .and_then(|p| p.get_mut(method))
            .and_then(|op| op.pointer_mut(&format!("/responses/{status}")))
        {
            answer["content"] = json!({"application/json": {"schema": schema}});
        }
    }
    error_answers(paths, &mut g);
    let mut definitions = g.take_definitions(true);
    definitions.extend(request_bodies(paths));
    definitions
}

/// The answers of the retention, hold and erasure routes.
fn removal_answers(
    g: &mut schemars::SchemaGenerator,
) -> Vec<(&'static str, &'static str, &'static str, schemars::Schema)> {
    use crate::wire::{HoldOut, Holds, RemovalReport, RetentionOut, RetentionPolicyOut};
    vec![
        (
            "/v1/retention",
            "get",
            "200",
            g.subschema_for::<RetentionOut>(),
        ),
        (
            "/v1/retention",
            "put",
            "200",
            g.subschema_for::<RetentionPolicyOut>(),
        ),
        (
            "/v1/retention",
            "delete",
            "200",
            g.subschema_for::<RetentionPolicyOut>(),
        ),
        (
            "/v1/retention/cleanup",
            "post",
            "200",
            g.subschema_for::<RemovalReport>(),
        ),
        ("/v1/holds", "get", "200", g.subschema_for::<Holds>()),
        ("/v1/holds", "post", "201", g.subschema_for::<HoldOut>()),
        (
            "/v1/holds/{id}",
            "delete",
            "200",
            g.subschema_for::<HoldOut>(),
        ),
        (
            "/v1/erasures",
            "post",
            "200",
            g.subschema_for::<RemovalReport>(),
        ),
    ]
}

/// The answers of the alert routes.
fn alert_answers(
    g: &mut schemars::SchemaGenerator,
) -> Vec<(&'static str, &'static str, &'static str, schemars::Schema)> {
    use crate::wire::{AlertOut, AlertRulesOut, AlertsPage, WebhooksOut};
    vec![
        ("/v1/alerts", "get", "200", g.subschema_for::<AlertsPage>()),
        (
            "/v1/alerts/{id}",
            "get",
            "200",
            g.subschema_for::<AlertOut>(),
        ),
        (
            "/v1/alerts/{id}/ack",
            "post",
            "200",
            g.subschema_for::<AlertOut>(),
        ),
        (
            "/v1/alerts/{id}/redeliver",
            "post",
            "202",
            g.subschema_for::<AlertOut>(),
        ),
        (
            "/v1/alert-rules",
            "get",
            "200",
            g.subschema_for::<AlertRulesOut>(),
        ),
        (
            "/v1/alert-rules",
            "put",
            "200",
            g.subschema_for::<AlertRulesOut>(),
        ),
        (
            "/v1/webhooks",
            "get",
            "200",
            g.subschema_for::<WebhooksOut>(),
        ),
        (
            "/v1/webhooks",
            "put",
            "200",
            g.subschema_for::<WebhooksOut>(),
        ),
    ]
}

/// The alert routes (docs/ALERTS.md).
fn alert_paths(paths: &mut Map<String, Value>) {
    let id = || param("id", "path", "Alert id (a UUID).");
    let list = vec![
        param(
            "tenant",
            "query",
            "Alerts of this tenant (a key bound to a tenant sees only that one).",
        ),
        param("rule", "query", "failed_logins or mass_delete."),
        param("status", "query", "open, acknowledged or resolved."),
        param(
            "delivery",
            "query",
            "Alerts with a delivery pending, delivered or dead (the dead-letter list).",
        ),
        param(
            "limit",
            "query",
            "Alerts read per page, 1 to 100 (default 50); filtered after reading, so a page may hold fewer.",
        ),
        param("cursor", "query", "next_cursor of the previous page."),
    ];
    paths.insert("/v1/alerts".into(), json!({"get": op("Alerts, newest first, each with its acknowledgement and deliveries (the read is recorded)", "read", list, ("200", "{\"alerts\":[...],\"next_cursor\"}"))}));
    paths.insert(
        "/v1/alerts/{id}".into(),
        json!({"get": op("One alert", "read", vec![id()], ("200", "The alert"))}),
    );
    let mut ack = op(
        "Acknowledge an alert, or resolve it (recorded in _system)",
        "admin",
        vec![id()],
        ("200", "The alert"),
    );
    ack["responses"]["409"] = json!({"description": "Already acknowledged or resolved."});
    paths.insert("/v1/alerts/{id}/ack".into(), json!({"post": ack}));
    paths.insert("/v1/alerts/{id}/redeliver".into(), json!({"post": op("Deliver an alert again from the first attempt, with the same webhook-id (recorded in _system)", "admin", vec![id()], ("202", "The alert"))}));
    paths.insert("/v1/alert-rules".into(), json!({
        "get": op("The alert rules and their version", "admin", vec![], ("200", "{\"rules\",\"version\"}")),
        "put": op("Replace every alert rule (recorded in _system)", "admin", vec![], ("200", "{\"rules\",\"version\"}")),
    }));
    paths.insert("/v1/webhooks".into(), json!({
        "get": op("The webhook endpoints (never their secrets)", "admin", vec![], ("200", "{\"webhooks\",\"version\"}")),
        "put": op("Replace the webhook endpoints (recorded in _system; a secret made now is shown in this answer only)", "admin", vec![], ("200", "{\"webhooks\",\"version\"}")),
    }));
    // The whole server's settings: an admin key bound to a tenant is refused.
    for path in ["/v1/alert-rules", "/v1/webhooks"] {
        if let Some(ops) = paths.get_mut(path).and_then(Value::as_object_mut) {
            for op in ops.values_mut() {
                op["description"] = json!(
                    "Needs a key with the admin scope, bound to no tenant (these settings are the whole server's, not one tenant's)."
                );
                op["responses"]["403"] = json!({"description": "The key lacks the admin scope, or is bound to a tenant."});
            }
        }
    }
    for path in [
        "/v1/alerts/{id}",
        "/v1/alerts/{id}/ack",
        "/v1/alerts/{id}/redeliver",
    ] {
        if let Some(ops) = paths.get_mut(path).and_then(Value::as_object_mut) {
            for op in ops.values_mut() {
                op["responses"]["404"] =
                    json!({"description": "No alert with this id that this key may see."});
            }
        }
    }
}

/// The JSON bodies routes accept, as schemas of the wire types the
/// handlers parse them into (unknown fields refused: additionalProperties
/// is false).
fn request_bodies(paths: &mut Map<String, Value>) -> Map<String, Value> {
    use crate::wire::{
        AckIn, CleanupIn, ErasureIn, HoldIn, RedeliverIn, RetentionPolicyIn, WebhooksIn,
    };
    use schemars::generate::{Contract, SchemaSettings};
    let mut g = SchemaSettings::draft2020_12()
        .with(|s| {
            s.definitions_path = "/components/schemas".into();
            s.contract = Contract::Deserialize;
        })
        .into_generator();
    let bodies = [
        (
            "/v1/retention",
            "put",
            g.subschema_for::<RetentionPolicyIn>(),
        ),
        (
            "/v1/retention/cleanup",
            "post",
            g.subschema_for::<CleanupIn>(),
        ),
        ("/v1/holds", "post", g.subschema_for::<HoldIn>()),
        ("/v1/erasures", "post", g.subschema_for::<ErasureIn>()),
        ("/v1/alerts/{id}/ack", "post", g.subschema_for::<AckIn>()),
        (
            "/v1/alerts/{id}/redeliver",
            "post",
            g.subschema_for::<RedeliverIn>(),
        ),
        ("/v1/webhooks", "put", g.subschema_for::<WebhooksIn>()),
        (
            "/v1/alert-rules",
            "put",
            g.subschema_for::<crate::alerts::Rules>(),
        ),
    ];
    for (path, method, schema) in bodies {
        if let Some(op) = paths.get_mut(path).and_then(|p| p.get_mut(method)) {
            let optional = method == "post" && path != "/v1/holds" && path != "/v1/erasures";
            op["requestBody"] = json!({"required": !optional,
                "content": {"application/json": {"schema": schema}}});
        }
    }
    g.take_definitions(true)
}

/// Every error answer of the API is JSON of one of two shapes: a 400 lists
/// its problems, any other says what was wrong.
fn error_answers(paths: &mut Map<String, Value>, g: &mut schemars::SchemaGenerator) {
    let problems = g.subschema_for::<trailmark_wire::Problems>();
    let error = g.subschema_for::<trailmark_wire::ErrorBody>();
    for (path, ops) in paths.iter_mut() {
        if !(path.starts_with("/v1/") || path.starts_with("/log/")) {
            continue;
        }
        let answers = ops
            .as_object_mut()
            .into_iter()
            .flat_map(|ops| ops.values_mut())
            .filter_map(|op| op.get_mut("responses").and_then(Value::as_object_mut))
            .flat_map(|answers| answers.iter_mut());
        for (status, answer) in answers {
            let schema = match status.as_str() {
                "400" => &problems,
                s if s.starts_with('4') || s.starts_with('5') => &error,
                _ => continue,
            };
            answer["content"] = json!({"application/json": {"schema": schema}});
        }
    }
}

/// The parameters of `/v1/checkpoints`.
fn checkpoint_pages() -> Vec<Value> {
    let mut params = tenant_only();
    params.push(param(
        "after",
        "query",
        "Checkpoints above this size (next_after of the previous page).",
    ));
    params.push(param(
        "limit",
        "query",
        "Page size, 1 to 1000 (default 1000).",
    ));
    params
}

/// A record's history: the path names the record; the other filters narrow
/// its events and its type's alike; it is read whole (no paging).
fn history_params() -> Vec<Value> {
    let mut params = vec![
        param("type", "path", "Resource type."),
        param("id", "path", "Resource id."),
    ];
    params.extend(filters(&[
        "resource_type",
        "resource_id",
        "limit",
        "cursor",
    ]));
    params
}

fn tenant_only() -> Vec<Value> {
    vec![param(
        "tenant",
        "query",
        "Tenant (default: the key's tenant, else default).",
    )]
}

/// The whole document.
pub fn document() -> Value {
    let mut paths = Map::new();
    let mut ingest = op(
        "Append events",
        "ingest",
        vec![param(
            trailmark_wire::AFTER_HEADER,
            "header",
            "[<tenant>/]<event id> (no tenant: the one events without a tenant go to): append this batch only after that event (the last of the batch before) is durable; 412 when it is not stored and no batch ending with it arrives in time. Lets a producer send its next batch before the answer to the one before, in order.",
        )],
        (
            "201",
            "Durably stored: {\"entries\":[{\"id\",\"seq\",\"tenant\"}]}",
        ),
    );
    let most = trailmark_wire::MAX_EVENTS_PER_REQUEST;
    ingest["requestBody"] = json!({"required": true, "content": {
        "application/json": {"schema": {"oneOf": [{"$ref": "#/components/schemas/Event"},
            {"type": "array", "maxItems": most, "items": {"$ref": "#/components/schemas/Event"}}]}},
        "application/x-ndjson": {"schema": {"type": "string",
            "description": format!("One event per line, at most {most} lines.")}}}});
    ingest["responses"]["412"] = json!({"description": format!(
        "The event {} names is not stored (nor being appended in time): nothing of this batch was stored; send the batch before, then this one.",
        trailmark_wire::AFTER_HEADER)});
    ingest["responses"]["413"] = json!({"description": "Body or batch too large."});
    ingest["responses"]["429"] =
        json!({"description": "Ingest queue full; retry after Retry-After seconds."});
    paths.insert("/v1/events".into(), json!({
        "post": ingest,
        "get": op("Search events, newest first", "read", filters(&[]), ("200", "{\"events\":[...],\"next_cursor\"}")),
    }));
    paths.insert("/v1/events/{id}".into(), json!({"get": op("One event with its entry and an inclusion proof against the latest checkpoint", "read",
        vec![param("id", "path", "Event UUID."), param("tenant", "query", "Tenant to look in.")], ("200", "The event, \"entry\" and \"proof\" (null until a checkpoint covers it)"))}));
    paths.insert("/v1/entries".into(), json!({"get": op("Entries by position, for verifiers", "read",
        vec![param("tenant", "query", "Tenant."), param("start", "query", "First seq."), param("end", "query", "One past the last seq (at most start + 1000).")],
        ("200", "{\"entries\":[{\"seq\",\"tenant\",\"envelope\",\"leaf_hash\",\"payload\",\"salt\",\"state\",\"columns\"}]}"))}));
    paths.insert("/v1/resources/{type}/{id}/history".into(), json!({"get": op("Every event of one record, oldest first, with its state after each", "read",
        history_params(), ("200", "{\"events\":[{...,\"state_after\"}],\"truncated\"}"))}));
    paths.insert("/v1/stats".into(), json!({"get": op("Counts by action, actor, resource type, outcome and day", "read",
        filters(&["limit", "cursor"]), ("200", "{\"total\",\"by_action\",\"by_actor\",\"by_resource_type\",\"by_outcome\",\"per_day\"}"))}));
    let mut export_params = filters(&["limit", "cursor"]);
    export_params.push(param("format", "query", "csv or ndjson (default ndjson)."));
    paths.insert("/v1/export".into(), json!({"get": op("Stream every matching event (audited)", "read", export_params, ("200", "text/csv or application/x-ndjson, streamed"))}));
    paths.insert("/v1/checkpoint".into(), json!({"get": op("Latest signed checkpoint (C2SP tlog-checkpoint) with its witness cosignatures", "read", tenant_only(), ("200", "text/plain signed note"))}));
    paths.insert("/v1/checkpoints".into(), json!({"get": op("A tenant's signed checkpoints, oldest first, each with its cosignatures, a page at a time", "read", checkpoint_pages(), ("200", "{\"checkpoints\":[{\"size\",\"note\"}],\"next_after\"}"))}));
    paths.insert("/v1/signing-keys".into(), json!({"get": op("The public keys that sign this trail, oldest first, each later one with its transition statement", "read", vec![],
        ("200", "{\"keys\":[{\"ordinal\",\"public_key\",\"origin_prefix\",\"added_at\",\"transition\"}]}"))}));
    paths.insert(
        "/log/{tenant}/checkpoint".into(),
        json!({"get": op("C2SP tlog-tiles: the latest cosigned checkpoint", "read",
        vec![param("tenant", "path", "Tenant.")], ("200", "text/plain signed note"))}),
    );
    paths.insert("/log/{tenant}/tile/{path}".into(), json!({"get": op("C2SP tlog-tiles: a hash tile (<L>/<N>[.p/<W>]) or an entry bundle (entries/<N>[.p/<W>])", "read",
        vec![param("tenant", "path", "Tenant."), param("path", "path", "Tile path after tile/.")], ("200", "application/octet-stream"))}));
    paths.insert("/v1/verifier-key".into(), json!({"get": op("The tenant's C2SP verifier key", "read", tenant_only(), ("200", "text/plain name+keyid+base64(0x01||pub)"))}));
    paths.insert("/v1/tenants".into(), json!({"get": op("Tenants and their log sizes", "read",
        vec![param("tenant", "query", "Only this tenant (listed when it has entries).")], ("200", "{\"tenants\":[{\"tenant\",\"size\"}]}"))}));
    paths.insert("/v1/proofs/inclusion".into(), json!({"get": op("RFC 9162 inclusion proof", "read",
        vec![param("tenant", "query", "Tenant."), param("index", "query", "Leaf index (seq)."), param("size", "query", "Tree size.")],
        ("200", "{\"leaf_index\",\"tree_size\",\"hashes\":[base64]}"))}));
    paths.insert("/v1/proofs/consistency".into(), json!({"get": op("RFC 9162 consistency proof", "read",
        vec![param("tenant", "query", "Tenant."), param("first", "query", "Smaller size."), param("second", "query", "Larger size.")],
        ("200", "{\"first\",\"second\",\"hashes\":[base64]}"))}));
    paths.insert("/v1/keys".into(), json!({
        "post": op("Create a key (shown once)", "admin", vec![], ("201", "{\"id\",\"key\",\"name\",\"scopes\",\"tenant\",...}")),
        "get": op("List keys (never secrets)", "admin", vec![], ("200", "{\"keys\":[...]}")),
    }));
    removal_paths(&mut paths);
    alert_paths(&mut paths);
    key_paths(&mut paths);
    for (path, summary) in [
        ("/healthz", "Liveness"),
        (
            "/readyz",
            "Readiness: the store answers, and no append failed in the last 10 s (503 otherwise)",
        ),
        ("/metrics", "Prometheus metrics"),
        ("/openapi.json", "This document"),
    ] {
        paths.insert(
            path.into(),
            json!({"get": {"summary": summary, "responses": {"200": {"description": "OK"}}}}),
        );
    }
    paths["/readyz"]["get"]["responses"]["503"] = json!({"description": "Not ready: the store does not answer, or an append failed in the last 10 s (the body says which)"});
    let mut schemas = typed_answers(&mut paths);
    schemas.insert("Event".into(), event_schema());
    json!({
        "openapi": "3.1.0",
        "info": {"title": "Trailmark", "version": env!("CARGO_PKG_VERSION"),
                 "description": "A tamper-evident audit trail. Formats: docs/FORMAT.md; guide: docs/API.md."},
        "paths": paths,
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": schemas,
        },
    })
}

/// Revoking a key.
fn key_paths(paths: &mut Map<String, Value>) {
    let mut revoke = op(
        "Revoke a key",
        "admin",
        vec![param("id", "path", "Key id (key_...).")],
        ("200", "{\"id\",\"revoked\":true}"),
    );
    revoke["responses"]["404"] = json!({"description": "No such key (that the caller sees)."});
    revoke["responses"]["409"] =
        json!({"description": "The last admin key that sees every tenant: create another first."});
    paths.insert("/v1/keys/{id}".into(), json!({"delete": revoke}));
}

/// The retention, hold and erasure routes.
fn removal_paths(paths: &mut Map<String, Value>) {
    let target = vec![
        param("tenant", "query", "Tenant."),
        param(
            "resource_type",
            "query",
            "The policy's resource type (none: the tenant's all policy).",
        ),
        param("action", "query", "The policy's action."),
    ];
    paths.insert("/v1/retention".into(), json!({
        "get": op("Retention policies, holds in force, the last cleanup", "admin", vec![], ("200", "{\"policies\",\"holds\",\"cleanup_interval_secs\",\"last_cleanup\"}")),
        "put": op("Set one retention policy (recorded in _system)", "admin", vec![], ("200", "The policy")),
        "delete": op("Remove one retention policy (recorded in _system)", "admin", target, ("200", "The removed policy")),
    }));
    paths.insert("/v1/retention/cleanup".into(), json!({"post": op("Expire what the policies say is too old, or (dry_run) report it", "admin", vec![], ("200", "What was (or would be) removed, per tenant, resource type and action"))}));
    paths.insert("/v1/holds".into(), json!({
        "get": op("Legal holds, in force and released", "admin", vec![], ("200", "{\"holds\":[...]}")),
        "post": op("Place a legal hold (recorded in _system)", "admin", vec![], ("201", "The hold")),
    }));
    paths.insert("/v1/holds/{id}".into(), json!({"delete": op("Release a hold (recorded in _system)", "admin", vec![param("id", "path", "Hold id (hold_...).")], ("200", "The released hold"))}));
    let mut erase = op(
        "Erase the payloads of one actor's or one record's entries; refused (409) when any is under a hold",
        "admin",
        vec![],
        ("200", "What was erased, and the _system records of it"),
    );
    erase["responses"]["409"] = json!({"description": "Matching entries are under a legal hold, or (no tenant given) in more than one tenant; nothing was erased."});
    paths.insert("/v1/erasures".into(), json!({"post": erase}));
    for (path, method) in [("/v1/retention", "delete"), ("/v1/holds/{id}", "delete")] {
        if let Some(op) = paths.get_mut(path).and_then(|p| p.get_mut(method)) {
            op["responses"]["404"] =
                json!({"description": "No such policy, or no such hold in force."});
        }
    }
}

/// What a producer sends (`POST /v1/events`).
fn event_schema() -> Value {
    json!({"type": "object", "required": ["actor", "action"], "properties": {
                "id": {"type": "string", "format": "uuid"},
                "occurred_at": {"type": "string", "format": "date-time"},
                "tenant": {"type": "string"},
                "actor": {"type": "object", "required": ["id", "type"], "properties": {
                    "id": {"type": ["string", "integer"]},
                    "type": {"enum": ["user", "service", "system", "anonymous", "unknown"]},
                    "name": {"type": "string"}}},
                "action": {"type": "string"},
                "resource": {"type": "object", "required": ["type"], "properties": {
                    "type": {"type": "string"}, "id": {"type": ["string", "integer"]}, "name": {"type": "string"}}},
                "outcome": {"enum": ["success", "failure"]},
                "reason": {"type": ["string", "null"]},
                "changes": {"type": "object", "additionalProperties": {"type": "object", "properties": {"old": {}, "new": {}}}},
                "context": {"type": "object"},
                "metadata": {"type": "object"}}})
}
