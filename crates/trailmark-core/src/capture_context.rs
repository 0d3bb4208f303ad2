//! The capture context: who is acting and from where, as the capture reads
//! it from settings local to the application's transaction
//! (`trailmark.<name>`, DESIGN.md). The one list of those names: every
//! writer (the Rust client's request context, the capture's `apply`, the
//! CLI's pause and revert) builds this and asks it for the settings.

/// The values one request attaches to its transaction.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CaptureContext {
    pub actor_id: Option<String>,
    pub actor_type: Option<String>,
    pub actor_name: Option<String>,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    pub request_id: Option<String>,
    pub session_id: Option<String>,
    pub tenant: Option<String>,
    pub reason: Option<String>,
}

impl CaptureContext {
    /// The settings to make (`trailmark.actor_id`, …) with their values:
    /// those given and not empty, in DESIGN.md's order.
    pub fn settings(&self) -> Vec<(&'static str, &str)> {
        [
            ("trailmark.actor_id", &self.actor_id),
            ("trailmark.actor_type", &self.actor_type),
            ("trailmark.actor_name", &self.actor_name),
            ("trailmark.ip", &self.ip),
            ("trailmark.user_agent", &self.user_agent),
            ("trailmark.request_id", &self.request_id),
            ("trailmark.session_id", &self.session_id),
            ("trailmark.tenant", &self.tenant),
            ("trailmark.reason", &self.reason),
        ]
        .into_iter()
        .filter_map(|(k, v)| v.as_deref().filter(|v| !v.is_empty()).map(|v| (k, v)))
        .collect()
    }

    /// One statement that makes every setting local to the transaction,
    /// the values as parameters `$1…` in the order of [`Self::settings`];
    /// `None` when there is nothing to set.
    pub fn set_config_sql(&self) -> Option<String> {
        let settings = self.settings();
        if settings.is_empty() {
            return None;
        }
        let calls: Vec<String> = settings
            .iter()
            .enumerate()
            .map(|(i, (name, _))| format!("set_config('{name}', ${}, true)", i + 1))
            .collect();
        Some(format!("SELECT {}", calls.join(", ")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_given_values_are_set_in_order() {
        let c = CaptureContext {
            actor_id: Some("42".into()),
            actor_name: Some(String::new()),
            tenant: Some("acme".into()),
            ..CaptureContext::default()
        };
        assert_eq!(
            c.settings(),
            [("trailmark.actor_id", "42"), ("trailmark.tenant", "acme")]
        );
        assert_eq!(
            c.set_config_sql().as_deref(),
            Some(
                "SELECT set_config('trailmark.actor_id', $1, true), set_config('trailmark.tenant', $2, true)"
            )
        );
        assert_eq!(CaptureContext::default().set_config_sql(), None);
    }
}
