//! A whole trail: `_system` first (it holds the cross-references), then
//! every other tenant held to what `_system` recorded of it.

use std::collections::BTreeMap;

use trailmark_core::TenantId;

use crate::{
    CheckpointReference, Failure, Policy, RemovalRecord, Report, ScopedKey, TenantVerifier, Where,
};

/// Verifies several tenants of one trail.
#[derive(Debug, Default)]
pub struct Trail {
    policy: Policy,
    references: BTreeMap<TenantId, Vec<CheckpointReference>>,
    removals: BTreeMap<TenantId, Vec<RemovalRecord>>,
    system_verified: bool,
}

impl Trail {
    pub fn new(policy: Policy) -> Self {
        Self {
            policy,
            ..Self::default()
        }
    }

    /// The order to verify tenants in: `_system` first.
    pub fn order(mut tenants: Vec<TenantId>) -> Vec<TenantId> {
        tenants.sort_by_key(|t| (!t.is_system(), t.as_str().to_owned()));
        tenants.dedup();
        tenants
    }

    /// A verifier for one tenant, already holding what `_system` recorded
    /// of it (when `_system` was verified before).
    pub fn tenant(&self, tenant: TenantId, keys: Vec<ScopedKey>) -> TenantVerifier {
        let mut v = TenantVerifier::with_keys(tenant, keys);
        if let Some(refs) = self.references.get(v.tenant()) {
            for r in refs {
                let source = format!("the checkpoint recorded in _system seq {}", r.system_seq);
                v.referenced_checkpoint(&r.note, &source);
            }
        }
        if let Some(records) = self.removals.get(v.tenant()) {
            for r in records {
                v.removal_recorded(r);
            }
        }
        v
    }

    /// Finishes one tenant; `_system`'s cross-references are kept for the
    /// tenants after it.
    pub fn finish(&mut self, verifier: TenantVerifier, size: u64) -> Report {
        if verifier.tenant().is_system() {
            self.system_verified = true;
            for r in verifier.references() {
                self.references
                    .entry(r.tenant.clone())
                    .or_default()
                    .push(r.clone());
            }
            for r in verifier.removal_records() {
                self.removals
                    .entry(r.tenant.clone())
                    .or_default()
                    .push(r.clone());
            }
        }
        verifier.finish(size, &self.policy)
    }

    /// Tenants `_system` recorded checkpoints for that the trail no longer
    /// has, among those the caller was asked to verify (`wanted`, or all
    /// when `None`).
    pub fn vanished(&self, present: &[TenantId], wanted: Option<&TenantId>) -> Vec<Report> {
        if !self.system_verified {
            return Vec::new();
        }
        self.references
            .iter()
            .filter(|(t, _)| !present.contains(t) && wanted.is_none_or(|w| w == *t))
            .map(|(tenant, refs)| {
                let last = refs.iter().max_by_key(|r| r.size);
                let message = match last {
                    Some(r) => format!(
                        "the tenant is gone, but _system seq {} records a checkpoint of {} entries",
                        r.system_seq, r.size
                    ),
                    None => "the tenant is gone".to_owned(),
                };
                Report {
                    tenant: tenant.clone(),
                    summary: crate::Summary::default(),
                    failures: vec![Failure::new(Where::Tenant, message)],
                    more_failures: 0,
                }
            })
            .collect()
    }
}
