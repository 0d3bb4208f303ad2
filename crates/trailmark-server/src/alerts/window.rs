//! Sliding windows: per rule, tenant and key, the matching events of the
//! last `window_secs`; a rule fires when one key holds `threshold` of them.
//! One burst raises one alert: after a firing, neither that key nor any key
//! counting one of the burst's events fires again within the cool-down
//! (20 failed logins of one username from one IP are one alert, not one
//! per actor, IP and username).

use std::collections::{HashMap, HashSet, VecDeque};

use super::rules::{RuleKind, Rules, View};

/// At most this many windows are kept (rule × tenant × key); past it, the
/// windows whose events have all left their span go first, then the ones
/// idle longest. About 200 bytes each plus their events' ids.
pub const MAX_WINDOWS: usize = 100_000;

/// What one appended event tells the rules.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fact {
    pub tenant: String,
    pub event_id: String,
    /// When Trailmark received it (Unix milliseconds): windows follow the
    /// trail's clock, not the producer's.
    pub at: i64,
    pub actor: String,
    pub action: String,
    pub failed: bool,
    pub ip: Option<String>,
    /// The username a login claimed (the actor's name), when it gave one.
    pub username: Option<String>,
    /// The resource type (a captured row's table).
    pub resource_type: Option<String>,
    /// The database statement a captured row came from (`txid:statement`).
    pub statement: Option<String>,
    /// `user`, `service`, `system`, `anonymous` or `unknown`.
    pub actor_type: String,
    /// The columns an update changed (kept only when a rule looks at
    /// columns).
    pub columns: Vec<String>,
    /// An entry of `_system` (Trailmark's own).
    pub system: bool,
}

impl Fact {
    /// The rules that count it.
    pub fn kinds(&self, rules: &Rules) -> Vec<RuleKind> {
        let changed = |wanted: &[String]| self.columns.iter().any(|c| wanted.contains(c));
        rules.kinds(&View {
            action: &self.action,
            failed: self.failed,
            actor: &self.actor,
            actor_type: &self.actor_type,
            resource_type: self.resource_type.as_deref(),
            changed: &changed,
            at: self.at,
            system: self.system,
            has_ip: self.ip.is_some(),
        })
    }
}

/// A rule that fired: which, for which key, and the events of the burst.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Firing {
    pub rule: RuleKind,
    pub tenant: String,
    /// What the events shared: `actor=…`, `ip=…`, `username=…` or
    /// `statement=…`.
    pub key: String,
    /// The actor of the event that made it fire.
    pub actor: String,
    /// The resource types of the burst's events (at most
    /// [`MAX_RESOURCE_TYPES`]).
    pub resource_types: Vec<String>,
    /// The events in the window when it fired, oldest first.
    pub events: Vec<String>,
    pub first_at: i64,
    pub last_at: i64,
}

/// At most this many resource types are named in one firing.
pub const MAX_RESOURCE_TYPES: usize = 10;

#[derive(Debug, Default)]
struct Window {
    /// When, which event, of which resource type.
    events: VecDeque<(i64, String, Option<String>)>,
    quiet_until: i64,
}

/// The rules' windows. Feed it every appended event, in order.
#[derive(Debug)]
pub struct Detector {
    rules: Rules,
    windows: HashMap<(RuleKind, String, String), Window>,
    /// Per rule and tenant: the events of bursts still in their cool-down.
    alerted: HashMap<(RuleKind, String), (i64, HashSet<String>)>,
}

impl Detector {
    pub fn new(rules: Rules) -> Self {
        Self {
            rules,
            windows: HashMap::new(),
            alerted: HashMap::new(),
        }
    }

    pub fn rules(&self) -> &Rules {
        &self.rules
    }

    /// Counts by these rules from now on (the windows kept stay).
    pub fn set_rules(&mut self, rules: Rules) {
        self.rules = rules;
    }

    /// How many windows are kept now.
    pub fn windows(&self) -> usize {
        self.windows.len()
    }

    /// Counts one event; what fires because of it. A new IP
    /// ([`RuleKind::NewIp`]) is judged by the caller, which asks the trail
    /// ([`Self::new_ip`]).
    pub fn observe(&mut self, fact: &Fact) -> Vec<Firing> {
        let mut out = Vec::new();
        for kind in fact.kinds(&self.rules) {
            let mut keys = Vec::new();
            match kind {
                RuleKind::NewIp => continue,
                RuleKind::TrailmarkEvents | RuleKind::CaptureWal | RuleKind::CaptureOutbox => {
                    keys.push(format!("action={}", fact.action));
                }
                RuleKind::MassDelete => {
                    if let Some(statement) = &fact.statement {
                        // One statement deleting many rows: named first, so
                        // the alert says which (the actor's window counts it
                        // too).
                        keys.push(format!("statement={statement}"));
                    }
                    keys.push(format!("actor={}", fact.actor));
                }
                RuleKind::FailedLogins => {
                    keys.push(format!("actor={}", fact.actor));
                    keys.extend(fact.ip.as_ref().map(|ip| format!("ip={ip}")));
                    keys.extend(fact.username.as_ref().map(|u| format!("username={u}")));
                }
                RuleKind::PrivilegeChanges | RuleKind::ExportVolume | RuleKind::OffHours => {
                    keys.push(format!("actor={}", fact.actor));
                }
            }
            out.extend(
                keys.into_iter()
                    .filter_map(|key| self.count(kind, fact, key)),
            );
        }
        out
    }

    /// A listed actor's event from an IP the trail holds no other event of
    /// it from: fires unless that actor and IP fired within the cool-down.
    pub fn new_ip(&mut self, fact: &Fact) -> Option<Firing> {
        let ip = fact.ip.as_ref()?;
        let key = format!("actor={} ip={ip}", fact.actor);
        self.count(RuleKind::NewIp, fact, key)
    }

    fn count(&mut self, kind: RuleKind, fact: &Fact, key: String) -> Option<Firing> {
        let (threshold, span, cooldown) = self.rules.window(kind);
        let id = (kind, fact.tenant.clone(), key);
        if !self.windows.contains_key(&id) && self.windows.len() >= MAX_WINDOWS {
            self.make_room(fact.at);
        }
        let window = self.windows.entry(id.clone()).or_default();
        window
            .events
            .push_back((fact.at, fact.event_id.clone(), fact.resource_type.clone()));
        while window
            .events
            .front()
            .is_some_and(|(at, _, _)| *at <= fact.at - span)
        {
            window.events.pop_front();
        }
        // Only the newest `threshold` events matter.
        while window.events.len() > threshold as usize {
            window.events.pop_front();
        }
        if window.events.len() < threshold as usize || fact.at < window.quiet_until {
            return None;
        }
        window.quiet_until = fact.at.saturating_add(cooldown);
        let events: Vec<String> = window.events.iter().map(|(_, e, _)| e.clone()).collect();
        let mut resource_types: Vec<String> = Vec::new();
        for kind in window.events.iter().filter_map(|(_, _, k)| k.as_ref()) {
            if resource_types.len() < MAX_RESOURCE_TYPES && !resource_types.contains(kind) {
                resource_types.push(kind.clone());
            }
        }
        let first_at = window.events.front().map_or(fact.at, |(at, _, _)| *at);
        // A burst already alerted under another key of this rule stays one
        // alert: this key only starts its own cool-down.
        let burst = self
            .alerted
            .entry((kind, fact.tenant.clone()))
            .or_insert_with(|| (0, HashSet::new()));
        if fact.at >= burst.0 {
            burst.1.clear();
        }
        if burst.1.contains(&fact.event_id) {
            return None;
        }
        burst.0 = burst.0.max(fact.at.saturating_add(cooldown));
        burst.1.extend(events.iter().cloned());
        Some(Firing {
            rule: kind,
            tenant: fact.tenant.clone(),
            key: id.2,
            actor: fact.actor.clone(),
            resource_types,
            events,
            first_at,
            last_at: fact.at,
        })
    }

    /// Drops windows whose events have all left their span and whose
    /// cool-down is over; if that frees less than a tenth of the room, the
    /// tenth idle longest too (so a full detector sweeps once per tenth of
    /// its room, not once per new key).
    fn make_room(&mut self, now: i64) {
        let rules = &self.rules;
        self.windows.retain(|(kind, _, _), w| {
            let span = rules.window(*kind).1;
            w.quiet_until > now || w.events.back().is_some_and(|(at, _, _)| *at > now - span)
        });
        let room = MAX_WINDOWS / 10;
        if self.windows.len() + room <= MAX_WINDOWS {
            return;
        }
        let mut idle: Vec<(i64, (RuleKind, String, String))> = self
            .windows
            .iter()
            .map(|(k, w)| {
                (
                    w.events.back().map_or(i64::MIN, |(at, _, _)| *at),
                    k.clone(),
                )
            })
            .collect();
        let cut = (self.windows.len() + room - MAX_WINDOWS).min(idle.len().saturating_sub(1));
        idle.select_nth_unstable_by_key(cut, |(at, _)| *at);
        for (_, key) in idle.drain(..cut) {
            self.windows.remove(&key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn login(n: u32, at: i64, actor: &str, ip: &str, username: &str) -> Fact {
        Fact {
            tenant: "acme".into(),
            event_id: format!("e{n}"),
            at,
            actor: actor.into(),
            action: "auth.login".into(),
            failed: true,
            ip: Some(ip.into()),
            username: Some(username.into()),
            resource_type: None,
            statement: None,
            actor_type: "user".into(),
            columns: Vec::new(),
            system: false,
        }
    }

    fn rules(threshold: u32, window_secs: u64, cooldown_secs: u64) -> Rules {
        let mut rules = Rules::default();
        rules.failed_logins.threshold = threshold;
        rules.failed_logins.window_secs = window_secs;
        rules.failed_logins.cooldown_secs = cooldown_secs;
        rules.mass_delete.threshold = threshold;
        rules.mass_delete.window_secs = window_secs;
        rules.mass_delete.cooldown_secs = cooldown_secs;
        rules
    }

    #[test]
    fn twenty_failed_logins_of_one_username_from_one_ip_in_ten_seconds_are_one_alert() {
        let mut d = Detector::new(rules(20, 10, 600));
        let mut fired = Vec::new();
        for n in 0..40 {
            let f = login(
                n,
                1_000 + i64::from(n) * 400,
                "anonymous",
                "203.0.113.9",
                "alice",
            );
            let out = d.observe(&f);
            if !out.is_empty() {
                fired.push((n, out));
            }
        }
        assert_eq!(fired.len(), 1, "{fired:?}");
        let (n, firings) = &fired[0];
        assert_eq!(*n, 19, "fires on the 20th");
        assert_eq!(
            firings.len(),
            1,
            "one alert, not one per actor, IP and username"
        );
        assert_eq!(firings[0].events.len(), 20);
        assert_eq!(firings[0].events[0], "e0");
    }

    #[test]
    fn failures_spread_wider_than_the_window_do_not_fire() {
        let mut d = Detector::new(rules(5, 10, 600));
        for n in 0..50 {
            let f = login(n, i64::from(n) * 2_600, "u1", "10.0.0.1", "bob");
            assert!(d.observe(&f).is_empty(), "event {n}");
        }
    }

    #[test]
    fn a_new_burst_after_the_cool_down_fires_again_and_successes_do_not_count() {
        let mut d = Detector::new(rules(3, 10, 60));
        let fire = |d: &mut Detector, from: u32, at: i64| {
            (from..from + 3)
                .map(|n| {
                    d.observe(&login(n, at + i64::from(n - from), "u1", "10.0.0.1", "bob"))
                        .len()
                })
                .sum::<usize>()
        };
        assert_eq!(fire(&mut d, 0, 0), 1);
        assert_eq!(fire(&mut d, 10, 30_000), 0, "within the cool-down");
        assert_eq!(fire(&mut d, 20, 120_000), 1, "after it");
        let mut ok = login(99, 200_000, "u1", "10.0.0.1", "bob");
        ok.failed = false;
        for _ in 0..10 {
            assert!(d.observe(&ok).is_empty());
        }
    }

    #[test]
    fn one_ip_trying_many_usernames_fires_for_the_ip() {
        let mut d = Detector::new(rules(10, 60, 600));
        let mut firings = Vec::new();
        for n in 0..10 {
            let f = login(
                n,
                i64::from(n) * 100,
                &format!("a{n}"),
                "198.51.100.4",
                &format!("user{n}"),
            );
            firings.extend(d.observe(&f));
        }
        assert_eq!(firings.len(), 1);
        assert_eq!(firings[0].key, "ip=198.51.100.4");
    }

    #[test]
    fn one_actor_deleting_many_records_is_a_mass_deletion() {
        let mut d = Detector::new(rules(100, 60, 600));
        let mut firings = Vec::new();
        for n in 0..150 {
            let f = Fact {
                tenant: "acme".into(),
                event_id: format!("d{n}"),
                at: i64::from(n) * 50,
                actor: "u7".into(),
                action: "Invoice.delete".into(),
                failed: false,
                ip: None,
                username: None,
                resource_type: Some("Invoice".into()),
                statement: None,
                actor_type: "user".into(),
                columns: Vec::new(),
                system: false,
            };
            firings.extend(d.observe(&f));
        }
        assert_eq!(firings.len(), 1);
        assert_eq!(firings[0].rule, RuleKind::MassDelete);
        assert_eq!(firings[0].key, "actor=u7");
        assert_eq!(firings[0].resource_types, ["Invoice"]);
    }

    #[test]
    fn one_captured_statement_deleting_many_rows_is_one_alert_naming_it_and_the_table() {
        let mut d = Detector::new(rules(100, 60, 600));
        let mut firings = Vec::new();
        for n in 0..500 {
            let f = Fact {
                tenant: "acme".into(),
                event_id: format!("r{n}"),
                at: 1_000,
                actor: "42".into(),
                action: "delete".into(),
                failed: false,
                ip: None,
                username: None,
                resource_type: Some("public.customer".into()),
                statement: Some("9001:1".into()),
                actor_type: "user".into(),
                columns: Vec::new(),
                system: false,
            };
            firings.extend(d.observe(&f));
        }
        assert_eq!(firings.len(), 1, "{firings:?}");
        assert_eq!(firings[0].key, "statement=9001:1");
        assert_eq!(firings[0].actor, "42");
        assert_eq!(firings[0].resource_types, ["public.customer"]);
    }

    #[test]
    fn tenants_are_counted_apart_and_windows_are_bounded() {
        let mut d = Detector::new(rules(2, 60, 600));
        let mut a = login(0, 0, "u1", "10.0.0.1", "bob");
        assert!(d.observe(&a).is_empty());
        a.tenant = "globex".into();
        a.event_id = "e1".into();
        assert!(
            d.observe(&a).is_empty(),
            "another tenant's failure does not count"
        );
        for n in 0..(u32::try_from(MAX_WINDOWS).unwrap() + 10) {
            let f = login(n + 10, 3_600_000, &format!("a{n}"), "10.0.0.2", "x");
            d.observe(&f);
        }
        assert!(d.windows() <= MAX_WINDOWS);
    }

    fn fact(n: u32, at: i64, actor: &str, action: &str) -> Fact {
        Fact {
            tenant: "acme".into(),
            event_id: format!("f{n}"),
            at,
            actor: actor.into(),
            action: action.into(),
            failed: false,
            ip: None,
            username: None,
            resource_type: None,
            statement: None,
            actor_type: "user".into(),
            columns: Vec::new(),
            system: false,
        }
    }

    #[test]
    fn privilege_changes_fire_on_listed_actions_columns_and_tables_once_per_cool_down() {
        let mut d = Detector::new(Rules::default());
        let mut promote = fact(0, 1_000, "42", "update");
        promote.columns = vec!["is_staff".into(), "last_login".into()];
        promote.resource_type = Some("public.auth_user".into());
        let fired = d.observe(&promote);
        assert_eq!(fired.len(), 1, "{fired:?}");
        assert_eq!(fired[0].rule, RuleKind::PrivilegeChanges);
        assert_eq!(fired[0].resource_types, ["public.auth_user"]);
        let mut again = promote.clone();
        again.event_id = "f1".into();
        again.at = 2_000;
        assert!(
            d.observe(&again).is_empty(),
            "one alert per actor per cool-down"
        );

        let mut created = fact(2, 3_000, "7", "create");
        created.columns = vec!["is_staff".into()];
        assert!(
            d.observe(&created).is_empty(),
            "a create is not a change of privilege"
        );
        let mut other = fact(3, 3_000, "8", "update");
        other.columns = vec!["last_login".into()];
        assert!(d.observe(&other).is_empty());
        assert_eq!(d.observe(&fact(4, 3_000, "9", "role.grant")).len(), 1);
        let mut group = fact(5, 3_000, "10", "create");
        group.resource_type = Some("public.auth_user_groups".into());
        assert_eq!(d.observe(&group).len(), 1, "any change to a role table");
    }

    #[test]
    fn twenty_exports_within_an_hour_are_one_alert() {
        let mut d = Detector::new(Rules::default());
        let fired: Vec<Firing> = (0..30)
            .flat_map(|n| d.observe(&fact(n, i64::from(n) * 60_000, "u3", "report.export")))
            .collect();
        assert_eq!(fired.len(), 1);
        assert_eq!(fired[0].rule, RuleKind::ExportVolume);
        assert_eq!(fired[0].events.len(), 20);
    }

    #[test]
    fn off_hours_follow_the_configured_days_hours_and_offset() {
        let mut rules = Rules::default();
        rules.off_hours.enabled = true;
        rules.off_hours.utc_offset_minutes = 60;
        let o = &rules.off_hours;
        // 2026-11-28 was a Saturday; 2026-11-30 a Monday.
        let at = |day: i64, hour: i64| 1_795_824_000_000 + day * 86_400_000 + hour * 3_600_000;
        assert!(o.outside(at(0, 11)), "Saturday");
        assert!(!o.outside(at(2, 9)), "Monday 10:00 local");
        assert!(o.outside(at(2, 18)), "Monday 19:00 local");
        assert!(o.outside(at(2, 6)), "Monday 07:00 local");
        let mut night = o.clone();
        night.start_hour = 22;
        night.end_hour = 6;
        assert!(!night.outside(at(2, 22)), "23:00 in a night shift");
        assert!(night.outside(at(2, 12)));
        let mut d = Detector::new(rules.clone());
        let mut person = fact(0, at(0, 11), "u1", "read");
        assert_eq!(d.observe(&person).len(), 1);
        person.actor_type = "service".into();
        person.actor = "svc".into();
        assert!(d.observe(&person).is_empty(), "people only");
    }

    #[test]
    fn trailmark_events_fire_and_alerts_never_count_themselves() {
        let mut rules = Rules::default();
        rules
            .trailmark_events
            .actions
            .push("trailmark.alert.raised".into());
        let mut d = Detector::new(rules);
        let mut key = fact(0, 1_000, "key_1", "admin.key.create");
        key.system = true;
        key.tenant = "_system".into();
        assert_eq!(d.observe(&key).len(), 1);
        let mut alert = key.clone();
        alert.action = "trailmark.alert.raised".into();
        assert!(d.observe(&alert).is_empty());
        let mut read = key.clone();
        read.action = "read".into();
        assert!(d.observe(&read).is_empty());
        let mut delete = fact(1, 1_000, "u1", "delete");
        delete.system = true;
        assert!(
            d.observe(&delete).is_empty(),
            "in _system only the trailmark rule counts"
        );
    }
}
