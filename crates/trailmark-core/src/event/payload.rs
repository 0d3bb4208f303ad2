//! The event written in place, without copying every value it holds into a
//! map first (and dropping the copy after): the payload's canonical bytes
//! (the same bytes as canonicalizing [`Event::payload`]), and the event as a
//! producer sends it ([`Event::to_json`]'s one definition).

use serde::ser::{Serialize, SerializeMap, Serializer};

use super::{Actor, Change, Changes, Context, ContextMember, Event, Resource};
use crate::Error;
use crate::canonical::{
    CanonicalJson, compact_is_canonical, key_is_canonical, map_is_canonical, maps_are_sorted,
};

/// The canonical bytes of `event.payload()`.
pub(super) fn canonical(event: &Event) -> Result<CanonicalJson, Error> {
    let view = Payload(event);
    if view.compact_is_canonical() {
        CanonicalJson::of_compact("payload", &view)
    } else {
        CanonicalJson::of_map("payload", &event.payload())
    }
}

/// The payload borrowed from the event: serializes as [`Event::payload`]'s
/// map does (keys in sorted order, absent parts left out).
struct Payload<'a>(&'a Event);

impl Payload<'_> {
    /// Whether `serde_json`'s compact output of this view is the payload's
    /// canonical form: the same condition [`CanonicalJson::of_map`] checks
    /// on the map (the top-level keys are ASCII, names and reason strings).
    fn compact_is_canonical(&self) -> bool {
        let e = self.0;
        maps_are_sorted()
            && e.changes.as_ref().is_none_or(|changes| {
                changes.iter().all(|(field, c)| {
                    key_is_canonical(field)
                        && compact_is_canonical(&c.old)
                        && compact_is_canonical(&c.new)
                })
            })
            && e.context
                .as_ref()
                .is_none_or(|c| map_is_canonical(&c.extra))
            && e.metadata.as_ref().is_none_or(map_is_canonical)
    }
}

impl Serialize for Payload<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let e = self.0;
        // The keys in their sorted order.
        let mut map = s.serialize_map(None)?;
        if let Some(name) = &e.actor.name {
            map.serialize_entry("actor_name", name)?;
        }
        shared_parts(&mut map, e)?;
        if let Some(name) = e.resource.as_ref().and_then(|r| r.name.as_ref()) {
            map.serialize_entry("resource_name", name)?;
        }
        map.end()
    }
}

/// The payload's parts named the same in the payload and in the event as
/// sent (changes, context, metadata, reason; absent ones left out), in
/// their sorted order: the in-place twin of `Event::insert_payload_parts`,
/// written by both views.
fn shared_parts<M: SerializeMap>(map: &mut M, e: &Event) -> Result<(), M::Error> {
    if let Some(changes) = &e.changes {
        map.serialize_entry("changes", &ChangesView(changes))?;
    }
    if let Some(context) = &e.context {
        map.serialize_entry("context", &ContextView(context))?;
    }
    if let Some(metadata) = &e.metadata {
        map.serialize_entry("metadata", metadata)?;
    }
    if let Some(reason) = &e.reason {
        map.serialize_entry("reason", reason)?;
    }
    Ok(())
}

/// The event as a producer sends it, borrowed: what [`Event::to_json`]
/// holds, serialized in place (absent parts left out, the outcome always
/// written; the envelope's keys first, then the payload's parts: a JSON
/// object's order means nothing, and `to_json`'s map sorts them).
pub(super) struct ProducerJson<'a>(pub(super) &'a Event);

impl Serialize for ProducerJson<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let e = self.0;
        let mut map = s.serialize_map(None)?;
        map.serialize_entry("action", &e.action)?;
        map.serialize_entry("actor", &ActorView(&e.actor))?;
        if let Some(id) = &e.id {
            map.serialize_entry("id", &Shown(id))?;
        }
        if let Some(at) = &e.occurred_at {
            map.serialize_entry("occurred_at", &Shown(at))?;
        }
        map.serialize_entry("outcome", e.outcome.as_str())?;
        if let Some(resource) = &e.resource {
            map.serialize_entry("resource", &ResourceView(resource))?;
        }
        if let Some(tenant) = &e.tenant {
            map.serialize_entry("tenant", tenant.as_str())?;
        }
        shared_parts(&mut map, e)?;
        map.end()
    }
}

/// A value written as the string its `Display` shows.
struct Shown<'a, T>(&'a T);

impl<T: std::fmt::Display> Serialize for Shown<'_, T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self.0)
    }
}

/// `{"id": …, "name": …, "type": …}`, the name left out when absent.
struct ActorView<'a>(&'a Actor);

impl Serialize for ActorView<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let a = self.0;
        let mut map = s.serialize_map(None)?;
        map.serialize_entry("id", &a.id)?;
        if let Some(name) = &a.name {
            map.serialize_entry("name", name)?;
        }
        map.serialize_entry("type", a.kind.as_str())?;
        map.end()
    }
}

/// `{"id": …, "name": …, "type": …}`, id and name left out when absent.
struct ResourceView<'a>(&'a Resource);

impl Serialize for ResourceView<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let r = self.0;
        let mut map = s.serialize_map(None)?;
        if let Some(id) = &r.id {
            map.serialize_entry("id", id)?;
        }
        if let Some(name) = &r.name {
            map.serialize_entry("name", name)?;
        }
        map.serialize_entry("type", &r.kind)?;
        map.end()
    }
}

/// `{"field": {"new": …, "old": …}, …}`, as [`super::changes_to_json`].
struct ChangesView<'a>(&'a Changes);

impl Serialize for ChangesView<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_map(self.0.iter().map(|(field, c)| (field, ChangeView(c))))
    }
}

struct ChangeView<'a>(&'a Change);

impl Serialize for ChangeView<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(2))?;
        map.serialize_entry("new", &self.0.new)?;
        map.serialize_entry("old", &self.0.old)?;
        map.end()
    }
}

/// The context as [`Context::to_json`] writes it (its
/// [`Context::members`]).
struct ContextView<'a>(&'a Context);

impl Serialize for ContextView<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_map(self.0.members())
    }
}

impl Serialize for ContextMember<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            ContextMember::Value(v) => v.serialize(s),
            ContextMember::Text(t) => s.serialize_str(t),
            ContextMember::Ip(t) => s.serialize_str(t),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use serde_json::{Value, json};

    use super::*;

    /// The event of `json`, its payload committed in place and through the
    /// map, and whether the in-place view took its fast path.
    fn both(json: &Value) -> (String, String, bool) {
        let event = Event::from_json(json).unwrap();
        let in_place = canonical(&event).unwrap();
        let general = CanonicalJson::of("payload", &event.payload()).unwrap();
        (
            in_place.as_str().to_owned(),
            general.as_str().to_owned(),
            Payload(&event).compact_is_canonical(),
        )
    }

    fn event(extra: &Value) -> Value {
        let mut e = json!({"actor": {"id": "u1", "type": "user", "name": "Ann"},
                           "action": "update", "resource": {"type": "Invoice", "id": "7", "name": "INV-7"},
                           "reason": "fix"});
        for (k, v) in extra.as_object().unwrap() {
            e[k] = v.clone();
        }
        e
    }

    #[test]
    fn every_part_in_place_gives_the_canonical_bytes_of_the_map() {
        let (fast, general, took) = both(&event(&json!({
            "changes": {"total": {"old": 10, "new": 12}, "note": {"old": null, "new": "a\"b"}},
            "context": {"ip": "203.0.113.7", "user_agent": "ua", "request_id": "r1", "zone": "eu", "a": true},
            "metadata": {"k": [1, {"b": 2, "a": 1}]},
        })));
        assert!(took);
        assert_eq!(fast, general);
    }

    #[test]
    fn a_float_or_a_key_past_u_dfff_goes_through_the_map_with_the_same_bytes() {
        for extra in [
            json!({"changes": {"price": {"old": 19.99, "new": 24.5}}}),
            json!({"metadata": {"\u{e000}k": 1, "z": 2}}),
            json!({"context": {"x\u{ffff}": "v", "xa": "w"}}),
            json!({"changes": {"rate": {"old": 0.5, "new": 1e21}}}),
        ] {
            let (fast, general, took) = both(&event(&extra));
            assert!(!took, "{extra}");
            assert_eq!(fast, general, "{extra}");
        }
    }
}
