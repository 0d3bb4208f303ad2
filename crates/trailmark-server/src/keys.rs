//! API keys: 256-bit random secrets shown once, stored as SHA-256 digests.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq as _;
use trailmark_core::{TenantId, Timestamp};
use trailmark_store::{KeyRecord, Scopes};

const PREFIX: &str = "tmk_";

/// A key's secret. `Debug` and `Display` show only a short prefix.
#[derive(Clone)]
pub struct ApiKey(String);

impl ApiKey {
    /// A fresh key from 32 random bytes.
    pub fn generate() -> Result<Self, getrandom::Error> {
        let mut bytes = [0u8; 32];
        getrandom::fill(&mut bytes)?;
        Ok(Self(format!("{PREFIX}{}", URL_SAFE_NO_PAD.encode(bytes))))
    }

    /// Wraps a key presented by a client (checked only against stored digests).
    pub fn from_secret(secret: &str) -> Self {
        Self(secret.trim().to_owned())
    }

    /// The whole secret, for showing once or writing to the bootstrap file.
    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn digest(&self) -> [u8; 32] {
        Sha256::digest(self.0.as_bytes()).into()
    }

    /// The public handle of this key: safe to print, log and store.
    pub fn public_id(&self) -> String {
        format!("key_{}", &hex::encode(self.digest())[..12])
    }

    /// A record for the store (the secret itself is not in it).
    pub fn record(
        &self,
        name: &str,
        scopes: Scopes,
        tenant: Option<TenantId>,
        now: Timestamp,
    ) -> KeyRecord {
        KeyRecord {
            id: self.public_id(),
            digest: self.digest(),
            name: name.to_owned(),
            scopes,
            tenant,
            created_at: now,
            revoked_at: None,
        }
    }

    /// Constant-time comparison of this key's digest with a stored one.
    pub fn matches(&self, record: &KeyRecord) -> bool {
        self.digest().ct_eq(&record.digest).into()
    }
}

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let shown: String = self.0.chars().take(PREFIX.len() + 4).collect();
        write!(f, "ApiKey({shown}…)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_shows_only_a_prefix() {
        let key = ApiKey::generate().unwrap();
        let shown = format!("{key:?}");
        assert!(
            shown.len() < 20 && !shown.contains(&key.expose()[8..]),
            "{shown}"
        );
        assert_eq!(key.expose().len(), 4 + 43);
    }

    #[test]
    fn records_hold_the_digest_not_the_secret() {
        let key = ApiKey::generate().unwrap();
        let rec = key.record("ci", Scopes::ALL, None, Timestamp::EPOCH);
        assert!(key.matches(&rec));
        assert!(!ApiKey::from_secret("tmk_other").matches(&rec));
        assert!(!format!("{rec:?}").contains(key.expose()));
    }
}
