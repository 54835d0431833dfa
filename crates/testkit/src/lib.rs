//! The test kit of segwatch: what the end-to-end tests need besides the code under test.
//!
//! - [`TestWorkspace`]: a simulated Segment workspace on loopback and a scratch database;
//! - [`Segwatch`]: a fluent runner for the real binary, asserting exact exit statuses and lines;
//! - [`WebhookReceiver`]: a webhook endpoint that checks signatures and can fail on demand;
//! - [`JiraStandIn`]: Jira Cloud's REST API in memory, checking what the Jira sink sends;
//! - [`TeamsReceiver`]: a Microsoft Teams Workflows webhook that checks the message's shape;
//! - [`HecReceiver`]: a Splunk HEC (and NDJSON) collector for OCSF sinks, busy on demand;
//! - [`PagerDutyStandIn`]: PagerDuty's Events API v2, checking each event's shape and keeping
//!   incidents by `dedup_key`;
//! - [`free_port`] and [`stop_daemon`] for daemons run as processes.
//!
//! Only `[dev-dependencies]` use it.

pub mod jira;
mod ocsf;
mod pagerduty;
mod process;
mod receivers;
mod runner;
mod teams;
mod workspace;

pub use jira::JiraStandIn;
pub use ocsf::{HEC_TOKEN, HecReceiver};
pub use pagerduty::{
    Incident, PAGERDUTY_KEY, PAGERDUTY_MAX_BODY, PagerDutyMode, PagerDutyOutcome, PagerDutyRequest,
    PagerDutyStandIn,
};
pub use process::{free_port, stop_daemon};
pub use receivers::{HMAC_KEY, WebhookReceiver};
pub use runner::{Run, Segwatch, binary};
pub use teams::{TEAMS_LIMIT_BYTES, TEAMS_SIG, TeamsReceiver, check_message};
pub use workspace::TestWorkspace;

/// The token every test simulator accepts. Long and distinctive so a leak is easy to find.
pub const TOKEN: &str = "sgw-test-token-4f9c2d7e1a8b3c6d5e0f";

/// The starter rule pack shipped in the repository.
pub const STARTER_RULES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../rules");
