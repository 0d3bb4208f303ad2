//! The drainer's role: what a drainer reads and writes in the application's
//! database, granted to a role that need not own anything or be a
//! superuser (`capture pg install --drainer-role`).

use tokio_postgres::Client;

use super::{Mode, installed_mode};
use crate::table::ident;
use crate::{Error, pg};

/// Grants `role` what a drainer of the installed mode needs, and nothing
/// more: the schema `trailmark` to look in, its options, meta, outbox and
/// drain record to read (as `capture pg status` does), the remembered
/// checkpoints to read and write, the function that records where ordered
/// event ids start to call and, in trigger mode, the outbox to delete
/// from and the drain record to write. WAL mode
/// also needs the role's `REPLICATION` attribute, which only a superuser
/// (or a role with `CREATEROLE`) can give: a role without it is refused,
/// naming the statement. A role that does not exist is refused too. Run
/// again after each install, it grants the same (the statements are
/// idempotent).
pub async fn grant_drainer(client: &mut Client, role: &str) -> Result<(), Error> {
    if role.is_empty() {
        return Err(Error::BadOption(
            "--drainer-role: empty; name the role the drainer connects as".into(),
        ));
    }
    let Some(mode) = installed_mode(&*client).await? else {
        return Err(Error::NotInstalled);
    };
    let found = client
        .query_opt(
            "SELECT rolreplication OR rolsuper FROM pg_roles WHERE rolname = $1",
            &[&role],
        )
        .await
        .map_err(pg("looking up the drainer's role"))?;
    let Some(found) = found else {
        return Err(Error::BadOption(format!(
            "--drainer-role: no role {role:?} in this server; create it first (CREATE ROLE {} LOGIN{})",
            ident(role),
            if mode == Mode::Wal {
                " REPLICATION"
            } else {
                ""
            }
        )));
    };
    if mode == Mode::Wal && !found.get::<_, bool>(0) {
        return Err(Error::BadOption(format!(
            "--drainer-role: {role:?} may not stream the WAL; give it the REPLICATION attribute (ALTER ROLE {} REPLICATION, as a superuser) and run install again",
            ident(role)
        )));
    }
    let who = ident(role);
    // Reading the outbox and the drain record is also what `capture pg
    // status` does, in either mode (and the schemas covered whole, status
    // alone).
    let mut grants = vec![
        format!("GRANT USAGE ON SCHEMA trailmark TO {who}"),
        format!(
            "GRANT SELECT ON trailmark.meta, trailmark.tables, trailmark.outbox, trailmark.drained, trailmark.schemas TO {who}"
        ),
        format!("GRANT SELECT, INSERT, UPDATE ON trailmark.seen_checkpoints TO {who}"),
        // Where ordered event ids start, recorded by the first drainer
        // after an upgrade from a version before them (src/ids.rs).
        format!("GRANT EXECUTE ON FUNCTION trailmark.record_ids(boolean) TO {who}"),
    ];
    if mode == Mode::Wal {
        // Where it confirmed the slot (capture version 16).
        grants.push(format!(
            "GRANT SELECT, INSERT, UPDATE ON trailmark.slot_confirmed TO {who}"
        ));
    }
    if mode == Mode::Trigger {
        grants.push(format!("GRANT DELETE ON trailmark.outbox TO {who}"));
        grants.push(format!(
            "GRANT INSERT, UPDATE ON trailmark.drained TO {who}"
        ));
    }
    let grants = grants.join(";\n");
    let tx = client
        .transaction()
        .await
        .map_err(pg("starting the drainer role's grants"))?;
    tx.batch_execute(&grants)
        .await
        .map_err(pg("granting the drainer's role what it needs"))?;
    tx.commit()
        .await
        .map_err(pg("committing the drainer role's grants"))
}
