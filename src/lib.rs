//! segwatch: an agentless security-posture poller for Segment workspaces.
//!
//! This is the application crate (see ARCHITECTURE.md): the configuration ([`config`]), one
//! poll wired from the library crates ([`poll`]), the schedule and the daemon ([`schedule`],
//! [`daemon`], [`health`]), the compliance report ([`report`]), the pipeline steps on stored
//! snapshots ([`stored`]), effective access at an instant ([`mod@access`]), the data-flow map ([`flows`]), the benchmark
//! ([`mod@bench`]), where the rules come from ([`rules`]: configured, found, or built in) and the
//! command line ([`cli`]). The
//! pipeline itself lives in `segwatch_core` (pure), `segwatch_api` (Segment's APIs),
//! `segwatch_store` (SQLite) and `segwatch_sinks` (delivery); `segwatch_simulator` is the
//! stand-in Segment workspace.

pub mod access;
pub mod bench;
pub mod cli;
pub mod config;
pub mod daemon;
pub mod flows;
pub mod health;
pub mod poll;
pub mod report;
pub mod rules;
pub mod schedule;
pub mod stored;
pub mod workspaces;
