//! The auditor's commands: `query`, `history`, `changes` and `state`. All read-only; the
//! answers come from [`segwatch_store::audit`], this file only parses arguments and formats output.

use std::io::Write;
use std::process::ExitCode;

use anyhow::Context;
use chrono::{DateTime, Utc};
use clap::{Args, ValueEnum};

use super::{TextOrJson, open_read_only, plural, print_json};
use crate::config::Settings;
use segwatch_core::diff::FieldChange;
use segwatch_core::model::ResourceKind;
use segwatch_store::Store;
use segwatch_store::audit::SqlValue;
use segwatch_store::audit::{self, ChangeReport, History, HistoryEvent, ReadOnlyQuery, StateAt};

/// Options of `segwatch query`.
#[derive(Debug, Args)]
pub(super) struct QueryArgs {
    /// One SQL statement that only reads (SELECT, WITH, EXPLAIN or a read-only PRAGMA); the
    /// `audit_*` views are documented in docs/SCHEMA.md.
    sql: String,
    /// Output format.
    #[arg(long, value_enum, default_value_t = QueryFormat::Table)]
    format: QueryFormat,
    /// Stop the statement after this many seconds.
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..=86_400))]
    timeout_secs: u64,
}

/// Options of `segwatch history`.
#[derive(Debug, Args)]
pub(super) struct HistoryArgs {
    /// Resource kind: workspace, role, user, group, invite, source, label, destination,
    /// warehouse, function, tracking_plan, destination_filter, destination_subscription, source_schema_settings, transformation or reverse_etl_model.
    #[arg(value_parser = parse_kind)]
    kind: ResourceKind,
    /// The resource's Segment id, or any name it ever had (exact; users are named by email,
    /// labels by key:value).
    id_or_name: String,
    /// Output format.
    #[arg(long, value_enum, default_value_t = TextOrJson::Text)]
    format: TextOrJson,
}

/// Options of `segwatch changes`.
#[derive(Debug, Args)]
pub(super) struct ChangesArgs {
    /// Changes observed at or after this time (RFC 3339, YYYY-MM-DD or YYYY-MM-DD HH:MM[:SS], UTC).
    #[arg(long, value_name = "TIME", value_parser = parse_time)]
    since: DateTime<Utc>,
    /// ... and before this time (default: no end).
    #[arg(long, value_name = "TIME", value_parser = parse_time)]
    until: Option<DateTime<Utc>>,
    /// Only changes of this kind of resource.
    #[arg(long, value_parser = parse_kind)]
    kind: Option<ResourceKind>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = ChangesFormat::Table)]
    format: ChangesFormat,
}

/// Options of `segwatch state`.
#[derive(Debug, Args)]
pub(super) struct StateArgs {
    /// The instant (RFC 3339, YYYY-MM-DD or YYYY-MM-DD HH:MM[:SS], UTC): the state observed by
    /// the latest complete poll at or before it.
    #[arg(long, value_name = "TIME", value_parser = parse_time)]
    at: DateTime<Utc>,
    /// Only resources of this kind.
    #[arg(long, value_parser = parse_kind)]
    kind: Option<ResourceKind>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = StateFormat::Json)]
    format: StateFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum QueryFormat {
    Table,
    Csv,
    Json,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum ChangesFormat {
    Table,
    Json,
    Csv,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum StateFormat {
    Json,
    Csv,
}

fn parse_kind(text: &str) -> Result<ResourceKind, String> {
    text.parse()
        .map_err(|e: segwatch_core::model::UnknownKind| e.to_string())
}

pub(super) fn parse_time(text: &str) -> Result<DateTime<Utc>, String> {
    audit::parse_instant(text).map_err(|e| e.to_string())
}

/// `segwatch query`: one read-only statement over the whole database (every workspace).
pub(super) fn query(settings: &Settings, args: QueryArgs) -> anyhow::Result<ExitCode> {
    let path = &settings.database.path;
    let store = Store::open_read_only(path)
        .with_context(|| format!("cannot open the database {}", path.display()))?;
    let _limit = audit::TimeLimit::start(&store, std::time::Duration::from_secs(args.timeout_secs));
    let result = query_rows(&store, &args);
    match result {
        Err(e)
            if e.downcast_ref::<audit::AuditError>()
                .is_some_and(audit::is_interrupted) =>
        {
            anyhow::bail!(
                "the query ran for longer than {} s and was stopped (raise --timeout-secs, or \
                 narrow it: the audit_* views have a workspace and time columns to filter on)",
                args.timeout_secs
            )
        }
        other => other,
    }
}

fn query_rows(store: &Store, args: &QueryArgs) -> anyhow::Result<ExitCode> {
    let mut query = ReadOnlyQuery::prepare(store, &args.sql)?;
    let columns = query.columns().to_vec();
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    match args.format {
        QueryFormat::Table => {
            let mut rows = Vec::new();
            query.for_each_row(|row| {
                rows.push(row.iter().map(table_cell).collect::<Vec<_>>());
                Ok::<_, anyhow::Error>(())
            })?;
            write_table(&mut out, &columns, &rows)?;
            writeln!(out, "({})", plural(rows.len(), "row"))?;
        }
        QueryFormat::Csv => {
            let mut csv = csv::Writer::from_writer(&mut out);
            csv.write_record(&columns)?;
            query.for_each_row(|row| {
                csv.write_record(row.iter().map(csv_cell))?;
                Ok::<_, anyhow::Error>(())
            })?;
            csv.flush()?;
        }
        QueryFormat::Json => {
            // Streamed as one array of objects; a repeated column name gets a `_2`, `_3` suffix.
            let keys = unique_keys(&columns);
            write!(out, "[")?;
            let mut first = true;
            query.for_each_row(|row| {
                let object: serde_json::Map<String, serde_json::Value> = keys
                    .iter()
                    .cloned()
                    .zip(row.iter().map(json_cell))
                    .collect();
                if !std::mem::take(&mut first) {
                    write!(out, ",")?;
                }
                serde_json::to_writer(&mut out, &object)?;
                Ok::<_, anyhow::Error>(())
            })?;
            writeln!(out, "]")?;
        }
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

/// `segwatch history KIND ID_OR_NAME`.
pub(super) fn history(settings: &Settings, args: HistoryArgs) -> anyhow::Result<ExitCode> {
    let (store, workspace) = open_read_only(settings)?;
    let history = audit::resource_history(&store, workspace, args.kind, &args.id_or_name)?;
    let mut out = std::io::stdout().lock();
    if args.format == TextOrJson::Json {
        return print_json(&mut out, &history);
    }
    write_history(&mut out, &history)?;
    Ok(ExitCode::SUCCESS)
}

fn write_history(out: &mut impl Write, h: &History) -> anyhow::Result<()> {
    writeln!(
        out,
        "{} {} ({}): {}, {}",
        h.kind,
        clean(&h.name),
        clean(&h.resource_id),
        plural(h.versions.len(), "version"),
        if h.current {
            "present in the latest snapshot"
        } else {
            "removed"
        }
    )?;
    for step in &h.steps {
        let event = match step.event {
            HistoryEvent::FirstSeen => "first seen",
            HistoryEvent::Added => "added",
            HistoryEvent::Modified => "modified",
            HistoryEvent::Removed => "removed",
        };
        let version = step
            .version_id
            .map(|v| format!("  (version {v})"))
            .unwrap_or_default();
        writeln!(
            out,
            "{}  snapshot {:<6} {:<10}  {}{version}",
            step.at,
            step.snapshot_id,
            event,
            clean(&step.name)
        )?;
        write_fields(out, &step.fields)?;
    }
    Ok(())
}

fn write_fields(out: &mut impl Write, fields: &[FieldChange]) -> anyhow::Result<()> {
    let shown =
        |v: Option<&serde_json::Value>| v.map_or_else(|| "(absent)".into(), |v| v.to_string());
    for f in fields {
        writeln!(
            out,
            "    {}: {} → {}{}",
            clean(&f.path),
            shown(f.old.as_ref()),
            shown(f.new.as_ref()),
            if f.api_drift { " (API drift)" } else { "" }
        )?;
    }
    Ok(())
}

/// `segwatch changes --since T [--until T] [--kind K]`.
pub(super) fn changes(settings: &Settings, args: ChangesArgs) -> anyhow::Result<ExitCode> {
    let (store, workspace) = open_read_only(settings)?;
    let report = audit::changes_between(&store, workspace, args.since, args.until, args.kind)?;
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    match args.format {
        ChangesFormat::Json => {
            print_json(&mut out, &report)?;
        }
        ChangesFormat::Csv => write_changes_csv(&mut out, &report)?,
        ChangesFormat::Table => write_changes_table(&mut out, &report)?,
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

fn write_changes_table(out: &mut impl Write, report: &ChangeReport) -> anyhow::Result<()> {
    let until = report.until.as_deref().unwrap_or("now");
    let observed = match (&report.first_observed_at, &report.last_observed_at) {
        (Some(first), Some(last)) => format!(", observed from {first} to {last}"),
        _ => String::new(),
    };
    writeln!(
        out,
        "{} from {} to {until} ({}{observed})",
        plural(report.changes.len(), "change"),
        report.since,
        plural(report.complete_polls as usize, "complete poll"),
    )?;
    if report.changes.is_empty() {
        return Ok(());
    }
    let rows: Vec<Vec<String>> = report
        .changes
        .iter()
        .map(|c| {
            vec![
                c.observed_at.to_string(),
                c.snapshot_id.to_string(),
                c.op.as_str().to_string(),
                c.kind.as_str().to_string(),
                clean(&c.resource_id),
                clean(&c.name),
            ]
        })
        .collect();
    let header = ["observed_at", "snapshot", "op", "kind", "id", "name"].map(String::from);
    let widths = column_widths(&header, &rows);
    writeln!(out)?;
    write_row(out, &header, &widths)?;
    for (row, change) in rows.iter().zip(&report.changes) {
        write_row(out, row, &widths)?;
        write_fields(out, &change.fields)?;
    }
    Ok(())
}

fn write_changes_csv(out: &mut impl Write, report: &ChangeReport) -> anyhow::Result<()> {
    let mut csv = csv::Writer::from_writer(out);
    csv.write_record([
        "observed_at",
        "snapshot_id",
        "previous_observed_at",
        "change_id",
        "kind",
        "resource_id",
        "name",
        "op",
        "fields",
    ])?;
    for c in &report.changes {
        csv.write_record([
            &c.observed_at.to_string(),
            &c.snapshot_id.to_string(),
            &c.previous_observed_at
                .map(|t| t.to_string())
                .unwrap_or_default(),
            &c.change_id.to_string(),
            c.kind.as_str(),
            &c.resource_id,
            &c.name,
            c.op.as_str(),
            &serde_json::to_string(&c.fields)?,
        ])?;
    }
    csv.flush()?;
    Ok(())
}

/// `segwatch state --at T [--kind K]`.
pub(super) fn state(settings: &Settings, args: StateArgs) -> anyhow::Result<ExitCode> {
    let (store, workspace) = open_read_only(settings)?;
    let state = audit::state_at(&store, workspace, args.at, args.kind)?;
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    match args.format {
        StateFormat::Json => {
            print_json(&mut out, &state)?;
        }
        StateFormat::Csv => write_state_csv(&mut out, &state)?,
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

fn write_state_csv(out: &mut impl Write, state: &StateAt) -> anyhow::Result<()> {
    let mut csv = csv::Writer::from_writer(out);
    csv.write_record([
        "snapshot_id",
        "observed_at",
        "kind",
        "id",
        "name",
        "version_id",
        "since_at",
        "content_hash",
        "body",
    ])?;
    let snapshot = state.snapshot_id.to_string();
    for r in &state.resources {
        csv.write_record([
            snapshot.as_str(),
            &state.observed_at.to_string(),
            r.kind.as_str(),
            &r.id,
            &r.name,
            &r.version_id.to_string(),
            &r.since_at.to_string(),
            &r.content_hash,
            &r.body.to_string(),
        ])?;
    }
    csv.flush()?;
    Ok(())
}

/// A value for a human table: NULL spelled out, control characters escaped so a value cannot
/// break the layout or forge lines.
fn table_cell(value: &SqlValue) -> String {
    match value {
        SqlValue::Null => "NULL".into(),
        SqlValue::Text(text) => clean(text),
        other => csv_cell(other),
    }
}

/// A value for CSV: NULL as an empty field, blobs as `x'…'` hex.
fn csv_cell(value: &SqlValue) -> String {
    match value {
        SqlValue::Null => String::new(),
        SqlValue::Integer(n) => n.to_string(),
        SqlValue::Real(x) => x.to_string(),
        SqlValue::Text(text) => text.clone(),
        SqlValue::Blob(bytes) => format!("x'{}'", hex(bytes)),
    }
}

fn json_cell(value: &SqlValue) -> serde_json::Value {
    match value {
        SqlValue::Null => serde_json::Value::Null,
        SqlValue::Integer(n) => (*n).into(),
        SqlValue::Real(x) => {
            serde_json::Number::from_f64(*x).map_or(serde_json::Value::Null, Into::into)
        }
        SqlValue::Text(text) => text.clone().into(),
        SqlValue::Blob(bytes) => format!("x'{}'", hex(bytes)).into(),
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unique_keys(columns: &[String]) -> Vec<String> {
    let mut seen = std::collections::HashMap::<&str, usize>::new();
    columns
        .iter()
        .map(|c| {
            let n = seen.entry(c).or_default();
            *n += 1;
            if *n == 1 {
                c.clone()
            } else {
                format!("{c}_{n}")
            }
        })
        .collect()
}

/// Escapes control characters and bidi overrides in text from the database or the workspace.
pub(super) fn clean(text: &str) -> String {
    segwatch_core::terminal::escape(text).into_owned()
}

pub(super) fn column_widths(header: &[String], rows: &[Vec<String>]) -> Vec<usize> {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    widths
}

pub(super) fn write_row(
    out: &mut impl Write,
    cells: &[String],
    widths: &[usize],
) -> std::io::Result<()> {
    let last = cells.len().saturating_sub(1);
    for (i, (cell, width)) in cells.iter().zip(widths).enumerate() {
        if i == last {
            write!(out, "{cell}")?;
        } else {
            let pad = width - cell.chars().count();
            write!(out, "{cell}{}  ", " ".repeat(pad))?;
        }
    }
    writeln!(out)
}

fn write_table(
    out: &mut impl Write,
    columns: &[String],
    rows: &[Vec<String>],
) -> std::io::Result<()> {
    let header: Vec<String> = columns.iter().map(|c| clean(c)).collect();
    let widths = column_widths(&header, rows);
    write_row(out, &header, &widths)?;
    let rule: Vec<String> = widths.iter().map(|w| "-".repeat(*w)).collect();
    write_row(out, &rule, &widths)?;
    for row in rows {
        write_row(out, row, &widths)?;
    }
    Ok(())
}
