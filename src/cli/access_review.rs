//! `segwatch access review`: the export of every grant for an access review, the import of a
//! filled-in review, and the follow-up of its revocations. The rows come from
//! [`crate::access::review`]; this file parses arguments and formats them.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use chrono::{DateTime, Utc};
use clap::{Args, Subcommand, ValueEnum};

use super::audit::parse_time;
use super::{WaitArgs, open_read_only, open_writer, print_json};
use crate::access::review::{
    self, COLUMNS, FOLLOW_UP_COLUMNS, FollowUp, ReviewExport, render_follow_up_html, render_html,
};
use crate::config::Settings;

/// Options of `segwatch access review`.
#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub(super) struct ReviewArgs {
    #[command(subcommand)]
    action: Option<ReviewCommand>,
    /// The instant (RFC 3339, YYYY-MM-DD or YYYY-MM-DD HH:MM[:SS], UTC; default: now): the
    /// grants of the latest complete poll at or before it.
    #[arg(long, value_name = "TIME", value_parser = parse_time)]
    at: Option<DateTime<Utc>>,
    /// Instead of the grants: each `revoke` decision of the reviews imported so far (of
    /// snapshots up to --at), carried out (the grant is gone at --at) or not.
    #[arg(long)]
    follow_up: bool,
    /// Output format.
    #[arg(long, value_enum, default_value_t = ReviewFormat::Csv)]
    format: ReviewFormat,
    /// Write to FILE (replaced whole) instead of standard output.
    #[arg(long, value_name = "FILE")]
    output: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
enum ReviewCommand {
    /// Record a filled-in review file (the CSV export, `decision` = approve, approved, revoke,
    /// revoked or empty) as evidence sealed in the hash chain. Exit 1 naming the file, line and
    /// column on a bad line (nothing is recorded then).
    Import(ImportArgs),
}

#[derive(Debug, Args)]
struct ImportArgs {
    /// The filled-in CSV file.
    file: PathBuf,
    /// Who decided the lines whose `reviewer` column is empty.
    #[arg(long, value_name = "NAME")]
    reviewer: Option<String>,
    #[command(flatten)]
    wait: WaitArgs,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum ReviewFormat {
    Csv,
    Json,
    Html,
}

/// `segwatch access review [import FILE]`.
pub(super) fn run(settings: &Settings, args: ReviewArgs) -> anyhow::Result<ExitCode> {
    if let Some(ReviewCommand::Import(import)) = args.action {
        return run_import(settings, import);
    }
    let (store, workspace_id) = open_read_only(settings)?;
    let workspace = settings.workspace_name(None)?;
    let at = args.at.unwrap_or_else(Utc::now);
    let generator = format!("segwatch {}", env!("CARGO_PKG_VERSION"));
    let mut bytes = Vec::new();
    let summary = if args.follow_up {
        let f = review::follow_up(&store, workspace_id, &workspace, at)?;
        match args.format {
            ReviewFormat::Json => print_json(&mut bytes, &f).map(|_| ())?,
            ReviewFormat::Csv => write_follow_up_csv(&mut bytes, &f)?,
            ReviewFormat::Html => bytes = render_follow_up_html(&f, &generator)?.into_bytes(),
        }
        format!(
            "{} revocations checked against snapshot {} ({} carried out, {} not)",
            f.revocations.len(),
            f.snapshot_id,
            f.carried_out,
            f.not_carried_out
        )
    } else {
        let domains = settings.access.internal_domains()?;
        let export = review::export(&store, workspace_id, &workspace, at, &domains)?;
        match args.format {
            ReviewFormat::Json => print_json(&mut bytes, &export).map(|_| ())?,
            ReviewFormat::Csv => write_csv(&mut bytes, &export)?,
            ReviewFormat::Html => bytes = render_html(&export, &generator)?.into_bytes(),
        }
        format!(
            "{} grants of snapshot {} to review",
            export.rows.len(),
            export.snapshot_id
        )
    };
    match &args.output {
        None => {
            let mut out = std::io::stdout().lock();
            out.write_all(&bytes)?;
            out.flush()?;
        }
        Some(path) => {
            write_file(path, &bytes)?;
            println!("{summary} written to {}", path.display());
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn run_import(settings: &Settings, args: ImportArgs) -> anyhow::Result<ExitCode> {
    let workspace = settings.workspace_name(None)?;
    let path = &settings.database.path;
    let mut store = open_writer(path, "access review import", args.wait)?;
    let Some(workspace_id) = store.find_workspace(&workspace)? else {
        anyhow::bail!(
            "the database {} has no workspace named `{workspace}`; has it been polled?",
            path.display()
        );
    };
    let recorded = review::import(
        &mut store,
        workspace_id,
        &workspace,
        &args.file,
        args.reviewer.as_deref(),
    )?;
    println!(
        "access review {} recorded: {} lines of snapshot {} ({} approved, {} revoked, {} undecided) by {}; sealed in the chain as {}",
        recorded.review_id,
        recorded.rows,
        recorded.snapshot_id,
        recorded.approved,
        recorded.revoked,
        recorded.undecided,
        if recorded.reviewers.is_empty() {
            "nobody"
        } else {
            &recorded.reviewers
        },
        recorded.chain_hash
    );
    Ok(ExitCode::SUCCESS)
}

fn write_csv(out: &mut Vec<u8>, export: &ReviewExport) -> anyhow::Result<()> {
    let mut csv = csv::Writer::from_writer(out);
    csv.write_record(COLUMNS)?;
    for row in &export.rows {
        csv.write_record(row.fields())?;
    }
    csv.flush()?;
    Ok(())
}

fn write_follow_up_csv(out: &mut Vec<u8>, f: &FollowUp) -> anyhow::Result<()> {
    let mut csv = csv::Writer::from_writer(out);
    csv.write_record(FOLLOW_UP_COLUMNS)?;
    for row in &f.revocations {
        csv.write_record(row.fields())?;
    }
    csv.flush()?;
    Ok(())
}

/// Writes through a temporary file in the same folder, renamed into place.
fn write_file(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let name = path
        .file_name()
        .with_context(|| format!("--output {} names no file", path.display()))?
        .to_string_lossy();
    let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let written = std::fs::write(&tmp, bytes).and_then(|()| std::fs::rename(&tmp, path));
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(e).with_context(|| format!("cannot write {}", path.display()));
    }
    Ok(())
}
