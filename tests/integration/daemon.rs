//! `segwatch run` as a process: scheduled polls, no overlap, graceful shutdown.

use std::process::Child;
use std::time::{Duration, Instant};

use segwatch::simulator::{Fault, FaultKind};
use segwatch::store::{SnapshotStatus, Store};

use crate::util::TestWorkspace;

/// Every second: fast enough for tests, same code path as `*/15 * * * *`.
const EVERY_SECOND: &str = "* * * * * *";

fn terminate(child: &Child) {
    let status = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

/// Waits for the process to exit, at most `bound`; returns its output.
fn exits_within(mut child: Child, bound: Duration) -> std::process::Output {
    let deadline = Instant::now() + bound;
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            child.kill().unwrap();
            panic!("the daemon did not stop within {bound:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

fn complete(store: &Store) -> Vec<segwatch::store::SnapshotInfo> {
    let mut list = store.snapshots(1, 100).unwrap_or_default();
    list.retain(|s| s.status == SnapshotStatus::Complete);
    list
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn polls_on_schedule_without_overlap_and_stops_on_sigterm() {
    let ws = TestWorkspace::start().await;
    // Each poll takes ~1.5 s, longer than the 1 s tick: the ticks in between must be skipped.
    ws.sim
        .inject(Fault::new(FaultKind::Slow { delay_ms: 1_500 }).on_path("/roles"));
    let child = ws
        .segwatch()
        .env("SEGWATCH_SCHEDULE__CRON", EVERY_SECOND)
        .args(["run"])
        .spawn();
    ws.wait_for_db("three polls completed", |s| complete(s).len() >= 3)
        .await;
    terminate(&child);
    let output = exits_within(child, Duration::from_secs(5));
    assert!(output.status.success(), "{output:?}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("skipped"),
        "overlapping ticks are logged:\n{stderr}"
    );
    assert!(stderr.contains("daemon stopped"), "{stderr}");
    assert!(String::from_utf8_lossy(&output.stdout).contains("baseline of"));

    // Polls never overlapped: each started after the previous one finished.
    let store = ws.store();
    let mut all = store.snapshots(1, 100).unwrap();
    all.reverse();
    for pair in all.windows(2) {
        let finished = pair[0].finished_at.as_deref().unwrap_or("");
        assert!(
            pair[1].started_at.as_str() >= finished,
            "{:?} overlaps {:?}",
            pair[1],
            pair[0]
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_during_a_slow_poll_exits_promptly_and_leaves_a_consistent_database() {
    let ws = TestWorkspace::start().await;
    let child = ws
        .segwatch()
        .env("SEGWATCH_SCHEDULE__CRON", EVERY_SECOND)
        .args(["run"])
        .spawn();
    ws.wait_for_db("the first poll completed", |s| complete(s).len() == 1)
        .await;
    // The next poll hangs for 30 s on sources.
    ws.sim
        .inject(Fault::new(FaultKind::Slow { delay_ms: 30_000 }).on_path("/sources"));
    ws.wait_for_db("a second poll is running", |s| {
        s.snapshots(1, 1).is_ok_and(|l| {
            l.first()
                .is_some_and(|s| s.status == SnapshotStatus::Running)
        })
    })
    .await;
    let stopping = Instant::now();
    terminate(&child);
    let output = exits_within(child, Duration::from_secs(5));
    assert!(output.status.success(), "{output:?}");
    assert!(stopping.elapsed() < Duration::from_secs(5));

    let store = ws.store();
    let ok: String = store
        .connection()
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(ok, "ok");
    let list = store.snapshots(1, 10).unwrap();
    assert_eq!(
        list.iter()
            .filter(|s| s.status == SnapshotStatus::Complete)
            .count(),
        1
    );
    let abandoned = &list[0];
    assert_eq!(abandoned.status, SnapshotStatus::Failed);
    assert!(
        abandoned.error.as_deref().unwrap().contains("interrupted"),
        "{abandoned:?}"
    );
}
