//! Turning untrusted JSON into an [`Event`], collecting every problem.

use serde_json::{Map, Value};

use super::{Actor, Change, Changes, Context, Event, Resource};
use crate::limits::{
    MAX_CHANGED_FIELDS, MAX_DEPTH, MAX_DISPLAY_NAME_BYTES, MAX_EXTRA_CONTEXT_KEYS, MAX_ID_BYTES,
    MAX_KEY_BYTES, MAX_NAME_BYTES, MAX_PAYLOAD_BYTES, MAX_REASON_BYTES, MAX_RESOURCE_ID_BYTES,
    MAX_SAFE_INTEGER, MAX_SOURCE_BYTES, MAX_USER_AGENT_BYTES,
};
use crate::{ActorType, CanonicalJson, EventId, FieldError, Outcome, TenantId, Timestamp};

const TOP_LEVEL: &[&str] = &[
    "id",
    "occurred_at",
    "tenant",
    "actor",
    "action",
    "resource",
    "outcome",
    "reason",
    "changes",
    "context",
    "metadata",
];

/// How strict a text field is about characters.
#[derive(Clone, Copy)]
enum Text {
    /// No control characters at all.
    Line,
    /// Tabs and line breaks allowed (a reason).
    Prose,
    /// An identifier: a line without invisible format characters either,
    /// so that two ids that look the same are the same.
    Id,
}

/// A text field of an event: its key in its object, its path, its most
/// bytes and which characters it takes. The one statement of each field's
/// rule, read by both checks (of JSON as sent, [`check`], and of an event
/// built in process, [`typed`]).
pub(super) struct Field {
    pub(super) key: &'static str,
    path: &'static str,
    max: usize,
    text: Text,
}

/// A field's rule, as one line.
const fn field(key: &'static str, path: &'static str, max: usize, text: Text) -> Field {
    Field {
        key,
        path,
        max,
        text,
    }
}

const ACTOR_ID: Field = field("id", "actor.id", MAX_ID_BYTES, Text::Id);
const ACTOR_NAME: Field = field("name", "actor.name", MAX_DISPLAY_NAME_BYTES, Text::Line);
const RESOURCE_TYPE: Field = field("type", "resource.type", MAX_NAME_BYTES, Text::Id);
const RESOURCE_ID: Field = field("id", "resource.id", MAX_RESOURCE_ID_BYTES, Text::Id);
const RESOURCE_NAME: Field = field("name", "resource.name", MAX_DISPLAY_NAME_BYTES, Text::Line);
const REASON: Field = field("reason", "reason", MAX_REASON_BYTES, Text::Prose);

/// Unicode format characters (general category Cf): invisible, or
/// reordering what follows (U+202E). In an identifier they let `alice` and
/// `alice\u{200b}` be two actors that look alike.
pub fn is_format_char(c: char) -> bool {
    matches!(
        u32::from(c),
        0x00AD
            | 0x0600..=0x0605
            | 0x061C
            | 0x06DD
            | 0x070F
            | 0x0890..=0x0891
            | 0x08E2
            | 0x180E
            | 0x200B..=0x200F
            | 0x202A..=0x202E
            | 0x2060..=0x2064
            | 0x2066..=0x206F
            | 0xFEFF
            | 0xFFF9..=0xFFFB
            | 0x110BD
            | 0x110CD
            | 0x13430..=0x1343F
            | 0x1BCA0..=0x1BCA3
            | 0x1D173..=0x1D17A
            | 0xE0001
            | 0xE0020..=0xE007F
    )
}

/// `parent.key`, or `parent["key"]` when the key is not a plain word: how
/// a [`crate::FieldError`]'s path names a key.
pub fn join(parent: &str, key: &str) -> String {
    let plain = !key.is_empty() && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    match (parent.is_empty(), plain) {
        (true, true) => key.to_owned(),
        (false, true) => format!("{parent}.{key}"),
        (_, false) => format!("{parent}[{}]", Value::String(key.to_owned())),
    }
}

/// Where in the event a value sits, written out only when it is wrong: most
/// events are valid, and writing every nested key's path for them cost
/// validation half its time.
#[derive(Clone, Copy)]
enum Path<'a> {
    /// A path written out already (`metadata`, `context.user_agent`).
    Field(&'a str),
    /// A key of the object at the parent path.
    Key(&'a Path<'a>, &'a str),
    /// An item of the array at the parent path.
    Item(&'a Path<'a>, usize),
}

impl Path<'_> {
    fn text(&self) -> String {
        match self {
            Path::Field(path) => (*path).to_owned(),
            Path::Key(parent, key) => join(&parent.text(), key),
            Path::Item(parent, i) => format!("{}[{i}]", parent.text()),
        }
    }
}

#[derive(Default)]
struct Checker {
    errors: Vec<FieldError>,
}

impl Checker {
    fn err(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.errors.push(FieldError::new(path, message));
    }

    /// An optional text field, by its rule: `None` when missing or null.
    fn field(&mut self, obj: &Map<String, Value>, field: &Field) -> Option<String> {
        self.text(obj, field.key, field.path, field.max, field.text)
    }

    /// An optional string field: `None` when missing or null.
    fn text(
        &mut self,
        obj: &Map<String, Value>,
        key: &str,
        path: &str,
        max: usize,
        kind: Text,
    ) -> Option<String> {
        match obj.get(key) {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => self.check_text(path, s, max, kind).then(|| s.clone()),
            Some(_) => {
                self.err(path, "must be a string");
                None
            }
        }
    }

    fn check_text(&mut self, path: &str, s: &str, max: usize, kind: Text) -> bool {
        if s.len() > max {
            self.err(
                path,
                format!("must be at most {max} bytes (got {})", s.len()),
            );
            return false;
        }
        let bad = match kind {
            Text::Line | Text::Id => s.chars().any(char::is_control),
            Text::Prose => s
                .chars()
                .any(|c| c.is_control() && !matches!(c, '\n' | '\r' | '\t')),
        };
        if bad {
            self.err(path, "must not contain control characters");
            return false;
        }
        if matches!(kind, Text::Id)
            && let Some(c) = s.chars().find(|c| is_format_char(*c))
        {
            self.err(
                path,
                format!(
                    "must not contain invisible format characters (here U+{:04X}): they make different ids look alike",
                    u32::from(c)
                ),
            );
            return false;
        }
        true
    }

    /// A field's text: at most its bytes, of the characters it takes.
    fn check_field(&mut self, field: &Field, s: &str) -> bool {
        self.check_text(field.path, s, field.max, field.text)
    }

    /// A required identifier: a non-empty string, or an integer written as text.
    fn identifier(&mut self, obj: &Map<String, Value>, field: &Field) -> Option<String> {
        let path = field.path;
        match obj.get(field.key) {
            None | Some(Value::Null) => {
                self.err(path, "required");
                None
            }
            Some(Value::String(s)) => self.identifier_text(field, s).then(|| s.clone()),
            Some(Value::Number(n)) if n.is_i64() || n.is_u64() => Some(n.to_string()),
            Some(_) => {
                self.err(path, "must be a string (or an integer)");
                None
            }
        }
    }

    /// An identifier's text: not empty, not white space alone (a blank id
    /// names nobody: as empty as an empty one), and its field's rule.
    fn identifier_text(&mut self, field: &Field, s: &str) -> bool {
        if s.is_empty() {
            self.err(field.path, "must not be empty");
            return false;
        }
        if s.chars().all(char::is_whitespace) {
            self.err(field.path, "must not be white space alone");
            return false;
        }
        self.check_field(field, s)
    }

    fn object<'v>(
        &mut self,
        obj: &'v Map<String, Value>,
        key: &str,
    ) -> Option<&'v Map<String, Value>> {
        match obj.get(key) {
            None | Some(Value::Null) => None,
            Some(Value::Object(o)) => Some(o),
            Some(_) => {
                self.err(key, "must be an object");
                None
            }
        }
    }

    fn unknown_keys(
        &mut self,
        obj: &Map<String, Value>,
        parent: Path<'_>,
        allowed: &[&str],
        hint: &str,
    ) {
        for key in obj.keys().filter(|k| !allowed.contains(&k.as_str())) {
            self.err(
                Path::Key(&parent, key).text(),
                format!("unknown field; {hint}"),
            );
        }
    }

    /// Any JSON value inside changes, context or metadata: bounded depth,
    /// bounded key length, integers exact as doubles.
    fn value(&mut self, path: Path<'_>, value: &Value, depth: usize) {
        if depth > MAX_DEPTH {
            self.err(
                path.text(),
                format!("nested deeper than {MAX_DEPTH} levels"),
            );
            return;
        }
        match value {
            Value::Number(n) => {
                let exact = n
                    .as_u64()
                    .map(|u| u <= MAX_SAFE_INTEGER)
                    .or_else(|| n.as_i64().map(|i| i.unsigned_abs() <= MAX_SAFE_INTEGER));
                if exact == Some(false) {
                    self.err(
                        path.text(),
                        "integer is too large to be exact (beyond ±2^53−1); send it as a string",
                    );
                }
            }
            Value::Array(items) => {
                for (i, item) in items.iter().enumerate() {
                    self.value(Path::Item(&path, i), item, depth + 1);
                }
            }
            Value::Object(map) => self.members(path, map, depth),
            Value::Null | Value::Bool(_) | Value::String(_) => {}
        }
    }

    /// The members of an object at `depth`: keys bounded, values as [`Checker::value`].
    fn members(&mut self, path: Path<'_>, map: &Map<String, Value>, depth: usize) {
        for (key, item) in map {
            let item_path = Path::Key(&path, key);
            if key.len() > MAX_KEY_BYTES {
                self.err(
                    item_path.text(),
                    format!("key must be at most {MAX_KEY_BYTES} bytes"),
                );
                continue;
            }
            self.value(item_path, item, depth + 1);
        }
    }
}

/// A valid event but for its bulk (changes, metadata and the context's
/// other keys): checked with it, the bulk left in the value to be copied or
/// taken ([`assemble`] puts it in).
struct Checked(Event);

/// An event's bulk as the value held it, checked.
struct Bulk {
    changes: Option<Map<String, Value>>,
    metadata: Option<Map<String, Value>>,
    extra: Map<String, Value>,
}

impl Bulk {
    fn copied(obj: &Map<String, Value>) -> Self {
        let part = |key: &str| obj.get(key).and_then(Value::as_object);
        Bulk {
            changes: part("changes").cloned(),
            metadata: part("metadata").cloned(),
            extra: part("context").map_or_else(Map::new, |ctx| {
                ctx.iter()
                    .filter(|(k, v)| is_extra_context(k, v))
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect()
            }),
        }
    }

    fn taken(obj: &mut Map<String, Value>) -> Self {
        let mut part = |key: &str| match obj.remove(key) {
            Some(Value::Object(map)) => Some(map),
            _ => None,
        };
        Bulk {
            changes: part("changes"),
            metadata: part("metadata"),
            extra: part("context").map_or_else(Map::new, |ctx| {
                ctx.into_iter()
                    .filter(|(k, v)| is_extra_context(k, v))
                    .collect()
            }),
        }
    }
}

/// Validates `value` as an event, copying its bulk.
pub(super) fn event(value: &Value) -> Result<Event, Vec<FieldError>> {
    let checked = check(value)?;
    let Some(obj) = value.as_object() else {
        unreachable!("a checked event is an object")
    };
    let event = assemble(checked, Bulk::copied(obj));
    check_payload_size(&event)?;
    Ok(event)
}

/// Validates `value` as an event, taking its bulk out of it instead of
/// copying it. Refused, it is left as it was, except for an event refused
/// for its size as a whole: that is left as [`Event::to_json`] writes it.
pub(super) fn event_taking(value: &mut Value) -> Result<Event, Vec<FieldError>> {
    let checked = check(value)?;
    let Some(obj) = value.as_object_mut() else {
        unreachable!("a checked event is an object")
    };
    let event = assemble(checked, Bulk::taken(obj));
    if let Err(errors) = check_payload_size(&event) {
        *value = Value::Object(event.to_json());
        return Err(errors);
    }
    Ok(event)
}

/// Checks an event built in process (its typed parts are valid as built)
/// by the rules [`event`] applies to the same event sent as JSON: the same
/// errors, at the same paths, in the same order.
pub(super) fn typed(event: &Event) -> Result<(), Vec<FieldError>> {
    if event.context.as_ref().is_some_and(|c| {
        c.extra
            .iter()
            .any(|(k, v)| v.is_null() || !is_other_context_key(k))
    }) {
        // Other keys that the event written as JSON does not read back as
        // they are (a named key, read as that key; a null, read as left
        // out): never built so by Trailmark, checked as they would read.
        return self::event(&Value::Object(event.to_json())).map(|_| ());
    }
    let mut c = Checker::default();
    c.identifier_text(&ACTOR_ID, &event.actor.id);
    if let Some(name) = &event.actor.name {
        c.check_field(&ACTOR_NAME, name);
    }
    action_text(&mut c, &event.action);
    if let Some(resource) = &event.resource {
        c.identifier_text(&RESOURCE_TYPE, &resource.kind);
        if let Some(id) = &resource.id {
            c.identifier_text(&RESOURCE_ID, id);
        }
        if let Some(name) = &resource.name {
            c.check_field(&RESOURCE_NAME, name);
        }
    }
    if let Some(reason) = &event.reason {
        c.check_field(&REASON, reason);
    }
    if let Some(changes) = &event.changes
        && changed_fields(&mut c, changes.len())
    {
        for (field, change) in changes {
            let path = Path::Key(&Path::Field("changes"), field);
            if changed_field_name(&mut c, path, field) {
                c.value(Path::Key(&path, "old"), &change.old, 2);
                c.value(Path::Key(&path, "new"), &change.new, 2);
            }
        }
    }
    if let Some(context) = &event.context {
        for (field, (_, text)) in NAMED_CONTEXT.iter().zip(context.named_texts()) {
            if let Some(text) = text {
                c.check_field(field, text);
            }
        }
        other_context(&mut c, &context.extra);
    }
    if let Some(metadata) = &event.metadata {
        c.members(Path::Field("metadata"), metadata, 0);
    }
    if !c.errors.is_empty() {
        return Err(c.errors);
    }
    check_payload_size(event)
}

fn assemble(Checked(mut event): Checked, bulk: Bulk) -> Event {
    event.changes = bulk.changes.map(into_changes);
    event.metadata = bulk.metadata;
    if let Some(context) = &mut event.context {
        context.extra = bulk.extra;
    }
    event
}

/// Checked changes (each an object of `old` and `new` at most) as [`Changes`].
fn into_changes(map: Map<String, Value>) -> Changes {
    map.into_iter()
        .map(|(field, pair)| {
            let mut pair = match pair {
                Value::Object(pair) => pair,
                _ => Map::new(),
            };
            let mut side = |key: &str| pair.remove(key).unwrap_or(Value::Null);
            let (old, new) = (side("old"), side("new"));
            (field, Change { old, new })
        })
        .collect()
}

fn check(value: &Value) -> Result<Checked, Vec<FieldError>> {
    let Some(obj) = value.as_object() else {
        return Err(vec![FieldError::new("", "an event must be a JSON object")]);
    };
    let mut c = Checker::default();
    c.unknown_keys(
        obj,
        Path::Field(""),
        TOP_LEVEL,
        "custom data goes under metadata",
    );

    let id = c
        .text(obj, "id", "id", 64, Text::Line)
        .and_then(|s| EventId::parse(&s).map_err(|m| c.err("id", m)).ok());
    let occurred_at = c
        .text(
            obj,
            "occurred_at",
            "occurred_at",
            Timestamp::MAX_TEXT_BYTES,
            Text::Line,
        )
        .and_then(|s| {
            Timestamp::parse(&s)
                .map_err(|m| c.err("occurred_at", m))
                .ok()
        });
    let tenant = c
        .text(obj, "tenant", "tenant", TenantId::MAX_LEN, Text::Line)
        .and_then(|s| TenantId::new(&s).map_err(|m| c.err("tenant", m)).ok());
    let actor = actor(&mut c, obj);
    let action = action(&mut c, obj);
    let resource = resource(&mut c, obj);
    let outcome = match c.text(obj, "outcome", "outcome", 16, Text::Line) {
        None => Some(Outcome::Success),
        Some(s) => Outcome::parse(&s).or_else(|| {
            c.err("outcome", format!("must be one of {}", Outcome::choices()));
            None
        }),
    };
    let reason = c.field(obj, &REASON);
    if let Some(m) = c.object(obj, "changes") {
        changes(&mut c, m);
    }
    let context = c.object(obj, "context").map(|m| context(&mut c, m));
    if let Some(m) = c.object(obj, "metadata") {
        c.members(Path::Field("metadata"), m, 0);
    }

    match (actor, action, outcome) {
        (Some(actor), Some(action), Some(outcome)) if c.errors.is_empty() => Ok(Checked(Event {
            id,
            occurred_at,
            tenant,
            actor,
            action,
            resource,
            outcome,
            reason,
            changes: None,
            context,
            metadata: None,
        })),
        _ => Err(c.errors),
    }
}

fn check_payload_size(event: &Event) -> Result<(), Vec<FieldError>> {
    // Most payloads are far below the limit: the bound (read in place)
    // says so without writing the payload.
    if event.payload_size_bound() <= MAX_PAYLOAD_BYTES {
        return Ok(());
    }
    let size = CanonicalJson::of_map("payload", &event.payload())
        .map_err(|e| vec![FieldError::new("", e.to_string())])?
        .as_bytes()
        .len();
    if size > MAX_PAYLOAD_BYTES {
        return Err(vec![FieldError::new(
            "",
            format!(
                "names, reason, changes, context and metadata together are {size} bytes as canonical JSON; at most {MAX_PAYLOAD_BYTES}"
            ),
        )]);
    }
    Ok(())
}

fn actor(c: &mut Checker, obj: &Map<String, Value>) -> Option<Actor> {
    let Some(actor) = c.object(obj, "actor") else {
        if obj.get("actor").is_none_or(Value::is_null) {
            c.err("actor", "required: an object with id and type");
        }
        return None;
    };
    c.unknown_keys(
        actor,
        Path::Field("actor"),
        &["id", "type", "name"],
        "an actor has id, type and name",
    );
    let id = c.identifier(actor, &ACTOR_ID);
    let kind = match actor.get("type") {
        None | Some(Value::Null) => {
            c.err(
                "actor.type",
                format!("required: one of {}", ActorType::choices()),
            );
            None
        }
        Some(Value::String(s)) => ActorType::parse(s).or_else(|| {
            c.err(
                "actor.type",
                format!("must be one of {}", ActorType::choices()),
            );
            None
        }),
        Some(_) => {
            c.err(
                "actor.type",
                format!("must be a string: one of {}", ActorType::choices()),
            );
            None
        }
    };
    let name = c.field(actor, &ACTOR_NAME);
    Some(Actor {
        id: id?,
        kind: kind?,
        name,
    })
}

fn action(c: &mut Checker, obj: &Map<String, Value>) -> Option<String> {
    match obj.get("action") {
        None | Some(Value::Null) => {
            c.err("action", "required");
            None
        }
        Some(Value::String(s)) => action_text(c, s).then(|| s.clone()),
        Some(_) => {
            c.err("action", "must be a string");
            None
        }
    }
}

/// An action's text: words of letters, digits, `_` or `-` joined by dots.
fn action_text(c: &mut Checker, s: &str) -> bool {
    const RULE: &str = "must be words of letters, digits, '_' or '-' joined by single dots (login_failed, admin.key.create)";
    if s.len() > MAX_NAME_BYTES {
        c.err("action", format!("must be at most {MAX_NAME_BYTES} bytes"));
        return false;
    }
    let ok = s.split('.').all(|word| {
        !word.is_empty()
            && word
                .chars()
                .all(|ch| ch.is_ascii_alphanumeric() || matches!(ch, '_' | '-'))
    });
    if !ok {
        c.err("action", RULE);
    }
    ok
}

fn resource(c: &mut Checker, obj: &Map<String, Value>) -> Option<Resource> {
    let resource = c.object(obj, "resource")?;
    c.unknown_keys(
        resource,
        Path::Field("resource"),
        &["type", "id", "name"],
        "a resource has type, id and name",
    );
    let kind = c.identifier(resource, &RESOURCE_TYPE);
    let id = match resource.get("id") {
        None | Some(Value::Null) => None,
        Some(_) => c.identifier(resource, &RESOURCE_ID),
    };
    let name = c.field(resource, &RESOURCE_NAME);
    Some(Resource {
        kind: kind?,
        id,
        name,
    })
}

/// How many fields changed: at most [`MAX_CHANGED_FIELDS`].
fn changed_fields(c: &mut Checker, count: usize) -> bool {
    if count > MAX_CHANGED_FIELDS {
        c.err(
            "changes",
            format!("at most {MAX_CHANGED_FIELDS} fields (got {count})"),
        );
        return false;
    }
    true
}

/// A changed field's name: 1 to [`MAX_KEY_BYTES`] bytes.
fn changed_field_name(c: &mut Checker, path: Path<'_>, field: &str) -> bool {
    if field.is_empty() || field.len() > MAX_KEY_BYTES {
        c.err(
            path.text(),
            format!("field names must be 1 to {MAX_KEY_BYTES} bytes"),
        );
        return false;
    }
    true
}

fn changes(c: &mut Checker, map: &Map<String, Value>) {
    if !changed_fields(c, map.len()) {
        return;
    }
    for (field, pair) in map {
        let path = Path::Key(&Path::Field("changes"), field);
        if !changed_field_name(c, path, field) {
            continue;
        }
        let Some(pair) = pair.as_object() else {
            c.err(path.text(), "must be an object {\"old\": …, \"new\": …}");
            continue;
        };
        c.unknown_keys(pair, path, &["old", "new"], "a change has only old and new");
        for side in ["old", "new"] {
            if let Some(value) = pair.get(side) {
                c.value(Path::Key(&path, side), value, 2);
            }
        }
    }
}

/// The context's named keys besides `ip`, their paths and their bounds, in
/// the order of [`Context`]'s fields `user_agent`, `request_id`,
/// `session_id`, `source` and `impersonator` (read into them by [`context`],
/// written from them by `Context::named_texts`): the one list of them.
pub(super) const NAMED_CONTEXT: [Field; 5] = [
    field(
        "user_agent",
        "context.user_agent",
        MAX_USER_AGENT_BYTES,
        Text::Line,
    ),
    field("request_id", "context.request_id", MAX_ID_BYTES, Text::Line),
    field("session_id", "context.session_id", MAX_ID_BYTES, Text::Line),
    field("source", "context.source", MAX_SOURCE_BYTES, Text::Line),
    field(
        "impersonator",
        "context.impersonator",
        MAX_ID_BYTES,
        Text::Line,
    ),
];

/// One of the context's other keys: neither `ip` nor a named one.
fn is_other_context_key(key: &str) -> bool {
    key != "ip" && !NAMED_CONTEXT.iter().any(|f| f.key == key)
}

/// One of the context's other keys with a value (null is the key left out).
fn is_extra_context(key: &str, value: &Value) -> bool {
    is_other_context_key(key) && !value.is_null()
}

/// The context's named keys, checked, and its other keys checked (left in
/// the value: [`Bulk`] copies or takes them).
fn context(c: &mut Checker, map: &Map<String, Value>) -> Context {
    let ip = c
        .text(map, "ip", "context.ip", 64, Text::Line)
        .and_then(|s| {
            s.parse()
                .map_err(|_| c.err("context.ip", "not an IP address"))
                .ok()
        });
    let [user_agent, request_id, session_id, source, impersonator] =
        NAMED_CONTEXT.map(|field| c.field(map, &field));
    let ctx = Context {
        ip,
        user_agent,
        request_id,
        session_id,
        source,
        impersonator,
        extra: Map::new(),
    };
    other_context(c, map);
    ctx
}

/// The context's other keys (neither `ip` nor a named one): at most
/// [`MAX_EXTRA_CONTEXT_KEYS`], each a scalar or null under a bounded key.
fn other_context(c: &mut Checker, map: &Map<String, Value>) {
    let extra: Vec<_> = map
        .iter()
        .filter(|(k, _)| is_other_context_key(k))
        .collect();
    if extra.len() > MAX_EXTRA_CONTEXT_KEYS {
        c.err("context", format!("at most {MAX_EXTRA_CONTEXT_KEYS} keys besides the named ones; put the rest in metadata"));
        return;
    }
    for (key, value) in extra {
        let path = Path::Key(&Path::Field("context"), key);
        match value {
            Value::Null => {}
            Value::Array(_) | Value::Object(_) => c.err(path.text(), "context values must be strings, numbers or booleans; put structured data in metadata"),
            _ => {
                if key.len() > MAX_KEY_BYTES {
                    c.err(path.text(), format!("key must be at most {MAX_KEY_BYTES} bytes"));
                } else {
                    c.value(path, value, 1);
                }
            }
        }
    }
}
