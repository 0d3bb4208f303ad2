//! Where `verify` reads a trail from: a data dir (offline) or a server's
//! public endpoints (remote).

use std::path::Path;
use std::sync::Arc;

use anyhow::{Context as _, bail};
use serde_json::Value;
use trailmark_core::{IndexedColumns, Salt, TenantId};
use trailmark_log::{Hash, KeyName, Plan, SigningKey, TreeSize, VerifierKey};
use trailmark_store::{RawPage, Store};
use trailmark_store_postgres::PgStore;
use trailmark_store_sqlite::SqliteStore;
use trailmark_verify::{Entry, KeyRecordView, OwnedEntry};

/// A checkpoint as stored: the note, and the size and root kept beside it
/// where the source shows them.
#[derive(Debug)]
pub struct StoredNote {
    pub note: String,
    pub columns: Option<(u64, Hash)>,
}

/// A page of entries as a source read them: owned one by one (from a
/// server's answer), or in place in one page (from a store).
pub enum EntriesPage {
    Owned(Vec<OwnedEntry>),
    InPlace(RawPage),
}

impl EntriesPage {
    pub fn is_empty(&self) -> bool {
        match self {
            Self::Owned(v) => v.is_empty(),
            Self::InPlace(p) => p.is_empty(),
        }
    }

    /// The entries as the verifier takes them, in order.
    pub fn entries(&self) -> Vec<Entry<'_>> {
        match self {
            Self::Owned(v) => v.iter().map(OwnedEntry::entry).collect(),
            Self::InPlace(p) => p.iter().map(trailmark_server::render::entry_of).collect(),
        }
    }
}

/// What the verifier needs from a trail.
pub trait Source {
    /// Entries per read: the public API's most per page unless a source
    /// reads more at once.
    fn page_len(&self) -> u64 {
        1000
    }
    /// Every tenant with its size.
    fn tenants(&mut self) -> anyhow::Result<Vec<(TenantId, u64)>>;
    /// One tenant's size now (0 when it has none), read without listing
    /// every tenant. A live trail grows while it is verified: read after
    /// the tenant's checkpoints, it is at least the size of each of them.
    fn size(&mut self, tenant: &TenantId) -> anyhow::Result<u64>;
    /// Entries `start..end` of a tenant being read up to `size` (a source
    /// reading ahead stops there).
    fn entries(
        &mut self,
        tenant: &TenantId,
        start: u64,
        end: u64,
        size: u64,
    ) -> anyhow::Result<EntriesPage>;
    /// Every stored checkpoint of a tenant.
    fn checkpoints(&mut self, tenant: &TenantId) -> anyhow::Result<Vec<StoredNote>>;
    /// The keys the source says sign this tenant's checkpoints.
    fn verifier_keys(&mut self, tenant: &TenantId) -> anyhow::Result<Vec<VerifierKey>>;
    /// The trail's recorded signing keys and their transitions, oldest
    /// first, when the source shows them.
    fn key_history(&mut self) -> anyhow::Result<Option<Vec<KeyRecordView>>>;
    fn consistency(
        &mut self,
        tenant: &TenantId,
        first: u64,
        second: u64,
    ) -> anyhow::Result<Vec<Hash>>;
}

/// A store read directly and read-only (a data dir, or a PostgreSQL
/// ledger): nothing is migrated or written.
pub struct Offline<S> {
    runtime: tokio::runtime::Runtime,
    store: Arc<S>,
    /// The page after the last one read, being read while that one is
    /// checked.
    ahead: Option<(Page, ReadAhead)>,
    /// The signing keys the database records, with their transitions (or,
    /// for a data dir older than that record, the one from its seed file).
    keys: Vec<KeyRecordView>,
}

/// A tenant and range of seqs.
type Page = (TenantId, u64, u64);
type ReadAhead = tokio::task::JoinHandle<Result<RawPage, trailmark_store::StoreError>>;

pub(crate) fn views(records: &[trailmark_store::SigningKeyRecord]) -> Vec<KeyRecordView> {
    records
        .iter()
        .map(trailmark_store::SigningKeyRecord::view)
        .collect()
}

impl Offline<PgStore> {
    /// A PostgreSQL ledger, through read-only sessions.
    pub fn postgres(url: &str) -> anyhow::Result<Self> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()?;
        let store = PgStore::new_read_only(url, 2)?;
        // A ledger older than the key record has none: then only keys given
        // with --verifier-key verify it.
        let keys = match runtime.block_on(store.signing_keys()) {
            Ok(records) => views(&records),
            Err(trailmark_store::StoreError::Backend { source, .. })
                if source
                    .downcast_ref::<tokio_postgres::Error>()
                    .and_then(tokio_postgres::Error::code)
                    == Some(&tokio_postgres::error::SqlState::UNDEFINED_TABLE) =>
            {
                Vec::new()
            }
            // Anything else (unreachable, refused) is said, not taken for
            // "no keys recorded".
            Err(e) => return Err(e.into()),
        };
        Ok(Self {
            runtime,
            store: Arc::new(store),
            ahead: None,
            keys,
        })
    }
}

impl Offline<SqliteStore> {
    pub fn open(dir: &Path, origin_prefix: &str) -> anyhow::Result<Self> {
        let db = crate::datadir::db_path(dir);
        if !db.exists() {
            bail!(
                "{} does not exist: is {} a Trailmark data dir?",
                db.display(),
                dir.display()
            );
        }
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()?;
        let store = SqliteStore::open_read_only(&db)?;
        let mut keys = views(&runtime.block_on(store.signing_keys())?);
        if keys.is_empty() && dir.join(crate::datadir::SEED_FILE).exists() {
            let seed = crate::datadir::signing_seed(dir, false)?;
            let name = KeyName::new(format!("{origin_prefix}/x"))?;
            let public = SigningKey::from_seed(name, &seed).verifier().public_key();
            keys.push(KeyRecordView {
                public_key: public,
                origin_prefix: origin_prefix.to_owned(),
                transition: None,
            });
        }
        Ok(Self {
            runtime,
            store: Arc::new(store),
            ahead: None,
            keys,
        })
    }
}

impl<S: Store> Source for Offline<S> {
    /// Pages large enough for every core to check one while the next is
    /// read.
    fn page_len(&self) -> u64 {
        4096
    }

    fn tenants(&mut self) -> anyhow::Result<Vec<(TenantId, u64)>> {
        let heads = self.runtime.block_on(self.store.heads())?;
        Ok(heads
            .into_iter()
            .map(|h| (h.tenant, h.size.get()))
            .collect())
    }

    fn size(&mut self, tenant: &TenantId) -> anyhow::Result<u64> {
        Ok(self.runtime.block_on(self.store.head(tenant))?.get())
    }

    fn entries(
        &mut self,
        tenant: &TenantId,
        start: u64,
        end: u64,
        size: u64,
    ) -> anyhow::Result<EntriesPage> {
        let page = (tenant.clone(), start, end);
        let entries = match self.ahead.take() {
            Some((next, read)) if next == page => self.runtime.block_on(read)??,
            other => {
                if let Some((_, read)) = other {
                    read.abort();
                }
                self.runtime
                    .block_on(self.store.raw_page(tenant, start, end))?
            }
        };
        // Read the next page of the same length (up to `size`) while this
        // one is checked.
        if entries.len() as u64 == end - start && end < size {
            let (store, tenant) = (Arc::clone(&self.store), tenant.clone());
            let next = (end + (end - start)).min(size);
            let read = self
                .runtime
                .spawn(async move { store.raw_page(&tenant, end, next).await });
            self.ahead = Some(((page.0, end, next), read));
        }
        Ok(EntriesPage::InPlace(entries))
    }

    fn checkpoints(&mut self, tenant: &TenantId) -> anyhow::Result<Vec<StoredNote>> {
        let all = self.runtime.block_on(self.store.checkpoints(tenant))?;
        Ok(all
            .into_iter()
            .map(|c| StoredNote {
                note: c.note,
                columns: Some((c.size.get(), c.root)),
            })
            .collect())
    }

    fn key_history(&mut self) -> anyhow::Result<Option<Vec<KeyRecordView>>> {
        Ok(Some(self.keys.clone()))
    }

    fn verifier_keys(&mut self, tenant: &TenantId) -> anyhow::Result<Vec<VerifierKey>> {
        self.keys
            .iter()
            .map(|k| k.key_for(tenant.as_str()).map_err(|e| anyhow::anyhow!(e)))
            .collect()
    }

    fn consistency(
        &mut self,
        tenant: &TenantId,
        first: u64,
        second: u64,
    ) -> anyhow::Result<Vec<Hash>> {
        let size = |n| TreeSize::new(n).context("size too large");
        let plan = Plan::consistency(size(first)?, size(second)?)?;
        Ok(self
            .runtime
            .block_on(trailmark_store::run_plan(&*self.store, tenant, &plan))?)
    }
}

/// The CLI's way to a server: [`trailmark_client::Client`] without a
/// timeout (a person waits for an export or a cleanup), each failure
/// named by its request. A status is told by the typed error under the
/// context (`status_of`), never by the message.
#[derive(Clone)]
pub struct Http(trailmark_client::Client);

/// The typed error under a failure of [`Http`], if the server answered
/// or could not be reached.
pub fn status_of(error: &anyhow::Error) -> Option<&trailmark_client::Error> {
    error.downcast_ref::<trailmark_client::Error>()
}

fn pairs<'a>(query: &'a [(&'a str, String)]) -> Vec<(&'a str, &'a str)> {
    query.iter().map(|(k, v)| (*k, v.as_str())).collect()
}

impl Http {
    pub fn new(url: &str, key: &str) -> anyhow::Result<Self> {
        Ok(Self(trailmark_client::Client::without_timeout(url, key)?))
    }

    pub fn get_text(&self, path: &str, query: &[(&str, String)]) -> anyhow::Result<String> {
        self.0
            .get_text(path, &pairs(query))
            .with_context(|| format!("GET {path}"))
    }

    /// A GET whose answer is streamed to the caller.
    pub fn get_stream(
        &self,
        path: &str,
        query: &[(&str, String)],
    ) -> anyhow::Result<impl std::io::Read + use<>> {
        self.0
            .get_stream(path, &pairs(query))
            .with_context(|| format!("GET {path}"))
    }

    /// A GET whose answer is one of the API's typed answers (`trailmark-wire`).
    pub fn get_typed<T: serde::de::DeserializeOwned>(
        &self,
        path: &str,
        query: &[(&str, String)],
    ) -> anyhow::Result<T> {
        self.0
            .get(path, &pairs(query))
            .with_context(|| format!("GET {path}"))
    }

    pub fn get_json(&self, path: &str, query: &[(&str, String)]) -> anyhow::Result<Value> {
        self.get_typed(path, query)
    }

    pub fn post_json(&self, path: &str, body: &Value) -> anyhow::Result<Value> {
        self.0
            .post(path, body)
            .with_context(|| format!("POST {path}"))
    }

    pub fn put_json(&self, path: &str, body: &Value) -> anyhow::Result<Value> {
        self.0
            .put(path, body)
            .with_context(|| format!("PUT {path}"))
    }

    pub fn delete(&self, path: &str) -> anyhow::Result<Value> {
        self.delete_with(path, &[])
    }

    /// A DELETE with query parameters.
    pub fn delete_with(&self, path: &str, query: &[(&str, String)]) -> anyhow::Result<Value> {
        self.0
            .delete(path, &pairs(query))
            .with_context(|| format!("DELETE {path}"))
    }
}

/// A server, through its public read endpoints only.
pub struct Remote {
    http: Http,
}

impl Remote {
    pub fn new(url: &str, key: &str) -> anyhow::Result<Self> {
        Ok(Self {
            http: Http::new(url, key)?,
        })
    }
}

fn hashes(v: &Value) -> anyhow::Result<Vec<Hash>> {
    v.as_array()
        .context("hashes must be an array")?
        .iter()
        .map(|h| {
            Ok(Hash::from_base64(
                h.as_str().context("a hash must be a string")?,
            )?)
        })
        .collect()
}

/// The stored query columns a server shows beside an entry.
fn columns_of(c: trailmark_wire::ColumnsOut) -> IndexedColumns {
    IndexedColumns {
        tenant: c.tenant,
        seq: c.seq,
        id: c.id,
        occurred_at: c.occurred_at,
        actor_id: c.actor_id,
        action: c.action,
        resource_type: c.resource_type,
        resource_id: c.resource_id,
        outcome: c.outcome,
        ip: c.ip,
        request_id: c.request_id,
    }
}

/// The tenants and sizes of a `GET /v1/tenants` answer.
fn tenant_list(body: &Value) -> anyhow::Result<Vec<(TenantId, u64)>> {
    body["tenants"]
        .as_array()
        .context("/v1/tenants: no tenants array")?
        .iter()
        .map(|t| {
            let name = t["tenant"].as_str().context("tenant name")?;
            let tenant = TenantId::from_stored(name).map_err(|m| anyhow::anyhow!("{name}: {m}"))?;
            Ok((tenant, t["size"].as_u64().context("tenant size")?))
        })
        .collect()
}

impl Source for Remote {
    fn tenants(&mut self) -> anyhow::Result<Vec<(TenantId, u64)>> {
        tenant_list(&self.http.get_json("/v1/tenants", &[])?)
    }

    fn size(&mut self, tenant: &TenantId) -> anyhow::Result<u64> {
        // The tenant's row (none while it has no entries); a server from
        // before `?tenant=` ignores it and lists every tenant.
        let body = self
            .http
            .get_json("/v1/tenants", &[("tenant", tenant.to_string())])?;
        Ok(tenant_list(&body)?
            .into_iter()
            .find(|(t, _)| t == tenant)
            .map_or(0, |(_, size)| size))
    }

    fn entries(
        &mut self,
        tenant: &TenantId,
        start: u64,
        end: u64,
        _size: u64,
    ) -> anyhow::Result<EntriesPage> {
        let q = [
            ("tenant", tenant.to_string()),
            ("start", start.to_string()),
            ("end", end.to_string()),
        ];
        let page: trailmark_wire::EntriesPage = self.http.get_typed("/v1/entries", &q)?;
        page.entries
            .into_iter()
            .map(|e| {
                Ok(OwnedEntry {
                    envelope: e.envelope.into_bytes(),
                    leaf_hash: Some(Hash::from_base64(&e.leaf_hash)?),
                    // The API sends the payload parsed: the verifier
                    // canonicalizes this text when it is not the stored one.
                    payload: e.payload.map(|p| Value::Object(p).to_string()),
                    salt: match e.salt {
                        Some(s) => Some(Salt::from_hex(&s).context("salt must be 64 hex digits")?),
                        None => None,
                    },
                    columns: Some(columns_of(e.columns)),
                    removed: None,
                })
            })
            .collect::<anyhow::Result<_>>()
            .map(EntriesPage::Owned)
    }

    fn checkpoints(&mut self, tenant: &TenantId) -> anyhow::Result<Vec<StoredNote>> {
        // A page at a time, each from where the last ended.
        let mut out = Vec::new();
        let mut after: Option<u64> = None;
        loop {
            let mut params = vec![("tenant", tenant.to_string())];
            if let Some(after) = after {
                params.push(("after", after.to_string()));
            }
            let page: trailmark_wire::CheckpointsPage =
                self.http.get_typed("/v1/checkpoints", &params)?;
            out.extend(page.checkpoints.into_iter().map(|c| StoredNote {
                note: c.note,
                columns: None,
            }));
            match page.next_after {
                Some(next) if Some(next) > after => after = Some(next),
                _ => return Ok(out),
            }
        }
    }

    fn verifier_keys(&mut self, tenant: &TenantId) -> anyhow::Result<Vec<VerifierKey>> {
        // Every key the trail records (a receipt or checkpoint from before
        // a rotation is signed by an older one); a server that shows no
        // record answers its current key.
        if let Some(history) = self.key_history()?.filter(|h| !h.is_empty()) {
            return history
                .iter()
                .map(|k| k.key_for(tenant.as_str()).map_err(|e| anyhow::anyhow!(e)))
                .collect();
        }
        let text = self
            .http
            .get_text("/v1/verifier-key", &[("tenant", tenant.to_string())])?;
        Ok(vec![VerifierKey::parse(text.trim())?])
    }

    fn key_history(&mut self) -> anyhow::Result<Option<Vec<KeyRecordView>>> {
        // A server from before the key record shows none; a record that
        // does not read is an error, never a history left out.
        match self.http.0.signing_keys() {
            Ok(records) => Ok(Some(records)),
            Err(e @ trailmark_client::Error::Unverified(_)) => Err(e.into()),
            Err(_) => Ok(None),
        }
    }

    fn consistency(
        &mut self,
        tenant: &TenantId,
        first: u64,
        second: u64,
    ) -> anyhow::Result<Vec<Hash>> {
        let q = [
            ("tenant", tenant.to_string()),
            ("first", first.to_string()),
            ("second", second.to_string()),
        ];
        hashes(&self.http.get_json("/v1/proofs/consistency", &q)?["hashes"])
    }
}
