//! The lifecycle of a workspace: listed (`segwatch workspaces`), paused and resumed (config
//! edit, `poll`, the daemon's SIGHUP, `/healthz`, `/metrics`, the failing-polls clock), and
//! deleted (`segwatch workspaces delete`) without touching the others.

use std::path::{Path, PathBuf};
use std::process::Child;
use std::time::{Duration, Instant};

use rusqlite::Connection;
use segwatch_simulator::{Mutation, SimConfig};
use segwatch_store::{SnapshotStatus, Store};

use crate::util::{STARTER_RULES, Segwatch, TOKEN, TestWorkspace, free_port, stop_daemon};

/// Every second: fast enough for tests, same code path as `*/15 * * * *`.
const EVERY_SECOND: &str = "* * * * * *";

/// Two simulated workspaces, `prod` and `staging`, sharing one database and config file.
struct Pair {
    prod: TestWorkspace,
    staging: TestWorkspace,
    config: PathBuf,
}

impl Pair {
    async fn start() -> Pair {
        let prod = TestWorkspace::start().await;
        let staging = TestWorkspace::with(SimConfig {
            seed: 11,
            ..SimConfig::default()
        })
        .await;
        let config = prod.dir.path().join("segwatch.toml");
        Pair {
            prod,
            staging,
            config,
        }
    }

    /// Writes the configuration: `head` (sections), prod, then staging with `staging_extra`
    /// keys (e.g. `paused = true`), or without staging when `None`.
    fn write(&self, head: &str, staging_extra: Option<&str>) {
        let mut text = format!(
            "{head}[[workspaces]]\nname = \"prod\"\ndescription = \"Production, US\"\napi_url = \"{}\"\n\
             token_env = \"TEST_TOKEN\"\ncron = \"{EVERY_SECOND}\"\n",
            self.prod.sim.base_url()
        );
        if let Some(extra) = staging_extra {
            text.push_str(&format!(
                "[[workspaces]]\nname = \"staging\"\napi_url = \"{}\"\ntoken_env = \"TEST_TOKEN\"\n\
                 cron = \"{EVERY_SECOND}\"\n{extra}\n",
                self.staging.sim.base_url()
            ));
        }
        std::fs::write(&self.config, text).unwrap();
    }

    fn db(&self) -> PathBuf {
        self.prod.db()
    }

    fn segwatch(&self) -> Segwatch {
        Segwatch::new()
            .env("SEGWATCH_DATABASE__PATH", self.db().to_str().unwrap())
            .env("SEGWATCH_RULES__PATH", STARTER_RULES)
            .env("SEGWATCH_SEGMENT__MAX_ATTEMPTS", "2")
            .env("TEST_TOKEN", TOKEN)
            .args(["--config", self.config.to_str().unwrap()])
            .current_dir(self.prod.dir.path())
    }

    fn snapshots(&self, name: &str) -> Vec<segwatch_store::SnapshotInfo> {
        snapshots_of(&Store::open_read_only(&self.db()).unwrap(), name)
    }
}

fn snapshots_of(store: &Store, name: &str) -> Vec<segwatch_store::SnapshotInfo> {
    store
        .find_workspace(name)
        .ok()
        .flatten()
        .and_then(|id| store.snapshots(id, 1000).ok())
        .unwrap_or_default()
}

fn complete_of(store: &Store, name: &str) -> Vec<segwatch_store::SnapshotInfo> {
    let mut list = snapshots_of(store, name);
    list.retain(|s| s.status == SnapshotStatus::Complete);
    list
}

/// Every table with a `workspace_id` column (the `workspaces` table keyed by `id`), with how
/// many rows it holds for `workspace_id`.
fn rows_of(db: &Path, workspace_id: i64) -> Vec<(String, i64)> {
    let conn = Connection::open(db).unwrap();
    let tables: Vec<String> = conn
        .prepare(
            "SELECT m.name FROM sqlite_master m WHERE m.type = 'table'
               AND (m.name = 'workspaces'
                    OR EXISTS (SELECT 1 FROM pragma_table_info(m.name) c WHERE c.name = 'workspace_id'))
             ORDER BY m.name",
        )
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    tables
        .into_iter()
        .map(|t| {
            let key = if t == "workspaces" {
                "id"
            } else {
                "workspace_id"
            };
            let n: i64 = conn
                .query_row(
                    &format!("SELECT count(*) FROM {t} WHERE {key} = ?1"),
                    [workspace_id],
                    |r| r.get(0),
                )
                .unwrap();
            (t, n)
        })
        .collect()
}

fn exit_code(run: &crate::util::Run) -> Option<i32> {
    run.output.status.code()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_pause_and_delete_one_of_two_workspaces() {
    let pair = Pair::start().await;
    pair.write("", Some(""));
    pair.segwatch().args(["poll"]).success();
    // A change in staging, so it has versions, changes and change alerts beyond the baseline.
    let source = pair.staging.sim.read(|s| s.sources[0].clone());
    pair.staging
        .sim
        .apply(Mutation::SetSourceEnabled {
            source_id: source.id.clone(),
            enabled: !source.enabled,
        })
        .unwrap();
    pair.segwatch().args(["poll"]).success();

    // The listing, with a third workspace only configured and never polled.
    pair.write(
        "",
        Some(&format!(
            "[[workspaces]]\nname = \"new\"\ndescription = \"not yet\"\napi_url = \"{}\"\ntoken_env = \"TEST_TOKEN\"\n",
            pair.prod.sim.base_url()
        )),
    );
    let store = Store::open_read_only(&pair.db()).unwrap();
    let run = pair
        .segwatch()
        .args(["workspaces", "--format", "json"])
        .success();
    let list = run.json();
    let list = list.as_array().unwrap();
    assert_eq!(list.len(), 3, "{list:?}");
    for (entry, (name, ws)) in list
        .iter()
        .zip([("prod", &pair.prod), ("staging", &pair.staging)])
    {
        let id = store.find_workspace(name).unwrap().unwrap();
        let latest = store.latest_complete(id).unwrap().unwrap();
        let finished = store.snapshot(id, latest).unwrap().finished_at.unwrap();
        let findings = store
            .open_findings(id)
            .unwrap()
            .into_iter()
            .filter(|a| a.rule_kind == "compliance")
            .count();
        assert!(findings > 0, "the starter rules find something in {name}");
        assert_eq!(entry["name"], name);
        assert_eq!(entry["status"], "active");
        assert_eq!(
            entry["segment_workspace_id"],
            ws.sim.read(|s| s.workspace.id.clone()).as_str()
        );
        assert_eq!(entry["last_complete"]["snapshot_id"], latest.get());
        assert_eq!(entry["last_complete"]["finished_at"], finished.to_string());
        assert_eq!(entry["last_poll"]["status"], "complete");
        assert_eq!(entry["last_poll"]["snapshot_id"], latest.get());
        assert_eq!(entry["kinds_not_read"], serde_json::json!([]));
        assert_eq!(entry["open_findings"], findings);
    }
    assert_eq!(list[0]["description"], "Production, US");
    assert!(list[1]["description"].is_null());
    assert_eq!(list[2]["name"], "new");
    assert_eq!(list[2]["status"], "never polled");
    assert!(list[2]["last_poll"].is_null());
    assert_eq!(list[2]["open_findings"], 0);
    let table = pair.segwatch().args(["workspaces"]).success().stdout();
    assert!(table.contains("prod  [active]  Production, US"), "{table}");
    assert!(table.contains("new  [never polled]  not yet"), "{table}");
    assert!(table.contains("last poll:            complete"), "{table}");
    drop(store);

    // Paused: `poll` skips it and says so; naming it is a usage error (exit 2).
    pair.write("", Some("paused = true"));
    let prod_polls = pair.snapshots("prod").len();
    let staging_polls = pair.snapshots("staging").len();
    pair.segwatch()
        .args(["poll"])
        .success()
        .stderr_has_line("workspace `staging` is paused; skipped");
    assert_eq!(pair.snapshots("prod").len(), prod_polls + 1);
    assert_eq!(pair.snapshots("staging").len(), staging_polls);
    let refused = pair
        .segwatch()
        .args(["--workspace", "staging", "poll"])
        .code(2)
        .stderr_has_line("error: workspace `staging` is paused (`paused = true` in the configuration); set `paused = false` to poll it");
    assert_eq!(exit_code(&refused), Some(2), "{}", refused.stderr());
    assert_eq!(pair.snapshots("staging").len(), staging_polls);
    let list = pair
        .segwatch()
        .args(["workspaces", "--format", "json"])
        .success()
        .json();
    assert_eq!(list[1]["status"], "paused");
    assert_eq!(
        list[1]["last_poll"]["status"], "complete",
        "its data is kept"
    );

    // Removed from the configuration: only the database knows it.
    pair.write("", None);
    let list = pair
        .segwatch()
        .args(["workspaces", "--format", "json"])
        .success()
        .json();
    assert_eq!(list[1]["name"], "staging");
    assert_eq!(list[1]["status"], "not configured");

    // Deletion: refused without a terminal and without --yes (exit 2), nothing deleted.
    pair.write("", Some("paused = true"));
    let staging_id = Store::open_read_only(&pair.db())
        .unwrap()
        .find_workspace("staging")
        .unwrap()
        .unwrap();
    let prod_id = Store::open_read_only(&pair.db())
        .unwrap()
        .find_workspace("prod")
        .unwrap()
        .unwrap();
    let staging_rows = rows_of(&pair.db(), staging_id);
    let refused = pair
        .segwatch()
        .args(["workspaces", "delete", "staging"])
        .code(2)
        .stderr_has_line("error: refusing to delete workspace `staging` without confirmation: there is no terminal to confirm on; pass --yes to confirm on the command line");
    assert_eq!(exit_code(&refused), Some(2), "{}", refused.stderr());
    assert_eq!(rows_of(&pair.db(), staging_id), staging_rows);
    let unknown = pair
        .segwatch()
        .args(["workspaces", "delete", "stagign", "--yes"])
        .code(1)
        .stderr_has_line(
            "error: the database holds no workspace named `stagign` (it holds: prod, staging)",
        );
    assert_eq!(exit_code(&unknown), Some(1));

    // Deleted: every row of staging in every table, prod's untouched, the file smaller.
    for table in [
        "snapshots",
        "resource_versions",
        "changes",
        "alerts",
        "audit_events",
        "audit_reads",
    ] {
        let n = staging_rows.iter().find(|(t, _)| t == table).unwrap().1;
        assert!(n > 0, "staging has rows in {table} before the deletion");
    }
    let prod_rows = rows_of(&pair.db(), prod_id);
    let prod_head = pair
        .segwatch()
        .args(["verify", "--format", "json"])
        .success()
        .json()["workspaces"][0]
        .clone();
    let size_before = std::fs::metadata(pair.db()).unwrap().len();
    let run = pair
        .segwatch()
        .args([
            "workspaces",
            "delete",
            "staging",
            "--yes",
            "--format",
            "json",
        ])
        .success()
        .stderr_has_line("warning: workspace `staging` is still in the configuration: it is paused now; once un-paused, the daemon (or `segwatch poll`) will poll it again from scratch (a new baseline). Remove it from the configuration, or keep it paused.");
    let report = run.json();
    assert_eq!(report["workspace"], "staging");
    for (table, rows) in &staging_rows {
        let reported = report["tables"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["table"] == table.as_str())
            .unwrap_or_else(|| panic!("{table} is not in the report: {report}"));
        assert_eq!(reported["rows"], *rows, "{table}");
    }
    assert!(
        report["bytes_after"].as_u64().unwrap() < report["bytes_before"].as_u64().unwrap(),
        "{report}"
    );
    for (table, rows) in rows_of(&pair.db(), staging_id) {
        assert_eq!(rows, 0, "{table} still holds rows of the deleted workspace");
    }
    assert_eq!(rows_of(&pair.db(), prod_id), prod_rows);
    let size_after = std::fs::metadata(pair.db()).unwrap().len();
    assert!(
        size_after < size_before,
        "the file shrank: {size_before} → {size_after}"
    );
    let verified = pair
        .segwatch()
        .args(["verify", "--format", "json"])
        .success()
        .json();
    assert_eq!(verified["intact"], true, "{verified}");
    let chains = verified["workspaces"].as_array().unwrap();
    assert_eq!(chains.len(), 1, "{verified}");
    assert_eq!(chains[0], prod_head, "prod's chain is as it was");
    let list = pair
        .segwatch()
        .args(["workspaces", "--format", "json"])
        .success()
        .json();
    assert_eq!(list[1]["name"], "staging");
    assert_eq!(list[1]["status"], "paused");
    assert!(list[1]["last_poll"].is_null(), "{list}");

    // The text report names each table.
    pair.write("", Some(""));
    pair.segwatch().args(["poll"]).success();
    let text = pair
        .segwatch()
        .args(["workspaces", "delete", "staging", "--yes"])
        .success()
        .stderr_has_line("warning: workspace `staging` is still in the configuration: the daemon (or `segwatch poll`) will poll it again from scratch (a new baseline). Remove it from the configuration, or keep it paused.")
        .stdout();
    assert!(text.starts_with("deleted workspace `staging`: "), "{text}");
    assert!(text.contains("\n  snapshots "), "{text}");
    assert!(text.contains("VACUUM: "), "{text}");
}

fn hangup(child: &Child) {
    let status = std::process::Command::new("kill")
        .args(["-HUP", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

async fn get(port: u16, path: &str) -> (u16, String) {
    let response = reqwest::get(format!("http://127.0.0.1:{port}{path}"))
        .await
        .unwrap();
    (response.status().as_u16(), response.text().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_daemon_keeps_a_paused_workspace_idle_and_healthy_then_resumes_its_diff() {
    let pair = Pair::start().await;
    let port = free_port();
    let head = format!("[health]\nlisten = \"127.0.0.1:{port}\"\nmax_age_secs = 2\n");
    pair.write(&head, Some(""));
    let child = pair.segwatch().args(["run"]).spawn();
    pair.prod
        .wait_for_db("both workspaces polled", |s| {
            !complete_of(s, "prod").is_empty() && !complete_of(s, "staging").is_empty()
        })
        .await;

    pair.write(&head, Some("paused = true"));
    hangup(&child);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (_, body) = get(port, "/healthz").await;
        let health: serde_json::Value = serde_json::from_str(&body).unwrap();
        if health["workspaces"][1]["status"] == "paused" {
            break;
        }
        assert!(Instant::now() < deadline, "staging never reported paused");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // A poll in flight when the reload arrived may still finish; then nothing.
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    let store = Store::open_read_only(&pair.db()).unwrap();
    let staging_polls = snapshots_of(&store, "staging").len();
    let last_before_pause = complete_of(&store, "staging")[0].id;
    let prod_polls = snapshots_of(&store, "prod").len();
    drop(store);
    // Change staging while it is paused: the resumed poll must find it.
    let source = pair.staging.sim.read(|s| s.sources[0].clone());
    pair.staging
        .sim
        .apply(Mutation::SetSourceEnabled {
            source_id: source.id.clone(),
            enabled: !source.enabled,
        })
        .unwrap();
    // Longer than max_age_secs: staging's last success is old, yet the daemon is healthy.
    pair.prod
        .wait_for_db("prod polled on", |s| {
            snapshots_of(s, "prod").len() >= prod_polls + 3
        })
        .await;
    assert_eq!(
        pair.snapshots("staging").len(),
        staging_polls,
        "a paused workspace is not polled"
    );
    let (status, body) = get(port, "/healthz").await;
    assert_eq!(status, 200, "{body}");
    let health: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(health["status"], "ok", "{health}");
    assert_eq!(health["workspaces"][0]["name"], "prod");
    assert_eq!(health["workspaces"][0]["status"], "ok", "{health}");
    assert_eq!(health["workspaces"][1]["name"], "staging");
    assert_eq!(health["workspaces"][1]["status"], "paused", "{health}");
    assert!(
        health["workspaces"][1]["age_secs"].as_f64().unwrap() > 2.0,
        "{health}"
    );
    let (_, metrics) = get(port, "/metrics").await;
    assert!(
        metrics.contains("# TYPE segwatch_workspace_paused gauge"),
        "{metrics}"
    );
    assert!(
        metrics.contains("segwatch_workspace_paused{workspace=\"prod\"} 0"),
        "{metrics}"
    );
    assert!(
        metrics.contains("segwatch_workspace_paused{workspace=\"staging\"} 1"),
        "{metrics}"
    );

    // Resumed: it polls again, diffed against its last complete snapshot (no new baseline).
    pair.write(&head, Some("paused = false"));
    hangup(&child);
    pair.prod
        .wait_for_db("staging polled again", |s| {
            complete_of(s, "staging")
                .first()
                .is_some_and(|l| l.id > last_before_pause)
        })
        .await;
    let store = Store::open_read_only(&pair.db()).unwrap();
    // Newest first: the earliest after the pause is the resumed poll.
    let resumed = complete_of(&store, "staging")
        .into_iter()
        .rfind(|s| s.id > last_before_pause)
        .unwrap();
    assert_eq!(
        resumed.base_snapshot_id,
        Some(last_before_pause),
        "{resumed:?}"
    );
    assert_eq!(resumed.modified, Some(1), "{resumed:?}");
    assert_eq!(resumed.added, Some(0), "{resumed:?}");
    let changes = store.changes_of(resumed.id).unwrap();
    assert_eq!(changes.len(), 1, "{changes:?}");
    assert_eq!(changes[0].resource_id, source.id);
    drop(store);
    let (status, body) = get(port, "/healthz").await;
    assert_eq!(status, 200, "{body}");
    let health: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(health["workspaces"][1]["status"], "ok", "{health}");
    let (_, metrics) = get(port, "/metrics").await;
    assert!(
        metrics.contains("segwatch_workspace_paused{workspace=\"staging\"} 0"),
        "{metrics}"
    );
    let _ = stop_daemon(child);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_time_while_paused_does_not_raise_the_failing_polls_alert_on_resume() {
    let ws = TestWorkspace::start().await;
    let config = ws.dir.path().join("segwatch.toml");
    const THRESHOLD_SECS: u64 = 4;
    let write = |paused: bool| {
        std::fs::write(
            &config,
            format!(
                "[health]\nalert_after_failing_secs = {THRESHOLD_SECS}\n\
                 [[workspaces]]\nname = \"revoked\"\napi_url = \"{}\"\ntoken_env = \"REVOKED_TOKEN\"\n\
                 cron = \"{EVERY_SECOND}\"\npaused = {paused}\n",
                ws.sim.base_url()
            ),
        )
        .unwrap();
    };
    let alerts = |store: &Store| -> Vec<String> {
        store
            .find_workspace("revoked")
            .ok()
            .flatten()
            .map(|id| {
                store
                    .connection()
                    .prepare(
                        "SELECT opened_at FROM alerts WHERE workspace_id = ?1 AND rule_id = ?2",
                    )
                    .unwrap()
                    .query_map(
                        rusqlite::params![id, segwatch_core::alerts::POLLS_FAILING_RULE],
                        |r| r.get(0),
                    )
                    .unwrap()
                    .collect::<Result<_, _>>()
                    .unwrap()
            })
            .unwrap_or_default()
    };
    write(false);
    let child = Segwatch::new()
        .env("SEGWATCH_DATABASE__PATH", ws.db().to_str().unwrap())
        .env("SEGWATCH_RULES__PATH", STARTER_RULES)
        .env("REVOKED_TOKEN", "sgw-revoked-token")
        .args(["--config", config.to_str().unwrap(), "run"])
        .spawn();
    // Its first poll fails (401); pause it well before the threshold.
    ws.wait_for_db("a poll failed", |s| {
        snapshots_of(s, "revoked")
            .iter()
            .any(|p| p.status == SnapshotStatus::Failed)
    })
    .await;
    write(true);
    hangup(&child);
    let first_failure = chrono::DateTime::parse_from_rfc3339(
        &snapshots_of(&ws.store(), "revoked")
            .last()
            .unwrap()
            .started_at
            .to_string(),
    )
    .unwrap();
    // Paused for longer than the threshold: by the old failure, polls have "failed" too long.
    tokio::time::sleep(Duration::from_secs(THRESHOLD_SECS + 2)).await;
    assert!(
        alerts(&ws.store()).is_empty(),
        "no meta-alert while paused (and none before the pause)"
    );
    let polls_paused = snapshots_of(&ws.store(), "revoked").len();
    write(false);
    let resumed_at = chrono::Utc::now();
    hangup(&child);
    // It polls (and fails) again at once, without an alert: the clock restarted at the resume.
    ws.wait_for_db("polls failed after the resume", |s| {
        snapshots_of(s, "revoked")
            .iter()
            .filter(|p| p.status == SnapshotStatus::Failed)
            .count()
            >= polls_paused + 2
    })
    .await;
    assert!(
        (chrono::Utc::now() - resumed_at).num_seconds() < THRESHOLD_SECS as i64,
        "the check ran within the threshold after the resume"
    );
    assert!(
        alerts(&ws.store()).is_empty(),
        "the time before the pause and while paused does not count"
    );
    // Failing for the threshold after the resume raises it, as usual.
    ws.wait_for_db("the failing-polls alert", |s| !alerts(s).is_empty())
        .await;
    let opened = chrono::DateTime::parse_from_rfc3339(&alerts(&ws.store())[0]).unwrap();
    assert!(
        opened.with_timezone(&chrono::Utc) - resumed_at
            >= chrono::Duration::milliseconds(THRESHOLD_SECS as i64 * 1000 - 500),
        "raised at {opened}, resumed at {resumed_at}, first failure {first_failure}"
    );
    let _ = stop_daemon(child);
}
