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

/// The alerts of `rule` a poll raised about `id`, with their actor (email, else the raw actor).
fn alerts_of(outcome: &PollOutcome, rule: &str, id: &str) -> Vec<Option<String>> {
    outcome
        .alerts
        .iter()
        .filter(|a| a.rule_id == rule && a.resource_id == id)
        .map(|a| a.attribution.who().map(str::to_owned))
        .collect()
}

/// Who the simulator's trail says made the latest change to `resource_id`: the email, else the
/// raw actor (an API token).
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

/// Every destination's subscriptions answer 403, as on a plan without Actions.
fn refuse_subscriptions(ws: &TestWorkspace) {
    let ids = ws.sim.read(|s| {
        s.destinations
            .iter()
            .map(|d| d.id.clone())
            .collect::<Vec<_>>()
    });
    for id in ids {
        ws.sim.inject(
            Fault::new(FaultKind::ClientError { status: 403 })
                .on_path(format!("/destinations/{id}/subscriptions")),
        );
    }
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscriptions_are_collected_diffed_and_their_secrets_never_stored_or_logged() {
    let ws = TestWorkspace::start().await;
    let rules = starter();
    let baseline = poll(&ws, &rules).await;
    let held = ws.sim.read(|s| {
        s.destinations
            .iter()
            .map(|d| d.subscriptions.len())
            .sum::<usize>()
    });
    assert!(held >= ws.sim.read(|s| s.destinations.len()));
    assert_eq!(
        baseline
            .resource_counts
            .get(&ResourceKind::DestinationSubscription),
        Some(&held)
    );
    // The generated mappings' credentials were fingerprinted too.
    let generated: Vec<String> = ws.sim.read(|s| {
        s.destinations
            .iter()
            .flat_map(|d| &d.subscriptions)
            .filter_map(|s| s.settings.get("api_secret"))
            .filter_map(|v| v.as_str().map(str::to_owned))
            .collect()
    });

    let destination = ws.sim.read(|s| s.destinations[2].id.clone());
    let secret = "sk_live_mapping_9f3b2c71d4e8a6";
    let mut extra = serde_json::Map::new();
    extra.insert("api_secret".into(), serde_json::json!(secret));
    extra.insert(
        "auth".into(),
        serde_json::json!({"bearer_token": "tok_mapping_5e1d7c9a3b", "region": "eu"}),
    );
    ws.sim
        .apply(Mutation::AddSubscription {
            destination_id: destination.clone(),
            name: "Sync emails".into(),
            field: "email".into(),
            settings: Some(extra),
        })
        .unwrap();
    let added = ws.sim.read(|s| {
        let d = &s.destinations[2];
        d.subscriptions.last().unwrap().id.clone()
    });
    let who = author(&ws, &added);
    let outcome = poll(&ws, &rules).await;
    assert_eq!(
        change_of(&outcome, ResourceKind::DestinationSubscription, &added).op,
        ChangeOp::Added
    );
    assert_eq!(
        alerts_of(&outcome, "subscription-maps-personal-data", &added),
        vec![Some(who)]
    );

    // An edit of the mapping is diffed at its exact path; the credential by fingerprint.
    let mut transcript = String::new();
    let run = ws
        .segwatch()
        .env("RUST_LOG", "trace")
        .args(["--log-format", "json", "poll", "--format", "json"])
        .success();
    transcript.push_str(&run.stdout());
    transcript.push_str(&run.stderr());
    for args in [
        vec!["diff", "--format", "json"],
        vec!["history", "destination_subscription", added.as_str()],
        vec![
            "query",
            "SELECT mapped_fields, body FROM audit_current_destination_subscriptions",
        ],
    ] {
        let run = ws.segwatch().args(args).success();
        transcript.push_str(&run.stdout());
        transcript.push_str(&run.stderr());
    }
    assert!(
        transcript.contains(&added),
        "the output shows the subscription"
    );
    assert!(transcript.contains(&segwatch_core::redact::fingerprint(secret)));

    let mut database = Vec::new();
    for suffix in ["", "-wal"] {
        let mut path = ws.db().into_os_string();
        path.push(suffix);
        if let Ok(bytes) = std::fs::read(&path) {
            database.extend(bytes);
        }
    }
    let database = String::from_utf8_lossy(&database);
    assert!(database.contains("Sync emails"), "the database holds it");
    for secret in [secret, "tok_mapping_5e1d7c9a3b"]
        .into_iter()
        .chain(generated.iter().map(String::as_str))
    {
        assert!(
            !database.contains(secret),
            "a mapping secret in the database"
        );
        assert!(
            !transcript.contains(secret),
            "a mapping secret in the output or logs"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscription_remapped_to_personal_data_is_diffed_at_its_path_and_alerted_with_its_actor()
{
    let ws = TestWorkspace::start().await;
    let rules = starter();
    poll(&ws, &rules).await;
    let (subscription, old_path) = ws.sim.read(|s| {
        let sub = s
            .destinations
            .iter()
            .flat_map(|d| &d.subscriptions)
            .find(|s| s.enabled && s.settings.contains_key("external_id"))
            .expect("an enabled subscription mapping external_id");
        (sub.id.clone(), sub.settings["external_id"]["@path"].clone())
    });
    ws.sim
        .apply(Mutation::SetSubscriptionMapping {
            subscription_id: subscription.clone(),
            key: "external_id".into(),
            path: Some("$.traits.email".into()),
        })
        .unwrap();
    let who = author(&ws, &subscription);
    let outcome = poll(&ws, &rules).await;
    let change = change_of(
        &outcome,
        ResourceKind::DestinationSubscription,
        &subscription,
    );
    assert_eq!(change.op, ChangeOp::Modified);
    assert_eq!(paths(change), vec!["settings.external_id.@path"]);
    assert_eq!(change.fields[0].old, Some(old_path));
    assert_eq!(
        change.fields[0].new,
        Some(serde_json::json!("$.traits.email"))
    );
    assert_eq!(
        alerts_of(&outcome, "subscription-maps-personal-data", &subscription),
        vec![Some(who)]
    );

    // Mapping it back to a neutral path, or no longer mapping a field, raises nothing.
    ws.sim
        .apply(Mutation::SetSubscriptionMapping {
            subscription_id: subscription.clone(),
            key: "external_id".into(),
            path: Some("$.anonymousId".into()),
        })
        .unwrap();
    let outcome = poll(&ws, &rules).await;
    assert_eq!(
        paths(change_of(
            &outcome,
            ResourceKind::DestinationSubscription,
            &subscription
        )),
        vec!["settings.external_id.@path"]
    );
    assert!(alerts_of(&outcome, "subscription-maps-personal-data", &subscription).is_empty());
    ws.sim
        .apply(Mutation::SetSubscriptionMapping {
            subscription_id: subscription.clone(),
            key: "external_id".into(),
            path: None,
        })
        .unwrap();
    let outcome = poll(&ws, &rules).await;
    assert_eq!(
        paths(change_of(
            &outcome,
            ResourceKind::DestinationSubscription,
            &subscription
        )),
        vec!["settings.external_id"]
    );
    assert!(alerts_of(&outcome, "subscription-maps-personal-data", &subscription).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscriptions_unavailable_leave_the_poll_complete() {
    let ws = TestWorkspace::start().await;
    refuse_subscriptions(&ws);
    let outcome = ws.poll().await.unwrap();
    unavailable(&outcome, ResourceKind::DestinationSubscription, 403);
    assert!(
        outcome
            .resource_counts
            .get(&ResourceKind::DestinationFilter)
            > Some(&0)
    );
    let run = ws.segwatch().args(["poll"]).success();
    assert!(
        run.stdout()
            .contains("destination_subscription: unavailable (HTTP 403)"),
        "{}",
        run.stdout()
    );
}

/// The scenario, through the binary: on a production source's destination, a filter is
/// removed and an email mapping added; each raises its alert naming who did it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_removed_filter_and_a_new_email_mapping_each_alert_with_their_actor() {
    let ws = TestWorkspace::start().await;
    let destination = production_destination(&ws, 0);
    ws.sim
        .apply(Mutation::AddDestinationFilter {
            destination_id: destination.clone(),
            title: "Drop PII".into(),
            fields: vec!["email".into(), "phone".into()],
        })
        .unwrap();
    ws.segwatch().args(["poll"]).success();
    let filter = ws.sim.read(|s| {
        let d = &s.destinations[s.destination_position(&destination).unwrap()];
        d.filters.last().unwrap().id.clone()
    });
    ws.sim
        .apply(Mutation::RemoveDestinationFilter {
            filter_id: filter.clone(),
        })
        .unwrap();
    let remover = author(&ws, &filter);
    ws.sim
        .apply(Mutation::AddSubscription {
            destination_id: destination.clone(),
            name: "Send emails".into(),
            field: "email".into(),
            settings: None,
        })
        .unwrap();
    let subscription = ws.sim.read(|s| {
        let d = &s.destinations[s.destination_position(&destination).unwrap()];
        d.subscriptions.last().unwrap().id.clone()
    });
    let mapper = author(&ws, &subscription);
    let run = ws.segwatch().args(["poll", "--format", "json"]).success();
    let alerts: Vec<serde_json::Value> = run
        .stdout()
        .lines()
        .skip(1)
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let of = |rule: &str, id: &str| -> Vec<String> {
        alerts
            .iter()
            .filter(|a| a["rule_id"] == rule && a["resource_id"] == id)
            .map(|a| {
                a["actor_email"]
                    .as_str()
                    .or(a["actor"].as_str())
                    .unwrap_or_default()
                    .to_owned()
            })
            .collect()
    };
    assert_eq!(
        of("destination-filter-removed-on-production", &filter),
        vec![remover],
        "{alerts:?}"
    );
    assert_eq!(
        of("subscription-maps-personal-data", &subscription),
        vec![mapper],
        "{alerts:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schema_settings_are_collected_diffed_and_alerted_on() {
    let ws = TestWorkspace::start().await;
    let rules = starter();
    let (source, plan) = ws
        .sim
        .read(|s| (s.sources[1].id.clone(), s.tracking_plans[0].id.clone()));
    ws.sim
        .apply(Mutation::SetSourceLabel {
            source_id: source.clone(),
            key: "environment".into(),
            value: "production".into(),
        })
        .unwrap();
    // Whatever the generator chose: validated by a plan, blocking what it does not list.
    let _ = ws.sim.apply(Mutation::ConnectTrackingPlan {
        tracking_plan_id: plan,
        source_id: source.clone(),
    });
    let _ = ws.sim.apply(Mutation::SetSchemaSettings {
        source_id: source.clone(),
        allow_unplanned_events: Some(false),
        allow_unplanned_traits: Some(false),
    });
    let baseline = poll(&ws, &rules).await;
    assert_eq!(
        baseline
            .resource_counts
            .get(&ResourceKind::SourceSchemaSettings),
        Some(&ws.sim.read(|s| s.sources.len()))
    );

    ws.sim
        .apply(Mutation::SetSchemaSettings {
            source_id: source.clone(),
            allow_unplanned_events: None,
            allow_unplanned_traits: Some(true),
        })
        .unwrap();
    let who = author(&ws, &source);
    let outcome = poll(&ws, &rules).await;
    let change = change_of(&outcome, ResourceKind::SourceSchemaSettings, &source);
    assert_eq!(change.op, ChangeOp::Modified);
    assert_eq!(
        paths(change),
        vec![
            "settings.group.allowUnplannedTraits",
            "settings.identify.allowUnplannedTraits"
        ]
    );
    assert_eq!(
        alerts_of(
            &outcome,
            "unplanned-data-allowed-on-tracked-production-source",
            &source
        ),
        vec![Some(who)]
    );
    let query = format!(
        "SELECT allow_unplanned_events, allow_unplanned_traits \
         FROM audit_current_source_schema_settings WHERE source_id = '{source}'"
    );
    let run = ws
        .segwatch()
        .args(["query", &query, "--format", "csv"])
        .success();
    assert!(run.stdout().contains("0,1"), "{}", run.stdout());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schema_settings_unavailable_leave_the_poll_complete() {
    let ws = TestWorkspace::start().await;
    let ids = ws
        .sim
        .read(|s| s.sources.iter().map(|d| d.id.clone()).collect::<Vec<_>>());
    for id in ids {
        ws.sim.inject(
            Fault::new(FaultKind::ClientError { status: 404 })
                .on_path(format!("/sources/{id}/settings")),
        );
    }
    let outcome = ws.poll().await.unwrap();
    unavailable(&outcome, ResourceKind::SourceSchemaSettings, 404);
    assert!(outcome.resource_counts.get(&ResourceKind::Source) > Some(&0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transformations_are_collected_diffed_and_alerted_on() {
    let ws = TestWorkspace::start().await;
    let rules = starter();
    let baseline = poll(&ws, &rules).await;
    let (held, hashing, key) = ws.sim.read(|s| {
        let t = s
            .transformations
            .iter()
            .find(|t| t.hash_properties_configuration.is_some())
            .unwrap();
        let key = t.hash_properties_configuration.as_ref().unwrap()["hashingKey"]
            .as_str()
            .unwrap()
            .to_owned();
        (s.transformations.len(), t.id.clone(), key)
    });
    assert!(held >= 2);
    assert_eq!(
        baseline.resource_counts.get(&ResourceKind::Transformation),
        Some(&held)
    );

    ws.sim
        .apply(Mutation::SetTransformation {
            transformation_id: hashing.clone(),
            drop: None,
            enabled: None,
            stop_hashing: true,
        })
        .unwrap();
    let who = author(&ws, &hashing);
    let outcome = poll(&ws, &rules).await;
    let change = change_of(&outcome, ResourceKind::Transformation, &hashing);
    assert_eq!(change.op, ChangeOp::Modified);
    assert_eq!(paths(change), vec!["hashPropertiesConfiguration"]);
    assert_eq!(
        alerts_of(
            &outcome,
            "transformation-stopped-protecting-a-field",
            &hashing
        ),
        vec![Some(who)]
    );
    let database = std::fs::read(ws.db()).unwrap();
    let database = String::from_utf8_lossy(&database);
    assert!(database.contains(&segwatch_core::redact::fingerprint(&key)));
    assert!(!database.contains(&key), "a hashing key in the database");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transformations_unavailable_leave_the_poll_complete() {
    let ws = TestWorkspace::start().await;
    ws.sim
        .inject(Fault::new(FaultKind::ClientError { status: 403 }).on_path("/transformations"));
    let outcome = ws.poll().await.unwrap();
    unavailable(&outcome, ResourceKind::Transformation, 403);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reverse_etl_models_are_collected_diffed_and_alerted_on() {
    let ws = TestWorkspace::start().await;
    let rules = starter();
    let baseline = poll(&ws, &rules).await;
    let (held, model, source) = ws.sim.read(|s| {
        (
            s.reverse_etl_models.len(),
            s.reverse_etl_models[0].id.clone(),
            s.sources[0].id.clone(),
        )
    });
    assert_eq!(
        baseline.resource_counts.get(&ResourceKind::ReverseEtlModel),
        Some(&held)
    );
    let query = "SELECT user_id, email, phone FROM analytics.customers";
    ws.sim
        .apply(Mutation::SetReverseEtlQuery {
            model_id: model.clone(),
            query: query.into(),
        })
        .unwrap();
    let changer = author(&ws, &model);
    ws.sim
        .apply(Mutation::AddReverseEtlModel {
            source_id: source,
            name: "Churned customers".into(),
            query: "SELECT user_id, email FROM analytics.churned".into(),
        })
        .unwrap();
    let created = ws
        .sim
        .read(|s| s.reverse_etl_models.last().unwrap().id.clone());
    let creator = author(&ws, &created);
    let outcome = poll(&ws, &rules).await;
    let change = change_of(&outcome, ResourceKind::ReverseEtlModel, &model);
    assert_eq!(paths(change), vec!["query"]);
    assert_eq!(change.fields[0].new, Some(serde_json::json!(query)));
    assert_eq!(
        alerts_of(
            &outcome,
            "reverse-etl-model-created-or-query-changed",
            &model
        ),
        vec![Some(changer)]
    );
    assert_eq!(
        change_of(&outcome, ResourceKind::ReverseEtlModel, &created).op,
        ChangeOp::Added
    );
    assert_eq!(
        alerts_of(
            &outcome,
            "reverse-etl-model-created-or-query-changed",
            &created
        ),
        vec![Some(creator)]
    );
}

/// An API without reverse ETL (404, or 501 "not implemented", never retried) reads the rest.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reverse_etl_models_unavailable_leave_the_poll_complete() {
    let ws = TestWorkspace::start().await;
    ws.sim
        .inject(Fault::new(FaultKind::ClientError { status: 404 }).on_path("/reverse-etl-models"));
    let outcome = ws.poll().await.unwrap();
    unavailable(&outcome, ResourceKind::ReverseEtlModel, 404);

    let ws = TestWorkspace::start().await;
    ws.sim
        .inject(Fault::new(FaultKind::ServerError { status: 501 }).on_path("/reverse-etl-models"));
    let before = ws.sim.request_log().len();
    let outcome = ws.poll().await.unwrap();
    unavailable(&outcome, ResourceKind::ReverseEtlModel, 501);
    let asked = ws.sim.request_log()[before..]
        .iter()
        .filter(|r| r.starts_with("/reverse-etl-models"))
        .count();
    assert_eq!(asked, 1, "a 501 is not retried");
    assert!(outcome.resource_counts.get(&ResourceKind::Transformation) > Some(&0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_connection_says_which_data_controls_the_workspace_offers() {
    let ws = TestWorkspace::start().await;
    refuse_subscriptions(&ws);
    ws.sim
        .inject(Fault::new(FaultKind::ServerError { status: 501 }).on_path("/reverse-etl-models"));
    let run = ws
        .segwatch()
        .env("SEGWATCH_PROFILES__SPACE_ID", "")
        .args(["check-connection"])
        .success();
    let out = run.stdout();
    for line in [
        "  destination_filter: readable",
        "  source_schema_settings: readable",
        "  transformation: readable",
        "  destination_subscription: not available to this workspace (HTTP 403",
        "  reverse_etl_model: not available to this workspace (HTTP 501",
    ] {
        assert!(out.contains(line), "{line:?} in {out}");
    }
    // A kind turned off in `[collect]` is not asked about.
    let run = ws
        .segwatch()
        .env("SEGWATCH_PROFILES__SPACE_ID", "")
        .env("SEGWATCH_COLLECT__SOURCE_SCHEMA_SETTINGS", "false")
        .args(["check-connection"])
        .success();
    assert!(
        !run.stdout().contains("source_schema_settings"),
        "{}",
        run.stdout()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_filter_list_that_shifts_while_read_removes_nothing_but_the_deleted_filter() {
    let ws = TestWorkspace::start().await;
    let destination = ws.sim.read(|s| s.destinations[0].id.clone());
    for title in ["Drop email", "Drop phone", "Drop address"] {
        ws.sim
            .apply(Mutation::AddDestinationFilter {
                destination_id: destination.clone(),
                title: title.into(),
                fields: vec!["email".into()],
            })
            .unwrap();
    }
    // One filter a page, so a destination's filters span several pages.
    let poll = || {
        let run = ws
            .segwatch()
            .env("SEGWATCH_SEGMENT__PAGE_SIZE", "1")
            .args(["poll", "--format", "json"])
            .success();
        let first = run.stdout().lines().next().unwrap().to_owned();
        serde_json::from_str::<serde_json::Value>(&first).unwrap()
    };
    let removed_filters = |poll: &serde_json::Value| -> Vec<String> {
        poll["changes"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|c| c["kind"] == "destination_filter" && c["op"] == "removed")
            .map(|c| c["resource_id"].as_str().unwrap().to_owned())
            .collect()
    };
    poll();

    // The first filter is deleted while page 2 is read: the list shifts, one existing filter
    // is never listed. The kind is not read in full, so neither reads as removed yet.
    ws.sim.inject(Fault::race(
        segwatch_simulator::RaceAction::Delete,
        format!("/destination/{destination}/filters"),
    ));
    let shifted = poll();
    let races = ws.sim.races();
    assert_eq!(races.len(), 1, "{races:?}");
    let deleted = races[0].id.clone();
    assert_eq!(
        shifted["kind_status"]["destination_filter"]["status"], "incomplete",
        "{shifted}"
    );
    assert_eq!(removed_filters(&shifted), Vec::<String>::new(), "{shifted}");
    // Read whole again: exactly the deleted filter is removed.
    assert_eq!(removed_filters(&poll()), vec![deleted]);
}
