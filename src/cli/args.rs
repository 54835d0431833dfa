//! The command line as clap parses it: the commands, their options, and the values of options
//! turned into the library's types. Nothing here runs anything.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

use segwatch_core::alerts::AlertStatus;
use segwatch_core::rules::Severity;
use segwatch_simulator::SimulateArgs;
use segwatch_store::DeliveryStatus;
use segwatch_store::lock::MAX_WAIT_SECS;

/// How long a one-shot command that writes waits for the database's writer lock.
#[derive(Debug, Clone, Copy, Args)]
pub(super) struct WaitArgs {
    /// Wait at most SECS (up to 3600) for another segwatch writing to this database (the
    /// daemon, another poll) to finish, instead of refusing at once.
    #[arg(long = "wait", value_name = "SECS", default_value_t = 0,
          value_parser = clap::value_parser!(u64).range(0..=MAX_WAIT_SECS))]
    secs: u64,
}

impl WaitArgs {
    pub(super) fn duration(self) -> Duration {
        Duration::from_secs(self.secs)
    }
}

/// segwatch: an agentless security-posture poller for Segment workspaces.
#[derive(Debug, Parser)]
#[command(name = "segwatch", version, about, max_term_width = 100)]
pub struct Cli {
    /// Configuration file (TOML). Default: ./segwatch.toml if it exists.
    #[arg(long, global = true, env = "SEGWATCH_CONFIG", value_name = "PATH")]
    pub(super) config: Option<PathBuf>,
    /// Log format on stderr.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Human)]
    pub(super) log_format: LogFormat,
    /// The workspace to act on, when several are configured (`[[workspaces]]` names).
    #[arg(long, global = true, value_name = "NAME")]
    pub(super) workspace: Option<String>,
    #[command(subcommand)]
    pub(super) command: Command,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub(super) enum LogFormat {
    Human,
    Json,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(super) enum TextOrJson {
    Text,
    Json,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(super) enum TableOrJson {
    Table,
    Json,
}

#[derive(Debug, Subcommand)]
pub(super) enum Command {
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
    /// Check rule files, dry-run them against a stored snapshot, or write the starter pack out.
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
    Report(super::report::ReportArgs),
    /// Write stored alert events in a standard format (OCSF JSON lines); reads only.
    #[command(subcommand)]
    Export(super::export::ExportCommand),
    /// Serve a simulated Segment workspace over HTTP (for trials, tests and benchmarks).
    Simulate(SimulateArgs),
    /// Watch a simulated workspace change, with no credentials: polls it every few seconds.
    Demo(DemoArgs),
    /// Measure poll cycles against a large simulated workspace (prints a Markdown report).
    Bench(crate::bench::BenchArgs),
    /// Run one read-only SQL statement on the database (views: docs/SCHEMA.md); writes are refused.
    Query(super::audit::QueryArgs),
    /// Every version of one resource and what changed at each step, removals included.
    History(super::audit::HistoryArgs),
    /// Changes observed between two times.
    Changes(super::audit::ChangesArgs),
    /// Every resource as it was at a time (the latest complete poll at or before it).
    State(super::audit::StateArgs),
    /// Who can reach a resource, what a user can reach, at a time (default: now): every grant,
    /// with its role and why (direct, a group, a label filter).
    Access(super::access::AccessArgs),
    /// Where each source's data goes at a time (default: now): its destinations and warehouses,
    /// whether each is enabled, what stands on the way, which personal fields each receives;
    /// `--since` shows how the map changed.
    Flows(super::flows::FlowsArgs),
    /// Test each configured API (Public API per workspace, Profile API) and print one line per
    /// check: OK or the reason. Exits 1 if any check failed; an unconfigured Profile API is
    /// reported, and fails only with --require-profiles.
    CheckConnection(super::privacy::CheckConnectionArgs),
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
    /// Print the shell completion script for SHELL (generated from this command line; where to
    /// install it: see the README's Installation section).
    Completions {
        /// The shell.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the man page of segwatch (roff), or write a page per command into a folder.
    Man {
        /// Write segwatch.1 and one page per subcommand (segwatch-poll.1, …) into DIR (created if
        /// missing; existing pages are replaced) instead of printing the top page.
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
pub(super) enum PrivacyCommand {
    /// Export everything the Profile API holds on one person (metadata, traits, external ids,
    /// events) as one JSON document. Exit codes: 0 written; 2 the space has no profile for the
    /// subject (nothing written); 1 any other error.
    Access(super::privacy::AccessArgs),
    /// Ask Segment to delete (and by default suppress) one user's data; records the request
    /// with the user id hashed, and prints the regulation id.
    Delete(super::privacy_requests::DeleteArgs),
    /// Refresh and print the status of one regulation, or of every recorded one not finished.
    Status(super::privacy_requests::StatusArgs),
    /// List the recorded requests (subjects shown as hash prefixes); reads only.
    Requests(super::privacy_requests::RequestsArgs),
}

#[derive(Debug, Subcommand)]
pub(super) enum WorkspacesCommand {
    /// Delete every row of one workspace from the database, then VACUUM. Asks to type the name
    /// at a terminal; without one, needs --yes (else exits 2).
    Delete(super::workspaces::DeleteArgs),
}

#[derive(Debug, Subcommand)]
pub(super) enum RulesCommand {
    /// Load every rule file and report each error with file, line, rule and field; exits
    /// non-zero on any error.
    Validate {
        /// A rule file or folder (default: `[rules] path` from the configuration, else ./rules
        /// if present, else the built-in starter pack).
        path: Option<PathBuf>,
    },
    /// Write the built-in starter pack (its rule files and README.md) into DIR for editing;
    /// prints each file written. Refuses, writing nothing and exiting 2, if one of them exists.
    Init {
        /// The folder to write into (created if missing).
        dir: PathBuf,
        /// Replace the starter pack's files already in DIR (other files are left alone).
        #[arg(long)]
        force: bool,
    },
    /// Evaluate the rules against a stored snapshot and its changes, recording nothing: what
    /// would fire.
    Test {
        /// The snapshot (default: the latest complete one).
        #[arg(long)]
        snapshot: Option<i64>,
        /// A rule file or folder (default: `[rules] path`, else ./rules if present, else the
        /// built-in starter pack).
        #[arg(long)]
        rules: Option<PathBuf>,
        /// Output format.
        #[arg(long, value_enum, default_value_t = TextOrJson::Text)]
        format: TextOrJson,
    },
}

#[derive(Debug, Subcommand)]
pub(super) enum DeliveriesCommand {
    /// Put a failed or dead delivery back in the queue; it is sent by the next poll.
    Retry {
        /// The delivery id (see `segwatch deliveries`).
        id: i64,
        #[command(flatten)]
        wait: WaitArgs,
    },
}

#[derive(Debug, Subcommand)]
pub(super) enum SinksCommand {
    /// Send a test message to each sink (or the one named) and report success or the error.
    Test {
        /// Only this sink.
        name: Option<String>,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub(super) enum DeliveryStatusArg {
    Pending,
    Failed,
    Sent,
    Summarised,
    Dead,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub(super) enum StatusArg {
    Fired,
    Open,
    Resolved,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub(super) enum SeverityArg {
    Info,
    Low,
    Medium,
    High,
    Critical,
}

/// Options of `segwatch demo`.
#[derive(Debug, Args)]
pub(super) struct DemoArgs {
    /// Database file; recreated at start so every demo begins with a baseline.
    #[arg(long, default_value = "segwatch-demo.db")]
    pub(super) database: PathBuf,
    /// Seconds between polls.
    #[arg(long, default_value_t = 5)]
    pub(super) interval: u64,
    /// Seconds between changes in the simulated workspace.
    #[arg(long, default_value_t = 3)]
    pub(super) mutate_every: u64,
    /// Seed of the simulated workspace.
    #[arg(long, default_value_t = 7)]
    pub(super) seed: u64,
    /// Users in the simulated workspace.
    #[arg(long, default_value_t = 40)]
    pub(super) users: usize,
    /// Stop after this many polls (default: run until Ctrl-C).
    #[arg(long)]
    pub(super) polls: Option<u64>,
    /// Rules to evaluate (default: the `rules` folder if present, else the built-in starter pack).
    #[arg(long)]
    pub(super) rules: Option<PathBuf>,
}

impl StatusArg {
    pub(super) fn status(self) -> AlertStatus {
        match self {
            StatusArg::Fired => AlertStatus::Fired,
            StatusArg::Open => AlertStatus::Open,
            StatusArg::Resolved => AlertStatus::Resolved,
        }
    }
}

impl SeverityArg {
    pub(super) fn severity(self) -> Severity {
        match self {
            SeverityArg::Info => Severity::Info,
            SeverityArg::Low => Severity::Low,
            SeverityArg::Medium => Severity::Medium,
            SeverityArg::High => Severity::High,
            SeverityArg::Critical => Severity::Critical,
        }
    }
}

impl From<DeliveryStatusArg> for DeliveryStatus {
    fn from(arg: DeliveryStatusArg) -> DeliveryStatus {
        match arg {
            DeliveryStatusArg::Pending => DeliveryStatus::Pending,
            DeliveryStatusArg::Failed => DeliveryStatus::Failed,
            DeliveryStatusArg::Sent => DeliveryStatus::Sent,
            DeliveryStatusArg::Summarised => DeliveryStatus::Summarised,
            DeliveryStatusArg::Dead => DeliveryStatus::Dead,
        }
    }
}
