//! The command line: parses arguments, turns them into ready objects (the configuration
//! loaded and narrowed to `--workspace`, the database opened, the rules loaded), and hands
//! them to one module per command group. No pipeline logic lives here or there: each command
//! is a few calls into the library plus output formatting (`output` holds what several share).
//!
//! `args` is what clap parses; `poll`, `daemon` (and the plan: workspaces → jobs), `rules`,
//! `alerts` (and deliveries), `sinks`, `export`, `snapshots` (and `diff`, `prune`), `demo`, `report`,
//! `audit`, `access` (and `access_review`), `flows`, `verify`, `privacy`, `privacy_requests`,
//! `workspaces` and `install` (shell completions, man pages) are the commands.

use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, bail};
use clap::Parser;

use crate::config::Settings;
use crate::rules::RuleSource;
use segwatch_simulator as simulator;
use segwatch_store::lock::{LockError, WriterLock};
use segwatch_store::{Store, StoreError};

mod access;
mod access_review;
mod alerts;
mod args;
mod audit;
mod daemon;
mod demo;
mod export;
mod flows;
mod install;
mod output;
mod poll;
mod privacy;
mod privacy_requests;
mod report;
mod rules;
mod sinks;
mod snapshots;
mod verify;
mod workspaces;

pub use args::Cli;
use args::{
    Command, DeliveriesCommand, LogFormat, PrivacyCommand, RulesCommand, SinksCommand, TableOrJson,
    TextOrJson, WaitArgs, WorkspacesCommand,
};
use output::{plural, print_json};
use rules::load_rules;

/// Exit status of a command refused as used (as clap exits on a bad argument): polling a
/// paused workspace by name, deleting a workspace without confirmation.
const USAGE_ERROR: u8 = 2;

/// Exit status of a command refused because another process holds the database's writer
/// lock: `EX_TEMPFAIL` of sysexits.h ("try again later"), distinct from a failed poll (1) and
/// a refused usage (2), so a cron wrapper or a service manager can tell them apart.
const LOCKED: u8 = 75;

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
/// at no cost in time, and one arena, with the data controls collected, from 194 to 177 MiB
/// (full cycle 4.46 → 3.95 s, on the same idle machine). Must run before any thread starts.
#[allow(unsafe_code)]
fn limit_malloc_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: `mallopt` only sets an allocator parameter; it is called before any other thread
    // exists, and an unknown value is ignored by glibc (it returns 0).
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 1);
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
            poll::run(&settings()?, format, cli.workspace.is_some(), wait).await
        }
        Command::Run => daemon::run(cli.config.clone(), cli.workspace.clone()).await,
        Command::Snapshots { limit, format } => {
            let (store, workspace) = open_read_only(&settings()?)?;
            snapshots::list(&store, workspace, limit, format)
        }
        Command::Diff { from, to, format } => {
            let (store, workspace) = open_read_only(&settings()?)?;
            snapshots::diff(&store, workspace, from, to, format)
        }
        Command::Rules(RulesCommand::Validate { path }) => {
            let source = match path {
                Some(p) => RuleSource::Configured(p),
                None => {
                    RuleSource::resolve(load_settings(cli.config.as_deref())?.rules.path.as_deref())
                }
            };
            rules::validate(&source)
        }
        Command::Rules(RulesCommand::Init { dir, force }) => rules::init(&dir, force),
        Command::Rules(RulesCommand::Test {
            snapshot,
            rules,
            format,
        }) => {
            let settings = settings()?;
            let source = RuleSource::resolve(rules.as_deref().or(settings.rules.path.as_deref()));
            let rules = load_rules(&source)?;
            let (store, workspace) = open_read_only(&settings)?;
            rules::test(&rules, &store, workspace, snapshot, format)
        }
        Command::Alerts {
            status,
            severity,
            rule,
            limit,
            format,
        } => {
            let filter = alerts::filter(status, severity, rule, limit);
            let (store, workspace) = open_read_only(&settings()?)?;
            alerts::list(&store, workspace, &filter, format)
        }
        Command::Deliveries {
            action: Some(DeliveriesCommand::Retry { id, wait }),
            ..
        } => {
            let settings = settings()?;
            let mut store = open_writer(&settings.database.path, "deliveries retry", wait)?;
            let workspace = store.workspace_id(&settings.workspace_name(None)?)?;
            alerts::retry(&mut store, workspace, id)
        }
        Command::Deliveries {
            action: None,
            status,
            limit,
            format,
        } => {
            let (store, workspace) = open_read_only(&settings()?)?;
            alerts::deliveries(&store, workspace, status.map(Into::into), limit, format)
        }
        Command::Sinks(SinksCommand::Test { name }) => sinks::test(&settings()?, name).await,
        Command::Prune {
            dry_run,
            as_of,
            format,
            wait,
        } => {
            let settings = settings()?;
            let mut store = open_writer(&settings.database.path, "prune", wait)?;
            snapshots::prune(&settings, &mut store, dry_run, as_of, format)
        }
        Command::Report(args) => report::run(&settings()?, args),
        Command::Export(export::ExportCommand::Ocsf(args)) => export::ocsf(&settings()?, args),
        Command::Simulate(args) => simulator::run(args).await.map(|()| ExitCode::SUCCESS),
        Command::Demo(args) => demo::run(args).await,
        Command::Completions { shell } => install::completions(shell),
        Command::Man { dir } => install::man(dir.as_deref()),
        Command::Bench(args) => crate::bench::run(args).await.map(|()| ExitCode::SUCCESS),
        Command::Query(args) => audit::query(&settings()?, args),
        Command::History(args) => audit::history(&settings()?, args),
        Command::Changes(args) => audit::changes(&settings()?, args),
        Command::State(args) => audit::state(&settings()?, args),
        Command::Access(args) => access::run(&settings()?, args),
        Command::Flows(args) => flows::run(&settings()?, args),
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

/// Opens the database for writing under its writer lock, taken for `command` (named in the
/// lock file) and held as long as the store: waits at most `wait` for another writer, else
/// fails with [`LockError::Held`] (exit status [`LOCKED`]).
fn open_writer(path: &Path, command: &str, wait: WaitArgs) -> anyhow::Result<Store> {
    let lock = WriterLock::acquire(path, command, wait.duration())?;
    Store::open_writer(Arc::new(lock))
        .with_context(|| format!("cannot open the database {}", path.display()))
}

/// Opens the database read-only on the chosen workspace, which must have been polled.
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
