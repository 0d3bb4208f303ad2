//! The rule set and its TOML form. Every field is checked: an unknown
//! field, an empty action or a zero threshold is an error naming it, never
//! a default.

use std::fmt::Write as _;

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
    /// One actor deleting many records.
    MassDelete,
}

impl RuleKind {
    pub const ALL: [Self; 2] = [Self::FailedLogins, Self::MassDelete];

    /// Its name in the TOML and in alerts.
    pub fn name(self) -> &'static str {
        match self {
            Self::FailedLogins => "failed_logins",
            Self::MassDelete => "mass_delete",
        }
    }
}

/// One windowed rule: fires when `threshold` matching events of one key
/// fall within `window_secs`; then not again for that key, nor for the
/// events of that burst under another key, for `cooldown_secs`.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    pub enabled: bool,
    /// Actions the rule counts: an event's action matches one that it
    /// equals, or that it ends with after a dot (`login` matches
    /// `auth.login`).
    pub actions: Vec<String>,
    pub threshold: u32,
    pub window_secs: u64,
    pub cooldown_secs: u64,
}

impl Rule {
    /// Whether an event's action is one this rule counts.
    pub fn counts(&self, action: &str) -> bool {
        self.actions.iter().any(|a| {
            action == a
                || action
                    .strip_suffix(a.as_str())
                    .is_some_and(|head| head.ends_with('.'))
        })
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
        let field = |f: &str, m: String| Err(format!("{name}.{f}: {m}"));
        if self.actions.is_empty() || self.actions.len() > MAX_ACTIONS {
            return field("actions", format!("give 1 to {MAX_ACTIONS} action names"));
        }
        if let Some(bad) = self
            .actions
            .iter()
            .find(|a| a.trim().is_empty() || a.trim() != a.as_str())
        {
            return field(
                "actions",
                format!("{bad:?} is empty or has spaces around it"),
            );
        }
        if self.threshold == 0 {
            return field("threshold", "must be at least 1".into());
        }
        if self.window_secs == 0 || self.window_secs > MAX_WINDOW_SECS {
            return field("window_secs", format!("must be 1 to {MAX_WINDOW_SECS}"));
        }
        if self.cooldown_secs > MAX_COOLDOWN_SECS {
            return field(
                "cooldown_secs",
                format!("must be at most {MAX_COOLDOWN_SECS}"),
            );
        }
        Ok(())
    }
}

fn millis(secs: u64) -> i64 {
    i64::try_from(secs.saturating_mul(1000)).unwrap_or(i64::MAX)
}

/// Every rule. The defaults are on.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Rules {
    pub failed_logins: Rule,
    pub mass_delete: Rule,
}

impl Default for Rules {
    fn default() -> Self {
        Self {
            failed_logins: Rule {
                enabled: true,
                actions: vec!["login".into(), "signin".into(), "sign_in".into()],
                threshold: 10,
                window_secs: 60,
                cooldown_secs: 900,
            },
            mass_delete: Rule {
                enabled: true,
                actions: vec!["delete".into(), "destroy".into()],
                threshold: 100,
                window_secs: 60,
                cooldown_secs: 900,
            },
        }
    }
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
        self.mass_delete.check(RuleKind::MassDelete.name())
    }

    /// The rule that counts an event with this outcome and action, if one
    /// (enabled) does: failed logins count failures, mass deletions
    /// successes. Ingest asks it to pick what to offer, the detector to
    /// count.
    pub fn counting(&self, failed: bool, action: &str) -> Option<RuleKind> {
        let kind = if failed {
            RuleKind::FailedLogins
        } else {
            RuleKind::MassDelete
        };
        let rule = self.get(kind);
        (rule.enabled && rule.counts(action)).then_some(kind)
    }

    pub fn get(&self, kind: RuleKind) -> &Rule {
        match kind {
            RuleKind::FailedLogins => &self.failed_logins,
            RuleKind::MassDelete => &self.mass_delete,
        }
    }

    /// The rule set as TOML (what `from_toml` reads back).
    pub fn to_toml(&self) -> String {
        let mut out = String::new();
        for kind in [RuleKind::FailedLogins, RuleKind::MassDelete] {
            let r = self.get(kind);
            let actions: Vec<String> = r
                .actions
                .iter()
                .map(|a| serde_json::Value::from(a.as_str()).to_string())
                .collect();
            let _ = write!(
                out,
                "[{}]\nenabled = {}\nactions = [{}]\nthreshold = {}\nwindow_secs = {}\ncooldown_secs = {}\n\n",
                kind.name(),
                r.enabled,
                actions.join(", "),
                r.threshold,
                r.window_secs,
                r.cooldown_secs
            );
        }
        out
    }
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
        ];
        for (text, field) in cases {
            let err = Rules::from_toml(&text).unwrap_err();
            assert!(err.contains(field), "{field}: {err}");
        }
    }
}
