//! Output shared by several commands: what a poll found (text, or JSON lines), one JSON
//! document per line, and counted nouns.

use std::io::Write;
use std::process::ExitCode;

use super::args::TextOrJson;
use crate::poll::PollOutcome;
use segwatch_core::alerts::{AlertRecord, AlertStatus};
use segwatch_core::model::KindStatus;
use segwatch_core::terminal::Escaped;

/// Prints what a poll found; `workspace` labels every line (when several are polled).
pub(super) fn print_outcome(
    outcome: &PollOutcome,
    format: TextOrJson,
    workspace: Option<&str>,
) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    if format == TextOrJson::Json {
        // JSON lines: the poll, then one line per alert event, for log pipelines.
        let mut poll = serde_json::to_value(outcome)?;
        if let Some(map) = poll.as_object_mut() {
            map.remove("alerts");
            map.insert("type".into(), "poll".into());
            if let Some(name) = workspace {
                map.insert("workspace".into(), name.into());
            }
        }
        writeln!(out, "{poll}")?;
        for alert in &outcome.alerts {
            let mut line = alert_json_line(alert)?;
            if let (Some(map), Some(name)) = (line.as_object_mut(), workspace) {
                map.insert("workspace".into(), name.into());
            }
            writeln!(out, "{line}")?;
        }
        return Ok(());
    }
    let mut text = Vec::new();
    write_outcome(&mut text, outcome)?;
    let text = String::from_utf8(text)?;
    for line in text.lines() {
        match workspace {
            Some(name) => writeln!(out, "[{name}] {line}")?,
            None => writeln!(out, "{line}")?,
        }
    }
    Ok(())
}

/// Access changes a poll's text output lists one per line; the rest are counted.
const ACCESS_LINES: usize = 50;

fn write_outcome(out: &mut impl Write, outcome: &PollOutcome) -> anyhow::Result<()> {
    let counts: Vec<String> = outcome
        .resource_counts
        .iter()
        .map(|(k, n)| plural(*n, k.as_str()))
        .collect();
    let secs = outcome.duration_ms as f64 / 1000.0;
    match outcome.base_snapshot_id {
        None => writeln!(
            out,
            "snapshot {} complete: baseline of {} resources ({}); {} API requests in {secs:.1}s",
            outcome.snapshot_id,
            outcome.resource_count(),
            counts.join(", "),
            outcome.api_requests
        )?,
        Some(base) => writeln!(
            out,
            "snapshot {} complete: {} resources, {} since snapshot {base}; {} API requests in {secs:.1}s",
            outcome.snapshot_id,
            outcome.resource_count(),
            plural(outcome.changes.len(), "change"),
            outcome.api_requests
        )?,
    }
    for (kind, status) in &outcome.kind_status {
        let consequence = match status {
            KindStatus::Unavailable { carried: true, .. } => {
                "; its resources are kept as last seen"
            }
            KindStatus::Unavailable { .. } => "",
            KindStatus::Incomplete { .. } => "; none recorded as removed this poll",
        };
        writeln!(out, "{kind}: {}{consequence}", Escaped(&status.to_string()))?;
    }
    if !outcome.quarantined.is_empty() {
        writeln!(
            out,
            "{} the API sent could not be read; kept in the quarantine table",
            plural(outcome.quarantined.len(), "item")
        )?;
    }
    let c = &outcome.confirmation;
    if c.checked > 0 {
        writeln!(
            out,
            "{} missing from {} lists: {} still there, {} gone ({} confirmation requests)",
            plural(c.checked, "resource"),
            if c.checked == 1 { "its" } else { "their" },
            c.found,
            c.checked - c.found,
            c.requests
        )?;
    }
    for change in &outcome.changes {
        writeln!(out, "{change}")?;
    }
    if outcome.access_changes_total > 0 {
        writeln!(
            out,
            "effective access: {}",
            plural(outcome.access_changes_total, "change")
        )?;
        for access in outcome.access_changes.iter().take(ACCESS_LINES) {
            writeln!(out, "  {}", Escaped(&access.describe()))?;
        }
        if outcome.access_changes_total > ACCESS_LINES {
            writeln!(
                out,
                "  … and {} more (all are stored: `segwatch access`, view audit_access_changes)",
                outcome.access_changes_total - ACCESS_LINES
            )?;
        }
    }
    for drift in &outcome.api_drift {
        writeln!(out, "API drift: {} (no alerts)", Escaped(&drift.describe()))?;
    }
    for alert in &outcome.alerts {
        writeln!(out, "{}", alert_line(alert))?;
    }
    if let Some(d) = &outcome.deliveries {
        writeln!(
            out,
            "deliveries: {} sent{}{}, {} failed (will retry), {} dead",
            d.sent,
            if d.digests > 0 {
                format!(" ({} as digests)", d.digests)
            } else {
                String::new()
            },
            if d.summarised > 0 {
                format!(", {} summarised", d.summarised)
            } else {
                String::new()
            },
            d.failed,
            d.dead
        )?;
    }
    if !outcome.rule_problems.is_empty() {
        writeln!(
            out,
            "{} rule evaluations failed (see the log); those rules did not fire there",
            outcome.rule_problems.len()
        )?;
    }
    Ok(())
}

/// One human line per alert event: what happened, how bad, which rule, the summary (escaped:
/// it quotes names from the workspace).
fn alert_line(a: &AlertRecord) -> String {
    let event = match a.status {
        AlertStatus::Fired => "ALERT",
        AlertStatus::Open => "FINDING",
        AlertStatus::Resolved => "RESOLVED",
    };
    let why = a
        .resolution
        .as_deref()
        .map(|r| format!(" ({})", r.replace('_', " ")))
        .unwrap_or_default();
    format!(
        "{event} [{}] {}: {}{why}",
        a.severity.as_str().to_uppercase(),
        Escaped(&a.rule_id),
        Escaped(&a.summary)
    )
}

fn alert_json_line(a: &AlertRecord) -> anyhow::Result<serde_json::Value> {
    let mut value = serde_json::to_value(a)?;
    if let Some(map) = value.as_object_mut() {
        map.insert("type".into(), "alert".into());
    }
    Ok(value)
}

/// Writes one JSON document on its own line.
pub(super) fn print_json(
    out: &mut impl Write,
    value: &impl serde::Serialize,
) -> anyhow::Result<ExitCode> {
    serde_json::to_writer(&mut *out, value)?;
    writeln!(out)?;
    Ok(ExitCode::SUCCESS)
}

pub(super) fn plural(n: usize, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}
