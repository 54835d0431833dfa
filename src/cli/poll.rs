//! `segwatch poll`: each configured workspace polled once, in turn.

use std::process::ExitCode;

use anyhow::bail;

use super::args::{TextOrJson, WaitArgs};
use super::output::print_outcome;
use super::{USAGE_ERROR, daemon, open_writer};
use crate::config::Settings;
use crate::poll::PollError;

/// Polls each workspace once, in turn; a failed one does not stop the others. Paused ones are
/// skipped (said on stderr); one named with `--workspace` is refused.
pub(super) async fn run(
    settings: &Settings,
    format: TextOrJson,
    named: bool,
    wait: WaitArgs,
) -> anyhow::Result<ExitCode> {
    let mut jobs = daemon::jobs(settings)?;
    let several = jobs.len() > 1;
    let (paused, active): (Vec<_>, Vec<_>) = jobs.drain(..).partition(|j| j.paused);
    for job in &paused {
        let name = job.poller.workspace();
        if named {
            eprintln!(
                "error: workspace `{name}` is paused (`paused = true` in the configuration); \
                 set `paused = false` to poll it"
            );
            return Ok(ExitCode::from(USAGE_ERROR));
        }
        eprintln!("workspace `{name}` is paused; skipped");
    }
    let jobs = active;
    let mut store = open_writer(&settings.database.path, "poll", wait)?;
    let mut failures = Vec::new();
    for job in &jobs {
        let name = job.poller.workspace();
        let label = several.then_some(name);
        let polled = match job.poller.poll(&mut store).await {
            // Delivery follows the commit, from the outbox: what the poll queued, and retries.
            Ok(mut outcome) => match job.poller.deliver_queued(&mut store).await {
                Ok(deliveries) => {
                    outcome.deliveries = deliveries;
                    Ok(outcome)
                }
                Err(e) => Err(PollError::from(e)),
            },
            Err(e) => Err(e),
        };
        match polled {
            Ok(outcome) => print_outcome(&outcome, format, label)?,
            Err(e) => {
                if format == TextOrJson::Json {
                    println!(
                        "{}",
                        serde_json::json!({"type": "poll", "workspace": name, "status": "failed", "error": e.to_string()})
                    );
                }
                // A poll run from cron still raises the failing-polls alert and delivers.
                if let Err(e) = job
                    .poller
                    .after_failure(&mut store, job.alert_after_failing)
                    .await
                {
                    tracing::error!(workspace = %name, error = %e, "cannot record the failing-polls alert or deliver");
                }
                failures.push((name.to_string(), e));
            }
        }
    }
    match failures.len() {
        0 => Ok(ExitCode::SUCCESS),
        1 if !several => Err(failures.remove(0).1.into()),
        _ => {
            for (name, e) in &failures {
                eprintln!("error: workspace `{name}`: {e}");
            }
            bail!(
                "{} of {} workspaces failed to poll",
                failures.len(),
                jobs.len()
            )
        }
    }
}
