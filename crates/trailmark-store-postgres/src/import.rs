//! Copying a trail in from another store, entry bytes unchanged.

use std::collections::HashMap;

use trailmark_core::{Envelope, TenantId};
use trailmark_log::{CompactRange, TreeSize, leaf_hash};
use trailmark_store::{RawEntry, StoreError};

use crate::append::{Head, NewRow, Nodes, Rows, write};
use crate::{PgStore, db, read};

impl PgStore {
    /// Appends `entries` to `tenant` exactly as they are (envelope bytes,
    /// payload, salt, and what removed a payload that is gone), as seqs `start..`: the tenant must hold exactly
    /// `start` entries. Each envelope must name this tenant and its seq; leaf
    /// hashes and tree nodes are computed here from the envelope bytes, as a
    /// verifier would. One transaction.
    pub async fn import(
        &self,
        tenant: &TenantId,
        start: u64,
        entries: &[RawEntry],
    ) -> Result<(), StoreError> {
        let mut client = self.client().await?;
        let mut received = Vec::new();
        for entry in entries.iter().filter(|e| e.payload_text.is_some()) {
            received.push(
                Envelope::from_leaf_bytes(&entry.envelope_bytes)?
                    .received_at
                    .unix_millis(),
            );
        }
        crate::partitions::ensure(&**client, &self.partitions, received).await?;
        let tx = client
            .transaction()
            .await
            .map_err(db("starting an import"))?;
        tx.execute(
            "INSERT INTO trailmark_ledger.tenants (name, size) VALUES ($1, 0) ON CONFLICT (name) DO NOTHING",
            &[&tenant.as_str()],
        )
        .await
        .map_err(db("adding a tenant"))?;
        let size: i64 = tx
            .query_one(
                "SELECT size FROM trailmark_ledger.tenants WHERE name = $1 FOR UPDATE",
                &[&tenant.as_str()],
            )
            .await
            .map_err(db("locking a tenant"))?
            .get(0);
        if u64::try_from(size).ok() != Some(start) {
            return Err(StoreError::Invalid(format!(
                "tenant {tenant} holds {size} entries here; the import starts at {start}"
            )));
        }
        let tree = TreeSize::new(start).unwrap_or_default();
        let hashes = read::nodes(&*tx, tenant, &CompactRange::node_ids(tree)).await?;
        let mut head = Head {
            size: start,
            range: CompactRange::from_hashes(tree, hashes)?,
        };
        let mut rows = Rows::default();
        let mut nodes = Nodes::default();
        for entry in entries {
            let env = Envelope::from_leaf_bytes(&entry.envelope_bytes)?;
            if &env.tenant != tenant || env.seq.get() != head.size {
                return Err(StoreError::Corrupt {
                    tenant: tenant.clone(),
                    reason: format!(
                        "entry {} names tenant {} seq {}, expected seq {}",
                        env.id,
                        env.tenant,
                        env.seq.get(),
                        head.size
                    ),
                });
            }
            let leaf = leaf_hash(&entry.envelope_bytes);
            head.append(tenant, leaf, &mut nodes)?;
            // The payload's search words and columns are read from its
            // stored text, which is copied byte for byte (the digest
            // commits to it).
            rows.push(NewRow {
                envelope: &env,
                bytes: entry.envelope_bytes.clone(),
                leaf,
                payload_text: entry.payload_text.clone(),
                salt: entry.salt.as_ref().map(|s| s.as_bytes().to_vec()),
                // The marker goes with an entry whose payload is gone.
                removed: entry.removed.filter(|_| entry.payload_text.is_none()),
            })?;
        }
        let mut heads = HashMap::new();
        heads.insert(tenant.as_str().to_owned(), head);
        write(&tx, &rows, &nodes, heads).await?;
        tx.commit().await.map_err(db("committing an import"))?;
        Ok(())
    }
}
