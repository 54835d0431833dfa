//! The data controls (issue 17): destination filters, Actions subscriptions, source schema
//! settings, transformations and reverse ETL models. Each is collected through the same
//! pipeline, diffed with exact paths and alerted on by its starter rule, naming the actor; its
//! secrets never reach the database or the logs; a workspace whose API lacks one reads the rest.

use std::sync::Arc;
use std::time::Duration;

use segwatch::poll::{PollOutcome, Poller};
use segwatch_api::segment::SegmentClient;
use segwatch_core::diff::{ChangeOp, ResourceChange};
use segwatch_core::model::{KindStatus, ResourceKind};
use segwatch_core::redact::SecretPolicy;
use segwatch_core::rules::RuleSet;
use segwatch_simulator::{Fault, FaultKind, Mutation};

use crate::util::{STARTER_RULES, TestWorkspace};

fn starter() -> Arc<RuleSet> {
    Arc::new(RuleSet::load(std::path::Path::new(STARTER_RULES)).unwrap())
}

/// One poll with the starter rules and the audit trail, as `segwatch poll` runs it.
async fn poll(ws: &TestWorkspace, rules: &Arc<RuleSet>) -> PollOutcome {
    Poller::new(
        SegmentClient::new(ws.client_config()).unwrap(),
        SecretPolicy::default(),
        "default",
    )
    .with_rules(rules.clone(), false)
    .with_audit_trail(Duration::from_secs(24 * 3600))
    .poll(&mut ws.store())
    .await
    .unwrap()
}

/// The one change of `kind`/`id` in a poll.
fn change_of<'a>(outcome: &'a PollOutcome, kind: ResourceKind, id: &str) -> &'a ResourceChange {
    let found: Vec<&ResourceChange> = outcome
        .changes
        .iter()
        .filter(|c| c.kind == kind && c.resource_id == id)
        .collect();
    assert_eq!(found.len(), 1, "{kind} {id}: {:?}", outcome.changes);
    found[0]
}

fn paths(change: &ResourceChange) -> Vec<&str> {
    change.fields.iter().map(|f| f.path.as_str()).collect()
}

/// The alerts of `rule` a poll raised about `id`, with their actor's email.
fn alerts_of(outcome: &PollOutcome, rule: &str, id: &str) -> Vec<Option<String>> {
    outcome
        .alerts
        .iter()
        .filter(|a| a.rule_id == rule && a.resource_id == id)
        .map(|a| a.attribution.actor_email.clone())
        .collect()
}

/// The email of whoever the simulator's trail says made the latest change to `resource_id`.
fn author(ws: &TestWorkspace, resource_id: &str) -> String {
    let event = ws
        .sim
        .audit_events()
        .into_iter()
        .rev()
        .find(|e| e.resource_id == resource_id)
        .expect("the mutation left an event");
    event
        .actor_email
        .clone()
        .or_else(|| {
            ws.sim
                .read(|s| s.user(&event.actor).map(|u| u.email.clone()))
        })
        .unwrap_or(event.actor)
}

/// Labels the source of destination `index` `environment=prod`; returns the destination's id.
fn production_destination(ws: &TestWorkspace, index: usize) -> String {
    let (destination, source) = ws.sim.read(|s| {
        let d = &s.destinations[index];
        (d.id.clone(), d.source_id.clone())
    });
    ws.sim
        .apply(Mutation::SetSourceLabel {
            source_id: source,
            key: "environment".into(),
            value: "prod".into(),
        })
        .unwrap();
    destination
}

/// `kind` is unavailable in `outcome` with HTTP `status`.
fn unavailable(outcome: &PollOutcome, kind: ResourceKind, status: u16) {
    match outcome.kind_status.get(&kind) {
        Some(KindStatus::Unavailable { http_status, .. }) => assert_eq!(*http_status, status),
        other => panic!("{kind}: {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn destination_filters_are_collected_diffed_and_alerted_on_with_the_actor() {
    let ws = TestWorkspace::start().await;
    let rules = starter();
    let destination = production_destination(&ws, 0);
    for title in ["Drop emails", "Drop phones"] {
        ws.sim
            .apply(Mutation::AddDestinationFilter {
                destination_id: destination.clone(),
                title: title.into(),
                fields: vec!["email".into(), "phone".into()],
            })
            .unwrap();
    }
    let baseline = poll(&ws, &rules).await;
    let held = ws.sim.read(|s| {
        s.destinations
            .iter()
            .map(|d| d.filters.len())
            .sum::<usize>()
    });
    assert!(held >= 2);
    assert_eq!(
        baseline
            .resource_counts
            .get(&ResourceKind::DestinationFilter),
        Some(&held)
    );
    assert!(
        baseline.kind_status.is_empty(),
        "{:?}",
        baseline.kind_status
    );

    let (first, second) = ws.sim.read(|s| {
        let d = &s.destinations[s.destination_position(&destination).unwrap()];
        let n = d.filters.len();
        (d.filters[n - 2].id.clone(), d.filters[n - 1].id.clone())
    });
    // One disabled, one deleted, one added elsewhere: each with its exact change.
    ws.sim
        .apply(Mutation::SetDestinationFilterEnabled {
            filter_id: first.clone(),
            enabled: false,
        })
        .unwrap();
    let disabler = author(&ws, &first);
    ws.sim
        .apply(Mutation::RemoveDestinationFilter {
            filter_id: second.clone(),
        })
        .unwrap();
    let remover = author(&ws, &second);
    let other = ws.sim.read(|s| s.destinations[1].id.clone());
    ws.sim
        .apply(Mutation::AddDestinationFilter {
            destination_id: other.clone(),
            title: "Drop IP".into(),
            fields: vec!["ip".into()],
        })
        .unwrap();
    let added = ws.sim.read(|s| {
        let d = &s.destinations[1];
        d.filters.last().unwrap().id.clone()
    });
    let outcome = poll(&ws, &rules).await;

    let disabled = change_of(&outcome, ResourceKind::DestinationFilter, &first);
    assert_eq!(disabled.op, ChangeOp::Modified);
    assert_eq!(paths(disabled), vec!["enabled", "updatedAt"]);
    assert_eq!(
        alerts_of(&outcome, "destination-filter-removed-on-production", &first),
        vec![Some(disabler)]
    );
    let removed = change_of(&outcome, ResourceKind::DestinationFilter, &second);
    assert_eq!(removed.op, ChangeOp::Removed);
    assert_eq!(
        alerts_of(
            &outcome,
            "destination-filter-removed-on-production",
            &second
        ),
        vec![Some(remover)]
    );
    assert_eq!(
        change_of(&outcome, ResourceKind::DestinationFilter, &added).op,
        ChangeOp::Added
    );
    assert!(
        alerts_of(&outcome, "destination-filter-removed-on-production", &added).is_empty(),
        "a new filter is not a removal"
    );

    // Through the binary: the auditors' view lists the current filters.
    let query = format!(
        "SELECT filter_id, enabled FROM audit_current_destination_filters \
         WHERE destination_id = '{destination}' ORDER BY filter_id"
    );
    let run = ws
        .segwatch()
        .args(["query", &query, "--format", "csv"])
        .success();
    assert!(
        run.stdout().contains(&format!("{first},0")),
        "{}",
        run.stdout()
    );
    assert!(!run.stdout().contains(&second), "{}", run.stdout());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn destination_filters_unavailable_leave_the_poll_complete() {
    let ws = TestWorkspace::start().await;
    ws.sim
        .inject(Fault::new(FaultKind::ClientError { status: 404 }).on_path("/destination"));
    let outcome = ws.poll().await.unwrap();
    unavailable(&outcome, ResourceKind::DestinationFilter, 404);
    assert!(outcome.resource_counts.get(&ResourceKind::Destination) > Some(&0));
    // Through the binary too: the poll succeeds and says which kind it could not read.
    let run = ws.segwatch().args(["poll"]).success();
    assert!(
        run.stdout()
            .contains("destination_filter: unavailable (HTTP 404)"),
        "{}",
        run.stdout()
    );
}
