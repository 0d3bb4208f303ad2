//! Sliding windows: per rule, tenant and key, the matching events of the
//! last `window_secs`; a rule fires when one key holds `threshold` of them.
//! One burst raises one alert: after a firing, neither that key nor any key
//! counting one of the burst's events fires again within the cool-down
//! (20 failed logins of one username from one IP are one alert, not one
//! per actor, IP and username).

use std::collections::{HashMap, HashSet, VecDeque};

use super::rules::{RuleKind, Rules};

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

    /// Counts one event; what fires because of it.
    pub fn observe(&mut self, fact: &Fact) -> Vec<Firing> {
        let Some(kind) = self.rules.counting(fact.failed, &fact.action) else {
            return Vec::new();
        };
        let mut keys = Vec::new();
        if kind == RuleKind::MassDelete
            && let Some(statement) = &fact.statement
        {
            // One statement deleting many rows: named first, so the alert
            // says which statement (the actor's window counts it too).
            keys.push(format!("statement={statement}"));
        }
        keys.push(format!("actor={}", fact.actor));
        if kind == RuleKind::FailedLogins {
            keys.extend(fact.ip.as_ref().map(|ip| format!("ip={ip}")));
            keys.extend(fact.username.as_ref().map(|u| format!("username={u}")));
        }
        keys.into_iter()
            .filter_map(|key| self.count(kind, fact, key))
            .collect()
    }

    fn count(&mut self, kind: RuleKind, fact: &Fact, key: String) -> Option<Firing> {
        let rule = self.rules.get(kind).clone();
        let span = rule.window_millis();
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
        while window.events.len() > rule.threshold as usize {
            window.events.pop_front();
        }
        if window.events.len() < rule.threshold as usize || fact.at < window.quiet_until {
            return None;
        }
        let cooldown = rule.cooldown_millis();
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
            let span = rules.get(*kind).window_millis();
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
}
