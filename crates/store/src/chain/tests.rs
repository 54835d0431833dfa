//! The chain over real commits: sealing, verification, and each kind of alteration found at the
//! snapshot where it was made.

use std::time::Duration;

use serde_json::json;

use super::*;
use crate::Store;
use crate::tests::{commit_with, user};
use segwatch_core::alerts::{AlertPlan, NewAlert, Resolution, ResolvedFinding};
use segwatch_core::model::ResourceKind;
use segwatch_core::rules::Severity;

/// A database with five complete snapshots of workspace `default`, one failed poll between the
/// second and third, a finding raised at the third and resolved at the fourth, and changes at
/// the third and fourth.
struct Fixture {
    _dir: tempfile::TempDir,
    path: std::path::PathBuf,
    /// Complete snapshot ids, oldest first.
    complete: Vec<i64>,
}

fn finding(resource: &str) -> NewAlert {
    NewAlert {
        rule_id: "no-owner".into(),
        rule_kind: "compliance",
        severity: Severity::High,
        title: "No owner role".into(),
        resource_kind: ResourceKind::User,
        resource_id: resource.into(),
        resource_name: format!("{resource}@acme.io"),
        change_index: None,
        summary: format!("{resource} holds no owner role"),
        explanation: json!({"role": "r1"}),
        remediation: "Grant it.".into(),
        tags: vec!["soc2:CC6.1".into()],
        attribution: Default::default(),
    }
}

impl Fixture {
    fn new() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.db");
        let mut store = Store::open(&path).unwrap();
        let ws = store.workspace_id("default").unwrap();
        let first = vec![user("a", "r1"), user("b", "r1"), user("c", "r1")];
        let mut complete = Vec::new();
        let plain = AlertPlan::default();
        complete.push(commit_with(&mut store, ws, &first, &plain).unwrap().0.get());
        complete.push(commit_with(&mut store, ws, &first, &plain).unwrap().0.get());
        let failed = store.begin_snapshot(ws).unwrap();
        store
            .fail_snapshot(failed, "boom", 1, Duration::from_millis(1))
            .unwrap();
        let second = vec![user("a", "owner"), user("c", "r1"), user("d", "r1")];
        let raise = AlertPlan {
            opened: vec![finding("d")],
            ..AlertPlan::default()
        };
        complete.push(
            commit_with(&mut store, ws, &second, &raise)
                .unwrap()
                .0
                .get(),
        );
        let open = store.open_findings(ws).unwrap();
        let resolve = AlertPlan {
            resolved: vec![ResolvedFinding {
                alert: open[0].clone(),
                resolution: Resolution::Compliant,
            }],
            ..AlertPlan::default()
        };
        let third = vec![user("a", "owner"), user("c", "r2"), user("d", "owner")];
        complete.push(
            commit_with(&mut store, ws, &third, &resolve)
                .unwrap()
                .0
                .get(),
        );
        complete.push(commit_with(&mut store, ws, &third, &plain).unwrap().0.get());
        Fixture {
            _dir: dir,
            path,
            complete,
        }
    }

    /// Runs SQL as someone with the file would (foreign keys off, as the sqlite3 shell has
    /// them).
    fn tamper(&self, sql: &str) {
        let conn = Connection::open(&self.path).unwrap();
        conn.pragma_update(None, "foreign_keys", "OFF").unwrap();
        conn.execute_batch(sql).unwrap();
    }

    fn verify(&self) -> WorkspaceChain {
        let store = Store::open_read_only(&self.path).unwrap();
        let mut report = store.verify_chain().unwrap();
        assert_eq!(report.workspaces.len(), 1);
        report.workspaces.remove(0)
    }

    fn problem(&self) -> ChainProblem {
        let chain = self.verify();
        match chain.problem {
            Some(problem) => problem,
            None => panic!("the alteration went unnoticed: {chain:?}"),
        }
    }
}

#[test]
fn commits_are_sealed_into_a_chain_from_the_genesis() {
    let f = Fixture::new();
    let store = Store::open_read_only(&f.path).unwrap();
    /// id, status, manifest, content hash, chain hash.
    type Row = (i64, String, Option<String>, Option<String>, Option<String>);
    let rows: Vec<Row> = store
        .conn
        .prepare("SELECT id, status, content_manifest, content_hash, chain_hash FROM snapshots ORDER BY id")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)))
        .unwrap()
        .collect::<std::result::Result<_, _>>()
        .unwrap();
    let mut previous = genesis("default");
    for (id, status, manifest, content, chain) in rows {
        if status != "complete" {
            assert_eq!(
                (manifest, content, chain),
                (None, None, None),
                "failed {id}"
            );
            continue;
        }
        let (manifest, content, chain) = (manifest.unwrap(), content.unwrap(), chain.unwrap());
        assert!(manifest.starts_with("segwatch-content-v1\nsnapshot 1 "));
        assert_eq!(sha256_hex(manifest.as_bytes()), content);
        assert_eq!(chain, link_hash(&previous, &content), "snapshot {id}");
        previous = chain;
    }
    let chain = f.verify();
    assert!(chain.problem.is_none(), "{:?}", chain.problem);
    assert_eq!((chain.snapshots, chain.pruned), (5, 0));
    assert_eq!(chain.head.unwrap().chain_hash, previous);
    assert!(chain.backfill.is_none(), "a new database needs no backfill");

    // A quiet snapshot's manifest has its row alone; the one with changes lists its parts.
    let manifest = |id: i64| -> String {
        store
            .conn
            .query_row(
                "SELECT content_manifest FROM snapshots WHERE id = ?1",
                [id],
                |r| r.get(0),
            )
            .unwrap()
    };
    assert_eq!(manifest(f.complete[1]).lines().count(), 2);
    let third = manifest(f.complete[2]);
    let parts: Vec<&str> = third
        .lines()
        .skip(1)
        .map(|l| l.split(' ').next().unwrap())
        .collect();
    assert_eq!(
        parts,
        ["snapshot", "versions", "closed", "changes", "alerts_raised"]
    );
}

#[test]
fn an_edited_body_is_found_at_its_snapshot() {
    let f = Fixture::new();
    f.tamper(&format!(
        "UPDATE resource_versions SET body = replace(body, 'r1', 'owner')
         WHERE resource_id = 'd' AND valid_from = {}",
        f.complete[2]
    ));
    let p = f.problem();
    assert_eq!(
        (p.kind, p.snapshot_id),
        (ProblemKind::VersionBody, f.complete[2])
    );
    assert!(p.message.contains("(user d)"), "{}", p.message);
}

#[test]
fn a_body_edited_with_its_hash_is_a_content_mismatch_of_the_versions() {
    let f = Fixture::new();
    f.tamper(&format!(
        "UPDATE resource_versions SET body = '{{}}', content_hash = '{}' WHERE resource_id = 'b'",
        sha256_hex(b"{}")
    ));
    let p = f.problem();
    assert_eq!(
        (p.kind, p.snapshot_id),
        (ProblemKind::ContentMismatch, f.complete[0])
    );
    assert_eq!(p.parts.len(), 1);
    assert_eq!(p.parts[0].part, Part::Versions);
    assert!(
        p.message
            .contains("a resource version it stored was edited")
    );
}

#[test]
fn a_deleted_change_row_is_named_as_missing() {
    let f = Fixture::new();
    f.tamper(&format!(
        "DELETE FROM changes WHERE snapshot_id = {} AND resource_id = 'c'",
        f.complete[3]
    ));
    let p = f.problem();
    assert_eq!(
        (p.kind, p.snapshot_id),
        (ProblemKind::ContentMismatch, f.complete[3])
    );
    assert_eq!(
        (
            p.parts[0].part,
            p.parts[0].recorded_rows,
            p.parts[0].found_rows
        ),
        (Part::Changes, 2, 1)
    );
    assert!(
        p.message.contains("1 of the change rows are missing"),
        "{}",
        p.message
    );
}

#[test]
fn alert_edits_are_found_where_the_alert_was_raised_or_resolved() {
    let f = Fixture::new();
    f.tamper("UPDATE alerts SET severity = 'low'");
    let p = f.problem();
    assert_eq!(
        (p.snapshot_id, p.parts[0].part),
        (f.complete[2], Part::AlertsRaised)
    );
    let f = Fixture::new();
    f.tamper("UPDATE alerts SET resolution = 'exempted'");
    let p = f.problem();
    assert_eq!(
        (p.snapshot_id, p.parts[0].part),
        (f.complete[3], Part::AlertsResolved)
    );
    // Un-resolving the finding drops the resolution from the snapshot that recorded it.
    let f = Fixture::new();
    f.tamper(
        "UPDATE alerts SET status = 'open', resolved_at = NULL, resolved_snapshot_id = NULL, resolution = NULL",
    );
    let p = f.problem();
    assert_eq!(
        (p.snapshot_id, p.parts[0].part, p.parts[0].found_rows),
        (f.complete[3], Part::AlertsResolved, 0)
    );
    // The status alone is not hashed (it changes over time) but must agree with the rest.
    let f = Fixture::new();
    f.tamper("UPDATE alerts SET status = 'open'");
    let p = f.problem();
    assert_eq!(
        (p.kind, p.snapshot_id),
        (ProblemKind::AlertState, f.complete[2])
    );
}

#[test]
fn operational_columns_may_change() {
    let f = Fixture::new();
    // Retention re-points bases; deliveries and rule state are not evidence; the segment id
    // is updated by later commits.
    f.tamper(&format!(
        "UPDATE snapshots SET base_snapshot_id = NULL WHERE id = {};
         UPDATE workspaces SET segment_id = 'other';
         INSERT INTO rule_state VALUES (1, 'r', 'f', {});",
        f.complete[3], f.complete[4]
    ));
    let chain = f.verify();
    assert!(chain.problem.is_none(), "{:?}", chain.problem);
}

#[test]
fn snapshot_rows_and_links_are_covered() {
    let f = Fixture::new();
    f.tamper(&format!(
        "UPDATE snapshots SET finished_at = '2020-01-01T00:00:00.000Z' WHERE id = {}",
        f.complete[1]
    ));
    let p = f.problem();
    assert_eq!(
        (p.snapshot_id, p.parts[0].part),
        (f.complete[1], Part::Snapshot)
    );

    let f = Fixture::new();
    f.tamper(&format!(
        "UPDATE snapshots SET chain_hash = '{}' WHERE id = {}",
        "0".repeat(64),
        f.complete[4]
    ));
    let p = f.problem();
    assert_eq!(
        (p.kind, p.snapshot_id),
        (ProblemKind::LinkMismatch, f.complete[4])
    );

    let f = Fixture::new();
    f.tamper(&format!(
        "UPDATE snapshots SET chain_hash = NULL WHERE id = {}",
        f.complete[1]
    ));
    let p = f.problem();
    assert_eq!(
        (p.kind, p.snapshot_id),
        (ProblemKind::Unhashed, f.complete[1])
    );
}

#[test]
fn a_complete_snapshot_turned_failed_is_named() {
    let f = Fixture::new();
    f.tamper(&format!(
        "UPDATE snapshots SET status = 'failed' WHERE id = {}",
        f.complete[1]
    ));
    let p = f.problem();
    assert_eq!(
        (p.kind, p.snapshot_id),
        (ProblemKind::StatusAltered, f.complete[1])
    );
}

/// Deletes a quiet complete snapshot as retention does; with `tombstone`, leaves its tombstone.
fn prune(f: &Fixture, id: i64, tombstone: bool) {
    let conn = Connection::open(&f.path).unwrap();
    conn.pragma_update(None, "foreign_keys", "ON").unwrap();
    if tombstone {
        conn.execute(
            "INSERT INTO pruned_snapshots (id, workspace_id, started_at, finished_at, resource_count, chain_hash, pruned_at)
             SELECT id, workspace_id, started_at, finished_at, resource_count, chain_hash, '2030-01-01T00:00:00.000Z'
             FROM snapshots WHERE id = ?1",
            [id],
        )
        .unwrap();
    }
    conn.execute(
        "UPDATE snapshots SET base_snapshot_id = (SELECT base_snapshot_id FROM snapshots WHERE id = ?1)
         WHERE base_snapshot_id = ?1",
        [id],
    )
    .unwrap();
    conn.execute("DELETE FROM snapshots WHERE id = ?1", [id])
        .unwrap();
}

#[test]
fn a_tombstone_of_a_quiet_snapshot_keeps_the_chain_and_a_deletion_breaks_it() {
    let f = Fixture::new();
    let quiet = f.complete[1];
    prune(&f, quiet, true);
    let chain = f.verify();
    assert!(chain.problem.is_none(), "{:?}", chain.problem);
    assert_eq!((chain.snapshots, chain.pruned), (4, 1));
    // A snapshot can be committed after a tombstone, and chains to the right link.
    let mut store = Store::open(&f.path).unwrap();
    let ws = store.workspace_id("default").unwrap();
    commit_with(&mut store, ws, &[user("a", "r1")], &AlertPlan::default()).unwrap();
    drop(store);
    assert!(f.verify().problem.is_none());

    let f = Fixture::new();
    prune(&f, quiet, false);
    let p = f.problem();
    assert_eq!(
        (p.kind, p.snapshot_id, p.missing_ids.clone()),
        (ProblemKind::MissingSnapshot, f.complete[2], vec![quiet])
    );
    assert!(
        p.message
            .starts_with(&format!("snapshot {quiet} is missing or was altered")),
        "{}",
        p.message
    );
}

#[test]
fn a_tombstone_cannot_stand_for_a_snapshot_that_held_content() {
    // The attacker removes everything snapshot 4 recorded (a change alert's evidence) and
    // disguises the deletion as retention.
    let f = Fixture::new();
    let target = f.complete[3];
    f.tamper(&format!(
        "DELETE FROM changes WHERE snapshot_id = {target};
         UPDATE alerts SET status = 'open', resolved_at = NULL, resolved_snapshot_id = NULL, resolution = NULL;
         DELETE FROM resource_versions WHERE valid_from = {target};
         UPDATE resource_versions SET valid_to = NULL WHERE valid_to = {target};
         UPDATE snapshots SET added = 0, removed = 0, modified = 0 WHERE id = {target};"
    ));
    prune(&f, target, true);
    let p = f.problem();
    assert_eq!((p.kind, p.snapshot_id), (ProblemKind::Tombstone, target));
}

#[test]
fn rows_referencing_a_deleted_snapshot_name_it() {
    let f = Fixture::new();
    f.tamper(&format!(
        "DELETE FROM snapshots WHERE id = {}",
        f.complete[2]
    ));
    let p = f.problem();
    assert_eq!(
        (p.kind, p.snapshot_id),
        (ProblemKind::MissingSnapshot, f.complete[2])
    );
    assert!(
        p.message.contains("rows still reference it"),
        "{}",
        p.message
    );
    assert!(p.message.contains("changes"), "{}", p.message);
}

#[test]
fn an_anchor_catches_a_rewritten_head() {
    // Deleting the newest snapshot leaves a valid shorter chain: only an anchor recorded
    // elsewhere shows it.
    let f = Fixture::new();
    let head = f.verify().head.unwrap();
    assert_eq!(head.snapshot_id, f.complete[4]);
    let report = Store::open_read_only(&f.path)
        .unwrap()
        .verify_chain()
        .unwrap();
    assert_eq!(
        report
            .find_link(&head.chain_hash.to_uppercase())
            .unwrap()
            .1
            .snapshot_id,
        head.snapshot_id
    );
    f.tamper(&format!(
        "DELETE FROM snapshots WHERE id = {}",
        f.complete[4]
    ));
    let report = Store::open_read_only(&f.path)
        .unwrap()
        .verify_chain()
        .unwrap();
    assert!(report.intact());
    assert!(report.find_link(&head.chain_hash).is_none());
}

#[test]
fn the_migration_backfills_existing_snapshots_in_order() {
    let f = Fixture::new();
    let before = f.verify().head.unwrap();
    // The same history in a database of the schema before the chain: its tables, with the
    // columns they had then, filled from the fixture's rows.
    let old = f.path.with_file_name("schema-4.db");
    {
        let mut conn = rusqlite::Connection::open(&old).unwrap();
        crate::open::migrate_to(&mut conn, 4).unwrap();
        conn.execute("ATTACH DATABASE ?1 AS live", [f.path.to_str().unwrap()])
            .unwrap();
        for table in [
            "workspaces",
            "snapshots",
            "resource_versions",
            "changes",
            "alerts",
            "rule_state",
            "deliveries",
        ] {
            let columns: Vec<String> = {
                let mut stmt = conn
                    .prepare(&format!(
                        "SELECT name FROM main.pragma_table_info('{table}')"
                    ))
                    .unwrap();
                stmt.query_map([], |r| r.get(0))
                    .unwrap()
                    .collect::<std::result::Result<_, _>>()
                    .unwrap()
            };
            let columns = columns.join(", ");
            conn.execute_batch(&format!(
                "INSERT INTO main.{table} ({columns}) SELECT {columns} FROM live.{table}"
            ))
            .unwrap();
        }
        conn.execute_batch("DETACH DATABASE live").unwrap();
    }
    assert!(matches!(
        Store::open_read_only(&old),
        Err(crate::StoreError::NeedsMigration { found: 4, .. })
    ));
    // Opening it upgrades it to the latest schema, hashing the stored snapshots on the way.
    let store = Store::open(&old).unwrap();
    let chain = store.verify_chain().unwrap();
    let ours = &chain.workspaces[0];
    assert!(ours.problem.is_none(), "{:?}", ours.problem);
    assert_eq!(ours.snapshots, 5);
    assert_eq!(
        ours.head.as_ref().unwrap().chain_hash,
        before.chain_hash,
        "the backfill hashes exactly as commits do"
    );
    let backfill = ours.backfill.as_ref().unwrap();
    assert_eq!(
        (backfill.through_snapshot_id, backfill.snapshots),
        (f.complete[4], 5)
    );
}

#[test]
fn workspaces_have_separate_chains() {
    let f = Fixture::new();
    let mut store = Store::open(&f.path).unwrap();
    let other = store.workspace_id("other").unwrap();
    let (id, _) =
        commit_with(&mut store, other, &[user("z", "r1")], &AlertPlan::default()).unwrap();
    let report = store.verify_chain().unwrap();
    assert!(report.intact());
    let theirs = &report.workspaces[1];
    assert_eq!((theirs.workspace.as_str(), theirs.snapshots), ("other", 1));
    let content = content_of(&store.conn, id.get(), Source::Snapshot).unwrap();
    assert_eq!(
        theirs.head.as_ref().unwrap().chain_hash,
        link_hash(&genesis("other"), &content.hash)
    );
}

#[test]
fn stored_values_are_encoded_by_type() {
    let conn = Connection::open_in_memory().unwrap();
    let encode = |sql: &str| -> String {
        let mut stmt = conn.prepare(sql).unwrap();
        let columns = stmt.column_count();
        let mut rows = stmt.query([]).unwrap();
        let row = rows.next().unwrap().unwrap();
        let mut out = Vec::new();
        encode_row(row, columns, &mut out).unwrap();
        String::from_utf8(out).unwrap()
    };
    assert_eq!(
        encode("SELECT 1, -2, 'a\"b', NULL, x'00ff', 1.5, CAST(x'ff' AS TEXT)"),
        r#"[1,-2,"a\"b",null,{"blob":"00ff"},1.5,{"bytes":"ff"}]"#
    );
    // The same digits stored as text and as an integer are different content.
    assert_ne!(encode("SELECT 1"), encode("SELECT '1'"));
}
