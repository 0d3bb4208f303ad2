//! Pausing and resuming capture without uninstalling it (the teams'
//! feature flag): the tables' triggers are disabled or enabled, and the
//! switch is itself an outbox row written in the same transaction, so the
//! drainer records `capture.paused` / `capture.resumed` in the trail, in
//! order with the changes before and after, and a pause is never silent.

use tokio_postgres::Client;

use crate::table::{TableSpec, ident};
use crate::{CaptureContext, Error, pg};

use super::catalog::covered_or_paused;
use super::sql::CHANNEL;
use super::upgrade::{VERSION, installed_version};

/// What a pause or a resume did.
#[derive(Debug)]
pub struct Switched {
    /// The tables switched now.
    pub switched: Vec<String>,
    /// The tables that were already so.
    pub unchanged: Vec<String>,
}

/// Pauses (`paused`) or resumes capture of `only` (empty: every covered
/// table), as `by` (the context recorded with the switch: who did it and
/// why). A table not covered is an error naming it; nothing is switched.
pub async fn set_paused(
    client: &mut Client,
    only: &[TableSpec],
    paused: bool,
    by: &CaptureContext,
) -> Result<Switched, Error> {
    let tx = client
        .transaction()
        .await
        .map_err(pg("starting the pause transaction"))?;
    tx.execute(
        "SELECT pg_advisory_xact_lock(hashtext('trailmark.install'))",
        &[],
    )
    .await
    .map_err(pg("waiting for another install to finish"))?;
    match installed_version(&tx).await? {
        None => return Err(Error::NotInstalled),
        Some(v) if v != VERSION => {
            return Err(Error::BadOption(format!(
                "capture version {v} is installed; pausing needs version {VERSION}: run install again to upgrade"
            )));
        }
        Some(_) => {}
    }
    let wal = super::wal::installed_mode(&tx).await? == Some(super::wal::Mode::Wal);
    let covered = covered_or_paused(&tx).await?;
    let is_covered = |t: &TableSpec| covered.iter().any(|c| c.is_table(t));
    if let Some(missing) = only.iter().find(|t| !is_covered(t)) {
        return Err(Error::BadOption(format!(
            "{missing} is not covered by capture (covered: {})",
            if covered.is_empty() {
                "none".to_owned()
            } else {
                covered
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            }
        )));
    }
    let chosen: Vec<TableSpec> = if only.is_empty() {
        covered
    } else {
        only.to_vec()
    };
    crate::context::apply(by, &tx)
        .await
        .map_err(pg("setting the context of the switch"))?;
    let (mut switched, mut unchanged) = (Vec::new(), Vec::new());
    for table in &chosen {
        let row = tx
            .query_one(
                "SELECT paused_at IS NOT NULL FROM trailmark.tables
                 WHERE schema_name = $1 AND table_name = $2",
                &[&table.schema, &table.table],
            )
            .await
            .map_err(pg(format!("reading the state of {table}")))?;
        if row.get::<_, bool>(0) == paused {
            unchanged.push(table.to_string());
            continue;
        }
        switch(&tx, table, paused, wal).await?;
        switched.push(table.to_string());
    }
    if !switched.is_empty() {
        tx.batch_execute(&format!("NOTIFY {CHANNEL}"))
            .await
            .map_err(pg("waking the drainer"))?;
    }
    tx.commit().await.map_err(pg("committing the switch"))?;
    Ok(Switched {
        switched,
        unchanged,
    })
}

/// Switches one table: the switch recorded (`trailmark.record_switch`:
/// its state in `trailmark.tables`, and an outbox row or a logical message
/// the drainer reads in order with the changes, as for capture switched by
/// hand), then capture off or on (triggers, or the table's place in the
/// publication). Recorded first: in WAL mode the event trigger, which
/// records a publication altered by hand, finds the publication as
/// recorded; in trigger mode a resume makes capture triggers dropped
/// meanwhile, enabled.
async fn switch(
    tx: &tokio_postgres::Transaction<'_>,
    table: &TableSpec,
    paused: bool,
    wal: bool,
) -> Result<(), Error> {
    let op = if paused { "pause" } else { "resume" };
    tx.execute(
        "SELECT trailmark.record_switch($1::text::regclass, $2, NULL)",
        &[&table.quoted(), &op],
    )
    .await
    .map_err(pg(format!("recording the switch of {table}")))?;
    if wal {
        // Out of the publication (or back in, with its column list).
        let sql = if paused {
            format!(
                "ALTER PUBLICATION {} DROP TABLE {}",
                ident(super::wal::PUBLICATION),
                table.quoted()
            )
        } else {
            let spec = super::upgrade::stored_specs(tx)
                .await?
                .into_iter()
                .find(|s| s.is_table(table))
                .unwrap_or_else(|| table.clone());
            format!(
                "ALTER PUBLICATION {} ADD TABLE {}",
                ident(super::wal::PUBLICATION),
                super::wal::member(tx, &spec).await?
            )
        };
        tx.batch_execute(&sql)
            .await
            .map_err(pg(format!("switching the publication of {table}")))?;
    } else {
        triggers(tx, table, !paused).await?;
    }
    Ok(())
}

/// Enables (as `trailmark.enabled_as` says) or disables a covered table's capture triggers:
/// `trailmark.enable_capture`, the rule install follows too.
async fn triggers(
    tx: &tokio_postgres::Transaction<'_>,
    table: &TableSpec,
    enabled: bool,
) -> Result<(), Error> {
    tx.execute(
        "SELECT trailmark.enable_capture($1::text::regclass, $2)",
        &[&table.quoted(), &enabled],
    )
    .await
    .map_err(pg(format!("switching the triggers of {table}")))?;
    Ok(())
}
