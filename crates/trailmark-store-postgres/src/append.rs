//! One append: one transaction, tenants locked in name order.

use std::collections::HashMap;

use trailmark_core::{ColumnsOf, ContextColumns, Envelope, Seq, TenantId, context_of_text};
use trailmark_log::{CompactRange, Hash, TreeSize, leaf_hash};
use trailmark_store::{Appended, NewEvent, Removal, StoreError, searchable_text};

use tokio_postgres::binary_copy::BinaryCopyInWriter;
use tokio_postgres::types::{ToSql, Type};

use crate::{PgStore, db, read, to_i64};

/// The columns of the new entries, one array each (sent as `unnest` input).
#[derive(Default)]
pub(crate) struct Rows {
    pub(crate) tenant: Vec<String>,
    pub(crate) seq: Vec<i64>,
    pub(crate) id: Vec<String>,
    pub(crate) occurred_at: Vec<i64>,
    pub(crate) actor_id: Vec<String>,
    pub(crate) action: Vec<String>,
    pub(crate) resource_type: Vec<Option<String>>,
    pub(crate) resource_id: Vec<Option<String>>,
    pub(crate) outcome: Vec<String>,
    pub(crate) received_at: Vec<i64>,
    pub(crate) envelope: Vec<Vec<u8>>,
    pub(crate) leaf_hash: Vec<Vec<u8>>,
    pub(crate) payload: Vec<Option<String>>,
    pub(crate) salt: Vec<Option<Vec<u8>>>,
    pub(crate) ip: Vec<Option<String>>,
    pub(crate) request_id: Vec<Option<String>>,
    pub(crate) words: Vec<Vec<String>>,
    /// The payload's size as a removal counts it (None without one).
    pub(crate) payload_bytes: Vec<Option<i64>>,
    /// Why the payload is gone, for an entry imported without one.
    pub(crate) removed_kind: Vec<Option<&'static str>>,
    pub(crate) removed_by: Vec<Option<i64>>,
}

/// New complete tree nodes.
#[derive(Default)]
pub(crate) struct Nodes {
    pub(crate) tenant: Vec<String>,
    pub(crate) level: Vec<i16>,
    pub(crate) idx: Vec<i64>,
    pub(crate) hash: Vec<Vec<u8>>,
}

/// A tenant's head while the batch is being sequenced.
pub(crate) struct Head {
    pub(crate) size: u64,
    pub(crate) range: CompactRange,
}

/// The words `q=` can find in an entry: those of its searchable text (the
/// embedded store indexes the same text), lower-cased, each once.
/// `payload`: its stored JSON text (None once erased).
pub(crate) fn words(envelope: &Envelope, payload: Option<&str>) -> Vec<String> {
    let mut out = Vec::new();
    crate::search::split(&searchable_text(envelope, payload), &mut out);
    out.sort_unstable();
    out.dedup();
    out
}

impl Head {
    /// Adds one leaf: the tree's new inner nodes go to `nodes` (leaves are
    /// the entries' leaf hashes; only inner nodes are kept).
    pub(crate) fn append(
        &mut self,
        tenant: &TenantId,
        leaf: Hash,
        nodes: &mut Nodes,
    ) -> Result<(), StoreError> {
        self.range.append(leaf, |node, hash| {
            if node.level == 0 {
                return;
            }
            nodes.tenant.push(tenant.as_str().to_owned());
            nodes.level.push(i16::from(node.level));
            nodes.idx.push(to_i64(node.index));
            nodes.hash.push(hash.as_bytes().to_vec());
        })?;
        self.size += 1;
        Ok(())
    }
}

/// One entry as it is stored: the envelope's bytes and leaf hash, its
/// payload as canonical JSON text and salt (None once erased). Its query
/// columns are those of [`ColumnsOf`], with the context's read from the
/// text; its search words are read from the text too (no payload map).
pub(crate) struct NewRow<'a> {
    pub(crate) envelope: &'a Envelope,
    pub(crate) bytes: Vec<u8>,
    pub(crate) leaf: Hash,
    pub(crate) payload_text: Option<String>,
    pub(crate) salt: Option<Vec<u8>>,
    pub(crate) removed: Option<Removal>,
}

impl Rows {
    /// Adds one row; refused when its payload text is not a JSON object.
    pub(crate) fn push(&mut self, row: NewRow<'_>) -> Result<(), StoreError> {
        let env = row.envelope;
        let text = row.payload_text.as_deref();
        let context = match text {
            Some(text) => context_of_text(text).ok_or_else(|| {
                StoreError::Unreadable(format!("entry {}: payload is not a JSON object", env.id))
            })?,
            None => ContextColumns::default(),
        };
        self.words.push(words(env, text));
        let columns =
            ColumnsOf::with_context(env, context.ip.as_deref(), context.request_id.as_deref())
                .to_owned();
        self.tenant.push(columns.tenant);
        self.seq.push(to_i64(columns.seq));
        self.id.push(columns.id);
        self.occurred_at.push(columns.occurred_at);
        self.actor_id.push(columns.actor_id);
        self.action.push(columns.action);
        self.resource_type.push(columns.resource_type);
        self.resource_id.push(columns.resource_id);
        self.outcome.push(columns.outcome);
        self.received_at.push(env.received_at.unix_millis());
        self.envelope.push(row.bytes);
        self.leaf_hash.push(row.leaf.as_bytes().to_vec());
        // What a removal frees: payload, salt and the derived columns.
        let bytes = row.payload_text.as_ref().map(|text| {
            let derived = [&columns.ip, &columns.request_id]
                .iter()
                .map(|c| c.as_ref().map_or(0, String::len))
                .sum::<usize>();
            to_i64((text.len() + row.salt.as_ref().map_or(0, Vec::len) + derived) as u64)
        });
        self.payload_bytes.push(bytes);
        let (kind, by) = row.removed.map(Removal::to_parts).unzip();
        self.removed_kind.push(kind);
        self.removed_by.push(by.map(to_i64));
        self.payload.push(row.payload_text);
        self.salt.push(row.salt);
        self.ip.push(columns.ip);
        self.request_id.push(columns.request_id);
        Ok(())
    }
}

/// Appends a batch. Ids the server generated are fresh and are not looked
/// up; should one collide anyway (the unique index says so), the batch is
/// run again looking every id up. Should a payload partition this process
/// knew be gone (a scrub dropped it), the batch is run again after making it.
pub(crate) async fn append(
    store: &PgStore,
    batch: &[NewEvent],
) -> Result<Vec<Appended>, StoreError> {
    match append_checked(store, batch).await {
        Err(e) if crate::partitions::no_partition(&e) => {
            store.partitions.forget();
            append_checked(store, batch).await
        }
        other => other,
    }
}

async fn append_checked(store: &PgStore, batch: &[NewEvent]) -> Result<Vec<Appended>, StoreError> {
    match append_once(store, batch, false).await {
        Err(StoreError::Backend { source, .. })
            if source
                .downcast_ref::<tokio_postgres::Error>()
                .and_then(tokio_postgres::Error::code)
                == Some(&tokio_postgres::error::SqlState::UNIQUE_VIOLATION) =>
        {
            append_once(store, batch, true).await
        }
        other => other,
    }
}

async fn append_once(
    store: &PgStore,
    batch: &[NewEvent],
    look_up_all: bool,
) -> Result<Vec<Appended>, StoreError> {
    let mut client = store.client().await?;
    let received = batch.iter().map(|n| n.received_at.unix_millis());
    crate::partitions::ensure(&**client, &store.partitions, received).await?;
    let tx = client
        .transaction()
        .await
        .map_err(db("starting an append"))?;
    let mut heads = lock_heads(&tx, batch).await?;
    let mut known = known_ids(&tx, batch, look_up_all).await?;
    let (rows, nodes, out) = sequence(batch, &mut heads, &mut known)?;
    write(&tx, &rows, &nodes, heads).await?;
    // Durable once this returns (synchronous_commit as the server has it;
    // the default, on, waits for the WAL flush).
    tx.commit().await.map_err(db("committing an append"))?;
    Ok(out)
}

/// Adds new tenants and locks every tenant of the batch, in name order (so
/// two appends never wait on each other in a cycle): the lock that
/// sequences each tenant across servers. Returns their heads.
async fn lock_heads(
    tx: &deadpool_postgres::Transaction<'_>,
    batch: &[NewEvent],
) -> Result<HashMap<String, Head>, StoreError> {
    let mut names: Vec<String> = batch
        .iter()
        .map(|n| n.tenant().as_str().to_owned())
        .collect();
    names.sort_unstable();
    names.dedup();
    tx.execute(
        "INSERT INTO trailmark_ledger.tenants (name, size)
         SELECT unnest($1::text[]), 0 ORDER BY 1 ON CONFLICT (name) DO NOTHING",
        &[&names],
    )
    .await
    .map_err(db("adding new tenants"))?;
    // The lock that sequences each tenant across servers, taken in name
    // order so two appends never wait on each other in a cycle.
    let locked = tx
        .query(
            "SELECT name, size FROM trailmark_ledger.tenants WHERE name = ANY ($1)
             ORDER BY name FOR UPDATE",
            &[&names],
        )
        .await
        .map_err(db("locking tenant heads"))?;
    let mut heads: HashMap<String, Head> = HashMap::new();
    for row in locked {
        let (name, size): (String, i64) = (row.get(0), row.get(1));
        let tenant = TenantId::from_stored(&name)
            .map_err(|m| StoreError::Unreadable(format!("tenant name {name:?}: {m}")))?;
        let size = TreeSize::new(u64::try_from(size).unwrap_or(0)).ok_or(StoreError::Corrupt {
            tenant: tenant.clone(),
            reason: "negative size".into(),
        })?;
        let ids = CompactRange::node_ids(size);
        let hashes = read::nodes(&**tx, &tenant, &ids).await?;
        let range = CompactRange::from_hashes(size, hashes)?;
        heads.insert(
            name,
            Head {
                size: size.get(),
                range,
            },
        );
    }

    Ok(heads)
}

/// Ids of the batch already stored, with their seqs.
async fn known_ids(
    tx: &deadpool_postgres::Transaction<'_>,
    batch: &[NewEvent],
    all: bool,
) -> Result<HashMap<(String, String), Seq>, StoreError> {
    // Only ids the producer gave can already be stored: the server's own
    // are fresh UUIDv7s with 74 random bits.
    let (mut lookup_tenants, mut lookup_ids) = (Vec::new(), Vec::new());
    for new in batch.iter().filter(|n| all || n.event.id.is_some()) {
        lookup_tenants.push(new.tenant().as_str().to_owned());
        lookup_ids.push(new.id().to_string());
    }
    let mut known: HashMap<(String, String), Seq> = HashMap::new();
    if lookup_ids.is_empty() {
        return Ok(known);
    }
    for row in tx
        .query(
            "SELECT e.tenant, e.id, e.seq FROM trailmark_ledger.entries e
             JOIN unnest($1::text[], $2::text[]) AS b(tenant, id) ON e.tenant = b.tenant AND e.id = b.id",
            &[&lookup_tenants, &lookup_ids],
        )
        .await
        .map_err(db("looking up event ids"))?
    {
        let seq: i64 = row.get(2);
        if let Some(seq) = u64::try_from(seq).ok().and_then(Seq::new) {
            known.insert((row.get(0), row.get(1)), seq);
        }
    }

    Ok(known)
}

/// Seqs, envelopes and new nodes for the batch, in order; ids already
/// stored (or earlier in the batch) answer their first seq.
fn sequence(
    batch: &[NewEvent],
    heads: &mut HashMap<String, Head>,
    known: &mut HashMap<(String, String), Seq>,
) -> Result<(Rows, Nodes, Vec<Appended>), StoreError> {
    let mut rows = Rows::default();
    let mut nodes = Nodes::default();
    let mut out = Vec::with_capacity(batch.len());
    for new in batch {
        let (tenant, id) = (new.tenant(), new.id());
        let key = (tenant.as_str().to_owned(), id.to_string());
        if let Some(seq) = known.get(&key) {
            out.push(Appended {
                id,
                tenant,
                seq: *seq,
                duplicate: true,
            });
            continue;
        }
        let head = heads
            .get_mut(tenant.as_str())
            .ok_or_else(|| StoreError::Corrupt {
                tenant: tenant.clone(),
                reason: "its head was not locked before the append".into(),
            })?;
        let seq = Seq::new(head.size)
            .ok_or_else(|| StoreError::Conflict(format!("tenant {tenant} is full")))?;
        let committed = &new.committed;
        let env = new.seal(seq);
        let leaf_bytes = env.to_canonical()?;
        let leaf = leaf_hash(leaf_bytes.as_bytes());
        head.append(&tenant, leaf, &mut nodes)?;
        rows.push(NewRow {
            envelope: &env,
            bytes: leaf_bytes.as_bytes().to_vec(),
            leaf,
            payload_text: Some(committed.payload_json.as_str().to_owned()),
            salt: Some(committed.salt.as_bytes().to_vec()),
            removed: None,
        })?;
        known.insert(key, seq);
        out.push(Appended {
            id,
            tenant,
            seq,
            duplicate: false,
        });
    }

    Ok((rows, nodes, out))
}

pub(crate) async fn write(
    tx: &deadpool_postgres::Transaction<'_>,
    rows: &Rows,
    nodes: &Nodes,
    heads: HashMap<String, Head>,
) -> Result<(), StoreError> {
    if !rows.seq.is_empty() {
        // Positions are drawn here, in batch order, so that the payloads
        // (another table) carry them too.
        let pos: Vec<i64> = tx
            .query(
                "SELECT nextval(pg_get_serial_sequence('trailmark_ledger.entries', 'pos'))
                 FROM generate_series(1, $1::int8)",
                &[&to_i64(rows.seq.len() as u64)],
            )
            .await
            .map_err(db("numbering entries"))?
            .iter()
            .map(|r| r.get(0))
            .collect();
        copy_entries(tx, rows, &pos).await?;
        copy_payloads(tx, rows, &pos).await?;
    }
    if !nodes.idx.is_empty() {
        copy_nodes(tx, nodes).await?;
    }
    let (names, sizes): (Vec<String>, Vec<i64>) = heads
        .into_iter()
        .map(|(name, head)| (name, to_i64(head.size)))
        .unzip();
    tx.execute(
        "UPDATE trailmark_ledger.tenants t SET size = u.size
         FROM unnest($1::text[], $2::int8[]) AS u(name, size) WHERE t.name = u.name",
        &[&names, &sizes],
    )
    .await
    .map_err(db("advancing tenant heads"))?;
    Ok(())
}

/// One binary `COPY … FROM STDIN` (PostgreSQL's bulk path: rows are
/// written to the heap in groups, not one executor call each): `statement`
/// names the table and columns, `types` their types, each item of `rows`
/// one row's values in that order. `what` names the copy in errors.
async fn copy_in<'a, const N: usize>(
    tx: &deadpool_postgres::Transaction<'_>,
    what: &'static str,
    statement: &str,
    types: &[Type; N],
    rows: impl Iterator<Item = [&'a (dyn ToSql + Sync); N]>,
) -> Result<(), StoreError> {
    let sink = tx.copy_in(statement).await.map_err(db(what))?;
    let mut writer = std::pin::pin!(BinaryCopyInWriter::new(sink, types));
    for row in rows {
        writer.as_mut().write(&row).await.map_err(db(what))?;
    }
    writer.as_mut().finish().await.map_err(db(what))?;
    Ok(())
}

/// The entries, with the positions drawn for them (`COPY` writes an
/// identity column as given). An entry whose payload is gone (imported
/// so) has its envelope's words in its own search column, so that it is
/// still found by them.
async fn copy_entries(
    tx: &deadpool_postgres::Transaction<'_>,
    rows: &Rows,
    pos: &[i64],
) -> Result<(), StoreError> {
    let search: Vec<Option<Lexemes<'_>>> = (0..pos.len())
        .map(|i| rows.payload[i].is_none().then(|| Lexemes(&rows.words[i])))
        .collect();
    let types = [
        Type::INT8,
        Type::TEXT,
        Type::INT8,
        Type::TEXT,
        Type::INT8,
        Type::INT8,
        Type::TEXT,
        Type::TEXT,
        Type::TEXT,
        Type::TEXT,
        Type::TEXT,
        Type::BYTEA,
        Type::BYTEA,
        Type::TS_VECTOR,
        Type::TEXT,
        Type::INT8,
        Type::INT8,
    ];
    let values = pos.iter().enumerate().map(|(i, pos)| {
        [
            pos as &(dyn ToSql + Sync),
            &rows.tenant[i],
            &rows.seq[i],
            &rows.id[i],
            &rows.occurred_at[i],
            &rows.received_at[i],
            &rows.actor_id[i],
            &rows.action[i],
            &rows.resource_type[i],
            &rows.resource_id[i],
            &rows.outcome[i],
            &rows.envelope[i],
            &rows.leaf_hash[i],
            &search[i],
            &rows.removed_kind[i],
            &rows.removed_by[i],
            &rows.payload_bytes[i],
        ]
    });
    copy_in(
        tx,
        "copying entries",
        "COPY trailmark_ledger.entries (pos, tenant, seq, id, occurred_at, received_at,
             actor_id, action, resource_type, resource_id, outcome, envelope, leaf_hash,
             search, removed_kind, removed_by, payload_bytes)
         FROM STDIN (FORMAT binary)",
        &types,
        values,
    )
    .await
}

/// The payloads of the new entries (those that have one), into the
/// partitions of their received times, with every word of the entry.
async fn copy_payloads(
    tx: &deadpool_postgres::Transaction<'_>,
    rows: &Rows,
    pos: &[i64],
) -> Result<(), StoreError> {
    let search: Vec<Lexemes<'_>> = rows.words.iter().map(|w| Lexemes(w)).collect();
    let types = [
        Type::INT8,
        Type::INT8,
        Type::TEXT,
        Type::TEXT,
        Type::BYTEA,
        Type::TEXT,
        Type::TEXT,
        Type::TS_VECTOR,
    ];
    let values = (0..pos.len())
        .filter(|&i| rows.payload[i].is_some())
        .map(|i| {
            [
                &pos[i] as &(dyn ToSql + Sync),
                &rows.received_at[i],
                &rows.tenant[i],
                &rows.payload[i],
                &rows.salt[i],
                &rows.ip[i],
                &rows.request_id[i],
                &search[i],
            ]
        });
    copy_in(
        tx,
        "copying payloads",
        "COPY trailmark_ledger.payloads (pos, received_at, tenant, payload, salt, ip,
             request_id, search)
         FROM STDIN (FORMAT binary)",
        &types,
        values,
    )
    .await
}

/// Lexemes (sorted, distinct, no positions) in `tsvector`'s binary form.
#[derive(Debug)]
struct Lexemes<'a>(&'a [String]);

impl tokio_postgres::types::ToSql for Lexemes<'_> {
    fn to_sql(
        &self,
        _: &tokio_postgres::types::Type,
        out: &mut bytes::BytesMut,
    ) -> Result<tokio_postgres::types::IsNull, Box<dyn std::error::Error + Sync + Send>> {
        use bytes::BufMut as _;
        out.put_i32(i32::try_from(self.0.len())?);
        for lexeme in self.0 {
            out.put_slice(lexeme.as_bytes());
            out.put_u8(0);
            out.put_u16(0); // no positions
        }
        Ok(tokio_postgres::types::IsNull::No)
    }

    fn accepts(ty: &tokio_postgres::types::Type) -> bool {
        *ty == tokio_postgres::types::Type::TS_VECTOR
    }

    tokio_postgres::types::to_sql_checked!();
}

async fn copy_nodes(
    tx: &deadpool_postgres::Transaction<'_>,
    nodes: &Nodes,
) -> Result<(), StoreError> {
    let values = (0..nodes.idx.len()).map(|i| {
        [
            &nodes.tenant[i] as &(dyn ToSql + Sync),
            &nodes.level[i],
            &nodes.idx[i],
            &nodes.hash[i],
        ]
    });
    copy_in(
        tx,
        "copying tree nodes",
        "COPY trailmark_ledger.nodes (tenant, level, idx, hash) FROM STDIN (FORMAT binary)",
        &[Type::TEXT, Type::INT2, Type::INT8, Type::BYTEA],
        values,
    )
    .await
}
