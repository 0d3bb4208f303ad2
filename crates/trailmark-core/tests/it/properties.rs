//! Property tests of canonical form and commitments.

use proptest::prelude::*;
use serde_json::{Map, Value, json};
use trailmark_core::{
    ActorType, CanonicalJson, ColumnsOf, Envelope, Event, EventId, IndexedColumns, Outcome,
    PayloadDigest, Salt, Seq, TenantId, Timestamp, context_of_text,
};
use trailmark_log::leaf_hash;

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        (-(1i64 << 53) + 1..(1i64 << 53)).prop_map(|n| json!(n)),
        any::<i64>().prop_map(|n| json!(n)),
        any::<u64>().prop_map(|n| json!(n)),
        prop_oneof![
            Just(1i64 << 53),
            Just(-(1i64 << 53)),
            Just((1i64 << 53) + 1)
        ]
        .prop_map(|n| json!(n)),
        "[\\x00-\\x1f\"\\\\/\u{e000}-\u{ffff}\u{10000}-\u{10ffff}a-z]{0,8}".prop_map(Value::String),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(|f| json!(f)),
        ".{0,12}".prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 32, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(
                "(.{0,8}|[\u{e000}-\u{ffff}\u{10000}-\u{10ffff}a]{1,3})",
                inner,
                0..6
            )
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// A context: named keys and others (scalars, as context allows).
fn context_json() -> impl Strategy<Value = Value> {
    (
        prop::option::of(prop_oneof![Just("203.0.113.7"), Just("2001:db8::1")]),
        prop::option::of("[a-zA-Z0-9 ./]{1,12}"),
        prop::collection::btree_map(
            "x_[a-z]{1,6}",
            prop_oneof![
                any::<bool>().prop_map(Value::Bool),
                (-1000i64..1000).prop_map(|n| json!(n)),
                "[a-z ]{0,8}".prop_map(Value::String),
            ],
            0..3,
        ),
    )
        .prop_map(|(ip, agent, extra)| {
            let mut c: Map<String, Value> = extra.into_iter().collect();
            if let Some(ip) = ip {
                c.insert("ip".into(), json!(ip));
            }
            if let Some(agent) = agent {
                c.insert("user_agent".into(), json!(agent));
            }
            Value::Object(c)
        })
}

/// An event as a producer might send it: every optional part present or
/// not, values of any JSON shape where the schema allows them. Most are
/// valid; the property holds for those.
fn event_json() -> impl Strategy<Value = Value> {
    let text = "[a-zA-Z0-9 ._:-]{1,12}";
    let maybe = |s: &'static str| prop::option::of(s);
    (
        (
            prop::option::of(any::<[u8; 16]>()),
            prop::option::of(0i64..4_000_000_000_000),
            maybe("[a-z][a-z0-9-]{0,8}"),
            (
                text,
                prop::sample::select(ActorType::ALL.to_vec()),
                maybe(text),
            ),
            "[a-z][a-z_]{0,6}(\\.[a-z][a-z_]{0,6})?",
        ),
        (
            prop::option::of((text, maybe(text), maybe(text))),
            prop::option::of(prop::sample::select(Outcome::ALL.to_vec())),
            maybe(text),
            prop::option::of(prop::collection::btree_map(
                "[a-z_]{1,8}",
                (json_value(), json_value()),
                0..4,
            )),
            prop::option::of(context_json()),
            prop::option::of(prop::collection::btree_map(
                "[a-z]{1,6}",
                json_value(),
                0..4,
            )),
        ),
    )
        .prop_map(
            |(
                (id, at, tenant, actor, action),
                (resource, outcome, reason, changes, context, metadata),
            )| {
                let mut e = json!({
                    "actor": {"id": actor.0, "type": actor.1.as_str()},
                    "action": action,
                });
                if let Some(name) = actor.2 {
                    e["actor"]["name"] = json!(name);
                }
                if let Some(bytes) = id {
                    e["id"] = json!(EventId::derived(&bytes).to_string());
                }
                if let Some(ms) = at {
                    e["occurred_at"] = json!(Timestamp::from_unix_millis(ms).unwrap().to_string());
                }
                if let Some(t) = tenant {
                    e["tenant"] = json!(t);
                }
                if let Some((kind, id, name)) = resource {
                    e["resource"] = json!({"type": kind});
                    if let Some(id) = id {
                        e["resource"]["id"] = json!(id);
                    }
                    if let Some(name) = name {
                        e["resource"]["name"] = json!(name);
                    }
                }
                if let Some(o) = outcome {
                    e["outcome"] = json!(o.as_str());
                }
                if let Some(r) = reason {
                    e["reason"] = json!(r);
                }
                if let Some(changes) = changes {
                    e["changes"] = changes
                        .into_iter()
                        .map(|(k, (old, new))| (k, json!({"old": old, "new": new})))
                        .collect::<Map<_, _>>()
                        .into();
                }
                if let Some(context) = context {
                    e["context"] = context;
                }
                if let Some(m) = metadata {
                    e["metadata"] = Value::Object(m.into_iter().collect());
                }
                e
            },
        )
}

fn envelope() -> impl Strategy<Value = Envelope> {
    (
        0..=Seq::MAX,
        any::<[u8; 10]>(),
        0..=253_402_300_799_999i64,
        0..=253_402_300_799_999i64,
        "[a-z0-9]{1,8}",
        "(.{1,12}|[\\x00-\\x1f\"\\\\\u{10000}-\u{10ffff}]{1,6})",
        "[a-z_]{1,10}",
        prop::option::of(".{1,10}"),
        prop::option::of("[\\x00-\\x1f\"\\\\a-z\u{e000}-\u{10ffff}]{1,10}"),
        any::<bool>(),
        any::<[u8; 32]>(),
        0..5usize,
    )
        .prop_map(
            |(seq, rnd, occ, rec, tenant, actor, action, rt, rid, ok, salt, kind)| Envelope {
                seq: Seq::new(seq).unwrap(),
                id: EventId::new_v7(Timestamp::from_unix_millis(rec).unwrap(), rnd),
                tenant: TenantId::new(&tenant).unwrap(),
                occurred_at: Timestamp::from_unix_millis(occ).unwrap(),
                received_at: Timestamp::from_unix_millis(rec).unwrap(),
                actor_id: actor,
                actor_type: ActorType::ALL[kind],
                action,
                resource_type: rt,
                resource_id: rid,
                outcome: if ok {
                    Outcome::Success
                } else {
                    Outcome::Failure
                },
                payload_digest: PayloadDigest::compute(&Map::new(), &Salt::from_bytes(salt))
                    .unwrap(),
            },
        )
}

/// Every way to change exactly one envelope field.
fn mutate(env: &Envelope, field: usize) -> Envelope {
    let mut e = env.clone();
    match field {
        0 => e.seq = Seq::new((env.seq.get() + 1) % Seq::MAX).unwrap(),
        1 => e.id = EventId::new_v7(env.received_at, [0xee; 10]),
        2 => e.tenant = TenantId::new(&format!("{}x", env.tenant)).unwrap(),
        3 => {
            e.occurred_at =
                Timestamp::from_unix_millis((env.occurred_at.unix_millis() + 1) % 1_000_000)
                    .unwrap();
        }
        4 => {
            e.received_at =
                Timestamp::from_unix_millis((env.received_at.unix_millis() + 1) % 1_000_000)
                    .unwrap();
        }
        5 => e.actor_id.push('!'),
        6 => {
            e.actor_type = if env.actor_type == ActorType::User {
                ActorType::System
            } else {
                ActorType::User
            }
        }
        7 => e.action.push('x'),
        8 => {
            e.resource_type = if env.resource_type.is_some() {
                None
            } else {
                Some("T".into())
            }
        }
        9 => e.resource_id = Some(format!("{}9", env.resource_id.clone().unwrap_or_default())),
        10 => {
            e.outcome = if env.outcome == Outcome::Success {
                Outcome::Failure
            } else {
                Outcome::Success
            }
        }
        _ => {
            e.payload_digest =
                PayloadDigest::compute(&Map::new(), &Salt::from_bytes([0xab; 32])).unwrap();
        }
    }
    e
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(4000))]

    /// `Timestamp::from_text` reads a time's one text form, and nothing
    /// else: on canonical texts edited at up to three places (digits and
    /// separators, so invalid dates, hours and leap seconds come up),
    /// shortened or lengthened, it answers exactly what `Timestamp::parse`
    /// (the `time` crate's RFC 3339 reader) answers when the text is also
    /// the parsed time's own spelling.
    #[test]
    fn a_time_reads_from_its_text_form_as_the_rfc_3339_parser_and_respelling_do(
        millis in 0..=253_402_300_799_999i64,
        edits in prop::collection::vec(
            (0..24usize, prop::sample::select(b"0123456789-:.TZ+ ".to_vec())),
            0..4,
        ),
        length in prop_oneof![8 => Just(24usize), 1 => 20..28usize],
    ) {
        let canonical = Timestamp::from_unix_millis(millis).unwrap();
        prop_assert_eq!(Timestamp::from_text(&canonical.to_text()), Some(canonical));
        let mut text = canonical.to_text().to_vec();
        for (at, b) in edits {
            text[at] = b;
        }
        text.resize(length, b'0');
        let oracle = std::str::from_utf8(&text)
            .ok()
            .and_then(|s| Timestamp::parse(s).ok())
            .filter(|t| t.to_text().as_slice() == text.as_slice());
        prop_assert_eq!(Timestamp::from_text(&text), oracle, "{}", String::from_utf8_lossy(&text));
    }
}

proptest! {
    #[test]
    fn a_payload_digest_reads_from_exactly_64_lowercase_hex_digits(
        text in prop_oneof![
            "[0-9a-f]{64}",
            "[0-9a-fA-F]{64}",
            "[0-9a-g/:`@G]{64}",
            "[0-9a-f]{62,66}",
            any::<String>(),
        ],
    ) {
        let lowercase = text.len() == 64 && text.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
        match PayloadDigest::from_hex(&text) {
            Some(digest) => {
                prop_assert!(lowercase, "{text} was read");
                prop_assert_eq!(digest.to_hex(), text);
            }
            None => prop_assert!(!lowercase, "{text} was refused"),
        }
    }

    #[test]
    fn canonicalizing_canonical_json_again_gives_the_same_bytes(value in json_value()) {
        let once = CanonicalJson::of("value", &value).unwrap();
        let reparsed: Value = serde_json::from_slice(once.as_bytes()).unwrap();
        let twice = CanonicalJson::of("value", &reparsed).unwrap();
        prop_assert_eq!(once.as_bytes(), twice.as_bytes());
    }

    #[test]
    fn the_fast_canonical_path_equals_the_rfc_8785_canonicalizer(value in json_value()) {
        let fast = CanonicalJson::of_value("value", &value).unwrap();
        let general = CanonicalJson::of("value", &value).unwrap();
        prop_assert_eq!(fast.as_bytes(), general.as_bytes());
        if let Value::Object(map) = &value {
            let of_map = CanonicalJson::of_map("map", map).unwrap();
            prop_assert_eq!(of_map.as_bytes(), general.as_bytes());
        }
    }

    #[test]
    fn envelope_bytes_equal_the_rfc_8785_canonicalizer(env in envelope()) {
        let (fast, general) = (env.to_canonical().unwrap(), env.to_canonical_general().unwrap());
        prop_assert_eq!(fast.as_bytes(), general.as_bytes());
    }

    #[test]
    fn an_event_written_as_json_reads_back_to_the_same_event(json in event_json()) {
        // Invalid as generated (a value out of range, too deep): nothing
        // to write back; proptest fails if too many are.
        let valid = Event::from_json(&json);
        prop_assume!(valid.is_ok());
        let event = valid.unwrap();
        let written = Value::Object(event.to_json());
        prop_assert_eq!(Event::from_json(&written), Ok(event));
        // And it is what was sent, but for the defaults validation fills in.
        let mut sent = json.as_object().unwrap().clone();
        sent.entry("outcome").or_insert_with(|| json!("success"));
        prop_assert_eq!(written, Value::Object(sent));
    }

    #[test]
    fn taking_an_event_from_its_json_gives_what_copying_gives(json in event_json()) {
        // Valid or not: the same event or the same problems; a refused
        // value is left as it was.
        let copied = Event::from_json(&json);
        let mut value = json.clone();
        let taken = Event::take_from_json(&mut value);
        prop_assert_eq!(&taken, &copied);
        if taken.is_err() {
            prop_assert_eq!(value, json);
        }
    }

    #[test]
    fn committed_payload_bytes_equal_the_rfc_8785_canonicalizer_of_the_payload(json in event_json()) {
        // The commitment writes the payload from the event in place (or,
        // with a float or a key past U+DFFF, from the map): either way the
        // bytes of the general canonicalizer over `payload()`.
        let valid = Event::from_json(&json);
        prop_assume!(valid.is_ok());
        let event = valid.unwrap();
        let committed = event.commit_payload(Salt::from_bytes([7; 32])).unwrap();
        let general = CanonicalJson::of("payload", &event.payload()).unwrap();
        prop_assert_eq!(committed.payload_json.as_str(), general.as_str());
    }

    #[test]
    fn the_payload_size_bound_is_never_below_the_canonical_size(json in event_json()) {
        let valid = Event::from_json(&json);
        prop_assume!(valid.is_ok());
        let event = valid.unwrap();
        let size = CanonicalJson::of_map("payload", &event.payload()).unwrap().as_bytes().len();
        prop_assert!(size <= event.payload_size_bound(), "{} > {}", size, event.payload_size_bound());
    }

    #[test]
    fn seq_is_exact_up_to_its_maximum(seq in (Seq::MAX - 1000)..=Seq::MAX) {
        let a = Seq::new(seq).unwrap();
        let text = serde_json::to_string(&serde_json::json!(a.get())).unwrap();
        let canonical = CanonicalJson::of("seq", &a.get()).unwrap();
        prop_assert_eq!(canonical.as_str(), text.as_str());
        prop_assert!(Seq::new(Seq::MAX + 1).is_none());
    }

    #[test]
    fn any_change_to_any_envelope_field_changes_the_leaf_hash(env in envelope(), field in 0..12usize) {
        let changed = mutate(&env, field);
        prop_assume!(changed != env);
        let a = leaf_hash(env.to_canonical().unwrap().as_bytes());
        let b = leaf_hash(changed.to_canonical().unwrap().as_bytes());
        prop_assert_ne!(a, b);
        // And the bytes read back to the envelope they came from.
        let back = Envelope::from_leaf_bytes(changed.to_canonical().unwrap().as_bytes()).unwrap();
        prop_assert_eq!(back, changed);
    }

    #[test]
    fn a_changed_payload_cannot_keep_the_digest_without_the_salt(
        payload in prop::collection::btree_map("[a-z]{1,6}", json_value(), 0..5),
        edit in json_value(),
        salt in any::<[u8; 32]>(),
        guess in any::<[u8; 32]>(),
    ) {
        let payload: Map<String, Value> = payload.into_iter().collect();
        let salt = Salt::from_bytes(salt);
        let digest = PayloadDigest::compute(&payload, &salt).unwrap();
        let mut edited = payload.clone();
        edited.insert("metadata".into(), edit);
        prop_assume!(edited != payload);
        // Neither the real salt nor a guessed one makes the edit match.
        prop_assert!(digest.verify(&edited, &salt).is_err());
        prop_assert!(digest.verify(&edited, &Salt::from_bytes(guess)).is_err());
        // Without the salt, not even the true payload can be confirmed.
        prop_assume!(guess != *salt.as_bytes());
        prop_assert!(digest.verify(&payload, &Salt::from_bytes(guess)).is_err());
    }

    #[test]
    fn columns_from_stored_canonical_text_equal_columns_from_the_parsed_payload(
        env in envelope(),
        rest in prop::collection::btree_map("[a-z_]{1,8}", json_value(), 0..4),
        context in prop_oneof![
            json_value(),
            (
                prop::option::of(prop_oneof![json_value(), "[0-9.:a-f]{1,20}".prop_map(Value::from)]),
                prop::option::of(prop_oneof![json_value(), "[a-z0-9-]{1,12}".prop_map(Value::from)]),
            )
                .prop_map(|(ip, request_id)| {
                    let mut c = Map::new();
                    if let Some(ip) = ip { c.insert("ip".into(), ip); }
                    if let Some(r) = request_id { c.insert("request_id".into(), r); }
                    Value::Object(c)
                }),
        ],
    ) {
        let mut payload: Map<String, Value> = rest.into_iter().collect();
        payload.insert("context".into(), context);
        for _ in 0..2 {
            let text = CanonicalJson::of_map("payload", &payload).unwrap();
            let context = context_of_text(text.as_str()).unwrap();
            let from_text =
                ColumnsOf::with_context(&env, context.ip.as_deref(), context.request_id.as_deref());
            let stored = IndexedColumns::derive(&env, Some(&payload));
            prop_assert_eq!(from_text, ColumnsOf::of_payload(&env, Some(&payload)));
            // A store's row derived by the rule shows no difference from it.
            prop_assert!(stored.differences(&from_text).is_empty());
            payload.remove("context");
        }
    }

    #[test]
    fn the_digest_of_stored_canonical_bytes_is_the_payload_digest(
        payload in prop::collection::btree_map("[a-z]{1,6}", json_value(), 0..5),
        salt in any::<[u8; 32]>(),
    ) {
        let payload: Map<String, Value> = payload.into_iter().collect();
        let salt = Salt::from_bytes(salt);
        let text = CanonicalJson::of_map("payload", &payload).unwrap();
        prop_assert_eq!(
            PayloadDigest::of_bytes(text.as_bytes(), &salt),
            PayloadDigest::compute(&payload, &salt).unwrap()
        );
        // Text that is not the canonical form does not hash to it.
        let spaced = serde_json::to_string_pretty(&payload).unwrap();
        prop_assume!(spaced.as_bytes() != text.as_bytes());
        prop_assert_ne!(
            PayloadDigest::of_bytes(spaced.as_bytes(), &salt),
            PayloadDigest::compute(&payload, &salt).unwrap()
        );
    }
}

/// A text that is often fine and sometimes breaks a rule: empty, one byte
/// past `max`, with a control character (or only a tab), with an invisible
/// format character.
fn text_near(max: usize) -> impl Strategy<Value = String> {
    prop_oneof![
        6 => "[a-zA-Z0-9 ._:-]{1,12}",
        1 => Just(String::new()),
        1 => Just("x".repeat(max + 1)),
        1 => Just("x".repeat(max)),
        1 => "[a-z]{1,4}[\\x00-\\x1f][a-z]{0,4}",
        1 => "[a-z]{1,4}\t[a-z]{0,4}",
        1 => "[a-z]{1,4}[\u{200b}\u{202e}\u{feff}][a-z]{0,4}",
    ]
}

/// A value nested deeper than an event may hold.
fn too_deep() -> Value {
    (0..20).fold(json!(1), |inner, _| json!([inner]))
}

/// Values of any shape, sometimes too deep or holding an inexact integer.
fn any_value() -> impl Strategy<Value = Value> {
    prop_oneof![8 => json_value(), 1 => Just(too_deep()), 1 => Just(json!(1u64 << 60))]
}

/// A key of changes, context or metadata, sometimes empty or too long.
fn key_near() -> impl Strategy<Value = String> {
    prop_oneof![8 => "[a-z_]{1,8}", 1 => Just(String::new()), 1 => Just("k".repeat(257))]
}

/// An event built in process, as the capture builds one: typed parts
/// valid by their types, texts and values of every kind, many of them
/// breaking a rule (and some payloads too large).
fn typed_event() -> impl Strategy<Value = Event> {
    use trailmark_core::{Actor, Change, Context, Resource};
    (
        (
            text_near(256),
            prop::sample::select(ActorType::ALL.to_vec()),
            prop::option::of(text_near(512)),
            prop_oneof![
                4 => "[a-z][a-z_]{0,6}(\\.[a-z][a-z_-]{0,6})?",
                1 => Just("a..b".to_owned()),
                1 => Just("Not An Action".to_owned()),
                1 => Just("a".repeat(129)),
            ],
            prop::option::of((
                text_near(128),
                prop::option::of(text_near(512)),
                prop::option::of(text_near(512)),
            )),
            prop::option::of(text_near(4096)),
        ),
        (
            prop::option::of(prop_oneof![
                8 => prop::collection::btree_map(key_near(), (any_value(), any_value()), 0..4),
                1 => Just((0..1001).map(|i| (format!("f{i}"), (json!(1), json!(2)))).collect()),
            ]),
            prop::option::of((
                prop::option::of(prop_oneof![Just("203.0.113.7"), Just("2001:db8::1")]),
                prop::option::of(text_near(1024)),
                prop::option::of(text_near(64)),
                prop::collection::btree_map(
                    prop_oneof![8 => "x_[a-z]{1,6}", 1 => Just("k".repeat(257)), 1 => Just("ip".to_owned())],
                    prop_oneof![
                        4 => "[a-z ]{0,8}".prop_map(Value::String),
                        1 => Just(Value::Null),
                        1 => Just(json!([1])),
                        1 => Just(json!(1u64 << 60)),
                    ],
                    0..4,
                ),
                prop_oneof![8 => Just(0usize), 1 => Just(33usize)],
            )),
            prop::option::of(prop_oneof![
                8 => prop::collection::btree_map(key_near(), any_value(), 0..4)
                    .prop_map(|m| m.into_iter().collect::<Map<String, Value>>()),
                1 => Just(std::iter::once(("big".to_owned(), json!("x".repeat(300 * 1024)))).collect()),
            ]),
        ),
    )
        .prop_map(
            |(
                (actor_id, kind, actor_name, action, resource, reason),
                (changes, context, metadata),
            )| Event {
                id: None,
                occurred_at: None,
                tenant: None,
                actor: Actor {
                    id: actor_id,
                    kind,
                    name: actor_name,
                },
                action,
                resource: resource.map(|(kind, id, name)| Resource { kind, id, name }),
                outcome: Outcome::Success,
                reason,
                changes: changes.map(|c| {
                    c.into_iter()
                        .map(|(k, (old, new))| (k, Change { old, new }))
                        .collect()
                }),
                context: context.map(|(ip, user_agent, source, extra, more)| {
                    let mut extra: Map<String, Value> = extra.into_iter().collect();
                    for i in 0..more {
                        extra.insert(format!("more_{i}"), json!(i));
                    }
                    Context {
                        ip: ip.map(|ip| ip.parse().unwrap()),
                        user_agent,
                        source,
                        extra,
                        ..Context::default()
                    }
                }),
                metadata,
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    /// One rule for both ways an event arrives: an event built in process
    /// is checked (`Event::check`) with exactly the errors, paths and
    /// order that reading the same event as JSON reports, and passes
    /// exactly when that reading does.
    #[test]
    fn checking_a_built_event_reports_what_reading_it_as_json_reports(event in typed_event()) {
        let json = Value::Object(event.to_json());
        let read = Event::from_json(&json);
        prop_assert_eq!(event.check(), read.map(|_| ()));
    }
}
