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
                source: Box::new(Copied::of(source.as_ref())),
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

    /// This error with each of its causes that adds something (a
    /// database's own message: `tokio-postgres` says only "db error"), for
    /// the operator's log. An answer to a client says only what `Display`
    /// does: a database's message may quote stored values.
    #[must_use]
    pub fn with_causes(&self) -> String {
        trailmark_core::told(self)
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

/// A backend error copied as text, cause by cause, for each of several
/// waiters ([`StoreError::duplicate`]): the same `Display`, and the same
/// causes for [`StoreError::with_causes`].
#[derive(Debug)]
struct Copied {
    text: String,
    cause: Option<Box<Copied>>,
}

impl Copied {
    fn of(error: &(dyn std::error::Error + 'static)) -> Self {
        Self {
            text: error.to_string(),
            cause: error.source().map(|cause| Box::new(Self::of(cause))),
        }
    }
}

impl std::fmt::Display for Copied {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text)
    }
}

impl std::error::Error for Copied {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.cause
            .as_deref()
            .map(|c| c as &(dyn std::error::Error + 'static))
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

    /// An error whose own text says only its kind (as `tokio-postgres`'s
    /// "db error") is logged with the cause that says what happened, and
    /// so is each waiter's copy; a cause already said is not repeated, and
    /// `Display` (what a client is told) stays without it.
    #[test]
    fn the_log_is_told_the_causes_a_client_is_not() {
        #[derive(Debug)]
        struct Kind(std::io::Error);
        impl std::fmt::Display for Kind {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("db error")
            }
        }
        impl std::error::Error for Kind {
            fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
                Some(&self.0)
            }
        }
        let cause = std::io::Error::other("ERROR: no space left on device");
        let error = StoreError::backend("appending", Kind(cause));
        assert_eq!(error.to_string(), "appending: db error");
        let told = "appending: db error: ERROR: no space left on device";
        assert_eq!(error.with_causes(), told);
        let copy = error.duplicate();
        assert_eq!(copy.to_string(), "appending: db error");
        assert_eq!(copy.with_causes(), told);
        let plain = StoreError::backend("reading", std::io::Error::other("connection reset"));
        assert_eq!(plain.with_causes(), "reading: connection reset");
    }
}
