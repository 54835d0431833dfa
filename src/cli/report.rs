//! `segwatch report`: the compliance report of a period, for auditors. Reads only.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, bail};
use chrono::{DateTime, Utc};
use clap::{Args, ValueEnum};

use super::{load_rules, open_read_only};
use crate::config::Settings;
use crate::report::{self, Bound, Period, ReportInput};
use crate::rules::RuleSource;

/// Options of `segwatch report`.
#[derive(Debug, Args)]
pub(super) struct ReportArgs {
    /// Output format.
    #[arg(long, value_enum, default_value_t = ReportFormat::Html)]
    format: ReportFormat,
    /// Start of the period: RFC 3339 or YYYY-MM-DD (UTC). Default: 30 days before --until.
    #[arg(long, value_name = "TIME", value_parser = parse_since)]
    since: Option<DateTime<Utc>>,
    /// End of the period (excluded): RFC 3339, or YYYY-MM-DD for the end of that day (UTC).
    /// Default: now.
    #[arg(long, value_name = "TIME", value_parser = parse_until)]
    until: Option<DateTime<Utc>>,
    /// Write the report to this file instead of standard output.
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
    /// A rule file or folder (default: `[rules] path`, else ./rules if present, else the
    /// built-in starter pack).
    #[arg(long, value_name = "PATH")]
    rules: Option<PathBuf>,
    /// At most this many rows per list of findings or alerts, most severe first (0: all).
    #[arg(long, value_name = "N", default_value_t = 1000)]
    max_rows: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum ReportFormat {
    /// One self-contained HTML file.
    Html,
    /// GitHub-flavoured Markdown.
    Md,
    /// The report's data.
    Json,
}

fn parse_since(text: &str) -> Result<DateTime<Utc>, String> {
    report::parse_time(text, Bound::Since)
}

fn parse_until(text: &str) -> Result<DateTime<Utc>, String> {
    report::parse_time(text, Bound::Until)
}

pub(super) fn run(settings: &Settings, args: ReportArgs) -> anyhow::Result<ExitCode> {
    let generated_at = Utc::now();
    let until = args.until.unwrap_or(generated_at);
    let since = args
        .since
        .unwrap_or(until - chrono::Duration::days(report::DEFAULT_PERIOD_DAYS));
    if since >= until {
        bail!(
            "--since ({}) must be before --until ({})",
            since.to_rfc3339(),
            until.to_rfc3339()
        );
    }
    let source = RuleSource::resolve(args.rules.as_deref().or(settings.rules.path.as_deref()));
    let rules = load_rules(&source)?;
    let name = settings.workspace_name(None)?;
    // The rules the workspace is polled with: its `[[workspaces]] rules` selection, if any.
    let rules = match settings.workspaces.iter().find(|w| w.name == name) {
        Some(w) if args.rules.is_none() && !w.rules.is_empty() => rules.select(&w.rules)?.0,
        _ => rules,
    };
    let flow_patterns = settings.flows.patterns()?;
    let (store, workspace) = open_read_only(settings)?;
    let input = ReportInput {
        workspace: &name,
        rules: &rules,
        rules_source: source.to_string(),
        period: Period { since, until },
        generated_at,
        max_rows: (args.max_rows > 0).then_some(args.max_rows),
        flow_patterns: &flow_patterns,
    };
    let built = report::gather(&store, workspace, &input)?;
    let format = match args.format {
        ReportFormat::Html => report::Format::Html,
        ReportFormat::Md => report::Format::Markdown,
        ReportFormat::Json => report::Format::Json,
    };
    let text = report::render(&built, format)?;
    match &args.out {
        None => {
            let mut out = std::io::stdout().lock();
            out.write_all(text.as_bytes())?;
            out.flush()?;
        }
        Some(path) => {
            write_atomically(path, text.as_bytes())?;
            let h = &built.header;
            println!(
                "report on snapshots {} to {} ({} complete polls, {} failed) written to {}",
                h.first_snapshot.id,
                h.last_snapshot.id,
                h.complete_polls,
                h.failed_polls,
                path.display()
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Writes through a temporary file in the same folder, renamed into place: a reader never sees
/// half a report, and a failed run leaves any previous file as it was.
fn write_atomically(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let name = path
        .file_name()
        .with_context(|| format!("--out {} names no file", path.display()))?
        .to_string_lossy();
    let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let written = std::fs::write(&tmp, bytes).and_then(|()| std::fs::rename(&tmp, path));
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(e).with_context(|| format!("cannot write the report to {}", path.display()));
    }
    Ok(())
}
