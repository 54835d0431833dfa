//! `segwatch demo`: watch a simulated workspace change, with no credentials.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use secrecy::SecretString;

use super::args::{DemoArgs, TextOrJson};
use super::output::print_outcome;
use super::rules::load_rules;
use crate::poll::Poller;
use crate::rules::RuleSource;
use segwatch_api::segment::{ClientConfig, SegmentClient};
use segwatch_core::redact::SecretPolicy;
use segwatch_simulator::{self as simulator, SimConfig};
use segwatch_store::Store;
use segwatch_store::lock::WriterLock;

/// `segwatch demo`: a simulated workspace that changes, polled every few seconds into a fresh
/// database, each poll's outcome printed.
pub(super) async fn run(args: DemoArgs) -> anyhow::Result<ExitCode> {
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
    let rules = load_rules(&RuleSource::resolve(args.rules.as_deref()))?;
    let poller = Poller::new(
        SegmentClient::new(client_config)?,
        SecretPolicy::default(),
        "demo",
    )
    .with_rules(Arc::new(rules), false)
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
