//! The alerts and their deliveries: `segwatch alerts`, `segwatch deliveries` and `segwatch
//! deliveries retry`.

use std::io::Write;
use std::process::ExitCode;

use anyhow::bail;

use super::args::{SeverityArg, StatusArg, TableOrJson};
use super::output::print_json;
use segwatch_core::terminal::Escaped;
use segwatch_store::{AlertFilter, DeliveryStatus, Store};

/// The alerts the options of `segwatch alerts` select.
pub(super) fn filter(
    status: Option<StatusArg>,
    severity: Option<SeverityArg>,
    rule: Option<String>,
    limit: usize,
) -> AlertFilter {
    AlertFilter {
        status: status.map(StatusArg::status),
        min_severity: severity.map(SeverityArg::severity),
        rule_id: rule,
        snapshot_id: None,
        limit: Some(limit),
    }
}

/// `segwatch alerts`: the alerts `filter` selects, newest first.
pub(super) fn list(
    store: &Store,
    workspace: i64,
    filter: &AlertFilter,
    format: TableOrJson,
) -> anyhow::Result<ExitCode> {
    let alerts = store.alerts(workspace, filter)?;
    let mut out = std::io::stdout().lock();
    if format == TableOrJson::Json {
        return print_json(&mut out, &alerts);
    }
    writeln!(
        out,
        "{:>6}  {:<8}  {:<8}  {:<36}  {:<24}  {:<24}  summary",
        "id", "status", "severity", "rule", "opened", "resolved"
    )?;
    for a in &alerts {
        writeln!(
            out,
            "{:>6}  {:<8}  {:<8}  {:<36}  {:<24}  {:<24}  {}",
            a.id,
            a.status.as_str(),
            a.severity.as_str(),
            // Width applies to a String, not to a Display that writes piecewise.
            Escaped(&a.rule_id).to_string(),
            a.opened_at,
            a.resolved_at
                .map_or_else(|| "-".to_owned(), |t| t.to_string()),
            Escaped(&a.summary)
        )?;
    }
    Ok(ExitCode::SUCCESS)
}
/// `segwatch deliveries`: the deliveries of alerts to sinks, newest first.
pub(super) fn deliveries(
    store: &Store,
    workspace: i64,
    status: Option<DeliveryStatus>,
    limit: usize,
    format: TableOrJson,
) -> anyhow::Result<ExitCode> {
    let rows = store.deliveries(workspace, status, limit)?;
    let mut out = std::io::stdout().lock();
    if format == TableOrJson::Json {
        return print_json(&mut out, &rows);
    }
    writeln!(
        out,
        "{:>6}  {:<16}  {:>6}  {:<8}  {:<7}  {:>8}  {:<24}  detail",
        "id", "sink", "alert", "event", "status", "attempts", "next attempt"
    )?;
    for d in &rows {
        let detail = Escaped(d.last_error.as_deref().unwrap_or(&d.summary));
        writeln!(
            out,
            "{:>6}  {:<16}  {:>6}  {:<8}  {:<7}  {:>8}  {:<24}  {detail}",
            d.id,
            Escaped(&d.sink).to_string(),
            d.alert_id,
            d.event,
            d.status,
            d.attempts,
            d.next_attempt_at
        )?;
    }
    Ok(ExitCode::SUCCESS)
}

/// `segwatch deliveries retry`: a failed or dead delivery queued again.
pub(super) fn retry(store: &mut Store, workspace: i64, id: i64) -> anyhow::Result<ExitCode> {
    if store.retry_delivery(workspace, id)? {
        println!("delivery {id} is queued again; the next poll sends it");
        Ok(ExitCode::SUCCESS)
    } else {
        bail!("no failed or dead delivery {id} in this workspace (see `segwatch deliveries`)")
    }
}
