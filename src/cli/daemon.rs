//! `segwatch run`: the daemon's plan built from the configuration (workspaces → jobs: pollers,
//! schedules), the same plan a one-shot poll runs.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::bail;

use super::args::TextOrJson;
use super::output::print_outcome;
use super::rules::load_rules;
use super::sinks;
use crate::config::Settings;
use crate::daemon::{DaemonPlan, WorkspaceJob};
use crate::poll::Poller;
use crate::rules::RuleSource;
use segwatch_api::segment::SegmentClient;

/// Everything polls need, checked before the first request: configuration, rules (an invalid
/// rule set stops here, and so does a workspace's rule selection that matches nothing), sinks.
pub(super) fn jobs(settings: &Settings) -> anyhow::Result<Vec<WorkspaceJob>> {
    let targets = settings.targets()?;
    let source = RuleSource::resolve(settings.rules.path.as_deref());
    let rules = Arc::new(load_rules(&source)?);
    let sinks = Arc::new(sinks::build(settings)?);
    segwatch_sinks::check_rule_sinks(&rules, &sinks).map_err(|e| anyhow::anyhow!("{e}"))?;
    let audit_lookback = settings.collect.audit_lookback()?;
    let delivery_deadline = settings.delivery.poll_deadline()?;
    let alert_after_failing = match settings.health.alert_after_failing_secs {
        0 => None,
        secs => Some(Duration::from_secs(secs)),
    };
    let mut jobs = Vec::with_capacity(targets.len());
    for target in targets {
        let selected = if target.rules.is_empty() {
            rules.clone()
        } else {
            let (set, unmatched) = rules.select(&target.rules)?;
            if !unmatched.is_empty() {
                bail!(
                    "invalid configuration: `{}.rules`: {} match no rule in {source}",
                    target.key,
                    unmatched.join(", "),
                );
            }
            Arc::new(set)
        };
        let paused = target.paused;
        let client = SegmentClient::new(target.client)?;
        let mut poller = Poller::new(client, settings.collect.secret_policy(), target.name)
            .with_collect(settings.collect.options())
            .with_rules(selected, settings.rules.alert_on_baseline)
            .with_sinks(sinks.clone())
            .with_delivery_deadline(delivery_deadline)
            .with_configured_workspaces(settings.all_workspace_names())
            .with_flow_patterns(settings.flows.patterns()?);
        if let Some(lookback) = audit_lookback {
            poller = poller.with_audit_trail(lookback);
        }
        jobs.push(WorkspaceJob {
            poller,
            schedule: target.schedule,
            schedule_text: target.schedule_text,
            alert_after_failing,
            retention: settings.retention,
            paused,
        });
    }
    Ok(jobs)
}

/// The daemon: [`crate::daemon::run`] with the configuration loaded (again on SIGHUP) by the
/// same code as every other command.
pub(super) async fn run(
    config: Option<PathBuf>,
    workspace: Option<String>,
) -> anyhow::Result<ExitCode> {
    let load = || {
        let settings = super::settings(config.as_deref(), workspace.as_deref())?;
        let health_listen = match settings.health.listen.trim() {
            "" => None,
            listen => Some(listen.parse().map_err(|e| {
                anyhow::anyhow!(
                    "invalid configuration: `health.listen`: `{listen}` is not host:port: {e}"
                )
            })?),
        };
        Ok(DaemonPlan {
            db: settings.database.path.clone(),
            health_listen,
            health_token: settings.health.token()?,
            health_max_age: Duration::from_secs(settings.health.max_age_secs),
            jobs: jobs(&settings)?,
        })
    };
    let print: crate::daemon::OutcomeHandler = Arc::new(|workspace, outcome| {
        if let Err(e) = print_outcome(outcome, TextOrJson::Text, Some(workspace)) {
            tracing::warn!("cannot write the poll's output: {e:#}");
        }
    });
    crate::daemon::run(load, print).await?;
    Ok(ExitCode::SUCCESS)
}
