//! Detection: alert rules and when they fire. Pure: the caller passes in
//! what each appended event tells the rules ([`Fact`]) and the time; what
//! fires ([`Firing`]) is the caller's to store and deliver.
//!
//! Alerts live in the trail (`state`), go out by webhook (`deliver`) and
//! are listed, acknowledged and configured through the API (`api`);
//! docs/ALERTS.md says what is decided.

pub mod api;
pub mod deliver;
mod rules;
pub mod run;
pub mod state;
mod webhook;
mod window;

pub use rules::{
    CaptureOutboxRule, CaptureWalRule, OUTBOX_BEHIND, Rule, RuleKind, Rules, SLOT_LOST,
    WAL_RETAINED,
};
pub use webhook::WebhookSecret;
pub use window::{Detector, Fact, Firing, MAX_WINDOWS};
