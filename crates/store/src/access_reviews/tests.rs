//! Imported access reviews as links of the chain: sealed after the latest link, the next
//! snapshot chained after them, and each alteration found at the review.

use std::path::{Path, PathBuf};

use segwatch_core::alerts::AlertPlan;

use super::*;
use crate::chain::{ProblemKind, WorkspaceChain, genesis, link_hash};
use crate::tests::{commit_with, user};

fn decision(line: i64, who: &str, decision: Option<&'static str>) -> NewDecision {
    NewDecision {
        line,
        grant: GrantIdentity {
            user_id: who.into(),
            invite_email: String::new(),
            resource_type: "WORKSPACE".into(),
            resource_id: "w1".into(),
            role_id: "r1".into(),
            via_group_id: None,
            label_filter: None,
        },
        email: format!("{who}@acme.io"),
        invite: false,
        resource_name: "Acme".into(),
        role_name: "r1".into(),
        via_group_name: None,
        decision,
        reviewer: decision.map(|_| "carol@acme.io".to_string()),
        reviewed_at: None,
        comment: None,
    }
}

/// Two snapshots, a review of the second, a third snapshot.
struct Fixture {
    _dir: tempfile::TempDir,
    path: PathBuf,
    review: RecordedReview,
    snapshots: Vec<i64>,
}

impl Fixture {
    fn new() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.db");
        let mut store = Store::open(&path).unwrap();
        let ws = store.workspace_id("default").unwrap();
        let users = vec![user("a", "r1"), user("b", "r1")];
        let plain = AlertPlan::default();
        let mut snapshots = Vec::new();
        for _ in 0..2 {
            snapshots.push(commit_with(&mut store, ws, &users, &plain).unwrap().0.get());
        }
        let review = store
            .record_access_review(&NewAccessReview {
                workspace_id: ws,
                snapshot_id: snapshots[1],
                file_name: "review.csv".into(),
                file_sha256: "00".repeat(32),
                decisions: vec![
                    decision(2, "a", Some("approve")),
                    decision(3, "b", Some("revoke")),
                ],
            })
            .unwrap();
        snapshots.push(commit_with(&mut store, ws, &users, &plain).unwrap().0.get());
        Fixture {
            _dir: dir,
            path,
            review,
            snapshots,
        }
    }

    fn verify(&self) -> WorkspaceChain {
        verify(&self.path)
    }

    fn sql(&self, sql: &str) {
        rusqlite::Connection::open(&self.path)
            .unwrap()
            .execute_batch(sql)
            .unwrap();
    }
}

fn verify(path: &Path) -> WorkspaceChain {
    let store = Store::open_read_only(path).unwrap();
    store.verify_chain().unwrap().workspaces.remove(0)
}

#[test]
fn a_review_is_a_link_between_two_snapshots() {
    let f = Fixture::new();
    assert_eq!(
        (
            f.review.rows,
            f.review.approved,
            f.review.revoked,
            f.review.undecided
        ),
        (2, 1, 1, 0)
    );
    assert_eq!(f.review.reviewers, "carol@acme.io");
    let chain = f.verify();
    assert!(chain.problem.is_none(), "{:?}", chain.problem);
    assert_eq!((chain.snapshots, chain.reviews, chain.pruned), (3, 1, 0));
    let links: Vec<(i64, Option<i64>)> = chain
        .verified
        .iter()
        .map(|l| (l.snapshot_id, l.review_id))
        .collect();
    assert_eq!(
        links,
        [
            (f.snapshots[0], None),
            (f.snapshots[1], None),
            (f.snapshots[1], Some(f.review.review_id)),
            (f.snapshots[2], None)
        ]
    );
    // The review chains after the second snapshot, and the third after the review.
    assert_eq!(
        chain.verified[2].chain_hash, f.review.chain_hash,
        "the recorded hash"
    );
    let store = Store::open_read_only(&f.path).unwrap();
    let (manifest, content): (String, String) = store
        .conn
        .query_row(
            "SELECT content_manifest, content_hash FROM access_reviews WHERE id = ?1",
            [f.review.review_id],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    let parts: Vec<&str> = manifest
        .lines()
        .skip(1)
        .map(|l| l.split(' ').next().unwrap())
        .collect();
    assert_eq!(parts, ["review", "decisions"]);
    assert_eq!(
        f.review.chain_hash,
        link_hash(&chain.verified[1].chain_hash, &content)
    );
    assert_ne!(chain.verified[0].chain_hash, genesis("default"));
}

#[test]
fn an_edited_decision_is_named_at_its_review() {
    let f = Fixture::new();
    f.sql("UPDATE access_review_decisions SET decision = 'approve' WHERE line = 3");
    let chain = f.verify();
    let problem = chain.problem.unwrap();
    assert_eq!(problem.kind, ProblemKind::ContentMismatch);
    assert_eq!(problem.review_id, Some(f.review.review_id));
    assert_eq!(
        problem.message,
        format!(
            "access review {} was altered after import: a decision row was edited",
            f.review.review_id
        )
    );
    // What precedes it is still vouched for.
    assert_eq!((chain.snapshots, chain.reviews), (2, 0));
}

#[test]
fn a_deleted_decision_and_an_edited_review_row_are_named() {
    let f = Fixture::new();
    f.sql("DELETE FROM access_review_decisions WHERE line = 3");
    let problem = f.verify().problem.unwrap();
    assert_eq!(
        problem.message,
        format!(
            "access review {} was altered after import: 1 of the decision rows are missing (2 recorded, 1 found)",
            f.review.review_id
        )
    );
    let f = Fixture::new();
    f.sql("UPDATE access_reviews SET reviewers = 'mallory'");
    let problem = f.verify().problem.unwrap();
    assert_eq!(problem.review_id, Some(f.review.review_id));
    assert!(
        problem.message.ends_with(
            "its own row (reviewed snapshot, time, reviewers, file hash or counts) was edited"
        ),
        "{}",
        problem.message
    );
}

#[test]
fn a_deleted_review_breaks_the_next_link_and_an_altered_hash_its_own() {
    let f = Fixture::new();
    f.sql("DELETE FROM access_review_decisions; DELETE FROM access_reviews;");
    let chain = f.verify();
    let problem = chain.problem.unwrap();
    assert_eq!(problem.kind, ProblemKind::LinkMismatch);
    assert_eq!(problem.snapshot_id, f.snapshots[2]);
    assert_eq!(problem.review_id, None);

    let f = Fixture::new();
    f.sql(&format!(
        "UPDATE access_reviews SET chain_hash = '{}'",
        "ab".repeat(32)
    ));
    let problem = f.verify().problem.unwrap();
    assert_eq!(problem.kind, ProblemKind::LinkMismatch);
    assert_eq!(
        problem.message,
        format!(
            "access review {} does not chain to snapshot {}, the link before it: its chain hash was altered, or a link before it was inserted, deleted or rewritten after it was imported",
            f.review.review_id, f.snapshots[1]
        )
    );

    let f = Fixture::new();
    f.sql("UPDATE access_reviews SET content_hash = NULL");
    assert_eq!(f.verify().problem.unwrap().kind, ProblemKind::Unhashed);
}

#[test]
fn reviews_chain_in_order_and_the_reviewed_snapshot_is_never_pruned() {
    let f = Fixture::new();
    let mut store = Store::open(&f.path).unwrap();
    let ws = store.workspace_id("default").unwrap();
    // Two more reviews after the same link, both of the first snapshot.
    for _ in 0..2 {
        store
            .record_access_review(&NewAccessReview {
                workspace_id: ws,
                snapshot_id: f.snapshots[0],
                file_name: "again.csv".into(),
                file_sha256: "11".repeat(32),
                decisions: vec![decision(2, "a", None)],
            })
            .unwrap();
    }
    let users = vec![user("a", "r1"), user("b", "r1")];
    commit_with(&mut store, ws, &users, &AlertPlan::default()).unwrap();
    let chain = f.verify();
    assert!(chain.problem.is_none(), "{:?}", chain.problem);
    assert_eq!((chain.snapshots, chain.reviews), (4, 3));

    // Retention keeps the reviewed snapshots (both quiet), and prunes the other quiet one.
    let report = store
        .prune(
            ws,
            &crate::Retention {
                quiet_before: Some("9999-01-01T00:00:00Z".into()),
                ..Default::default()
            },
        )
        .unwrap();
    assert_eq!(report.quiet_snapshots, 1);
    let chain = f.verify();
    assert!(chain.problem.is_none(), "{:?}", chain.problem);
    assert_eq!((chain.snapshots, chain.pruned, chain.reviews), (3, 1, 3));

    // A review of a snapshot that is not complete is refused.
    let failed = store.begin_snapshot(ws).unwrap();
    let refused = store.record_access_review(&NewAccessReview {
        workspace_id: ws,
        snapshot_id: failed.get(),
        file_name: "x.csv".into(),
        file_sha256: String::new(),
        decisions: Vec::new(),
    });
    assert!(refused.is_err());
}

#[test]
fn history_comes_from_access_changes_tracking_and_the_audit_trail() {
    let f = Fixture::new();
    let store = Store::open(&f.path).unwrap();
    let ws = 1;
    let [s1, s2, s3] = [f.snapshots[0], f.snapshots[1], f.snapshots[2]];
    let time = |id: i64| -> String {
        store
            .conn
            .query_row(
                "SELECT finished_at FROM snapshots WHERE id = ?1",
                [id],
                |r| r.get(0),
            )
            .unwrap()
    };
    // As if every poll predated schema 14 (a commit records where tracking starts).
    store
        .conn
        .execute("DELETE FROM access_tracking", [])
        .unwrap();
    // Nothing recorded: only the first snapshot's time.
    let facts = store.access_review_facts(ws, s2, "9999").unwrap();
    assert!(facts.added_at.is_empty() && facts.tracking_since.is_none());
    assert_eq!(facts.first_snapshot_at, Some(time(s1)));
    assert!(facts.last_acting.is_empty());

    let b = decision(3, "b", None).grant;
    let change = |op: &str, snapshot: i64, g: &GrantIdentity| {
        store
            .conn
            .execute(
                "INSERT INTO access_changes (snapshot_id, workspace_id, op, user_id, email, invite,
                    resource_type, resource_id, resource_name, role_id, role_name, via_group_id,
                    via_group_name, label_filter, cause_kind, cause_id)
                 VALUES (?1, ?2, ?3, ?4, 'b@acme.io', 0, ?5, ?6, 'Acme', ?7, 'r1', ?8, NULL, ?9,
                    'user', ?4)",
                params![
                    snapshot,
                    ws,
                    op,
                    g.user_id,
                    g.resource_type,
                    g.resource_id,
                    g.role_id,
                    g.via_group_id,
                    g.label_filter
                ],
            )
            .unwrap();
    };
    store
        .conn
        .execute(
            "INSERT INTO access_tracking (workspace_id, since_snapshot_id) VALUES (?1, ?2)",
            params![ws, s1],
        )
        .unwrap();
    change("added", s2, &b);
    store
        .conn
        .execute(
            "INSERT INTO audit_events (workspace_id, event_id, occurred_at, type, actor,
                actor_email, resource_id, resource_type, resource_name, body, snapshot_id)
             VALUES (?1, 'e1', '2026-01-01T00:00:00.000Z', 'User Updated', 'u', 'B@Acme.io',
                'x', 'user', 'x', '{}', ?2)",
            params![ws, s1],
        )
        .unwrap();
    let facts = store.access_review_facts(ws, s2, "9999").unwrap();
    assert_eq!(facts.added_at.get(&b), Some(&time(s2)));
    assert_eq!(facts.tracking_since, Some(time(s1)));
    assert_eq!(
        facts.last_acting.get("b@acme.io").map(String::as_str),
        Some("2026-01-01T00:00:00.000Z")
    );
    // Not before it was added, nor acting after the instant.
    let facts = store.access_review_facts(ws, s1, "2025").unwrap();
    assert!(facts.added_at.is_empty() && facts.last_acting.is_empty());

    // The revocation of b (reviewed at s2): not removed yet, then removed at s3.
    let view = || -> Vec<(Option<String>, Option<String>)> {
        store
            .conn
            .prepare("SELECT decision, revoke_carried_out FROM audit_access_reviews ORDER BY line")
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap()
    };
    let some = |s: &str| Some(s.to_string());
    assert_eq!(store.access_removed(ws, &b, s2, s3).unwrap(), None);
    assert_eq!(
        view(),
        [(some("approve"), None), (some("revoke"), some("no"))]
    );
    change("removed", s3, &b);
    assert_eq!(
        store.access_removed(ws, &b, s2, s3).unwrap(),
        Some((s3, time(s3)))
    );
    assert_eq!(
        view(),
        [(some("approve"), None), (some("revoke"), some("yes"))]
    );
    let revokes = store.revoke_decisions(ws, s3).unwrap();
    assert_eq!(revokes.len(), 1);
    assert_eq!(revokes[0].grant, b);
    assert_eq!(revokes[0].reviewed_snapshot_id, s2);
    assert!(store.revoke_decisions(ws, s1).unwrap().is_empty());
}
