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

impl StoreError {
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
