use segwatch_core::alerts::{AlertEvent, AlertPlan, NewAlert, Resolution, ResolvedFinding};
use segwatch_core::model::ResourceKind;
use segwatch_core::rules::Severity;
use serde_json::json;

use crate::alerts::AlertFilter;
use crate::tests::{commit_with, user};
use crate::{DeliveryOutcome, Store};

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
        explanation: json!({}),
        remediation: "Grant it.".into(),
        tags: vec![],
        attribution: Default::default(),
    }
}

/// Delivery ids of `sink`, oldest first.
fn ids_of(store: &Store, sink: &str) -> Vec<i64> {
    let mut stmt = store
        .connection()
        .prepare("SELECT id FROM deliveries WHERE sink = ?1 ORDER BY id")
        .unwrap();
    stmt.query_map([sink], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

#[test]
fn a_findings_later_event_waits_for_its_earlier_one_of_the_same_sink() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = Store::open(&dir.path().join("s.db")).unwrap();
    let ws = store.workspace_id("default").unwrap();
    let users = vec![user("a", "r1"), user("b", "r1")];
    let raise = AlertPlan {
        opened: vec![finding("a"), finding("b")],
        deliveries: vec![
            (AlertEvent::Opened(0), "pd".into()),
            (AlertEvent::Opened(1), "pd".into()),
            (AlertEvent::Opened(0), "slack".into()),
        ],
        ..AlertPlan::default()
    };
    commit_with(&mut store, ws, &users, &raise).unwrap();
    let open = store.alerts(ws, &AlertFilter::default()).unwrap();
    let a = open.iter().find(|f| f.resource_id == "a").unwrap().clone();
    let resolve = AlertPlan {
        resolved: vec![ResolvedFinding {
            alert: a,
            resolution: Resolution::Compliant,
        }],
        deliveries: vec![
            (AlertEvent::Resolved(0), "pd".into()),
            (AlertEvent::Resolved(0), "slack".into()),
        ],
        ..AlertPlan::default()
    };
    commit_with(&mut store, ws, &users, &resolve).unwrap();
    let pd = ids_of(&store, "pd");
    let slack = ids_of(&store, "slack");
    let (raised_a, raised_b, resolved_a) = (pd[0], pd[1], pd[2]);

    assert!(!store.waits_on_earlier_delivery(raised_a).unwrap());
    assert!(
        !store.waits_on_earlier_delivery(raised_b).unwrap(),
        "another resource's finding does not wait"
    );
    assert!(store.waits_on_earlier_delivery(resolved_a).unwrap());
    assert!(
        store.waits_on_earlier_delivery(slack[1]).unwrap(),
        "each sink orders its own deliveries"
    );

    store
        .record_delivery(
            &[raised_a],
            &DeliveryOutcome::Failed {
                next_attempt_at: "2999-01-01T00:00:00.000Z",
                dead: false,
                error: "503",
            },
        )
        .unwrap();
    assert!(
        store.waits_on_earlier_delivery(resolved_a).unwrap(),
        "a failed raising waiting for its retry still holds the resolution"
    );
    store
        .record_delivery(&[raised_a], &DeliveryOutcome::Sent)
        .unwrap();
    assert!(!store.waits_on_earlier_delivery(resolved_a).unwrap());
    assert!(
        store.waits_on_earlier_delivery(slack[1]).unwrap(),
        "sending to one sink does not release another's"
    );
}

/// Opens finding `a`, then records an update of it from the next poll's change to `a`:
/// (store, workspace, the raised delivery's id, the updated one's).
fn updated_finding(dir: &std::path::Path) -> (Store, i64, i64, i64) {
    use segwatch_core::alerts::UpdatedFinding;
    use segwatch_core::model::Attribution;
    let mut store = Store::open(&dir.join("s.db")).unwrap();
    let ws = store.workspace_id("default").unwrap();
    let raise = AlertPlan {
        opened: vec![finding("a")],
        deliveries: vec![(AlertEvent::Opened(0), "pd".into())],
        ..AlertPlan::default()
    };
    commit_with(&mut store, ws, &[user("a", "r1")], &raise).unwrap();
    let open = store.open_findings(ws).unwrap().remove(0);
    let update = AlertPlan {
        updated: vec![UpdatedFinding {
            alert: open,
            summary: "a holds no owner role (now r2)".into(),
            explanation: json!({"roles": ["r2"]}),
            attribution: Attribution {
                actor: Some("uEditor".into()),
                actor_email: Some("editor@acme.io".into()),
                event_type: Some("User Modified".into()),
                event_id: Some("events/9".into()),
            },
            change_index: 0,
        }],
        deliveries: vec![
            (AlertEvent::Updated(0), "pd".into()),
            // Queued twice (a retried commit): one delivery.
            (AlertEvent::Updated(0), "pd".into()),
        ],
        ..AlertPlan::default()
    };
    commit_with(&mut store, ws, &[user("a", "r2")], &update).unwrap();
    let pd = ids_of(&store, "pd");
    assert_eq!(pd.len(), 2, "one raised, one updated: {pd:?}");
    (store, ws, pd[0], pd[1])
}

#[test]
fn an_update_is_stored_with_its_change_and_delivered_after_the_raising() {
    use crate::DeliveryEvent;
    let dir = tempfile::tempdir().unwrap();
    let (mut store, ws, raised, updated) = updated_finding(dir.path());
    let (alert_id, change_id, summary, actor): (i64, Option<i64>, String, String) = store
        .connection()
        .query_row(
            "SELECT alert_id, change_id, summary, actor FROM alert_updates",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
        )
        .unwrap();
    let change_of_a: i64 = store
        .connection()
        .query_row(
            "SELECT id FROM changes WHERE resource_id = 'a' AND op = 'modified'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(change_id, Some(change_of_a));
    assert_eq!(summary, "a holds no owner role (now r2)");
    assert_eq!(actor, "uEditor");

    let keys = store
        .due_delivery_keys(ws, "9999-01-01T00:00:00Z", None)
        .unwrap();
    let events: Vec<(i64, DeliveryEvent)> = keys.iter().map(|k| (k.id, k.event)).collect();
    assert_eq!(
        events,
        vec![
            (raised, DeliveryEvent::Raised),
            (updated, DeliveryEvent::Updated)
        ]
    );
    let due = store.due_deliveries_by_id(&[updated]).unwrap().remove(0);
    assert_eq!(due.event, DeliveryEvent::Updated);
    assert_eq!(due.alert.id.get(), alert_id);
    let update = due.update.expect("the update row is loaded");
    assert_eq!(update.summary, "a holds no owner role (now r2)");
    assert_eq!(update.explanation, json!({"roles": ["r2"]}));
    assert_eq!(
        update.attribution.actor_email.as_deref(),
        Some("editor@acme.io")
    );
    assert!(
        store.due_deliveries_by_id(&[raised]).unwrap()[0]
            .update
            .is_none()
    );
    // The update follows the raising it updates.
    assert!(store.waits_on_earlier_delivery(updated).unwrap());
    store
        .record_delivery(&[raised], &DeliveryOutcome::Sent)
        .unwrap();
    assert!(!store.waits_on_earlier_delivery(updated).unwrap());

    // The update is sealed in its snapshot's link.
    let report = store.verify_chain().unwrap();
    assert!(report.workspaces[0].problem.is_none(), "{report:?}");
    drop(store);
    let conn = rusqlite::Connection::open(dir.path().join("s.db")).unwrap();
    conn.execute("UPDATE alert_updates SET actor = 'someone-else'", [])
        .unwrap();
    drop(conn);
    let store = Store::open_read_only(&dir.path().join("s.db")).unwrap();
    let report = store.verify_chain().unwrap();
    let problem = report.workspaces[0]
        .problem
        .as_ref()
        .expect("the edit is found");
    assert_eq!(problem.parts[0].part, crate::chain::Part::AlertUpdates);
    assert!(
        problem
            .message
            .contains("a finding update it recorded was edited"),
        "{}",
        problem.message
    );
}

#[test]
fn a_schema_19_database_migrates_keeping_its_deliveries() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("old.db");
    {
        let mut conn = rusqlite::Connection::open(&path).unwrap();
        crate::open::migrate_to(&mut conn, 19).unwrap();
        conn.execute_batch(
            "INSERT INTO workspaces (id, name, created_at) VALUES (1, 'default', '2024-01-01T00:00:00.000Z');
             INSERT INTO snapshots (id, workspace_id, started_at, status) VALUES (1, 1, '2024-01-01T00:00:00.000Z', 'complete');
             INSERT INTO alerts (id, workspace_id, rule_id, rule_kind, severity, title, resource_kind, resource_id,
                 resource_name, snapshot_id, status, opened_at, summary, explanation, remediation, tags)
             VALUES (5, 1, 'r', 'compliance', 'high', 'T', 'user', 'a', 'a', 1, 'open', '2024-01-01T00:00:00.000Z',
                 'S', '{}', 'R', '[]');
             INSERT INTO deliveries (id, workspace_id, sink, snapshot_id, alert_id, event, status, attempts,
                 next_attempt_at, created_at)
             VALUES (41, 1, 'pd', 1, 5, 'raised', 'sent', 1, '2024-01-01T00:00:00.000Z', '2024-01-01T00:00:00.000Z'),
                    (42, 1, 'pd', 1, 5, 'resolved', 'pending', 0, '2024-01-01T00:00:00.000Z', '2024-01-01T00:00:00.000Z');",
        )
        .unwrap();
    }
    let store = Store::open(&path).unwrap();
    let rows: Vec<(i64, String, String, Option<i64>)> = {
        let mut stmt = store
            .connection()
            .prepare("SELECT id, event, status, update_id FROM deliveries ORDER BY id")
            .unwrap();
        stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
            .unwrap()
            .map(Result::unwrap)
            .collect()
    };
    assert_eq!(
        rows,
        vec![
            (41, "raised".into(), "sent".into(), None),
            (42, "resolved".into(), "pending".into(), None)
        ]
    );
    let view: i64 = store
        .connection()
        .query_row("SELECT count(*) FROM audit_deliveries", [], |r| r.get(0))
        .unwrap();
    assert_eq!(view, 2);
    // The new event is accepted, an unknown one still refused.
    let insert = |event: &str| {
        store.connection().execute(
            "INSERT INTO deliveries (workspace_id, sink, snapshot_id, alert_id, event, status, next_attempt_at, created_at)
             VALUES (1, 'jira', 1, 5, ?1, 'pending', 'x', 'x')",
            [event],
        )
    };
    assert!(insert("updated").is_ok());
    assert!(insert("edited").is_err());
}
