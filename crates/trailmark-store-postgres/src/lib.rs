//! Trailmark's shared ledger store: PostgreSQL.
//!
//! Any number of `trailmark serve` processes may append to one database at
//! once. An append is one transaction: lock the tenants' head rows (`FOR
//! UPDATE`, in name order, so two servers never deadlock), look up ids already
//! stored, assign the next seqs, insert the entries and the tree nodes they
//! complete (one multi-row `INSERT … SELECT FROM unnest(…)` each), advance the
//! heads, commit. Only the commit acknowledges; a tenant's tree is therefore
//! exactly one history whichever server appended.
//!
//! The schema lives in `trailmark_ledger` and is created by plain SQL
//! migrations (`migrations/`), applied under an advisory lock by whichever
//! server starts first.

mod append;
mod counts;
mod import;
mod partitions;
mod read;
mod removal;
mod search;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use tokio::sync::OnceCell;
use trailmark_core::{EventId, TenantId, Timestamp};
use trailmark_log::{Hash, NodeId, TreeSize};
use trailmark_store::{
    Appended, CheckpointRecord, CountBy, Hold, KeyRecord, NewEvent, Page, Plan, Query, RawEntry,
    Read, Removal, RemovalLock, RetentionPolicy, Setting, SigningKeyRecord, Stats, Store,
    StoreError, StoredEntry, Target, TenantHead, Walk, WalkPage,
};

/// The migrations, in order. Never edit one that has shipped: add a file.
const MIGRATIONS: &[(i32, &str)] = &[
    (1, include_str!("../migrations/0001_init.sql")),
    (2, include_str!("../migrations/0002_entries_by_id.sql")),
    (3, include_str!("../migrations/0003_signing_keys.sql")),
    (4, include_str!("../migrations/0004_cosignatures.sql")),
    (5, include_str!("../migrations/0005_read_paths.sql")),
    (6, include_str!("../migrations/0006_request_id.sql")),
    (7, include_str!("../migrations/0007_retention.sql")),
    (8, include_str!("../migrations/0008_removed.sql")),
    (9, include_str!("../migrations/0009_payload_partitions.sql")),
    (10, include_str!("../migrations/0010_payload_bytes.sql")),
    (11, include_str!("../migrations/0011_settings.sql")),
    (12, include_str!("../migrations/0012_hour_counts.sql")),
    (13, include_str!("../migrations/0013_type_events.sql")),
];

pub use counts::{COUNT_CHUNK, COUNT_PAUSE, COUNT_RETRY, UNCOUNTED_MAX};

/// How long a search or count may run before PostgreSQL cancels it.
pub const READ_TIME_LIMIT: std::time::Duration = std::time::Duration::from_secs(10);

/// The memory a stats read's counts may take before PostgreSQL spills them
/// to disk (`work_mem` for its transaction; PostgreSQL 15's hash tables may
/// take twice this, `hash_mem_multiplier`): about 100,000 distinct actors
/// take 11 MB.
pub const STATS_WORK_MEM: &str = "32MB";

/// A read-only transaction whose statements PostgreSQL cancels past
/// [`READ_TIME_LIMIT`].
async fn bounded_read(
    client: &mut deadpool_postgres::Object,
    limit: std::time::Duration,
) -> Result<deadpool_postgres::Transaction<'_>, StoreError> {
    let tx = client
        .build_transaction()
        .read_only(true)
        .start()
        .await
        .map_err(db("starting a read"))?;
    tx.batch_execute(&format!(
        "SET LOCAL statement_timeout = {}",
        limit.as_millis().max(1)
    ))
    .await
    .map_err(db("bounding a read"))?;
    Ok(tx)
}

/// A read PostgreSQL cancelled for its time is the caller's to narrow.
///
/// PostgreSQL says so (`57014`, query canceled) unless the cancel came
/// where tokio-postgres does not read what the server answers: a prepare
/// returns once the statement is described, before its `Sync` is answered,
/// so a cancel taken at that `Sync` is never seen and the read's next
/// statement is refused in the aborted transaction (`25P02`). A bounded
/// read is read-only and runs only its own statements, so an abort it did
/// not see is such a cancel; it is counted as one only once the limit has
/// passed (`limit_passed`), otherwise it stays a storage failure.
fn timed_out(e: StoreError, limit_passed: bool) -> StoreError {
    use tokio_postgres::error::SqlState;
    let code = match &e {
        StoreError::Backend { source, .. } => source
            .downcast_ref::<tokio_postgres::Error>()
            .and_then(tokio_postgres::Error::code),
        _ => None,
    };
    let cancelled = code == Some(&SqlState::QUERY_CANCELED)
        || (limit_passed && code == Some(&SqlState::IN_FAILED_SQL_TRANSACTION));
    if cancelled {
        StoreError::BadRequest {
            field: "query",
            message:
                "took longer than the read time limit: narrow it (a time range, a tenant, an actor)"
                    .into(),
        }
    } else {
        e
    }
}

/// Held while migrating, so two servers starting at once migrate once.
const MIGRATION_LOCK: i64 = 0x746d_6c65_6467_6572; // "tmledger"

/// One append waiting for the committer.
type Job = (
    Vec<NewEvent>,
    tokio::sync::oneshot::Sender<Result<Vec<Appended>, StoreError>>,
);

/// Connections beside the read pool: one for the committer, one for key
/// lookups.
pub const PRIORITY_CONNECTIONS: usize = 2;

/// At most this many events go into one group commit.
const GROUP_EVENTS: usize = 10_000;

/// A ledger in PostgreSQL.
pub struct PgStore {
    pool: Pool,
    /// Connections reads never take: key lookups (authentication) and the
    /// committer (ingest), so that reads filling `pool` hold up neither.
    priority: Pool,
    migrated: OnceCell<()>,
    /// Sessions are read-only: the ledger is checked, never migrated.
    read_only: bool,
    /// The committer task of this process, started on the first append.
    committer: OnceCell<tokio::sync::mpsc::UnboundedSender<Job>>,
    /// How long a search or count may run (see [`READ_TIME_LIMIT`]).
    read_time_limit: std::time::Duration,
    /// The payload partitions this process knows exist.
    partitions: partitions::Known,
    /// Where this server's hourly counting stands.
    counting: std::sync::Arc<counts::Progress>,
    /// Past this many entries not counted, reads leave the hourly counts
    /// aside (see [`UNCOUNTED_MAX`]).
    uncounted_max: u64,
}

impl std::fmt::Debug for PgStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgStore").finish_non_exhaustive()
    }
}

pub(crate) fn db(context: &'static str) -> impl FnOnce(tokio_postgres::Error) -> StoreError {
    move |e| StoreError::backend(context, e)
}

pub(crate) fn to_i64(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

impl PgStore {
    /// A store over the database `url` names (`postgres://…` or libpq
    /// `key=value` form), with up to `max_connections` connections. Connects
    /// lazily; call [`PgStore::migrate`] to connect and prepare the schema
    /// up front (any other method does it on first use).
    pub fn new(url: &str, max_connections: usize) -> Result<Self, StoreError> {
        Self::build(url, max_connections, false)
    }

    /// A pool whose every session is read-only (`default_transaction_read_only`),
    /// for verifying a ledger as evidence: nothing can be written through it,
    /// and it is never migrated.
    pub fn new_read_only(url: &str, max_connections: usize) -> Result<Self, StoreError> {
        Self::build(url, max_connections, true)
    }

    fn build(url: &str, max_connections: usize, read_only: bool) -> Result<Self, StoreError> {
        // TLS as the URL's sslmode asks (trailmark_pg: one rule for every
        // connection to PostgreSQL).
        let mut source = trailmark_pg::Source::parse(url)
            .map_err(|e| StoreError::Invalid(format!("the database URL: {e}")))?;
        if read_only {
            let config = source.config_mut();
            let options = config.get_options().unwrap_or_default().to_owned();
            config.options(format!("{options} -c default_transaction_read_only=on").trim());
        }
        let config = source.config().clone();
        let manager = Manager::from_config(
            config.clone(),
            source.tls(),
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let priority_manager = Manager::from_config(
            config,
            source.tls(),
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let durable = |builder: deadpool_postgres::PoolBuilder| {
            if read_only {
                builder
            } else {
                builder.post_create(deadpool_postgres::Hook::async_fn(|client, _| {
                    Box::pin(async move {
                        durable_session(client)
                            .await
                            .map_err(deadpool_postgres::HookError::Backend)
                    })
                }))
            }
        };
        let pool = durable(Pool::builder(manager).max_size(max_connections.max(1)))
            .build()
            .map_err(|e| StoreError::backend("building the connection pool", e))?;
        let priority = durable(Pool::builder(priority_manager).max_size(PRIORITY_CONNECTIONS))
            .build()
            .map_err(|e| StoreError::backend("building the connection pool", e))?;
        Ok(Self {
            pool,
            priority,
            migrated: OnceCell::new(),
            read_only,
            committer: OnceCell::new(),
            read_time_limit: READ_TIME_LIMIT,
            partitions: partitions::Known::default(),
            counting: std::sync::Arc::default(),
            uncounted_max: UNCOUNTED_MAX,
        })
    }

    /// Counts up to `chunk` more entries of each tenant into the hourly
    /// counts that stats read, and returns how many it counted. A server
    /// does this behind its appends (at most [`COUNT_CHUNK`] entries of a
    /// tenant a transaction); reads are right at any point, as they count
    /// the entries not yet counted one by one.
    pub async fn count_hours(&self, chunk: u64) -> Result<u64, StoreError> {
        Ok(counts::count(&mut self.client().await?, chunk)
            .await?
            .counted)
    }

    /// The same store with another bound on the entries not yet counted
    /// past which a read leaves the hourly counts aside ([`UNCOUNTED_MAX`]).
    #[must_use]
    pub fn with_uncounted_max(mut self, most: u64) -> Self {
        self.uncounted_max = most;
        self
    }

    /// The same store with another bound on a search's or count's time.
    #[must_use]
    pub fn with_read_time_limit(mut self, limit: std::time::Duration) -> Self {
        self.read_time_limit = limit;
        self
    }

    /// Connects and applies the migrations this build has that the
    /// database lacks, under an advisory lock. A read-only store's ledger
    /// (evidence) is read as it is, never migrated: it is only checked to
    /// be a ledger this build can read.
    pub async fn migrate(&self) -> Result<(), StoreError> {
        self.migrated
            .get_or_try_init(|| async {
                let client = self.raw_client().await?;
                if self.read_only {
                    return check_ledger(&client).await;
                }
                client
                    .execute("SELECT pg_advisory_lock($1)", &[&MIGRATION_LOCK])
                    .await
                    .map_err(db("waiting for the migration lock"))?;
                let result = apply_migrations(&client).await;
                let _ = client
                    .execute("SELECT pg_advisory_unlock($1)", &[&MIGRATION_LOCK])
                    .await;
                result
            })
            .await?;
        Ok(())
    }

    async fn raw_client(&self) -> Result<deadpool_postgres::Object, StoreError> {
        self.pool.get().await.map_err(|e| match e {
            deadpool_postgres::PoolError::Backend(e) => {
                StoreError::backend("connecting to PostgreSQL", e)
            }
            other => StoreError::backend("taking a connection from the pool", other),
        })
    }

    /// Runs `read` in a transaction of its own bounded by the read time
    /// limit ([`bounded_read`]): PostgreSQL cancelling any of its statements
    /// for the time is the caller's to narrow ([`timed_out`]), whichever
    /// statement the limit runs out in.
    async fn bounded<T>(
        &self,
        read: impl AsyncFnOnce(&tokio_postgres::Transaction<'_>) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let mut client = self.client().await?;
        let started = std::time::Instant::now();
        let tx = bounded_read(&mut client, self.read_time_limit).await?;
        let out = read(&tx)
            .await
            .map_err(|e| timed_out(e, started.elapsed() >= self.read_time_limit))?;
        tx.commit().await.map_err(db("ending a read"))?;
        Ok(out)
    }

    /// The `synchronous_commit` this store's appends commit with (a
    /// session of its pool): never `off` ([`durable_session`]).
    pub async fn synchronous_commit(&self) -> Result<String, StoreError> {
        let client = self.raw_client().await?;
        let row = client
            .query_one("SELECT current_setting('synchronous_commit')", &[])
            .await
            .map_err(db("reading synchronous_commit"))?;
        Ok(row.get(0))
    }

    pub(crate) async fn client(&self) -> Result<deadpool_postgres::Object, StoreError> {
        self.migrate().await?;
        self.raw_client().await
    }
}

/// Makes a new session of a writing pool durable: with `synchronous_commit
/// = off` (set for the database, the role, or in the connection string) a
/// commit returns before PostgreSQL has it on disk, and a crash of the
/// database would lose appends the server had acknowledged, checkpoints
/// signed over them included. Such a session sets it `on` (said once in
/// the log); any other value (`local`, `remote_write`, `on`,
/// `remote_apply`) waits for the local flush at least and is kept. A
/// server running with `fsync = off` is said in the log once.
async fn durable_session(client: &tokio_postgres::Client) -> Result<(), tokio_postgres::Error> {
    static SAID: std::sync::Once = std::sync::Once::new();
    static NO_FSYNC: std::sync::Once = std::sync::Once::new();
    let row = client
        .query_one(
            "SELECT current_setting('synchronous_commit') = 'off',
                    CASE WHEN current_setting('synchronous_commit') = 'off'
                         THEN set_config('synchronous_commit', 'on', false) END,
                    current_setting('fsync') = 'off'",
            &[],
        )
        .await?;
    if row.get::<_, bool>(2) {
        // The server's own, for every database: not a session's to change.
        NO_FSYNC.call_once(|| {
            tracing::warn!(
                "the ledger's PostgreSQL runs with fsync = off: nothing it commits is sure to \
                 survive a crash of its machine, acknowledged appends included; turn it on"
            );
        });
    }
    if row.get::<_, bool>(0) {
        SAID.call_once(|| {
            tracing::warn!(
                "the ledger's database has synchronous_commit = off (for the database, the role \
                 or in the connection string): Trailmark's sessions set it on, so that no append \
                 is acknowledged before PostgreSQL has it on disk"
            );
        });
    }
    Ok(())
}

/// Refuses a ledger whose schema is newer than this build's migrations.
fn understood(applied: &[i32]) -> Result<(), StoreError> {
    match applied.iter().max() {
        Some(newest) if *newest > MIGRATIONS.last().map_or(0, |m| m.0) => {
            Err(StoreError::Invalid(format!(
                "the database has ledger schema version {newest}, newer than this trailmark understands: upgrade trailmark"
            )))
        }
        _ => Ok(()),
    }
}

/// A read-only store's check of the database it was given: a Trailmark
/// ledger (a server made its schema), of a version this build reads. A
/// database without one is said to be so, rather than failing at the
/// first table a read looks for.
async fn check_ledger(client: &deadpool_postgres::Object) -> Result<(), StoreError> {
    let found: bool = client
        .query_one(
            "SELECT to_regclass('trailmark_ledger.migrations') IS NOT NULL",
            &[],
        )
        .await
        .map_err(db("looking for the ledger"))?
        .get(0);
    if !found {
        return Err(StoreError::Invalid(
            "the database holds no Trailmark ledger (no table trailmark_ledger.migrations): name the database a Trailmark server stores its trail in (its --database)".into(),
        ));
    }
    understood(&applied(client).await?)
}

/// The migrations the ledger has had (`trailmark_ledger.migrations`).
async fn applied(client: &deadpool_postgres::Object) -> Result<Vec<i32>, StoreError> {
    Ok(client
        .query("SELECT version FROM trailmark_ledger.migrations", &[])
        .await
        .map_err(db("reading the ledger's applied migrations"))?
        .iter()
        .map(|r| r.get(0))
        .collect())
}

async fn apply_migrations(client: &deadpool_postgres::Object) -> Result<(), StoreError> {
    client
        .batch_execute(
            "CREATE SCHEMA IF NOT EXISTS trailmark_ledger;
             CREATE TABLE IF NOT EXISTS trailmark_ledger.migrations (
                 version integer PRIMARY KEY,
                 applied_at timestamptz NOT NULL DEFAULT now()
             )",
        )
        .await
        .map_err(db("creating the migrations table"))?;
    let applied = applied(client).await?;
    understood(&applied)?;
    for (version, sql) in MIGRATIONS {
        if applied.contains(version) {
            continue;
        }
        // Each migration and its record commit together.
        let script = format!(
            "BEGIN;\n{sql}\nINSERT INTO trailmark_ledger.migrations (version) VALUES ({version});\nCOMMIT;"
        );
        if let Err(e) = client.batch_execute(&script).await {
            let _ = client.batch_execute("ROLLBACK").await;
            return Err(StoreError::backend("applying a ledger migration", e));
        }
    }
    partitions::maintain(client).await
}

/// Group commit: appends that arrive while one commits go into the next
/// transaction together (concurrent requests to one tenant would otherwise
/// each wait for the tenant's row lock and their own WAL flush). If a group
/// fails, each append in it is tried alone, so one bad batch fails only
/// itself.
/// After each group it nudges the counting task (`nudges`, see
/// [`counts::counter`]).
async fn committer(
    pool: Pool,
    mut jobs: tokio::sync::mpsc::UnboundedReceiver<Job>,
    nudges: tokio::sync::mpsc::Sender<()>,
) {
    // The committer's store draws every connection from the priority pool.
    let store = PgStore {
        pool: pool.clone(),
        priority: pool,
        migrated: OnceCell::new_with(Some(())),
        read_only: false,
        committer: OnceCell::new(),
        read_time_limit: READ_TIME_LIMIT,
        partitions: partitions::Known::default(),
        counting: std::sync::Arc::default(),
        uncounted_max: UNCOUNTED_MAX,
    };
    while let Some(first) = jobs.recv().await {
        let mut group = vec![first];
        let mut events = group[0].0.len();
        while events < GROUP_EVENTS {
            match jobs.try_recv() {
                Ok(job) => {
                    events += job.0.len();
                    group.push(job);
                }
                Err(_) => break,
            }
        }
        let mut lengths = Vec::with_capacity(group.len());
        let mut replies = Vec::with_capacity(group.len());
        let mut all = Vec::with_capacity(events);
        for (batch, reply) in group {
            lengths.push(batch.len());
            replies.push(reply);
            all.extend(batch);
        }
        if all.is_empty() {
            // Only barriers ([`Store::settle`]): everything queued before
            // them has been answered.
            for reply in replies {
                let _ = reply.send(Ok(Vec::new()));
            }
            continue;
        }
        match append::append(&store, &all).await {
            Ok(mut appended) => {
                for (reply, n) in replies.into_iter().zip(lengths) {
                    let rest = appended.split_off(n);
                    let _ = reply.send(Ok(std::mem::replace(&mut appended, rest)));
                }
            }
            Err(e) if replies.len() == 1 => {
                if let Some(reply) = replies.pop() {
                    let _ = reply.send(Err(e));
                }
            }
            Err(_) => {
                let mut at = 0;
                for (reply, n) in replies.into_iter().zip(lengths) {
                    let answer = if n == 0 {
                        Ok(Vec::new())
                    } else {
                        append::append(&store, &all[at..at + n]).await
                    };
                    let _ = reply.send(answer);
                    at += n;
                }
            }
        }
        // One nudge waiting is enough: the round it starts counts
        // whatever was committed before it.
        let _ = nudges.try_send(());
    }
}

impl Store for PgStore {
    async fn append(&self, batch: Vec<NewEvent>) -> Result<Vec<Appended>, StoreError> {
        self.migrate().await?;
        let queue = self
            .committer
            .get_or_init(|| async {
                let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
                let (nudge, nudges) = tokio::sync::mpsc::channel(1);
                // A first round for what is behind already (entries of an
                // import, or appended before a restart).
                let _ = nudge.try_send(());
                tokio::spawn(counts::counter(
                    self.pool.clone(),
                    nudges,
                    self.counting.clone(),
                ));
                tokio::spawn(committer(self.priority.clone(), rx, nudge));
                tx
            })
            .await;
        let (reply, answer) = tokio::sync::oneshot::channel();
        queue.send((batch, reply)).map_err(|_| StoreError::Closed)?;
        answer.await.map_err(|_| StoreError::Closed)?
    }

    async fn settle(&self) -> Result<(), StoreError> {
        // Appends go through one committer task in order, and each is
        // committed whether or not its caller still waits: an empty batch
        // sent after them is answered once they are. Appends of other
        // servers sharing the ledger are theirs to settle.
        let Some(queue) = self.committer.get() else {
            return Ok(());
        };
        let (reply, answer) = tokio::sync::oneshot::channel();
        queue
            .send((Vec::new(), reply))
            .map_err(|_| StoreError::Closed)?;
        answer.await.map_err(|_| StoreError::Closed)?.map(drop)
    }

    async fn heads(&self) -> Result<Vec<TenantHead>, StoreError> {
        read::heads(&**self.client().await?).await
    }

    async fn head(&self, tenant: &TenantId) -> Result<TreeSize, StoreError> {
        read::head(&**self.client().await?, tenant).await
    }

    async fn raw_entries(
        &self,
        tenant: &TenantId,
        start: u64,
        end: u64,
    ) -> Result<Vec<RawEntry>, StoreError> {
        read::raw_entries(&**self.client().await?, tenant, start, end).await
    }

    async fn entry_by_id(
        &self,
        tenants: &[TenantId],
        id: EventId,
    ) -> Result<Option<StoredEntry>, StoreError> {
        read::entry_by_id(&**self.client().await?, tenants, id).await
    }

    async fn entries_by_ids(
        &self,
        keys: &[(TenantId, EventId)],
    ) -> Result<Vec<Option<StoredEntry>>, StoreError> {
        read::entries_by_ids(&**self.client().await?, keys).await
    }

    async fn query(&self, query: &Query) -> Result<Page, StoreError> {
        self.bounded(async |tx| read::query(tx, query).await).await
    }

    async fn stats(&self, query: &Query) -> Result<Stats, StoreError> {
        self.bounded(async |tx| {
            // The counts' hash tables (one per list, as many entries as the
            // distinct values counted) in memory up to this, past it on disk.
            tx.batch_execute(&format!("SET LOCAL work_mem = '{STATS_WORK_MEM}'"))
                .await
                .map_err(db("bounding a read"))?;
            let counts = read::counts_for(tx, query, self.uncounted_max).await?;
            read::stats(tx, query, counts).await
        })
        .await
    }

    async fn explain(&self, read: &Read) -> Result<Plan, StoreError> {
        let mut client = self.client().await?;
        read::plan(&mut client, read).await
    }

    async fn daily_counts(
        &self,
        query: &Query,
        by: CountBy,
    ) -> Result<Vec<(String, String, u64)>, StoreError> {
        self.bounded(async |tx| {
            let counts = read::counts_for(tx, query, self.uncounted_max).await?;
            read::daily_counts(tx, query, by, counts).await
        })
        .await
    }

    async fn nodes(&self, tenant: &TenantId, ids: &[NodeId]) -> Result<Vec<Hash>, StoreError> {
        read::nodes(&**self.client().await?, tenant, ids).await
    }

    async fn add_checkpoints(&self, records: Vec<CheckpointRecord>) -> Result<(), StoreError> {
        if records.is_empty() {
            return Ok(());
        }
        let tenants: Vec<&str> = records.iter().map(|r| r.tenant.as_str()).collect();
        let sizes: Vec<i64> = records.iter().map(|r| to_i64(r.size.get())).collect();
        let roots: Vec<&[u8]> = records
            .iter()
            .map(|r| r.root.as_bytes().as_slice())
            .collect();
        let notes: Vec<&str> = records.iter().map(|r| r.note.as_str()).collect();
        let signed_at: Vec<i64> = records.iter().map(|r| r.signed_at.unix_millis()).collect();
        // One statement: all or none.
        self.client()
            .await?
            .execute(
                "INSERT INTO trailmark_ledger.checkpoints (tenant, size, root, note, signed_at)
                 SELECT * FROM unnest($1::text[], $2::bigint[], $3::bytea[], $4::text[], $5::bigint[])
                 ON CONFLICT (tenant, size) DO NOTHING",
                &[&tenants, &sizes, &roots, &notes, &signed_at],
            )
            .await
            .map_err(db("storing checkpoints"))?;
        Ok(())
    }

    async fn latest_checkpoint(
        &self,
        tenant: &TenantId,
    ) -> Result<Option<CheckpointRecord>, StoreError> {
        Ok(
            read::checkpoints(&**self.client().await?, tenant, read::Checkpoints::Latest)
                .await?
                .pop(),
        )
    }

    async fn checkpoints_after(
        &self,
        tenant: &TenantId,
        after: Option<u64>,
        limit: usize,
    ) -> Result<Vec<CheckpointRecord>, StoreError> {
        let which = read::Checkpoints::After(after, limit);
        read::checkpoints(&**self.client().await?, tenant, which).await
    }

    async fn add_signing_key(&self, record: SigningKeyRecord) -> Result<(), StoreError> {
        self.client()
            .await?
            .execute(
                "INSERT INTO trailmark_ledger.signing_keys
                     (ordinal, public_key, origin_prefix, added_at, transition)
                 VALUES ($1, $2, $3, $4, $5) ON CONFLICT (ordinal) DO NOTHING",
                &[
                    &i32::try_from(record.ordinal).unwrap_or(i32::MAX),
                    &record.public_key.as_slice(),
                    &record.origin_prefix,
                    &record.added_at.unix_millis(),
                    &record.transition,
                ],
            )
            .await
            .map_err(db("recording a signing key"))?;
        Ok(())
    }

    async fn add_cosignatures(
        &self,
        tenant: &TenantId,
        cosignatures: Vec<(u64, String, String)>,
    ) -> Result<(), StoreError> {
        if cosignatures.is_empty() {
            return Ok(());
        }
        let sizes: Vec<i64> = cosignatures.iter().map(|c| to_i64(c.0)).collect();
        let witnesses: Vec<&str> = cosignatures.iter().map(|c| c.1.as_str()).collect();
        let lines: Vec<&str> = cosignatures.iter().map(|c| c.2.as_str()).collect();
        // One statement: all or none.
        self.client()
            .await?
            .execute(
                "INSERT INTO trailmark_ledger.cosignatures (tenant, size, witness, line)
                 SELECT $1, * FROM unnest($2::bigint[], $3::text[], $4::text[])
                 ON CONFLICT (tenant, size, witness) DO NOTHING",
                &[&tenant.as_str(), &sizes, &witnesses, &lines],
            )
            .await
            .map_err(db("storing cosignatures"))?;
        Ok(())
    }

    async fn cosignatures(
        &self,
        tenant: &TenantId,
        sizes: std::ops::RangeInclusive<u64>,
    ) -> Result<Vec<(u64, String)>, StoreError> {
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT size, line FROM trailmark_ledger.cosignatures
                 WHERE tenant = $1 AND size >= $2 AND size <= $3 ORDER BY size, witness",
                &[
                    &tenant.as_str(),
                    &to_i64(*sizes.start()),
                    &to_i64(*sizes.end()),
                ],
            )
            .await
            .map_err(db("reading cosignatures"))?;
        Ok(rows
            .iter()
            .map(|r| (u64::try_from(r.get::<_, i64>(0)).unwrap_or(0), r.get(1)))
            .collect())
    }

    async fn signing_keys(&self) -> Result<Vec<SigningKeyRecord>, StoreError> {
        let rows = self
            .client()
            .await?
            .query(
                "SELECT ordinal, public_key, origin_prefix, added_at, transition
                 FROM trailmark_ledger.signing_keys ORDER BY ordinal",
                &[],
            )
            .await
            .map_err(db("reading signing keys"))?;
        rows.iter()
            .map(|r| {
                SigningKeyRecord::from_stored(
                    i64::from(r.get::<_, i32>(0)),
                    r.get(1),
                    r.get(2),
                    r.get(3),
                    r.get(4),
                )
            })
            .collect()
    }

    async fn create_key(&self, key: KeyRecord) -> Result<(), StoreError> {
        self.client()
            .await?
            .execute(
                "INSERT INTO trailmark_ledger.keys (id, digest, name, scopes, tenant, created_at, revoked_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7)",
                &[
                    &key.id,
                    &key.digest.as_slice(),
                    &key.name,
                    &key.scopes.to_text(),
                    &key.tenant.as_ref().map(TenantId::as_str),
                    &key.created_at.unix_millis(),
                    &key.revoked_at.map(Timestamp::unix_millis),
                ],
            )
            .await
            .map_err(db("storing a key"))?;
        Ok(())
    }

    async fn key_by_digest(&self, digest: [u8; 32]) -> Result<Option<KeyRecord>, StoreError> {
        // Off the read pool: authentication never waits behind reads.
        self.migrate().await?;
        let client = self.priority.get().await.map_err(|e| match e {
            deadpool_postgres::PoolError::Backend(e) => {
                StoreError::backend("connecting to PostgreSQL", e)
            }
            other => StoreError::backend("taking a connection from the pool", other),
        })?;
        read::key_by_digest(&**client, digest).await
    }

    async fn keys(&self) -> Result<Vec<KeyRecord>, StoreError> {
        read::keys(&**self.client().await?).await
    }

    async fn revoke_key(&self, id: &str, at: Timestamp) -> Result<bool, StoreError> {
        let n = self
            .client()
            .await?
            .execute(
                "UPDATE trailmark_ledger.keys SET revoked_at = coalesce(revoked_at, $2) WHERE id = $1",
                &[&id, &at.unix_millis()],
            )
            .await
            .map_err(db("revoking a key"))?;
        Ok(n > 0)
    }

    async fn walk(
        &self,
        tenant: &TenantId,
        walk: &Walk,
        after: Option<u64>,
        limit: usize,
    ) -> Result<WalkPage, StoreError> {
        removal::walk(&**self.client().await?, tenant, walk, after, limit).await
    }

    async fn removal_lock(&self) -> Result<RemovalLock, StoreError> {
        removal::lock(self).await
    }

    async fn erase(
        &self,
        tenant: &TenantId,
        seqs: Vec<u64>,
        why: Removal,
    ) -> Result<u64, StoreError> {
        removal::erase(&self.client().await?, tenant, &seqs, why).await
    }

    /// The hourly counting of this server (started by its first append):
    /// the entries not counted yet (reads count them one by one), the last
    /// round's rate, whether it fails. `written` and `indexed` are entries
    /// stored and counted, over every tenant, not positions.
    fn indexer(&self) -> Option<trailmark_store::IndexerStatus> {
        self.counting.get()
    }

    /// Drops the payload partitions that hold only removed payloads and
    /// rewrites those that hold some ([`partitions::scrub`]).
    async fn scrub(&self) -> Result<(), StoreError> {
        partitions::scrub(&mut self.client().await?).await
    }

    async fn retention(&self) -> Result<Vec<RetentionPolicy>, StoreError> {
        removal::retention(&**self.client().await?).await
    }

    async fn setting(&self, name: &str) -> Result<Option<Setting>, StoreError> {
        removal::setting(&**self.client().await?, name).await
    }

    async fn settings(&self) -> Result<Vec<(String, Setting)>, StoreError> {
        removal::settings(&**self.client().await?).await
    }

    async fn put_setting(
        &self,
        name: &str,
        value: String,
        expected: u64,
        at: Timestamp,
    ) -> Result<u64, StoreError> {
        removal::put_setting(&**self.client().await?, name, &value, expected, at).await
    }

    async fn set_retention(&self, policy: RetentionPolicy) -> Result<(), StoreError> {
        removal::set_retention(&**self.client().await?, &policy).await
    }

    async fn remove_retention(
        &self,
        tenant: &TenantId,
        target: &Target,
    ) -> Result<bool, StoreError> {
        removal::remove_retention(&**self.client().await?, tenant, target).await
    }

    async fn holds(&self) -> Result<Vec<Hold>, StoreError> {
        removal::holds(&**self.client().await?).await
    }

    async fn add_hold(&self, hold: Hold) -> Result<(), StoreError> {
        removal::add_hold(&**self.client().await?, &hold).await
    }

    async fn release_hold(&self, id: &str, at: Timestamp) -> Result<bool, StoreError> {
        removal::release_hold(&**self.client().await?, id, at).await
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    /// What PostgreSQL (`TRAILMARK_TEST_PG`, as the integration tests)
    /// answers to `sql` in a transaction after `before`, as a store error.
    async fn refusal(before: &str, sql: &str) -> StoreError {
        let server = std::env::var("TRAILMARK_TEST_PG")
            .unwrap_or_else(|_| "host=127.0.0.1 port=5432 user=postgres".into());
        let (mut client, conn) =
            tokio_postgres::connect(&format!("{server} dbname=postgres"), tokio_postgres::NoTls)
                .await
                .unwrap();
        tokio::spawn(conn);
        let tx = client.transaction().await.unwrap();
        // What fails here is what the read below is refused after.
        let _ = tx.batch_execute(before).await;
        tx.query(sql, &[]).await.map_err(db("reading")).unwrap_err()
    }

    fn is_narrow_it(e: &StoreError) -> bool {
        matches!(e, StoreError::BadRequest { field: "query", message } if message.contains("narrow it"))
    }

    #[tokio::test]
    async fn a_cancel_is_named_as_one_whether_postgresql_said_so_or_only_aborted() {
        // Said so: the statement past its time is cancelled (57014).
        let said = refusal("SET LOCAL statement_timeout = 1", "SELECT pg_sleep(1)").await;
        assert!(is_narrow_it(&timed_out(said, false)));
        // Only aborted (25P02): a cancel tokio-postgres did not read, once
        // the limit has passed; before it, whatever aborted the read is no
        // cancel, and stays the storage failure it is.
        let aborted = || refusal("SELECT 1/0", "SELECT 1");
        assert!(is_narrow_it(&timed_out(aborted().await, true)));
        let early = timed_out(aborted().await, false);
        assert!(matches!(early, StoreError::Backend { .. }), "{early:?}");
        // Another failure is not a cancel, however long the read took.
        let other = timed_out(refusal("", "SELECT 1/0").await, true);
        assert!(matches!(other, StoreError::Backend { .. }), "{other:?}");
    }
}
