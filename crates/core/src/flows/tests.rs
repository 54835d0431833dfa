use serde_json::{Value, json};

use super::*;

fn res(kind: ResourceKind, id: &str, name: &str, body: Value) -> Resource {
    Resource::new(kind, id.into(), name.into(), body)
}

fn source(id: &str, name: &str, env: Option<&str>, enabled: bool) -> Resource {
    let labels: Vec<Value> = env
        .map(|e| json!({"key": "environment", "value": e}))
        .into_iter()
        .chain([json!({"key": "team", "value": "growth"})])
        .collect();
    res(
        ResourceKind::Source,
        id,
        name,
        json!({"id": id, "name": name, "enabled": enabled, "labels": labels}),
    )
}

fn destination(id: &str, source: &str, enabled: bool, settings: Value) -> Resource {
    res(
        ResourceKind::Destination,
        id,
        &format!("Dest {id}"),
        json!({"id": id, "sourceId": source, "enabled": enabled, "settings": settings,
               "metadata": {"id": format!("cat-{id}"), "name": "Amplitude"}}),
    )
}

fn workspace() -> Vec<Resource> {
    vec![
        source("s1", "Web (prod)", Some("Production"), true),
        source("s2", "App (dev)", Some("dev"), true),
        source("s3", "Off", None, false),
        destination(
            "d1",
            "s1",
            true,
            json!({"apiKey": "sha256:0123456789ab", "traitMapping": {"email": "Email", "plan": "Plan"}}),
        ),
        destination("d2", "s1", false, json!({})),
        destination("d3", "s3", true, json!({})),
        destination("d4", "gone", true, json!({})),
        res(
            ResourceKind::Warehouse,
            "w1",
            "Snowflake 1",
            json!({"id": "w1", "enabled": true, "connectedSourceIds": ["s1", "s2"],
                   "metadata": {"name": "Snowflake"}}),
        ),
        res(
            ResourceKind::TrackingPlan,
            "t1",
            "Web Events",
            json!({"id": "t1", "sourceIds": ["s1"]}),
        ),
        res(
            ResourceKind::Function,
            "cat-d3",
            "Forward to Lake",
            json!({"id": "cat-d3", "resourceType": "DESTINATION"}),
        ),
        res(ResourceKind::User, "u1", "a@x.io", json!({"id": "u1"})),
    ]
}

fn edges(map: &FlowMap) -> Vec<(String, &'static str, bool)> {
    map.flows
        .iter()
        .map(|f| (f.edge_id(), f.target_kind.as_str(), f.enabled))
        .collect()
}

#[test]
fn sources_feed_destinations_and_warehouses_with_enabled_states() {
    let map = FlowMap::compute(&workspace(), &PersonalPatterns::default());
    let names: Vec<&str> = map.sources.iter().map(|s| s.name.as_str()).collect();
    // By name; the source a destination names but the snapshot lacks is kept, by its id.
    assert_eq!(names, ["App (dev)", "Off", "Web (prod)", "gone"]);
    let gone = map.source("gone").unwrap();
    assert!(!gone.present && gone.enabled.is_none() && !gone.production);

    let web = map.source("s1").unwrap();
    assert!(web.production, "Production, any case");
    assert_eq!(web.environment.as_deref(), Some("Production"));
    assert_eq!(web.labels.len(), 2);
    assert_eq!(web.tracking_plans[0].name, "Web Events");
    assert!(!map.source("s2").unwrap().production);

    assert_eq!(
        edges(&map),
        vec![
            ("s2->w1".to_string(), "warehouse", true),
            ("s3->d3".to_string(), "destination", false),
            ("s1->d1".to_string(), "destination", true),
            ("s1->d2".to_string(), "destination", false),
            ("s1->w1".to_string(), "warehouse", true),
            ("gone->d4".to_string(), "destination", true),
        ]
    );
    let d3 = map.flows.iter().find(|f| f.target_id == "d3").unwrap();
    assert_eq!(d3.via, "destination function Forward to Lake");
    assert_eq!(
        map.target(TargetKind::Destination, "d3")
            .unwrap()
            .function
            .as_ref()
            .unwrap()
            .id,
        "cat-d3"
    );
    let w1 = map.target(TargetKind::Warehouse, "w1").unwrap();
    assert_eq!(w1.catalog.as_deref(), Some("Snowflake"));
    assert_eq!(w1.key(), "warehouse:w1");
    assert_eq!(map.targets.len(), 5);
}

#[test]
fn personal_fields_come_from_mapping_settings_and_the_patterns() {
    let map = FlowMap::compute(&workspace(), &PersonalPatterns::default());
    let d1 = map.flows.iter().find(|f| f.target_id == "d1").unwrap();
    assert_eq!(d1.personal_field_names(), ["email"]);
    assert_eq!(d1.personal_fields[0].path, "settings.traitMapping.email");
    assert!(d1.filters.is_empty() && d1.transformations.is_empty());
    let w1 = map.flows.iter().find(|f| f.target_id == "w1").unwrap();
    assert!(w1.personal_fields.is_empty());

    let plan_only = PersonalPatterns::new(["plan"]).unwrap();
    let map = FlowMap::compute(&workspace(), &plan_only);
    let d1 = map.flows.iter().find(|f| f.target_id == "d1").unwrap();
    assert_eq!(d1.personal_field_names(), ["plan"]);
}

#[test]
fn narrowing_keeps_one_end_and_what_it_touches() {
    let map = FlowMap::compute(&workspace(), &PersonalPatterns::default());
    let s1 = map.of_source("s1");
    assert_eq!(s1.sources.len(), 1);
    assert_eq!(s1.flows.len(), 3);
    assert_eq!(s1.targets.len(), 3);
    let w1 = map.of_target(TargetKind::Warehouse, "w1");
    assert_eq!(
        w1.sources.iter().map(|s| s.id.as_str()).collect::<Vec<_>>(),
        ["s2", "s1"]
    );
    assert_eq!(w1.targets.len(), 1);
    // A source with no flow is still itself.
    let lonely = FlowMap::compute(
        &[source("s9", "Lonely", None, true)],
        &PersonalPatterns::default(),
    );
    assert_eq!(lonely.of_source("s9").sources.len(), 1);
    assert!(lonely.of_source("s9").flows.is_empty());
}

#[test]
fn diff_names_flows_added_removed_and_changed() {
    let before = workspace();
    let mut after: Vec<Resource> = before.iter().filter(|r| r.id != "d2").cloned().collect();
    after.push(destination("d5", "s2", true, json!({})));
    for r in &mut after {
        if r.id == "d1" {
            *r = destination(
                "d1",
                "s1",
                false,
                json!({"traitMapping": {"phone": "Phone"}}),
            );
        }
    }
    let p = PersonalPatterns::default();
    let (old, new) = (FlowMap::compute(&before, &p), FlowMap::compute(&after, &p));
    let delta = new.diff(&old);
    assert_eq!(
        delta.added.iter().map(Flow::edge_id).collect::<Vec<_>>(),
        ["s2->d5"]
    );
    assert_eq!(
        delta.removed.iter().map(Flow::edge_id).collect::<Vec<_>>(),
        ["s1->d2"]
    );
    assert_eq!(
        delta.changed,
        vec![FlowChange {
            source_id: "s1".into(),
            target_kind: TargetKind::Destination,
            target_id: "d1".into(),
            enabled_before: true,
            enabled_after: false,
            personal_fields_added: vec!["phone".into()],
            personal_fields_removed: vec!["email".into()],
        }]
    );
    assert_eq!(delta.changed[0].edge_id(), "s1->d1");
    assert!(new.diff(&new).is_empty());
}

#[test]
fn a_disabled_source_stops_every_flow_and_bodies_that_are_not_json_relate_nothing() {
    let mut resources = workspace();
    resources.push(Resource {
        kind: ResourceKind::Destination,
        id: "bad".into(),
        name: "bad".into(),
        body: "not json".into(),
        hash: String::new(),
    });
    let map = FlowMap::compute(&resources, &PersonalPatterns::default());
    assert!(!map.flows.iter().any(|f| f.source_id == "s3" && f.enabled));
    assert!(map.flows.iter().all(|f| f.target_id != "bad"));
    assert!(map.target(TargetKind::Destination, "bad").is_some());
}

#[test]
fn filters_transformations_and_subscription_mappings_stand_on_their_destinations_flows() {
    let mut rs = workspace();
    rs.push(res(
        ResourceKind::DestinationFilter,
        "f1",
        "Drop PII",
        json!({"id": "f1", "sourceId": "s1", "destinationId": "d1", "title": "Drop PII",
               "enabled": false, "if": "all", "actions": [{"type": "drop_properties"}]}),
    ));
    rs.push(res(
        ResourceKind::DestinationSubscription,
        "sub1",
        "Identify",
        json!({"id": "sub1", "destinationId": "d2", "name": "Identify", "enabled": true,
               "settings": {"email": {"@path": "$.traits.email"}, "userId": {"@path": "$.userId"},
                            "api_secret": "sha256:0123456789ab"}}),
    ));
    rs.push(res(
        ResourceKind::Transformation,
        "t-all",
        "Hash emails",
        json!({"id": "t-all", "sourceId": "s1", "name": "Hash emails", "enabled": true}),
    ));
    rs.push(res(
        ResourceKind::Transformation,
        "t-d2",
        "Only for d2's catalog entry",
        json!({"id": "t-d2", "sourceId": "s1", "destinationMetadataId": "cat-d2",
               "name": "Rename", "enabled": true}),
    ));
    let map = FlowMap::compute(&rs, &PersonalPatterns::default());
    let flow = |id: &str| map.flows.iter().find(|f| f.target_id == id).unwrap();
    let names = |steps: &[Step]| -> Vec<String> { steps.iter().map(|s| s.id.clone()).collect() };

    assert_eq!(names(&flow("d1").filters), ["f1"]);
    assert_eq!(flow("d1").filters[0].name, "Drop PII");
    assert_eq!(flow("d1").filters[0].enabled, Some(false));
    assert_eq!(names(&flow("d1").transformations), ["t-all"]);
    assert_eq!(names(&flow("d2").transformations), ["t-all", "t-d2"]);
    assert!(
        flow("w1").transformations.is_empty(),
        "transformations reach destinations only"
    );
    // The subscription sends traits.email (by its @path), not its API secret.
    assert_eq!(flow("d2").personal_field_names(), ["traits.email"]);
    assert_eq!(
        flow("d2").personal_fields[0].path,
        "subscriptions[sub1].settings.email"
    );
}

#[test]
fn a_destination_syncing_a_reverse_etl_model_of_its_source_is_a_reverse_etl_path() {
    let mut rs = workspace();
    rs.push(res(
        ResourceKind::ReverseEtlModel,
        "m1",
        "Churn scores",
        json!({"id": "m1", "sourceId": "s1", "name": "Churn scores", "enabled": true,
               "query": "select * from scores"}),
    ));
    rs.push(res(
        ResourceKind::DestinationSubscription,
        "sub2",
        "Sync scores",
        json!({"id": "sub2", "destinationId": "d1", "modelId": "m1", "enabled": true,
               "settings": {"phone": {"@path": "$.properties.phone_number"}}}),
    ));
    let map = FlowMap::compute(&rs, &PersonalPatterns::default());
    let flow = |id: &str| map.flows.iter().find(|f| f.target_id == id).unwrap();
    assert_eq!(flow("d1").via, "reverse ETL model Churn scores");
    assert_eq!(flow("d2").via, "destination");
    assert!(
        flow("d1")
            .personal_field_names()
            .contains(&"properties.phone_number".to_string())
    );
}
