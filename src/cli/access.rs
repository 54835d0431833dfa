//! `segwatch access`: who can reach a resource, what a user can reach, at a time. Read-only; the
//! answer comes from [`crate::access::access_at`], this file parses arguments and formats it.

use std::io::Write;
use std::process::ExitCode;

use chrono::{DateTime, Utc};
use clap::{Args, ValueEnum};

use super::audit::{clean, column_widths, parse_time, write_row};
use super::{open_read_only, plural, print_json};
use crate::access::{AccessQuery, AccessReport, access_at};
use crate::config::Settings;

/// Options of `segwatch access`. A user or a resource is required: the whole matrix of a large
/// workspace is tens of millions of grants.
#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("subject").required(true).multiple(true).args(["resource", "user"])))]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub(super) struct AccessArgs {
    #[command(subcommand)]
    action: Option<AccessCommand>,
    /// Only the grants reaching this resource (id, or exact name): the workspace, a source, a
    /// warehouse or a function. A source is also reached by workspace-wide roles (shown as their
    /// grant on the workspace) and by label-restricted ones whose labels it carries.
    #[arg(long, value_name = "NAME_OR_ID")]
    resource: Option<String>,
    /// Only the grants of this user (id or email), or of this pending group invite (email).
    #[arg(long, value_name = "EMAIL")]
    user: Option<String>,
    /// The instant (RFC 3339, YYYY-MM-DD or YYYY-MM-DD HH:MM[:SS], UTC; default: now): the state
    /// observed by the latest complete poll at or before it.
    #[arg(long, value_name = "TIME", value_parser = parse_time)]
    at: Option<DateTime<Utc>>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = AccessFormat::Table)]
    format: AccessFormat,
}

#[derive(Debug, clap::Subcommand)]
enum AccessCommand {
    /// Export every grant at a time for an access review (one row per user × resource × role ×
    /// route, with blank decision columns), import a filled-in review, or follow up on its
    /// revocations (docs/ACCESS.md, "Access reviews").
    Review(super::access_review::ReviewArgs),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum AccessFormat {
    Table,
    Json,
    Csv,
}

const COLUMNS: [&str; 11] = [
    "user_email",
    "user_id",
    "role",
    "role_id",
    "resource_kind",
    "resource_id",
    "resource_name",
    "via",
    "group_id",
    "label_filter",
    "invite",
];

/// `segwatch access [--resource NAME_OR_ID] [--user EMAIL] [--at T]`.
pub(super) fn run(settings: &Settings, args: AccessArgs) -> anyhow::Result<ExitCode> {
    if let Some(AccessCommand::Review(review)) = args.action {
        return super::access_review::run(settings, review);
    }
    let (store, workspace) = open_read_only(settings)?;
    let query = AccessQuery {
        at: args.at.unwrap_or_else(Utc::now),
        user: args.user,
        resource: args.resource,
    };
    let report = access_at(&store, workspace, &query)?;
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    match args.format {
        AccessFormat::Json => {
            print_json(&mut out, &report)?;
        }
        AccessFormat::Csv => write_csv(&mut out, &report)?,
        AccessFormat::Table => write_table(&mut out, &report)?,
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

fn yes_no(b: bool) -> &'static str {
    if b { "yes" } else { "no" }
}

fn write_csv(out: &mut impl Write, report: &AccessReport) -> anyhow::Result<()> {
    let mut csv = csv::Writer::from_writer(out);
    csv.write_record(COLUMNS)?;
    for g in &report.grants {
        csv.write_record([
            &g.user_email,
            &g.user_id,
            &g.role,
            &g.role_id,
            &g.resource_kind,
            &g.resource_id,
            &g.resource_name,
            &g.via,
            &g.group_id,
            &g.label_filter,
            yes_no(g.invite),
        ])?;
    }
    csv.flush()?;
    Ok(())
}

fn write_table(out: &mut impl Write, report: &AccessReport) -> anyhow::Result<()> {
    writeln!(
        out,
        "{} at {} (snapshot {}, observed at {})",
        plural(report.grants.len(), "grant"),
        report.at,
        report.snapshot_id,
        report.observed_at
    )?;
    if report.grants.is_empty() {
        return Ok(());
    }
    let header = [
        "user", "user_id", "role", "kind", "id", "name", "via", "labels", "invite",
    ]
    .map(String::from);
    let rows: Vec<Vec<String>> = report
        .grants
        .iter()
        .map(|g| {
            vec![
                clean(&g.user_email),
                clean(&g.user_id),
                clean(&g.role),
                clean(&g.resource_kind),
                clean(&g.resource_id),
                clean(&g.resource_name),
                clean(&g.via),
                clean(&g.label_filter),
                yes_no(g.invite).to_string(),
            ]
        })
        .collect();
    let widths = column_widths(&header, &rows);
    writeln!(out)?;
    write_row(out, &header, &widths)?;
    for row in &rows {
        write_row(out, row, &widths)?;
    }
    Ok(())
}
