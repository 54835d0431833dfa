//! Retention: old failed-poll records go, everything auditors rely on stays.

use std::time::Duration;

use segwatch::simulator::{Fault, FaultKind, Mutation};

use crate::util::TestWorkspace;

fn count(ws: &TestWorkspace, sql: &str) -> i64 {
    ws.store()
        .connection()
        .query_row(sql, [], |r| r.get(0))
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prune_deletes_old_failed_polls_and_keeps_history_and_referenced_polls() {
    let ws = TestWorkspace::start().await;
    let segwatch = || {
        ws.segwatch()
            .env("SEGWATCH_HEALTH__ALERT_AFTER_FAILING_SECS", "1")
            .env("SEGWATCH_SEGMENT__MAX_ATTEMPTS", "1")
    };
    segwatch().args(["poll"]).success();
    ws.sim
        .inject(Fault::new(FaultKind::ServerError { status: 503 }));
    segwatch().args(["poll"]).failure();
    std::thread::sleep(Duration::from_millis(1_100));
    // Failing for over a second now: this failure raises the failing-polls alert, which
    // refers to its snapshot.
    segwatch().args(["poll"]).failure();
    segwatch().args(["poll"]).failure();
    ws.sim.clear_faults();
    let source = ws.sim.read(|s| s.sources[0].clone());
    ws.sim
        .apply(Mutation::SetSourceEnabled {
            source_id: source.id.clone(),
            enabled: !source.enabled,
        })
        .unwrap();
    segwatch()
        .args(["poll"])
        .success()
        .stdout_contains(&["RESOLVED [HIGH] segwatch:polls-failing"]);
    assert_eq!(
        count(
            &ws,
            "SELECT count(*) FROM snapshots WHERE status = 'failed'"
        ),
        3
    );
    let history = "SELECT (SELECT count(*) FROM resource_versions), (SELECT count(*) FROM changes),
        (SELECT count(*) FROM alerts), (SELECT count(*) FROM snapshots WHERE status = 'complete')";
    let before: (i64, i64, i64, i64) = ws
        .store()
        .connection()
        .query_row(history, [], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
        })
        .unwrap();

    // Recent failures are kept...
    segwatch()
        .args(["prune"])
        .success()
        .stdout_contains(&["deleted 0 failed-poll records"]);
    // ...old ones go, except the one the alert refers to.
    ws.store()
        .connection()
        .execute(
            "UPDATE snapshots SET started_at = '2020-01-01T00:00:00.000Z',
                finished_at = '2020-01-01T00:00:01.000Z' WHERE status = 'failed'",
            [],
        )
        .unwrap();
    let dry = segwatch()
        .args(["prune", "--dry-run", "--format", "json"])
        .success()
        .json();
    assert_eq!(dry[0]["pruned"]["failed_polls"], 2, "{dry}");
    assert_eq!(
        count(
            &ws,
            "SELECT count(*) FROM snapshots WHERE status = 'failed'"
        ),
        3
    );
    segwatch()
        .args(["prune"])
        .success()
        .stdout_contains(&["default: deleted 2 failed-poll records"]);
    assert_eq!(
        count(
            &ws,
            "SELECT count(*) FROM snapshots WHERE status = 'failed'"
        ),
        1
    );
    assert_eq!(
        count(
            &ws,
            "SELECT count(*) FROM snapshots s JOIN alerts a ON a.snapshot_id = s.id
             WHERE s.status = 'failed' AND a.rule_id = 'segwatch:polls-failing'"
        ),
        1
    );
    let after: (i64, i64, i64, i64) = ws
        .store()
        .connection()
        .query_row(history, [], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
        })
        .unwrap();
    assert_eq!(
        before, after,
        "versions, changes, alerts and complete snapshots stay"
    );
    ws.assert_intact();
    segwatch()
        .args(["diff"])
        .success()
        .stdout_contains(&[source.id.as_str()]);
}
