//! `segwatch verify` on a database built by real polls of the simulated workspace with the
//! starter rules: intact, it passes and prints the head hash; altered with plain SQL (as anyone
//! holding the file could), it exits 1 naming the snapshot where the alteration was made.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rusqlite::Connection;
use segwatch_core::rules::RuleSet;
use segwatch_simulator::Mutation;

use crate::util::{STARTER_RULES, TestWorkspace};

/// The polls of [`history`], by role.
struct History {
    ws: TestWorkspace,
    /// Complete snapshot ids, oldest first: baseline, quiet, changes + alerts, changes + a
    /// resolution, quiet, quiet.
    snapshots: Vec<i64>,
}

impl History {
    fn raised(&self) -> i64 {
        self.snapshots[2]
    }

    fn resolved(&self) -> i64 {
        self.snapshots[3]
    }

    /// A copy of the database altered by `sql`, run with foreign keys enforced or not.
    fn altered(&self, name: &str, foreign_keys: bool, sql: &str) -> PathBuf {
        let copy = self.ws.dir.path().join(format!("{name}.db"));
        std::fs::copy(self.ws.db(), &copy).unwrap();
        let conn = Connection::open(&copy).unwrap();
        conn.pragma_update(None, "foreign_keys", foreign_keys)
            .unwrap();
        conn.execute_batch(sql)
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        let violations: i64 = conn
            .query_row("SELECT count(*) FROM pragma_foreign_key_check", [], |r| {
                r.get(0)
            })
            .unwrap();
        if foreign_keys {
            assert_eq!(violations, 0, "{name} keeps foreign keys valid");
        }
        copy
    }

    /// `segwatch verify --format json` on `db`, expected to find a problem: returns it.
    fn problem(&self, db: &Path) -> serde_json::Value {
        let run = self
            .ws
            .segwatch()
            .env("SEGWATCH_DATABASE__PATH", db.to_str().unwrap())
            .args(["verify", "--format", "json"])
            .code(1);
        assert_eq!(run.output.status.code(), Some(1));
        let report = run.json();
        assert_eq!(report["intact"], false);
        report["workspaces"][0]["problem"].clone()
    }

    fn verify_text(&self, db: &Path) -> crate::util::Run {
        self.ws
            .segwatch()
            .env("SEGWATCH_DATABASE__PATH", db.to_str().unwrap())
            .args(["verify"])
            .output()
    }

    fn one(&self, sql: &str) -> i64 {
        Connection::open(self.ws.db())
            .unwrap()
            .query_row(sql, [], |r| r.get(0))
            .unwrap_or_else(|e| panic!("{sql}: {e}"))
    }
}

/// Six polls with the starter rules: a baseline (with findings), a quiet poll, a poll where an
/// owner is granted and a production label removed, one where an unlabelled source gets its
/// label (resolving its finding), and two quiet polls.
async fn history() -> History {
    let ws = TestWorkspace::start().await;
    let rules = Arc::new(RuleSet::load(Path::new(STARTER_RULES)).unwrap());
    let mut snapshots = Vec::new();
    let mut poll = async |ws: &TestWorkspace| {
        let outcome = ws.poll_rules(&rules).await.unwrap();
        snapshots.push(outcome.snapshot_id.get());
        outcome
    };
    poll(&ws).await;
    poll(&ws).await;
    let (user, labelled, unlabelled) = ws.sim.read(|s| {
        let user = s
            .users
            .iter()
            .find(|u| {
                !u.permissions
                    .iter()
                    .any(|p| p.role_name == "Workspace Owner")
            })
            .unwrap()
            .id
            .clone();
        let labelled = s
            .sources
            .iter()
            .find(|s| s.label("environment").is_some())
            .unwrap()
            .id
            .clone();
        let unlabelled = s
            .sources
            .iter()
            .find(|s| s.label("environment").is_none())
            .unwrap()
            .id
            .clone();
        (user, labelled, unlabelled)
    });
    ws.sim
        .apply(Mutation::GrantRole {
            user_id: user,
            role_name: "Workspace Owner".into(),
        })
        .unwrap();
    ws.sim
        .apply(Mutation::RemoveSourceLabel {
            source_id: labelled,
            key: "environment".into(),
        })
        .unwrap();
    let raised = poll(&ws).await;
    assert!(raised.alerts.len() >= 2, "{:?}", raised.alerts);
    ws.sim
        .apply(Mutation::SetSourceLabel {
            source_id: unlabelled,
            key: "environment".into(),
            value: "prod".into(),
        })
        .unwrap();
    let resolved = poll(&ws).await;
    assert!(
        resolved.alerts.iter().any(|a| a.resolution.is_some()),
        "{:?}",
        resolved.alerts
    );
    poll(&ws).await;
    poll(&ws).await;
    // Everything in the main file, so that a copy of it is the whole database.
    Connection::open(ws.db())
        .unwrap()
        .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
        .unwrap();
    History { ws, snapshots }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_untouched_database_verifies_without_writing() {
    let h = history().await;
    let db = h.ws.db();
    let bytes = std::fs::read(&db).unwrap();
    let modified = std::fs::metadata(&db).unwrap().modified().unwrap();
    let head: String = Connection::open(&db)
        .unwrap()
        .query_row(
            "SELECT chain_hash FROM snapshots WHERE status = 'complete' ORDER BY id DESC LIMIT 1",
            [],
            |r| r.get(0),
        )
        .unwrap();
    h.ws.segwatch()
        .args(["verify"])
        .success()
        .stdout_contains(&[&format!("chain intact: 6 snapshots, head {head}")]);
    let json =
        h.ws.segwatch()
            .args(["verify", "--format", "json"])
            .success()
            .json();
    assert_eq!(json["intact"], true);
    assert_eq!(json["workspaces"][0]["head"]["chain_hash"], head.as_str());
    assert_eq!(json["workspaces"][0]["snapshots"], 6);
    h.ws.segwatch()
        .args(["verify", "--anchor", &head.to_uppercase()])
        .success()
        .stdout_contains(&[&format!(
            "anchor {head} holds: it is snapshot {}",
            h.snapshots[5]
        )]);
    assert_eq!(
        std::fs::read(&db).unwrap(),
        bytes,
        "verify changed the file"
    );
    assert_eq!(
        std::fs::metadata(&db).unwrap().modified().unwrap(),
        modified,
        "verify touched the file"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_alteration_is_named_at_its_snapshot() {
    let h = history().await;
    let raised = h.raised();

    // A stored body is edited (the version of a resource changed by the third poll).
    let version = h.one(&format!(
        "SELECT min(id) FROM resource_versions WHERE valid_from = {raised}"
    ));
    let db = h.altered(
        "body",
        false,
        &format!(
            "UPDATE resource_versions SET body = replace(body, 'Workspace Owner', 'Workspace Member') WHERE id = {version}"
        ),
    );
    let p = h.problem(&db);
    assert_eq!(p["kind"], "version_body", "{p}");
    assert_eq!(p["snapshot_id"], raised);
    h.verify_text(&db).stdout_contains(&[
        &format!("CHAIN BROKEN in workspace `default` at snapshot {raised}:"),
        &format!("version {version} ("),
        &format!(
            "verified before it: 2 snapshots up to snapshot {}",
            h.snapshots[1]
        ),
    ]);

    // One change row is deleted.
    let change = h.one(&format!(
        "SELECT min(id) FROM changes WHERE snapshot_id = {}",
        h.resolved()
    ));
    let db = h.altered(
        "change",
        false,
        &format!("DELETE FROM changes WHERE id = {change}"),
    );
    let p = h.problem(&db);
    assert_eq!(
        (p["kind"].as_str(), p["snapshot_id"].as_i64()),
        (Some("content_mismatch"), Some(h.resolved())),
        "{p}"
    );
    assert_eq!(p["parts"][0]["part"], "changes");
    assert!(
        p["message"]
            .as_str()
            .unwrap()
            .contains("of the change rows are missing"),
        "{p}"
    );

    // An alert's severity is lowered.
    let alert = h.one(&format!(
        "SELECT min(id) FROM alerts WHERE snapshot_id = {raised} AND severity = 'critical'"
    ));
    let db = h.altered(
        "severity",
        false,
        &format!("UPDATE alerts SET severity = 'low' WHERE id = {alert}"),
    );
    let p = h.problem(&db);
    assert_eq!(
        (p["kind"].as_str(), p["snapshot_id"].as_i64()),
        (Some("content_mismatch"), Some(raised)),
        "{p}"
    );
    assert_eq!(p["parts"][0]["part"], "alerts_raised");
    h.verify_text(&db)
        .stdout_contains(&["an alert it raised was edited"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_snapshot_is_named_and_a_pruned_one_is_not() {
    let h = history().await;
    // An attacker erases the poll that resolved a finding, with every row that depends on it,
    // keeping the foreign keys valid: un-resolves the finding, restores the versions it closed.
    let gone = h.resolved();
    let before = h.snapshots[2];
    let db = h.altered(
        "deleted",
        true,
        &format!(
            "DELETE FROM deliveries WHERE snapshot_id = {gone}
                OR alert_id IN (SELECT id FROM alerts WHERE snapshot_id = {gone});
             UPDATE alerts SET status = 'open', resolved_at = NULL, resolved_snapshot_id = NULL,
                resolution = NULL WHERE resolved_snapshot_id = {gone};
             DELETE FROM alerts WHERE snapshot_id = {gone};
             UPDATE rule_state SET evaluated_snapshot_id = {before} WHERE evaluated_snapshot_id = {gone};
             DELETE FROM changes WHERE snapshot_id = {gone};
             DELETE FROM resource_versions WHERE valid_from = {gone};
             UPDATE resource_versions SET valid_to = NULL WHERE valid_to = {gone};
             UPDATE snapshots SET base_snapshot_id = {before} WHERE base_snapshot_id = {gone};
             DELETE FROM snapshots WHERE id = {gone};"
        ),
    );
    let p = h.problem(&db);
    assert_eq!(p["kind"], "missing_snapshot", "{p}");
    assert_eq!(p["missing_ids"], serde_json::json!([gone]));
    h.verify_text(&db)
        .stdout_contains(&[&format!("snapshot {gone} is missing or was altered")]);

    // Retention deletes a quiet snapshot and leaves its tombstone: the chain still holds.
    let quiet = h.snapshots[4];
    let db = h.altered(
        "pruned",
        true,
        &format!(
            "INSERT INTO pruned_snapshots (id, workspace_id, started_at, finished_at, resource_count, chain_hash, pruned_at)
                SELECT id, workspace_id, started_at, finished_at, resource_count, chain_hash, '2030-01-01T00:00:00.000Z'
                FROM snapshots WHERE id = {quiet};
             UPDATE snapshots SET base_snapshot_id = {gone} WHERE base_snapshot_id = {quiet};
             DELETE FROM snapshots WHERE id = {quiet};"
        ),
    );
    h.verify_text(&db).stdout_contains(&[
        "chain intact: 5 snapshots, head",
        "1 quiet snapshot pruned by retention, verified from their tombstones",
    ]);
    assert!(h.verify_text(&db).output.status.success());

    // Deleting the newest snapshot leaves a shorter chain that verifies: only an anchor
    // recorded elsewhere shows it.
    let newest = h.snapshots[5];
    let head: String = Connection::open(h.ws.db())
        .unwrap()
        .query_row(
            &format!("SELECT chain_hash FROM snapshots WHERE id = {newest}"),
            [],
            |r| r.get(0),
        )
        .unwrap();
    let db = h.altered(
        "truncated",
        true,
        &format!("DELETE FROM snapshots WHERE id = {newest}"),
    );
    assert!(h.verify_text(&db).output.status.success());
    let run =
        h.ws.segwatch()
            .env("SEGWATCH_DATABASE__PATH", db.to_str().unwrap())
            .args(["verify", "--anchor", &head])
            .code(1);
    assert_eq!(run.output.status.code(), Some(1));
    run.stdout_contains(&[&format!("ANCHOR NOT FOUND: {head}")]);
}
