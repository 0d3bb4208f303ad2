//! Setting the capture context from Rust on a tokio-postgres transaction.
//! The values and the settings' names are `trailmark_core`'s
//! ([`CaptureContext`]); an axum application carries them from request to
//! handler with the Rust client's layer (`trailmark_client::web`).

use tokio_postgres::GenericClient;
pub use trailmark_core::CaptureContext;

/// Sets `context` on the transaction `client` is in (one round trip). Call
/// it first thing in the transaction; outside one, the values would end
/// with the statement and the writes would carry no actor.
pub async fn apply(
    context: &CaptureContext,
    client: &impl GenericClient,
) -> Result<(), tokio_postgres::Error> {
    let Some(sql) = context.set_config_sql() else {
        return Ok(());
    };
    let settings = context.settings();
    let params: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> = settings
        .iter()
        .map(|(_, v)| v as &(dyn tokio_postgres::types::ToSql + Sync))
        .collect();
    client.execute(&sql, &params).await?;
    Ok(())
}
