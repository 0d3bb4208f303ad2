//! Setting the capture context from Rust on a tokio-postgres transaction.
//! The values and the settings' names are `trailmark_core`'s
//! ([`CaptureContext`]); an axum application carries them from request to
//! handler with the Rust client's layer (`trailmark_client::web`).

use tokio_postgres::GenericClient;
pub use trailmark_core::CaptureContext;

/// Sets `context` on the transaction `client` is in (one round trip), with
/// `trailmark.set_context`, so it reaches the capture in either mode. Call
/// it first thing in the transaction; outside one, the values would end
/// with the statement and the writes would carry no actor.
pub async fn apply(
    context: &CaptureContext,
    client: &impl GenericClient,
) -> Result<(), tokio_postgres::Error> {
    let Some(sql) = context.set_context_sql() else {
        return Ok(());
    };
    // Sent as text and cast in SQL, so no JSON type support is needed.
    client.execute(sql, &[&context.to_json()]).await?;
    Ok(())
}
