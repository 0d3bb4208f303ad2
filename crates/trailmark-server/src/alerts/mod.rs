//! Detection: alert rules and when they fire. Pure: the caller passes in
//! what each appended event tells the rules ([`Fact`]) and the time; what
//! fires ([`Firing`]) is the caller's to store and deliver.
//!
//! This is the first part of alerting (rules as TOML, sliding windows,
//! one alert per burst). Storing alerts, their routes, delivery and the
//! window rebuild after a restart come next (docs/ALERTS.md).

mod rules;
pub mod run;
mod webhook;
mod window;

pub use rules::{Rule, RuleKind, Rules};
pub use webhook::WebhookSecret;
pub use window::{Detector, Fact, Firing, MAX_WINDOWS};
