//! The rule set and its TOML form. Every field is checked: an unknown
//! field, an empty action or a zero threshold is an error naming it, never
//! a default.

use serde::{Deserialize, Serialize};

/// The longest window a rule may count over: one day.
pub const MAX_WINDOW_SECS: u64 = 86_400;
/// The longest cool-down: one week.
pub const MAX_COOLDOWN_SECS: u64 = 7 * 86_400;
/// At most this many actions name what a rule counts.
pub const MAX_ACTIONS: usize = 100;

/// Which rule fired.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RuleKind {
    /// Failed logins (`outcome = failure` on a login-like action), counted
    /// per actor id, per client IP and per claimed username.
    FailedLogins,
    /// One actor, or one captured statement, deleting many records.
    MassDelete,
    /// A privilege change: a listed action, a captured update of a listed
    /// column, any change to a listed table.
    PrivilegeChanges,
    /// One actor exporting much.
    ExportVolume,
    /// A person acting outside the configured working hours.
    OffHours,
    /// A listed (privileged) actor acting from an IP it never used before.
    NewIp,
    /// Trailmark's own events (`_system`): keys, retention, holds,
    /// erasures, failed verifications, witness refusals, rule changes.
    TrailmarkEvents,
    /// PostgreSQL keeping more WAL for the capture slot (WAL mode) than
    /// allowed, or having lost WAL the slot needed: recorded in `_system`
    /// by the server watching the slot.
    CaptureWal,
    /// Changes waiting in the capture outbox (trigger mode) longer than
    /// allowed: recorded in `_system` by the server watching it.
    CaptureOutbox,
}

impl RuleKind {
    pub const ALL: [Self; 9] = [
        Self::FailedLogins,
        Self::MassDelete,
        Self::PrivilegeChanges,
        Self::ExportVolume,
        Self::OffHours,
        Self::NewIp,
        Self::TrailmarkEvents,
        Self::CaptureWal,
        Self::CaptureOutbox,
    ];

    /// Its name in the TOML and in alerts.
    pub fn name(self) -> &'static str {
        match self {
            Self::FailedLogins => "failed_logins",
            Self::MassDelete => "mass_delete",
            Self::PrivilegeChanges => "privilege_changes",
            Self::ExportVolume => "export_volume",
            Self::OffHours => "off_hours",
            Self::NewIp => "new_ip",
            Self::TrailmarkEvents => "trailmark_events",
            Self::CaptureWal => "capture_wal",
            Self::CaptureOutbox => "capture_outbox",
        }
    }
}

/// Whether an action is one of `listed`: it equals one, or ends with one
/// after a dot (`login` matches `auth.login`, not `blogin`). The one
/// matching rule of every rule's `actions`.
pub fn matches_action(listed: &[String], action: &str) -> bool {
    listed.iter().any(|a| {
        action == a
            || action
                .strip_suffix(a.as_str())
                .is_some_and(|head| head.ends_with('.'))
    })
}

/// A counting rule: fires when `threshold` matching events of one key
/// fall within `window_secs`; then not again for that key, nor for the
/// events of that burst under another key, for `cooldown_secs`.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    pub enabled: bool,
    /// Actions the rule counts ([`matches_action`]).
    pub actions: Vec<String>,
    pub threshold: u32,
    pub window_secs: u64,
    pub cooldown_secs: u64,
}

impl Rule {
    /// Whether an event's action is one this rule counts.
    pub fn counts(&self, action: &str) -> bool {
        matches_action(&self.actions, action)
    }

    /// `window_secs` in milliseconds (the unit of `received_at`).
    pub fn window_millis(&self) -> i64 {
        millis(self.window_secs)
    }

    /// `cooldown_secs` in milliseconds.
    pub fn cooldown_millis(&self) -> i64 {
        millis(self.cooldown_secs)
    }

    fn check(&self, name: &str) -> Result<(), String> {
        names(name, "actions", &self.actions, false)?;
        let field = |f: &str, m: String| Err(format!("{name}.{f}: {m}"));
        if self.threshold == 0 {
            return field("threshold", "must be at least 1".into());
        }
        if self.window_secs == 0 || self.window_secs > MAX_WINDOW_SECS {
            return field("window_secs", format!("must be 1 to {MAX_WINDOW_SECS}"));
        }
        cooldown(name, self.cooldown_secs)
    }
}

/// Checks a list of names: at most [`MAX_ACTIONS`], none empty or padded;
/// empty only when `may_be_empty`.
fn names(rule: &str, field: &str, list: &[String], may_be_empty: bool) -> Result<(), String> {
    if (!may_be_empty && list.is_empty()) || list.len() > MAX_ACTIONS {
        return Err(format!(
            "{rule}.{field}: give {} to {MAX_ACTIONS} names",
            usize::from(!may_be_empty)
        ));
    }
    if let Some(bad) = list
        .iter()
        .find(|a| a.trim().is_empty() || a.trim() != a.as_str())
    {
        return Err(format!(
            "{rule}.{field}: {bad:?} is empty or has spaces around it"
        ));
    }
    Ok(())
}

fn cooldown(rule: &str, secs: u64) -> Result<(), String> {
    if secs > MAX_COOLDOWN_SECS {
        return Err(format!(
            "{rule}.cooldown_secs: must be at most {MAX_COOLDOWN_SECS}"
        ));
    }
    Ok(())
}

fn millis(secs: u64) -> i64 {
    i64::try_from(secs.saturating_mul(1000)).unwrap_or(i64::MAX)
}

/// Privilege changes: each fires at once (one alert per actor per
/// cool-down).
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PrivilegeRule {
    pub enabled: bool,
    /// Actions that change privileges ([`matches_action`]).
    pub actions: Vec<String>,
    /// Columns whose change in a captured update is a privilege change.
    pub columns: Vec<String>,
    /// Resource types (captured tables: `schema.table`) any change to
    /// which is one (role and permission tables).
    pub resource_types: Vec<String>,
    pub cooldown_secs: u64,
}

/// Activity outside working hours: the first event of a person (actor
/// type `user`) outside them fires, then not again for that actor within
/// the cool-down.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct OffHoursRule {
    pub enabled: bool,
    /// Working hours start at this hour (0 to 23) …
    pub start_hour: u8,
    /// … and end at this one (1 to 24; smaller than `start_hour` for a
    /// night shift).
    pub end_hour: u8,
    /// Working days: `mon` … `sun`.
    pub weekdays: Vec<String>,
    /// The offset of the working hours' time zone from UTC, in minutes.
    pub utc_offset_minutes: i32,
    pub cooldown_secs: u64,
}

const WEEKDAYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

impl OffHoursRule {
    /// Whether an instant (Unix ms) is outside the working hours.
    pub fn outside(&self, at: i64) -> bool {
        let local = at + i64::from(self.utc_offset_minutes) * 60_000;
        let day = local.div_euclid(86_400_000);
        // 1970-01-01 was a Thursday.
        let weekday = WEEKDAYS[usize::try_from((day + 3).rem_euclid(7)).unwrap_or(0)];
        let hour = local.rem_euclid(86_400_000) / 3_600_000;
        let (start, end) = (i64::from(self.start_hour), i64::from(self.end_hour));
        let in_hours = if start < end {
            (start..end).contains(&hour)
        } else {
            hour >= start || hour < end
        };
        !(in_hours && self.weekdays.iter().any(|d| d == weekday))
    }

    fn check(&self) -> Result<(), String> {
        let name = RuleKind::OffHours.name();
        if self.start_hour > 23 {
            return Err(format!("{name}.start_hour: must be 0 to 23"));
        }
        if self.end_hour == 0 || self.end_hour > 24 || self.end_hour == self.start_hour {
            return Err(format!(
                "{name}.end_hour: must be 1 to 24 and not start_hour"
            ));
        }
        if self.weekdays.is_empty()
            || self.weekdays.len() > 7
            || self
                .weekdays
                .iter()
                .any(|d| !WEEKDAYS.contains(&d.as_str()))
        {
            return Err(format!(
                "{name}.weekdays: give 1 to 7 of {}",
                WEEKDAYS.join(", ")
            ));
        }
        if !(-840..=840).contains(&self.utc_offset_minutes) {
            return Err(format!("{name}.utc_offset_minutes: must be -840 to 840"));
        }
        cooldown(name, self.cooldown_secs)
    }
}

/// A listed actor acting from an IP the trail never saw it use.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NewIpRule {
    pub enabled: bool,
    /// The privileged actors' ids.
    pub actors: Vec<String>,
    pub cooldown_secs: u64,
}

/// Trailmark's own events, each an alert (one per action per cool-down).
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EventsRule {
    pub enabled: bool,
    /// `_system` actions that raise an alert.
    pub actions: Vec<String>,
    pub cooldown_secs: u64,
}

/// The `_system` action recorded when the capture slot retains more WAL
/// than [`CaptureWalRule::retained_bytes`].
pub const WAL_RETAINED: &str = "trailmark.capture.wal_retained";
/// The `_system` action recorded when PostgreSQL removed WAL the capture
/// slot still needed (`wal_status = lost`): changes were not captured.
pub const SLOT_LOST: &str = "trailmark.capture.slot_lost";

/// WAL-mode capture: a stalled or slow drainer makes PostgreSQL keep WAL
/// for the slot, and past `max_slot_wal_keep_size` it drops it (a capture
/// gap). Judged on each reading of the slot (every 10 s).
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CaptureWalRule {
    pub enabled: bool,
    /// Fires once the slot makes PostgreSQL keep more WAL than this.
    pub retained_bytes: u64,
    pub cooldown_secs: u64,
}

impl Default for CaptureWalRule {
    fn default() -> Self {
        Self {
            enabled: true,
            retained_bytes: 1 << 30,
            cooldown_secs: 3600,
        }
    }
}

impl CaptureWalRule {
    /// The `_system` action one reading of the slot calls for: a lost slot
    /// first, then too much WAL kept; `None` when all is well or the rule
    /// is off.
    pub fn judge(&self, retained_bytes: u64, wal_status: Option<&str>) -> Option<&'static str> {
        if !self.enabled {
            None
        } else if wal_status == Some("lost") {
            Some(SLOT_LOST)
        } else if retained_bytes > self.retained_bytes {
            Some(WAL_RETAINED)
        } else {
            None
        }
    }

    /// Whether a reading with nothing to report re-arms the rule: only once
    /// the slot keeps at most nine tenths of the bound, so a slot hovering
    /// at it is recorded once, not at every other reading.
    pub fn rearms(&self, retained_bytes: u64) -> bool {
        retained_bytes <= self.retained_bytes / 10 * 9
    }

    fn check(&self) -> Result<(), String> {
        let name = RuleKind::CaptureWal.name();
        if self.retained_bytes < 1 << 20 {
            return Err(format!(
                "{name}.retained_bytes: must be at least 1048576 (1 MiB)"
            ));
        }
        cooldown(name, self.cooldown_secs)
    }
}

/// The `_system` action recorded when the oldest change waiting in the
/// capture outbox is older than [`CaptureOutboxRule::oldest_seconds`].
pub const OUTBOX_BEHIND: &str = "trailmark.capture.outbox_behind";

/// Trigger-mode capture: a stalled or slow drainer leaves the captured
/// changes in the outbox, inside the application's database, where they
/// grow with every write. Judged on each reading of the outbox (every
/// 10 s) by the server whose drainer reads it.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CaptureOutboxRule {
    pub enabled: bool,
    /// Fires once the oldest waiting change is older than this (seconds;
    /// at least 10, the reading's interval).
    pub oldest_seconds: u64,
    pub cooldown_secs: u64,
}

impl Default for CaptureOutboxRule {
    fn default() -> Self {
        Self {
            enabled: true,
            oldest_seconds: 600,
            cooldown_secs: 3600,
        }
    }
}

impl CaptureOutboxRule {
    /// The `_system` action one reading of the outbox calls for (the age
    /// of its oldest change, `None` when it is empty); `None` when all is
    /// well or the rule is off.
    #[allow(clippy::cast_precision_loss)] // seconds: exact far past any bound given
    pub fn judge(&self, oldest_seconds: Option<f64>) -> Option<&'static str> {
        let behind = oldest_seconds.is_some_and(|s| s > self.oldest_seconds as f64);
        (self.enabled && behind).then_some(OUTBOX_BEHIND)
    }

    /// Whether a reading with nothing to report re-arms the rule: only once
    /// the oldest change is at most nine tenths of the bound old (or none
    /// waits), so an outbox hovering at it is recorded once.
    #[allow(clippy::cast_precision_loss)] // as in `judge`
    pub fn rearms(&self, oldest_seconds: Option<f64>) -> bool {
        oldest_seconds.is_none_or(|s| s <= self.oldest_seconds as f64 * 0.9)
    }

    fn check(&self) -> Result<(), String> {
        let name = RuleKind::CaptureOutbox.name();
        if self.oldest_seconds < 10 {
            return Err(format!(
                "{name}.oldest_seconds: must be at least 10 (the outbox is read every 10 s)"
            ));
        }
        cooldown(name, self.cooldown_secs)
    }
}

/// Every rule. Each is always given whole (docs/ALERTS.md), except
/// `capture_wal` and `capture_outbox`, added later: a rule set stored
/// before them has their defaults.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Rules {
    pub failed_logins: Rule,
    pub mass_delete: Rule,
    pub privilege_changes: PrivilegeRule,
    pub export_volume: Rule,
    pub off_hours: OffHoursRule,
    pub new_ip: NewIpRule,
    pub trailmark_events: EventsRule,
    #[serde(default)]
    pub capture_wal: CaptureWalRule,
    #[serde(default)]
    pub capture_outbox: CaptureOutboxRule,
}

fn strings(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| (*s).to_owned()).collect()
}

impl Default for Rules {
    fn default() -> Self {
        Self {
            failed_logins: Rule {
                enabled: true,
                actions: strings(&["login", "signin", "sign_in"]),
                threshold: 10,
                window_secs: 60,
                cooldown_secs: 900,
            },
            mass_delete: Rule {
                enabled: true,
                actions: strings(&["delete", "destroy"]),
                threshold: 100,
                window_secs: 60,
                cooldown_secs: 900,
            },
            privilege_changes: PrivilegeRule {
                enabled: true,
                actions: strings(&["grant", "revoke", "promote", "demote"]),
                columns: strings(&["is_superuser", "is_staff", "is_admin", "role", "roles"]),
                resource_types: strings(&[
                    "public.auth_user_groups",
                    "public.auth_user_user_permissions",
                    "public.auth_group_permissions",
                ]),
                cooldown_secs: 300,
            },
            export_volume: Rule {
                enabled: true,
                actions: strings(&["export", "download"]),
                threshold: 20,
                window_secs: 3600,
                cooldown_secs: 3600,
            },
            off_hours: OffHoursRule {
                enabled: false,
                start_hour: 8,
                end_hour: 19,
                weekdays: strings(&["mon", "tue", "wed", "thu", "fri"]),
                utc_offset_minutes: 0,
                cooldown_secs: 3600,
            },
            new_ip: NewIpRule {
                enabled: false,
                actors: Vec::new(),
                cooldown_secs: 86_400,
            },
            trailmark_events: EventsRule {
                enabled: true,
                actions: strings(&[
                    "admin.key.create",
                    "admin.key.revoke",
                    "admin.signing_key.rotate",
                    "admin.retention.set",
                    "admin.retention.remove",
                    "admin.hold.place",
                    "admin.hold.release",
                    "trailmark.erasure",
                    "trailmark.verification.failed",
                    "trailmark.witness_refused",
                    "trailmark.alert_rules.changed",
                    "trailmark.webhooks.changed",
                ]),
                cooldown_secs: 0,
            },
            capture_wal: CaptureWalRule::default(),
            capture_outbox: CaptureOutboxRule::default(),
        }
    }
}

/// What the rules look at in one event (from an event being appended, or
/// from one read back from the trail).
#[allow(missing_debug_implementations)] // holds a closure
#[derive(Clone, Copy)]
pub struct View<'a> {
    pub action: &'a str,
    pub failed: bool,
    pub actor: &'a str,
    pub actor_type: &'a str,
    pub resource_type: Option<&'a str>,
    /// Whether one of these columns changed.
    pub changed: &'a dyn Fn(&[String]) -> bool,
    /// When Trailmark received it (Unix ms).
    pub at: i64,
    /// An entry of `_system`.
    pub system: bool,
    pub has_ip: bool,
}

/// Whether an action is an update (what a captured `UPDATE` is recorded as).
fn is_update(action: &str) -> bool {
    action == "update" || action.ends_with(".update")
}

impl Rules {
    /// Reads a rule set from TOML: every rule, every field (a partial file
    /// would leave a rule to a default the writer did not see).
    pub fn from_toml(text: &str) -> Result<Self, String> {
        let rules: Self = toml::from_str(text).map_err(|e| e.to_string())?;
        rules.check()?;
        Ok(rules)
    }

    /// Reads a rule set from JSON (the API's form, and how it is stored):
    /// the same fields and checks as [`Self::from_toml`].
    pub fn from_json(value: serde_json::Value) -> Result<Self, String> {
        let rules: Self = serde_json::from_value(value).map_err(|e| e.to_string())?;
        rules.check()?;
        Ok(rules)
    }

    pub fn check(&self) -> Result<(), String> {
        self.failed_logins.check(RuleKind::FailedLogins.name())?;
        self.mass_delete.check(RuleKind::MassDelete.name())?;
        self.export_volume.check(RuleKind::ExportVolume.name())?;
        let p = &self.privilege_changes;
        let name = RuleKind::PrivilegeChanges.name();
        names(name, "actions", &p.actions, true)?;
        names(name, "columns", &p.columns, true)?;
        names(name, "resource_types", &p.resource_types, true)?;
        if p.enabled && p.actions.is_empty() && p.columns.is_empty() && p.resource_types.is_empty()
        {
            return Err(format!(
                "{name}.actions: give actions, columns or resource_types, or set enabled = false"
            ));
        }
        cooldown(name, p.cooldown_secs)?;
        self.off_hours.check()?;
        let n = &self.new_ip;
        names(RuleKind::NewIp.name(), "actors", &n.actors, !n.enabled)?;
        cooldown(RuleKind::NewIp.name(), n.cooldown_secs)?;
        let t = &self.trailmark_events;
        names(
            RuleKind::TrailmarkEvents.name(),
            "actions",
            &t.actions,
            !t.enabled,
        )?;
        cooldown(RuleKind::TrailmarkEvents.name(), t.cooldown_secs)?;
        self.capture_wal.check()?;
        self.capture_outbox.check()
    }

    /// The (enabled) rules that count an event. Ingest asks it which
    /// events to offer, the detector which windows to count them in: one
    /// answer for both. `changed` and `has_ip` (read from the payload) only
    /// ever add rules: the start-up rebuild asks with both taken as true,
    /// from an entry's envelope alone, to skip parsing the payloads of
    /// entries no rule can count ([`Self::might_count`]).
    pub fn kinds(&self, v: &View<'_>) -> Vec<RuleKind> {
        let mut out = Vec::new();
        if v.system {
            // Alerts and their deliveries are never counted: an alert about
            // an alert would raise another without end.
            if v.action.starts_with("trailmark.alert.") {
                return out;
            }
            if self.capture_wal.enabled && [WAL_RETAINED, SLOT_LOST].contains(&v.action) {
                out.push(RuleKind::CaptureWal);
            }
            if self.capture_outbox.enabled && v.action == OUTBOX_BEHIND {
                out.push(RuleKind::CaptureOutbox);
            }
            let own = &self.trailmark_events;
            if own.enabled && matches_action(&own.actions, v.action) {
                out.push(RuleKind::TrailmarkEvents);
            }
            return out;
        }
        let logins = &self.failed_logins;
        if logins.enabled && v.failed && logins.counts(v.action) {
            out.push(RuleKind::FailedLogins);
        }
        let deletes = &self.mass_delete;
        if deletes.enabled && !v.failed && deletes.counts(v.action) {
            out.push(RuleKind::MassDelete);
        }
        let p = &self.privilege_changes;
        if p.enabled
            && !v.failed
            && (matches_action(&p.actions, v.action)
                || v.resource_type
                    .is_some_and(|t| p.resource_types.iter().any(|r| r == t))
                || (is_update(v.action) && !p.columns.is_empty() && (v.changed)(&p.columns)))
        {
            out.push(RuleKind::PrivilegeChanges);
        }
        let exports = &self.export_volume;
        if exports.enabled && !v.failed && exports.counts(v.action) {
            out.push(RuleKind::ExportVolume);
        }
        let hours = &self.off_hours;
        if hours.enabled && v.actor_type == "user" && hours.outside(v.at) {
            out.push(RuleKind::OffHours);
        }
        let new_ip = &self.new_ip;
        if new_ip.enabled && v.has_ip && new_ip.actors.iter().any(|a| a == v.actor) {
            out.push(RuleKind::NewIp);
        }
        out
    }

    /// Whether any rule could count an event that `v` describes, whatever
    /// its payload says (`v.changed` and `v.has_ip` are not asked).
    pub fn might_count(&self, v: &View<'_>) -> bool {
        let any = |_: &[String]| true;
        !self
            .kinds(&View {
                changed: &any,
                has_ip: true,
                ..*v
            })
            .is_empty()
    }

    /// A rule's count, window and cool-down: what it fires on. The rules
    /// that fire on every matching event count one in a second.
    pub fn window(&self, kind: RuleKind) -> (u32, i64, i64) {
        let one = |cooldown: u64| (1, 1000, millis(cooldown));
        match kind {
            RuleKind::FailedLogins => counting(&self.failed_logins),
            RuleKind::MassDelete => counting(&self.mass_delete),
            RuleKind::ExportVolume => counting(&self.export_volume),
            RuleKind::PrivilegeChanges => one(self.privilege_changes.cooldown_secs),
            RuleKind::OffHours => one(self.off_hours.cooldown_secs),
            RuleKind::NewIp => one(self.new_ip.cooldown_secs),
            RuleKind::TrailmarkEvents => one(self.trailmark_events.cooldown_secs),
            RuleKind::CaptureWal => one(self.capture_wal.cooldown_secs),
            RuleKind::CaptureOutbox => one(self.capture_outbox.cooldown_secs),
        }
    }

    /// The longest window of an enabled rule (what a restart reads back).
    pub fn longest_window_millis(&self) -> Option<i64> {
        RuleKind::ALL
            .iter()
            .filter(|k| self.enabled(**k))
            .map(|k| self.window(*k).1)
            .max()
    }

    /// The longest cool-down of any rule.
    pub fn longest_cooldown_millis(&self) -> i64 {
        RuleKind::ALL
            .iter()
            .map(|k| self.window(*k).2)
            .max()
            .unwrap_or(0)
    }

    pub fn enabled(&self, kind: RuleKind) -> bool {
        match kind {
            RuleKind::FailedLogins => self.failed_logins.enabled,
            RuleKind::MassDelete => self.mass_delete.enabled,
            RuleKind::ExportVolume => self.export_volume.enabled,
            RuleKind::PrivilegeChanges => self.privilege_changes.enabled,
            RuleKind::OffHours => self.off_hours.enabled,
            RuleKind::NewIp => self.new_ip.enabled,
            RuleKind::TrailmarkEvents => self.trailmark_events.enabled,
            RuleKind::CaptureWal => self.capture_wal.enabled,
            RuleKind::CaptureOutbox => self.capture_outbox.enabled,
        }
    }

    /// The rule set as TOML (what `from_toml` reads back).
    pub fn to_toml(&self) -> String {
        toml::to_string(self).unwrap_or_else(|e| format!("# the rules could not be written: {e}\n"))
    }
}

fn counting(rule: &Rule) -> (u32, i64, i64) {
    (rule.threshold, rule.window_millis(), rule.cooldown_millis())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_defaults_read_back_from_their_toml() {
        let rules = Rules::default();
        assert_eq!(Rules::from_toml(&rules.to_toml()).unwrap(), rules);
    }

    #[test]
    fn a_login_like_action_matches_by_name_or_after_a_dot() {
        let rule = Rules::default().failed_logins;
        assert!(rule.counts("login"));
        assert!(rule.counts("auth.login"));
        assert!(!rule.counts("blogin"));
        assert!(!rule.counts("login.page"));
    }

    #[test]
    fn bad_rules_are_refused_naming_the_field() {
        let base = Rules::default().to_toml();
        let cases = [
            (
                base.replacen("threshold = 10", "threshold = 0", 1),
                "failed_logins.threshold",
            ),
            (
                base.replace(
                    "window_secs = 60\ncooldown_secs = 900\n\n[mass_delete]",
                    "window_secs = 0\ncooldown_secs = 900\n\n[mass_delete]",
                ),
                "failed_logins.window_secs",
            ),
            (
                base.replace("actions = [\"delete\", \"destroy\"]", "actions = []"),
                "mass_delete.actions",
            ),
            (
                base.replace(
                    "actions = [\"delete\", \"destroy\"]",
                    "actions = [\" delete\"]",
                ),
                "mass_delete.actions",
            ),
            (
                base.replace("enabled = true", "enabled = true\nthreshhold = 3"),
                "threshhold",
            ),
            (
                base.replace("[mass_delete]", "[mass_deletes]"),
                "mass_deletes",
            ),
            (
                base.replace("cooldown_secs = 900\n\n[mass_delete]", "\n[mass_delete]"),
                "cooldown_secs",
            ),
            (
                base.replace("retained_bytes = 1073741824", "retained_bytes = 4096"),
                "capture_wal.retained_bytes",
            ),
            (
                base.replace(
                    "retained_bytes = 1073741824",
                    "retained_bytes = 1073741824\nbytes = 1",
                ),
                "bytes",
            ),
        ];
        for (text, field) in cases {
            let err = Rules::from_toml(&text).unwrap_err();
            assert!(err.contains(field), "{field}: {err}");
        }
    }

    #[test]
    fn a_rule_set_stored_before_capture_wal_reads_with_its_defaults() {
        let mut old = serde_json::to_value(Rules::default()).unwrap();
        old.as_object_mut().unwrap().remove("capture_wal").unwrap();
        let rules = Rules::from_json(old).unwrap();
        assert_eq!(rules.capture_wal, CaptureWalRule::default());
        // Given, it is given whole.
        let mut partial = serde_json::to_value(Rules::default()).unwrap();
        partial["capture_wal"]
            .as_object_mut()
            .unwrap()
            .remove("cooldown_secs");
        let err = Rules::from_json(partial).unwrap_err();
        assert!(err.contains("cooldown_secs"), "{err}");
    }

    #[test]
    fn the_slot_is_judged_lost_first_then_by_the_wal_it_keeps() {
        let rule = CaptureWalRule {
            enabled: true,
            retained_bytes: 1 << 20,
            cooldown_secs: 0,
        };
        assert_eq!(rule.judge(1 << 20, Some("reserved")), None);
        assert_eq!(
            rule.judge((1 << 20) + 1, Some("extended")),
            Some(WAL_RETAINED)
        );
        assert_eq!(rule.judge(0, Some("lost")), Some(SLOT_LOST));
        assert_eq!(rule.judge(1 << 30, Some("lost")), Some(SLOT_LOST));
        assert_eq!(rule.judge(1 << 30, None), Some(WAL_RETAINED));
        // Re-armed only well below the bound.
        assert!(!rule.rearms(1 << 20));
        assert!(!rule.rearms((1 << 20) / 10 * 9 + 1));
        assert!(rule.rearms((1 << 20) / 10 * 9));
        let off = CaptureWalRule {
            enabled: false,
            ..rule
        };
        assert_eq!(off.judge(1 << 30, Some("lost")), None);
    }

    /// What the rebuild's pre-filter relies on: an event's changed columns
    /// and IP can add rules to those that count it, never take one away.
    #[test]
    fn the_payloads_columns_and_ip_only_ever_add_rules() {
        let mut rules = Rules::default();
        rules.new_ip.enabled = true;
        rules.new_ip.actors = vec!["root".into()];
        rules.privilege_changes.columns = vec!["is_staff".into()];
        let (none, all) = (|_: &[String]| false, |_: &[String]| true);
        let mut counted = 0;
        for action in [
            "update",
            "delete",
            "login",
            "export",
            "grant_role",
            "create",
        ] {
            for failed in [false, true] {
                for (actor, actor_type) in [("root", "user"), ("u1", "service")] {
                    for resource_type in [None, Some("Invoice"), Some("Role")] {
                        for at in [0, 3 * 3_600_000, 12 * 3_600_000] {
                            for system in [false, true] {
                                let bare = View {
                                    action,
                                    failed,
                                    actor,
                                    actor_type,
                                    resource_type,
                                    changed: &none,
                                    at,
                                    system,
                                    has_ip: false,
                                };
                                let full = View {
                                    changed: &all,
                                    has_ip: true,
                                    ..bare
                                };
                                let (few, many) = (rules.kinds(&bare), rules.kinds(&full));
                                assert!(few.iter().all(|k| many.contains(k)), "{few:?} {many:?}");
                                assert_eq!(rules.might_count(&bare), !many.is_empty());
                                counted += usize::from(!many.is_empty());
                            }
                        }
                    }
                }
            }
        }
        assert!(counted > 0);
    }

    #[test]
    fn only_the_capture_actions_of_system_count_for_capture_wal() {
        let rules = Rules::default();
        let never = |_: &[String]| false;
        let view = |action: &'static str, system: bool| View {
            action,
            failed: false,
            actor: "trailmark",
            actor_type: "service",
            resource_type: None,
            changed: &never,
            at: 0,
            system,
            has_ip: false,
        };
        assert_eq!(
            rules.kinds(&view(WAL_RETAINED, true)),
            [RuleKind::CaptureWal]
        );
        assert_eq!(rules.kinds(&view(SLOT_LOST, true)), [RuleKind::CaptureWal]);
        assert!(rules.kinds(&view(WAL_RETAINED, false)).is_empty());
        assert!(
            rules
                .kinds(&view("trailmark.capture.paused", true))
                .is_empty()
        );
        let mut off = Rules::default();
        off.capture_wal.enabled = false;
        assert!(off.kinds(&view(SLOT_LOST, true)).is_empty());
        assert_eq!(
            rules.kinds(&view(OUTBOX_BEHIND, true)),
            [RuleKind::CaptureOutbox]
        );
        assert!(rules.kinds(&view(OUTBOX_BEHIND, false)).is_empty());
        off.capture_outbox.enabled = false;
        assert!(off.kinds(&view(OUTBOX_BEHIND, true)).is_empty());
    }

    #[test]
    fn the_outbox_is_judged_by_the_age_of_its_oldest_change() {
        let rule = CaptureOutboxRule {
            enabled: true,
            oldest_seconds: 60,
            cooldown_secs: 0,
        };
        assert_eq!(rule.judge(None), None, "an empty outbox");
        assert_eq!(rule.judge(Some(60.0)), None);
        assert_eq!(rule.judge(Some(60.5)), Some(OUTBOX_BEHIND));
        // Re-armed only well below the bound, or once it is empty.
        assert!(!rule.rearms(Some(55.0)));
        assert!(rule.rearms(Some(54.0)));
        assert!(rule.rearms(None));
        let off = CaptureOutboxRule {
            enabled: false,
            ..rule.clone()
        };
        assert_eq!(off.judge(Some(1e9)), None);
        let mut rules = Rules::default();
        rules.capture_outbox.oldest_seconds = 9;
        let err = Rules::from_json(serde_json::to_value(&rules).unwrap()).unwrap_err();
        assert!(err.contains("capture_outbox.oldest_seconds"), "{err}");
        // A rule set stored before it reads with its defaults.
        let mut old = serde_json::to_value(Rules::default()).unwrap();
        old.as_object_mut()
            .unwrap()
            .remove("capture_outbox")
            .unwrap();
        let rules = Rules::from_json(old).unwrap();
        assert_eq!(rules.capture_outbox, CaptureOutboxRule::default());
    }
}
