//! API drift through the store: marked changes are stored exactly and read back marked in
//! history and the auditor views (the detection itself is tested in `segwatch_core::drift`).

use serde_json::{Value, json};

use segwatch_core::alerts;
use segwatch_core::diff;
use segwatch_core::drift::{Direction, DriftSummary, is_drift_only, mark};
use segwatch_core::ids::SnapshotId;
use segwatch_core::model::{Resource, ResourceKind};

const TS: &str = "2024-01-01T00:00:00Z";

fn res(kind: ResourceKind, id: &str, body: Value) -> Resource {
    Resource::new(kind, id.to_string(), id.to_string(), body)
}

fn user(i: usize) -> Resource {
    let id = format!("u{i}");
    res(
        ResourceKind::User,
        &id,
        json!({
            "id": id,
            "email": format!("{id}@acme.io"),
            "permissions": [
                {"roleId": "r1", "roleName": "Source Admin", "resources": [{"id": "s1", "type": "SOURCE"}]},
                {"roleId": "r2", "roleName": "Read-only", "resources": [{"id": "ws1", "type": "WORKSPACE"}]}
            ]
        }),
    )
}

/// `resources` after `edit` (kind, id, body) on each.
fn with(resources: &[Resource], edit: impl Fn(ResourceKind, &str, &mut Value)) -> Vec<Resource> {
    resources
        .iter()
        .map(|r| {
            let mut body: Value = serde_json::from_str(&r.body).unwrap();
            edit(r.kind, &r.id, &mut body);
            res(r.kind, &r.id, body)
        })
        .collect()
}

fn summary(kind: ResourceKind, path: &str, direction: Direction, n: usize) -> DriftSummary {
    DriftSummary {
        kind,
        path: path.to_string(),
        direction,
        resources: n,
    }
}

/// Commits one poll of `resources` through the store, marking drift as `poll::Poller` does
/// (no audit trail); returns the snapshot id and the drift found.
fn commit(
    store: &mut crate::Store,
    ws: i64,
    resources: &[Resource],
) -> (SnapshotId, Vec<DriftSummary>) {
    let id = store.begin_snapshot(ws).unwrap();
    let base = store.latest_complete(ws).unwrap();
    let current = store.current_versions(ws).unwrap();
    let mut delta = diff::plan(resources, &current, base.is_none(), |v| {
        store.version_value(v)
    })
    .unwrap();
    let drift = mark(&mut delta.changes, resources, &current, false, |v| {
        store.version_value(v)
    })
    .unwrap();
    let target = crate::CommitTarget {
        workspace_id: ws,
        snapshot_id: id,
        base,
        segment_workspace_id: "seg-ws",
        stats: crate::PollStats {
            resource_count: resources.len(),
            api_requests: 1,
            duration: std::time::Duration::from_millis(1),
        },
        trail: None,
        kinds: &ResourceKind::ALL,
        kind_status: &Default::default(),
        confirm_requests: 0,
        quarantine: &[],
        access: None,
        flow_fields: None,
    };
    store
        .commit_snapshot(&target, &delta, &alerts::AlertPlan::default())
        .unwrap();
    (id, drift)
}

#[test]
fn drift_is_stored_exactly_and_marked_in_history_and_the_views() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = crate::Store::open(&dir.path().join("a.db")).unwrap();
    let ws = store.workspace_id("default").unwrap();
    let v1: Vec<Resource> = (1..=3).map(user).collect();
    commit(&mut store, ws, &v1);
    // u1's email was edited by someone before the release came out: a real change.
    let v2 = with(&v1, |_, id, body| {
        if id == "u1" {
            body["email"] = json!("u1@evil.io");
        }
    });
    let (edit, drift) = commit(&mut store, ws, &v2);
    assert_eq!(drift, []);
    let v3 = with(&v2, |_, _, body| body["createdAt"] = json!(TS));
    let (release, drift) = commit(&mut store, ws, &v3);
    assert_eq!(
        drift,
        vec![summary(
            ResourceKind::User,
            "createdAt",
            Direction::Added,
            3
        )]
    );

    // Read back: the versions hold the field, the changes carry the mark.
    let changes = store.changes_of(release).unwrap();
    assert_eq!(changes.len(), 3);
    assert!(changes.iter().all(is_drift_only));
    let state = crate::audit::state_at(&store, ws, chrono::Utc::now(), None).unwrap();
    assert!(state.resources.iter().all(|r| r.body["createdAt"] == TS));
    let history = crate::audit::resource_history(&store, ws, ResourceKind::User, "u1").unwrap();
    let last = history.steps.last().unwrap();
    assert_eq!(last.snapshot_id, release.get());
    assert!(last.fields.iter().all(|f| f.api_drift));

    let rows = |sql: &str| -> Vec<(i64, String, i64)> {
        let conn = store.connection();
        let mut stmt = conn.prepare(sql).unwrap();
        stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .unwrap()
            .map(Result::unwrap)
            .collect()
    };
    assert_eq!(
        rows(
            "SELECT snapshot_id, resource_id || ':' || field_count, api_drift FROM audit_changes
             ORDER BY snapshot_id, resource_id"
        ),
        vec![
            (edit.get(), "u1:1".to_string(), 0),
            (release.get(), "u1:1".to_string(), 1),
            (release.get(), "u2:1".to_string(), 1),
            (release.get(), "u3:1".to_string(), 1),
        ]
    );
    assert_eq!(
        rows(
            "SELECT snapshot_id, path, api_drift FROM audit_change_fields
             WHERE resource_id = 'u1' ORDER BY snapshot_id"
        ),
        vec![
            (edit.get(), "email".to_string(), 0),
            (release.get(), "createdAt".to_string(), 1)
        ]
    );
    // The stored JSON of an ordinary change has no flag at all.
    let stored: String = store
        .connection()
        .query_row(
            "SELECT fields FROM changes WHERE snapshot_id = ?1",
            [edit.get()],
            |r| r.get(0),
        )
        .unwrap();
    assert!(!stored.contains("api_drift"), "{stored}");
    assert!(store.verify_chain().unwrap().intact());
}
