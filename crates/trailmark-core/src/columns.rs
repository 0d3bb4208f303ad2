//! The query columns a store keeps beside each entry, and the one rule that
//! derives them from the envelope and payload.
//!
//! Stores index these columns so filters and stats need not parse every
//! envelope; verifiers recompute them with the same rule and fail on any
//! difference, so editing a column (to hide an event from `?actor=` or to
//! fake `/v1/stats`) is as visible as editing the envelope.

use std::borrow::Cow;
use std::fmt;
use std::marker::PhantomData;

use serde::de::{self, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

use crate::Envelope;

/// The keys of a payload's `context` whose strings are query columns.
const IP: &str = "ip";
const REQUEST_ID: &str = "request_id";

/// What a store indexes of one entry. Every field is a function of the
/// envelope, except `ip` and `request_id`, which come from the payload (and
/// go with it when the payload is erased).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IndexedColumns {
    pub tenant: String,
    pub seq: u64,
    pub id: String,
    /// `occurred_at`, Unix milliseconds.
    pub occurred_at: i64,
    pub actor_id: String,
    pub action: String,
    pub resource_type: Option<String>,
    pub resource_id: Option<String>,
    pub outcome: String,
    pub ip: Option<String>,
    /// `context.request_id` of the payload: the request that made it.
    pub request_id: Option<String>,
}

/// The columns an entry must have, borrowed from its envelope and its
/// payload's `context`: the one rule. [`IndexedColumns::derive`] copies it
/// out for a store; [`IndexedColumns::differences`] compares a stored row
/// with it in place.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ColumnsOf<'a> {
    pub tenant: &'a str,
    pub seq: u64,
    /// The id's text form.
    pub id: [u8; 36],
    pub occurred_at: i64,
    pub actor_id: &'a str,
    pub action: &'a str,
    pub resource_type: Option<&'a str>,
    pub resource_id: Option<&'a str>,
    pub outcome: &'a str,
    pub ip: Option<&'a str>,
    pub request_id: Option<&'a str>,
}

impl<'a> ColumnsOf<'a> {
    /// Every column from the envelope, except `ip` and `request_id`:
    /// strings the payload's `context` records under those names.
    pub fn new(envelope: &'a Envelope, context: Option<&'a Value>) -> Self {
        let context_str = |key: &str| context?.get(key)?.as_str();
        Self::with_context(envelope, context_str(IP), context_str(REQUEST_ID))
    }

    /// Every column from the envelope, with `ip` and `request_id` as read
    /// from the payload's `context` (by [`Self::new`] or
    /// [`context_of_text`]).
    pub fn with_context(
        envelope: &'a Envelope,
        ip: Option<&'a str>,
        request_id: Option<&'a str>,
    ) -> Self {
        Self {
            tenant: envelope.tenant.as_str(),
            seq: envelope.seq.get(),
            id: envelope.id.to_text(),
            occurred_at: envelope.occurred_at.unix_millis(),
            actor_id: &envelope.actor_id,
            action: &envelope.action,
            resource_type: envelope.resource_type.as_deref(),
            resource_id: envelope.resource_id.as_deref(),
            outcome: envelope.outcome.as_str(),
            ip,
            request_id,
        }
    }

    /// The columns of an entry with this payload (`None` once erased).
    pub fn of_payload(envelope: &'a Envelope, payload: Option<&'a Map<String, Value>>) -> Self {
        Self::new(envelope, payload.and_then(|p| p.get("context")))
    }

    pub fn to_owned(&self) -> IndexedColumns {
        self.as_stored().owned()
    }

    /// The columns as a store keeps them (the id as text).
    pub fn as_stored(&self) -> StoredColumns<'_> {
        StoredColumns {
            tenant: self.tenant,
            seq: self.seq,
            // The text form of an id is ASCII.
            id: std::str::from_utf8(&self.id).unwrap_or_default(),
            occurred_at: self.occurred_at,
            actor_id: self.actor_id,
            action: self.action,
            resource_type: self.resource_type,
            resource_id: self.resource_id,
            outcome: self.outcome,
            ip: self.ip,
            request_id: self.request_id,
        }
    }
}

/// The strings of a payload's `context` that are query columns: `ip` and
/// `request_id`, when the context is an object that holds them as strings.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ContextColumns<'a> {
    pub ip: Option<Cow<'a, str>>,
    pub request_id: Option<Cow<'a, str>>,
}

/// The [`ContextColumns`] of a payload given as canonical JSON text (as
/// stores keep it; canonical text has no duplicate keys), read without
/// building the payload or its context: strings without escapes are
/// borrowed from the text. `None` when the text is not a JSON object.
pub fn context_of_text(payload: &str) -> Option<ContextColumns<'_>> {
    #[derive(serde::Deserialize)]
    struct Head<'a> {
        #[serde(default, borrow)]
        context: ContextColumns<'a>,
    }
    serde_json::from_str::<Head<'_>>(payload)
        .ok()
        .map(|h| h.context)
}

/// A visitor's answer to `null`, booleans and numbers: `$none`, what they
/// hold being no column.
macro_rules! read_past_scalars {
    ($none:expr) => {
        fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
            Ok($none)
        }
        fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
            Ok($none)
        }
        fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
            Ok($none)
        }
        fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
            Ok($none)
        }
        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok($none)
        }
    };
}

/// Any JSON value: an object's column strings are kept, everything else
/// is read past.
impl<'de: 'a, 'a> serde::Deserialize<'de> for ContextColumns<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Context<'a>(PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for Context<'a> {
            type Value = ContextColumns<'a>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut out = ContextColumns::default();
                while let Some(key) = map.next_key::<Key>()? {
                    match key {
                        Key::Ip => out.ip = map.next_value::<StrOrOther<'a>>()?.0,
                        Key::RequestId => out.request_id = map.next_value::<StrOrOther<'a>>()?.0,
                        Key::Other => {
                            map.next_value::<IgnoredAny>()?;
                        }
                    }
                }
                Ok(out)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
                IgnoredAny.visit_seq(seq).map(|_| ContextColumns::default())
            }
            fn visit_str<E: de::Error>(self, _: &str) -> Result<Self::Value, E> {
                Ok(ContextColumns::default())
            }
            read_past_scalars!(ContextColumns::default());
        }
        d.deserialize_any(Context(PhantomData))
    }
}

/// A key of the context: one of the column keys, or another.
enum Key {
    Ip,
    RequestId,
    Other,
}

impl<'de> serde::Deserialize<'de> for Key {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct KeyName;
        impl Visitor<'_> for KeyName {
            type Value = Key;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a key")
            }
            fn visit_str<E: de::Error>(self, key: &str) -> Result<Key, E> {
                Ok(match key {
                    IP => Key::Ip,
                    REQUEST_ID => Key::RequestId,
                    _ => Key::Other,
                })
            }
        }
        d.deserialize_str(KeyName)
    }
}

/// A value that is a string (kept, borrowed when it can be) or anything
/// else (read past: no column).
struct StrOrOther<'a>(Option<Cow<'a, str>>);

impl<'de: 'a, 'a> serde::Deserialize<'de> for StrOrOther<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct AnyValue<'a>(PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for AnyValue<'a> {
            type Value = StrOrOther<'a>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_borrowed_str<E: de::Error>(self, s: &'de str) -> Result<Self::Value, E> {
                Ok(StrOrOther(Some(Cow::Borrowed(s))))
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<Self::Value, E> {
                Ok(StrOrOther(Some(Cow::Owned(s.to_owned()))))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
                IgnoredAny.visit_map(map).map(|_| StrOrOther(None))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
                IgnoredAny.visit_seq(seq).map(|_| StrOrOther(None))
            }
            read_past_scalars!(StrOrOther(None));
        }
        d.deserialize_any(AnyValue(PhantomData))
    }
}

impl IndexedColumns {
    /// The columns of an entry with this envelope and payload (`None` once
    /// erased).
    pub fn derive(envelope: &Envelope, payload: Option<&Map<String, Value>>) -> Self {
        ColumnsOf::of_payload(envelope, payload).to_owned()
    }

    /// The names of the columns that differ from `expected`, in table order.
    pub fn differences(&self, expected: &ColumnsOf<'_>) -> Vec<&'static str> {
        self.view().differences(expected)
    }

    /// The columns borrowed.
    pub fn view(&self) -> StoredColumns<'_> {
        StoredColumns {
            tenant: &self.tenant,
            seq: self.seq,
            id: &self.id,
            occurred_at: self.occurred_at,
            actor_id: &self.actor_id,
            action: &self.action,
            resource_type: self.resource_type.as_deref(),
            resource_id: self.resource_id.as_deref(),
            outcome: &self.outcome,
            ip: self.ip.as_deref(),
            request_id: self.request_id.as_deref(),
        }
    }
}

/// A store's columns of one entry, borrowed: from an [`IndexedColumns`],
/// or from a page of rows read in place.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StoredColumns<'a> {
    pub tenant: &'a str,
    pub seq: u64,
    pub id: &'a str,
    pub occurred_at: i64,
    pub actor_id: &'a str,
    pub action: &'a str,
    pub resource_type: Option<&'a str>,
    pub resource_id: Option<&'a str>,
    pub outcome: &'a str,
    pub ip: Option<&'a str>,
    pub request_id: Option<&'a str>,
}

impl StoredColumns<'_> {
    /// The columns copied out.
    pub fn owned(&self) -> IndexedColumns {
        IndexedColumns {
            tenant: self.tenant.to_owned(),
            seq: self.seq,
            id: self.id.to_owned(),
            occurred_at: self.occurred_at,
            actor_id: self.actor_id.to_owned(),
            action: self.action.to_owned(),
            resource_type: self.resource_type.map(str::to_owned),
            resource_id: self.resource_id.map(str::to_owned),
            outcome: self.outcome.to_owned(),
            ip: self.ip.map(str::to_owned),
            request_id: self.request_id.map(str::to_owned),
        }
    }

    /// The names of the columns that differ from `expected`, in table order.
    pub fn differences(&self, expected: &ColumnsOf<'_>) -> Vec<&'static str> {
        let expected = expected.as_stored();
        let mut out = Vec::new();
        let mut check = |same: bool, name| {
            if !same {
                out.push(name);
            }
        };
        check(self.tenant == expected.tenant, "tenant");
        check(self.seq == expected.seq, "seq");
        check(self.id == expected.id, "id");
        check(self.occurred_at == expected.occurred_at, "occurred_at");
        check(self.actor_id == expected.actor_id, "actor_id");
        check(self.action == expected.action, "action");
        check(
            self.resource_type == expected.resource_type,
            "resource_type",
        );
        check(self.resource_id == expected.resource_id, "resource_id");
        check(self.outcome == expected.outcome, "outcome");
        check(self.ip == expected.ip, "ip");
        check(self.request_id == expected.request_id, "request_id");
        out
    }
}
