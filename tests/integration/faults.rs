//! Polls that meet a misbehaving API: nothing partial is ever taken as complete.

use std::time::{Duration, Instant};

use segwatch::poll::PollError;
use segwatch_simulator::{Fault, FaultKind, Mutation, SimConfig};
use segwatch_store::SnapshotStatus;

use crate::util::TestWorkspace;

fn statuses(ws: &TestWorkspace) -> Vec<SnapshotStatus> {
    let store = ws.store();
    let workspace = store.find_workspace("default").unwrap().unwrap();
    store
        .snapshots(workspace, 100)
        .unwrap()
        .iter()
        .rev()
        .map(|s| s.status)
        .collect()
}

/// A poll that fails part-way leaves a failed snapshot only, and the next good poll diffs against
/// the last good one: no resource is falsely reported removed.
async fn failed_poll_is_never_a_base(fault: FaultKind, path: &str, expected_error: &str) {
    let ws = TestWorkspace::start().await;
    let good = ws.poll().await.unwrap();
    let source = ws.sim.read(|s| s.sources[0].id.clone());
    ws.sim
        .apply(Mutation::SetSourceEnabled {
            source_id: source.clone(),
            enabled: false,
        })
        .unwrap();

    // Users and everything else succeed; only this path breaks.
    ws.sim.inject(Fault::new(fault).on_path(path));
    let err = ws.poll().await.unwrap_err();
    let message = format!("{err}");
    assert!(matches!(err, PollError::Collect { .. }), "{message}");
    assert!(
        message.contains(expected_error) && message.contains(path),
        "{message}"
    );
    assert_eq!(
        statuses(&ws),
        [SnapshotStatus::Complete, SnapshotStatus::Failed]
    );
    let store = ws.store();
    let workspace = store.find_workspace("default").unwrap().unwrap();
    assert_eq!(
        store.latest_complete(workspace).unwrap(),
        Some(good.snapshot_id)
    );
    let failed = &store.snapshots(workspace, 1).unwrap()[0];
    assert!(
        failed.error.as_deref().unwrap().contains(path),
        "the failure is recorded with its cause"
    );

    ws.sim.clear_faults();
    let next = ws.poll().await.unwrap();
    assert_eq!(next.base_snapshot_id, Some(good.snapshot_id));
    let changed: Vec<_> = next
        .changes
        .iter()
        .map(|c| (c.resource_id.clone(), c.op.as_str()))
        .collect();
    assert_eq!(
        changed,
        [(source, "modified")],
        "only the real change, no false removals"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_500_storm_mid_poll_fails_it_cleanly() {
    failed_poll_is_never_a_base(FaultKind::ServerError { status: 500 }, "/sources", "500").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_json_mid_poll_fails_it_cleanly() {
    // A group's member list, deep inside the poll, comes back truncated.
    failed_poll_is_never_a_base(FaultKind::MalformedJson, "/groups", "malformed").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_429_is_waited_out_for_ms_before_next() {
    let ws = TestWorkspace::start().await;
    ws.sim.inject(
        Fault::new(FaultKind::RateLimited {
            ms_before_next: 600,
        })
        .on_path("/users")
        .times(2),
    );
    let started = Instant::now();
    let outcome = ws.poll().await.unwrap();
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(1200),
        "two waits of 600 ms, took {took:?}"
    );
    assert!(outcome.is_baseline());
    assert_eq!(statuses(&ws), [SnapshotStatus::Complete]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_429_storm_fails_with_a_clear_error_in_bounded_time() {
    let ws = TestWorkspace::start().await;
    ws.sim
        .inject(Fault::new(FaultKind::RateLimited { ms_before_next: 50 }).on_path("/roles"));
    let started = Instant::now();
    let message = ws.poll().await.unwrap_err().to_string();
    assert!(started.elapsed() < Duration::from_secs(10));
    assert!(
        message.contains("rate limited") && message.contains("/roles"),
        "{message}"
    );
    assert_eq!(statuses(&ws), [SnapshotStatus::Failed]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_endless_cursor_fails_with_a_clear_error_in_bounded_time() {
    // A cursor that repeats is caught at once.
    let ws = TestWorkspace::start().await;
    ws.sim
        .inject(Fault::new(FaultKind::EndlessCursor { repeat: true }).on_path("/users"));
    let message = ws.poll().await.unwrap_err().to_string();
    assert!(
        message.contains("/users") && message.contains("cursor"),
        "{message}"
    );

    // A cursor that always moves on is stopped by the page limit.
    let mut ws = TestWorkspace::start().await;
    ws.max_pages = 50;
    ws.sim
        .inject(Fault::new(FaultKind::EndlessCursor { repeat: false }).on_path("/sources"));
    let started = Instant::now();
    let message = ws.poll().await.unwrap_err().to_string();
    assert!(started.elapsed() < Duration::from_secs(20));
    assert!(
        message.contains("/sources") && message.contains("50"),
        "{message}"
    );
    assert_eq!(statuses(&ws), [SnapshotStatus::Failed]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transient_5xx_and_slow_responses_are_retried_into_a_complete_poll() {
    let ws = TestWorkspace::with(SimConfig::default()).await;
    ws.sim.inject(
        Fault::new(FaultKind::ServerError { status: 503 })
            .on_path("/groups")
            .times(2),
    );
    ws.sim.inject(
        Fault::new(FaultKind::Slow { delay_ms: 300 })
            .on_path("/roles")
            .times(1),
    );
    let outcome = ws.poll().await.unwrap();
    assert!(outcome.is_baseline());
    assert_eq!(statuses(&ws), [SnapshotStatus::Complete]);
}
