//! segwatch: an agentless security-posture poller for Segment workspaces.
//!
//! The pipeline, one module per stage (see ARCHITECTURE.md):
//! [`segment`] (HTTP client) → [`collect`] (resources, redacted) → [`store`] (SQLite snapshots)
//! → [`diff`] (changes). [`poll`] wires one cycle together; [`cli`] exposes it; [`simulator`]
//! is a stand-in Segment workspace for the demo, tests and benchmarks; [`audit`] answers
//! auditors' questions from the database, read-only.

pub mod alerts;
pub mod audit;
pub mod bench;
pub mod canonical;
pub mod cli;
pub mod collect;
pub mod config;
pub mod daemon;
pub mod diff;
pub mod drift;
pub mod health;
pub mod model;
pub mod poll;
pub mod profiles;
pub mod redact;
pub mod relations;
pub mod report;
pub mod rules;
pub mod schedule;
pub mod segment;
pub mod simulator;
pub mod sinks;
pub mod store;
pub mod terminal;
pub mod trail;
pub mod workspaces;
