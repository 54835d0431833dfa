//! Plans lacking features, unavailable endpoints and API releases.

use super::*;

#[tokio::test]
async fn plans_and_unavailable_endpoints_answer_403_and_404() {
    let sim = sim(SimConfig {
        plan: Plan::Team,
        ..SimConfig::default()
    })
    .await;
    let client = Client::new(&sim);
    let (group, function, plan) = sim.read(|s| {
        (
            s.groups[0].id.clone(),
            s.functions[0].id.clone(),
            s.tracking_plans[0].id.clone(),
        )
    });
    let count = [("pagination[count]", "10")];
    let lacking = [
        ("/groups".to_owned(), &count[..]),
        (format!("/groups/{group}"), &[][..]),
        (format!("/groups/{group}/users"), &count[..]),
        (format!("/groups/{group}/invites"), &count[..]),
        (
            "/functions".to_owned(),
            &[("resourceType", "SOURCE"), ("pagination[count]", "10")][..],
        ),
        (format!("/functions/{function}"), &[][..]),
        ("/tracking-plans".to_owned(), &count[..]),
        (format!("/tracking-plans/{plan}"), &[][..]),
        (format!("/tracking-plans/{plan}/sources"), &count[..]),
        ("/audit-events".to_owned(), &count[..]),
    ];
    for (path, query) in &lacking {
        let reply = client.get(path, query).await;
        assert_eq!(reply.status, StatusCode::FORBIDDEN, "{path}");
        assert_eq!(reply.content_type(), "application/json", "{path}");
        let body = reply.json();
        assert_eq!(body["errors"].as_array().unwrap().len(), 1, "{path}");
        assert_eq!(body["errors"][0]["type"], "Forbidden", "{path}");
        let message = body["errors"][0]["message"].as_str().unwrap();
        assert!(
            message.contains("is not available on this workspace's plan (team)"),
            "{path}: {message}"
        );
        assert!(
            reply.headers.contains_key("x-ratelimit-remaining"),
            "{path}"
        );
    }
    for path in ["/users", "/sources", "/destinations", "/roles"] {
        assert_eq!(
            client.page(path, 10, None).await.status,
            StatusCode::OK,
            "{path}"
        );
    }
    let workspace = client.get("/", &[]).await;
    assert_eq!(workspace.status, StatusCode::OK);
    assert!(workspace.json()["data"]["workspace"]["id"].is_string());
    assert_eq!(sim.plan(), Plan::Team);

    // The plan changes between two polls, and back.
    sim.set_plan(Plan::Business);
    assert_eq!(
        client.page("/groups", 10, None).await.status,
        StatusCode::OK
    );
    assert_eq!(
        client.page("/audit-events", 10, None).await.status,
        StatusCode::OK
    );

    // One endpoint missing for this token or region: 404 with the NotFound envelope.
    sim.set_unavailable("/functions", Some(404));
    let reply = client.get(&format!("/functions/{function}"), &[]).await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
    assert_eq!(reply.error_type(), "NotFound");
    let reply = client.get("/functions", lacking[4].1).await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
    sim.set_unavailable("/users", Some(403));
    let reply = client.page("/users", 10, None).await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN);
    assert_eq!(reply.error_type(), "Forbidden");
    assert!(
        reply.json()["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("not available on this workspace's plan (business)")
    );
    // Segment-wise: `/usersx` would not be covered, `/users/{id}` is.
    let user = sim.read(|s| s.users[0].id.clone());
    assert_eq!(
        client.get(&format!("/users/{user}"), &[]).await.status,
        StatusCode::FORBIDDEN
    );
    // A whole-API prefix never hides the workspace itself.
    sim.set_unavailable("/", Some(404));
    assert_eq!(client.get("/", &[]).await.status, StatusCode::OK);
    sim.set_unavailable("/", None);
    sim.set_unavailable("/functions", None);
    sim.set_unavailable("users/", None);
    assert_eq!(
        client.get("/functions", lacking[4].1).await.status,
        StatusCode::OK
    );
    assert_eq!(client.page("/users", 10, None).await.status, StatusCode::OK);

    // From the configuration too.
    let other = super::start(
        SimConfig {
            unavailable: vec![("/warehouses".into(), 404)],
            ..SimConfig::default()
        },
        "127.0.0.1:0".parse().unwrap(),
    )
    .await
    .unwrap();
    let other_client = Client::new(&other);
    assert_eq!(
        other_client.page("/warehouses", 10, None).await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        other_client.page("/groups", 10, None).await.status,
        StatusCode::OK
    );
    let bad = super::start(
        SimConfig {
            unavailable: vec![("/warehouses".into(), 500)],
            ..SimConfig::default()
        },
        "127.0.0.1:0".parse().unwrap(),
    )
    .await
    .unwrap_err();
    assert!(bad.to_string().contains("403 or 404"), "{bad}");
    other.shutdown().await;
    sim.shutdown().await;
}

#[tokio::test]
async fn api_releases_add_and_remove_fields_in_lists_and_single_items() {
    let sim = sim(SimConfig::default()).await;
    let client = Client::new(&sim);
    let stamp = json!("2025-03-01T00:00:00.000Z");
    sim.api_release("/users", "createdAt", Some(stamp.clone()));
    sim.api_release("/users", "permissions[].createdAt", Some(Value::Null));
    sim.api_release(
        "/groups",
        "permissions[].resources[].labelsV2",
        Some(json!([])),
    );
    sim.api_release("/sources", "settings.newKey", Some(json!(true)));
    sim.api_release("/destinations", "email", Some(json!("x")));
    sim.api_release("/destinations", "email", None);
    sim.api_release("/sources", "writeKeys", None);

    let users = read_pages(&client, "/users", "users", 7).await;
    assert_eq!(users.len(), sim.read(|s| s.users.len()));
    let mut permissions_seen = 0;
    for user in &users {
        assert_eq!(user["createdAt"], stamp, "{user}");
        let permissions = user["permissions"].as_array().unwrap();
        permissions_seen += permissions.len();
        for p in permissions {
            assert!(p.as_object().unwrap().contains_key("createdAt"), "{p}");
            assert_eq!(p["createdAt"], Value::Null);
            // The rest of the item is untouched.
            assert!(p["roleId"].is_string() && p["resources"].is_array());
        }
        assert!(user["email"].is_string() && user["id"].is_string());
    }
    assert!(permissions_seen > 10, "{permissions_seen}");
    let id = users[3]["id"].as_str().unwrap();
    let one = client.get(&format!("/users/{id}"), &[]).await.json();
    assert_eq!(one["data"]["user"]["createdAt"], stamp);
    assert_eq!(one["data"]["user"], users[3]);

    // Groups: nested arrays of arrays; the members sub-list is not a group list.
    let groups = read_pages(&client, "/groups", "userGroups", 2).await;
    let group = &groups[0];
    for p in group["permissions"].as_array().unwrap() {
        for r in p["resources"].as_array().unwrap() {
            assert_eq!(r["labelsV2"], json!([]), "{r}");
        }
    }
    let gid = group["id"].as_str().unwrap();
    let members = client
        .page(&format!("/groups/{gid}/users"), 200, None)
        .await
        .json();
    for m in members["data"]["users"].as_array().unwrap() {
        assert!(m.get("createdAt").is_none(), "{m}");
    }

    // A field the simulator normally sends goes away, in the list and the single item.
    let sources = read_pages(&client, "/sources", "sources", 5).await;
    assert_eq!(sources.len(), sim.read(|s| s.sources.len()));
    for s in &sources {
        assert!(s.get("writeKeys").is_none(), "{s}");
        assert_eq!(s["settings"]["newKey"], json!(true));
    }
    let sid = sources[0]["id"].as_str().unwrap();
    let one = client.get(&format!("/sources/{sid}"), &[]).await.json();
    assert!(one["data"]["source"].get("writeKeys").is_none());
    assert!(one["data"]["source"]["slug"].is_string());
    let destinations = read_pages(&client, "/destinations", "destinations", 200).await;
    assert!(destinations.iter().all(|d| d.get("email").is_none()));

    // Applied when answering, so a user added later carries the field as well.
    sim.apply(Mutation::AddUser {
        email: "late.comer@acme.io".into(),
        name: "Late".into(),
        role_name: "Source Admin".into(),
    })
    .unwrap();
    let users = read_pages(&client, "/users", "users", 200).await;
    let late = users
        .iter()
        .find(|u| u["email"] == "late.comer@acme.io")
        .unwrap();
    assert_eq!(late["createdAt"], stamp);

    // Withdrawn: the normal shape again, byte for byte.
    sim.clear_releases();
    let plain = client.page("/users", 200, None).await;
    assert!(plain.json()["data"]["users"][0].get("createdAt").is_none());
    let reference = sim.read(|s| serde_json::to_value(&s.users).unwrap());
    assert_eq!(plain.json()["data"]["users"], reference);

    // From the configuration.
    let other = super::start(
        SimConfig {
            releases: vec!["users:createdAt".parse().unwrap()],
            ..SimConfig::default()
        },
        "127.0.0.1:0".parse().unwrap(),
    )
    .await
    .unwrap();
    let reply = Client::new(&other).page("/users", 3, None).await.json();
    for u in reply["data"]["users"].as_array().unwrap() {
        assert_eq!(u["createdAt"], json!(Release::DEFAULT_VALUE));
    }
    other.shutdown().await;
    sim.shutdown().await;
}

#[test]
#[should_panic(expected = "must end with a key")]
fn api_release_refuses_a_bad_field_path() {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(async {
            let sim = sim(SimConfig::default()).await;
            sim.api_release("/users", "permissions[]", None);
        });
}
