use std::fmt;

/// One problem with an input, located by its field path (`actor.id`,
/// `changes.price.old`, `metadata.items[3]`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldError {
    pub path: String,
    pub message: String,
}

impl FieldError {
    pub fn new(path: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            path: path.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", self.path, self.message)
        }
    }
}

/// Everything that can go wrong in this crate.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An event failed validation; every problem is listed.
    #[error("invalid event: {}", join(.0))]
    Invalid(Vec<FieldError>),
    /// A value could not be canonicalized (RFC 8785).
    #[error("cannot canonicalize {what}: {source}")]
    Canonical {
        what: &'static str,
        #[source]
        source: serde_json::Error,
    },
    /// Stored envelope bytes are not a canonical Trailmark envelope.
    #[error("not a canonical v1 envelope: {reason}")]
    Envelope { reason: String },
    /// A payload does not match the digest its envelope commits to.
    #[error("payload does not match its digest")]
    PayloadMismatch,
}

fn join(errors: &[FieldError]) -> String {
    errors
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}
