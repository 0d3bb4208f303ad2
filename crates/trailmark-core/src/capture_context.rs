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
    /// The settings' names, in DESIGN.md's order; without the `trailmark.`
    /// prefix they are the keys `trailmark.set_context` takes.
    pub const SETTINGS: [&'static str; 9] = [
        "trailmark.actor_id",
        "trailmark.actor_type",
        "trailmark.actor_name",
        "trailmark.ip",
        "trailmark.user_agent",
        "trailmark.request_id",
        "trailmark.session_id",
        "trailmark.tenant",
        "trailmark.reason",
    ];

    /// The settings to make (`trailmark.actor_id`, …) with their values:
    /// those given and not empty, in DESIGN.md's order.
    pub fn settings(&self) -> Vec<(&'static str, &str)> {
        let values = [
            &self.actor_id,
            &self.actor_type,
            &self.actor_name,
            &self.ip,
            &self.user_agent,
            &self.request_id,
            &self.session_id,
            &self.tenant,
            &self.reason,
        ];
        Self::SETTINGS
            .into_iter()
            .zip(values)
            .filter_map(|(k, v)| v.as_deref().filter(|v| !v.is_empty()).map(|v| (k, v)))
            .collect()
    }

    /// The context as the JSON object `trailmark.set_context` takes
    /// (`{"actor_id": "42", …}`: the values given and not empty).
    pub fn to_json(&self) -> String {
        let map: serde_json::Map<String, serde_json::Value> = self
            .settings()
            .into_iter()
            .map(|(k, v)| {
                (
                    k.trim_start_matches("trailmark.").to_owned(),
                    serde_json::Value::String(v.to_owned()),
                )
            })
            .collect();
        serde_json::Value::Object(map).to_string()
    }

    /// One statement that sets the context in both capture modes (the
    /// settings the triggers read, and in WAL mode the logical message the
    /// decoder reads), taking [`Self::to_json`] as `$1`; `None` when there
    /// is nothing to set. Needs capture version 4 or later in the database.
    pub fn set_context_sql(&self) -> Option<&'static str> {
        if self.settings().is_empty() {
            None
        } else {
            Some("SELECT trailmark.set_context($1::text::jsonb)")
        }
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
        assert_eq!(c.to_json(), r#"{"actor_id":"42","tenant":"acme"}"#);
        assert!(c.set_context_sql().is_some());
        assert_eq!(CaptureContext::default().set_context_sql(), None);
    }
}
