//! The audit event a producer sends, and its validation.

mod payload;
mod validate;

pub use validate::{is_format_char, join as path_join};

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use crate::{ActorType, EventId, FieldError, Outcome, TenantId, Timestamp};

/// One changed field: its value before and after. A create has `old: null`
/// for every field, a delete `new: null`.
#[derive(Clone, Debug, PartialEq)]
pub struct Change {
    pub old: Value,
    pub new: Value,
}

/// Changed fields by name, in name order.
pub type Changes = BTreeMap<String, Change>;

/// Who acted.
#[derive(Clone, Debug, PartialEq)]
pub struct Actor {
    pub id: String,
    pub kind: ActorType,
    pub name: Option<String>,
}

/// What was acted on.
#[derive(Clone, Debug, PartialEq)]
pub struct Resource {
    pub kind: String,
    pub id: Option<String>,
    pub name: Option<String>,
}

/// Where the action came from. Named keys are validated; other keys (at most
/// [`crate::limits::MAX_EXTRA_CONTEXT_KEYS`]) are kept as given.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct Context {
    pub ip: Option<std::net::IpAddr>,
    pub user_agent: Option<String>,
    pub request_id: Option<String>,
    pub session_id: Option<String>,
    pub source: Option<String>,
    pub impersonator: Option<String>,
    pub extra: Map<String, Value>,
}

/// A validated event, as sent: defaults (id, tenant, time) not yet applied.
#[derive(Clone, Debug, PartialEq)]
pub struct Event {
    pub id: Option<EventId>,
    pub occurred_at: Option<Timestamp>,
    pub tenant: Option<TenantId>,
    pub actor: Actor,
    pub action: String,
    pub resource: Option<Resource>,
    pub outcome: Outcome,
    pub reason: Option<String>,
    pub changes: Option<Changes>,
    pub context: Option<Context>,
    pub metadata: Option<Map<String, Value>>,
}

impl Event {
    /// Validates a JSON value as an event, reporting every problem found
    /// with its field path, or none.
    pub fn from_json(value: &Value) -> Result<Self, Vec<FieldError>> {
        validate::event(value)
    }

    /// [`Event::from_json`] taking the event's bulk (its changes, metadata
    /// and the context's other keys) out of `value` instead of copying it,
    /// for a caller done with the value once it is an event. A refused
    /// value is left as it was, except for an event refused for its size
    /// as a whole: that is left as [`Event::to_json`] writes it.
    pub fn take_from_json(value: &mut Value) -> Result<Self, Vec<FieldError>> {
        validate::event_taking(value)
    }

    /// Checks an event built in process (not read from JSON) by the rules
    /// [`Event::from_json`] applies: `Ok` exactly when the event written as
    /// JSON ([`Event::to_json`]) would be read back, else the same errors
    /// that reading would report. Its typed parts (id, time, tenant, actor
    /// type, outcome, address) are valid as built; this checks the rest
    /// (the texts' lengths and characters, the action, the values' depth
    /// and integers, the keys, the counts and the payload's size) without
    /// writing the event out.
    pub fn check(&self) -> Result<(), Vec<FieldError>> {
        validate::typed(self)
    }

    /// The event as a producer sends it (the JSON [`Event::from_json`]
    /// reads back to this event): what an in-process producer that validated
    /// once sends to a server over HTTP. Absent parts are left out; the
    /// outcome is always written. Built from [`Event::producer_json`], the
    /// one definition of that JSON.
    pub fn to_json(&self) -> Map<String, Value> {
        match serde_json::to_value(self.producer_json()) {
            Ok(Value::Object(map)) => map,
            _ => unreachable!("an event is written as an object with string keys"),
        }
    }

    /// [`Event::to_json`] borrowed instead of built: serialized in place (a
    /// batch written as a request body copies no value into a map first).
    pub fn producer_json(&self) -> impl serde::Serialize + '_ {
        payload::ProducerJson(self)
    }

    /// At least the size of [`Event::payload`] as canonical JSON, read from
    /// the parts in place (nothing is copied or written): a string's byte
    /// counts 6 (as an escaped control character would), a number 32 (the
    /// longest ECMAScript form is 24), and every key, quote, colon, comma
    /// and bracket besides. Validation takes the exact size only when this
    /// bound passes the limit.
    pub fn payload_size_bound(&self) -> usize {
        let mut size = 2;
        if let Some(name) = &self.actor.name {
            size += member_bound("actor_name", text_bound(name));
        }
        if let Some(name) = self.resource.as_ref().and_then(|r| r.name.as_ref()) {
            size += member_bound("resource_name", text_bound(name));
        }
        if let Some(reason) = &self.reason {
            size += member_bound("reason", text_bound(reason));
        }
        if let Some(changes) = &self.changes {
            let pairs: usize = changes
                .iter()
                .map(|(field, c)| {
                    member_bound(
                        field,
                        2 + member_bound("old", json_bound(&c.old))
                            + member_bound("new", json_bound(&c.new)),
                    )
                })
                .sum();
            size += member_bound("changes", 2 + pairs);
        }
        if let Some(c) = &self.context {
            let named: usize = c
                .named_texts()
                .iter()
                .map(|(key, t)| member_bound(key, t.map_or(0, text_bound)))
                .sum();
            let ip = member_bound("ip", 2 + 6 * 45);
            size += member_bound("context", 2 + named + ip + object_bound(&c.extra));
        }
        if let Some(metadata) = &self.metadata {
            size += member_bound("metadata", 2 + object_bound(metadata));
        }
        size
    }

    /// The payload: every part of the event that may carry personal data
    /// (names, reason, values, context, metadata). Absent parts are left out.
    pub fn payload(&self) -> Map<String, Value> {
        let mut payload = Map::new();
        if let Some(name) = &self.actor.name {
            payload.insert("actor_name".into(), Value::String(name.clone()));
        }
        if let Some(name) = self.resource.as_ref().and_then(|r| r.name.as_ref()) {
            payload.insert("resource_name".into(), Value::String(name.clone()));
        }
        self.insert_payload_parts(&mut payload);
        payload
    }

    /// The canonical bytes of [`Event::payload`], written from the event
    /// in place when that gives the same bytes (nearly always), else from
    /// the map.
    pub(crate) fn canonical_payload(&self) -> Result<crate::CanonicalJson, crate::Error> {
        payload::canonical(self)
    }

    /// The payload's parts named the same in the payload and in the event
    /// as sent (reason, changes, context, metadata), inserted into `out`.
    fn insert_payload_parts(&self, out: &mut Map<String, Value>) {
        if let Some(reason) = &self.reason {
            out.insert("reason".into(), Value::String(reason.clone()));
        }
        if let Some(changes) = &self.changes {
            out.insert("changes".into(), changes_to_json(changes));
        }
        if let Some(context) = &self.context {
            out.insert("context".into(), Value::Object(context.to_json()));
        }
        if let Some(metadata) = &self.metadata {
            out.insert("metadata".into(), Value::Object(metadata.clone()));
        }
    }
}

/// At most the canonical JSON size of a string: its quotes and each byte
/// escaped (`\u001f`, 6 bytes, is the longest escape).
fn text_bound(text: &str) -> usize {
    2 + 6 * text.len()
}

/// `"key":value,` for a member whose value is bounded by `value`.
fn member_bound(key: &str, value: usize) -> usize {
    text_bound(key) + 1 + value + 1
}

/// The members of an object, as [`json_bound`] counts them.
fn object_bound(map: &Map<String, Value>) -> usize {
    map.iter()
        .map(|(k, v)| member_bound(k, json_bound(v)))
        .sum()
}

/// At most the canonical JSON size of a value (see
/// [`Event::payload_size_bound`]).
fn json_bound(value: &Value) -> usize {
    match value {
        Value::Null | Value::Bool(_) => 5,
        Value::Number(_) => 32,
        Value::String(s) => text_bound(s),
        Value::Array(items) => 2 + items.iter().map(|v| json_bound(v) + 1).sum::<usize>(),
        Value::Object(map) => 2 + object_bound(map),
    }
}

/// A member of a context as the payload writes it.
pub(crate) enum ContextMember<'a> {
    /// One of the other keys' values.
    Value(&'a Value),
    /// A named key's text.
    Text(&'a str),
    /// The address, as text.
    Ip(String),
}

impl ContextMember<'_> {
    fn to_value(&self) -> Value {
        match self {
            ContextMember::Value(v) => (*v).clone(),
            ContextMember::Text(t) => Value::String((*t).to_owned()),
            ContextMember::Ip(t) => Value::String(t.clone()),
        }
    }
}

impl Context {
    /// The context as a JSON object, leaving out absent keys.
    pub fn to_json(&self) -> Map<String, Value> {
        self.members()
            .into_iter()
            .map(|(key, member)| (key.to_owned(), member.to_value()))
            .collect()
    }

    /// The context's members in key order, absent keys left out: the other
    /// keys, and the named ones over them. The one rule of
    /// [`Context::to_json`] and of the payload written in place.
    pub(crate) fn members(&self) -> BTreeMap<&str, ContextMember<'_>> {
        let mut out: BTreeMap<&str, ContextMember<'_>> = self
            .extra
            .iter()
            .map(|(k, v)| (k.as_str(), ContextMember::Value(v)))
            .collect();
        if let Some(ip) = self.ip {
            out.insert("ip", ContextMember::Ip(ip.to_string()));
        }
        for (key, value) in self.named_texts() {
            if let Some(value) = value {
                out.insert(key, ContextMember::Text(value));
            }
        }
        out
    }

    /// The named keys whose values are text, with their values, in the
    /// validator's order of them (`ip`, an address, is written on its own).
    fn named_texts(&self) -> [(&'static str, Option<&str>); 5] {
        let values = [
            self.user_agent.as_deref(),
            self.request_id.as_deref(),
            self.session_id.as_deref(),
            self.source.as_deref(),
            self.impersonator.as_deref(),
        ];
        std::array::from_fn(|i| (validate::NAMED_CONTEXT[i].key, values[i]))
    }
}

/// `{"field": {"old": …, "new": …}, …}`.
pub fn changes_to_json(changes: &Changes) -> Value {
    changes_into_json(changes.clone())
}

/// [`changes_to_json`], moving the values instead of copying them.
pub fn changes_into_json(changes: Changes) -> Value {
    Value::Object(
        changes
            .into_iter()
            .map(|(field, change)| {
                let mut pair = Map::new();
                pair.insert("old".into(), change.old);
                pair.insert("new".into(), change.new);
                (field, Value::Object(pair))
            })
            .collect(),
    )
}
