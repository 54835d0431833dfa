//! The pure core of segwatch: what a poll means, with no I/O.
//!
//! Resources and their canonical form ([`model`], [`canonical`]), secret redaction
//! ([`redact`]), field-level diffs and a poll's plan ([`diff`]), API drift ([`drift`]), the
//! relationships of one snapshot ([`relations`]), rules and their evaluation ([`rules`]), the
//! alert lifecycle ([`alerts`]), the audit trail's events, mark and attribution ([`trail`]),
//! escaping for terminals ([`terminal`]), who can reach what ([`access`]), and where data
//! goes ([`flows`]).
//!
//! This crate depends on no async runtime, HTTP client or database (a test in the
//! application crate checks it); everything that reads or writes lives in the crates above it.

pub mod access;
pub mod activity;
pub mod alerts;
pub mod canonical;
pub mod diff;
pub mod drift;
pub mod flows;
pub mod ids;
pub mod model;
pub mod redact;
pub mod relations;
pub mod rules;
pub mod terminal;
pub mod time;
pub mod trail;
