//! End-to-end tests: segwatch against its simulated Segment workspace over real loopback HTTP.
//!
//! One test binary (faster to link than one per file). Each module holds one theme:
//! - `pipeline`: what a poll stores and which changes it finds;
//! - `api_drift`: fields a Segment release adds or removes are recorded but raise no alert;
//! - `audit_trail`: Segment's audit trail read incrementally, and who made each change;
//! - `access`: `segwatch access` (what a user can reach, who can reach a source) equal to the
//!   grants computed independently from the simulated workspace's state;
//! - `auditor`: auditors' questions (views, `query`, `history`, `changes`, `state`) against what
//!   the simulated workspace held;
//! - `data_flow`: destinations, warehouses, functions and tracking plans: stored, diffed,
//!   alerted on, their secrets kept out, a rejected function type and kinds turned off;
//! - `flows`: `segwatch flows` equal to the flows computed independently from the simulated
//!   workspace's state, narrowed, diffed with `--since`, as DOT, and the report's graph checked
//!   in a headless browser;
//! - `faults`: polls that meet a misbehaving API, and what is (not) stored;
//! - `hostile`: hostile names, bodies and configurations (terminal escapes, lone surrogates,
//!   plain-http webhooks, one workspace under two labels, an exposed health endpoint);
//! - `install`: installed alone: shell completions and man pages, the built-in starter rules
//!   when no rules folder is configured or found, `rules init` writing them out;
//! - `bounded`: endless and trickling response bodies and endless secret files meet a limit;
//! - `secrets`: the token and write keys never appear in clear in logs, output or the database;
//! - `cli`: the binary's commands, exit codes and messages;
//! - `simulate`: `segwatch simulate` as a process: plans, API releases and the fault kinds that
//!   imitate real workspaces (pagination races, malformed records), given as flags;
//! - `daemon`: `segwatch run` as a process: schedule, no overlap, graceful shutdown;
//! - `delivery`: alerts delivered through the outbox to a real receiver, across outages and kills;
//! - `jira`: the Jira sink against its stand-in: one issue per finding through outages, lost
//!   answers, re-opening and a daemon killed mid-delivery; each failure classified;
//! - `lifecycle`: alerts over several polls (open, no repeat, resolve, re-open, exceptions);
//! - `ocsf`: OCSF findings to a file and a Splunk HEC stand-in, and `export ocsf`, validated by
//!   an independent OCSF implementation (`tests/ocsf_validate.py`);
//! - `pagerduty`: the PagerDuty sink against its Events API stand-in: one incident per open
//!   period of a finding across an outage and a `kill -9`, answers retried or given up,
//!   change alerts, `sinks test` paging nobody;
//! - `report`: the compliance report of a period, its sections and numbers against the database;
//! - `privacy_requests`: data-subject deletion through Segment's regulations, recorded hashed;
//! - `real_workspaces`: features a plan lacks, lists that shift while read, records segwatch
//!   cannot read;
//! - `soak`: the daemon with 20 changing workspaces for about two minutes against a webhook
//!   that flaps between 503 and 200: every poll completes, every alert event arrives, RSS
//!   stays flat, the chain verifies;
//! - `starter_rules`: every starter rule fires on what it should and only on that;
//! - `storm`: 20,000 alerts in one poll: messages split to fit, a 413 splits further, the rest
//!   summarised, nothing dead;
//! - `teams`: alerts, findings, resolutions and digests as Adaptive Cards to a Microsoft Teams
//!   Workflows stand-in that checks their shape; digests split to fit; bad URLs refused;
//! - `updates`: a finding modified while open: an Update to the OCSF file (validated), one
//!   Jira comment, a PagerDuty trigger folded into the open incident, nothing to a webhook;
//! - `verify`: the tamper-evidence chain finds each alteration of the database where it was made;
//! - `workspaces`: a workspace listed, paused and resumed (CLI and daemon), and deleted whole;
//! - `writer`: one writer per database (a second daemon or poll refused or waiting), readers
//!   without a lock, on a read-only copy too.
//!
//! - `architecture`: the crate graph is the one ARCHITECTURE.md draws (no forbidden dependency).
//!
//! `util` is the harness shared by all of them (`segwatch_testkit`, plus in-process polls).

// Test helpers are `pub` for sibling modules; this crate is never a dependency.
#![allow(unreachable_pub)]

mod access;
mod access_changes;
mod access_review;
mod api_drift;
mod architecture;
mod audit_trail;
mod auditor;
mod bounded;
mod cli;
mod daemon;
mod data_controls;
mod data_flow;
mod delivery;
mod faults;
mod flows;
mod hostile;
mod identity;
mod install;
mod jira;
mod lifecycle;
mod ocsf;
mod pagerduty;
mod pipeline;
mod privacy_access;
mod privacy_requests;
mod real_workspaces;
mod report;
mod retention;
mod secrets;
mod simulate;
mod soak;
mod starter_rules;
mod storm;
mod teams;
mod updates;
mod util;
mod verify;
mod workspaces;
mod writer;
