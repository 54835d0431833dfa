//! Destinations, warehouses, functions and tracking plans, as served and as mutated.

use super::*;

#[tokio::test]
async fn data_flow_resources_are_served_like_segment() {
    let sim = sim(SimConfig {
        destinations: 7,
        warehouses: 3,
        functions: 6,
        tracking_plans: 2,
        ..SimConfig::default()
    })
    .await;
    let client = Client::new(&sim);
    let destinations = client.all("/destinations", "destinations", 3).await;
    assert_eq!(destinations.len(), 7);
    let d = &destinations[0];
    for field in ["id", "name", "enabled", "metadata", "sourceId", "settings"] {
        assert!(d.get(field).is_some(), "destination lacks {field}: {d}");
    }
    let one = client
        .get(&format!("/destinations/{}", d["id"].as_str().unwrap()), &[])
        .await;
    assert_eq!(one.json()["data"]["destination"], *d);

    let warehouses = client.all("/warehouses", "warehouses", 2).await;
    assert_eq!(warehouses.len(), 3);
    assert!(warehouses[0].get("connectedSourceIds").is_none());
    let (wid, connected) = sim.read(|s| {
        (
            s.warehouses[0].id.clone(),
            s.warehouses[0].connected_source_ids.clone(),
        )
    });
    let sources = client
        .all(
            &format!("/warehouses/{wid}/connected-sources"),
            "sources",
            1,
        )
        .await;
    let ids: Vec<&str> = sources.iter().map(|s| s["id"].as_str().unwrap()).collect();
    assert_eq!(
        ids,
        connected.iter().map(String::as_str).collect::<Vec<_>>()
    );
    assert!(
        sources[0].get("writeKeys").is_some(),
        "full SourceV1 objects"
    );

    // Functions: by type, list items without code, the code in the single read.
    let mut listed = 0;
    for t in [
        "DESTINATION",
        "SOURCE",
        "INSERT_DESTINATION",
        "INSERT_SOURCE",
        "INSERT_TRANSFORMATION",
    ] {
        let reply = client
            .get(
                "/functions",
                &[("resourceType", t), ("pagination[count]", "200")],
            )
            .await;
        assert_eq!(reply.status, StatusCode::OK);
        for f in reply.json()["data"]["functions"].as_array().unwrap() {
            listed += 1;
            assert_eq!(f["resourceType"], t);
            assert!(f.get("code").is_none());
            let full = client
                .get(&format!("/functions/{}", f["id"].as_str().unwrap()), &[])
                .await;
            assert!(full.json()["data"]["function"]["code"].is_string());
        }
    }
    assert_eq!(listed, 6);
    let missing = client
        .get("/functions", &[("pagination[count]", "200")])
        .await;
    assert_eq!(missing.status, StatusCode::UNPROCESSABLE_ENTITY);
    let unknown = client
        .get(
            "/functions",
            &[("resourceType", "WHATEVER"), ("pagination[count]", "200")],
        )
        .await;
    assert_eq!(unknown.status, StatusCode::UNPROCESSABLE_ENTITY);

    let plans = client.all("/tracking-plans", "trackingPlans", 1).await;
    assert_eq!(plans.len(), 2);
    let tp = plans[0]["id"].as_str().unwrap();
    let plan_sources = client
        .all(&format!("/tracking-plans/{tp}/sources"), "sources", 200)
        .await;
    assert!(!plan_sources.is_empty());

    // Faults reach one query parameter; the request log sees every API request.
    sim.inject(
        "422,path=/functions,query=resourceType=INSERT_SOURCE"
            .parse()
            .unwrap(),
    );
    let rejected = client
        .get(
            "/functions",
            &[
                ("resourceType", "INSERT_SOURCE"),
                ("pagination[count]", "200"),
            ],
        )
        .await;
    assert_eq!(rejected.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(rejected.error_type(), "ValidationFailure");
    let log = sim.request_log();
    assert_eq!(log.len() as u64, sim.request_count());
    assert!(
        log.last()
            .unwrap()
            .starts_with("/functions?resourceType=INSERT_SOURCE"),
        "{log:?}"
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn data_flow_mutations_change_what_is_served() {
    let sim = sim(SimConfig::default()).await;
    let (source, dest, wh, function, plan, plan_source) = sim.read(|s| {
        (
            s.sources[0].id.clone(),
            s.destinations[0].id.clone(),
            s.warehouses[0].id.clone(),
            s.functions[0].id.clone(),
            s.tracking_plans[0].id.clone(),
            s.tracking_plans[0].source_ids[0].clone(),
        )
    });
    let d = sim
        .apply(Mutation::AddDestination {
            source_id: source.clone(),
            name: "Leaky Export".into(),
        })
        .unwrap();
    assert!(d.contains("Leaky Export"), "{d}");
    sim.apply(Mutation::SetDestinationSetting {
        destination_id: dest.clone(),
        key: "apiKey".into(),
        value: json!("new-key"),
    })
    .unwrap();
    sim.apply(Mutation::SetDestinationEnabled {
        destination_id: dest.clone(),
        enabled: !sim.read(|s| s.destinations[0].enabled),
    })
    .unwrap();
    let before = sim.read(|s| s.warehouses[0].settings.clone());
    sim.apply(Mutation::RotateWarehouseCredential {
        warehouse_id: wh.clone(),
    })
    .unwrap();
    assert_ne!(sim.read(|s| s.warehouses[0].settings.clone()), before);
    let code = sim.read(|s| s.functions[0].code.clone());
    sim.apply(Mutation::DeployFunction {
        function_id: function.clone(),
        code: None,
    })
    .unwrap();
    assert_ne!(sim.read(|s| s.functions[0].code.clone()), code);
    sim.apply(Mutation::DisconnectTrackingPlan {
        tracking_plan_id: plan.clone(),
        source_id: plan_source.clone(),
    })
    .unwrap();
    assert!(matches!(
        sim.apply(Mutation::DisconnectTrackingPlan {
            tracking_plan_id: plan.clone(),
            source_id: plan_source.clone(),
        }),
        Err(SimError::Conflict(_))
    ));
    sim.apply(Mutation::RemoveDestination {
        destination_id: dest,
    })
    .unwrap();
    assert_eq!(sim.read(|s| s.check_invariants()), Ok(()));
    // The random mutator reaches the new kinds too.
    let descriptions: Vec<String> = (0..400).map(|_| sim.random_mutation()).collect();
    for needle in ["destination", "warehouse", "function", "tracking plan"] {
        assert!(
            descriptions.iter().any(|d| d.contains(needle)),
            "no random mutation touched a {needle}"
        );
    }
    assert_eq!(sim.read(|s| s.check_invariants()), Ok(()));
    sim.shutdown().await;
}
