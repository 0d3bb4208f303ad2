//! The trail's signing keys over time. The first key signs from the start;
//! each later key comes with a transition statement signed by the key
//! before it, naming for every tenant the size from which the new key
//! signs. A verifier holds every checkpoint to the key in force at its size.
//!
//! The statement is a signed note (key name `<prefix>/_system`) whose text
//! is:
//!
//! ```text
//! trailmark key transition v1
//! prefix <origin prefix>
//! new <base64 of the new 32-byte Ed25519 public key>
//! tenant <name> <size>        (one line per tenant, by name)
//! ```

use std::collections::BTreeMap;
use std::fmt::Write as _;

use trailmark_log::{KeyName, Note, VerifierKey};

const HEADER: &str = "trailmark key transition v1";

/// One recorded signing key, as the store keeps it.
#[derive(Clone, Debug)]
pub struct KeyRecordView {
    pub public_key: [u8; 32],
    pub origin_prefix: String,
    /// The transition statement into this key (none for the first).
    pub transition: Option<String>,
}

impl KeyRecordView {
    /// This key as it signs one tenant's checkpoints: named
    /// `<origin prefix>/<tenant>`. The one place that name is made.
    pub fn key_for(&self, tenant: &str) -> Result<VerifierKey, String> {
        let name =
            KeyName::new(format!("{}/{tenant}", self.origin_prefix)).map_err(|e| e.to_string())?;
        VerifierKey::from_public(name, &self.public_key).map_err(|e| e.to_string())
    }
}

/// A verifier key and the checkpoint sizes it may sign (inclusive bounds).
#[derive(Clone, Debug)]
pub struct ScopedKey {
    pub key: VerifierKey,
    pub from: u64,
    pub until: Option<u64>,
}

impl ScopedKey {
    /// A key valid for every size.
    pub fn always(key: VerifierKey) -> Self {
        Self {
            key,
            from: 0,
            until: None,
        }
    }

    pub fn covers(&self, size: u64) -> bool {
        size >= self.from && self.until.is_none_or(|u| size <= u)
    }
}

/// The statement that hands signing from one key to the next.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transition {
    pub prefix: String,
    pub new_key: [u8; 32],
    /// Per tenant, the size from which the new key signs.
    pub effective: BTreeMap<String, u64>,
}

impl Transition {
    /// The note text of the statement.
    pub fn text(&self) -> String {
        let mut text = format!(
            "{HEADER}\nprefix {}\nnew {}\n",
            self.prefix,
            trailmark_log::Hash::from_bytes(self.new_key).to_base64()
        );
        for (tenant, size) in &self.effective {
            let _ = writeln!(text, "tenant {tenant} {size}");
        }
        text
    }

    pub fn parse(text: &str) -> Result<Self, String> {
        let mut lines = text.lines();
        if lines.next() != Some(HEADER) {
            return Err(format!("a key transition starts with {HEADER:?}"));
        }
        let prefix = lines
            .next()
            .and_then(|l| l.strip_prefix("prefix "))
            .ok_or("a key transition names its prefix")?
            .to_owned();
        let new_key = lines
            .next()
            .and_then(|l| l.strip_prefix("new "))
            .and_then(|k| trailmark_log::Hash::from_base64(k).ok())
            .ok_or("a key transition names the new key")?;
        let mut effective = BTreeMap::new();
        for line in lines {
            let (tenant, size) = line
                .strip_prefix("tenant ")
                .and_then(|l| l.rsplit_once(' '))
                .ok_or_else(|| format!("not a tenant line: {line:?}"))?;
            let size: u64 = size.parse().map_err(|_| format!("not a size: {line:?}"))?;
            effective.insert(tenant.to_owned(), size);
        }
        Ok(Self {
            prefix,
            new_key: *new_key.as_bytes(),
            effective,
        })
    }
}

/// The name the trail-wide statements are signed under.
pub fn system_key_name(prefix: &str) -> Result<KeyName, String> {
    KeyName::new(format!("{prefix}/_system")).map_err(|e| e.to_string())
}

/// A recorded public key as it signs `_system` and key transitions: the
/// verifier key named `<prefix>/_system`.
pub fn system_key(prefix: &str, public_key: &[u8; 32]) -> Result<VerifierKey, String> {
    VerifierKey::from_public(system_key_name(prefix)?, public_key).map_err(|e| e.to_string())
}

/// The verified history of a trail's signing keys.
#[derive(Clone, Debug)]
pub struct KeyHistory {
    /// Each key with the transition into it (none for the first).
    keys: Vec<(KeyRecordView, Option<Transition>)>,
}

impl KeyHistory {
    /// Checks each transition: signed by the key before it, naming the
    /// next key and the same prefix.
    pub fn new(records: &[KeyRecordView]) -> Result<Self, String> {
        let mut keys: Vec<(KeyRecordView, Option<Transition>)> = Vec::new();
        for (i, record) in records.iter().enumerate() {
            let Some(previous) = keys.last().map(|(r, _)| r.clone()) else {
                keys.push((record.clone(), None));
                continue;
            };
            let statement = record
                .transition
                .as_deref()
                .ok_or_else(|| format!("signing key {i} has no transition statement"))?;
            let note = Note::parse(statement.as_bytes())
                .map_err(|e| format!("key transition {i}: {e}"))?;
            let signer = system_key(&previous.origin_prefix, &previous.public_key)?;
            note.verify(std::slice::from_ref(&signer)).map_err(|e| {
                format!("key transition {i} is not signed by the key before it: {e}")
            })?;
            let transition = Transition::parse(note.text())?;
            if transition.new_key != record.public_key || transition.prefix != record.origin_prefix
            {
                return Err(format!(
                    "key transition {i} names another key or prefix than the one recorded"
                ));
            }
            keys.push((record.clone(), Some(transition)));
        }
        Ok(Self { keys })
    }

    /// Whether the history starts from this public key (a pinned root).
    pub fn starts_with(&self, public_key: &[u8; 32]) -> bool {
        self.keys
            .first()
            .is_some_and(|(r, _)| r.public_key == *public_key)
    }

    /// The newest key signing `tenant`'s checkpoints, when `remembered` is
    /// one of the history's keys for it: the chain from it on was checked
    /// by [`Self::new`], each transition signed by the key before it, so
    /// only a holder of `remembered` could have handed signing on.
    pub fn successor(&self, tenant: &str, remembered: &VerifierKey) -> Result<VerifierKey, String> {
        let known = self
            .keys
            .iter()
            .any(|(r, _)| r.key_for(tenant).is_ok_and(|k| k == *remembered));
        if !known {
            return Err("the remembered key is not one of the trail's signing keys".into());
        }
        self.keys
            .last()
            .ok_or_else(|| "the trail records no signing key".to_owned())?
            .0
            .key_for(tenant)
    }

    /// The keys that may sign `tenant`'s checkpoints, each with its sizes.
    pub fn keys_for(&self, tenant: &str) -> Result<Vec<ScopedKey>, String> {
        let mut out = Vec::new();
        for (i, (record, into)) in self.keys.iter().enumerate() {
            let key = record.key_for(tenant)?;
            let from = into
                .as_ref()
                .map_or(0, |t| t.effective.get(tenant).copied().unwrap_or(0));
            let until = self.keys.get(i + 1).and_then(|(_, next)| {
                next.as_ref()
                    .map(|t| t.effective.get(tenant).copied().unwrap_or(0))
            });
            out.push(ScopedKey { key, from, until });
        }
        Ok(out)
    }
}
