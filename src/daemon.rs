//! `segwatch run`: one polling task per workspace, each on its own schedule, under a supervisor
//! that handles signals and reloads.
//!
//! Like `cli`, this is wiring at the edge (errors are `anyhow`): the stages do the work. What this
//! module owns is the operational contract: polls of one workspace never overlap; ticks missed
//! during a poll or while the machine slept collapse into one; a failure in one workspace never
//! stops another; SIGTERM/SIGINT abandon in-flight polls cleanly (recorded as failed, nothing
//! half-written, deliveries left queued); SIGHUP swaps in a new configuration only if all of it
//! is valid.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use chrono::{DateTime, Utc};
use secrecy::{ExposeSecret, SecretString};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use crate::health::HealthState;
use crate::poll::{PollOutcome, Poller};
use crate::schedule::Schedule;
use segwatch_sinks::outbox::SinkScope;
use segwatch_store::Store;
use segwatch_store::lock::WriterLock;

/// How long stopping waits for the workspace tasks to record their abandoned polls.
const STOP_BOUND: Duration = Duration::from_secs(10);

/// One workspace as the daemon runs it.
pub struct WorkspaceJob {
    /// The poller (client, rules, sinks) of the workspace.
    pub poller: Poller,
    /// When it polls.
    pub schedule: Schedule,
    /// The schedule as written, for logs.
    pub schedule_text: String,
    /// Raise segwatch's own alert after polls have failed this long; `None`: never.
    pub alert_after_failing: Option<Duration>,
    /// What old records to prune after each poll.
    pub retention: crate::config::RetentionSettings,
    /// Not polled (`paused = true`): its task waits for a reload that resumes it.
    pub paused: bool,
}

/// Everything the daemon runs, built from the configuration (again on each SIGHUP).
pub struct DaemonPlan {
    /// The database every workspace writes to.
    pub db: PathBuf,
    /// Where `/healthz` and `/metrics` are served, if anywhere.
    pub health_listen: Option<SocketAddr>,
    /// The bearer token the endpoints require, if any.
    pub health_token: Option<SecretString>,
    /// `/healthz` turns 503 past this age of the last complete poll.
    pub health_max_age: Duration,
    /// The workspaces.
    pub jobs: Vec<WorkspaceJob>,
}

/// Called with each workspace's successful poll (the CLI prints its alerts).
pub type OutcomeHandler = Arc<dyn Fn(&str, &PollOutcome) + Send + Sync>;

/// Runs until SIGTERM or SIGINT. `load` builds the plan from the configuration; it is called
/// at start (an error stops the daemon) and on each SIGHUP (an error keeps the running plan).
pub async fn run(
    load: impl Fn() -> anyhow::Result<DaemonPlan>,
    on_outcome: OutcomeHandler,
) -> anyhow::Result<()> {
    let plan = load()?;
    // One writer per database: taken before anything is written or migrated, refused at once
    // if another process holds it, and held until the daemon exits (every task's connection
    // keeps a reference).
    let lock = Arc::new(WriterLock::acquire(&plan.db, "run", Duration::ZERO)?);
    // Migrate once, before any task opens its own connection.
    Store::open_writer(lock.clone())
        .with_context(|| format!("cannot open the database {}", plan.db.display()))?;
    let (db, listen) = (plan.db.clone(), plan.health_listen);
    let token = plan.health_token.clone();
    let health = match listen {
        None => None,
        Some(addr) => {
            let state = Arc::new(HealthState::new(
                db.clone(),
                plan.health_max_age,
                clients(&plan.jobs),
            ));
            state.set_paused(paused(&plan.jobs));
            let bound =
                crate::health::serve_guarded(addr, state.clone(), plan.health_token.clone())
                    .await
                    .with_context(|| format!("cannot listen on {addr}"))?;
            tracing::info!(%bound, "serving /healthz and /metrics");
            Some(state)
        }
    };
    let shutdown = shutdown_signal();
    tokio::pin!(shutdown);
    let mut hangup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())?;
    let (stop, stopped) = watch::channel(false);
    let context = TaskContext {
        lock,
        stop: stopped,
        health: health.clone(),
        on_outcome,
    };
    let mut tasks: HashMap<String, RunningJob> = HashMap::new();
    tracing::info!(
        workspaces = plan.jobs.len(),
        "segwatch daemon started; first polls now"
    );
    for job in plan.jobs {
        let name = job.poller.workspace().to_string();
        tasks.insert(name, spawn(job, &context));
    }
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            _ = hangup.recv() => {}
        }
        // Reload everything, or nothing: an invalid new configuration or rule set is reported
        // with the same messages as `rules validate`, and the old one stays.
        let plan = match load().and_then(|p| {
            if p.db != db {
                anyhow::bail!("`database.path` changed; restart segwatch to use another database");
            }
            if p.health_listen != listen {
                anyhow::bail!("`health.listen` changed; restart segwatch to move the endpoint");
            }
            if secret_text(&p.health_token) != secret_text(&token) {
                anyhow::bail!("`health.token` changed; restart segwatch to use the new token");
            }
            Ok(p)
        }) {
            Ok(plan) => plan,
            Err(e) => {
                tracing::error!(
                    "reload rejected, keeping the previous configuration and rules: {e:#}"
                );
                continue;
            }
        };
        if let Some(health) = &health {
            *health
                .workspaces
                .write()
                .expect("the workspace lock is never poisoned") = clients(&plan.jobs);
            health.set_paused(paused(&plan.jobs));
        }
        let mut kept = HashMap::new();
        for job in plan.jobs {
            let name = job.poller.workspace().to_string();
            let running = match tasks.remove(&name) {
                Some(running) if !running.handle.is_finished() => {
                    // The task takes it between polls, never during one.
                    let _ = running.updates.send(job);
                    running
                }
                _ => {
                    tracing::info!(workspace = %name, "workspace added");
                    spawn(job, &context)
                }
            };
            kept.insert(name, running);
        }
        for (name, gone) in tasks.drain() {
            // Dropping its sender ends the task after any poll in flight.
            tracing::info!(workspace = %name, "workspace removed from the configuration; it stops after its current poll");
            drop(gone.updates);
        }
        tasks = kept;
        tracing::info!(workspaces = tasks.len(), "configuration and rules reloaded");
    }
    let _ = stop.send(true);
    let handles = tasks.into_values().map(|t| t.handle);
    if tokio::time::timeout(STOP_BOUND, wait_all(handles))
        .await
        .is_err()
    {
        tracing::warn!(
            "some workspaces did not stop in time; their polls are marked failed at the next start"
        );
    }
    tracing::info!("segwatch daemon stopped");
    Ok(())
}

struct RunningJob {
    updates: mpsc::UnboundedSender<WorkspaceJob>,
    handle: JoinHandle<()>,
}

#[derive(Clone)]
struct TaskContext {
    /// The database's writer lock, held for the daemon's life.
    lock: Arc<WriterLock>,
    stop: watch::Receiver<bool>,
    health: Option<Arc<HealthState>>,
    on_outcome: OutcomeHandler,
}

fn clients(jobs: &[WorkspaceJob]) -> Vec<(String, segwatch_api::segment::SegmentClient)> {
    jobs.iter()
        .map(|j| (j.poller.workspace().to_string(), j.poller.client().clone()))
        .collect()
}

fn paused(jobs: &[WorkspaceJob]) -> Vec<String> {
    jobs.iter()
        .filter(|j| j.paused)
        .map(|j| j.poller.workspace().to_string())
        .collect()
}

fn spawn(job: WorkspaceJob, context: &TaskContext) -> RunningJob {
    let (updates, receiver) = mpsc::unbounded_channel();
    let name = job.poller.workspace().to_string();
    let context = context.clone();
    let handle = tokio::spawn(async move {
        if let Err(e) = workspace_loop(job, receiver, context).await {
            // Only opening the database can end a workspace's loop with an error; the others
            // go on.
            tracing::error!(workspace = %name, "workspace stopped: {e:#}");
        }
    });
    RunningJob { updates, handle }
}

/// One workspace: poll now, then at each tick, until stopped or removed. While paused it only
/// waits for a reload; un-paused, it polls at once.
async fn workspace_loop(
    mut job: WorkspaceJob,
    mut updates: mpsc::UnboundedReceiver<WorkspaceJob>,
    mut context: TaskContext,
) -> anyhow::Result<()> {
    let name = job.poller.workspace().to_string();
    let mut store = Store::open_writer(context.lock.clone())
        .with_context(|| format!("cannot open the database {}", context.lock.db().display()))?;
    if job.paused {
        tracing::info!(workspace = %name, "workspace paused in the configuration; not polled until un-paused and reloaded");
    } else {
        tracing::info!(workspace = %name, schedule = %job.schedule_text, "workspace scheduled; first poll now");
    }
    let mut next = Utc::now();
    // When the workspace was last un-paused: failing time before it does not count towards the
    // failing-polls alert.
    let mut resumed_at = None;
    // Deliveries run in a task of their own, so a sink that never answers delays no poll.
    let (sinks_of, sinks_rx) = watch::channel(job.poller.clone());
    let wake = Arc::new(tokio::sync::Notify::new());
    let _delivery = AbortOnDrop(tokio::spawn(delivery_loop(
        name.clone(),
        context.lock.clone(),
        sinks_rx,
        wake.clone(),
        context.stop.clone(),
    )));
    loop {
        let wait = (next - Utc::now()).to_std().unwrap_or_default();
        tokio::select! {
            _ = context.stop.wait_for(|stop| *stop) => return Ok(()),
            update = updates.recv() => {
                let Some(new) = update else { return Ok(()) };
                let was_paused = std::mem::replace(&mut job, new).paused;
                sinks_of.send_replace(job.poller.clone());
                match (was_paused, job.paused) {
                    (true, false) => {
                        tracing::info!(workspace = %name, "workspace resumed; polling now");
                        next = Utc::now();
                        resumed_at = Some(next);
                    }
                    (false, true) => {
                        tracing::info!(workspace = %name, "workspace paused; its data is kept and it is not polled");
                    }
                    _ => next = next.min(job.schedule.next_after(Utc::now())),
                }
                continue;
            }
            _ = tokio::time::sleep(wait), if !job.paused => {}
        }
        let started = Utc::now();
        let result = tokio::select! {
            result = job.poller.poll(&mut store) => Some(result),
            _ = context.stop.wait_for(|stop| *stop) => None,
        };
        match result {
            Some(Ok(outcome)) => {
                resumed_at = None;
                if let Some(health) = &context.health {
                    health.count_poll(&name, true);
                }
                (context.on_outcome)(&name, &outcome);
            }
            Some(Err(e)) => {
                if let Some(health) = &context.health {
                    health.count_poll(&name, false);
                }
                tracing::error!(workspace = %name, error = %e, "poll failed; the next tick tries again");
                let threshold =
                    failing_threshold(&store, &name, job.alert_after_failing, resumed_at);
                if let Err(e) = job.poller.raise_failing_alert(&mut store, threshold) {
                    tracing::error!(workspace = %name, error = %e, "cannot record the failing-polls alert");
                }
            }
            None => {
                let workspace = store.workspace_id(&name)?;
                store.mark_interrupted(workspace)?;
                tracing::warn!(workspace = %name, "stopped during a poll: the poll was abandoned and recorded as failed");
                return Ok(());
            }
        }
        // Whatever the poll queued (alerts, or the failing-polls alert) goes out now.
        wake.notify_one();
        prune(&mut store, &name, &job.retention);
        let now = Utc::now();
        let skipped = job.schedule.ticks_between(started, now);
        if skipped > 0 {
            tracing::warn!(
                workspace = %name,
                skipped,
                "ticks passed while the poll ran; skipped them (polls never overlap)"
            );
        }
        next = job.schedule.next_after(now);
    }
}

/// How often a workspace's delivery task looks for due deliveries (retries after backoff)
/// when no poll woke it.
const DELIVERY_TICK: Duration = Duration::from_secs(15);

/// Aborts a task when dropped: a workspace's delivery task ends with its workspace.
struct AbortOnDrop(JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// One workspace's outbox: sends what is due after every poll and every [`DELIVERY_TICK`],
/// with the sinks of the workspace's latest configuration, on a database connection of its
/// own. A send cut short by shutdown is not recorded, so it is sent again (at least once).
async fn delivery_loop(
    name: String,
    lock: Arc<WriterLock>,
    poller: watch::Receiver<Poller>,
    wake: Arc<tokio::sync::Notify>,
    mut stop: watch::Receiver<bool>,
) {
    let mut store = match Store::open_writer(lock.clone()) {
        Ok(store) => store,
        Err(e) => {
            tracing::error!(workspace = %name, error = %e, "cannot open the database for deliveries");
            return;
        }
    };
    // One pass per sink at a time, each on its own connection: a sink that never answers
    // holds its own pass, and the next wake skips it until that pass ends.
    let mut passes: HashMap<String, JoinHandle<()>> = HashMap::new();
    let mut settled: Option<Vec<String>> = None;
    loop {
        tokio::select! {
            _ = stop.wait_for(|stop| *stop) => break,
            _ = wake.notified() => {}
            _ = tokio::time::sleep(DELIVERY_TICK) => {}
        }
        let poller = poller.borrow().clone();
        let sinks = poller.sink_names();
        passes.retain(|_, pass| !pass.is_finished());
        for sink in &sinks {
            if passes.contains_key(sink) {
                tracing::debug!(workspace = %name, sink = %sink, "the sink's previous pass is still running; not starting another");
                continue;
            }
            let (poller, lock, workspace, sink_name) =
                (poller.clone(), lock.clone(), name.clone(), sink.clone());
            passes.insert(
                sink.clone(),
                tokio::spawn(async move {
                    let mut store = match Store::open_writer(lock) {
                        Ok(store) => store,
                        Err(e) => {
                            tracing::error!(workspace = %workspace, error = %e, "cannot open the database for deliveries");
                            return;
                        }
                    };
                    match poller.deliver_to(&mut store, SinkScope::One(&sink_name)).await {
                        Ok(r) if r.sent + r.failed + r.dead + r.summarised > 0 => tracing::info!(
                            workspace = %workspace, sink = %sink_name, sent = r.sent,
                            summarised = r.summarised, failed = r.failed, dead = r.dead, "delivered"
                        ),
                        Ok(_) => {}
                        Err(e) => tracing::error!(workspace = %workspace, sink = %sink_name, error = %e,
                            "cannot deliver; retrying at the next tick"),
                    }
                }),
            );
        }
        // Deliveries to sinks removed from the configuration are given up (marked dead): at
        // start and whenever the sinks change, not at every tick.
        if settled.as_ref() != Some(&sinks) {
            match poller
                .deliver_to(&mut store, SinkScope::NotIn(&sinks))
                .await
            {
                Ok(_) => settled = Some(sinks),
                Err(e) => {
                    tracing::error!(workspace = %name, error = %e, "cannot settle deliveries of removed sinks")
                }
            }
        }
    }
    let unfinished = passes.values().filter(|p| !p.is_finished()).count();
    for pass in passes.into_values() {
        pass.abort();
    }
    if unfinished > 0 {
        tracing::warn!(workspace = %name, sinks = unfinished,
            "stopped while delivering: what was not confirmed stays queued and is sent at the next start");
    }
}

/// The failing-polls alert threshold as `Poller::after_failure` measures it (from the end of
/// the last complete poll), lengthened so that for a workspace resumed at `resumed_at` it
/// counts from the resume: the time it spent paused is not time spent failing.
fn failing_threshold(
    store: &Store,
    name: &str,
    threshold: Option<Duration>,
    resumed_at: Option<DateTime<Utc>>,
) -> Option<Duration> {
    let (threshold, resumed_at) = match (threshold, resumed_at) {
        (Some(t), Some(r)) => (t, r),
        (threshold, _) => return threshold,
    };
    let since = store
        .find_workspace(name)
        .ok()
        .flatten()
        .and_then(|id| store.failing_since(id).ok().flatten())
        .and_then(|f| DateTime::parse_from_rfc3339(&f.since).ok())
        .map(|t| t.with_timezone(&Utc));
    Some(threshold + resume_gap(since, resumed_at))
}

/// How long before the resume the failing run began (zero if it began after).
fn resume_gap(failing_since: Option<DateTime<Utc>>, resumed_at: DateTime<Utc>) -> Duration {
    failing_since
        .and_then(|since| (resumed_at - since).to_std().ok())
        .unwrap_or_default()
}

/// Applies the retention policy; a failure is logged, never fatal (pruning can wait).
fn prune(store: &mut Store, name: &str, retention: &crate::config::RetentionSettings) {
    let pruned = store
        .workspace_id(name)
        .and_then(|id| store.prune(id, &retention.at(Utc::now(), false)));
    match pruned {
        Ok(report) if report != Default::default() => {
            tracing::info!(
                workspace = %name,
                failed_polls = report.failed_polls,
                quiet_snapshots = report.quiet_snapshots,
                "retention pruned old records"
            );
        }
        Ok(_) => {}
        Err(e) => {
            tracing::warn!(workspace = %name, error = %e, "retention could not prune; will retry after the next poll")
        }
    }
}

async fn wait_all(handles: impl Iterator<Item = JoinHandle<()>>) {
    for handle in handles {
        let _ = handle.await;
    }
}

/// Resolves on SIGTERM or SIGINT.
async fn shutdown_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("installing a SIGTERM handler works on Unix");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}

/// A secret's text, for comparing two configurations.
fn secret_text(secret: &Option<SecretString>) -> Option<&str> {
    secret.as_ref().map(|s| s.expose_secret())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failing_time_before_a_resume_does_not_count() {
        let resumed = Utc::now();
        let hour = chrono::Duration::hours(1);
        // Failing since a day before the resume: the threshold grows by that day, so the alert
        // needs `threshold` of failures after the resume.
        assert_eq!(
            resume_gap(Some(resumed - hour * 24), resumed),
            Duration::from_secs(24 * 3600)
        );
        // A failing run that began after the resume counts in full.
        assert_eq!(resume_gap(Some(resumed + hour), resumed), Duration::ZERO);
        assert_eq!(resume_gap(None, resumed), Duration::ZERO);
    }
}
