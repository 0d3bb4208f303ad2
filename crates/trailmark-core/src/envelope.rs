//! The split of an entry into envelope (hashed into the tree) and payload
//! (committed by salted digest, erasable). docs/FORMAT.md is the contract.

use std::borrow::Cow;
use std::fmt;

#[cfg(test)]
use serde::Deserialize;
use serde::Serialize;
use serde_json::{Map, Value};
use sha2::{Digest as _, Sha256};

use crate::{ActorType, CanonicalJson, Error, Event, EventId, Outcome, Seq, TenantId, Timestamp};

mod read;

/// The version written in every envelope's `v`.
pub const ENVELOPE_VERSION: u8 = 1;
// `Envelope::to_canonical` writes the version as one digit.
const _: () = assert!(ENVELOPE_VERSION < 10);

/// The domain tag that starts every payload digest's input.
pub const PAYLOAD_DOMAIN: &[u8] = b"trailmark.payload.v1";

/// 32 random bytes stored beside a payload and mixed into its digest, so the
/// digest of an erased payload cannot be confirmed by guessing the payload.
#[derive(Clone, PartialEq, Eq)]
pub struct Salt([u8; 32]);

impl Salt {
    pub const fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    pub fn from_hex(text: &str) -> Option<Self> {
        let mut out = [0u8; 32];
        hex::decode_to_slice(text, &mut out)
            .ok()
            .map(|()| Self(out))
    }

    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }
}

impl fmt::Debug for Salt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Salt(…)")
    }
}

/// `SHA-256("trailmark.payload.v1" || salt || JCS(payload))`.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct PayloadDigest([u8; 32]);

impl PayloadDigest {
    /// Commits to a payload object under a salt.
    pub fn compute(payload: &Map<String, Value>, salt: &Salt) -> Result<Self, Error> {
        let canonical = CanonicalJson::of_map("payload", payload)?;
        Ok(Self::of_canonical(&canonical, salt))
    }

    /// The digest of a payload already in canonical form.
    pub fn of_canonical(canonical: &CanonicalJson, salt: &Salt) -> Self {
        Self::of_bytes(canonical.as_bytes(), salt)
    }

    /// The digest of payload bytes as stored. When it equals the digest an
    /// envelope commits to, the bytes are the committed canonical payload
    /// (SHA-256 is collision resistant): nothing needs parsing to prove it.
    pub fn of_bytes(bytes: &[u8], salt: &Salt) -> Self {
        let mut hasher = Sha256::new();
        hasher.update(PAYLOAD_DOMAIN);
        hasher.update(salt.0);
        hasher.update(bytes);
        Self(hasher.finalize().into())
    }

    /// Exactly 64 lowercase hex digits (the only spelling `to_hex` writes).
    /// Read by table, without a branch per digit: a digest's digits are
    /// random, so which range each falls in cannot be predicted.
    pub fn from_hex(text: &str) -> Option<Self> {
        /// Each byte's value as a lowercase hex digit, or `NOT_HEX`.
        const NOT_HEX: u8 = 0x80;
        const DIGITS: [u8; 256] = {
            let mut t = [NOT_HEX; 256];
            let mut d: u8 = 0;
            while d < 16 {
                t[b"0123456789abcdef"[d as usize] as usize] = d;
                d += 1;
            }
            t
        };
        let bytes = text.as_bytes();
        if bytes.len() != 64 {
            return None;
        }
        let mut out = [0u8; 32];
        // A byte that is no digit marks the whole.
        let mut marks = 0;
        for (o, pair) in out.iter_mut().zip(bytes.chunks_exact(2)) {
            let (high, low) = (DIGITS[usize::from(pair[0])], DIGITS[usize::from(pair[1])]);
            marks |= high | low;
            *o = (high << 4) | low;
        }
        (marks & NOT_HEX == 0).then_some(Self(out))
    }

    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// Checks a payload and salt against this digest.
    pub fn verify(&self, payload: &Map<String, Value>, salt: &Salt) -> Result<(), Error> {
        if Self::compute(payload, salt)? == *self {
            Ok(())
        } else {
            Err(Error::PayloadMismatch)
        }
    }
}

impl fmt::Debug for PayloadDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PayloadDigest({})", self.to_hex())
    }
}

/// What the tree commits to for one entry. Holds no personal data in clear:
/// ids are opaque, everything else is behind `payload_digest`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Envelope {
    pub seq: Seq,
    pub id: EventId,
    pub tenant: TenantId,
    pub occurred_at: Timestamp,
    pub received_at: Timestamp,
    pub actor_id: String,
    pub actor_type: ActorType,
    pub action: String,
    pub resource_type: Option<String>,
    pub resource_id: Option<String>,
    pub outcome: Outcome,
    pub payload_digest: PayloadDigest,
}

/// The wire form of an envelope: exactly the keys of FORMAT.md, declared in
/// RFC 8785 order (all keys are ASCII, so byte order is UTF-16 order). The
/// general canonicalizer writes it ([`Envelope::to_canonical_general`]), the
/// second opinion `tests/it/properties.rs` holds [`Envelope::to_canonical`]'s
/// own writing to; the unit tests read it back as the reader's oracle.
#[derive(Serialize)]
#[cfg_attr(test, derive(Deserialize, Debug, PartialEq))]
#[serde(deny_unknown_fields)]
struct EnvelopeV1<'a> {
    #[serde(borrow)]
    action: Cow<'a, str>,
    #[serde(borrow)]
    actor_id: Cow<'a, str>,
    #[serde(borrow)]
    actor_type: Cow<'a, str>,
    #[serde(borrow)]
    id: Cow<'a, str>,
    #[serde(borrow)]
    occurred_at: Cow<'a, str>,
    #[serde(borrow)]
    outcome: Cow<'a, str>,
    #[serde(borrow)]
    payload_digest: Cow<'a, str>,
    #[serde(borrow)]
    received_at: Cow<'a, str>,
    #[serde(borrow)]
    resource_id: Option<Cow<'a, str>>,
    #[serde(borrow)]
    resource_type: Option<Cow<'a, str>>,
    seq: u64,
    #[serde(borrow)]
    tenant: Cow<'a, str>,
    v: u8,
}

impl Envelope {
    /// The leaf bytes: the RFC 8785 canonical JSON of the envelope, written
    /// key by key in `EnvelopeV1`'s order into one buffer (the ids, times
    /// and digest from their fixed-width text, no allocation of their own);
    /// equal to [`Envelope::to_canonical_general`] (tests hold them to it).
    pub fn to_canonical(&self) -> Result<CanonicalJson, Error> {
        use crate::canonical::push_string;
        let text_len = self.action.len()
            + self.actor_id.len()
            + self.tenant.as_str().len()
            + self.resource_type.as_ref().map_or(0, String::len)
            + self.resource_id.as_ref().map_or(0, String::len);
        let mut out = Vec::with_capacity(320 + text_len);
        let quoted = |out: &mut Vec<u8>, text: &[u8]| {
            out.push(b'"');
            out.extend_from_slice(text);
            out.push(b'"');
        };
        let optional = |out: &mut Vec<u8>, text: Option<&String>| match text {
            Some(text) => push_string(out, text),
            None => out.extend_from_slice(b"null"),
        };
        out.extend_from_slice(b"{\"action\":");
        push_string(&mut out, &self.action);
        out.extend_from_slice(b",\"actor_id\":");
        push_string(&mut out, &self.actor_id);
        out.extend_from_slice(b",\"actor_type\":");
        push_string(&mut out, self.actor_type.as_str());
        out.extend_from_slice(b",\"id\":");
        quoted(&mut out, &self.id.to_text());
        out.extend_from_slice(b",\"occurred_at\":");
        quoted(&mut out, &self.occurred_at.to_text());
        out.extend_from_slice(b",\"outcome\":");
        push_string(&mut out, self.outcome.as_str());
        out.extend_from_slice(b",\"payload_digest\":");
        let mut digest = [0u8; 64];
        hex::encode_to_slice(self.payload_digest.0, &mut digest).map_err(|e| Error::Envelope {
            reason: format!("payload_digest: {e}"),
        })?;
        quoted(&mut out, &digest);
        out.extend_from_slice(b",\"received_at\":");
        quoted(&mut out, &self.received_at.to_text());
        out.extend_from_slice(b",\"resource_id\":");
        optional(&mut out, self.resource_id.as_ref());
        out.extend_from_slice(b",\"resource_type\":");
        optional(&mut out, self.resource_type.as_ref());
        out.extend_from_slice(b",\"seq\":");
        out.extend_from_slice(itoa::Buffer::new().format(self.seq.get()).as_bytes());
        out.extend_from_slice(b",\"tenant\":");
        push_string(&mut out, self.tenant.as_str());
        out.extend_from_slice(b",\"v\":");
        out.push(b'0' + ENVELOPE_VERSION);
        out.push(b'}');
        Ok(CanonicalJson::from_canonical_bytes(out))
    }

    fn wire(&self) -> EnvelopeV1<'_> {
        EnvelopeV1 {
            action: Cow::Borrowed(&self.action),
            actor_id: Cow::Borrowed(&self.actor_id),
            actor_type: Cow::Borrowed(self.actor_type.as_str()),
            id: Cow::Owned(self.id.to_string()),
            occurred_at: Cow::Owned(self.occurred_at.to_string()),
            outcome: Cow::Borrowed(self.outcome.as_str()),
            payload_digest: Cow::Owned(self.payload_digest.to_hex()),
            received_at: Cow::Owned(self.received_at.to_string()),
            resource_id: self.resource_id.as_deref().map(Cow::Borrowed),
            resource_type: self.resource_type.as_deref().map(Cow::Borrowed),
            seq: self.seq.get(),
            tenant: Cow::Borrowed(self.tenant.as_str()),
            v: ENVELOPE_VERSION,
        }
    }

    /// The canonical form computed by the general RFC 8785 canonicalizer;
    /// equal to [`Envelope::to_canonical`] (tests hold them to it).
    pub fn to_canonical_general(&self) -> Result<CanonicalJson, Error> {
        CanonicalJson::of("envelope", &self.wire())
    }

    /// Reads stored leaf bytes back, and insists they are exactly the
    /// canonical form of a valid v1 envelope (every key present, nothing
    /// else, canonical order and spelling), in one pass ([`read`]).
    pub fn from_leaf_bytes(bytes: &[u8]) -> Result<Self, Error> {
        let bad = |reason: String| Error::Envelope { reason };
        let wire = read::canonical_fields(bytes)
            .map_err(|e| bad(format!("not the canonical form of an envelope: {e}")))?;
        if wire.v != ENVELOPE_VERSION {
            return Err(bad(format!("unknown version v={}", wire.v)));
        }
        let field = |name: &str, m: &str| bad(format!("{name}: {m}"));
        // A time in its one text form is read by position; any other text
        // is parsed as RFC 3339 to say what is wrong with it, and a time
        // spelled otherwise is refused below (from_text reads exactly what
        // parse reads and to_text writes back: a property test says so).
        let time = |name: &str, text: &str| match Timestamp::from_text(text.as_bytes()) {
            Some(t) => Ok((t, true)),
            None => Timestamp::parse(text)
                .map(|t| (t, false))
                .map_err(|m| field(name, &m)),
        };
        let (occurred_at, occurred_spelled) = time("occurred_at", &wire.occurred_at)?;
        let (received_at, received_spelled) = time("received_at", &wire.received_at)?;
        let envelope = Self {
            seq: Seq::new(wire.seq).ok_or_else(|| field("seq", "above 2^53 - 1"))?,
            id: EventId::parse(&wire.id).map_err(|m| field("id", m))?,
            tenant: TenantId::from_stored(&wire.tenant).map_err(|m| field("tenant", m))?,
            occurred_at,
            received_at,
            actor_id: wire.actor_id.into_owned(),
            actor_type: ActorType::parse(&wire.actor_type)
                .ok_or_else(|| field("actor_type", "unknown actor type"))?,
            action: wire.action.into_owned(),
            resource_type: wire.resource_type.map(Cow::into_owned),
            resource_id: wire.resource_id.map(Cow::into_owned),
            outcome: Outcome::parse(&wire.outcome)
                .ok_or_else(|| field("outcome", "unknown outcome"))?,
            payload_digest: PayloadDigest::from_hex(&wire.payload_digest)
                .ok_or_else(|| field("payload_digest", "not 64 lowercase hex digits"))?,
        };
        // The reader held the JSON to its one spelling; the values with
        // more than one (an id's case, a time's digits) must have theirs.
        // Enum words and the digest parse only from their one spelling.
        let spelled = envelope.id.to_text() == wire.id.as_bytes()
            && occurred_spelled
            && received_spelled
            && envelope.tenant.as_str() == wire.tenant;
        if !spelled {
            return Err(bad(
                "bytes are not the canonical form of the envelope they hold".into(),
            ));
        }
        Ok(envelope)
    }
}

/// What sealing needs besides the event: the server's decisions.
#[derive(Debug)]
pub struct SealContext<'a> {
    /// The position the store assigned.
    pub seq: Seq,
    /// When the server received the event (also `occurred_at` if absent).
    pub received_at: Timestamp,
    /// The key's tenant or `default`, used when the event names none.
    pub default_tenant: &'a TenantId,
    /// The id to use when the event has none (a fresh `UUIDv7`).
    pub generated_id: EventId,
    /// 32 fresh random bytes.
    pub salt: Salt,
}

/// An entry ready to store: envelope, its leaf bytes, payload and salt.
#[derive(Clone, Debug)]
pub struct Sealed {
    pub envelope: Envelope,
    pub leaf_bytes: CanonicalJson,
    pub payload: Map<String, Value>,
    /// The payload's canonical bytes (what the digest covers; what stores keep).
    pub payload_json: CanonicalJson,
    pub salt: Salt,
}

impl Event {
    /// The event's id, or the generated one.
    pub fn id_or(&self, generated: EventId) -> EventId {
        self.id.unwrap_or(generated)
    }

    /// Commits to the payload: canonical bytes and salted digest. Independent
    /// of the entry's position, so it can be done before sequencing (and in
    /// parallel), leaving the store's single writer only the envelope.
    pub fn commit_payload(&self, salt: Salt) -> Result<PayloadCommitment, Error> {
        let payload_json = self.canonical_payload()?;
        let digest = PayloadDigest::of_canonical(&payload_json, &salt);
        Ok(PayloadCommitment {
            payload_json,
            digest,
            salt,
        })
    }

    /// The envelope of this event at `seq`, with the defaults applied.
    pub fn envelope(&self, digest: PayloadDigest, ctx: &EnvelopeContext<'_>) -> Envelope {
        Envelope {
            seq: ctx.seq,
            id: self.id_or(ctx.generated_id),
            tenant: self
                .tenant
                .clone()
                .unwrap_or_else(|| ctx.default_tenant.clone()),
            occurred_at: self.occurred_at.unwrap_or(ctx.received_at),
            received_at: ctx.received_at,
            actor_id: self.actor.id.clone(),
            actor_type: self.actor.kind,
            action: self.action.clone(),
            resource_type: self.resource.as_ref().map(|r| r.kind.clone()),
            resource_id: self.resource.as_ref().and_then(|r| r.id.clone()),
            outcome: self.outcome,
            payload_digest: digest,
        }
    }

    /// Splits the event into envelope and payload, applies the defaults and
    /// commits to the payload ([`Event::commit_payload`] then
    /// [`Event::envelope`]).
    pub fn seal(&self, ctx: SealContext<'_>) -> Result<Sealed, Error> {
        let committed = self.commit_payload(ctx.salt)?;
        let envelope = self.envelope(
            committed.digest,
            &EnvelopeContext {
                seq: ctx.seq,
                received_at: ctx.received_at,
                default_tenant: ctx.default_tenant,
                generated_id: ctx.generated_id,
            },
        );
        let leaf_bytes = envelope.to_canonical()?;
        Ok(Sealed {
            envelope,
            leaf_bytes,
            payload: self.payload(),
            payload_json: committed.payload_json,
            salt: committed.salt,
        })
    }
}

/// A payload committed to: what stores keep beside the envelope.
#[derive(Clone, Debug)]
pub struct PayloadCommitment {
    /// The payload's canonical bytes (what [`Event::payload`] would
    /// canonicalize to; that map is not kept).
    pub payload_json: CanonicalJson,
    pub digest: PayloadDigest,
    pub salt: Salt,
}

/// The server's decisions an envelope needs besides the payload digest.
#[derive(Debug)]
pub struct EnvelopeContext<'a> {
    pub seq: Seq,
    pub received_at: Timestamp,
    pub default_tenant: &'a TenantId,
    pub generated_id: EventId,
}
