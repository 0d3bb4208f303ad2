//! Captured events' ids: derived from where the change was read (the source
//! database, then its outbox id or its commit LSN and place in the
//! transaction), so a change sent again after a crash gets the same id and
//! is stored once.
//!
//! Ids derived by SHA-256 alone land at random places in a store's id
//! indexes, so on a large trail every captured event costs random index
//! writes. Since this version the position leads the id
//! ([`EventId::derived_in_order`]): ids rise as the source's changes do.
//! A change a drainer of an earlier version sent, but whose acknowledgement
//! it had not yet recorded in the source (outbox row not deleted, slot not
//! confirmed), is sent again after the upgrade: it must get the id it had.
//! So the first drainer of this version records, in `trailmark.meta`, where
//! ordered ids start: past every outbox row it can see, and at the WAL
//! position it starts at. Nothing an earlier drainer read lies beyond
//! those (it could only read what was committed before it stopped, and it
//! stopped before this one took the drain lock), and everything before them
//! keeps the earlier id. An install from nothing records that every change
//! gets an ordered id.
//!
//! The same again, one level down: ids ordered by the commit LSN alone
//! scatter the changes of one transaction under its prefix (a bulk
//! UPDATE of a million rows wrote most pages of that range again at every
//! batch). From `ids.wal_change_from` on, a WAL change's place in its
//! transaction follows the LSN ([`EventId::derived_in_order_within`]);
//! changes committed before it keep the id they had.

use tokio_postgres::{Client, GenericClient};
use trailmark_core::EventId;

use crate::{Error, OutboxRow, pg};

/// Whether schema `trailmark` holds no outbox yet: an install from
/// nothing, where no earlier drainer can have sent a change.
pub(crate) async fn fresh(client: &impl GenericClient) -> Result<bool, Error> {
    Ok(client
        .query_one("SELECT to_regclass('trailmark.outbox') IS NULL", &[])
        .await
        .map_err(pg("looking for an earlier outbox"))?
        .get(0))
}

/// The keys [`record`] writes.
const RECORDED: [&str; 4] = [
    "ids.outbox_from",
    "ids.wal_from",
    "ids.wal_change_from",
    "ids.install",
];

/// Records where ordered ids start unless that is recorded: from the first
/// change on for a `fresh` install, else past what an earlier drainer can
/// have read (every outbox row there is, the WAL written so far). Through
/// `trailmark.record_ids` (install.sql, the one statement that writes them),
/// the owner's function: a drainer's role needs only EXECUTE on it.
pub(crate) async fn record(client: &impl GenericClient, fresh: bool) -> Result<(), Error> {
    use tokio_postgres::error::SqlState;
    let context = "recording where ordered event ids start";
    client
        .execute("SELECT trailmark.record_ids($1)", &[&fresh])
        .await
        .map_err(|e| {
            let context = match e.code() {
                Some(&SqlState::UNDEFINED_FUNCTION) => format!(
                    "{context} (capture was installed by an earlier Trailmark: run `trailmark capture pg install` again to upgrade)"
                ),
                Some(&SqlState::INSUFFICIENT_PRIVILEGE) => format!(
                    "{context} (the drainer's role may not: run `trailmark capture pg install` again with --drainer-role ROLE, which grants it EXECUTE on trailmark.record_ids)"
                ),
                _ => context.to_owned(),
            };
            pg(context)(e)
        })?;
    Ok(())
}

/// How this drainer names the events of one source database.
#[derive(Clone, Debug)]
pub struct EventIds {
    /// The source's system identifier and name (`7312…/shop`).
    database: String,
    /// Outbox rows from this id on get ordered ids.
    outbox_from: i64,
    /// Changes committed at or after this LSN get ordered ids.
    wal_from: u64,
    /// Changes committed at or after this LSN get ids ordered by their
    /// place in the transaction too.
    wal_change_from: u64,
    /// Drawn once per install: an outbox id reused after `uninstall` and
    /// `install` (its sequence starts again) names another change.
    install: String,
}

impl EventIds {
    /// Reads (the first time: records) where ordered ids start. Call it
    /// holding the drain lock, before anything is sent.
    pub(crate) async fn prepare(client: &Client) -> Result<Self, Error> {
        let database: String = client
            .query_one(
                "SELECT system_identifier::text || '/' || current_database() FROM pg_control_system()",
                &[],
            )
            .await
            .map_err(pg("identifying the source database"))?
            .get(0);
        let read = || async {
            client
                .query(
                    "SELECT key, value FROM trailmark.meta WHERE key LIKE 'ids.%'",
                    &[],
                )
                .await
                .map_err(pg("reading where ordered event ids start"))
        };
        let mut rows = read().await?;
        // Written only when missing (an install older than ordered ids),
        // through the owner's function: a drainer's role need not be
        // allowed to write `trailmark.meta` (docs/CAPTURE.md, "The
        // drainer's role").
        if rows.len() < RECORDED.len() {
            record(client, false).await?;
            rows = read().await?;
        }
        let value = |key: &str| {
            rows.iter()
                .find(|r| r.get::<_, &str>(0) == key)
                .map(|r| r.get::<_, String>(1))
                .ok_or_else(|| Error::Replication(format!("trailmark.meta has no {key}")))
        };
        let unreadable = |key: &str, text: &str| {
            Error::Replication(format!(
                "trailmark.meta's {key} {text:?} is not what this drainer records"
            ))
        };
        let outbox = value("ids.outbox_from")?;
        let wal = value("ids.wal_from")?;
        let wal_change = value("ids.wal_change_from")?;
        Ok(Self {
            database,
            outbox_from: outbox
                .parse()
                .map_err(|_| unreadable("ids.outbox_from", &outbox))?,
            wal_from: crate::parse_lsn(&wal).ok_or_else(|| unreadable("ids.wal_from", &wal))?,
            wal_change_from: crate::parse_lsn(&wal_change)
                .ok_or_else(|| unreadable("ids.wal_change_from", &wal_change))?,
            install: value("ids.install")?,
        })
    }

    /// Ordered ids for every change (a source whose drainer never ran
    /// before this version: tests, and what `prepare` records there).
    pub fn ordered(database: &str, install: &str) -> Self {
        Self {
            database: database.to_owned(),
            outbox_from: 0,
            wal_from: 0,
            wal_change_from: 0,
            install: install.to_owned(),
        }
    }

    /// Ids as drainers before this version derived them, for every change.
    #[cfg(test)]
    fn unordered(database: &str) -> Self {
        Self {
            database: database.to_owned(),
            outbox_from: i64::MAX,
            wal_from: u64::MAX,
            wal_change_from: u64::MAX,
            install: String::new(),
        }
    }

    /// The id of the event for `row`.
    pub fn id(&self, row: &OutboxRow) -> EventId {
        let database = &self.database;
        match row.wal {
            None if row.id < self.outbox_from => {
                EventId::derived(format!("{database}/outbox/{}", row.id).as_bytes())
            }
            None => EventId::derived_in_order(
                row.id.unsigned_abs(),
                format!("{database}/outbox/{}/{}", row.id, self.install).as_bytes(),
            ),
            Some(at) => {
                let seed = format!(
                    "{database}/wal/{}/{}",
                    crate::lsn_text(at.commit_lsn),
                    at.change
                );
                if at.commit_lsn < self.wal_from {
                    return EventId::derived(seed.as_bytes());
                }
                // An LSN never repeats in one cluster: no install part.
                if at.commit_lsn < self.wal_change_from {
                    return EventId::derived_in_order(at.commit_lsn, seed.as_bytes());
                }
                EventId::derived_in_order_within(at.commit_lsn, at.change, seed.as_bytes())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::WalPosition;

    fn row(id: i64, wal: Option<WalPosition>) -> OutboxRow {
        OutboxRow {
            id,
            txid: 1,
            stmt: 0,
            op: "insert".into(),
            schema: "public".into(),
            table: "t".into(),
            old_row: None,
            new_row: None,
            context: serde_json::json!({}),
            db_role: "app".into(),
            captured_at: "2026-12-01T00:00:00.000Z".into(),
            wal,
        }
    }

    #[test]
    fn changes_before_the_switch_keep_their_earlier_ids_and_later_ones_rise() {
        let ids = EventIds {
            database: "7/shop".into(),
            outbox_from: 10,
            wal_from: 0x500,
            wal_change_from: u64::MAX,
            install: "i1".into(),
        };
        let legacy = EventIds::unordered("7/shop");
        // Sent before the upgrade, unacknowledged, sent again: the same id.
        assert_eq!(ids.id(&row(9, None)), legacy.id(&row(9, None)));
        let early = Some(WalPosition {
            commit_lsn: 0x4FF,
            change: 3,
        });
        assert_eq!(ids.id(&row(0, early)), legacy.id(&row(0, early)));
        assert_eq!(
            ids.id(&row(9, None)),
            EventId::derived(b"7/shop/outbox/9"),
            "the id drainers before this version derived"
        );
        // From the switch on: rising with the position.
        let outbox: Vec<EventId> = (10..200).map(|n| ids.id(&row(n, None))).collect();
        assert!(outbox.windows(2).all(|p| p[0] < p[1]));
        assert_ne!(ids.id(&row(10, None)), legacy.id(&row(10, None)));
        let wal: Vec<EventId> = [(0x500, 0), (0x500, 1), (0x501, 0), (0x1_0000_0000, 7)]
            .into_iter()
            .map(|(commit_lsn, change)| ids.id(&row(0, Some(WalPosition { commit_lsn, change }))))
            .collect();
        assert!(wal[0] != wal[1] && wal[1] < wal[2] && wal[2] < wal[3] && wal[0] < wal[2]);
        // The same position of another install (outbox ids start again
        // after uninstall and install) names another change.
        let reinstalled = EventIds {
            install: "i2".into(),
            ..ids.clone()
        };
        assert_ne!(ids.id(&row(50, None)), reinstalled.id(&row(50, None)));
        // WAL positions never repeat in a cluster: the same id.
        let late = Some(WalPosition {
            commit_lsn: 0x900,
            change: 0,
        });
        assert_eq!(ids.id(&row(0, late)), reinstalled.id(&row(0, late)));
    }

    #[test]
    fn changes_after_the_second_switch_rise_with_their_place_in_the_transaction() {
        let ids = EventIds {
            database: "7/shop".into(),
            outbox_from: 0,
            wal_from: 0x500,
            wal_change_from: 0x900,
            install: "i1".into(),
        };
        let at = |commit_lsn, change| ids.id(&row(0, Some(WalPosition { commit_lsn, change })));
        let before = EventIds {
            wal_change_from: u64::MAX,
            ..ids.clone()
        };
        let at_before =
            |commit_lsn, change| before.id(&row(0, Some(WalPosition { commit_lsn, change })));
        // Committed before the switch: the id drainers of the version before
        // derived (ordered by the commit LSN alone).
        assert_eq!(at(0x8FF, 3), at_before(0x8FF, 3));
        assert_eq!(
            at(0x8FF, 3),
            EventId::derived_in_order(0x8FF, b"7/shop/wal/0/8FF/3")
        );
        // From the switch on: one transaction's changes rise in its order,
        // and all of them after the transaction before.
        assert_ne!(at(0x900, 0), at_before(0x900, 0));
        let one: Vec<EventId> = (0..5000).map(|change| at(0x900, change)).collect();
        assert!(at(0x8FF, 4999) < one[0]);
        assert!(one.windows(2).all(|p| p[0] < p[1]));
        assert!(one[4999] < at(0x901, 0));
        assert_eq!(at(0x900, 7), at(0x900, 7), "stable");
    }
}
