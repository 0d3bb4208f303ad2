//! Removal records: an entry whose payload and salt are gone is accounted
//! for only by an entry in `_system` that says it was erased or expired.
//! Without one, a missing payload is tampering (anyone with write access
//! to the database can null two columns).
//!
//! The entry: action [`ERASURE_ACTION`] or [`EXPIRY_ACTION`], resource type
//! [`crate::CHECKPOINT_RESOURCE`] (`trailmark.tenant`), resource id the
//! tenant, and in `metadata.ranges` the seq ranges it covers, each
//! `[first, end)` (end excluded), ascending and disjoint. The record is
//! written before the payloads are removed, so a removal cut short leaves
//! recorded entries that still hold their payloads, which verify as any
//! other: never a removed payload without its record.

use serde_json::{Map, Value};
use trailmark_core::{Envelope, TenantId};

use crate::CHECKPOINT_RESOURCE;

/// The action of a `_system` entry that records an erasure.
pub const ERASURE_ACTION: &str = "trailmark.erasure";
/// The action of a `_system` entry that records a retention run's expiry.
pub const EXPIRY_ACTION: &str = "trailmark.retention.expire";
/// The most ranges one record may hold.
pub const MAX_RANGES: usize = 10_000;

/// Why payloads were removed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RemovalKind {
    /// An erasure request (a person's data).
    Erased,
    /// A retention policy's maximum age.
    Expired,
}

/// What a store says removed an entry's payload: the kind and the
/// `_system` seq of the record (its `removed_kind`/`removed_by` marker).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RemovedBy {
    pub kind: RemovalKind,
    pub record: u64,
}

/// One removal as `_system` recorded it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RemovalRecord {
    /// The `_system` entry that holds it.
    pub system_seq: u64,
    pub tenant: TenantId,
    pub kind: RemovalKind,
    /// `[first, end)` seq ranges, ascending, disjoint.
    pub ranges: Vec<(u64, u64)>,
}

impl RemovalRecord {
    /// Ranges `[first, end)` covering `seqs` (ascending, no repeats): runs of
    /// consecutive seqs become one range.
    pub fn ranges_of(seqs: &[u64]) -> Vec<(u64, u64)> {
        let mut out: Vec<(u64, u64)> = Vec::new();
        for &s in seqs {
            match out.last_mut() {
                Some((_, end)) if *end == s => *end = s + 1,
                _ => out.push((s, s + 1)),
            }
        }
        out
    }

    /// The `metadata.ranges` value of a record.
    pub fn ranges_value(ranges: &[(u64, u64)]) -> Value {
        Value::Array(
            ranges
                .iter()
                .map(|&(a, b)| Value::Array(vec![a.into(), b.into()]))
                .collect(),
        )
    }

    /// The record an entry holds: `None` when it is not a removal record,
    /// an error when it is one but cannot be read.
    pub fn from_entry(
        envelope: &Envelope,
        payload: &Map<String, Value>,
    ) -> Option<Result<Self, String>> {
        let kind = match envelope.action.as_str() {
            ERASURE_ACTION => RemovalKind::Erased,
            EXPIRY_ACTION => RemovalKind::Expired,
            _ => return None,
        };
        if envelope.resource_type.as_deref() != Some(CHECKPOINT_RESOURCE) {
            return None;
        }
        Some(Self::read(envelope, payload, kind))
    }

    fn read(
        envelope: &Envelope,
        payload: &Map<String, Value>,
        kind: RemovalKind,
    ) -> Result<Self, String> {
        let bad = |why: &str| format!("a removal record that cannot be read: {why}");
        let tenant = envelope
            .resource_id
            .as_deref()
            .and_then(|t| TenantId::from_stored(t).ok())
            .ok_or_else(|| bad("its resource id is not a tenant"))?;
        if tenant.is_system() {
            return Err(bad("_system's own entries are never removed"));
        }
        let list = payload
            .get("metadata")
            .and_then(|m| m.get("ranges"))
            .and_then(Value::as_array)
            .ok_or_else(|| bad("metadata.ranges is missing"))?;
        if list.len() > MAX_RANGES {
            return Err(bad("more ranges than one record may hold"));
        }
        let mut ranges = Vec::with_capacity(list.len());
        let mut floor = 0;
        for item in list {
            let pair = item
                .as_array()
                .filter(|p| p.len() == 2)
                .and_then(|p| Some((p[0].as_u64()?, p[1].as_u64()?)))
                .ok_or_else(|| bad("a range is not [first, end]"))?;
            if pair.0 >= pair.1 || pair.0 < floor {
                return Err(bad("ranges must be non-empty, ascending and disjoint"));
            }
            floor = pair.1;
            ranges.push(pair);
        }
        Ok(Self {
            system_seq: envelope.seq.get(),
            tenant,
            kind,
            ranges,
        })
    }
}

/// The removals recorded for one tenant: which seqs may lack a payload,
/// and why.
#[derive(Clone, Debug, Default)]
pub struct Removals {
    /// first → (end, kind, record's `_system` seq); ranges of different
    /// records may overlap (an erasure retried), so each lookup checks the
    /// nearest ranges below.
    ranges: std::collections::BTreeMap<u64, Vec<(u64, RemovalKind, u64)>>,
}

impl Removals {
    pub fn add(&mut self, record: &RemovalRecord) {
        for &(first, end) in &record.ranges {
            self.ranges
                .entry(first)
                .or_default()
                .push((end, record.kind, record.system_seq));
        }
    }

    /// Why `seq`'s payload may be gone, if a record says so (an erasure
    /// wins over an expiry when both cover it).
    pub fn covering(&self, seq: u64) -> Option<RemovalKind> {
        let mut found = None;
        // Ranges starting at or below `seq`, nearest first; the first start
        // with a range reaching `seq` answers. Only entries without payload
        // are looked up, and those are normally covered by a near range.
        for (_, list) in self.ranges.range(..=seq).rev() {
            for &(end, kind, _) in list {
                if seq < end {
                    if kind == RemovalKind::Erased {
                        return Some(kind);
                    }
                    found = Some(kind);
                }
            }
            if found.is_some() {
                return found;
            }
        }
        found
    }
}

impl Removals {
    /// Whether the record at `_system` seq `by.record` covers `seq` with
    /// that kind: what a store's marker claims.
    pub fn confirms(&self, seq: u64, by: RemovedBy) -> bool {
        self.ranges.range(..=seq).any(|(_, list)| {
            list.iter()
                .any(|&(end, kind, record)| seq < end && kind == by.kind && record == by.record)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn consecutive_seqs_make_one_range() {
        assert_eq!(
            RemovalRecord::ranges_of(&[1, 2, 3, 7, 9, 10]),
            vec![(1, 4), (7, 8), (9, 11)]
        );
        assert!(RemovalRecord::ranges_of(&[]).is_empty());
    }

    #[test]
    fn a_seq_is_covered_only_inside_a_recorded_range() {
        let mut r = Removals::default();
        let rec = |kind, ranges| RemovalRecord {
            system_seq: 0,
            tenant: TenantId::new("a").unwrap(),
            kind,
            ranges,
        };
        r.add(&rec(RemovalKind::Expired, vec![(0, 100)]));
        r.add(&rec(RemovalKind::Erased, vec![(5, 6), (50, 52)]));
        assert_eq!(r.covering(5), Some(RemovalKind::Erased));
        assert_eq!(r.covering(51), Some(RemovalKind::Erased));
        assert_eq!(r.covering(52), Some(RemovalKind::Expired));
        assert_eq!(r.covering(99), Some(RemovalKind::Expired));
        assert_eq!(r.covering(100), None);
    }
}
