//! Setting the capture context from Rust: the values one request attaches
//! to its transaction, and a tokio task-local to carry them from an HTTP
//! layer to the code that writes.

use tokio_postgres::GenericClient;

/// Who is acting and from where, as the triggers read it
/// (`trailmark.*` settings, local to the transaction).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CaptureContext {
    pub actor_id: Option<String>,
    pub actor_type: Option<String>,
    pub actor_name: Option<String>,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    pub request_id: Option<String>,
    pub session_id: Option<String>,
    pub tenant: Option<String>,
    pub reason: Option<String>,
}

tokio::task_local! {
    /// The context of the request this task serves. A task spawned from it
    /// does not inherit it: wrap the spawned future in `CURRENT.scope(…)`.
    pub static CURRENT: CaptureContext;
}

impl CaptureContext {
    /// The context of the current task, if a layer set one.
    pub fn current() -> Option<Self> {
        CURRENT.try_with(Clone::clone).ok()
    }

    fn pairs(&self) -> Vec<(&'static str, &str)> {
        [
            ("actor_id", &self.actor_id),
            ("actor_type", &self.actor_type),
            ("actor_name", &self.actor_name),
            ("ip", &self.ip),
            ("user_agent", &self.user_agent),
            ("request_id", &self.request_id),
            ("session_id", &self.session_id),
            ("tenant", &self.tenant),
            ("reason", &self.reason),
        ]
        .into_iter()
        .filter_map(|(k, v)| v.as_deref().filter(|v| !v.is_empty()).map(|v| (k, v)))
        .collect()
    }

    /// Sets the context on the transaction `client` is in (one round trip).
    /// Call it first thing in the transaction; outside one, the values would
    /// end with the statement and the writes would carry no actor.
    pub async fn apply(&self, client: &impl GenericClient) -> Result<(), tokio_postgres::Error> {
        let pairs = self.pairs();
        if pairs.is_empty() {
            return Ok(());
        }
        let sql = pairs
            .iter()
            .enumerate()
            .map(|(i, (k, _))| format!("set_config('trailmark.{k}', ${}, true)", i + 1))
            .collect::<Vec<_>>()
            .join(", ");
        let params: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> = pairs
            .iter()
            .map(|(_, v)| v as &(dyn tokio_postgres::types::ToSql + Sync))
            .collect();
        client.execute(&format!("SELECT {sql}"), &params).await?;
        Ok(())
    }
}
