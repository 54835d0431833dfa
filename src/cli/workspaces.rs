//! `segwatch workspaces` (list) and `segwatch workspaces delete NAME`: wiring and formatting;
//! the facts come from `store` and `crate::workspaces`.

use std::io::{BufRead, IsTerminal, Write};
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::Args;

use super::{TableOrJson, TextOrJson, USAGE_ERROR, WaitArgs, open_writer, plural, print_json};
use crate::config::Settings;
use crate::workspaces::{WorkspaceOverview, overview};
use segwatch_core::terminal::Escaped;
use segwatch_store::{DeletionReport, Store, StoreError};

/// Options of `segwatch workspaces delete`.
#[derive(Debug, Args)]
pub(super) struct DeleteArgs {
    /// The workspace's name in the database.
    name: String,
    /// Do not ask for confirmation (required when there is no terminal).
    #[arg(long)]
    yes: bool,
    /// Output format.
    #[arg(long, value_enum, default_value_t = TextOrJson::Text)]
    format: TextOrJson,
    #[command(flatten)]
    wait: WaitArgs,
}

/// `segwatch workspaces`: reads only; without a database, lists the configuration alone.
pub(super) fn list(settings: &Settings, format: TableOrJson) -> anyhow::Result<ExitCode> {
    let configured = settings.configured_workspaces()?;
    let path = &settings.database.path;
    let stored = if path.exists() {
        Store::open_read_only(path)
            .and_then(|store| store.stored_workspaces())
            .with_context(|| format!("cannot read the database {}", path.display()))?
    } else {
        Vec::new()
    };
    let list = overview(&configured, stored);
    let mut out = std::io::stdout().lock();
    if format == TableOrJson::Json {
        return print_json(&mut out, &list);
    }
    for w in &list {
        write_workspace(&mut out, w)?;
    }
    Ok(ExitCode::SUCCESS)
}

fn write_workspace(out: &mut impl Write, w: &WorkspaceOverview) -> anyhow::Result<()> {
    write!(out, "{}  [{}]", w.name, w.status.as_str())?;
    if let Some(d) = &w.description {
        write!(out, "  {d}")?;
    }
    writeln!(out)?;
    if let Some(id) = &w.segment_workspace_id {
        writeln!(out, "  segment workspace id: {}", Escaped(id))?;
    }
    match &w.last_complete {
        Some(p) => writeln!(
            out,
            "  last complete poll:   snapshot {} at {}",
            p.snapshot_id, p.finished_at
        )?,
        None => writeln!(out, "  last complete poll:   none")?,
    }
    if let Some(p) = &w.last_poll {
        write!(
            out,
            "  last poll:            {} (snapshot {}",
            p.status, p.snapshot_id
        )?;
        if let Some(at) = &p.finished_at {
            write!(out, " at {at}")?;
        }
        write!(out, ")")?;
        if let Some(e) = &p.error {
            write!(out, ": {}", Escaped(e))?;
        }
        writeln!(out)?;
    }
    for k in &w.kinds_not_read {
        writeln!(
            out,
            "  not read in full:     {} {}: {}",
            k.kind.as_str(),
            k.status,
            Escaped(&k.reason)
        )?;
    }
    writeln!(out, "  open findings:        {}", w.open_findings)?;
    Ok(())
}

/// `segwatch workspaces delete NAME`: checks the name, confirms, deletes, reports.
pub(super) fn delete(settings: &Settings, args: DeleteArgs) -> anyhow::Result<ExitCode> {
    let path = &settings.database.path;
    if !path.exists() {
        bail!("no database at {}; nothing to delete", path.display());
    }
    let mut store = open_writer(path, "workspaces delete", args.wait)?;
    if store.find_workspace(&args.name)?.is_none() {
        return Err(StoreError::UnknownWorkspace {
            name: args.name,
            known: store.workspace_names()?,
        }
        .into());
    }
    if !args.yes {
        let confirmed = confirm(
            &args.name,
            std::io::stdin().is_terminal(),
            &mut std::io::stdin().lock(),
            &mut std::io::stderr(),
        )?;
        if !confirmed {
            eprintln!(
                "error: refusing to delete workspace `{}` without confirmation: there is no \
                 terminal to confirm on; pass --yes to confirm on the command line",
                args.name
            );
            return Ok(ExitCode::from(USAGE_ERROR));
        }
    }
    let report = store
        .delete_workspace(&args.name)
        .with_context(|| format!("cannot delete workspace `{}`", args.name))?;
    let configured = settings
        .configured_workspaces()
        .map(|list| list.into_iter().find(|w| w.name == args.name))
        .unwrap_or_default();
    if let Some(w) = configured {
        let what = if w.paused {
            "it is paused now; once un-paused, the daemon (or `segwatch poll`)"
        } else {
            "the daemon (or `segwatch poll`)"
        };
        eprintln!(
            "warning: workspace `{}` is still in the configuration: {what} will poll it again \
             from scratch (a new baseline). Remove it from the configuration, or keep it paused.",
            args.name
        );
    }
    let mut out = std::io::stdout().lock();
    if args.format == TextOrJson::Json {
        let mut value = serde_json::to_value(&report)?;
        value["bytes_reclaimed"] = report.bytes_reclaimed().into();
        return print_json(&mut out, &value);
    }
    write_report(&mut out, &report)?;
    Ok(ExitCode::SUCCESS)
}

fn write_report(out: &mut impl Write, report: &DeletionReport) -> anyhow::Result<()> {
    writeln!(
        out,
        "deleted workspace `{}`: {}",
        report.workspace,
        plural(report.rows(), "row")
    )?;
    let width = report
        .tables
        .iter()
        .map(|t| t.table.len())
        .max()
        .unwrap_or(0);
    for t in &report.tables {
        writeln!(out, "  {:<width$}  {}", t.table, t.rows)?;
    }
    match &report.vacuum_error {
        None => writeln!(
            out,
            "VACUUM: {} → {} bytes ({} reclaimed)",
            report.bytes_before,
            report.bytes_after,
            report.bytes_reclaimed()
        )?,
        Some(e) => writeln!(
            out,
            "VACUUM failed ({e}); the rows are deleted and their space is reused by later \
             writes (`sqlite3 FILE VACUUM` reclaims it now)"
        )?,
    }
    Ok(())
}

/// Asks the person at the terminal to type the workspace name. `Ok(false)`: no terminal to ask
/// on; a different name typed is an error.
fn confirm(
    name: &str,
    terminal: bool,
    input: &mut impl BufRead,
    prompt: &mut impl Write,
) -> anyhow::Result<bool> {
    if !terminal {
        return Ok(false);
    }
    write!(
        prompt,
        "This deletes every record of workspace `{name}` (snapshots, versions, changes, alerts, \
         deliveries, audit trail, privacy requests) from the database; it cannot be undone.\n\
         Type the workspace name to confirm: "
    )?;
    prompt.flush()?;
    let mut typed = String::new();
    input.read_line(&mut typed)?;
    if typed.trim_end_matches(['\r', '\n']) != name {
        bail!("not confirmed (the name typed differs); nothing was deleted");
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_exact_name_typed_at_a_terminal_confirms() {
        let ask = |terminal: bool, typed: &str| {
            let mut prompt = Vec::new();
            let result = confirm("prod", terminal, &mut typed.as_bytes(), &mut prompt);
            (result, String::from_utf8(prompt).unwrap())
        };
        let (ok, prompt) = ask(true, "prod\n");
        assert!(ok.unwrap());
        assert!(prompt.contains("`prod`"), "{prompt}");
        assert!(ask(true, "prod\r\n").0.unwrap());
        for typed in ["Prod\n", "prod \n", "\n", ""] {
            let err = ask(true, typed).0.unwrap_err().to_string();
            assert!(err.contains("not confirmed"), "{typed:?}: {err}");
        }
        let (refused, prompt) = ask(false, "prod\n");
        assert!(!refused.unwrap(), "no terminal: not confirmed");
        assert!(prompt.is_empty(), "nothing is asked without a terminal");
    }
}
