//! The audit trail the mutations leave, listed and filtered like Segment's.

use super::*;

#[tokio::test]
async fn mutations_leave_an_audit_trail_that_lists_and_filters() {
    let sim = sim(SimConfig::default()).await;
    let client = Client::new(&sim);
    let before = chrono::Utc::now() - chrono::Duration::seconds(1);
    let (user, source) = sim.read(|s| (s.users[3].clone(), s.sources[0].clone()));
    sim.apply(Mutation::GrantRole {
        user_id: user.id.clone(),
        role_name: "Source Admin".into(),
    })
    .unwrap();
    sim.apply(Mutation::RotateWriteKey {
        source_id: source.id.clone(),
    })
    .unwrap();
    sim.apply(Mutation::CreateToken {
        name: "ci deploys".into(),
    })
    .unwrap();
    // A change without a trace: the trail stays at three events.
    sim.apply_unaudited(Mutation::SetSourceEnabled {
        source_id: source.id.clone(),
        enabled: !source.enabled,
    })
    .unwrap();
    let events = sim.audit_events();
    let types: Vec<&str> = events.iter().map(|e| e.event_type.as_str()).collect();
    assert_eq!(
        types,
        [
            "User Policy Updated",
            "Source Modified",
            "Access Token Created"
        ]
    );
    assert_eq!(
        (
            events[0].resource_id.as_str(),
            events[0].resource_name.as_str()
        ),
        (user.id.as_str(), user.email.as_str())
    );
    // Actors are owners' ids or tokens' ids; never the bearer token, never a write key.
    for e in &events {
        assert!(
            e.actor.starts_with("public-api-token/") || sim.read(|s| s.user(&e.actor).is_some()),
            "{e:?}"
        );
    }
    let listed = client
        .get(
            "/audit-events",
            &[
                ("pagination[count]", "2"),
                ("startTime", &before.to_rfc3339()),
            ],
        )
        .await;
    assert_eq!(listed.status, StatusCode::OK);
    let body = listed.json();
    let text = body.to_string();
    assert!(!text.contains(TOKEN) && !text.contains(&source.write_keys[0]));
    let page: Vec<&str> = body["data"]["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["type"].as_str().unwrap())
        .collect();
    assert_eq!(
        page,
        ["Access Token Created", "Source Modified"],
        "newest first"
    );
    assert!(body["data"]["pagination"]["next"].is_string());
    let all = client.all("/audit-events", "events", 1).await;
    assert_eq!(all.len(), 3);

    let by_resource = client
        .get(
            "/audit-events",
            &[("pagination[count]", "10"), ("resourceId", &user.id)],
        )
        .await
        .json();
    assert_eq!(by_resource["data"]["events"].as_array().unwrap().len(), 1);
    let by_type = client
        .get(
            "/audit-events",
            &[
                ("pagination[count]", "10"),
                ("resourceType", "access_token"),
            ],
        )
        .await
        .json();
    assert_eq!(by_type["data"]["events"][0]["resourceName"], "ci deploys");
    let later = (chrono::Utc::now() + chrono::Duration::seconds(5)).to_rfc3339();
    let none = client
        .get(
            "/audit-events",
            &[("pagination[count]", "10"), ("startTime", &later)],
        )
        .await
        .json();
    assert_eq!(none["data"]["events"], json!([]));
    let bad = client
        .get(
            "/audit-events",
            &[("pagination[count]", "10"), ("endTime", "yesterday")],
        )
        .await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        client.get("/audit-events", &[]).await.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "pagination is required"
    );
    assert!(
        sim.request_log()
            .iter()
            .any(|r| r.starts_with("/audit-events?") && r.contains("resourceType=access_token"))
    );
    sim.shutdown().await;
}
