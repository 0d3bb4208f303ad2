use trailmark_core::TenantId;

/// What a store can fail with. Backend errors keep their source.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The database failed; `context` says what the store was doing.
    #[error("{context}: {source}")]
    Backend {
        context: &'static str,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// Stored data contradicts itself (a missing node, a broken sequence).
    #[error("tenant {tenant}: stored data is inconsistent: {reason}")]
    Corrupt { tenant: TenantId, reason: String },
    /// A stored row cannot be read back (a payload that is not JSON, a
    /// digest of the wrong length, a tenant name no server writes): the
    /// database was changed outside Trailmark, or is damaged.
    #[error("stored data cannot be read: {0}")]
    Unreadable(String),
    /// The write clashes with what is stored (an id or key already taken).
    #[error("{0}")]
    Conflict(String),
    /// The store is shutting down or its writer has stopped.
    #[error("the store is closed")]
    Closed,
    /// An argument cannot be served (a range past the end, an unknown key id).
    #[error("{0}")]
    Invalid(String),
    /// The caller's request cannot be answered as asked (a search the index
    /// cannot run): a client mistake, named by the parameter.
    #[error("{field}: {message}")]
    BadRequest {
        field: &'static str,
        message: String,
    },
    #[error(transparent)]
    Core(#[from] trailmark_core::Error),
    #[error(transparent)]
    Log(#[from] trailmark_log::Error),
}

/// What kind of failure a [`StoreError`] is, for those who answer it (the
/// HTTP API maps each to one status).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    /// The caller's request cannot be served as asked: its to change.
    BadRequest,
    /// The request clashes with what is stored.
    Conflict,
    /// Stored data is damaged or was changed outside Trailmark: retrying
    /// will not help; `trailmark verify` says what.
    Corrupt,
    /// The database cannot be reached or the store is stopping: retry.
    Unavailable,
}

impl StoreError {
    pub fn kind(&self) -> ErrorKind {
        match self {
            Self::BadRequest { .. } | Self::Invalid(_) => ErrorKind::BadRequest,
            Self::Conflict(_) => ErrorKind::Conflict,
            Self::Corrupt { .. } | Self::Unreadable(_) | Self::Core(_) | Self::Log(_) => {
                ErrorKind::Corrupt
            }
            Self::Backend { .. } | Self::Closed => ErrorKind::Unavailable,
        }
    }

    /// The same error again, for each of several waiters on one failed
    /// operation: same kind and message (a backend source becomes its text).
    #[must_use]
    pub fn duplicate(&self) -> Self {
        match self {
            Self::Backend { context, source } => Self::Backend {
                context,
                source: source.to_string().into(),
            },
            Self::Corrupt { tenant, reason } => Self::Corrupt {
                tenant: tenant.clone(),
                reason: reason.clone(),
            },
            Self::Unreadable(m) => Self::Unreadable(m.clone()),
            Self::Conflict(m) => Self::Conflict(m.clone()),
            Self::Closed => Self::Closed,
            Self::Invalid(m) => Self::Invalid(m.clone()),
            Self::BadRequest { field, message } => Self::BadRequest {
                field,
                message: message.clone(),
            },
            Self::Core(_) | Self::Log(_) => Self::Unreadable(self.to_string()),
        }
    }

    pub fn backend(
        context: &'static str,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        Self::Backend {
            context,
            source: Box::new(source),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_error_has_one_kind_and_a_duplicate_keeps_it() {
        let io = std::io::Error::other("connection reset");
        let cases = [
            (StoreError::backend("reading", io), ErrorKind::Unavailable),
            (StoreError::Closed, ErrorKind::Unavailable),
            (
                StoreError::Unreadable("an entry".into()),
                ErrorKind::Corrupt,
            ),
            (
                StoreError::Corrupt {
                    tenant: TenantId::new("t").unwrap(),
                    reason: "a missing node".into(),
                },
                ErrorKind::Corrupt,
            ),
            (
                StoreError::Invalid("past the end".into()),
                ErrorKind::BadRequest,
            ),
            (StoreError::Conflict("taken".into()), ErrorKind::Conflict),
        ];
        for (error, kind) in cases {
            assert_eq!(error.kind(), kind, "{error}");
            let again = error.duplicate();
            assert_eq!(again.kind(), kind);
            assert_eq!(again.to_string(), error.to_string());
        }
    }
}
