//! One tenant's log: checkpoints first, then entries in order, then the
//! verdict.

use std::collections::BTreeMap;

use serde_json::{Map, Value};
use trailmark_core::{
    ColumnsOf, Envelope, IndexedColumns, PayloadDigest, Salt, StoredColumns, TenantId, Timestamp,
    context_of_text,
};
use trailmark_log::{
    Checkpoint, CompactRange, CosignatureKey, Hash, Note, SignedCheckpoint, TreeSize, VerifierKey,
    leaf_hash, verify_consistency,
};

use crate::ScopedKey;
use crate::reference::CheckpointReference;
use crate::removal::{RemovalKind, RemovalRecord, Removals, RemovedBy};
use crate::{Failure, Report, Summary, Where};

/// One entry as read from wherever the trail lives.
#[derive(Clone, Copy, Debug)]
pub struct Entry<'a> {
    /// The leaf bytes exactly as stored.
    pub envelope: &'a [u8],
    /// The leaf hash the store recorded at append time, when it shows one.
    pub stored_leaf_hash: Option<Hash>,
    /// The payload as stored: the canonical JSON text its digest commits
    /// to (a store that keeps an equivalent, non-canonical text is checked
    /// by parsing and canonicalizing it).
    pub payload: Option<&'a str>,
    pub salt: Option<&'a Salt>,
    /// The query columns stored beside the entry, when the source has them
    /// (a data dir does; the public API shows only envelope and payload).
    pub columns: Option<StoredColumns<'a>>,
    /// What the store says removed the payload, when it says (a data dir
    /// and a PostgreSQL ledger do; the API does not).
    pub removed: Option<RemovedBy>,
}

/// One entry as a source hands it over, owning what [`Entry`] borrows.
#[derive(Clone, Debug)]
pub struct OwnedEntry {
    pub envelope: Vec<u8>,
    /// The leaf hash the store recorded at append time, if it shows one.
    pub leaf_hash: Option<Hash>,
    /// The payload as stored (canonical JSON text).
    pub payload: Option<String>,
    pub salt: Option<Salt>,
    /// The query columns stored beside it, where the source shows them.
    pub columns: Option<IndexedColumns>,
    /// The store's removal marker, where the source shows it.
    pub removed: Option<RemovedBy>,
}

impl OwnedEntry {
    pub fn entry(&self) -> Entry<'_> {
        Entry {
            envelope: &self.envelope,
            stored_leaf_hash: self.leaf_hash,
            payload: self.payload.as_deref(),
            salt: self.salt.as_ref(),
            columns: self.columns.as_ref().map(IndexedColumns::view),
            removed: self.removed,
        }
    }
}

/// What one entry shows on its own, before it joins the tree.
struct Checked {
    leaf: Hash,
    /// The stored leaf hash differs from the recomputed one.
    leaf_differs: bool,
    failures: Vec<Failure>,
    received_at: Option<Timestamp>,
    /// The removal that accounts for a missing payload.
    removed: Option<RemovalKind>,
    reference: Option<CheckpointReference>,
    record: Option<RemovalRecord>,
}

impl Checked {
    fn fail(&mut self, position: u64, message: impl Into<String>) {
        self.failures
            .push(Failure::new(Where::Seq(position), message));
    }
}

/// A stored payload held to its envelope's digest.
struct Payload {
    matches: bool,
    /// The payload parsed, when its text had to be (it is not the
    /// committed canonical bytes themselves).
    parsed: Option<Map<String, Value>>,
}

impl Payload {
    /// Stored bytes that hash to the digest are the committed canonical
    /// payload, unparsed; other text is parsed and canonicalized.
    fn check(text: &str, salt: &Salt, envelope: &Envelope) -> Self {
        if PayloadDigest::of_bytes(text.as_bytes(), salt) == envelope.payload_digest {
            return Self {
                matches: true,
                parsed: None,
            };
        }
        let parsed = parse_object(text);
        let matches = parsed
            .as_ref()
            .is_some_and(|map| envelope.payload_digest.verify(map, salt).is_ok());
        Self { matches, parsed }
    }
}

fn parse_object(text: &str) -> Option<Map<String, Value>> {
    match serde_json::from_str(text) {
        Ok(Value::Object(map)) => Some(map),
        _ => None,
    }
}

/// How a verification judges time.
#[derive(Clone, Copy, Debug, Default)]
pub struct Policy {
    /// The time the verification runs at; `None` skips the unsigned-tail age
    /// check.
    pub now: Option<Timestamp>,
    /// The oldest an entry may be (by `received_at`) and still not be signed
    /// by any checkpoint, in milliseconds.
    pub max_unsigned_age_ms: i64,
}

impl Policy {
    /// The default allowance for an unsigned tail: the server signs within a
    /// second while entries arrive, so five minutes is 300 signing intervals.
    pub const DEFAULT_MAX_UNSIGNED_AGE_MS: i64 = 300_000;
}

/// A root the rebuilt tree must have at some size, and who says so.
#[derive(Clone, Debug)]
struct Expected {
    root: Hash,
    source: String,
    stored: bool,
    /// From a `_system` cross-reference: a stored checkpoint must exist too.
    referenced: bool,
}

/// Verifies one tenant's log from what is pushed into it.
#[derive(Debug)]
pub struct TenantVerifier {
    tenant: TenantId,
    keys: Vec<ScopedKey>,
    expected: BTreeMap<u64, Vec<Expected>>,
    stored_checkpoints: usize,
    pinned: usize,
    range: CompactRange,
    /// The position the next entry must have.
    next: u64,
    /// A gap or duplicate made the tree impossible to rebuild further.
    broken: bool,
    /// The largest size at which every expected root matched.
    last_matched: u64,
    /// Whether a root already failed (later ones are only counted).
    root_failed: bool,
    later_root_failures: u64,
    /// Seqs whose stored leaf hash differs from the recomputed one.
    stored_mismatches: Vec<u64>,
    /// The removals `_system` recorded for this tenant.
    removals: Removals,
    erased: u64,
    expired: u64,
    /// `received_at` of the first entry no checkpoint signs.
    first_unsigned: Option<Timestamp>,
    /// Witnesses whose cosignatures count, and how many a checkpoint needs.
    witnesses: Vec<CosignatureKey>,
    witnesses_required: usize,
    /// The largest size signed with enough cosignatures.
    witnessed: u64,
    /// `received_at` of the first entry past `witnessed`.
    first_unwitnessed: Option<Timestamp>,
    /// Cross-references found (only in `_system`).
    references: Vec<CheckpointReference>,
    /// Removal records found (only in `_system`).
    removal_records: Vec<RemovalRecord>,
    failures: Vec<Failure>,
    more_failures: u64,
}

impl TenantVerifier {
    /// A verifier for `tenant`'s log, trusting checkpoints signed by any of
    /// `keys` (named `<origin prefix>/<tenant>`).
    pub fn new(tenant: TenantId, keys: Vec<VerifierKey>) -> Self {
        Self::with_keys(tenant, keys.into_iter().map(ScopedKey::always).collect())
    }

    /// A verifier whose keys each sign only a range of sizes (a trail whose
    /// signing key was rotated: see [`crate::KeyHistory`]).
    pub fn with_keys(tenant: TenantId, keys: Vec<ScopedKey>) -> Self {
        Self {
            tenant,
            keys,
            expected: BTreeMap::new(),
            stored_checkpoints: 0,
            pinned: 0,
            range: CompactRange::new(),
            next: 0,
            broken: false,
            last_matched: 0,
            root_failed: false,
            later_root_failures: 0,
            stored_mismatches: Vec::new(),
            removals: Removals::default(),
            erased: 0,
            expired: 0,
            first_unsigned: None,
            witnesses: Vec::new(),
            witnesses_required: 0,
            witnessed: 0,
            first_unwitnessed: None,
            references: Vec::new(),
            removal_records: Vec::new(),
            failures: Vec::new(),
            more_failures: 0,
        }
    }

    /// Demands that the log be cosigned by `required` of these witnesses:
    /// entries past the largest checkpoint with that many valid
    /// cosignatures may be no older than the unsigned-tail allowance. Call
    /// before pushing checkpoints.
    pub fn require_witnesses(&mut self, witnesses: Vec<CosignatureKey>, required: usize) {
        self.witnesses = witnesses;
        self.witnesses_required = required;
    }

    /// Counts the valid cosignatures of the configured witnesses on a note;
    /// a cosignature line by one of them that does not verify is a failure.
    fn count_cosignatures(&mut self, note: &str, size: u64) {
        if self.witnesses.is_empty() {
            return;
        }
        let Ok(parsed) = Note::parse(note.as_bytes()) else {
            return;
        };
        let mut valid = 0;
        let mut bad = Vec::new();
        for w in &self.witnesses {
            match w.verify(&parsed) {
                Ok(_) => valid += 1,
                Err(trailmark_log::Error::NoKnownSignature) => {}
                Err(e) => bad.push(e.to_string()),
            }
        }
        for e in bad {
            self.fail(
                Where::Checkpoint(size),
                format!("a witness cosignature: {e}"),
            );
        }
        if valid >= self.witnesses_required && size > self.witnessed {
            self.witnessed = size;
        }
    }

    pub fn tenant(&self) -> &TenantId {
        &self.tenant
    }

    fn fail(&mut self, at: Where, message: impl Into<String>) {
        if self.failures.len() < Report::MAX_FAILURES {
            self.failures.push(Failure::new(at, message));
        } else {
            self.more_failures += 1;
        }
    }

    fn open(&self, note: &str) -> Result<SignedCheckpoint, String> {
        let size = Note::parse(note.as_bytes())
            .ok()
            .and_then(|n| Checkpoint::parse_text(n.text()).ok())
            .map(|c| c.size().get());
        let mut last = String::from("no verifier key for this tenant");
        let mut tried = false;
        for scoped in &self.keys {
            if size.is_some_and(|s| !scoped.covers(s)) {
                continue;
            }
            tried = true;
            match SignedCheckpoint::open(note.as_bytes(), &scoped.key) {
                Ok(cp) => return Ok(cp),
                Err(e) => last = e.to_string(),
            }
        }
        if !tried && !self.keys.is_empty() {
            last = "no key of the trail signs checkpoints of this size (see the key transitions)"
                .into();
        }
        Err(last)
    }

    fn expect(&mut self, size: u64, root: Hash, source: String, stored: bool, referenced: bool) {
        debug_assert_eq!(self.next, 0, "checkpoints are pushed before entries");
        let list = self.expected.entry(size).or_default();
        if let Some(other) = list.iter().find(|e| e.root != root) {
            let message = format!(
                "{source} and {} sign different roots for the same size: the log was forked",
                other.source
            );
            self.fail(Where::Checkpoint(size), message);
        }
        self.expected.entry(size).or_default().push(Expected {
            root,
            source,
            stored,
            referenced,
        });
    }

    /// A checkpoint the store holds: its signature and origin are checked,
    /// and so are the size and root stored beside it, when given.
    pub fn stored_checkpoint(&mut self, note: &str, columns: Option<(u64, Hash)>) {
        let size_line = note.lines().nth(1).unwrap_or("?").to_owned();
        match self.open(note) {
            Ok(cp) => {
                let (size, root) = (cp.checkpoint().size().get(), *cp.checkpoint().root());
                if let Some((stored_size, stored_root)) = columns
                    && (stored_size, stored_root) != (size, root)
                {
                    self.fail(
                        Where::Checkpoint(size),
                        format!(
                            "the size or root stored beside the note ({stored_size}, {}) differs from the signed note",
                            stored_root.to_base64()
                        ),
                    );
                }
                self.stored_checkpoints += 1;
                self.count_cosignatures(note, size);
                self.expect(
                    size,
                    root,
                    format!("the checkpoint at size {size}"),
                    true,
                    false,
                );
            }
            Err(e) => {
                let at = size_line.parse().map_or(Where::Tenant, Where::Checkpoint);
                self.fail(at, format!("the stored note does not verify: {e}"));
            }
        }
    }

    /// A checkpoint kept outside the store (a file saved earlier, a monitor's
    /// state, a witness, a cross-reference): the log must be at least that
    /// long and produce its root. `source` names it in failures.
    pub fn trusted_checkpoint(&mut self, note: &str, source: &str) {
        self.outside_checkpoint(note, source, false);
    }

    /// A checkpoint `_system` recorded for this tenant: like a trusted one,
    /// and the store must still hold a checkpoint of that size.
    pub fn referenced_checkpoint(&mut self, note: &str, source: &str) {
        self.outside_checkpoint(note, source, true);
    }

    fn outside_checkpoint(&mut self, note: &str, source: &str, referenced: bool) {
        match self.open(note) {
            Ok(cp) => {
                let (size, root) = (cp.checkpoint().size().get(), *cp.checkpoint().root());
                self.pinned += 1;
                self.expect(size, root, source.to_owned(), false, referenced);
            }
            Err(e) => self.fail(
                Where::Tenant,
                format!("{source} is not a checkpoint of this log: {e}"),
            ),
        }
    }

    /// A consistency proof from a trusted checkpoint (`note`) to a newer
    /// one (`newer`: size and root), as a monitor demands of the log it
    /// watches; a proof that does not verify is a failure.
    pub fn consistency_from_trusted(
        &mut self,
        note: &str,
        newer: (u64, Hash),
        proof: &[Hash],
        source: &str,
    ) {
        let Ok(cp) = self.open(note) else {
            return; // reported when the note is pushed as trusted
        };
        let (old_size, old_root) = (cp.checkpoint().size(), *cp.checkpoint().root());
        let checked = TreeSize::new(newer.0)
            .ok_or_else(|| "size too large".to_owned())
            .and_then(|size| {
                verify_consistency(old_size, size, proof, &old_root, &newer.1)
                    .map_err(|e| e.to_string())
            });
        if let Err(e) = checked {
            self.fail(
                Where::Checkpoint(newer.0),
                format!(
                    "the log offers no valid consistency proof from {source} (size {}): {e}",
                    old_size.get()
                ),
            );
        }
    }

    /// Holds the tenant to a removal `_system` recorded of it: the entries
    /// it covers may lack their payloads.
    pub fn removal_recorded(&mut self, record: &RemovalRecord) {
        self.removals.add(record);
    }

    /// The removal records this log holds (only `_system` has them).
    pub fn removal_records(&self) -> &[RemovalRecord] {
        &self.removal_records
    }

    /// The cross-references this log holds (only `_system` has them), each
    /// with the seq of the entry that holds it.
    pub fn references(&self) -> &[CheckpointReference] {
        &self.references
    }

    /// The largest size some checkpoint (stored or trusted) signs.
    fn signed_size(&self) -> u64 {
        self.expected.keys().next_back().copied().unwrap_or(0)
    }

    /// The entry at `position` of the log. Entries come in order; a position
    /// skipped is reported missing.
    pub fn entry(&mut self, position: u64, entry: Entry<'_>) {
        let checked = self.check(position, &entry);
        self.apply(position, checked);
    }

    /// Entries in order, each with its position: what each shows on its
    /// own is checked on `threads` threads, then the tree is rebuilt from
    /// them in order. The same verdict as [`Self::entry`] one by one.
    pub fn entries(&mut self, batch: &[(u64, Entry<'_>)], threads: usize) {
        let threads = threads.clamp(1, batch.len().max(1));
        let checked: Vec<Checked> = if threads == 1 {
            batch.iter().map(|(p, e)| self.check(*p, e)).collect()
        } else {
            let this = &*self;
            let chunk = batch.len().div_ceil(threads);
            std::thread::scope(|scope| {
                let parts: Vec<_> = batch
                    .chunks(chunk)
                    .map(|part| {
                        scope.spawn(move || {
                            part.iter()
                                .map(|(p, e)| this.check(*p, e))
                                .collect::<Vec<_>>()
                        })
                    })
                    .collect();
                parts
                    .into_iter()
                    .flat_map(|h| h.join().unwrap_or_else(|e| std::panic::resume_unwind(e)))
                    .collect()
            })
        };
        for ((position, _), c) in batch.iter().zip(checked) {
            self.apply(*position, c);
        }
    }

    /// A page of entries read from seq `start` on ([`Self::entries`]). An
    /// entry is placed at the seq its columns show, where the source shows
    /// them (a deleted row is then a gap, not a shift of every later
    /// entry), else at its place in the page.
    pub fn page<'a>(
        &mut self,
        start: u64,
        page: impl IntoIterator<Item = Entry<'a>>,
        threads: usize,
    ) {
        let batch: Vec<_> = (start..)
            .zip(page)
            .map(|(n, e)| (e.columns.map_or(n, |c| c.seq), e))
            .collect();
        self.entries(&batch, threads);
    }

    /// Adds what one entry showed to the log, in order.
    fn apply(&mut self, position: u64, checked: Checked) {
        if position != self.next {
            if position > self.next {
                self.fail(
                    Where::Seqs(self.next, position),
                    format!(
                        "missing: the log goes from {} to {position}",
                        self.next.saturating_sub(1)
                    ),
                );
            } else {
                self.fail(Where::Seq(position), "appears twice");
            }
            self.broken = true;
        }
        self.next = position + 1;
        if checked.leaf_differs {
            self.stored_mismatches.push(position);
        }
        for f in checked.failures {
            self.fail(f.at, f.message);
        }
        if let Some(received) = checked.received_at {
            if position == self.signed_size() {
                self.first_unsigned = Some(received);
            }
            if position == self.witnessed {
                self.first_unwitnessed = Some(received);
            }
        }
        match checked.removed {
            Some(RemovalKind::Erased) => self.erased += 1,
            Some(RemovalKind::Expired) => self.expired += 1,
            None => {}
        }
        self.references.extend(checked.reference);
        self.removal_records.extend(checked.record);
        if !self.broken {
            if let Err(e) = self.range.append(checked.leaf, |_, _| {}) {
                self.fail(Where::Seq(position), e.to_string());
                self.broken = true;
            } else {
                self.check_roots();
            }
        }
    }

    /// What one entry shows on its own: its leaf hash and every failure
    /// that needs no other entry. Reads only what checkpoints and removal
    /// records set up before entries came.
    fn check(&self, position: u64, entry: &Entry<'_>) -> Checked {
        let mut out = Checked {
            leaf: leaf_hash(entry.envelope),
            leaf_differs: false,
            failures: Vec::new(),
            received_at: None,
            removed: None,
            reference: None,
            record: None,
        };
        if entry
            .stored_leaf_hash
            .is_some_and(|stored| stored != out.leaf)
        {
            out.leaf_differs = true;
            out.fail(
                position,
                "the envelope differs from the one whose hash was stored when it was appended",
            );
        }
        match Envelope::from_leaf_bytes(entry.envelope) {
            Ok(envelope) => self.check_envelope(position, &envelope, entry, &mut out),
            Err(e) => out.fail(position, format!("envelope: {e}")),
        }
        out
    }

    fn check_envelope(
        &self,
        position: u64,
        envelope: &Envelope,
        entry: &Entry<'_>,
        out: &mut Checked,
    ) {
        if envelope.seq.get() != position {
            out.fail(
                position,
                format!(
                    "position {position} holds the envelope of seq {}: entries were removed or reordered",
                    envelope.seq
                ),
            );
        }
        if envelope.tenant != self.tenant {
            out.fail(
                position,
                format!("the envelope belongs to tenant {}", envelope.tenant),
            );
        }
        out.received_at = Some(envelope.received_at);
        let payload = match (entry.payload, entry.salt) {
            (Some(text), Some(salt)) => {
                if entry.removed.is_some() {
                    out.fail(position, "marked as removed, but it holds its payload");
                }
                let payload = Payload::check(text, salt, envelope);
                if !payload.matches {
                    out.fail(
                        position,
                        "the payload does not match the digest in its envelope",
                    );
                }
                Some(payload)
            }
            (None, None) => {
                out.removed = self.check_removed(position, entry.removed, out);
                None
            }
            _ => {
                out.fail(
                    position,
                    "a payload without its salt, or a salt without its payload",
                );
                None
            }
        };
        if let Some(stored) = entry.columns {
            // Columns follow the payload as stored, even one that does not
            // match its digest (that is reported above); text that is no
            // JSON object has no context.
            let read;
            let expected = match &payload {
                Some(Payload {
                    parsed: Some(map), ..
                }) => ColumnsOf::new(envelope, map.get("context")),
                Some(Payload { parsed: None, .. }) => {
                    read = entry.payload.and_then(context_of_text).unwrap_or_default();
                    ColumnsOf::with_context(
                        envelope,
                        read.ip.as_deref(),
                        read.request_id.as_deref(),
                    )
                }
                None => ColumnsOf::new(envelope, None),
            };
            let differ = stored.differences(&expected);
            if !differ.is_empty() {
                out.fail(
                    position,
                    format!(
                        "the stored column(s) {} differ from the envelope and payload: queries and stats would show what the entry does not say",
                        differ.join(", ")
                    ),
                );
            }
        }
        if !self.tenant.is_system() {
            return;
        }
        // `_system` entries carry cross-references and removal records:
        // only a payload that matches its digest counts.
        let Some(map) = payload
            .filter(|p| p.matches)
            .and_then(|p| p.parsed.or_else(|| parse_object(entry.payload?)))
        else {
            return;
        };
        if let Some(reference) = CheckpointReference::from_entry(envelope, &map) {
            match reference {
                Ok(r) => out.reference = Some(r),
                Err(e) => out.fail(position, e),
            }
        }
        if let Some(record) = RemovalRecord::from_entry(envelope, &map) {
            match record {
                Ok(r) => out.record = Some(r),
                Err(e) => out.fail(position, e),
            }
        }
    }

    /// An entry without payload and salt: a `_system` record must cover it,
    /// and the store's marker, if it shows one, must name such a record.
    fn check_removed(
        &self,
        position: u64,
        marker: Option<RemovedBy>,
        out: &mut Checked,
    ) -> Option<RemovalKind> {
        if let Some(by) = marker
            && !self.removals.confirms(position, by)
        {
            out.fail(
                position,
                format!(
                    "the store says _system seq {} removed its payload, but that record does not cover it",
                    by.record
                ),
            );
        }
        let kind = self.removals.covering(position);
        if kind.is_none() {
            out.fail(
                position,
                "payload and salt are gone, and no erasure or retention run records removing them",
            );
        }
        kind
    }

    /// Compares the rebuilt root with every root expected at this size.
    fn check_roots(&mut self) {
        let size = self.range.size().get();
        let Some(list) = self.expected.get(&size) else {
            return;
        };
        let root = self.range.root();
        let wrong: Vec<String> = list
            .iter()
            .filter(|e| e.root != root)
            .map(|e| e.source.clone())
            .collect();
        if wrong.is_empty() {
            if !self.root_failed {
                self.last_matched = size;
            }
            return;
        }
        if self.root_failed {
            self.later_root_failures += 1;
            return;
        }
        self.root_failed = true;
        let from = self.last_matched;
        let named: Vec<u64> = self
            .stored_mismatches
            .iter()
            .copied()
            .filter(|s| (from..size).contains(s))
            .collect();
        let at = match named.first() {
            Some(&seq) => Where::Seq(seq),
            None => Where::Seqs(from, size),
        };
        let message = if from + 1 == size || !named.is_empty() {
            format!(
                "changed: the entries do not produce the root that {} signs at size {size}",
                wrong.join(" and ")
            )
        } else {
            format!(
                "one of these entries was changed: the entries produce the signed root at size {from} but not the root that {} signs at size {size}",
                wrong.join(" and ")
            )
        };
        self.fail(at, message);
    }

    /// The verdict, given the size the source says the log has.
    pub fn finish(mut self, size: u64, policy: &Policy) -> Report {
        if self.next < size {
            let next = self.next;
            self.fail(
                Where::Seqs(next, size),
                format!("missing: the log has {size} entries but only {next} could be read"),
            );
            self.broken = true;
        }
        let read = self.next.max(size);
        let beyond: Vec<(u64, String, bool)> = self
            .expected
            .range(read + 1..)
            .flat_map(|(s, list)| list.iter().map(|e| (*s, e.source.clone(), e.stored)))
            .collect();
        for (cp_size, source, stored) in beyond {
            let what = if stored {
                "entries were removed".to_owned()
            } else {
                "entries were removed, or the data was rolled back to an older copy".to_owned()
            };
            self.fail(
                Where::Seqs(read, cp_size),
                format!("{source} signs {cp_size} entries but the log has {read}: {what}"),
            );
        }
        let unstored: Vec<(u64, String)> = self
            .expected
            .iter()
            .filter(|(_, list)| !list.iter().any(|e| e.stored))
            .filter_map(|(s, list)| {
                list.iter()
                    .find(|e| e.referenced)
                    .map(|e| (*s, e.source.clone()))
            })
            .collect();
        for (cp_size, source) in unstored {
            self.fail(
                Where::Checkpoint(cp_size),
                format!("{source} is no longer stored: checkpoints were deleted"),
            );
        }
        if self.later_root_failures > 0 {
            let n = self.later_root_failures;
            self.fail(
                Where::Tenant,
                format!("{n} later checkpoint(s) do not match either (they include the change)"),
            );
        }
        let signed = self.signed_size().min(read);
        if let (Some(now), Some(received)) = (policy.now, self.first_unsigned) {
            let age = now.unix_millis() - received.unix_millis();
            if signed < read && age > policy.max_unsigned_age_ms {
                self.fail(
                    Where::Seqs(signed, read),
                    format!(
                        "no checkpoint signs these entries, the oldest received {} s ago (allowed: {} s): checkpoints were deleted, or the server cannot sign",
                        age / 1000,
                        policy.max_unsigned_age_ms / 1000
                    ),
                );
            }
        }
        if self.witnesses_required > 0
            && self.witnessed < read
            && let Some(received) = self.first_unwitnessed
        {
            let age = policy
                .now
                .map_or(i64::MAX, |now| now.unix_millis() - received.unix_millis());
            if age > policy.max_unsigned_age_ms {
                let (from, required) = (self.witnessed, self.witnesses_required);
                self.fail(
                    Where::Seqs(from, read),
                    format!(
                        "no checkpoint cosigned by {required} of the given witnesses covers these entries (the largest covers {from}): witnesses refused them, or were never asked"
                    ),
                );
            }
        }
        Report {
            summary: Summary {
                entries: read,
                erased: self.erased,
                expired: self.expired,
                checkpoints: self.stored_checkpoints,
                pinned: self.pinned,
                root: (!self.broken).then(|| self.range.root()),
                unsigned_tail: read - signed,
            },
            tenant: self.tenant,
            failures: self.failures,
            more_failures: self.more_failures,
        }
    }
}
