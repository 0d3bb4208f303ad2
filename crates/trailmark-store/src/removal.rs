//! What retention and erasure work with: policies, legal holds, and the
//! entries a removal walks. The rules (what a hold covers, what a policy
//! selects, when an entry is old enough) live here, once, for both stores
//! and the server.

use trailmark_core::{Envelope, TenantId, Timestamp};

use crate::StoreError;

/// What a retention policy applies to within its tenant.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Target {
    /// Every entry of the tenant.
    All,
    /// Entries whose envelope `resource_type` is this.
    ResourceType(String),
    /// Entries whose envelope `action` is this.
    Action(String),
}

impl Target {
    /// The stored form: (kind, value).
    pub fn to_parts(&self) -> (&'static str, &str) {
        match self {
            Self::All => ("all", ""),
            Self::ResourceType(t) => ("resource_type", t),
            Self::Action(a) => ("action", a),
        }
    }

    /// Reads the stored form back.
    pub fn from_parts(kind: &str, value: &str) -> Option<Self> {
        match kind {
            "all" if value.is_empty() => Some(Self::All),
            "resource_type" if !value.is_empty() => Some(Self::ResourceType(value.to_owned())),
            "action" if !value.is_empty() => Some(Self::Action(value.to_owned())),
            _ => None,
        }
    }

    /// Whether an entry is one this target names.
    pub fn covers(&self, envelope: &Envelope) -> bool {
        match self {
            Self::All => true,
            Self::ResourceType(t) => envelope.resource_type.as_deref() == Some(t.as_str()),
            Self::Action(a) => envelope.action == *a,
        }
    }

    /// How people read it: `all`, `resource_type=Invoice`, `action=login`.
    pub fn label(&self) -> String {
        match self {
            Self::All => "all".to_owned(),
            Self::ResourceType(t) => format!("resource_type={t}"),
            Self::Action(a) => format!("action={a}"),
        }
    }
}

/// Payloads of a tenant's entries of one target expire `max_age_days`
/// after they were received.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RetentionPolicy {
    pub tenant: TenantId,
    pub target: Target,
    pub max_age_days: u32,
    pub updated_at: Timestamp,
}

const DAY_MILLIS: i64 = 86_400_000;

impl RetentionPolicy {
    /// Entries received before this instant have outlived the policy.
    ///
    /// Age is counted from `received_at`, the time Trailmark stored the
    /// entry, never from `occurred_at`, which the producer chooses: a
    /// producer cannot make an event expire early by backdating it.
    pub fn cutoff(&self, now: Timestamp) -> Timestamp {
        let millis = now
            .unix_millis()
            .saturating_sub(i64::from(self.max_age_days).saturating_mul(DAY_MILLIS));
        Timestamp::from_unix_millis(millis).unwrap_or(now)
    }

    /// Whether this policy expires this entry at `now`.
    pub fn expires(&self, envelope: &Envelope, now: Timestamp) -> bool {
        envelope.tenant == self.tenant
            && self.target.covers(envelope)
            && envelope.received_at < self.cutoff(now)
    }
}

/// A stored time, read back; out of range is a row that cannot be read.
fn stored_time(what: &str, millis: i64) -> Result<Timestamp, StoreError> {
    Timestamp::from_unix_millis(millis)
        .ok_or_else(|| StoreError::Unreadable(format!("{what}: time {millis} is out of range")))
}

fn stored_tenant(what: &str, name: &str) -> Result<TenantId, StoreError> {
    TenantId::from_stored(name)
        .map_err(|m| StoreError::Unreadable(format!("{what}: tenant name {name:?}: {m}")))
}

impl RetentionPolicy {
    /// A policy from the columns both stores keep it in.
    pub fn from_stored(
        tenant: &str,
        target_kind: &str,
        target_value: &str,
        max_age_days: i64,
        updated_at: i64,
    ) -> Result<Self, StoreError> {
        let what = "a retention policy";
        Ok(Self {
            tenant: stored_tenant(what, tenant)?,
            target: Target::from_parts(target_kind, target_value).ok_or_else(|| {
                StoreError::Unreadable(format!(
                    "{what}: target {target_kind}={target_value} is invalid"
                ))
            })?,
            max_age_days: u32::try_from(max_age_days).map_err(|_| {
                StoreError::Unreadable(format!("{what}: age {max_age_days} is invalid"))
            })?,
            updated_at: stored_time(what, updated_at)?,
        })
    }
}

/// A hold as both stores keep it, column by column.
#[derive(Clone, Debug)]
pub struct StoredHold {
    pub id: String,
    pub tenant: String,
    pub scope_kind: String,
    pub scope_value: String,
    pub reason: String,
    pub placed_by: String,
    pub placed_at: i64,
    pub released_at: Option<i64>,
}

impl TryFrom<StoredHold> for Hold {
    type Error = StoreError;

    fn try_from(row: StoredHold) -> Result<Self, StoreError> {
        let what = format!("hold {}", row.id);
        Ok(Self {
            scope: HoldScope::from_parts(&row.scope_kind, &row.scope_value).ok_or_else(|| {
                StoreError::Unreadable(format!(
                    "{what}: scope {}={} is invalid",
                    row.scope_kind, row.scope_value
                ))
            })?,
            tenant: stored_tenant(&what, &row.tenant)?,
            placed_at: stored_time(&what, row.placed_at)?,
            released_at: row.released_at.map(|t| stored_time(&what, t)).transpose()?,
            id: row.id,
            reason: row.reason,
            placed_by: row.placed_by,
        })
    }
}

/// What a legal hold covers within its tenant.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum HoldScope {
    /// Every entry of the tenant.
    All,
    /// Entries whose envelope `actor_id` is this.
    Actor(String),
    /// Entries of one record (envelope `resource_type` and `resource_id`).
    Resource { kind: String, id: String },
}

impl HoldScope {
    /// The stored form: (kind, value); a resource is `TYPE:ID`, split at
    /// the first colon.
    pub fn to_parts(&self) -> (&'static str, String) {
        match self {
            Self::All => ("all", String::new()),
            Self::Actor(a) => ("actor", a.clone()),
            Self::Resource { kind, id } => ("resource", format!("{kind}:{id}")),
        }
    }

    pub fn from_parts(kind: &str, value: &str) -> Option<Self> {
        match kind {
            "all" if value.is_empty() => Some(Self::All),
            "actor" if !value.is_empty() => Some(Self::Actor(value.to_owned())),
            "resource" => {
                let (kind, id) = value.split_once(':')?;
                (!kind.is_empty() && !id.is_empty()).then(|| Self::Resource {
                    kind: kind.to_owned(),
                    id: id.to_owned(),
                })
            }
            _ => None,
        }
    }

    pub fn covers(&self, envelope: &Envelope) -> bool {
        match self {
            Self::All => true,
            Self::Actor(a) => envelope.actor_id == *a,
            Self::Resource { kind, id } => {
                envelope.resource_type.as_deref() == Some(kind.as_str())
                    && envelope.resource_id.as_deref() == Some(id.as_str())
            }
        }
    }

    /// How people read it: `all`, `actor=u-17`, `resource=Invoice:42`.
    pub fn label(&self) -> String {
        let (kind, value) = self.to_parts();
        if value.is_empty() {
            kind.to_owned()
        } else {
            format!("{kind}={value}")
        }
    }
}

/// A legal hold: while it is in force, no entry it covers is expired or
/// erased.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Hold {
    /// `hold_` and 12 hex digits.
    pub id: String,
    pub tenant: TenantId,
    pub scope: HoldScope,
    pub reason: String,
    /// The key that placed it.
    pub placed_by: String,
    pub placed_at: Timestamp,
    pub released_at: Option<Timestamp>,
}

impl Hold {
    pub fn in_force(&self) -> bool {
        self.released_at.is_none()
    }

    /// Whether this hold, if in force, keeps this entry.
    pub fn covers(&self, envelope: &Envelope) -> bool {
        self.in_force() && envelope.tenant == self.tenant && self.scope.covers(envelope)
    }
}

/// Which entries of one tenant a removal walks, by the index that finds
/// them: one actor's, one record's, or all of them (a retention run, whose
/// policy and age the caller applies to each envelope).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Walk {
    All,
    Actor(String),
    Resource { kind: String, id: String },
}

/// One entry a removal walk passed.
#[derive(Clone, Debug)]
pub struct Walked {
    pub envelope: Envelope,
    /// Whether its payload is still stored.
    pub present: bool,
    /// Bytes of payload, salt and the columns derived from them.
    pub bytes: u64,
}

/// A page of a removal walk, in seq order.
#[derive(Clone, Debug, Default)]
pub struct WalkPage {
    pub entries: Vec<Walked>,
    /// Where to go on (opaque), `None` at the end of the walk.
    pub next: Option<u64>,
}

/// The policy that governs an entry among a tenant's policies: a policy of
/// its resource type or action overrides the tenant's `all` policy; when
/// both a resource type and an action policy match, the longer age wins
/// (a conflict keeps data longer, never removes it sooner).
pub fn governing<'a>(
    policies: &'a [RetentionPolicy],
    envelope: &Envelope,
) -> Option<&'a RetentionPolicy> {
    let mine = policies
        .iter()
        .filter(|p| p.tenant == envelope.tenant && p.target.covers(envelope));
    let specific = mine
        .clone()
        .filter(|p| p.target != Target::All)
        .max_by_key(|p| p.max_age_days);
    specific.or_else(|| mine.into_iter().find(|p| p.target == Target::All))
}

/// Held while a removal, a hold or a policy change runs: no other one
/// runs on the same ledger until it is dropped. A store shared by several
/// servers holds what makes the others wait (PostgreSQL: a session-level
/// advisory lock on a connection of its own, closed on drop, so a server
/// that dies releases it too); a store only one process opens holds
/// nothing, its server's own lock being enough.
pub struct RemovalLock(Option<Box<dyn Send + Sync>>);

impl RemovalLock {
    /// Nothing to hold beyond the server's own lock.
    pub fn local() -> Self {
        Self(None)
    }

    /// Holds `held` until dropped.
    pub fn holding(held: impl Send + Sync + 'static) -> Self {
        Self(Some(Box::new(held)))
    }
}

impl std::fmt::Debug for RemovalLock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("RemovalLock")
            .field(&self.0.as_ref().map(|_| "held"))
            .finish()
    }
}
