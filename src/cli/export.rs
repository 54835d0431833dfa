//! `segwatch export ocsf`: stored alert events as OCSF JSON lines, the same events an `ocsf`
//! sink writes, to backfill a SIEM. Reads only.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, bail};
use chrono::{DateTime, Utc};
use clap::{Args, Subcommand};

use super::open_read_only;
use crate::config::Settings;
use crate::report::{self, Bound};
use segwatch_core::time::Timestamp;
use segwatch_sinks::ocsf;

/// What `segwatch export` writes.
#[derive(Debug, Subcommand)]
pub(super) enum ExportCommand {
    /// The alert events (raised, updated and resolved) of a period as OCSF 1.5.0 JSON lines, oldest
    /// first: compliance findings as Compliance Findings (2003), change alerts as Detection
    /// Findings (2004), exactly as an `ocsf` sink writes them.
    Ocsf(OcsfArgs),
}

/// Options of `segwatch export ocsf`.
#[derive(Debug, Args)]
pub(super) struct OcsfArgs {
    /// Start of the period: RFC 3339 or YYYY-MM-DD (UTC).
    #[arg(long, value_name = "TIME", value_parser = parse_since)]
    since: DateTime<Utc>,
    /// End of the period (excluded): RFC 3339, or YYYY-MM-DD for the end of that day (UTC).
    /// Default: now.
    #[arg(long, value_name = "TIME", value_parser = parse_until)]
    until: Option<DateTime<Utc>>,
    /// Write to this file (replaced whole, only once complete) instead of standard output.
    #[arg(long, value_name = "FILE")]
    output: Option<PathBuf>,
}

fn parse_since(text: &str) -> Result<DateTime<Utc>, String> {
    report::parse_time(text, Bound::Since)
}

fn parse_until(text: &str) -> Result<DateTime<Utc>, String> {
    report::parse_time(text, Bound::Until)
}

pub(super) fn ocsf(settings: &Settings, args: OcsfArgs) -> anyhow::Result<ExitCode> {
    let until = args.until.unwrap_or_else(Utc::now);
    if args.since >= until {
        bail!(
            "--since ({}) must be before --until ({})",
            args.since.to_rfc3339(),
            until.to_rfc3339()
        );
    }
    let (store, workspace) = open_read_only(settings)?;
    let alerts = store.alerts_raised_or_resolved_between(
        workspace,
        &Timestamp::from(args.since).to_string(),
        &Timestamp::from(until).to_string(),
    )?;
    let updates: Vec<(segwatch_core::alerts::AlertRecord, segwatch_sinks::Update)> = store
        .finding_updates_between(
            workspace,
            &Timestamp::from(args.since).to_string(),
            &Timestamp::from(until).to_string(),
        )?
        .into_iter()
        .map(|(finding, update)| {
            let stamp = segwatch_sinks::Update {
                id: update.id,
                at: update.created_at,
            };
            (
                segwatch_sinks::outbox::as_of_update(&finding, &update),
                stamp,
            )
        })
        .collect();
    let events = ocsf::backfill(&alerts, &updates, args.since, until);
    match &args.output {
        None => {
            let mut out = std::io::BufWriter::new(std::io::stdout().lock());
            write_lines(&mut out, &events)?;
            out.flush()?;
        }
        Some(path) => {
            write_file(path, &events)?;
            println!(
                "{} OCSF events from {} to {} written to {}",
                events.len(),
                args.since.to_rfc3339(),
                until.to_rfc3339(),
                path.display()
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn write_lines(out: &mut impl Write, events: &[serde_json::Value]) -> std::io::Result<()> {
    for event in events {
        serde_json::to_writer(&mut *out, event)?;
        out.write_all(b"\n")?;
    }
    Ok(())
}

/// Writes through a temporary file in the same folder, renamed into place: a forwarder never
/// picks up half an export, and a failed run leaves any previous file as it was.
fn write_file(path: &Path, events: &[serde_json::Value]) -> anyhow::Result<()> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let name = path
        .file_name()
        .with_context(|| format!("--output {} names no file", path.display()))?
        .to_string_lossy();
    let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let written = std::fs::File::create(&tmp).and_then(|file| {
        let mut out = std::io::BufWriter::new(file);
        write_lines(&mut out, events)?;
        out.into_inner()
            .map_err(std::io::IntoInnerError::into_error)?
            .sync_all()?;
        std::fs::rename(&tmp, path)
    });
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(e).with_context(|| format!("cannot write {}", path.display()));
    }
    Ok(())
}
