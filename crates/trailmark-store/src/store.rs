use std::future::Future;

use trailmark_core::{EventId, TenantId, Timestamp};
use trailmark_log::{Hash, NodeId, TreeSize};

use crate::{
    Appended, CheckpointRecord, CountBy, Hold, IndexerStatus, KeyRecord, NewEvent, Page, Plan,
    Query, RawEntry, RawPage, Read, Removal, RemovalLock, RetentionPolicy, Setting,
    SigningKeyRecord, Stats, StoreError, StoredEntry, Target, TenantHead, Walk, WalkPage,
};

/// A Trailmark ledger backend.
///
/// Every method is a future so that both embedded and networked databases
/// fit; implementations must not block the async executor.
pub trait Store: Send + Sync + 'static {
    /// Appends a batch: all of it or none of it. For each event, in order:
    /// its tenant's next `seq`, or the existing `seq` when the event's id is
    /// already in that tenant's log. Returns only after the batch is durable.
    fn append(
        &self,
        batch: Vec<NewEvent>,
    ) -> impl Future<Output = Result<Vec<Appended>, StoreError>> + Send;

    /// Returns once every write submitted before it has landed or failed,
    /// including appends whose caller stopped waiting (a client that hung
    /// up): what a final checkpoint must come after.
    fn settle(&self) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Every tenant with its current log size.
    fn heads(&self) -> impl Future<Output = Result<Vec<TenantHead>, StoreError>> + Send;

    /// One tenant's current log size (0 when it has none): what a reader
    /// going through the tenants one by one asks, without listing them all
    /// each time.
    fn head(&self, tenant: &TenantId) -> impl Future<Output = Result<TreeSize, StoreError>> + Send {
        async move {
            Ok(self
                .heads()
                .await?
                .into_iter()
                .find(|h| &h.tenant == tenant)
                .map(|h| h.size)
                .unwrap_or_default())
        }
    }

    /// Entries `start..end` of a tenant's log, in order (fewer at the end):
    /// [`Self::raw_entries`] with each payload parsed ([`RawEntry::parse`]).
    fn entries(
        &self,
        tenant: &TenantId,
        start: u64,
        end: u64,
    ) -> impl Future<Output = Result<Vec<StoredEntry>, StoreError>> + Send {
        async move {
            self.raw_entries(tenant, start, end)
                .await?
                .into_iter()
                .map(RawEntry::parse)
                .collect()
        }
    }

    /// Entries `start..end` as stored, payloads unparsed (for verifying and
    /// copying a trail).
    fn raw_entries(
        &self,
        tenant: &TenantId,
        start: u64,
        end: u64,
    ) -> impl Future<Output = Result<Vec<RawEntry>, StoreError>> + Send;

    /// [`Self::raw_entries`] read into one [`RawPage`] (a store that can
    /// copies each row in place, without an owned value per column).
    fn raw_page(
        &self,
        tenant: &TenantId,
        start: u64,
        end: u64,
    ) -> impl Future<Output = Result<RawPage, StoreError>> + Send {
        async move {
            let entries = self.raw_entries(tenant, start, end).await?;
            let mut page = RawPage::default();
            for e in &entries {
                page.push(e.view());
            }
            Ok(page)
        }
    }

    /// The entry with this id in one of `tenants` (all when empty).
    fn entry_by_id(
        &self,
        tenants: &[TenantId],
        id: EventId,
    ) -> impl Future<Output = Result<Option<StoredEntry>, StoreError>> + Send;

    /// The entry each `(tenant, id)` names, in the order asked (`None` where
    /// there is none): what a batch's ids already name, in one read rather
    /// than one per event.
    fn entries_by_ids(
        &self,
        keys: &[(TenantId, EventId)],
    ) -> impl Future<Output = Result<Vec<Option<StoredEntry>>, StoreError>> + Send {
        async move {
            let mut found = Vec::with_capacity(keys.len());
            for (tenant, id) in keys {
                found.push(self.entry_by_id(std::slice::from_ref(tenant), *id).await?);
            }
            Ok(found)
        }
    }

    /// A filtered page, newest first.
    fn query(&self, query: &Query) -> impl Future<Output = Result<Page, StoreError>> + Send;

    /// Counts over the entries a query selects (its filters; not its paging).
    fn stats(&self, query: &Query) -> impl Future<Output = Result<Stats, StoreError>> + Send;

    /// Counts per UTC day (`YYYY-MM-DD` of `occurred_at`) and value of one
    /// column, over the entries a query selects: `(day, value, count)`,
    /// oldest day first. One pass, for charts of a long period.
    fn daily_counts(
        &self,
        query: &Query,
        by: CountBy,
    ) -> impl Future<Output = Result<Vec<(String, String, u64)>, StoreError>> + Send;

    /// How the store would run a read, as the database plans it (no rows
    /// are read). The conformance suite checks that every documented read
    /// seeks by its filters instead of walking a tenant
    /// (`testkit::documented_reads`).
    fn explain(&self, read: &Read) -> impl Future<Output = Result<Plan, StoreError>> + Send;

    /// Complete tree nodes of a tenant, in the order asked.
    fn nodes(
        &self,
        tenant: &TenantId,
        ids: &[NodeId],
    ) -> impl Future<Output = Result<Vec<Hash>, StoreError>> + Send;

    /// Keeps a signed checkpoint. Checkpoints are never deleted.
    fn add_checkpoint(
        &self,
        record: CheckpointRecord,
    ) -> impl Future<Output = Result<(), StoreError>> + Send {
        self.add_checkpoints(vec![record])
    }

    /// Keeps several signed checkpoints, all or none (one commit where the
    /// backend can: what the checkpointer stores when many tenants grew).
    fn add_checkpoints(
        &self,
        records: Vec<CheckpointRecord>,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// The newest checkpoint of a tenant.
    fn latest_checkpoint(
        &self,
        tenant: &TenantId,
    ) -> impl Future<Output = Result<Option<CheckpointRecord>, StoreError>> + Send;

    /// Every checkpoint of a tenant, oldest first.
    fn checkpoints(
        &self,
        tenant: &TenantId,
    ) -> impl Future<Output = Result<Vec<CheckpointRecord>, StoreError>> + Send {
        self.checkpoints_after(tenant, None, usize::MAX)
    }

    /// At most `limit` checkpoints of a tenant whose size is above `after`
    /// (from the first when `None`), oldest first: a page of them.
    fn checkpoints_after(
        &self,
        tenant: &TenantId,
        after: Option<u64>,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<CheckpointRecord>, StoreError>> + Send;

    /// Records a signing key under its ordinal; a key already recorded
    /// under that ordinal is kept and `record` ignored (two servers starting
    /// at once on an empty ledger: the first wins, and each then reads
    /// [`Store::signing_keys`] to see whether it was).
    fn add_signing_key(
        &self,
        record: SigningKeyRecord,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Keeps a witness's cosignature line of the checkpoint of `size`; a
    /// second one by the same witness for that checkpoint is ignored.
    fn add_cosignature(
        &self,
        tenant: &TenantId,
        size: u64,
        witness: &str,
        line: &str,
    ) -> impl Future<Output = Result<(), StoreError>> + Send {
        self.add_cosignatures(tenant, vec![(size, witness.to_owned(), line.to_owned())])
    }

    /// Keeps several cosignatures of a tenant's checkpoints, as (size,
    /// witness, line), all or none (one commit where the backend can: what
    /// `trailmark migrate` copies); each as [`Store::add_cosignature`].
    fn add_cosignatures(
        &self,
        tenant: &TenantId,
        cosignatures: Vec<(u64, String, String)>,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// The cosignature lines of a tenant's checkpoints whose size is in
    /// `sizes`, as (size, line), by size: one checkpoint's (`s..=s`, one
    /// indexed read however many the tenant has) or a page's.
    fn cosignatures(
        &self,
        tenant: &TenantId,
        sizes: std::ops::RangeInclusive<u64>,
    ) -> impl Future<Output = Result<Vec<(u64, String)>, StoreError>> + Send;

    /// The trail's signing keys, oldest first.
    fn signing_keys(
        &self,
    ) -> impl Future<Output = Result<Vec<SigningKeyRecord>, StoreError>> + Send;

    fn create_key(&self, key: KeyRecord) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// The key whose secret hashes to `digest`, revoked or not.
    fn key_by_digest(
        &self,
        digest: [u8; 32],
    ) -> impl Future<Output = Result<Option<KeyRecord>, StoreError>> + Send;

    fn keys(&self) -> impl Future<Output = Result<Vec<KeyRecord>, StoreError>> + Send;

    /// Marks a key revoked; false when no such key id exists.
    fn revoke_key(
        &self,
        id: &str,
        at: Timestamp,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// At most `limit` entries of a removal walk of one tenant, in seq
    /// order, from where the page before stopped (`after`, opaque; `None`
    /// for the start). Entries whose payload is already gone are included
    /// (marked), so the walk moves past them.
    fn walk(
        &self,
        tenant: &TenantId,
        walk: &Walk,
        after: Option<u64>,
        limit: usize,
    ) -> impl Future<Output = Result<WalkPage, StoreError>> + Send;

    /// Waits until no other removal, hold or policy change runs on this
    /// ledger (on any server sharing it), and keeps it so until the lock
    /// is dropped. Gives up with [`StoreError::Conflict`] past a bound
    /// (docs/OPERATIONS.md).
    fn removal_lock(&self) -> impl Future<Output = Result<RemovalLock, StoreError>> + Send;

    /// Removes the payload, salt and every column derived from them (ip,
    /// request id, the payload's words in the search index) of these
    /// entries of one tenant; the envelope, leaf hash and tree stay. Entries
    /// already without payload are skipped. Returns how many lost their
    /// payload now, each marked with `why`. The caller has recorded the
    /// removal in `_system` first (`why` names that record).
    fn erase(
        &self,
        tenant: &TenantId,
        seqs: Vec<u64>,
        why: Removal,
    ) -> impl Future<Output = Result<u64, StoreError>> + Send;

    /// Makes removed values unrecoverable from the store's own files (old
    /// versions of rows, the search index's segments, the write-ahead log,
    /// free pages), as far as the store can. What it does, and what it
    /// cannot reach, is in docs/OPERATIONS.md.
    fn scrub(&self) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Where the store's indexer stands, for a store whose query indexes
    /// follow its appends (the embedded store); `None` where they are
    /// written with the entries.
    fn indexer(&self) -> Option<IndexerStatus> {
        None
    }

    /// Every retention policy, by tenant and target.
    fn retention(&self) -> impl Future<Output = Result<Vec<RetentionPolicy>, StoreError>> + Send;

    /// Sets the policy of its tenant and target (replacing one there).
    fn set_retention(
        &self,
        policy: RetentionPolicy,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Removes a policy; false when there was none.
    fn remove_retention(
        &self,
        tenant: &TenantId,
        target: &Target,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Every hold, in force or released, oldest first.
    fn holds(&self) -> impl Future<Output = Result<Vec<Hold>, StoreError>> + Send;

    fn add_hold(&self, hold: Hold) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Releases a hold in force; false when no such hold is in force.
    fn release_hold(
        &self,
        id: &str,
        at: Timestamp,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// The setting `name`, when one was ever stored.
    fn setting(
        &self,
        name: &str,
    ) -> impl Future<Output = Result<Option<Setting>, StoreError>> + Send;

    /// Every setting stored, by name (what `trailmark migrate` copies).
    fn settings(&self) -> impl Future<Output = Result<Vec<(String, Setting)>, StoreError>> + Send;

    /// Stores `value` as setting `name` when its version is still
    /// `expected` (0: never stored); answers the new version. Another
    /// version answers [`StoreError::Conflict`] and changes nothing.
    fn put_setting(
        &self,
        name: &str,
        value: String,
        expected: u64,
        at: Timestamp,
    ) -> impl Future<Output = Result<u64, StoreError>> + Send;
}

/// Reads the nodes a tree plan of `tenant` needs and assembles its hashes
/// (a root, an inclusion proof or a consistency proof).
pub async fn run_plan<S: Store>(
    store: &S,
    tenant: &TenantId,
    plan: &trailmark_log::Plan,
) -> Result<Vec<Hash>, StoreError> {
    let nodes = store.nodes(tenant, plan.node_ids()).await?;
    Ok(plan.assemble(&nodes)?)
}

/// [`run_plan`] for many plans of `tenant` (the roots at a page of
/// checkpoints, say), with one read of the nodes they need together: each
/// plan's hashes, in order.
pub async fn run_plans<S: Store>(
    store: &S,
    tenant: &TenantId,
    plans: &[trailmark_log::Plan],
) -> Result<Vec<Vec<Hash>>, StoreError> {
    let mut ids: Vec<NodeId> = plans
        .iter()
        .flat_map(|plan| plan.node_ids().iter().copied())
        .collect();
    ids.sort_unstable();
    ids.dedup();
    let hashes = store.nodes(tenant, &ids).await?;
    let found: std::collections::HashMap<NodeId, Hash> = ids.into_iter().zip(hashes).collect();
    plans
        .iter()
        .map(|plan| {
            // `nodes` answers every id asked, or fails.
            let nodes: Vec<Hash> = plan.node_ids().iter().map(|id| found[id]).collect();
            Ok(plan.assemble(&nodes)?)
        })
        .collect()
}
