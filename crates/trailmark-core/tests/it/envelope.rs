//! Sealing: envelope and payload, the salted commitment, the leaf bytes, and
//! the worked example of docs/FORMAT.md.

use serde_json::json;
use trailmark_core::{
    Envelope, Error, Event, EventId, PayloadDigest, Salt, SealContext, Sealed, Seq, TenantId,
    Timestamp,
};
use trailmark_log::leaf_hash;

use crate::example_event;

const FORMAT_MD: &str = include_str!("../../../../docs/FORMAT.md");

pub(crate) fn example_salt() -> Salt {
    let mut bytes = [0u8; 32];
    for (i, b) in (0u8..).zip(bytes.iter_mut()) {
        *b = i;
    }
    Salt::from_bytes(bytes)
}

pub(crate) fn seal(event: &serde_json::Value, seq: u64) -> Sealed {
    let event = Event::from_json(event).unwrap();
    event
        .seal(SealContext {
            seq: Seq::new(seq).unwrap(),
            received_at: Timestamp::parse("2026-11-23T10:15:00.456Z").unwrap(),
            default_tenant: &TenantId::default_tenant(),
            generated_id: EventId::parse("0192f0c2-5a1e-7c4b-9d10-000000000001").unwrap(),
            salt: example_salt(),
        })
        .unwrap()
}

const EXAMPLE_LEAF: &str = r#"{"action":"update","actor_id":"42","actor_type":"user","id":"0192f0c2-5a1e-7c4b-9d10-6f1b2a3c4d5e","occurred_at":"2026-11-23T10:15:00.123Z","outcome":"success","payload_digest":"PAYLOAD_DIGEST","received_at":"2026-11-23T10:15:00.456Z","resource_id":"61","resource_type":"Customer","seq":0,"tenant":"acme","v":1}"#;
const EXAMPLE_PAYLOAD: &str = r#"{"actor_name":"alice@example.com","changes":{"price":{"new":"24.99","old":"19.99"}},"context":{"ip":"203.0.113.7","request_id":"r-8812","session_id":"s-1","source":"api","user_agent":"Mozilla/5.0"},"metadata":{"format":"pdf"},"resource_name":"Acme Corp"}"#;
const EXAMPLE_DIGEST: &str = "a16448e97671f5c545167ad6c5cc98907987b89ac103216b8ae63c5bd5a727e7";
const EXAMPLE_LEAF_HASH: &str = "c2e36c14288e3eb9117ec87985561e73c472ce4e2430dabca65d1a6afdf89468";

#[test]
fn the_worked_example_gives_the_documented_bytes_and_hashes() {
    let sealed = seal(&example_event(), 0);
    let payload = trailmark_core::CanonicalJson::of("payload", &sealed.payload).unwrap();
    assert_eq!(payload.as_str(), EXAMPLE_PAYLOAD);
    assert_eq!(sealed.envelope.payload_digest.to_hex(), EXAMPLE_DIGEST);
    assert_eq!(
        sealed.leaf_bytes.as_str(),
        EXAMPLE_LEAF.replace("PAYLOAD_DIGEST", EXAMPLE_DIGEST)
    );
    assert_eq!(
        leaf_hash(sealed.leaf_bytes.as_bytes()).to_hex(),
        EXAMPLE_LEAF_HASH
    );
    // docs/FORMAT.md shows exactly these values.
    for shown in [
        EXAMPLE_PAYLOAD,
        EXAMPLE_DIGEST,
        EXAMPLE_LEAF_HASH,
        sealed.leaf_bytes.as_str(),
    ] {
        assert!(
            FORMAT_MD.contains(shown),
            "docs/FORMAT.md does not show {shown}"
        );
    }
}

#[test]
fn defaults_fill_in_id_tenant_and_time() {
    let sealed = seal(
        &json!({"actor": {"id": "7", "type": "service"}, "action": "export"}),
        9,
    );
    let env = &sealed.envelope;
    assert_eq!(env.seq, Seq::new(9).unwrap());
    assert_eq!(env.id.to_string(), "0192f0c2-5a1e-7c4b-9d10-000000000001");
    assert_eq!(env.tenant.as_str(), "default");
    assert_eq!(env.occurred_at, env.received_at);
    assert_eq!(env.resource_type, None);
    assert!(
        sealed
            .leaf_bytes
            .as_str()
            .contains(r#""resource_id":null,"resource_type":null"#)
    );
    assert!(sealed.payload.is_empty());
    // Even an empty payload is committed to.
    assert_eq!(
        env.payload_digest,
        PayloadDigest::compute(&serde_json::Map::new(), &example_salt()).unwrap()
    );
}

#[test]
fn leaf_bytes_read_back_to_the_same_envelope() {
    let sealed = seal(&example_event(), 41);
    let back = Envelope::from_leaf_bytes(sealed.leaf_bytes.as_bytes()).unwrap();
    assert_eq!(back, sealed.envelope);
}

#[test]
fn stored_bytes_that_are_not_exactly_canonical_are_refused() {
    let good = seal(&example_event(), 0).leaf_bytes.as_str().to_owned();
    let cases = [
        ("pretty-printed", good.replace(",\"", ", \"")),
        (
            "keys reordered",
            good.replacen("{\"action\":\"update\",", "{", 1).replacen(
                '}',
                ",\"action\":\"update\"}",
                1,
            ),
        ),
        (
            "missing key",
            good.replacen("\"resource_id\":\"61\",", "", 1),
        ),
        ("extra key", good.replacen('{', "{\"admin\":true,", 1)),
        ("other version", good.replacen("\"v\":1", "\"v\":2", 1)),
        (
            "uppercase digest",
            good.replacen("\"payload_digest\":\"", "\"payload_digest\":\"A", 1),
        ),
        (
            "bad time",
            good.replacen("10:15:00.123Z", "10:15:00.12Z", 1),
        ),
        ("not json", "{".to_owned()),
    ];
    for (what, bytes) in cases {
        assert!(
            matches!(
                Envelope::from_leaf_bytes(bytes.as_bytes()),
                Err(Error::Envelope { .. })
            ),
            "{what} was accepted"
        );
    }
}

#[test]
fn a_payload_verifies_only_with_its_own_salt() {
    let sealed = seal(&example_event(), 0);
    let digest = sealed.envelope.payload_digest;
    digest.verify(&sealed.payload, &sealed.salt).unwrap();
    let other_salt = Salt::from_bytes([9; 32]);
    assert!(matches!(
        digest.verify(&sealed.payload, &other_salt),
        Err(Error::PayloadMismatch)
    ));
    let mut edited = sealed.payload.clone();
    edited["metadata"] = json!({"format": "csv"});
    assert!(matches!(
        digest.verify(&edited, &sealed.salt),
        Err(Error::PayloadMismatch)
    ));
    assert_eq!(
        Salt::from_hex(&sealed.salt.to_hex()),
        Some(sealed.salt.clone())
    );
    assert_eq!(format!("{:?}", sealed.salt), "Salt(…)");
}

#[test]
fn envelopes_hold_no_names_values_or_context() {
    let sealed = seal(&example_event(), 0);
    let leaf = sealed.leaf_bytes.as_str();
    for private in [
        "alice@example.com",
        "Acme Corp",
        "19.99",
        "203.0.113.7",
        "Mozilla",
        "pdf",
    ] {
        assert!(!leaf.contains(private), "envelope shows {private}");
    }
}
