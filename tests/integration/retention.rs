//! Retention: old failed-poll records go, everything auditors rely on stays.

use std::time::Duration;

use segwatch_simulator::{Fault, FaultKind, Mutation};

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
    segwatch().args(["poll"]).code(1);
    std::thread::sleep(Duration::from_millis(1_100));
    // Failing for over a second now: this failure raises the failing-polls alert, which
    // refers to its snapshot.
    segwatch().args(["poll"]).code(1);
    segwatch().args(["poll"]).code(1);
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
        .stdout_contains(&["deleted 0 failed-poll records and 0 quiet snapshots"]);
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quiet_snapshots_become_tombstones_and_the_chain_and_history_stay_exact() {
    let ws = TestWorkspace::start().await;
    let source = ws.sim.read(|s| s.sources[0].clone());
    let toggle = |enabled: bool| {
        ws.sim
            .apply(Mutation::SetSourceEnabled {
                source_id: source.id.clone(),
                enabled,
            })
            .unwrap();
    };
    // 1 baseline, 2-3 quiet, 4 a change, 5-6 quiet, 7 a change back, 8 quiet (the latest).
    for step in 1..=8 {
        match step {
            4 => toggle(!source.enabled),
            7 => toggle(source.enabled),
            _ => {}
        }
        ws.segwatch().args(["poll"]).success();
    }
    // The resources as of a time (which snapshot answers may change: a pruned quiet poll's
    // state is its base's).
    let state_at = |at: &str| {
        ws.segwatch()
            .args(["state", "--at", at, "--format", "json"])
            .success()
            .json()["resources"]
            .clone()
    };
    let observed: Vec<String> = {
        let store = ws.store();
        let mut stmt = store
            .connection()
            .prepare("SELECT finished_at FROM snapshots ORDER BY id")
            .unwrap();
        stmt.query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    };
    let before: Vec<serde_json::Value> = observed.iter().map(|at| state_at(at)).collect();
    let head = ws
        .segwatch()
        .args(["verify", "--format", "json"])
        .success()
        .json();
    // Ten days from now, every one of these polls is past a one-day cutoff.
    let later = (chrono::Utc::now() + chrono::Duration::days(10)).to_rfc3339();

    let run = ws
        .segwatch()
        .env("SEGWATCH_RETENTION__QUIET_SNAPSHOTS_DAYS", "1")
        .args(["prune", "--as-of", &later])
        .success();
    assert!(
        run.stdout().contains("and 4 quiet snapshots"),
        "{}",
        run.stdout()
    );
    let kept: Vec<i64> = {
        let store = ws.store();
        let mut stmt = store
            .connection()
            .prepare("SELECT id FROM snapshots ORDER BY id")
            .unwrap();
        stmt.query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    };
    assert_eq!(
        kept,
        [1, 4, 7, 8],
        "the baseline, the changes and the latest stay"
    );
    assert_eq!(count(&ws, "SELECT count(*) FROM pruned_snapshots"), 4);
    assert_eq!(
        count(&ws, "SELECT base_snapshot_id FROM snapshots WHERE id = 4"),
        1,
        "the change's base is re-pointed past the pruned quiet polls"
    );

    // Every point in time reads the same, and the chain still verifies to the same head.
    for (at, expected) in observed.iter().zip(&before) {
        assert!(
            &state_at(at) == expected,
            "the state at {at} differs after pruning"
        );
    }
    let after = ws
        .segwatch()
        .args(["verify", "--format", "json"])
        .success()
        .json();
    assert!(
        after.to_string().contains(head_hash(&head)),
        "the head is unchanged: {after}"
    );
    ws.segwatch()
        .args(["diff", "--from", "1", "--to", "7"])
        .success();
    ws.assert_intact();
    // Polling goes on from the kept latest snapshot.
    toggle(!source.enabled);
    ws.segwatch()
        .args(["poll"])
        .success()
        .stdout_contains(&["since snapshot 8"]);
}

/// The head hash in `verify --format json` output (the first 64-hex string after "head").
fn head_hash(report: &serde_json::Value) -> &str {
    fn find(v: &serde_json::Value) -> Option<&str> {
        match v {
            serde_json::Value::Object(map) => map.iter().find_map(|(k, v)| {
                if k.contains("head") {
                    v.as_str()
                        .or_else(|| v.get("chain_hash").and_then(|h| h.as_str()))
                } else {
                    find(v)
                }
            }),
            serde_json::Value::Array(items) => items.iter().find_map(find),
            _ => None,
        }
    }
    find(report).unwrap_or_else(|| panic!("no head hash in {report}"))
}
