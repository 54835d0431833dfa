//! `segwatch bench`: measures poll cycles against a large simulated workspace over loopback.
//!
//! The simulator runs as a child process (`segwatch simulate`) so that the peak RSS measured is
//! the poller's alone. Three polls are measured: the first (a full cycle into an empty
//! database), a poll that finds nothing changed (database bytes it adds), and a poll after the
//! simulator changed a given share of users, groups and sources (time of diff + store, and of
//! reading the audit trail its changes left and attributing them).
//!
//! Effective access (`segwatch_core::access`, not yet part of a poll) is measured on the same
//! workspace, apart from the polls: computed on the first snapshot's resources, and computed on
//! the churn poll's resources then diffed against the first. The resources are read back from
//! the store beforehand; only the computation is timed, and its peak RSS is its own.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Args;
use secrecy::SecretString;

use crate::poll::{PollOutcome, Poller};
use crate::stored;
use segwatch_api::segment::{ClientConfig, SegmentClient};
use segwatch_core::access::{self, EffectiveAccess};
use segwatch_core::ids::SnapshotId;
use segwatch_core::redact::SecretPolicy;
use segwatch_store::Store;

/// Options of `segwatch bench`.
#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Users in the simulated workspace.
    #[arg(long, default_value_t = 100_000)]
    users: usize,
    /// User groups in the simulated workspace.
    #[arg(long, default_value_t = 1_000)]
    groups: usize,
    /// Sources in the simulated workspace.
    #[arg(long, default_value_t = 10_000)]
    sources: usize,
    /// Destinations in the simulated workspace.
    #[arg(long, default_value_t = 1_000)]
    destinations: usize,
    /// Warehouses in the simulated workspace (one request each for its connected sources).
    #[arg(long, default_value_t = 20)]
    warehouses: usize,
    /// Functions in the simulated workspace (one request each for its code).
    #[arg(long, default_value_t = 40)]
    functions: usize,
    /// Tracking plans in the simulated workspace (one request each for its sources).
    #[arg(long, default_value_t = 40)]
    tracking_plans: usize,
    /// Percentage of users, groups and sources changed before the churn poll; a tenth of that
    /// share of users is also removed, so the poll confirms removals.
    #[arg(long, default_value_t = 1.0)]
    churn_percent: f64,
    /// Seed of the simulated workspace.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Requests in flight at once.
    #[arg(long, default_value_t = 8)]
    concurrency: usize,
    /// Measure only this part: `access` runs the first poll and the churn poll (untimed) and
    /// reports only the effective-access rows (no quiet polls, no rules table).
    #[arg(long, value_parser = ["access"])]
    only: Option<String>,
}

/// No-change polls measured for the bytes a quiet poll adds.
const QUIET_POLLS: usize = 50;

/// Kills the simulator child when the benchmark ends, however it ends.
struct ChildGuard(Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Runs the benchmark and prints a Markdown report on stdout.
pub async fn run(args: BenchArgs) -> anyhow::Result<()> {
    let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let base_url = format!("http://127.0.0.1:{port}");
    let mut rng = fastrand::Rng::with_seed(args.seed);
    let token: String = std::iter::repeat_with(|| rng.alphanumeric())
        .take(32)
        .collect();
    let child = Command::new(std::env::current_exe()?)
        .args(["simulate", "--listen", &format!("127.0.0.1:{port}")])
        .args([
            "--users",
            &args.users.to_string(),
            "--groups",
            &args.groups.to_string(),
        ])
        .args([
            "--sources",
            &args.sources.to_string(),
            "--seed",
            &args.seed.to_string(),
        ])
        .args([
            "--destinations",
            &args.destinations.to_string(),
            "--warehouses",
            &args.warehouses.to_string(),
            "--functions",
            &args.functions.to_string(),
            "--tracking-plans",
            &args.tracking_plans.to_string(),
        ])
        .env("SEGWATCH_SIMULATOR_TOKEN", &token)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .spawn()
        .context("cannot start the simulator process")?;
    let _child = ChildGuard(child);
    let http = reqwest::Client::new();
    wait_ready(&http, &base_url, &token).await?;

    let dir = std::env::temp_dir().join(format!("segwatch-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let db = dir.join("bench.db");
    let result = measure(&args, &http, &base_url, &token, &db).await;
    let _ = std::fs::remove_dir_all(&dir);
    let report = result?;
    println!("{report}");
    Ok(())
}

async fn measure(
    args: &BenchArgs,
    http: &reqwest::Client,
    base_url: &str,
    token: &str,
    db: &Path,
) -> anyhow::Result<String> {
    let mut config = ClientConfig::new(base_url, SecretString::from(token.to_string()));
    config.concurrency = args.concurrency;
    // The starter pack, as a team would deploy it on day one.
    let rules = std::sync::Arc::new(segwatch_core::rules::starter_pack()?);
    let poller = Poller::new(
        SegmentClient::new(config)?,
        SecretPolicy::default(),
        "bench",
    )
    .with_rules(rules, false)
    .with_audit_trail(Duration::from_secs(24 * 3600));
    let mut store = Store::open(db)?;

    reset_peak_rss();
    let rss_before = rss_kib("VmRSS:");
    let started = Instant::now();
    let first = poller.poll(&mut store).await?;
    let full_cycle = started.elapsed();
    let peak = rss_kib("VmHWM:");
    let workspace_id = store.workspace_id(poller.workspace())?;
    let only_access = args.only.as_deref() == Some("access");

    // One quiet poll usually fits in a page that has room; average over several so the number
    // is what a long-running daemon really adds per poll.
    let size_before = checkpointed_size(&store, db)?;
    let rows_before = row_counts(&store)?;
    let mut quiet = Vec::with_capacity(QUIET_POLLS);
    let mut quiet_evaluations = 0;
    for _ in 0..if only_access { 1 } else { QUIET_POLLS } {
        let outcome = poller.poll(&mut store).await?;
        if !outcome.changes.is_empty() {
            bail!(
                "a no-change poll found {} changes; the simulator is not quiet",
                outcome.changes.len()
            );
        }
        quiet.push(outcome.duration_ms);
        quiet_evaluations = quiet_evaluations.max(outcome.rule_evaluations);
    }
    let bytes_added = checkpointed_size(&store, db)? as i64 - size_before as i64;
    let rows_after = row_counts(&store)?;
    quiet.sort_unstable();
    let quiet_median_ms = quiet[quiet.len() / 2];

    // One mutation through the simulator's control route.
    let mutate = async |mutation: serde_json::Value| -> anyhow::Result<()> {
        let response = http
            .post(format!("{base_url}/_simulator/mutations"))
            .bearer_auth(token)
            .json(&mutation)
            .send()
            .await?;
        if !response.status().is_success() {
            bail!(
                "the simulator refused the mutation {mutation}: HTTP {}",
                response.status()
            );
        }
        Ok(())
    };
    mutate(serde_json::json!({"op": "churn", "percent": args.churn_percent})).await?;
    // Removals too, a tenth of the churn share of users: each one missing from the user list
    // is confirmed before it is recorded, and the report says what that cost.
    let mut users: Vec<String> = store
        .current_versions(workspace_id)?
        .into_keys()
        .filter(|(kind, _)| *kind == segwatch_core::model::ResourceKind::User)
        .map(|(_, id)| id)
        .collect();
    users.sort();
    let removals = ((users.len() as f64) * args.churn_percent / 1000.0).ceil() as usize;
    for id in users
        .iter()
        .step_by((users.len() / removals.max(1)).max(1))
        .take(removals)
    {
        mutate(serde_json::json!({"op": "remove_user", "user_id": id})).await?;
    }
    reset_peak_rss();
    let churn_rss_before = rss_kib("VmRSS:");
    let churned = poller.poll(&mut store).await?;
    let churn_peak = rss_kib("VmHWM:");
    let in_poll = access_in_poll_row(args, &churned, churn_rss_before, churn_peak);
    // Measured apart, after the polls, so that their peaks are the polls' own: these read
    // whole snapshots back from the store.
    let (access_first, access_before) = access_first(&store, workspace_id, first.snapshot_id)?;
    if only_access {
        return Ok(access_report(
            args,
            &access_first,
            &access_churn(&store, workspace_id, churned.snapshot_id, &access_before)?,
        ) + &in_poll);
    }
    let rules_table = rules_report(&first, quiet_evaluations, &churned);
    let access_rows = access_report(
        args,
        &access_first,
        &access_churn(&store, workspace_id, churned.snapshot_id, &access_before)?,
    ) + &in_poll;

    Ok(report(
        args,
        &first,
        full_cycle,
        rss_before,
        peak,
        quiet_median_ms,
        bytes_added,
        rows_before,
        rows_after,
        &churned,
    ) + &access_rows
        + &rules_table)
}

/// Effective access of the first snapshot, measured apart from the poll.
struct AccessFirst {
    compute: Duration,
    policies: usize,
    grants: usize,
    count: Duration,
    rss_before: Option<u64>,
    peak: Option<u64>,
    rss_after: Option<u64>,
}

/// Effective access after the churn poll: the new state computed and diffed against the first.
struct AccessChurn {
    compute: Duration,
    /// `access::diff_lazily`: the changes found and sorted, not made into `AccessChange`s.
    lazily: Duration,
    /// Peak RSS after `diff_lazily` (the first state and the new one held).
    lazily_peak: Option<u64>,
    diff: Duration,
    changes: usize,
    rss_before: Option<u64>,
    peak: Option<u64>,
}

/// Computes the effective access of stored snapshot `snapshot`; its resources are read from the
/// store first, outside the time and the peak RSS (which resets just before the computation).
fn access_first(
    store: &Store,
    workspace_id: i64,
    snapshot: SnapshotId,
) -> anyhow::Result<(AccessFirst, EffectiveAccess)> {
    let resources = stored::state_at(store, workspace_id, snapshot)?;
    reset_peak_rss();
    let rss_before = rss_kib("VmRSS:");
    let started = Instant::now();
    let computed = EffectiveAccess::compute(&resources);
    let compute = started.elapsed();
    let peak = rss_kib("VmHWM:");
    let rss_after = rss_kib("VmRSS:");
    let started = Instant::now();
    let grants = computed.grant_count();
    let count = started.elapsed();
    let measure = AccessFirst {
        compute,
        policies: computed.policy_count(),
        grants,
        count,
        rss_before,
        peak,
        rss_after,
    };
    Ok((measure, computed))
}

/// Computes the effective access of stored snapshot `snapshot` and diffs it against `before`;
/// the resources are read from the store first, outside the time and the peak RSS.
fn access_churn(
    store: &Store,
    workspace_id: i64,
    snapshot: SnapshotId,
    before: &EffectiveAccess,
) -> anyhow::Result<AccessChurn> {
    let resources = stored::state_at(store, workspace_id, snapshot)?;
    reset_peak_rss();
    let rss_before = rss_kib("VmRSS:");
    let started = Instant::now();
    let after = EffectiveAccess::compute(&resources);
    let compute = started.elapsed();
    let started = Instant::now();
    let lazily_changes = access::diff_lazily(before, &after).len();
    let lazily = started.elapsed();
    let lazily_peak = rss_kib("VmHWM:");
    let started = Instant::now();
    let changes = access::diff(before, &after).len();
    let diff = started.elapsed();
    if lazily_changes != changes {
        bail!("diff_lazily found {lazily_changes} access changes, diff {changes}");
    }
    Ok(AccessChurn {
        compute,
        lazily,
        lazily_peak,
        diff,
        changes,
        rss_before,
        peak: rss_kib("VmHWM:"),
    })
}

/// The row of the access stage inside the churn poll: its access changes, their cost, and the
/// poll's peak RSS (reset just before it).
fn access_in_poll_row(
    args: &BenchArgs,
    churned: &PollOutcome,
    rss_before: Option<u64>,
    peak: Option<u64>,
) -> String {
    format!(
        "| effective access inside the {}% churn poll (both states computed, diffed, causes \
         attached; then stored and evaluated by the rules with the poll) | {} access changes in \
         {:.3} s; the poll {:.2} s in all; peak RSS of the churn poll {} (RSS before: {}) |\n",
        args.churn_percent,
        churned.access_changes_total,
        churned.access_ms as f64 / 1000.0,
        churned.duration_ms as f64 / 1000.0,
        mib(peak),
        mib(rss_before),
    )
}

/// The effective-access rows of the main table.
fn access_report(args: &BenchArgs, first: &AccessFirst, churn: &AccessChurn) -> String {
    format!(
        "| effective access, first snapshot (`EffectiveAccess::compute` only; resources read back \
         from the store beforehand, not timed) | {:.3} s; {} policies, {} grants (`grant_count`, \
         not expanded: {:.3} s) |\n\
         | peak RSS of effective access, first snapshot (measured apart from the poll, reset just \
         before computing; the snapshot's resources already in memory) | {} (RSS before: {}, \
         after: {}) |\n\
         | effective access, {}% churn poll (compute of the new state + `access::diff` against the \
         first; resources read back beforehand, not timed) | {:.3} s (compute {:.3} s, diff \
         {:.3} s); {} access changes; peak RSS {} (the first state held; RSS before: {}) |\n\
         | the same changes found and sorted by `access::diff_lazily`, not made into \
         `AccessChange`s | {:.3} s; peak RSS {} (both states held) |\n",
        first.compute.as_secs_f64(),
        first.policies,
        first.grants,
        first.count.as_secs_f64(),
        mib(first.peak),
        mib(first.rss_before),
        mib(first.rss_after),
        args.churn_percent,
        (churn.compute + churn.diff).as_secs_f64(),
        churn.compute.as_secs_f64(),
        churn.diff.as_secs_f64(),
        churn.changes,
        mib(churn.peak),
        mib(churn.rss_before),
        churn.lazily.as_secs_f64(),
        mib(churn.lazily_peak),
    )
}

fn mib(kib: Option<u64>) -> String {
    kib.map_or_else(
        || "n/a".to_string(),
        |k| format!("{:.0} MiB", k as f64 / 1024.0),
    )
}

#[allow(clippy::too_many_arguments)]
fn report(
    args: &BenchArgs,
    first: &PollOutcome,
    full_cycle: Duration,
    rss_before: Option<u64>,
    peak: Option<u64>,
    quiet_median_ms: u64,
    bytes_added: i64,
    rows_before: [i64; 3],
    rows_after: [i64; 3],
    churned: &PollOutcome,
) -> String {
    let rows: Vec<String> = ["snapshots", "resource_versions", "changes"]
        .iter()
        .zip(rows_before.iter().zip(rows_after))
        .map(|(t, (b, a))| format!("{t} +{}", a - b))
        .collect();
    format!(
        "segwatch bench — {} users, {} groups, {} sources, {} destinations, {} warehouses, \
         {} functions, {} tracking plans ({} resources), concurrency {}\n\
         machine: {}; {}\n\n\
         | measure | result |\n|---|---|\n\
         | full cycle (first poll: fetch + store) | {:.2} s ({} requests; fetch {:.2} s, store {:.2} s; of which the flows' personal fields {:.3} s) |\n\
         | peak RSS of the full cycle | {} (RSS before: {}) |\n\
         | no-change poll ({} polls) | median {:.2} s; database bytes added: {:.0} per poll ({} in all; rows: {}) |\n\
         | {}% churn poll | {:.2} s; {} changes; diff + store {:.3} s (the flows' personal fields {:.3} s) |\n\
         | audit trail of the churn poll | {} events stored, {} of {} changes attributed; read + attribution {:.3} s |\n\
         | removals confirmed in the churn poll | {} resources missing from their lists, {} still there; {} extra requests ({} in the poll) |\n",
        args.users,
        args.groups,
        args.sources,
        args.destinations,
        args.warehouses,
        args.functions,
        args.tracking_plans,
        first.resource_count(),
        args.concurrency,
        machine(),
        chrono::Utc::now().format("%Y-%m-%d"),
        full_cycle.as_secs_f64(),
        first.api_requests,
        first.fetch_ms as f64 / 1000.0,
        first.store_ms as f64 / 1000.0,
        first.flows_ms as f64 / 1000.0,
        mib(peak),
        mib(rss_before),
        QUIET_POLLS,
        quiet_median_ms as f64 / 1000.0,
        bytes_added as f64 / QUIET_POLLS as f64,
        bytes_added,
        rows.join(", "),
        args.churn_percent,
        churned.duration_ms as f64 / 1000.0,
        churned.changes.len(),
        churned.store_ms as f64 / 1000.0,
        churned.flows_ms as f64 / 1000.0,
        churned.audit_events.unwrap_or(0),
        churned
            .changes
            .iter()
            .filter(|c| c.attribution.is_known())
            .count(),
        churned.changes.len(),
        churned.audit_ms as f64 / 1000.0,
        churned.confirmation.checked,
        churned.confirmation.found,
        churned.confirmation.requests,
        churned.api_requests,
    )
}

/// Rule evaluation throughput with the starter pack: all resources on the first snapshot, only
/// what changed afterwards (time-dependent rules excepted).
fn rules_report(first: &PollOutcome, quiet_evaluations: usize, churned: &PollOutcome) -> String {
    let rate = |o: &PollOutcome| {
        if o.rules_ms == 0 {
            "n/a".to_string()
        } else {
            format!(
                "{:.0}",
                o.rule_evaluations as f64 / (o.rules_ms as f64 / 1000.0)
            )
        }
    };
    format!(
        "\n| rules (starter pack) | evaluations | time (incl. loading state and inventory) | evaluations/s | alerts |\n|---|---|---|---|---|\n\
         | first snapshot | {} | {:.2} s | {} | {} |\n\
         | no-change poll (max of all) | {} | — | — | 0 |\n\
         | churn poll | {} | {:.2} s | {} | {} |\n",
        first.rule_evaluations,
        first.rules_ms as f64 / 1000.0,
        rate(first),
        first.alerts.len(),
        quiet_evaluations,
        churned.rule_evaluations,
        churned.rules_ms as f64 / 1000.0,
        rate(churned),
        churned.alerts.len(),
    )
}

async fn wait_ready(http: &reqwest::Client, base_url: &str, token: &str) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        if let Ok(r) = http
            .get(format!("{base_url}/"))
            .bearer_auth(token)
            .send()
            .await
            && r.status().is_success()
        {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("the simulator did not answer at {base_url} within 120 s");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Database size after folding the WAL into the main file, so the number is what stays on disk.
fn checkpointed_size(store: &Store, db: &Path) -> anyhow::Result<u64> {
    store.checkpoint_wal()?;
    let mut size = std::fs::metadata(db)?.len();
    let mut wal = PathBuf::from(db).into_os_string();
    wal.push("-wal");
    if let Ok(m) = std::fs::metadata(&wal) {
        size += m.len();
    }
    Ok(size)
}

fn row_counts(store: &Store) -> anyhow::Result<[i64; 3]> {
    let rows = store.row_counts()?;
    Ok([rows.snapshots, rows.resource_versions, rows.changes])
}

/// Resets the kernel's peak-RSS counter (VmHWM) so it measures the cycle, not start-up.
fn reset_peak_rss() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

fn rss_kib(field: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let mem = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .next()
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|k| k.parse::<u64>().ok())
        })
        .map_or_else(
            || "? GiB".into(),
            |k| format!("{:.0} GiB", k as f64 / 1024.0 / 1024.0),
        );
    format!("{cores} cores ({cpu}), {mem} RAM")
}
