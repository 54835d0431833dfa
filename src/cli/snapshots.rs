//! The stored snapshots: `segwatch snapshots` (list), `segwatch diff` (between two of them) and
//! `segwatch prune` (the retention policy).

use std::io::Write;
use std::process::ExitCode;

use anyhow::{Context, bail};

use super::args::{TableOrJson, TextOrJson};
use super::output::{plural, print_json};
use crate::config::Settings;
use crate::stored;
use segwatch_core::ids::SnapshotId;
use segwatch_core::terminal::Escaped;
use segwatch_store::{SnapshotInfo, SnapshotStatus, Store};

/// `segwatch snapshots`: the latest `limit` snapshots, newest first.
pub(super) fn list(
    store: &Store,
    workspace: i64,
    limit: usize,
    format: TableOrJson,
) -> anyhow::Result<ExitCode> {
    let list = store.snapshots(workspace, limit)?;
    let mut out = std::io::stdout().lock();
    if format == TableOrJson::Json {
        return print_json(&mut out, &list);
    }
    writeln!(
        out,
        "{:>6}  {:<24}  {:<8}  {:>9}  {:>7}  {:>7}  {:>8}  {:>8}  {:>9}  error",
        "id",
        "started",
        "status",
        "resources",
        "added",
        "removed",
        "modified",
        "requests",
        "duration"
    )?;
    for s in &list {
        writeln!(out, "{}", snapshot_line(s))?;
    }
    Ok(ExitCode::SUCCESS)
}

fn snapshot_line(s: &SnapshotInfo) -> String {
    let n = |v: Option<i64>| v.map_or_else(|| "-".to_string(), |v| v.to_string());
    let duration = s.duration_ms.map_or_else(
        || "-".to_string(),
        |ms| format!("{:.1}s", ms as f64 / 1000.0),
    );
    let error = s.error.as_deref().unwrap_or("");
    let mut base = if s.status == SnapshotStatus::Complete && s.base_snapshot_id.is_none() {
        "baseline".to_owned()
    } else {
        String::new()
    };
    if !s.kind_status.is_empty() {
        let kinds: Vec<String> = s
            .kind_status
            .iter()
            .map(|(k, st)| format!("{k} {}", st.label()))
            .collect();
        if !base.is_empty() {
            base.push_str("; ");
        }
        base.push_str(&kinds.join(", "));
    }
    format!(
        "{:>6}  {:<24}  {:<8}  {:>9}  {:>7}  {:>7}  {:>8}  {:>8}  {:>9}  {}{}",
        s.id,
        s.started_at,
        s.status.as_str(),
        n(s.resource_count),
        n(s.added),
        n(s.removed),
        n(s.modified),
        n(s.api_requests),
        duration,
        Escaped(&base),
        Escaped(error)
    )
}

/// `segwatch diff`: the changes between two complete snapshots (default: the latest and the
/// one before it).
pub(super) fn diff(
    store: &Store,
    workspace: i64,
    from: Option<i64>,
    to: Option<i64>,
    format: TextOrJson,
) -> anyhow::Result<ExitCode> {
    let to = match to {
        Some(id) => SnapshotId(id),
        None => store
            .latest_complete(workspace)?
            .context("no complete snapshot yet: run `segwatch poll`")?,
    };
    let to_info = store.snapshot(workspace, to)?;
    if to_info.status != SnapshotStatus::Complete {
        bail!(
            "snapshot {to} is {}, not complete; pick a complete one (see `segwatch snapshots`)",
            to_info.status.as_str()
        );
    }
    let from = match from {
        Some(id) => SnapshotId(id),
        None => store.previous_complete(workspace, to)?.with_context(|| {
            format!("snapshot {to} is the baseline: there is nothing before it to diff against")
        })?,
    };
    // Adjacent snapshots have their changes stored; any other pair is diffed from the
    // reconstructed states, which gives the same result for adjacent ones.
    let changes = if to_info.base_snapshot_id == Some(from) {
        store.changes_of(to)?
    } else {
        let mut changes = stored::diff_snapshots(store, workspace, from, to)?;
        // Who made them: the latest stored audit event on each resource over the interval.
        let end = to_info
            .finished_at
            .unwrap_or(to_info.started_at)
            .as_datetime();
        stored::attribute_since(store, workspace, from, end, &[], changes.iter_mut())?;
        changes
    };
    let mut out = std::io::stdout().lock();
    if format == TextOrJson::Json {
        return print_json(
            &mut out,
            &serde_json::json!({"from": from, "to": to, "changes": changes}),
        );
    }
    writeln!(
        out,
        "{} from snapshot {from} to snapshot {to}",
        plural(changes.len(), "change")
    )?;
    for change in &changes {
        writeln!(out, "\n{change}")?;
        write!(out, "{}", change.text_diff)?;
    }
    Ok(ExitCode::SUCCESS)
}

/// `segwatch prune`: the retention policy applied to each configured workspace.
pub(super) fn prune(
    settings: &Settings,
    store: &mut Store,
    dry_run: bool,
    as_of: Option<chrono::DateTime<chrono::Utc>>,
    format: TextOrJson,
) -> anyhow::Result<ExitCode> {
    let policy = settings
        .retention
        .at(as_of.unwrap_or_else(chrono::Utc::now), dry_run);
    let mut reports = Vec::new();
    for name in settings.workspace_names() {
        let Some(id) = store.find_workspace(&name)? else {
            continue;
        };
        reports.push((name, store.prune(id, &policy)?));
    }
    if format == TextOrJson::Json {
        let list: Vec<_> = reports
            .iter()
            .map(
                |(name, r)| serde_json::json!({"workspace": name, "dry_run": dry_run, "pruned": r}),
            )
            .collect();
        return print_json(&mut std::io::stdout().lock(), &list);
    }
    let verb = if dry_run { "would delete" } else { "deleted" };
    for (name, r) in &reports {
        println!(
            "{name}: {verb} {} and {} (tombstones kept)",
            plural(r.failed_polls, "failed-poll record"),
            plural(r.quiet_snapshots, "quiet snapshot")
        );
    }
    Ok(ExitCode::SUCCESS)
}
