//! The binary's commands, exit codes and messages.

use segwatch_core::ids::SnapshotId;
use segwatch_simulator::{Fault, FaultKind, Mutation};

use crate::util::{Segwatch, TestWorkspace};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn poll_snapshots_and_diff() {
    let ws = TestWorkspace::start().await;
    ws.segwatch()
        .args(["poll"])
        .success()
        .stdout_contains(&["snapshot 1 complete: baseline of"]);
    let source = ws.sim.read(|s| s.sources[0].clone());
    ws.sim
        .apply(Mutation::SetSourceEnabled {
            source_id: source.id.clone(),
            enabled: !source.enabled,
        })
        .unwrap();
    let run = ws.segwatch().args(["poll", "--format", "json"]).success();
    // JSON lines: the poll first, then one line per alert.
    let stdout = run.stdout();
    let outcome: serde_json::Value = serde_json::from_str(stdout.lines().next().unwrap()).unwrap();
    assert_eq!(outcome["type"], "poll");
    for line in stdout.lines().skip(1) {
        let alert: serde_json::Value = serde_json::from_str(line).unwrap();
        assert_eq!(alert["type"], "alert");
    }
    assert_eq!(outcome["snapshot_id"], 2);
    assert_eq!(outcome["changes"][0]["resource_id"], source.id.as_str());
    assert_eq!(outcome["changes"][0]["fields"][0]["path"], "enabled");

    let list = ws
        .segwatch()
        .args(["snapshots", "--format", "json"])
        .success()
        .json();
    assert_eq!(list.as_array().unwrap().len(), 2);
    assert_eq!(list[0]["status"], "complete");
    ws.segwatch()
        .args(["snapshots"])
        .success()
        .stdout_contains(&["complete", "baseline"]);

    let diff = ws
        .segwatch()
        .args(["diff", "--format", "json"])
        .success()
        .json();
    assert_eq!(
        (diff["from"].as_i64(), diff["to"].as_i64()),
        (Some(1), Some(2))
    );
    assert_eq!(diff["changes"], outcome["changes"]);
    ws.segwatch()
        .args(["diff", "--from", "1", "--to", "2"])
        .success()
        .stdout_contains(&["1 change from snapshot 1 to snapshot 2", "enabled", "@@"]);
    // A diff across non-adjacent snapshots is computed from the reconstructed states.
    ws.segwatch().args(["poll"]).success();
    let wide = ws
        .segwatch()
        .args(["diff", "--from", "1", "--to", "3", "--format", "json"])
        .success()
        .json();
    assert_eq!(wide["changes"], outcome["changes"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_poll_exits_non_zero_with_the_reason() {
    let ws = TestWorkspace::start().await;
    ws.segwatch()
        .env("SEGWATCH_SEGMENT__TOKEN", "not-the-token")
        .args(["poll"])
        .code(1)
        .stderr_contains(&["401", "Workspace Owner"]);
    ws.sim
        .inject(Fault::new(FaultKind::ServerError { status: 502 }).on_path("/users"));
    ws.segwatch()
        .args(["poll"])
        .code(1)
        .stderr_contains(&["/users", "502"]);
    ws.segwatch()
        .args(["snapshots"])
        .success()
        .stdout_contains(&["failed"]);
}

#[test]
fn configuration_errors_name_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("segwatch.toml");
    std::fs::write(&config, "[segment]\nregion = \"mars\"\n").unwrap();
    Segwatch::new()
        .env("SEGWATCH_SEGMENT__TOKEN", "t")
        .args(["--config", config.to_str().unwrap(), "poll"])
        .code(1)
        .stderr_has_line("error: invalid configuration: `segment.region`: `mars` is not a region; expected `us` or `eu` (or set `segment.api_url`)");
    std::fs::write(&config, "[segment]\npage_size = \"lots\"\n").unwrap();
    Segwatch::new()
        .env("SEGWATCH_SEGMENT__TOKEN", "t")
        .args(["--config", config.to_str().unwrap(), "poll"])
        .code(1)
        .stderr_contains(&["page_size"]);
    Segwatch::new()
        .args([
            "--config",
            dir.path().join("missing.toml").to_str().unwrap(),
            "poll",
        ])
        .code(1)
        .stderr_contains(&["missing.toml"]);
    // With no file and no token, the error says how to give one.
    let empty = tempfile::tempdir().unwrap();
    Segwatch::new()
        .current_dir(empty.path())
        .args(["poll"])
        .code(1)
        .stderr_has_line("error: invalid configuration: `segment.token`: no API token: set SEGWATCH_SEGMENT__TOKEN or `segment.token_file`");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_mid_poll_leaves_a_consistent_database() {
    let ws = TestWorkspace::start().await;
    ws.segwatch().args(["poll"]).success();
    // The next poll hangs on sources long enough to be killed in the middle.
    ws.sim
        .inject(Fault::new(FaultKind::Slow { delay_ms: 3_000 }).on_path("/sources"));
    let mut child = ws.segwatch().args(["poll"]).spawn();
    // Kill it once its snapshot is recorded as running, i.e. truly mid-poll.
    ws.wait_until_mid_poll().await;
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    ws.sim.clear_faults();

    ws.assert_intact();
    let store = ws.store();
    let workspace = store.find_workspace("default").unwrap().unwrap();
    assert_eq!(
        store.latest_complete(workspace).unwrap(),
        Some(SnapshotId(1)),
        "the killed poll left no complete snapshot"
    );
    drop(store);

    let next = ws.poll().await.unwrap();
    assert_eq!(next.base_snapshot_id, Some(SnapshotId(1)));
    assert!(next.changes.is_empty());
    let list = ws.store().snapshots(workspace, 10).unwrap();
    let killed = list.iter().find(|s| s.id == SnapshotId(2)).unwrap();
    assert!(
        killed.error.as_deref().unwrap().contains("interrupted"),
        "{killed:?}"
    );
}

#[test]
fn the_demo_shows_changes_with_no_credentials() {
    let dir = tempfile::tempdir().unwrap();
    let run = Segwatch::new()
        .current_dir(dir.path())
        .args([
            "demo",
            "--polls",
            "4",
            "--interval",
            "1",
            "--mutate-every",
            "1",
        ])
        .success();
    let out = run.stdout();
    assert!(out.contains("baseline of"), "{out}");
    assert!(out.contains(" since snapshot 1;"), "{out}");
    assert!(
        out.lines()
            .any(|l| l.starts_with("~ ") || l.starts_with("+ ") || l.starts_with("- ")),
        "no change printed:\n{out}"
    );
    assert!(dir.path().join("segwatch-demo.db").exists());
}

#[test]
fn the_benchmark_runs_and_reports_every_measure() {
    // Tiny sizes: this proves the command works end to end (simulator child process included);
    // the numbers themselves are measured by hand and written in the README.
    let run = Segwatch::new()
        .args([
            "bench",
            "--users",
            "60",
            "--groups",
            "4",
            "--sources",
            "6",
            "--destinations",
            "5",
            "--churn-percent",
            "10",
        ])
        .success();
    run.stdout_contains(&[
        "| full cycle",
        "| peak RSS",
        "| no-change poll (50 polls)",
        "| 10% churn poll",
        "| effective access, first snapshot",
        "| peak RSS of effective access",
        "| effective access, 10% churn poll",
        "rows: snapshots +50, resource_versions +0, changes +0",
    ]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_logs_are_one_object_per_line_with_the_poll_span() {
    let ws = TestWorkspace::start().await;
    let run = ws
        .segwatch()
        .args(["--log-format", "json", "poll"])
        .success();
    let stderr = run.stderr();
    let lines: Vec<serde_json::Value> = stderr
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    let complete = lines
        .iter()
        .find(|l| l["message"] == "poll complete")
        .unwrap_or_else(|| panic!("no `poll complete` event:\n{stderr}"));
    assert_eq!(complete["span"]["name"], "poll");
    assert_eq!(complete["span"]["workspace"], "default");
    assert_eq!(complete["span"]["snapshot"], 1);
    assert_eq!(complete["level"], "INFO");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_query_that_runs_too_long_is_stopped_at_its_time_limit() {
    let ws = crate::util::TestWorkspace::start().await;
    ws.segwatch().args(["poll"]).success();
    let endless = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) \
                   SELECT count(*) FROM c";
    let run = ws
        .segwatch()
        .args(["query", endless, "--timeout-secs", "1"])
        .code(1);
    assert_eq!(run.output.status.code(), Some(1));
    assert!(
        run.stderr()
            .contains("the query ran for longer than 1 s and was stopped"),
        "{}",
        run.stderr()
    );
    // A query within its limit is unaffected.
    ws.segwatch()
        .args([
            "query",
            "SELECT count(*) FROM audit_polls",
            "--timeout-secs",
            "1",
        ])
        .success();
}
