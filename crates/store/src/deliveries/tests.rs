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
