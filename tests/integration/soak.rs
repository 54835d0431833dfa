//! Soak: the real `segwatch run` with 20 workspaces, each a simulated workspace that keeps
//! changing, polled every 2 s for about two minutes, all alerting one webhook receiver that
//! flaps between 503 and 200. Afterwards every poll completed, every alert event reached the
//! receiver (nothing dead, nothing left queued), the daemon's memory stayed flat and the
//! tamper-evidence chain verifies.

use std::collections::{BTreeMap, HashSet};
use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, ExitStatus};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use segwatch_simulator::SimConfig;
use segwatch_store::{SnapshotStatus, Store};

use crate::util::{STARTER_RULES, Segwatch, TOKEN, TestWorkspace, WebhookReceiver};

/// Workspaces the daemon watches.
const WORKSPACES: usize = 20;
/// Every workspace is polled every 2 s (6-field cron, seconds first).
const EVERY_TWO_SECONDS: &str = "*/2 * * * * *";
/// Each simulated workspace changes this often, so alerts keep coming.
const MUTATE_EVERY: Duration = Duration::from_secs(3);
/// How long the daemon runs against the flapping receiver. With start-up, drain and checks the
/// test stays under 2.5 minutes on a debug build (CI's whole suite must stay under 15).
const FLAPPING: Duration = Duration::from_secs(135);
/// RSS samples before this are the warm-up (database, rule engine and simulators settling).
const WARM_UP: Duration = Duration::from_secs(30);
/// How often the daemon's RSS is read.
const RSS_EVERY: Duration = Duration::from_secs(5);
/// The last RSS sample may be at most this many times the first one after the warm-up...
const RSS_GROWTH: f64 = 1.5;
/// ...and under this many kB (300 MB).
const RSS_LIMIT_KB: u64 = 300_000;
/// Longest wait for the outbox to empty once the receiver stays up. The sink retries after at
/// most `retry_max_secs` (4 s) and a paused workspace's delivery task wakes every 15 s.
const DRAIN_BOUND: Duration = Duration::from_secs(60);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_workspaces_poll_for_two_minutes_and_deliver_everything_through_a_flapping_sink() {
    let mut workspaces = Vec::with_capacity(WORKSPACES);
    for i in 0..WORKSPACES {
        let ws = TestWorkspace::with(SimConfig {
            seed: 100 + i as u64,
            ..SimConfig::default()
        })
        .await;
        ws.sim.spawn_mutator(MUTATE_EVERY);
        workspaces.push(ws);
    }
    let names: Vec<String> = (1..=WORKSPACES).map(|i| format!("ws-{i:02}")).collect();
    let receiver = WebhookReceiver::start().await;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("segwatch.db");
    let config = dir.path().join("segwatch.toml");
    let write_config = |paused: bool| {
        // Short retries (1 s doubling, at most 4 s) and a high attempt count, so that a
        // delivery outlives any run of 503s and the outbox drains within seconds once the
        // receiver stays up; many messages per run, so that nothing needs a summary.
        let mut text = format!(
            "{}max_attempts = 20\nretry_base_secs = 1\nretry_max_secs = 4\nmax_messages_per_run = 1000\n",
            receiver.sink_toml()
        );
        for (name, ws) in names.iter().zip(&workspaces) {
            text.push_str(&format!(
                "[[workspaces]]\nname = \"{name}\"\napi_url = \"{}\"\ntoken_env = \"SOAK_TOKEN\"\n\
                 cron = \"{EVERY_TWO_SECONDS}\"\npaused = {paused}\n",
                ws.sim.base_url()
            ));
        }
        std::fs::write(&config, text).unwrap();
    };
    write_config(false);
    let segwatch = || {
        Segwatch::new()
            .env("SEGWATCH_DATABASE__PATH", db.to_str().unwrap())
            .env("SEGWATCH_RULES__PATH", STARTER_RULES)
            .env("SOAK_TOKEN", TOKEN)
            .args(["--config", config.to_str().unwrap()])
            .current_dir(dir.path())
    };

    let started = Instant::now();
    let mut daemon = segwatch().args(["run"]).spawn();
    let pid = daemon.id();
    // Read both pipes to the end so that the daemon never blocks writing; keep the log lines.
    let mut stdout = daemon.stdout.take().unwrap();
    let out_reader = std::thread::spawn(move || {
        let mut sink = Vec::new();
        stdout.read_to_end(&mut sink).map(|_| sink.len())
    });
    let log = Arc::new(Mutex::new(Vec::<String>::new()));
    let err_reader = {
        let log = log.clone();
        let stderr = daemon.stderr.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                log.lock().unwrap().push(line);
            }
        })
    };

    // The receiver flaps: 503 for 2–4 s, then 200 for 3–6 s. Random lengths, so no delivery
    // can fall into step with the flapping and meet a 503 at every attempt.
    let flapping = Arc::new(AtomicBool::new(true));
    let flapper = {
        let (status, flapping) = (receiver.status.clone(), flapping.clone());
        tokio::spawn(async move {
            while flapping.load(Ordering::SeqCst) {
                status.store(503, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(fastrand::u64(2000..4000))).await;
                status.store(200, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(fastrand::u64(3000..6000))).await;
            }
        })
    };
    let rss = Arc::new(Mutex::new(Vec::<(Duration, u64)>::new()));
    let sampling = Arc::new(AtomicBool::new(true));
    let sampler = {
        let (rss, sampling) = (rss.clone(), sampling.clone());
        tokio::spawn(async move {
            while sampling.load(Ordering::SeqCst) {
                if let Some(kb) = rss_kb(pid) {
                    rss.lock().unwrap().push((started.elapsed(), kb));
                }
                tokio::time::sleep(RSS_EVERY).await;
            }
        })
    };

    tokio::time::sleep(FLAPPING.saturating_sub(started.elapsed())).await;
    assert!(
        daemon.try_wait().unwrap().is_none(),
        "the daemon died during the soak:\n{}",
        tail(&log)
    );
    // The receiver stays up from now on.
    flapping.store(false, Ordering::SeqCst);
    flapper.abort();
    receiver.status.store(200, Ordering::SeqCst);
    // Pause every workspace (a reload): each finishes the poll in flight and polls no more, so
    // no poll is cut short by the shutdown and no new alert arrives while the outbox drains.
    write_config(true);
    let hup = Command::new("kill")
        .args(["-HUP", &pid.to_string()])
        .status()
        .unwrap();
    assert!(hup.success());
    wait_until(Duration::from_secs(60), "every workspace is paused", || {
        let log = log.lock().unwrap();
        names.iter().all(|name| {
            log.iter().any(|l| {
                l.contains("workspace paused; its data is kept") && l.contains(name.as_str())
            })
        })
    })
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", tail(&log)));
    let paused_at = started.elapsed();
    let drained = wait_until(DRAIN_BOUND, "the outbox is empty", || {
        Store::open_read_only(&db).is_ok_and(|s| {
            s.connection()
                .query_row(
                    "SELECT count(*) FROM deliveries WHERE status IN ('pending', 'failed')",
                    [],
                    |r| r.get::<_, i64>(0),
                )
                .is_ok_and(|n| n == 0)
        })
    })
    .await;
    let drained_at = started.elapsed();
    sampling.store(false, Ordering::SeqCst);
    sampler.await.unwrap();
    let status = terminate(daemon);
    let stdout_bytes = out_reader.join().unwrap().unwrap();
    err_reader.join().unwrap();
    let ran_for = started.elapsed();
    assert!(
        status.success(),
        "SIGTERM ends the daemon with status 0, not {status}:\n{}",
        tail(&log)
    );

    // RSS: printed, then flat after the warm-up.
    let samples = rss.lock().unwrap().clone();
    println!("daemon RSS (elapsed s: kB):");
    for (at, kb) in &samples {
        println!("  {:6.1}: {kb}", at.as_secs_f64());
    }
    let after_warm_up: Vec<u64> = samples
        .iter()
        .filter(|(at, _)| *at >= WARM_UP)
        .map(|(_, kb)| *kb)
        .collect();
    assert!(
        after_warm_up.len() >= 10,
        "too few RSS samples after the warm-up: {samples:?}"
    );
    let (first, last) = (after_warm_up[0], *after_warm_up.last().unwrap());
    assert!(
        last as f64 <= first as f64 * RSS_GROWTH,
        "RSS grew from {first} kB to {last} kB after the warm-up (more than {RSS_GROWTH}x)"
    );
    let peak = *after_warm_up.iter().max().unwrap();
    assert!(
        peak < RSS_LIMIT_KB,
        "RSS reached {peak} kB (limit {RSS_LIMIT_KB} kB)"
    );

    // Every poll of every workspace completed.
    let store = Store::open_read_only(&db).unwrap();
    let mut polls = BTreeMap::new();
    for name in &names {
        let id = store
            .find_workspace(name)
            .unwrap()
            .unwrap_or_else(|| panic!("{name} was never polled"));
        let snapshots = store.snapshots(id, 100_000).unwrap();
        let not_complete: Vec<_> = snapshots
            .iter()
            .filter(|s| s.status != SnapshotStatus::Complete)
            .map(|s| format!("snapshot {} {:?}: {:?}", s.id, s.status, s.error))
            .collect();
        assert!(
            not_complete.is_empty(),
            "{name}: polls that did not complete: {not_complete:?}\nthe daemon's errors and \
             warnings:\n{}",
            problems(&log)
        );
        // Polled every 2 s for over two minutes: even a slow machine manages a few dozen; 10 proves
        // the schedule kept running for each workspace.
        assert!(
            snapshots.len() >= 10,
            "{name}: only {} polls in {ran_for:?}",
            snapshots.len()
        );
        polls.insert(name.clone(), snapshots.len());
    }
    println!("complete polls per workspace: {polls:?}");

    // Every (sink, alert, event) delivery was confirmed, and the receiver holds its event id.
    let deliveries: Vec<(i64, String, String, i64)> = store
        .connection()
        .prepare("SELECT alert_id, event, status, attempts FROM deliveries")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let mut by_status = BTreeMap::<String, usize>::new();
    for (_, _, status, _) in &deliveries {
        *by_status.entry(status.clone()).or_default() += 1;
    }
    let retried = deliveries.iter().filter(|d| d.3 > 1).count();
    let refused = receiver
        .requests
        .lock()
        .unwrap()
        .iter()
        .filter(|(status, _)| *status == 503)
        .count();
    println!(
        "{} deliveries {by_status:?}; {retried} needed more than one attempt; the receiver \
         answered 503 {refused} times; {stdout_bytes} bytes of daemon output; all paused at \
         {paused_at:?}, outbox empty at {drained_at:?}, stopped at {ran_for:?}",
        deliveries.len()
    );
    drained.unwrap_or_else(|e| panic!("{e}: deliveries {by_status:?}\n{}", tail(&log)));
    assert!(
        by_status.keys().all(|s| s == "sent" || s == "summarised"),
        "deliveries not confirmed: {by_status:?}"
    );
    // The soak exercised what it claims to: alerts from every workspace, and retries.
    let alerting: i64 = store
        .connection()
        .query_row(
            "SELECT count(DISTINCT a.workspace_id) FROM deliveries d JOIN alerts a ON a.id = d.alert_id",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(alerting, WORKSPACES as i64, "every workspace alerted");
    assert!(
        refused > 0 && retried > 0,
        "the flapping receiver refused nothing"
    );
    let received = received_events(&receiver);
    let missing: Vec<String> = deliveries
        .iter()
        .filter(|(_, _, status, _)| status == "sent")
        .map(|(alert, event, _, _)| format!("alert-{alert}-{event}"))
        .filter(|id| !received.contains(id))
        .collect();
    assert!(
        missing.is_empty(),
        "{} sent deliveries never reached the receiver, e.g. {:?}",
        missing.len(),
        &missing[..missing.len().min(10)]
    );

    // The tamper-evidence chain of every workspace verifies.
    let verify = segwatch().args(["verify", "--format", "json"]).output();
    assert_eq!(
        verify.output.status.code(),
        Some(0),
        "segwatch verify:\n{}\n{}",
        verify.stdout(),
        verify.stderr()
    );
    assert_eq!(verify.json()["intact"], true);
}

/// The alert event ids the receiver accepted: from the `X-Segwatch-Event` header of single
/// alerts, and from each alert listed in a digest (its id and whether it is a resolution).
fn received_events(receiver: &WebhookReceiver) -> HashSet<String> {
    let mut ids = HashSet::new();
    for (header, body) in receiver.accepted.lock().unwrap().iter() {
        match body["type"].as_str() {
            Some("digest") => {
                for alert in body["alerts"].as_array().unwrap() {
                    let event = if alert["resolved_at"].is_null() {
                        "raised"
                    } else {
                        "resolved"
                    };
                    ids.insert(format!("alert-{}-{event}", alert["id"]));
                }
            }
            _ => {
                ids.insert(header.clone());
            }
        }
    }
    ids
}

/// The resident set size of process `pid` in kB (`VmRSS` of `/proc/<pid>/status`).
fn rss_kb(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()
}

/// Polls `ready` every 200 ms until it holds, or fails after `bound` naming `what`.
async fn wait_until(bound: Duration, what: &str, ready: impl Fn() -> bool) -> Result<(), String> {
    let deadline = Instant::now() + bound;
    while !ready() {
        if Instant::now() > deadline {
            return Err(format!("timed out after {bound:?} waiting until {what}"));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Ok(())
}

/// Sends SIGTERM and returns the exit status (killing it, and failing, after 20 s).
fn terminate(mut child: Child) -> ExitStatus {
    let sent = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(sent.success());
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if Instant::now() > deadline {
            child.kill().unwrap();
            panic!("the daemon did not stop within 20 s of SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The daemon's first 40 error and warning lines, for a failure message.
fn problems(log: &Mutex<Vec<String>>) -> String {
    let log = log.lock().unwrap();
    let lines: Vec<&str> = log
        .iter()
        .filter(|l| l.contains("ERROR") || l.contains("WARN"))
        .filter(|l| !l.contains("delivery failed"))
        .take(40)
        .map(String::as_str)
        .collect();
    lines.join("\n")
}

/// The last log lines of the daemon, for a failure message.
fn tail(log: &Mutex<Vec<String>>) -> String {
    let log = log.lock().unwrap();
    log[log.len().saturating_sub(40)..].join("\n")
}
