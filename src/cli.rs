//! The command line: parses arguments and wires the stages together. No pipeline logic lives
//! here; each command is a few calls into the stage modules plus output formatting.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Args, Parser, Subcommand, ValueEnum};
use secrecy::SecretString;

use crate::config::Settings;
use crate::daemon::{DaemonPlan, WorkspaceJob};
use crate::poll::{PollError, PollOutcome, Poller};
use segwatch_api::segment::{ClientConfig, SegmentClient};
use segwatch_core::alerts::{AlertRecord, AlertStatus};
use segwatch_core::diff::{self, ResourceChange};
use segwatch_core::model::KindStatus;
use segwatch_core::redact::SecretPolicy;
use segwatch_core::rules::{ChangeFacts, Evaluator, Outcome, RuleSet, Severity, Subject};
use segwatch_core::terminal::Escaped;
use segwatch_simulator::{self as simulator, SimConfig, SimulateArgs};
use segwatch_store::lock::{LockError, MAX_WAIT_SECS, WriterLock};
use segwatch_store::{AlertFilter, SnapshotInfo, SnapshotStatus, Store, StoreError};

mod audit;
mod privacy;
mod privacy_requests;
mod report;
mod verify;
mod workspaces;

/// Exit status of a command refused as used (as clap exits on a bad argument): polling a
/// paused workspace by name, deleting a workspace without confirmation.
const USAGE_ERROR: u8 = 2;

/// Exit status of a command refused because another process holds the database's writer
/// lock: `EX_TEMPFAIL` of sysexits.h ("try again later"), distinct from a failed poll (1) and
/// a refused usage (2), so a cron wrapper or a service manager can tell them apart.
const LOCKED: u8 = 75;

/// How long a one-shot command that writes waits for the database's writer lock.
#[derive(Debug, Clone, Copy, Args)]
struct WaitArgs {
    /// Wait at most SECS (up to 3600) for another segwatch writing to this database (the
    /// daemon, another poll) to finish, instead of refusing at once.
    #[arg(long = "wait", value_name = "SECS", default_value_t = 0,
          value_parser = clap::value_parser!(u64).range(0..=MAX_WAIT_SECS))]
    secs: u64,
}

impl WaitArgs {
    fn duration(self) -> Duration {
        Duration::from_secs(self.secs)
    }
}

/// segwatch: an agentless security-posture poller for Segment workspaces.
#[derive(Debug, Parser)]
#[command(name = "segwatch", version, about, max_term_width = 100)]
pub struct Cli {
    /// Configuration file (TOML). Default: ./segwatch.toml if it exists.
    #[arg(long, global = true, env = "SEGWATCH_CONFIG", value_name = "PATH")]
    config: Option<PathBuf>,
    /// Log format on stderr.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Human)]
    log_format: LogFormat,
    /// The workspace to act on, when several are configured (`[[workspaces]]` names).
    #[arg(long, global = true, value_name = "NAME")]
    workspace: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum LogFormat {
    Human,
    Json,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum TextOrJson {
    Text,
    Json,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum TableOrJson {
    Table,
    Json,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run as a daemon: poll every workspace on its schedule until SIGTERM or Ctrl-C. Exits 75
    /// at once if another process writes to the database (it holds `<database>.lock`).
    Run,
    /// Poll once (every workspace, or --workspace): fetch, store a snapshot, diff it; exits
    /// non-zero if a poll failed. Paused workspaces are skipped; naming one with --workspace
    /// exits 2.
    Poll {
        /// Output format.
        #[arg(long, value_enum, default_value_t = TextOrJson::Text)]
        format: TextOrJson,
        #[command(flatten)]
        wait: WaitArgs,
    },
    /// List stored snapshots (polls), newest first.
    Snapshots {
        /// How many to show.
        #[arg(long, default_value_t = 20)]
        limit: usize,
        /// Output format.
        #[arg(long, value_enum, default_value_t = TableOrJson::Table)]
        format: TableOrJson,
    },
    /// Show what changed between two complete snapshots (default: the latest and its base).
    Diff {
        /// The older snapshot (default: the one before --to).
        #[arg(long)]
        from: Option<i64>,
        /// The newer snapshot (default: the latest complete one).
        #[arg(long)]
        to: Option<i64>,
        /// Output format.
        #[arg(long, value_enum, default_value_t = TextOrJson::Text)]
        format: TextOrJson,
    },
    /// Check rule files, or dry-run them against a stored snapshot.
    #[command(subcommand)]
    Rules(RulesCommand),
    /// List alerts: change alerts (fired) and compliance findings (open, resolved).
    Alerts {
        /// Only alerts with this status.
        #[arg(long, value_enum)]
        status: Option<StatusArg>,
        /// Only this severity or higher.
        #[arg(long, value_enum)]
        severity: Option<SeverityArg>,
        /// Only alerts of this rule.
        #[arg(long)]
        rule: Option<String>,
        /// At most this many, newest first.
        #[arg(long, default_value_t = 100)]
        limit: usize,
        /// Output format.
        #[arg(long, value_enum, default_value_t = TableOrJson::Table)]
        format: TableOrJson,
    },
    /// List queued and past deliveries of alerts to sinks, or retry one.
    Deliveries {
        #[command(subcommand)]
        action: Option<DeliveriesCommand>,
        /// Only deliveries with this status.
        #[arg(long, value_enum)]
        status: Option<DeliveryStatusArg>,
        /// At most this many, newest first.
        #[arg(long, default_value_t = 100)]
        limit: usize,
        /// Output format.
        #[arg(long, value_enum, default_value_t = TableOrJson::Table)]
        format: TableOrJson,
    },
    /// Check the configured sinks.
    #[command(subcommand)]
    Sinks(SinksCommand),
    /// Apply the [retention] policy now (the daemon does after each poll).
    Prune {
        /// Count what would be deleted; delete nothing.
        #[arg(long)]
        dry_run: bool,
        /// Apply the policy as of this time (RFC 3339) instead of now, e.g. with --dry-run to
        /// see what the daemon will prune by then.
        #[arg(long, value_name = "TIME")]
        as_of: Option<chrono::DateTime<chrono::Utc>>,
        /// Output format.
        #[arg(long, value_enum, default_value_t = TextOrJson::Text)]
        format: TextOrJson,
        #[command(flatten)]
        wait: WaitArgs,
    },
    /// Write the compliance report of a period for auditors (HTML, Markdown or JSON); reads only.
    Report(report::ReportArgs),
    /// Serve a simulated Segment workspace over HTTP (for trials, tests and benchmarks).
    Simulate(SimulateArgs),
    /// Watch a simulated workspace change, with no credentials: polls it every few seconds.
    Demo(DemoArgs),
    /// Measure poll cycles against a large simulated workspace (prints a Markdown report).
    Bench(crate::bench::BenchArgs),
    /// Run one read-only SQL statement on the database (views: docs/SCHEMA.md); writes are refused.
    Query(audit::QueryArgs),
    /// Every version of one resource and what changed at each step, removals included.
    History(audit::HistoryArgs),
    /// Changes observed between two times.
    Changes(audit::ChangesArgs),
    /// Every resource as it was at a time (the latest complete poll at or before it).
    State(audit::StateArgs),
    /// Test each configured API (Public API per workspace, Profile API) and print one line per
    /// check: OK or the reason. Exits 1 if any check failed; an unconfigured Profile API is
    /// reported, and fails only with --require-profiles.
    CheckConnection(privacy::CheckConnectionArgs),
    /// Check the database for alterations: recompute each workspace's snapshot hash chain; exit
    /// 0 if it is intact (printing its head hash, to record elsewhere), 1 naming the first
    /// altered snapshot.
    Verify {
        /// A head hash recorded earlier (repeatable): it must still be a link of the chain.
        #[arg(long, value_name = "HASH")]
        anchor: Vec<String>,
        /// Output format.
        #[arg(long, value_enum, default_value_t = TextOrJson::Text)]
        format: TextOrJson,
    },
    /// List the workspaces of the configuration and of the database: status (active, paused,
    /// not configured, never polled), last polls, kinds not read, open findings; or delete one.
    Workspaces {
        #[command(subcommand)]
        action: Option<WorkspacesCommand>,
        /// Output format.
        #[arg(long, value_enum, default_value_t = TableOrJson::Table)]
        format: TableOrJson,
    },
    /// Data-subject requests: an access export through the Profile API (`[profiles]`), and
    /// deletion through Segment's regulations, recorded as evidence.
    #[command(subcommand)]
    Privacy(PrivacyCommand),
}

#[derive(Debug, Subcommand)]
enum PrivacyCommand {
    /// Export everything the Profile API holds on one person (metadata, traits, external ids,
    /// events) as one JSON document. Exit codes: 0 written; 2 the space has no profile for the
    /// subject (nothing written); 1 any other error.
    Access(privacy::AccessArgs),
    /// Ask Segment to delete (and by default suppress) one user's data; records the request
    /// with the user id hashed, and prints the regulation id.
    Delete(privacy_requests::DeleteArgs),
    /// Refresh and print the status of one regulation, or of every recorded one not finished.
    Status(privacy_requests::StatusArgs),
    /// List the recorded requests (subjects shown as hash prefixes); reads only.
    Requests(privacy_requests::RequestsArgs),
}

#[derive(Debug, Subcommand)]
enum WorkspacesCommand {
    /// Delete every row of one workspace from the database, then VACUUM. Asks to type the name
    /// at a terminal; without one, needs --yes (else exits 2).
    Delete(workspaces::DeleteArgs),
}

#[derive(Debug, Subcommand)]
enum RulesCommand {
    /// Load every rule file and report each error with file, line, rule and field; exits
    /// non-zero on any error.
    Validate {
        /// A rule file or folder (default: `[rules] path` from the configuration).
        path: Option<PathBuf>,
    },
    /// Evaluate the rules against a stored snapshot and its changes, recording nothing: what
    /// would fire.
    Test {
        /// The snapshot (default: the latest complete one).
        #[arg(long)]
        snapshot: Option<i64>,
        /// A rule file or folder (default: `[rules] path`).
        #[arg(long)]
        rules: Option<PathBuf>,
        /// Output format.
        #[arg(long, value_enum, default_value_t = TextOrJson::Text)]
        format: TextOrJson,
    },
}

#[derive(Debug, Subcommand)]
enum DeliveriesCommand {
    /// Put a failed or dead delivery back in the queue; it is sent by the next poll.
    Retry {
        /// The delivery id (see `segwatch deliveries`).
        id: i64,
        #[command(flatten)]
        wait: WaitArgs,
    },
}

#[derive(Debug, Subcommand)]
enum SinksCommand {
    /// Send a test message to each sink (or the one named) and report success or the error.
    Test {
        /// Only this sink.
        name: Option<String>,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum DeliveryStatusArg {
    Pending,
    Failed,
    Sent,
    Summarised,
    Dead,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum StatusArg {
    Fired,
    Open,
    Resolved,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum SeverityArg {
    Info,
    Low,
    Medium,
    High,
    Critical,
}

/// Options of `segwatch demo`.
#[derive(Debug, Args)]
struct DemoArgs {
    /// Database file; recreated at start so every demo begins with a baseline.
    #[arg(long, default_value = "segwatch-demo.db")]
    database: PathBuf,
    /// Seconds between polls.
    #[arg(long, default_value_t = 5)]
    interval: u64,
    /// Seconds between changes in the simulated workspace.
    #[arg(long, default_value_t = 3)]
    mutate_every: u64,
    /// Seed of the simulated workspace.
    #[arg(long, default_value_t = 7)]
    seed: u64,
    /// Users in the simulated workspace.
    #[arg(long, default_value_t = 40)]
    users: usize,
    /// Stop after this many polls (default: run until Ctrl-C).
    #[arg(long)]
    polls: Option<u64>,
    /// Rules to evaluate (default: the `rules` folder if present, else the built-in starter pack).
    #[arg(long)]
    rules: Option<PathBuf>,
}

/// Parses arguments and runs the command. Returns the process exit code.
pub fn run() -> ExitCode {
    limit_malloc_arenas();
    let cli = Cli::parse();
    // The demo is read by a person: its own output says what each poll found, so only the
    // simulated workspace's changes (and problems) are logged.
    let default_filter = match cli.command {
        Command::Demo(_) => "segwatch=warn,segwatch::simulator=info",
        _ => "segwatch=info",
    };
    init_logging(cli.log_format, default_filter);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(execute(cli)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            if is_locked(&e) {
                ExitCode::from(LOCKED)
            } else {
                ExitCode::FAILURE
            }
        }
    }
}

/// Whether a command failed because another process holds the writer lock.
fn is_locked(e: &anyhow::Error) -> bool {
    e.chain().any(|cause| {
        matches!(
            cause.downcast_ref::<LockError>(),
            Some(LockError::Held { .. })
        ) || matches!(
            cause.downcast_ref::<StoreError>(),
            Some(StoreError::Lock(e)) if matches!(**e, LockError::Held { .. })
        )
    })
}

/// glibc gives each thread that allocates its own heap arena (up to 8 per core), and a poll's
/// peak allocations, spread over the runtime's threads, stay scattered across them: measured
/// with `segwatch bench`, two arenas cut the peak RSS of a 100k-user poll from 192 to 170 MiB
/// at no cost in time. Must run before any thread starts.
#[allow(unsafe_code)]
fn limit_malloc_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: `mallopt` only sets an allocator parameter; it is called before any other thread
    // exists, and an unknown value is ignored by glibc (it returns 0).
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 2);
    }
}

fn init_logging(format: LogFormat, default_filter: &str) {
    use tracing_subscriber::EnvFilter;
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_filter));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Human => builder.with_target(false).try_init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .try_init(),
    };
}

async fn execute(cli: Cli) -> anyhow::Result<ExitCode> {
    let settings = || settings(cli.config.as_deref(), cli.workspace.as_deref());
    match cli.command {
        Command::Poll { format, wait } => {
            poll(&settings()?, format, cli.workspace.is_some(), wait).await
        }
        Command::Run => run_daemon(cli.config.clone(), cli.workspace.clone()).await,
        Command::Snapshots { limit, format } => snapshots(&settings()?, limit, format),
        Command::Diff { from, to, format } => diff(&settings()?, from, to, format),
        Command::Rules(RulesCommand::Validate { path }) => {
            rules_validate(cli.config.as_deref(), path)
        }
        Command::Rules(RulesCommand::Test {
            snapshot,
            rules,
            format,
        }) => rules_test(&settings()?, rules, snapshot, format),
        Command::Alerts {
            status,
            severity,
            rule,
            limit,
            format,
        } => {
            let filter = AlertFilter {
                status: status.map(|s| match s {
                    StatusArg::Fired => AlertStatus::Fired,
                    StatusArg::Open => AlertStatus::Open,
                    StatusArg::Resolved => AlertStatus::Resolved,
                }),
                min_severity: severity.map(|s| match s {
                    SeverityArg::Info => Severity::Info,
                    SeverityArg::Low => Severity::Low,
                    SeverityArg::Medium => Severity::Medium,
                    SeverityArg::High => Severity::High,
                    SeverityArg::Critical => Severity::Critical,
                }),
                rule_id: rule,
                snapshot_id: None,
                limit: Some(limit),
            };
            list_alerts(&settings()?, &filter, format)
        }
        Command::Deliveries {
            action: Some(DeliveriesCommand::Retry { id, wait }),
            ..
        } => {
            let settings = settings()?;
            let mut store = open_writer(&settings.database.path, "deliveries retry", wait)?;
            let workspace = store.workspace_id(&settings.workspace_name(None)?)?;
            if store.retry_delivery(workspace, id)? {
                println!("delivery {id} is queued again; the next poll sends it");
                Ok(ExitCode::SUCCESS)
            } else {
                bail!(
                    "no failed or dead delivery {id} in this workspace (see `segwatch deliveries`)"
                )
            }
        }
        Command::Deliveries {
            action: None,
            status,
            limit,
            format,
        } => {
            let status = status.map(|s| match s {
                DeliveryStatusArg::Pending => "pending",
                DeliveryStatusArg::Failed => "failed",
                DeliveryStatusArg::Sent => "sent",
                DeliveryStatusArg::Summarised => "summarised",
                DeliveryStatusArg::Dead => "dead",
            });
            list_deliveries(&settings()?, status, limit, format)
        }
        Command::Sinks(SinksCommand::Test { name }) => sinks_test(&settings()?, name).await,
        Command::Prune {
            dry_run,
            as_of,
            format,
            wait,
        } => prune(&settings()?, dry_run, as_of, format, wait),
        Command::Report(args) => report::run(&settings()?, args),
        Command::Simulate(args) => simulator::run(args).await.map(|()| ExitCode::SUCCESS),
        Command::Demo(args) => demo(args).await,
        Command::Bench(args) => crate::bench::run(args).await.map(|()| ExitCode::SUCCESS),
        Command::Query(args) => audit::query(&settings()?, args),
        Command::History(args) => audit::history(&settings()?, args),
        Command::Changes(args) => audit::changes(&settings()?, args),
        Command::State(args) => audit::state(&settings()?, args),
        Command::Privacy(PrivacyCommand::Access(args)) => privacy::access(&settings()?, args).await,
        Command::CheckConnection(args) => privacy::check_connection(&settings()?, args).await,
        Command::Verify { anchor, format } => verify::run(&settings()?, &anchor, format),
        Command::Privacy(PrivacyCommand::Delete(args)) => {
            privacy_requests::delete(&settings()?, args).await
        }
        Command::Privacy(PrivacyCommand::Status(args)) => {
            privacy_requests::status(&settings()?, args).await
        }
        Command::Privacy(PrivacyCommand::Requests(args)) => {
            privacy_requests::requests(&settings()?, args)
        }
        // Both act on the whole database: `--workspace` does not narrow them.
        Command::Workspaces {
            action: None,
            format,
        } => workspaces::list(&load_settings(cli.config.as_deref())?, format),
        Command::Workspaces {
            action: Some(WorkspacesCommand::Delete(args)),
            ..
        } => workspaces::delete(&load_settings(cli.config.as_deref())?, args),
    }
}

fn load_settings(path: Option<&Path>) -> anyhow::Result<Settings> {
    let (file, required) = match path {
        Some(p) => (p, true),
        None => (Path::new("segwatch.toml"), false),
    };
    Ok(Settings::load(file, required)?)
}

/// Loads the configuration, narrowed to the `--workspace` when one is given.
fn settings(path: Option<&Path>, workspace: Option<&str>) -> anyhow::Result<Settings> {
    let mut settings = load_settings(path)?;
    settings.select_workspace(workspace)?;
    Ok(settings)
}

/// Everything polls need, checked before the first request: configuration, rules (an invalid
/// rule set stops here, and so does a workspace's rule selection that matches nothing), sinks.
fn jobs(settings: &Settings) -> anyhow::Result<Vec<WorkspaceJob>> {
    let targets = settings.targets()?;
    let rules = Arc::new(load_rules(&settings.rules.path)?);
    let sinks = Arc::new(build_sinks(settings)?);
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
                    "invalid configuration: `{}.rules`: {} match no rule in {}",
                    target.key,
                    unmatched.join(", "),
                    settings.rules.path.display()
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
            .with_configured_workspaces(settings.all_workspace_names());
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
async fn run_daemon(
    config: Option<PathBuf>,
    workspace: Option<String>,
) -> anyhow::Result<ExitCode> {
    let load = || {
        let settings = settings(config.as_deref(), workspace.as_deref())?;
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

/// Polls each workspace once, in turn; a failed one does not stop the others. Paused ones are
/// skipped (said on stderr); one named with `--workspace` is refused.
async fn poll(
    settings: &Settings,
    format: TextOrJson,
    named: bool,
    wait: WaitArgs,
) -> anyhow::Result<ExitCode> {
    let mut jobs = jobs(settings)?;
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

/// `segwatch prune`: the retention policy applied to each configured workspace.
fn prune(
    settings: &Settings,
    dry_run: bool,
    as_of: Option<chrono::DateTime<chrono::Utc>>,
    format: TextOrJson,
    wait: WaitArgs,
) -> anyhow::Result<ExitCode> {
    let mut store = open_writer(&settings.database.path, "prune", wait)?;
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

/// Opens the database for writing under its writer lock, taken for `command` (named in the
/// lock file) and held as long as the store: waits at most `wait` for another writer, else
/// fails with [`LockError::Held`] (exit status [`LOCKED`]).
fn open_writer(path: &Path, command: &str, wait: WaitArgs) -> anyhow::Result<Store> {
    let lock = WriterLock::acquire(path, command, wait.duration())?;
    Store::open_writer(Arc::new(lock))
        .with_context(|| format!("cannot open the database {}", path.display()))
}

fn open_read_only(settings: &Settings) -> anyhow::Result<(Store, i64)> {
    let path = &settings.database.path;
    let store = Store::open_read_only(path)
        .with_context(|| format!("cannot open the database {}", path.display()))?;
    let name = &settings.workspace_name(None)?;
    let Some(workspace) = store.find_workspace(name)? else {
        bail!(
            "the database {} has no workspace named `{name}`; has it been polled?",
            path.display()
        );
    };
    Ok((store, workspace))
}

/// Prints what a poll found; `workspace` labels every line (when several are polled).
fn print_outcome(
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
fn print_json(out: &mut impl Write, value: &impl serde::Serialize) -> anyhow::Result<ExitCode> {
    serde_json::to_writer(&mut *out, value)?;
    writeln!(out)?;
    Ok(ExitCode::SUCCESS)
}

fn plural(n: usize, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}

/// Loads rules, turning every load error into one readable report.
fn load_rules(path: &Path) -> anyhow::Result<RuleSet> {
    match RuleSet::load(path) {
        Ok(rules) => {
            if rules.rules().is_empty() {
                tracing::warn!("{}", no_rule_warning(path));
            }
            for (rule, exception) in rules.expired_exceptions(chrono::Utc::now()) {
                let what = exception
                    .id
                    .as_deref()
                    .or(exception.name.as_deref())
                    .unwrap_or("?");
                tracing::warn!(rule = %rule.id, exception = %what, expired = ?exception.expires,
                    "an exception of this rule has expired and no longer applies");
            }
            Ok(rules)
        }
        Err(errors) => bail!("invalid rules in {}:\n{errors}", path.display()),
    }
}

/// What an empty rule folder (or file) means: a poll still records and diffs, but nothing can
/// ever raise an alert, which is easy to miss (a wrong `[rules] path`, a folder not yet filled).
fn no_rule_warning(path: &Path) -> String {
    format!(
        "no rule in {}: polls record and diff the workspace but raise no alert; put *.yaml rule \
         files there (the starter pack is the rules/ folder of segwatch's source) or set \
         `rules.path`",
        path.display()
    )
}

fn rules_validate(config: Option<&Path>, path: Option<PathBuf>) -> anyhow::Result<ExitCode> {
    let path = match path {
        Some(p) => p,
        None => load_settings(config)?.rules.path,
    };
    match RuleSet::load(&path) {
        Err(errors) => {
            eprintln!("{errors}");
            eprintln!("{} in {}", plural(errors.0.len(), "error"), path.display());
            Ok(ExitCode::FAILURE)
        }
        Ok(rules) => {
            let enabled: Vec<_> = rules.rules().iter().filter(|r| r.enabled).collect();
            let change = enabled.iter().filter(|r| r.is_change()).count();
            println!(
                "{}: {} ({} change, {} compliance; {} disabled)",
                path.display(),
                plural(rules.rules().len(), "rule"),
                change,
                enabled.len() - change,
                rules.rules().len() - enabled.len()
            );
            if rules.rules().is_empty() {
                println!("warning: {}", no_rule_warning(&path));
            }
            for (rule, exception) in rules.expired_exceptions(chrono::Utc::now()) {
                let what = exception
                    .id
                    .as_deref()
                    .or(exception.name.as_deref())
                    .unwrap_or("?");
                let expired = exception.expires.map(|d| d.to_string()).unwrap_or_default();
                println!(
                    "warning: {}:{}: rule `{}`: exception `{what}` expired on {expired} and no longer applies",
                    rule.file.display(),
                    rule.line,
                    rule.id
                );
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn rules_test(
    settings: &Settings,
    path: Option<PathBuf>,
    snapshot: Option<i64>,
    format: TextOrJson,
) -> anyhow::Result<ExitCode> {
    let rules = load_rules(path.as_deref().unwrap_or(&settings.rules.path))?;
    let (store, workspace) = open_read_only(settings)?;
    let snapshot = match snapshot {
        Some(id) => id,
        None => store
            .latest_complete(workspace)?
            .context("no complete snapshot yet: run `segwatch poll`")?,
    };
    let resources = store.resources_at(workspace, snapshot)?;
    let parsed: Vec<serde_json::Value> = resources
        .iter()
        .map(|r| serde_json::from_str(&r.body))
        .collect::<Result<_, _>>()?;
    let inventory = segwatch_core::rules::inventory(
        resources
            .iter()
            .zip(&parsed)
            .map(|(r, v)| (r.kind, v.clone())),
    );
    let relations = segwatch_core::relations::Relations::from_parts(
        resources
            .iter()
            .map(|r| (r.kind, r.id.as_str(), r.body.as_str())),
    );
    let evaluator =
        Evaluator::new(&rules, chrono::Utc::now(), inventory).with_relations(&relations);
    let mut results = Vec::new();
    let mut record =
        |kind: &str,
         verdicts: Vec<segwatch_core::rules::Verdict<'_>>,
         resource: (&segwatch_core::model::ResourceKind, &str, &str)| {
            for v in verdicts {
                let (outcome, detail) = match v.outcome {
                    Outcome::Pass => continue,
                    Outcome::Fire { summary, .. } => ("fires", summary),
                    Outcome::Exempt { reason } => ("exempt", reason),
                    Outcome::Error { message } => ("error", message),
                };
                results.push(serde_json::json!({
                "rule": v.rule.id, "severity": v.rule.severity.as_str(), "on": kind, "outcome": outcome,
                "resource_kind": resource.0.as_str(), "resource_id": resource.1, "resource_name": resource.2, "detail": detail,
            }));
            }
        };
    for (r, body) in resources.iter().zip(&parsed) {
        let seen_since = chrono::DateTime::parse_from_rfc3339(&r.seen_since)
            .ok()
            .map(|t| t.with_timezone(&chrono::Utc));
        let subject = Subject {
            kind: r.kind,
            id: &r.id,
            name: &r.name,
            body,
            seen_since,
        };
        record(
            "resource",
            evaluator.check_resource(&subject, None),
            (&r.kind, &r.id, &r.name),
        );
    }
    for segwatch_store::ChangeWithBodies {
        change,
        before,
        after,
    } in store.change_bodies(snapshot)?
    {
        // As in a poll: change rules never see API drift.
        if segwatch_core::drift::is_drift_only(&change) {
            continue;
        }
        let body = after
            .as_ref()
            .or(before.as_ref())
            .context("a stored change has no version")?;
        let subject = Subject {
            kind: change.kind,
            id: &change.resource_id,
            name: &change.name,
            body,
            seen_since: None,
        };
        let facts = ChangeFacts {
            op: change.op,
            before: before.as_ref(),
            after: after.as_ref(),
            fields: &segwatch_core::drift::real_fields(&change.fields),
            attribution: &change.attribution,
        };
        record(
            "change",
            evaluator.check_change(&subject, &facts),
            (&change.kind, &change.resource_id, &change.name),
        );
    }
    let mut out = std::io::stdout().lock();
    if format == TextOrJson::Json {
        return print_json(
            &mut out,
            &serde_json::json!({"snapshot": snapshot, "results": results}),
        );
    }
    let fires = results.iter().filter(|r| r["outcome"] == "fires").count();
    writeln!(
        out,
        "dry run of {} on snapshot {snapshot}: {} would fire (nothing recorded)",
        plural(rules.rules().len(), "rule"),
        fires
    )?;
    for r in &results {
        writeln!(
            out,
            "{:<7} [{}] {} on {} {}: {}",
            r["outcome"].as_str().unwrap_or(""),
            r["severity"].as_str().unwrap_or("").to_uppercase(),
            r["rule"].as_str().unwrap_or(""),
            r["resource_kind"].as_str().unwrap_or(""),
            r["resource_name"].as_str().unwrap_or(""),
            r["detail"].as_str().unwrap_or("")
        )?;
    }
    Ok(ExitCode::SUCCESS)
}

fn list_alerts(
    settings: &Settings,
    filter: &AlertFilter,
    format: TableOrJson,
) -> anyhow::Result<ExitCode> {
    let (store, workspace) = open_read_only(settings)?;
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
            a.resolved_at.as_deref().unwrap_or("-"),
            Escaped(&a.summary)
        )?;
    }
    Ok(ExitCode::SUCCESS)
}

fn build_sinks(settings: &Settings) -> anyhow::Result<Vec<segwatch_sinks::Sink>> {
    let mut sinks = Vec::new();
    for config in settings.sinks()? {
        let name = config.name.clone();
        sinks.push(segwatch_sinks::Sink::new(config).with_context(|| format!("sink `{name}`"))?);
    }
    Ok(sinks)
}

async fn sinks_test(settings: &Settings, only: Option<String>) -> anyhow::Result<ExitCode> {
    let sinks = build_sinks(settings)?;
    let chosen: Vec<_> = sinks
        .iter()
        .filter(|s| only.as_deref().is_none_or(|n| n == s.name()))
        .collect();
    if chosen.is_empty() {
        bail!(
            "no sink {}is configured (see [[sinks]] in the configuration)",
            only.map(|n| format!("named `{n}` ")).unwrap_or_default()
        );
    }
    let mut failed = 0;
    for sink in chosen {
        match sink.send(&segwatch_sinks::Message::Test).await {
            Ok(()) => println!("{}: ok", sink.name()),
            Err(e) => {
                failed += 1;
                println!("{}: FAILED: {e}", sink.name());
            }
        }
    }
    Ok(if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn list_deliveries(
    settings: &Settings,
    status: Option<&str>,
    limit: usize,
    format: TableOrJson,
) -> anyhow::Result<ExitCode> {
    let (store, workspace) = open_read_only(settings)?;
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

fn snapshots(settings: &Settings, limit: usize, format: TableOrJson) -> anyhow::Result<ExitCode> {
    let (store, workspace) = open_read_only(settings)?;
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

fn diff(
    settings: &Settings,
    from: Option<i64>,
    to: Option<i64>,
    format: TextOrJson,
) -> anyhow::Result<ExitCode> {
    let (store, workspace) = open_read_only(settings)?;
    let to = match to {
        Some(id) => id,
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
        Some(id) => id,
        None => store.previous_complete(workspace, to)?.with_context(|| {
            format!("snapshot {to} is the baseline: there is nothing before it to diff against")
        })?,
    };
    // Adjacent snapshots have their changes stored; any other pair is diffed from the
    // reconstructed states, which gives the same result for adjacent ones.
    let changes = if to_info.base_snapshot_id == Some(from) {
        store.changes_of(to)?
    } else {
        let mut changes = diff_reconstructed(&store, workspace, from, to)?;
        // Who made them: the latest stored audit event on each resource over the interval.
        let at = |s: &SnapshotInfo, t: &Option<String>| {
            chrono::DateTime::parse_from_rfc3339(t.as_deref().unwrap_or(&s.started_at))
                .map(|t| t.with_timezone(&chrono::Utc))
        };
        let from_info = store.snapshot(workspace, from)?;
        let (start, end) = (
            at(&from_info, &Some(from_info.started_at.clone()))?,
            at(&to_info, &to_info.finished_at)?,
        );
        let skew = segwatch_core::trail::CLOCK_SKEW;
        let events = store.audit_events_between(workspace, start - skew, end + skew)?;
        segwatch_core::trail::attribute(changes.iter_mut(), &events, start, end);
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

fn diff_reconstructed(
    store: &Store,
    workspace: i64,
    from: i64,
    to: i64,
) -> anyhow::Result<Vec<ResourceChange>> {
    let before: HashMap<_, _> = store
        .resources_at(workspace, from)?
        .into_iter()
        .map(|r| ((r.kind, r.id.clone()), r))
        .collect();
    let after = store.resources_at(workspace, to)?;
    let parse = |body: &str| serde_json::from_str::<serde_json::Value>(body);
    let mut changes = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for r in &after {
        let key = (r.kind, r.id.clone());
        let old = before.get(&key);
        if old.is_none_or(|o| o.hash != r.hash) {
            let old_value = old.map(|o| parse(&o.body)).transpose()?;
            changes.extend(diff::diff_resource(
                r.kind,
                &r.id,
                &r.name,
                old_value.as_ref(),
                Some(&parse(&r.body)?),
            ));
        }
        seen.insert(key);
    }
    for (key, old) in &before {
        if !seen.contains(key) {
            changes.extend(diff::diff_resource(
                old.kind,
                &old.id,
                &old.name,
                Some(&parse(&old.body)?),
                None,
            ));
        }
    }
    changes.sort_by(|a, b| (a.kind, &a.resource_id).cmp(&(b.kind, &b.resource_id)));
    Ok(changes)
}

async fn demo(args: DemoArgs) -> anyhow::Result<ExitCode> {
    // A fresh random token: the demo's simulator is reachable by anything on loopback.
    let mut rng = fastrand::Rng::new();
    let token: String = std::iter::repeat_with(|| rng.alphanumeric())
        .take(32)
        .collect();
    let sim_config = SimConfig {
        token: token.clone(),
        seed: args.seed,
        users: args.users,
        ..SimConfig::default()
    };
    let sim = simulator::start(sim_config, "127.0.0.1:0".parse()?)
        .await
        .context("cannot start the simulated workspace")?;
    let mutator =
        (args.mutate_every > 0).then(|| sim.spawn_mutator(Duration::from_secs(args.mutate_every)));

    // Locked before the files are reset: a second demo on the same file must not delete the
    // first one's database under it.
    let lock = Arc::new(WriterLock::acquire(&args.database, "demo", Duration::ZERO)?);
    for suffix in ["", "-wal", "-shm"] {
        let mut path = args.database.clone().into_os_string();
        path.push(suffix);
        match std::fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                return Err(e)
                    .with_context(|| format!("cannot reset {}", PathBuf::from(path).display()));
            }
        }
    }
    let mut store = Store::open_writer(lock)
        .with_context(|| format!("cannot open the database {}", args.database.display()))?;
    let mut client_config = ClientConfig::new(sim.base_url(), SecretString::from(token));
    client_config.backoff_min = Duration::from_millis(100);
    client_config.backoff_max = Duration::from_secs(2);
    let rules = match &args.rules {
        Some(path) => load_rules(path)?,
        None if Path::new("rules").is_dir() => load_rules(Path::new("rules"))?,
        None => segwatch_core::rules::starter_pack()
            .context("the built-in starter rules do not load")?,
    };
    let poller = Poller::new(
        SegmentClient::new(client_config)?,
        SecretPolicy::default(),
        "demo",
    )
    .with_rules(std::sync::Arc::new(rules), false)
    .with_audit_trail(Duration::from_secs(24 * 3600));

    println!(
        "segwatch demo: a simulated Segment workspace is running at {} and changes every {}s;\n\
         polling it every {}s into {}. Press Ctrl-C to stop.\n",
        sim.base_url(),
        args.mutate_every,
        args.interval,
        args.database.display()
    );
    let mut ticker = tokio::time::interval(Duration::from_secs(args.interval.max(1)));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut polls = 0;
    loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => break,
            _ = ticker.tick() => {
                match poller.poll(&mut store).await {
                    Ok(outcome) => print_outcome(&outcome, TextOrJson::Text, None)?,
                    Err(e) => eprintln!("poll failed: {e:#}"),
                }
                polls += 1;
                if args.polls.is_some_and(|max| polls >= max) {
                    break;
                }
            }
        }
    }
    if let Some(m) = mutator {
        m.abort();
    }
    sim.shutdown().await;
    let db = args.database.display();
    println!(
        "\nstopped. The snapshots stay in {db}; list them with\n  SEGWATCH_DATABASE__PATH={db} SEGWATCH_SEGMENT__NAME=demo segwatch snapshots"
    );
    Ok(ExitCode::SUCCESS)
}
