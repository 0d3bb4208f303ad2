//! The one writer thread: batches of appends grouped into one transaction
//! (group commit), each batch atomic on its own (a group of appends runs
//! without savepoints and, when one fails, again with a savepoint each).

use std::collections::HashMap;
use std::sync::mpsc::{Receiver, TryRecvError};
use std::time::{Duration, Instant};

use rusqlite::{Connection, OptionalExtension, params};
use tokio::sync::oneshot;
use trailmark_core::{ColumnsOf, Seq, TenantId, context_of_text};
use trailmark_log::{CompactRange, NodeId, TreeSize, leaf_hash};
use trailmark_store::{
    Appended, CheckpointRecord, KeyRecord, NewEvent, SigningKeyRecord, StoreError,
};

use crate::strips::{StripWriter, read_nodes, to_i64};

/// At most this many events are committed by one fsync.
const MAX_GROUP_EVENTS: usize = 20_000;
/// How long the writer's WAL restart waits for what holds it up (reads of
/// the WAL under way, the WAL checkpointer's copy, the indexer's write).
const RESTART_READ_WAIT: Duration = Duration::from_millis(20);
/// How long after a restart that was held up the writer tries again.
const RESTART_RETRY: Duration = Duration::from_millis(100);

pub(crate) type Reply<T> = oneshot::Sender<Result<T, StoreError>>;

pub(crate) enum Job {
    /// The batch comes back with the answer, so that freeing it happens on
    /// the caller's thread, not the writer's.
    Append(Vec<NewEvent>, Reply<(Vec<Appended>, Vec<NewEvent>)>),
    Checkpoints(Vec<CheckpointRecord>, Reply<()>),
    CreateKey(KeyRecord, Reply<()>),
    SigningKey(SigningKeyRecord, Reply<()>),
    /// tenant, size, witness, line
    /// A tenant's cosignatures, as (size, witness, line).
    Cosignatures(String, Vec<(u64, String, String)>, Reply<()>),
    RevokeKey(String, i64, Reply<bool>),
    /// A small write of its own (erasure, retention policies, holds),
    /// answering a count.
    Run(RunFn, Reply<u64>),
    /// Runs alone, outside any transaction (see [`Writer::scrub`]).
    Scrub(Reply<()>),
}

pub(crate) type RunFn = Box<dyn FnOnce(&Connection) -> Result<u64, StoreError> + Send>;

/// Where an append's answer goes (its batch comes back with it).
type AppendReply = Reply<(Vec<Appended>, Vec<NewEvent>)>;

impl Job {
    fn weight(&self) -> usize {
        match self {
            Job::Append(batch, _) => batch.len().max(1),
            _ => 1,
        }
    }

    fn into_append(self) -> Option<(Vec<NewEvent>, AppendReply)> {
        match self {
            Job::Append(batch, reply) => Some((batch, reply)),
            _ => None,
        }
    }
}

fn db(context: &'static str) -> impl FnOnce(rusqlite::Error) -> StoreError {
    move |e| StoreError::backend(context, e)
}

struct TenantLog {
    size: u64,
    range: CompactRange,
    strips: StripWriter,
}

pub(crate) struct Writer {
    conn: Connection,
    tenants: HashMap<TenantId, TenantLog>,
    /// The WAL file and its bound: past it, the writer resets the log
    /// between two groups (after answering the group that crossed it).
    wal: Option<(std::path::PathBuf, u64)>,
    /// Told what each commit added, for the indexer.
    index: std::sync::Arc<crate::index::Shared>,
    /// The position of the newest entry inserted in the open transaction.
    last_pos: Option<u64>,
    /// After a WAL restart that reads held up: when to try again, and the
    /// WAL's size past which to try again sooner.
    restart_after: Option<(Instant, u64)>,
}

enum Outcome {
    Appended(AppendReply, Vec<Appended>, Vec<NewEvent>),
    Done(Reply<()>),
    Revoked(Reply<bool>, bool),
    Counted(Reply<u64>, u64),
}

impl Writer {
    pub(crate) fn new(
        conn: Connection,
        wal: Option<(std::path::PathBuf, u64)>,
        index: std::sync::Arc<crate::index::Shared>,
    ) -> Self {
        Self {
            conn,
            tenants: HashMap::new(),
            wal,
            index,
            last_pos: None,
            restart_after: None,
        }
    }

    /// Resets the WAL when it outgrew its bound: RESTART copies it into the
    /// database and lets the next commit write from its start, where
    /// `journal_size_limit` cuts the file back. Between groups: the group
    /// that crossed the bound is answered first, the next waits for it.
    ///
    /// A read of the WAL under way holds a restart up until it ends, and no
    /// wait makes it end sooner: the writer waits at most
    /// [`RESTART_READ_WAIT`] (for reads, and as long for the WAL
    /// checkpointer's copy or the indexer's write to the ledger), and after a
    /// restart that was held up tries again [`RESTART_RETRY`] later, or
    /// sooner once the WAL grew by a quarter of its bound since: a try that
    /// meets a short read (or the checkpointer's copy) by chance then lets
    /// the WAL grow by at most that quarter, however fast commits come,
    /// while a long read costs the writer at most one wait per 100 ms or per
    /// quarter written. (Under its 5 s busy timeout, every group waited 5 s
    /// while a long read ran; with the time alone, a test's WAL bounded at
    /// 4 MiB reached 10.9 MB after two such tries, at 2,000 commits/s.)
    fn bound_wal(&mut self) {
        let Some((path, limit)) = &self.wal else {
            return;
        };
        let size = std::fs::metadata(path).map_or(0, |m| m.len());
        if size <= *limit
            || self
                .restart_after
                .is_some_and(|(at, grown)| Instant::now() < at && size < grown)
        {
            return;
        }
        let _ = self.conn.busy_timeout(RESTART_READ_WAIT);
        let busy = self
            .conn
            .query_row("PRAGMA wal_checkpoint(RESTART)", [], |r| r.get::<_, i64>(0));
        let _ = self.conn.busy_timeout(crate::BUSY_TIMEOUT);
        self.restart_after = (!matches!(busy, Ok(0))).then(|| {
            (
                Instant::now() + RESTART_RETRY,
                size.saturating_add(limit / 4),
            )
        });
    }

    pub(crate) fn run(mut self, jobs: &Receiver<Job>) {
        while let Ok(first) = jobs.recv() {
            // The indexer's lag is a queue too: past its bound the group
            // waits (briefly) and gathers more jobs meanwhile.
            self.index.throttle();
            let mut weight = first.weight();
            let mut group = vec![first];
            while weight < MAX_GROUP_EVENTS {
                match jobs.try_recv() {
                    Ok(job) => {
                        weight += job.weight();
                        group.push(job);
                    }
                    Err(TryRecvError::Empty | TryRecvError::Disconnected) => break,
                }
            }
            let (scrubs, group): (Vec<Job>, Vec<Job>) =
                group.into_iter().partition(|j| matches!(j, Job::Scrub(_)));
            if !group.is_empty() {
                self.commit_group(group);
            }
            for job in scrubs {
                if let Job::Scrub(reply) = job {
                    let _ = reply.send(self.scrub());
                }
            }
            self.bound_wal();
        }
    }

    /// One transaction, one fsync, for every job of the group. A job that
    /// fails is rolled back alone and answered with its error; the others are
    /// answered only after the commit is durable.
    ///
    /// A group of appends (what ingest sends) first runs without savepoints
    /// ([`Self::commit_appends`]); any other group, or one of appends where
    /// one failed, runs with a savepoint a job ([`Self::commit_jobs`]).
    fn commit_group(&mut self, group: Vec<Job>) {
        if group.len() > 1 && group.iter().all(|j| matches!(j, Job::Append(..))) {
            let appends = group.into_iter().filter_map(Job::into_append).collect();
            if let Err(group) = self.commit_appends(appends) {
                self.commit_jobs(group);
            }
            return;
        }
        self.commit_jobs(group);
    }

    /// Appends every batch of the group in one transaction without
    /// savepoints: a savepoint costs a copy of every page its job changes
    /// that existed before it, into the statement journal (a sixth of the
    /// writer's time under single events, whose groups hold dozens of
    /// one-event batches). When a batch fails, the transaction is rolled
    /// back, nothing is answered, and the group comes back as it was, to
    /// run again with a savepoint each; so does a group whose transaction
    /// could not begin ([`Self::commit_jobs`] tries once more, and answers
    /// each job the error if that fails too).
    fn commit_appends(
        &mut self,
        appends: Vec<(Vec<NewEvent>, AppendReply)>,
    ) -> Result<(), Vec<Job>> {
        if self.conn.execute_batch("BEGIN IMMEDIATE").is_err() {
            return Err(appends
                .into_iter()
                .map(|(batch, reply)| Job::Append(batch, reply))
                .collect());
        }
        self.last_pos = None;
        let mut done = Vec::with_capacity(appends.len());
        let mut appends = appends.into_iter();
        while let Some((batch, reply)) = appends.next() {
            let Ok(appended) = self.append(&batch) else {
                let _ = self.conn.execute_batch("ROLLBACK");
                self.tenants.clear();
                let again = done
                    .into_iter()
                    .map(|(reply, _, batch)| (batch, reply))
                    .chain(std::iter::once((batch, reply)))
                    .chain(appends)
                    .map(|(batch, reply)| Job::Append(batch, reply))
                    .collect();
                return Err(again);
            };
            done.push((reply, appended, batch));
        }
        let done = done
            .into_iter()
            .map(|(reply, appended, batch)| Outcome::Appended(reply, appended, batch))
            .collect();
        self.finish(done, 0);
        Ok(())
    }

    /// [`Self::commit_group`] with a savepoint for each job, so that a job
    /// that fails is rolled back alone. A job alone in its group needs none:
    /// rolling back the transaction rolls back exactly that job.
    fn commit_jobs(&mut self, group: Vec<Job>) {
        if let Err(e) = self.conn.execute_batch("BEGIN IMMEDIATE") {
            let e = StoreError::backend("starting a write transaction", e);
            for job in group {
                fail(job, &e);
            }
            return;
        }
        let mut done = Vec::with_capacity(group.len());
        self.last_pos = None;
        let mut runs = 0;
        let alone = group.len() == 1;
        for job in group {
            runs += u64::from(matches!(job, Job::Run(..)));
            if !alone && let Err(e) = self.conn.execute_batch("SAVEPOINT job") {
                fail(job, &StoreError::backend("starting a savepoint", e));
                continue;
            }
            match self.run_job(job) {
                Ok(outcome) => {
                    if !alone {
                        let _ = self.conn.execute_batch("RELEASE job");
                    }
                    done.push(outcome);
                }
                Err(failed) => {
                    let (job, e) = *failed;
                    let undo = if alone {
                        "ROLLBACK"
                    } else {
                        "ROLLBACK TO job; RELEASE job"
                    };
                    let _ = self.conn.execute_batch(undo);
                    self.tenants.clear();
                    fail(job, &e);
                    if alone {
                        return;
                    }
                }
            }
        }
        self.finish(done, runs);
    }

    /// Commits the open transaction and answers the jobs `done` in it (each
    /// its error when the commit fails); `runs` of them were small writes of
    /// their own ([`Job::Run`]).
    fn finish(&mut self, done: Vec<Outcome>, runs: u64) {
        if let Err(e) = self.conn.execute_batch("COMMIT") {
            let _ = self.conn.execute_batch("ROLLBACK");
            self.tenants.clear();
            let e = StoreError::backend("committing", e);
            for outcome in done {
                match outcome {
                    Outcome::Appended(reply, _, _) => drop(reply.send(Err(clone_err(&e)))),
                    Outcome::Done(reply) => drop(reply.send(Err(clone_err(&e)))),
                    Outcome::Revoked(reply, _) => drop(reply.send(Err(clone_err(&e)))),
                    Outcome::Counted(reply, _) => drop(reply.send(Err(clone_err(&e)))),
                }
            }
            return;
        }
        // Before any answer: a read that follows an answer waits for (or
        // scans past) the indexer with this commit counted. Every small
        // write counts as one that may have erased something.
        self.index.wrote(self.last_pos.take(), runs);
        for outcome in done {
            match outcome {
                Outcome::Appended(reply, result, batch) => drop(reply.send(Ok((result, batch)))),
                Outcome::Done(reply) => drop(reply.send(Ok(()))),
                Outcome::Revoked(reply, found) => drop(reply.send(Ok(found))),
                Outcome::Counted(reply, n) => drop(reply.send(Ok(n))),
            }
        }
    }

    fn run_job(&mut self, job: Job) -> Result<Outcome, Box<(Job, StoreError)>> {
        match job {
            Job::Append(batch, reply) => match self.append(&batch) {
                Ok(appended) => Ok(Outcome::Appended(reply, appended, batch)),
                Err(e) => Err(Box::new((Job::Append(batch, reply), e))),
            },
            Job::Checkpoints(records, reply) => {
                match records.iter().try_for_each(|r| self.add_checkpoint(r)) {
                    Ok(()) => Ok(Outcome::Done(reply)),
                    Err(e) => Err(Box::new((Job::Checkpoints(records, reply), e))),
                }
            }
            Job::CreateKey(key, reply) => match self.create_key(&key) {
                Ok(()) => Ok(Outcome::Done(reply)),
                Err(e) => Err(Box::new((Job::CreateKey(key, reply), e))),
            },
            Job::SigningKey(record, reply) => match self.add_signing_key(&record) {
                Ok(()) => Ok(Outcome::Done(reply)),
                Err(e) => Err(Box::new((Job::SigningKey(record, reply), e))),
            },
            Job::Cosignatures(tenant, records, reply) => {
                match records
                    .iter()
                    .try_for_each(|r| self.add_cosignature(&tenant, r))
                {
                    Ok(()) => Ok(Outcome::Done(reply)),
                    Err(e) => Err(Box::new((Job::Cosignatures(tenant, records, reply), e))),
                }
            }
            Job::RevokeKey(id, at, reply) => match self.revoke_key(&id, at) {
                Ok(found) => Ok(Outcome::Revoked(reply, found)),
                Err(e) => Err(Box::new((Job::RevokeKey(id, at, reply), e))),
            },
            Job::Run(f, reply) => match f(&self.conn) {
                Ok(n) => Ok(Outcome::Counted(reply, n)),
                // The closure is spent; what goes back only carries the reply.
                Err(e) => Err(Box::new((Job::Run(Box::new(|_| Ok(0)), reply), e))),
            },
            Job::Scrub(reply) => Ok(Outcome::Done(reply)),
        }
    }

    /// Makes removed values unrecoverable from the ledger file (the index
    /// file is the indexer's to scrub): a
    /// database written before `secure_delete` was on is vacuumed once (its
    /// free pages may hold old rows); the WAL, which holds copies of pages
    /// as they were, is folded into the database and truncated to nothing.
    /// With `secure_delete` on (always, on this connection) every freed cell
    /// and page is zeroed as it is freed.
    fn scrub(&mut self) -> Result<(), StoreError> {
        let vacuum: bool = self
            .conn
            .query_row(
                "SELECT EXISTS (SELECT 1 FROM store_flags WHERE name = 'vacuum_before_scrub')",
                [],
                |r| r.get(0),
            )
            .map_err(db("reading the store's flags"))?;
        if vacuum {
            self.conn
                .execute_batch("VACUUM; DELETE FROM store_flags WHERE name = 'vacuum_before_scrub'")
                .map_err(db("vacuuming the database"))?;
            self.tenants.clear();
        }
        // Tried again while the log is in use, up to a deadline; a reader
        // holding an old snapshot longer than that fails the scrub, which
        // the caller reports.
        crate::truncate_wal(&self.conn, "main", "truncating the WAL")
    }

    fn tenant(&mut self, tenant: &TenantId) -> Result<&mut TenantLog, StoreError> {
        if !self.tenants.contains_key(tenant) {
            let size: u64 = self
                .conn
                .prepare_cached("SELECT size FROM tenants WHERE name = ?1")
                .and_then(|mut s| {
                    s.query_row([tenant.as_str()], |r| r.get::<_, i64>(0))
                        .optional()
                })
                .map_err(db("reading a tenant's size"))?
                .map_or(0, |n| u64::try_from(n).unwrap_or(0));
            let size = TreeSize::new(size).ok_or_else(|| StoreError::Corrupt {
                tenant: tenant.clone(),
                reason: format!("the stored size {size} is out of range"),
            })?;
            let ids = CompactRange::node_ids(size);
            // The writer's own reads may see its uncommitted strips: never cached.
            let hashes = read_nodes(&self.conn, tenant, &ids, None)?;
            let range = CompactRange::from_hashes(size, hashes)?;
            let log = TenantLog {
                size: size.get(),
                range,
                strips: StripWriter::default(),
            };
            self.tenants.insert(tenant.clone(), log);
        }
        self.tenants.get_mut(tenant).ok_or_else(|| unloaded(tenant))
    }

    fn append(&mut self, batch: &[NewEvent]) -> Result<Vec<Appended>, StoreError> {
        let mut out = Vec::with_capacity(batch.len());
        let mut touched: Vec<TenantId> = Vec::new();
        for new in batch {
            let (tenant, id) = (new.tenant(), new.id());
            // A duplicate id (in the log, or earlier in this batch) is
            // refused by the unique index; the first entry's seq is answered.
            let (seq, duplicate) = match self.append_one(new, &tenant)? {
                Some(seq) => (seq, false),
                None => (
                    self.seq_of(&tenant, &id.to_string())?
                        .ok_or_else(|| StoreError::Corrupt {
                            tenant: tenant.clone(),
                            reason: format!("event {id} is refused as stored but is not found"),
                        })?,
                    true,
                ),
            };
            if !duplicate && !touched.contains(&tenant) {
                touched.push(tenant.clone());
            }
            out.push(Appended {
                id,
                tenant,
                seq,
                duplicate,
            });
        }
        for tenant in touched {
            let conn = &self.conn;
            let log = self
                .tenants
                .get_mut(&tenant)
                .ok_or_else(|| unloaded(&tenant))?;
            log.strips.flush(conn, &tenant)?;
            conn.prepare_cached(
                "INSERT INTO tenants (name, size) VALUES (?1, ?2)
                 ON CONFLICT (name) DO UPDATE SET size = excluded.size",
            )
            .and_then(|mut s| s.execute(params![tenant.as_str(), to_i64(log.size)]))
            .map_err(db("updating a tenant's size"))?;
        }
        Ok(out)
    }

    fn seq_of(&self, tenant: &TenantId, id: &str) -> Result<Option<Seq>, StoreError> {
        let seq: Option<i64> = self
            .conn
            .prepare_cached("SELECT seq FROM entries WHERE tenant = ?1 AND id = ?2")
            .and_then(|mut s| s.query_row([tenant.as_str(), id], |r| r.get(0)).optional())
            .map_err(db("looking up an event id"))?;
        Ok(seq.and_then(|n| u64::try_from(n).ok()).and_then(Seq::new))
    }

    /// Stores one event as the tenant's next entry; `None` when its id is
    /// already in the tenant's log (nothing is written then).
    fn append_one(&mut self, new: &NewEvent, tenant: &TenantId) -> Result<Option<Seq>, StoreError> {
        let size = self.tenant(tenant)?.size;
        let seq = Seq::new(size)
            .ok_or_else(|| StoreError::Conflict(format!("tenant {tenant} is full")))?;
        let committed = &new.committed;
        let env = new.seal(seq);
        let leaf_bytes = env.to_canonical()?;
        let leaf = leaf_hash(leaf_bytes.as_bytes());
        // The payload's query columns, read from its canonical text (as a
        // rebuild or a verifier reads them), borrowed where they can be.
        let context = context_of_text(committed.payload_json.as_str()).unwrap_or_default();
        let of =
            ColumnsOf::with_context(&env, context.ip.as_deref(), context.request_id.as_deref());
        let columns = of.as_stored();
        let inserted = self
            .conn
            .prepare_cached(
                "INSERT INTO entries (tenant, seq, id, occurred_at, actor_id, action, resource_type,
                                      resource_id, outcome, envelope, leaf_hash, payload, salt, ip,
                                      request_id)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)
                 ON CONFLICT (tenant, id) DO NOTHING",
            )
            .and_then(|mut s| {
                s.execute(params![
                    columns.tenant,
                    to_i64(columns.seq),
                    columns.id,
                    columns.occurred_at,
                    columns.actor_id,
                    columns.action,
                    columns.resource_type,
                    columns.resource_id,
                    columns.outcome,
                    leaf_bytes.as_bytes(),
                    leaf.as_bytes().as_slice(),
                    committed.payload_json.as_str(),
                    committed.salt.as_bytes().as_slice(),
                    columns.ip,
                    columns.request_id,
                ])
            })
            .map_err(db("inserting an entry"))?;
        if inserted == 0 {
            return Ok(None);
        }
        // The query indexes and the search index follow, on the indexer.
        self.last_pos = u64::try_from(self.conn.last_insert_rowid()).ok();

        let conn = &self.conn;
        let log = self
            .tenants
            .get_mut(tenant)
            .ok_or_else(|| unloaded(tenant))?;
        let mut nodes: Vec<(NodeId, trailmark_log::Hash)> = Vec::with_capacity(4);
        log.range.append(leaf, |id, h| nodes.push((id, h)))?;
        for (id, h) in &nodes {
            log.strips.push(conn, tenant, *id, h)?;
        }
        log.size += 1;
        Ok(Some(seq))
    }

    fn add_checkpoint(&self, record: &CheckpointRecord) -> Result<(), StoreError> {
        self.conn
            .execute(
                "INSERT INTO checkpoints (tenant, size, root, note, signed_at) VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT (tenant, size) DO NOTHING",
                params![
                    record.tenant.as_str(),
                    to_i64(record.size.get()),
                    record.root.as_bytes().as_slice(),
                    record.note,
                    record.signed_at.unix_millis()
                ],
            )
            .map_err(db("storing a checkpoint"))?;
        Ok(())
    }

    fn create_key(&self, key: &KeyRecord) -> Result<(), StoreError> {
        self.conn
            .execute(
                "INSERT INTO keys (id, digest, name, scopes, tenant, created_at, revoked_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![
                    key.id,
                    key.digest.as_slice(),
                    key.name,
                    key.scopes.to_text(),
                    key.tenant.as_ref().map(TenantId::as_str),
                    key.created_at.unix_millis(),
                    key.revoked_at.map(trailmark_core::Timestamp::unix_millis),
                ],
            )
            .map_err(db("storing a key"))?;
        Ok(())
    }

    fn add_signing_key(&self, record: &SigningKeyRecord) -> Result<(), StoreError> {
        self.conn
            .execute(
                "INSERT INTO signing_keys (ordinal, public_key, origin_prefix, added_at, transition)
                 VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT (ordinal) DO NOTHING",
                params![
                    record.ordinal,
                    record.public_key.as_slice(),
                    record.origin_prefix,
                    record.added_at.unix_millis(),
                    record.transition,
                ],
            )
            .map_err(db("recording a signing key"))?;
        Ok(())
    }

    fn add_cosignature(
        &self,
        tenant: &str,
        (size, witness, line): &(u64, String, String),
    ) -> Result<(), StoreError> {
        self.conn
            .prepare_cached(
                "INSERT INTO cosignatures (tenant, size, witness, line) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (tenant, size, witness) DO NOTHING",
            )
            .and_then(|mut s| s.execute(params![tenant, to_i64(*size), witness, line]))
            .map_err(db("storing a cosignature"))?;
        Ok(())
    }

    fn revoke_key(&self, id: &str, at: i64) -> Result<bool, StoreError> {
        let n = self
            .conn
            .execute(
                "UPDATE keys SET revoked_at = ?2 WHERE id = ?1 AND revoked_at IS NULL",
                params![id, at],
            )
            .map_err(db("revoking a key"))?;
        // Revoking twice is not an error: the key stays revoked since the first time.
        if n > 0 { Ok(true) } else { self.key_exists(id) }
    }

    fn key_exists(&self, id: &str) -> Result<bool, StoreError> {
        self.conn
            .query_row("SELECT 1 FROM keys WHERE id = ?1", [id], |_| Ok(()))
            .optional()
            .map(|o| o.is_some())
            .map_err(db("looking up a key"))
    }
}

/// A tenant the writer should have loaded before appending to it.
fn unloaded(tenant: &TenantId) -> StoreError {
    StoreError::Corrupt {
        tenant: tenant.clone(),
        reason: "the writer has no tree state for it".into(),
    }
}

fn clone_err(e: &StoreError) -> StoreError {
    e.duplicate()
}

fn fail(job: Job, e: &StoreError) {
    match job {
        Job::Append(_, reply) => drop(reply.send(Err(clone_err(e)))),
        Job::Checkpoints(_, reply)
        | Job::CreateKey(_, reply)
        | Job::SigningKey(_, reply)
        | Job::Cosignatures(_, _, reply) => {
            drop(reply.send(Err(clone_err(e))));
        }
        Job::RevokeKey(_, _, reply) => drop(reply.send(Err(clone_err(e)))),
        Job::Run(_, reply) => drop(reply.send(Err(clone_err(e)))),
        Job::Scrub(reply) => drop(reply.send(Err(clone_err(e)))),
    }
}

#[cfg(test)]
mod tests {
    use trailmark_store::Store;
    use trailmark_store::testkit::new_event;

    use crate::SqliteStore;

    /// What a job writes, read back through the writer (after every job
    /// queued before).
    async fn ghosts(store: &SqliteStore) -> u64 {
        store
            .run(|c| {
                c.query_row(
                    "SELECT count(*) FROM tenants WHERE name = 'ghost'",
                    [],
                    |r| r.get::<_, i64>(0),
                )
                .map(i64::unsigned_abs)
                .map_err(|e| trailmark_store::StoreError::backend("counting", e))
            })
            .await
            .unwrap()
    }

    /// A group of appends runs without savepoints; when one of its batches
    /// fails, the transaction is rolled back and the group runs again with a
    /// savepoint each: that batch alone is refused, the others are stored
    /// and answered, in their order.
    #[test]
    fn a_failing_batch_in_a_group_of_appends_fails_alone() {
        let dir = tempfile::tempdir().unwrap();
        let mut conn = rusqlite::Connection::open(dir.path().join("trailmark.db")).unwrap();
        crate::migrate(&mut conn).unwrap();
        conn.execute_batch(
            "CREATE TEMP TRIGGER boom BEFORE INSERT ON main.entries WHEN NEW.action = 'boom'
             BEGIN SELECT RAISE(ABORT, 'boom'); END",
        )
        .unwrap();
        let index = std::sync::Arc::new(crate::index::Shared::default());
        let mut writer = super::Writer::new(conn, None, index);
        let mut answers = Vec::new();
        let group = [("login", 0), ("boom", 1), ("logout", 2)].map(|(action, n)| {
            let (reply, answer) = tokio::sync::oneshot::channel();
            answers.push(answer);
            super::Job::Append(vec![new_event("acme", n, action)], reply)
        });
        writer.commit_group(group.into());
        let mut answers = answers.into_iter().map(|mut a| a.try_recv().unwrap());
        let seq =
            |answer: Result<(Vec<trailmark_store::Appended>, _), _>| answer.unwrap().0[0].seq.get();
        assert_eq!(seq(answers.next().unwrap()), 0);
        let refused = answers.next().unwrap().unwrap_err();
        assert!(refused.to_string().contains("boom"), "{refused}");
        assert_eq!(
            seq(answers.next().unwrap()),
            1,
            "the next batch takes the refused one's seq"
        );
        let count = |sql: &str| {
            writer
                .conn
                .query_row(sql, [], |r| r.get::<_, i64>(0))
                .unwrap()
        };
        assert_eq!(count("SELECT count(*) FROM entries"), 2);
        assert_eq!(count("SELECT size FROM tenants WHERE name = 'acme'"), 2);
    }

    /// A group of appends whose transaction cannot begin (another
    /// connection holds the write lock past the busy timeout) is answered
    /// with that error, every batch of it, and stores nothing; the next
    /// group, once the lock is free, commits from the same seq.
    #[test]
    fn a_group_that_cannot_begin_is_answered_with_the_error_and_stores_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("trailmark.db");
        let mut conn = rusqlite::Connection::open(&path).unwrap();
        crate::migrate(&mut conn).unwrap();
        conn.busy_timeout(std::time::Duration::from_millis(20))
            .unwrap();
        let holder = rusqlite::Connection::open(&path).unwrap();
        holder.execute_batch("BEGIN IMMEDIATE").unwrap();
        let index = std::sync::Arc::new(crate::index::Shared::default());
        let mut writer = super::Writer::new(conn, None, index);
        let mut group = |actions: [(&str, u64); 2]| {
            let mut answers = Vec::new();
            let jobs = actions.map(|(action, n)| {
                let (reply, answer) = tokio::sync::oneshot::channel();
                answers.push(answer);
                super::Job::Append(vec![new_event("acme", n, action)], reply)
            });
            writer.commit_group(jobs.into());
            answers
                .into_iter()
                .map(|mut a| {
                    a.try_recv()
                        .unwrap()
                        .map(|(appended, _)| appended[0].seq.get())
                })
                .collect::<Vec<_>>()
        };
        for answer in group([("login", 0), ("logout", 1)]) {
            let refused = answer.unwrap_err();
            assert!(
                refused.to_string().contains("starting a write transaction"),
                "{refused}"
            );
        }
        holder.execute_batch("ROLLBACK").unwrap();
        let seqs: Vec<u64> = group([("login", 0), ("logout", 1)])
            .into_iter()
            .map(Result::unwrap)
            .collect();
        assert_eq!(seqs, [0, 1], "nothing of the refused group was stored");
    }

    #[tokio::test]
    async fn a_job_that_fails_alone_in_its_group_leaves_nothing_and_the_next_one_commits() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path().join("trailmark.db")).unwrap();
        let first = store
            .append(vec![new_event("acme", 0, "login")])
            .await
            .unwrap();
        assert_eq!(first[0].seq.get(), 0);
        let failed = store
            .run(|c| {
                c.execute("INSERT INTO tenants (name, size) VALUES ('ghost', 5)", [])
                    .map_err(|e| trailmark_store::StoreError::backend("inserting", e))?;
                Err(trailmark_store::StoreError::Conflict(
                    "refused after writing".into(),
                ))
            })
            .await;
        assert!(failed.is_err(), "the job's own error is answered");
        assert_eq!(ghosts(&store).await, 0, "what the failed job wrote is gone");
        let next = store
            .append(vec![new_event("acme", 1, "login")])
            .await
            .unwrap();
        assert_eq!(
            next[0].seq.get(),
            1,
            "the tenant's log continues where it was"
        );
        drop(store);
        let reopened = SqliteStore::open(dir.path().join("trailmark.db")).unwrap();
        assert_eq!(ghosts(&reopened).await, 0);
        let tenant = trailmark_core::TenantId::new("acme").unwrap();
        assert_eq!(reopened.head(&tenant).await.unwrap().get(), 2);
    }
}
