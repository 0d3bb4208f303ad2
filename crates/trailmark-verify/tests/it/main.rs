//! The verifier against trails built here, intact and tampered: each kind of
//! change is reported, and by the seq or checkpoint it concerns.

// A failed unwrap is a failed test, which is what a test should do.
#![allow(clippy::unwrap_used)]

mod follow;
mod keys;
mod receipts;
mod witness;

use serde_json::{Map, Value, json};
use trailmark_core::{
    CanonicalJson, Event, EventId, IndexedColumns, Salt, SealContext, Sealed, Seq, TenantId,
    Timestamp,
};
use trailmark_log::{
    Checkpoint, KeyName, MemoryTree, SignedCheckpoint, SigningKey, TreeSize, VerifierKey, leaf_hash,
};
use trailmark_verify::{Entry, Policy, Report, TenantVerifier, Where};

pub(crate) const T0: &str = "2026-11-23T10:15:00.000Z";

pub(crate) fn key(tenant: &str) -> SigningKey {
    SigningKey::from_seed(
        KeyName::new(format!("trailmark.local/{tenant}")).unwrap(),
        &[7; 32],
    )
}

/// One stored entry as a store would hold it.
#[derive(Clone)]
pub(crate) struct Row {
    pub envelope: Vec<u8>,
    /// The payload as a store keeps it: its canonical text.
    pub payload: Option<String>,
    pub salt: Option<Salt>,
    pub columns: IndexedColumns,
}

pub(crate) fn sealed(tenant: &str, n: u64) -> Sealed {
    let event = Event::from_json(&json!({
        "tenant": tenant,
        "action": "update",
        "actor": {"id": format!("user-{n}"), "type": "user", "name": format!("person {n}")},
        "resource": {"type": "Customer", "id": n.to_string()},
        "context": {"ip": "203.0.113.7"},
    }))
    .unwrap();
    event
        .seal(SealContext {
            seq: Seq::new(n).unwrap(),
            received_at: Timestamp::parse(T0).unwrap(),
            default_tenant: &TenantId::default_tenant(),
            generated_id: EventId::derived(format!("{tenant}-{n}").as_bytes()),
            salt: Salt::from_bytes([n.to_le_bytes()[0]; 32]),
        })
        .unwrap()
}

impl Row {
    /// The row as a data dir shows it: its leaf hash and columns beside it.
    pub(crate) fn entry(&self) -> Entry<'_> {
        Entry {
            envelope: &self.envelope,
            stored_leaf_hash: Some(leaf_hash(&self.envelope)),
            payload: self.payload.as_deref(),
            salt: self.salt.as_ref(),
            columns: Some(self.columns.view()),
            removed: None,
        }
    }
}

pub(crate) fn row(s: &Sealed) -> Row {
    Row {
        envelope: s.leaf_bytes.as_bytes().to_vec(),
        payload: Some(canonical(&s.payload)),
        salt: Some(s.salt.clone()),
        columns: IndexedColumns::derive(&s.envelope, Some(&s.payload)),
    }
}

pub(crate) fn canonical(payload: &Map<String, Value>) -> String {
    CanonicalJson::of_map("payload", payload)
        .unwrap()
        .as_str()
        .to_owned()
}

/// A tenant's log of `n` entries with checkpoints at the given sizes.
pub(crate) struct Log {
    pub rows: Vec<Row>,
    pub notes: Vec<String>,
}

pub(crate) fn checkpoint(tenant: &str, rows: &[Row], size: u64) -> String {
    let mut tree = MemoryTree::new();
    for r in &rows[..usize::try_from(size).unwrap()] {
        tree.push(leaf_hash(&r.envelope)).unwrap();
    }
    let k = key(tenant);
    let cp = Checkpoint::new(k.name().as_str(), TreeSize::new(size).unwrap(), tree.root()).unwrap();
    SignedCheckpoint::sign(cp, &k).unwrap().to_string()
}

pub(crate) fn log(tenant: &str, n: u64, checkpoints: &[u64]) -> Log {
    let rows: Vec<Row> = (0..n).map(|i| row(&sealed(tenant, i))).collect();
    let notes = checkpoints
        .iter()
        .map(|&s| checkpoint(tenant, &rows, s))
        .collect();
    Log { rows, notes }
}

pub(crate) fn verifier(tenant: &str) -> TenantVerifier {
    let keys: Vec<VerifierKey> = vec![key(tenant).verifier()];
    TenantVerifier::new(TenantId::new(tenant).unwrap(), keys)
}

pub(crate) fn push_rows(v: &mut TenantVerifier, rows: &[Row]) {
    for (n, r) in (0u64..).zip(rows) {
        v.entry(n, r.entry());
    }
}

pub(crate) fn run(tenant: &str, log: &Log, trusted: &[String]) -> Report {
    let mut v = verifier(tenant);
    for note in &log.notes {
        v.stored_checkpoint(note, None);
    }
    for note in trusted {
        v.trusted_checkpoint(note, "the trusted checkpoint");
    }
    push_rows(&mut v, &log.rows);
    v.finish(log.rows.len() as u64, &Policy::default())
}

fn only(report: &Report) -> String {
    assert_eq!(report.failures.len(), 1, "{:#?}", report.failures);
    report.failures[0].to_string()
}

#[test]
fn an_intact_log_passes_with_its_summary() {
    let l = log("acme", 20, &[4, 8, 20]);
    let r = run("acme", &l, &[]);
    assert!(r.ok(), "{:#?}", r.failures);
    assert_eq!(r.summary.entries, 20);
    assert_eq!(r.summary.checkpoints, 3);
    assert_eq!(r.summary.unsigned_tail, 0);
}

#[test]
fn an_edited_payload_is_named() {
    let mut l = log("acme", 10, &[10]);
    let mut payload: Map<String, Value> =
        serde_json::from_str(l.rows[6].payload.as_ref().unwrap()).unwrap();
    payload.insert("actor_name".into(), json!("someone else"));
    l.rows[6].payload = Some(canonical(&payload));
    assert!(only(&run("acme", &l, &[])).starts_with("seq 6: the payload does not match"));
}

#[test]
fn a_payload_kept_in_another_json_form_verifies_and_an_edit_to_it_is_named() {
    // A store may keep an equivalent, non-canonical text (another key
    // order, white space): it is parsed and canonicalized, not trusted.
    let mut l = log("acme", 10, &[10]);
    let pretty = |text: &str| {
        let value: Value = serde_json::from_str(text).unwrap();
        serde_json::to_string_pretty(&value).unwrap()
    };
    for r in &mut l.rows {
        r.payload = Some(pretty(r.payload.as_ref().unwrap()));
    }
    let report = run("acme", &l, &[]);
    assert!(report.ok(), "{:?}", report.failures);
    let edited = l.rows[4]
        .payload
        .as_ref()
        .unwrap()
        .replace("person 4", "person 5");
    l.rows[4].payload = Some(edited);
    assert!(only(&run("acme", &l, &[])).starts_with("seq 4: the payload does not match"));
    // Text that is no JSON object at all: named the same way (and its
    // stored ip then differs from what the payload says: none).
    l.rows[4].payload = Some("not json".into());
    let report = run("acme", &l, &[]);
    let failures: Vec<String> = report.failures.iter().map(ToString::to_string).collect();
    assert!(
        failures[0].starts_with("seq 4: the payload does not match"),
        "{failures:?}"
    );
    assert!(
        failures[1].starts_with("seq 4: the stored column(s) ip differ"),
        "{failures:?}"
    );
}

#[test]
fn entries_checked_on_several_threads_give_the_one_threaded_verdict() {
    let mut l = log("acme", 40, &[10, 40]);
    // Damage of several kinds, spread over the chunks the threads take.
    l.rows[3].payload = Some("{}".into());
    l.rows[17].envelope[10] ^= 1;
    l.rows[25].columns.actor_id = "someone".into();
    l.rows[31].salt = None;
    let verdict = |threads: Option<usize>| {
        let mut v = verifier("acme");
        for note in &l.notes {
            v.stored_checkpoint(note, None);
        }
        let batch: Vec<(u64, Entry<'_>)> =
            (0u64..).zip(&l.rows).map(|(n, r)| (n, r.entry())).collect();
        match threads {
            None => {
                for (n, e) in &batch {
                    v.entry(*n, *e);
                }
            }
            Some(t) => {
                for part in batch.chunks(13) {
                    v.entries(part, t);
                }
            }
        }
        let r = v.finish(40, &Policy::default());
        (r.failures, r.summary, r.more_failures)
    };
    let one_by_one = verdict(None);
    assert!(one_by_one.0.len() >= 4, "{:?}", one_by_one.0);
    for threads in [1, 2, 3, 8] {
        assert_eq!(verdict(Some(threads)), one_by_one, "{threads} threads");
    }
}

#[test]
fn payload_and_salt_removed_without_a_recorded_erasure_fail() {
    let mut l = log("acme", 10, &[10]);
    l.rows[3].payload = None;
    l.rows[3].salt = None;
    l.rows[3].columns.ip = None;
    let report = only(&run("acme", &l, &[]));
    assert!(
        report.starts_with("seq 3: payload and salt are gone"),
        "{report}"
    );

    let record = |kind, ranges| trailmark_verify::RemovalRecord {
        system_seq: 0,
        tenant: TenantId::new("acme").unwrap(),
        kind,
        ranges,
    };
    // A record of other seqs does not cover it.
    let mut v = verifier("acme");
    v.stored_checkpoint(&l.notes[0], None);
    v.removal_recorded(&record(
        trailmark_verify::RemovalKind::Erased,
        vec![(0, 3), (4, 9)],
    ));
    push_rows(&mut v, &l.rows);
    assert!(!v.finish(10, &Policy::default()).ok());

    // With the erasure recorded, the same state passes and is counted.
    for (kind, erased, expired) in [
        (trailmark_verify::RemovalKind::Erased, 1, 0),
        (trailmark_verify::RemovalKind::Expired, 0, 1),
    ] {
        let mut v = verifier("acme");
        v.stored_checkpoint(&l.notes[0], None);
        v.removal_recorded(&record(kind, vec![(2, 5)]));
        push_rows(&mut v, &l.rows);
        let r = v.finish(10, &Policy::default());
        assert!(r.ok(), "{:#?}", r.failures);
        assert_eq!((r.summary.erased, r.summary.expired), (erased, expired));
    }
}

#[test]
fn an_edited_query_column_is_named_with_the_column() {
    for (column, edit) in [
        (
            "actor_id",
            Box::new(|c: &mut IndexedColumns| c.actor_id = "nobody".into())
                as Box<dyn Fn(&mut IndexedColumns)>,
        ),
        (
            "ip",
            Box::new(|c: &mut IndexedColumns| c.ip = Some("10.9.9.9".into())),
        ),
        (
            "occurred_at",
            Box::new(|c: &mut IndexedColumns| c.occurred_at += 1),
        ),
        (
            "action",
            Box::new(|c: &mut IndexedColumns| c.action = "read".into()),
        ),
        (
            "resource_id",
            Box::new(|c: &mut IndexedColumns| c.resource_id = None),
        ),
        (
            "outcome",
            Box::new(|c: &mut IndexedColumns| c.outcome = "failure".into()),
        ),
    ] {
        let mut l = log("acme", 6, &[6]);
        edit(&mut l.rows[2].columns);
        let report = only(&run("acme", &l, &[]));
        assert!(
            report.starts_with(&format!("seq 2: the stored column(s) {column} differ")),
            "{column}: {report}"
        );
    }
}

#[test]
fn a_changed_envelope_with_recomputed_hashes_is_bounded_by_the_checkpoints_around_it() {
    let mut l = log("acme", 16, &[4, 8, 12, 16]);
    // Entry 9 replaced by another sealed event at the same position: every
    // hash recomputed, so only the signed roots can tell.
    let mut forged = sealed("acme", 9);
    forged.envelope.actor_id = "mallory".into();
    let bytes = forged.envelope.to_canonical().unwrap();
    l.rows[9].envelope = bytes.as_bytes().to_vec();
    l.rows[9].columns.actor_id = "mallory".into();
    let r = run("acme", &l, &[]);
    assert_eq!(r.failures.len(), 2, "{:#?}", r.failures);
    assert_eq!(r.failures[0].at, Where::Seqs(8, 12));
    assert!(
        r.failures[0]
            .to_string()
            .starts_with("seqs 8..11: one of these entries was changed"),
        "{}",
        r.failures[0]
    );
    assert!(r.failures[1].message.contains("1 later checkpoint"));
}

#[test]
fn a_consistent_forgery_is_caught_only_by_a_checkpoint_kept_outside() {
    let genuine = log("acme", 12, &[6, 12]);
    // The operator rewrites entry 3, recomputes everything and re-signs
    // every checkpoint with the log's own key.
    let mut rows = genuine.rows.clone();
    let mut forged = sealed("acme", 3);
    forged.envelope.action = "read".into();
    rows[3].envelope = forged.envelope.to_canonical().unwrap().as_bytes().to_vec();
    rows[3].columns.action = "read".into();
    let notes = vec![checkpoint("acme", &rows, 6), checkpoint("acme", &rows, 12)];
    let forged_log = Log { rows, notes };
    assert!(
        run("acme", &forged_log, &[]).ok(),
        "without outside evidence it verifies"
    );

    // A checkpoint saved earlier (size 4) names exactly the changed entry.
    let saved = checkpoint("acme", &genuine.rows, 4);
    let with_three = checkpoint("acme", &genuine.rows, 3);
    let r = run("acme", &forged_log, &[with_three, saved]);
    assert_eq!(r.failures[0].at, Where::Seqs(3, 4), "{:#?}", r.failures);
    assert!(r.failures[0].to_string().starts_with("seq 3: changed"));
}

#[test]
fn a_rollback_below_a_trusted_checkpoint_fails() {
    let l = log("acme", 20, &[10, 20]);
    let saved = l.notes[1].clone();
    // The data dir rolled back to a copy of 10 entries.
    let old = Log {
        rows: l.rows[..10].to_vec(),
        notes: vec![l.notes[0].clone()],
    };
    let report = only(&run("acme", &old, &[saved]));
    assert!(
        report.contains("the trusted checkpoint signs 20 entries but the log has 10"),
        "{report}"
    );
}

#[test]
fn deleted_entries_and_removed_tails_are_named() {
    let mut l = log("acme", 10, &[10]);
    l.rows.remove(5);
    let mut v = verifier("acme");
    v.stored_checkpoint(&l.notes[0], None);
    for (i, r) in l.rows.iter().enumerate() {
        let position = if i < 5 { i as u64 } else { i as u64 + 1 };
        v.entry(
            position,
            Entry {
                stored_leaf_hash: None,
                columns: None,
                ..r.entry()
            },
        );
    }
    let r = v.finish(10, &Policy::default());
    assert_eq!(
        r.failures[0].to_string(),
        "seq 5: missing: the log goes from 4 to 6"
    );

    let mut tail = log("acme", 10, &[10]);
    tail.rows.truncate(8);
    let report = only(&run("acme", &tail, &[]));
    assert!(
        report
            .starts_with("seqs 8..9: the checkpoint at size 10 signs 10 entries but the log has 8"),
        "{report}"
    );
}

#[test]
fn an_old_unsigned_tail_fails_and_a_fresh_one_passes() {
    let l = log("acme", 10, &[6]);
    let policy = |now: &str| Policy {
        now: Some(Timestamp::parse(now).unwrap()),
        max_unsigned_age_ms: Policy::DEFAULT_MAX_UNSIGNED_AGE_MS,
    };
    let finish = |p: Policy| {
        let mut v = verifier("acme");
        v.stored_checkpoint(&l.notes[0], None);
        push_rows(&mut v, &l.rows);
        v.finish(10, &p)
    };
    let fresh = finish(policy("2026-11-23T10:16:00.000Z"));
    assert!(fresh.ok(), "{:#?}", fresh.failures);
    assert_eq!(fresh.summary.unsigned_tail, 4);
    let stale = finish(policy("2026-11-23T11:15:00.000Z"));
    assert_eq!(stale.failures.len(), 1);
    assert!(
        stale.failures[0]
            .to_string()
            .starts_with("seqs 6..9: no checkpoint signs these entries")
    );
}

#[test]
fn a_checkpoint_by_another_key_or_with_other_stored_columns_fails() {
    let l = log("acme", 4, &[4]);
    let other = SigningKey::from_seed(KeyName::new("trailmark.local/acme").unwrap(), &[8; 32]);
    let cp = Checkpoint::new(
        "trailmark.local/acme",
        TreeSize::new(4).unwrap(),
        trailmark_log::empty_root(),
    )
    .unwrap();
    let foreign = SignedCheckpoint::sign(cp, &other).unwrap().to_string();
    let mut v = verifier("acme");
    v.stored_checkpoint(&foreign, None);
    push_rows(&mut v, &l.rows);
    let report = only(&v.finish(4, &Policy::default()));
    assert!(
        report.starts_with("checkpoint at size 4: the stored note does not verify"),
        "{report}"
    );

    let mut v = verifier("acme");
    v.stored_checkpoint(&l.notes[0], Some((3, trailmark_log::empty_root())));
    push_rows(&mut v, &l.rows);
    let report = only(&v.finish(4, &Policy::default()));
    assert!(report.contains("stored beside the note"), "{report}");
}

#[test]
fn a_removal_marker_must_name_a_record_that_covers_the_entry() {
    use trailmark_verify::{RemovalKind, RemovalRecord, RemovedBy};
    let mut l = log("acme", 10, &[10]);
    l.rows[3].payload = None;
    l.rows[3].salt = None;
    l.rows[3].columns.ip = None;
    l.rows[3].columns.request_id = None;
    let record = RemovalRecord {
        system_seq: 40,
        tenant: TenantId::new("acme").unwrap(),
        kind: RemovalKind::Erased,
        ranges: vec![(3, 4)],
    };
    let run = |marks: &[(usize, RemovedBy)]| {
        let mut v = verifier("acme");
        v.stored_checkpoint(&l.notes[0], None);
        v.removal_recorded(&record);
        for (n, r) in (0u64..).zip(&l.rows) {
            let removed = marks
                .iter()
                .find(|(at, _)| *at as u64 == n)
                .map(|(_, by)| *by);
            v.entry(
                n,
                Entry {
                    removed,
                    ..r.entry()
                },
            );
        }
        v.finish(10, &Policy::default())
    };
    let by = |kind, record| RemovedBy { kind, record };
    // The marker the erasure wrote: passes.
    let r = run(&[(3, by(RemovalKind::Erased, 40))]);
    assert!(r.ok(), "{:#?}", r.failures);
    // Another record, or another kind: named.
    for wrong in [by(RemovalKind::Erased, 41), by(RemovalKind::Expired, 40)] {
        let report = only(&run(&[(3, wrong)]));
        assert!(
            report.starts_with("seq 3: the store says _system seq"),
            "{report}"
        );
    }
    // A marker on an entry that holds its payload: named.
    let report = only(&run(&[
        (3, by(RemovalKind::Erased, 40)),
        (5, by(RemovalKind::Erased, 40)),
    ]));
    assert!(
        report.starts_with("seq 5: marked as removed, but it holds its payload"),
        "{report}"
    );
}
