//! Small validated identifiers of the domain.

use std::fmt;

/// A tenant: 1–64 characters of ASCII letters, digits, `.`, `_` and `-`,
/// starting with a letter or digit. `_system` is reserved for Trailmark's
/// own audit entries and only [`TenantId::system`] makes it.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TenantId(String);

impl TenantId {
    pub const MAX_LEN: usize = 64;
    /// [`TenantId::new`]'s rule as a regular expression (POSIX, as
    /// PostgreSQL's `~` reads it), for a check made where Rust does not
    /// run: capture's `trailmark.set_context`. Its agreement with `new` is
    /// tested against PostgreSQL (capture's integration tests).
    pub const PATTERN: &'static str = "^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$";
    const SYSTEM: &'static str = "_system";

    pub fn new(name: &str) -> Result<Self, &'static str> {
        if name.is_empty() || name.len() > Self::MAX_LEN {
            return Err("must be 1 to 64 characters");
        }
        if name == Self::SYSTEM {
            return Err("_system is reserved for Trailmark's own audit trail");
        }
        let mut chars = name.chars();
        let first_ok = chars.next().is_some_and(|c| c.is_ascii_alphanumeric());
        if !first_ok || !chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')) {
            return Err(
                "must start with a letter or digit and use only letters, digits, '.', '_' and '-'",
            );
        }
        Ok(Self(name.to_owned()))
    }

    /// The reserved tenant holding Trailmark's audit of itself.
    pub fn system() -> Self {
        Self(Self::SYSTEM.to_owned())
    }

    /// The tenant events go to when neither the event nor the key names one.
    pub fn default_tenant() -> Self {
        Self("default".to_owned())
    }

    /// Parses a stored tenant name, `_system` included.
    pub fn from_stored(name: &str) -> Result<Self, &'static str> {
        if name == Self::SYSTEM {
            Ok(Self::system())
        } else {
            Self::new(name)
        }
    }

    pub fn is_system(&self) -> bool {
        self.0 == Self::SYSTEM
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for TenantId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for TenantId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TenantId({})", self.0)
    }
}

/// An event id: a UUID, written lowercase and hyphenated.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EventId(uuid::Uuid);

impl EventId {
    pub fn parse(text: &str) -> Result<Self, &'static str> {
        let id = uuid::Uuid::try_parse(text)
            .map_err(|_| "not a UUID such as 0192f0c2-5a1e-7c4b-9d10-6f1b2a3c4d5e")?;
        if id.is_nil() {
            return Err("must not be the nil UUID");
        }
        Ok(Self(id))
    }

    /// A `UUIDv7` from a time and 10 random bytes the caller supplies.
    pub fn new_v7(at: crate::Timestamp, random: [u8; 10]) -> Self {
        #[allow(clippy::cast_sign_loss)] // Timestamp is never negative.
        let millis = at.unix_millis() as u64;
        Self(uuid::Builder::from_unix_timestamp_millis(millis, &random).into_uuid())
    }

    /// A `UUIDv8` derived from `name` (SHA-256, first 16 bytes): the same name
    /// always gives the same id, which makes redelivery idempotent.
    pub fn derived(name: &[u8]) -> Self {
        let digest = sha256(name);
        let mut bytes = [0u8; 16];
        bytes.copy_from_slice(&digest[..16]);
        Self(uuid::Builder::from_custom_bytes(bytes).into_uuid())
    }

    /// A `UUIDv8` that sorts by `order` (its low 60 bits lead the id) and
    /// is otherwise derived from `name` (62 bits of its SHA-256): the same
    /// pair always gives the same id, and ids of rising `order` rise, so a
    /// store's id indexes grow at their end instead of taking each id at a
    /// random place (ids of equal `order` differ by their names).
    pub fn derived_in_order(order: u64, name: &[u8]) -> Self {
        let digest = sha256(name);
        let mut bytes = leading(order);
        bytes[8..].copy_from_slice(&digest[..8]);
        Self(uuid::Builder::from_custom_bytes(bytes).into_uuid())
    }

    /// [`EventId::derived_in_order`] with a second order under the first:
    /// `within` (24 bits: from 2^24 − 1 on, all sort alike and differ by
    /// their names) follows `order`, then 38 bits of `name`'s
    /// SHA-256. Ids of equal `order` (the changes of one transaction) rise
    /// with `within` (their place in it), so a transaction of a million
    /// changes appends to the id indexes instead of scattering a million
    /// ids under one prefix.
    pub fn derived_in_order_within(order: u64, within: u64, name: &[u8]) -> Self {
        let digest = sha256(name);
        let within = within.min((1 << 24) - 1);
        let mut bytes = leading(order);
        // The variant takes the top 2 bits of byte 8 (set by the builder):
        // 6 bits of `within`, 16, 2, then the digest.
        bytes[8] = ((within >> 18) & 0x3F) as u8;
        bytes[9] = ((within >> 10) & 0xFF) as u8;
        bytes[10] = ((within >> 2) & 0xFF) as u8;
        bytes[11] = (((within & 0x3) as u8) << 6) | (digest[0] & 0x3F);
        bytes[12..].copy_from_slice(&digest[1..5]);
        Self(uuid::Builder::from_custom_bytes(bytes).into_uuid())
    }

    pub fn as_bytes(&self) -> &[u8; 16] {
        self.0.as_bytes()
    }

    /// The text form (hyphenated, lowercase), without allocating.
    pub fn to_text(&self) -> [u8; 36] {
        let mut out = [0u8; 36];
        self.0.hyphenated().encode_lower(&mut out);
        out
    }
}

fn sha256(name: &[u8]) -> [u8; 32] {
    use sha2::{Digest as _, Sha256};
    Sha256::digest(name).into()
}

/// The first 8 bytes of an ordered id: 48 bits of `order` (its low 60),
/// then the version nibble (set by the builder) beside 4 more, then 8.
fn leading(order: u64) -> [u8; 16] {
    let order = order & ((1 << 60) - 1);
    let mut bytes = [0u8; 16];
    bytes[..6].copy_from_slice(&(order >> 12).to_be_bytes()[2..]);
    bytes[6] = ((order >> 8) & 0x0F) as u8;
    bytes[7] = (order & 0xFF) as u8;
    bytes
}

impl fmt::Display for EventId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0.hyphenated(), f)
    }
}

impl fmt::Debug for EventId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "EventId({self})")
    }
}

/// An entry's position in its tenant's log, from 0: its leaf index.
///
/// At most 2^53 − 1, because the canonical envelope writes `seq` as a JSON
/// number and RFC 8785 numbers are IEEE 754 doubles: a larger `seq` would not
/// be exact, and two entries could share leaf bytes.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub struct Seq(u64);

impl Seq {
    pub const MAX: u64 = crate::limits::MAX_SAFE_INTEGER;

    /// A position; `None` above [`Seq::MAX`].
    pub const fn new(seq: u64) -> Option<Self> {
        if seq <= Self::MAX {
            Some(Self(seq))
        } else {
            None
        }
    }

    pub const fn get(self) -> u64 {
        self.0
    }
}

impl fmt::Display for Seq {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

macro_rules! word_enum {
    ($(#[$meta:meta])* $name:ident { $($variant:ident = $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
        pub enum $name { $($variant),+ }

        impl $name {
            pub const ALL: &'static [Self] = &[$(Self::$variant),+];

            pub fn as_str(self) -> &'static str {
                match self { $(Self::$variant => $text),+ }
            }

            pub fn parse(text: &str) -> Option<Self> {
                match text { $($text => Some(Self::$variant),)+ _ => None }
            }

            /// The accepted words, for error messages.
            pub fn choices() -> String {
                Self::ALL.iter().map(|v| v.as_str()).collect::<Vec<_>>().join(" | ")
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

word_enum!(
    /// Who acted.
    ActorType {
        User = "user",
        Service = "service",
        System = "system",
        Anonymous = "anonymous",
        Unknown = "unknown",
    }
);

word_enum!(
    /// Whether the action succeeded.
    Outcome { Success = "success", Failure = "failure" }
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tenant_names_follow_the_documented_rule() {
        for ok in ["acme", "default", "a", "Acme-Corp_2.eu", &"x".repeat(64)] {
            assert!(TenantId::new(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "_system",
            "_x",
            "-a",
            "a b",
            "a/b",
            "a+b",
            "é",
            &"x".repeat(65),
        ] {
            assert!(TenantId::new(bad).is_err(), "{bad}");
        }
        assert!(TenantId::from_stored("_system").unwrap().is_system());
    }

    #[test]
    fn event_ids_are_lowercase_hyphenated_uuids() {
        let id = EventId::parse("0192F0C2-5A1E-7C4B-9D10-6F1B2A3C4D5E").unwrap();
        assert_eq!(id.to_string(), "0192f0c2-5a1e-7c4b-9d10-6f1b2a3c4d5e");
        assert!(EventId::parse("00000000-0000-0000-0000-000000000000").is_err());
        assert!(EventId::parse("42").is_err());
    }

    #[test]
    fn generated_ids_are_version_7_and_carry_the_time() {
        let at = crate::Timestamp::from_unix_millis(1_700_000_000_123).unwrap();
        let id = EventId::new_v7(at, [7; 10]);
        let text = id.to_string();
        assert_eq!(&text[14..15], "7");
        assert!(text.starts_with("018bcfe5-687b"), "{text}");
    }

    #[test]
    fn derived_ids_are_stable_version_8_and_distinct() {
        let a = EventId::derived(b"db:1/outbox:7");
        assert_eq!(a, EventId::derived(b"db:1/outbox:7"));
        assert_ne!(a, EventId::derived(b"db:1/outbox:8"));
        assert_eq!(&a.to_string()[14..15], "8");
    }

    /// Each id above the one before, as bytes and as text (the stores' id
    /// indexes key on the text), and each a `UUIDv8` of the RFC 4122 variant.
    fn rising_version_8(ids: &[EventId]) {
        for pair in ids.windows(2) {
            assert!(pair[0] < pair[1], "{} !< {}", pair[0], pair[1]);
            assert!(pair[0].to_string() < pair[1].to_string());
        }
        for id in ids {
            let text = id.to_string();
            assert_eq!(&text[14..15], "8", "{text}");
            assert!(matches!(&text[19..20], "8" | "9" | "a" | "b"), "{text}");
        }
    }

    #[test]
    fn ids_ordered_within_rise_with_order_then_place_and_stay_stable_version_8() {
        let id = |order, within, name: &str| {
            EventId::derived_in_order_within(order, within, name.as_bytes())
        };
        assert_eq!(id(7, 3, "db/wal/7/3"), id(7, 3, "db/wal/7/3"));
        assert_ne!(id(7, 3, "db/wal/7/3"), id(7, 3, "db/wal/7/4"));
        // The order leads as for derived_in_order (the same first 8 bytes).
        assert_eq!(
            id(0x0016_B374_D848, 5, "x").as_bytes()[..8],
            EventId::derived_in_order(0x0016_B374_D848, b"y").as_bytes()[..8]
        );
        let places = [
            (0, 0),
            (0, 1),
            (0, 3),
            (0, 4),
            (0, 0xFF),
            (0, 0x100),
            (0, (1 << 24) - 2),
            (1, 0),
            (1, 1 << 20),
            (0x0016_B374_D848, 0),
            ((1 << 60) - 1, 0),
        ];
        let ids: Vec<EventId> = places
            .into_iter()
            .enumerate()
            .map(|(i, (o, w))| id(o, w, &format!("name {}", 100 - i)))
            .collect();
        rising_version_8(&ids);
        // Past 2^24 - 1 places the place no longer orders; the name still
        // tells the ids apart.
        assert_ne!(id(9, 1 << 24, "a"), id(9, (1 << 24) + 1, "b"));
        assert_eq!(id(9, 1 << 24, "a"), id(9, u64::MAX, "a"));
    }

    #[test]
    fn ordered_derived_ids_rise_with_their_order_and_stay_stable_version_8() {
        let id = |order, name: &str| EventId::derived_in_order(order, name.as_bytes());
        assert_eq!(id(7, "db/wal/0/7"), id(7, "db/wal/0/7"));
        assert_ne!(id(7, "db/wal/0/7"), id(7, "db/wal/0/8"));
        // Sorted by order whatever the names, as bytes and as text (the
        // stores' id indexes key on the text).
        let orders = [
            0,
            1,
            0xFF,
            0x100,
            0xFFF,
            0x1000,
            0x0016_B374_D848,
            (1 << 60) - 1,
        ];
        let ids: Vec<EventId> = orders
            .iter()
            .enumerate()
            .map(|(i, &o)| id(o, &format!("name {}", orders.len() - i)))
            .collect();
        rising_version_8(&ids);
        assert_eq!(
            &id(0x0016_B374_D848, "x").to_string()[..18],
            "0000016b-374d-8848"
        );
    }

    #[test]
    fn word_enums_parse_only_their_words() {
        assert_eq!(ActorType::parse("user"), Some(ActorType::User));
        assert_eq!(ActorType::parse("User"), None);
        assert_eq!(Outcome::choices(), "success | failure");
    }
}
