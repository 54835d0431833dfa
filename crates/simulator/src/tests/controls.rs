//! Destination filters, Actions subscriptions, schema settings, transformations and reverse
//! ETL models, as served (paths and envelopes of Segment's SDK) and as mutated.

use super::*;

#[tokio::test]
async fn data_controls_are_served_like_segment() {
    let sim = sim(SimConfig {
        destinations: 6,
        ..SimConfig::default()
    })
    .await;
    let client = Client::new(&sim);
    let (destination, filters, subscriptions, source, models) = sim.read(|s| {
        let d = s
            .destinations
            .iter()
            .find(|d| !d.filters.is_empty())
            .unwrap();
        (
            d.id.clone(),
            d.filters.len(),
            d.subscriptions.len(),
            s.sources[0].clone(),
            s.reverse_etl_models.len(),
        )
    });
    // Singular `destination` for filters, paginated under `filters`.
    let listed = client
        .all(&format!("/destination/{destination}/filters"), "filters", 1)
        .await;
    assert_eq!(listed.len(), filters);
    for field in [
        "id",
        "sourceId",
        "destinationId",
        "if",
        "actions",
        "title",
        "enabled",
    ] {
        assert!(listed[0].get(field).is_some(), "filter lacks {field}");
    }
    assert_eq!(listed[0]["destinationId"], destination.as_str());
    let subs = client
        .all(
            &format!("/destinations/{destination}/subscriptions"),
            "subscriptions",
            1,
        )
        .await;
    assert_eq!(subs.len(), subscriptions);
    for field in [
        "id",
        "name",
        "actionId",
        "actionSlug",
        "destinationId",
        "settings",
        "trigger",
    ] {
        assert!(subs[0].get(field).is_some(), "subscription lacks {field}");
    }
    // The plural path has no filters, and an unknown destination is Segment's 404.
    assert_eq!(
        client
            .get(&format!("/destinations/{destination}/filters"), &[])
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        client.get("/destination/nope/filters", &[]).await.status,
        StatusCode::NOT_FOUND
    );

    let settings = client
        .get(&format!("/sources/{}/settings", source.id), &[])
        .await;
    let data = &settings.json()["data"];
    assert_eq!(data["sourceId"], source.id.as_str());
    assert_eq!(
        data["settings"]["track"]["allowUnplannedEvents"],
        source.schema_settings.track.allow_unplanned_events
    );
    assert!(data.get("pagination").is_none());

    let transformations = client.all("/transformations", "transformations", 1).await;
    assert!(transformations.len() >= 2);
    assert!(
        transformations
            .iter()
            .any(|t| t.get("hashPropertiesConfiguration").is_some())
    );
    let one = client
        .get(
            &format!(
                "/transformations/{}",
                transformations[0]["id"].as_str().unwrap()
            ),
            &[],
        )
        .await;
    assert_eq!(one.json()["data"]["transformation"], transformations[0]);
    assert_eq!(
        client.all("/reverse-etl-models", "models", 1).await.len(),
        models
    );
}

#[tokio::test]
async fn data_control_mutations_leave_an_audit_event() {
    let sim = sim(SimConfig::default()).await;
    let (destination, source) =
        sim.read(|s| (s.destinations[0].id.clone(), s.sources[0].id.clone()));
    sim.apply(Mutation::AddDestinationFilter {
        destination_id: destination.clone(),
        title: "Drop emails".into(),
        fields: vec!["email".into()],
    })
    .unwrap();
    let filter = sim.read(|s| s.destinations[0].filters.last().unwrap().clone());
    assert_eq!(filter.actions[0]["type"], "DROP_PROPERTIES");
    let last = |sim: &SimHandle| sim.audit_events().last().unwrap().clone();
    assert_eq!(last(&sim).event_type, "Destination Filter Created");
    assert_eq!(last(&sim).resource_id, filter.id);
    assert!(matches!(
        sim.apply(Mutation::SetDestinationFilterEnabled {
            filter_id: filter.id.clone(),
            enabled: true,
        }),
        Err(SimError::Conflict(_))
    ));
    sim.apply(Mutation::RemoveDestinationFilter {
        filter_id: filter.id.clone(),
    })
    .unwrap();
    assert_eq!(last(&sim).event_type, "Destination Filter Deleted");
    sim.apply(Mutation::AddSubscription {
        destination_id: destination,
        name: "Emails".into(),
        field: "email".into(),
        settings: None,
    })
    .unwrap();
    let sub = sim.read(|s| s.destinations[0].subscriptions.last().unwrap().clone());
    assert_eq!(sub.settings["email"], json!({"@path": "$.traits.email"}));
    assert_eq!(last(&sim).resource_id, sub.id);
    let _ = sim.apply(Mutation::SetSchemaSettings {
        source_id: source.clone(),
        allow_unplanned_events: Some(false),
        allow_unplanned_traits: None,
    });
    sim.apply(Mutation::SetSchemaSettings {
        source_id: source.clone(),
        allow_unplanned_events: Some(true),
        allow_unplanned_traits: None,
    })
    .unwrap();
    assert_eq!(last(&sim).event_type, "Source Settings Modified");
    assert_eq!(last(&sim).resource_id, source);
    assert_eq!(sim.read(|s| s.check_invariants()), Ok(()));
}
