//! `segwatch flows`: where each source's data goes, at a time, and how that changed. Read-only;
//! the answer comes from [`crate::flows::flows_at`], this file parses arguments and writes it.

use std::io::Write;
use std::process::ExitCode;

use chrono::{DateTime, Utc};
use clap::{Args, ValueEnum};

use super::audit::parse_time;
use super::{open_read_only, print_json};
use crate::config::Settings;
use crate::flows::{FlowQuery, flows_at, render};

/// Options of `segwatch flows`.
#[derive(Debug, Args)]
pub(super) struct FlowsArgs {
    /// Only this source (id, or exact name) and where its data goes.
    #[arg(long, value_name = "NAME_OR_ID", conflicts_with = "destination")]
    source: Option<String>,
    /// Only this destination or warehouse (id, or exact name) and the sources feeding it.
    #[arg(long, value_name = "NAME_OR_ID")]
    destination: Option<String>,
    /// The instant (RFC 3339, YYYY-MM-DD or YYYY-MM-DD HH:MM[:SS], UTC; default: now): the state
    /// observed by the latest complete poll at or before it.
    #[arg(long, value_name = "TIME", value_parser = parse_time)]
    at: Option<DateTime<Utc>>,
    /// Also show how the map changed from the state at this earlier instant: flows added,
    /// removed, enabled or disabled, and personal fields gained or lost.
    #[arg(long, value_name = "TIME", value_parser = parse_time)]
    since: Option<DateTime<Utc>>,
    /// Output format: text, JSON, or a Graphviz graph (`dot -Tsvg`).
    #[arg(long, value_enum, default_value_t = FlowsFormat::Text)]
    format: FlowsFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum FlowsFormat {
    Text,
    Json,
    Dot,
}

/// `segwatch flows [--source S | --destination D] [--at T] [--since T]`.
pub(super) fn run(settings: &Settings, args: FlowsArgs) -> anyhow::Result<ExitCode> {
    let patterns = settings.flows.patterns()?;
    let (store, workspace) = open_read_only(settings)?;
    let query = FlowQuery {
        at: args.at.unwrap_or_else(Utc::now),
        since: args.since,
        source: args.source,
        destination: args.destination,
    };
    let report = flows_at(&store, workspace, &query, &patterns)?;
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    match args.format {
        FlowsFormat::Json => {
            print_json(&mut out, &report)?;
        }
        FlowsFormat::Text => out.write_all(render::text(&report).as_bytes())?,
        FlowsFormat::Dot => out.write_all(render::dot(&report).as_bytes())?,
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}
