//! Webhook signatures as the Standard Webhooks specification has them
//! (<https://www.standardwebhooks.com/>), so that a receiver checks them
//! with any of its libraries: headers `webhook-id`, `webhook-timestamp`
//! (Unix seconds) and `webhook-signature` (`v1,` and the base64 of
//! HMAC-SHA256 over `{id}.{timestamp}.{body}`), with a per-endpoint secret
//! written `whsec_` and the base64 of its bytes.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use hmac::{KeyInit as _, Mac as _};

/// The shortest and longest secret the specification allows, in bytes.
const SECRET_BYTES: std::ops::RangeInclusive<usize> = 24..=64;
const PREFIX: &str = "whsec_";

/// An endpoint's signing secret.
#[derive(Clone, PartialEq, Eq)]
pub struct WebhookSecret(Vec<u8>);

impl std::fmt::Debug for WebhookSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WebhookSecret(…)")
    }
}

impl WebhookSecret {
    /// A new secret of 32 random bytes.
    pub fn generate() -> Result<Self, String> {
        let mut bytes = vec![0u8; 32];
        getrandom::fill(&mut bytes).map_err(|e| format!("no randomness: {e}"))?;
        Ok(Self(bytes))
    }

    /// Reads `whsec_<base64>` (24 to 64 bytes once decoded).
    pub fn parse(text: &str) -> Result<Self, String> {
        let encoded = text
            .strip_prefix(PREFIX)
            .ok_or_else(|| format!("a webhook secret starts with {PREFIX}"))?;
        let bytes = BASE64
            .decode(encoded)
            .map_err(|e| format!("a webhook secret is {PREFIX} and base64: {e}"))?;
        if !SECRET_BYTES.contains(&bytes.len()) {
            return Err(format!(
                "a webhook secret holds {} to {} bytes, this one {}",
                SECRET_BYTES.start(),
                SECRET_BYTES.end(),
                bytes.len()
            ));
        }
        Ok(Self(bytes))
    }

    /// The secret as an endpoint's owner is given it.
    pub fn to_text(&self) -> String {
        format!("{PREFIX}{}", BASE64.encode(&self.0))
    }

    /// The `webhook-signature` value of one delivery.
    pub fn sign(&self, id: &str, timestamp: i64, body: &[u8]) -> String {
        let mut mac = hmac::Hmac::<sha2_11::Sha256>::new_from_slice(&self.0)
            .unwrap_or_else(|_| unreachable!("HMAC takes a key of any length"));
        mac.update(id.as_bytes());
        mac.update(b".");
        mac.update(timestamp.to_string().as_bytes());
        mac.update(b".");
        mac.update(body);
        format!("v1,{}", BASE64.encode(mac.finalize().into_bytes()))
    }

    /// The three headers of one delivery: its id (the same on every
    /// attempt, for receivers to deduplicate by), its time, its signature.
    pub fn headers(&self, id: &str, timestamp: i64, body: &[u8]) -> [(&'static str, String); 3] {
        [
            ("webhook-id", id.to_owned()),
            ("webhook-timestamp", timestamp.to_string()),
            ("webhook-signature", self.sign(id, timestamp, body)),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_secret_reads_back_and_bad_ones_are_named() {
        let s = WebhookSecret::generate().unwrap();
        assert_eq!(WebhookSecret::parse(&s.to_text()).unwrap(), s);
        assert!(WebhookSecret::parse("abc").unwrap_err().contains("whsec_"));
        assert!(
            WebhookSecret::parse("whsec_!!")
                .unwrap_err()
                .contains("base64")
        );
        let short = format!("whsec_{}", BASE64.encode([7u8; 16]));
        assert!(
            WebhookSecret::parse(&short)
                .unwrap_err()
                .contains("24 to 64")
        );
        assert!(!format!("{s:?}").contains(&s.to_text()), "never printed");
    }

    #[test]
    fn the_signature_covers_id_time_and_body() {
        let s = WebhookSecret::parse(&format!("whsec_{}", BASE64.encode([1u8; 32]))).unwrap();
        let sig = s.sign("msg_1", 1_700_000_000, b"{}");
        assert!(sig.starts_with("v1,"));
        assert_ne!(sig, s.sign("msg_2", 1_700_000_000, b"{}"));
        assert_ne!(sig, s.sign("msg_1", 1_700_000_001, b"{}"));
        assert_ne!(sig, s.sign("msg_1", 1_700_000_000, b"{ }"));
    }
}
