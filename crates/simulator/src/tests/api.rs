//! Serving the Public API: pagination, auth, single resources, the generated data and
//! determinism.

use super::*;

#[tokio::test]
async fn pagination_returns_every_item_exactly_once() {
    let sim = sim(SimConfig::default()).await;
    let client = Client::new(&sim);
    let (user_ids, group, source_ids, invites, role_count) = sim.read(|st| {
        (
            st.users.iter().map(|u| u.id.clone()).collect::<Vec<_>>(),
            st.groups
                .iter()
                .find(|g| !g.invites.is_empty())
                .cloned()
                .unwrap(),
            st.sources.iter().map(|s| s.id.clone()).collect::<Vec<_>>(),
            st.invites.clone(),
            st.roles.len(),
        )
    });
    assert_eq!(user_ids.len(), 40);

    for count in [1, 7, 40, 200] {
        let users = client.all("/users", "users", count).await;
        assert_eq!(ids(&users), user_ids, "count {count}");
    }
    let unique: HashSet<String> = ids(&client.all("/users", "users", 3).await)
        .into_iter()
        .collect();
    assert_eq!(unique.len(), 40);

    assert_eq!(ids(&client.all("/sources", "sources", 5).await), source_ids);
    assert_eq!(client.all("/roles", "roles", 5).await.len(), role_count);
    assert_eq!(client.all("/groups", "userGroups", 2).await.len(), 5);
    let invited: Vec<Value> = client.all("/invites", "invites", 2).await;
    assert_eq!(
        invited,
        invites.iter().map(|e| json!(e)).collect::<Vec<_>>()
    );

    let members = client
        .all(&format!("/groups/{}/users", group.id), "users", 4)
        .await;
    assert_eq!(ids(&members), group.members);
    assert!(members.iter().all(|m| m.get("permissions").is_none()));
    let emails = client
        .all(&format!("/groups/{}/invites", group.id), "emails", 1)
        .await;
    assert_eq!(
        emails,
        group.invites.iter().map(|e| json!(e)).collect::<Vec<_>>()
    );

    // A cursor past the end gives an empty last page.
    let reply = client
        .page("/users", 10, Some(&server::encode_cursor(1000)))
        .await;
    let data = &reply.json()["data"];
    assert_eq!(data["users"], json!([]));
    assert_eq!(data["pagination"]["next"], Value::Null);
    sim.shutdown().await;
}

#[tokio::test]
async fn dot_form_pagination_and_segment_cursors() {
    let sim = sim(SimConfig::default()).await;
    let client = Client::new(&sim);
    let reply = client
        .get(
            "/users",
            &[("pagination.count", "3"), ("pagination.cursor", "Mw==")],
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.content_type(), "application/vnd.segment.v1+json");
    let body = reply.json();
    let pagination = &body["data"]["pagination"];
    assert_eq!(pagination["current"], "Mw==");
    assert_eq!(pagination["previous"], "MA==");
    assert_eq!(pagination["next"], "Ng==");
    assert_eq!(pagination["totalEntries"], 40);
    let expected: Vec<String> =
        sim.read(|st| st.users[3..6].iter().map(|u| u.id.clone()).collect());
    assert_eq!(ids(body["data"]["users"].as_array().unwrap()), expected);
    sim.shutdown().await;
}

#[tokio::test]
async fn auth_is_required() {
    let sim = sim(SimConfig::default()).await;
    let client = Client::new(&sim);
    let url = format!("{}/users", sim.base_url());
    let missing = client
        .send(client.http.get(&url).query(&[("pagination[count]", "5")]))
        .await;
    let wrong = client
        .send(
            client
                .http
                .get(&url)
                .bearer_auth("not-the-token")
                .query(&[("pagination[count]", "5")]),
        )
        .await;
    let basic = client
        .send(
            client
                .http
                .get(&url)
                .header("authorization", format!("Basic {TOKEN}")),
        )
        .await;
    for reply in [&missing, &wrong, &basic] {
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
        assert_eq!(reply.content_type(), "application/json");
        assert_eq!(reply.error_type(), "Unauthorized");
        assert!(reply.headers.contains_key("x-ratelimit-reset"));
    }
    let control = client
        .send(
            client
                .http
                .get(format!("{}/_simulator/state", sim.base_url())),
        )
        .await;
    assert_eq!(control.status, StatusCode::UNAUTHORIZED);
    sim.shutdown().await;
}

#[tokio::test]
async fn pagination_is_validated() {
    let sim = sim(SimConfig::default()).await;
    let client = Client::new(&sim);
    let missing = client.get("/users", &[]).await;
    assert_eq!(missing.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(missing.content_type(), "application/json");
    let error = &missing.json()["errors"][0];
    assert_eq!(error["type"], "ValidationFailure");
    assert_eq!(error["field"], "pagination");
    assert!(error["message"].as_str().unwrap().contains("pagination"));

    for (count, cursor) in [
        ("500", None),
        ("0", None),
        ("ten", None),
        ("10", Some("@@@")),
        ("10", Some("YWJj")), // base64 of "abc"
    ] {
        let mut query = vec![("pagination[count]", count)];
        query.extend(cursor.map(|c| ("pagination[cursor]", c)));
        let reply = client.get("/sources", &query).await;
        assert_eq!(
            reply.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{count} {cursor:?}"
        );
        assert_eq!(reply.error_type(), "ValidationFailure");
    }
    let group = sim.read(|st| st.groups[0].id.clone());
    let reply = client.get(&format!("/groups/{group}/users"), &[]).await;
    assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY);
    sim.shutdown().await;
}

#[tokio::test]
async fn single_resources_labels_and_not_found() {
    let sim = sim(SimConfig::default()).await;
    let client = Client::new(&sim);
    let (workspace, user, group, source, labels) = sim.read(|st| {
        (
            st.workspace.clone(),
            st.users[5].clone(),
            st.groups[1].clone(),
            st.sources[2].clone(),
            st.labels.clone(),
        )
    });

    let root = client.get("/", &[]).await;
    assert_eq!(root.status, StatusCode::OK);
    assert_eq!(
        root.json(),
        json!({"data": {"workspace": {"id": workspace.id, "slug": "acme-analytics", "name": "Acme Analytics"}}})
    );

    let reply = client.get(&format!("/users/{}", user.id), &[]).await;
    assert_eq!(
        reply.json()["data"]["user"],
        serde_json::to_value(&user).unwrap()
    );

    let reply = client.get(&format!("/groups/{}", group.id), &[]).await;
    let body = reply.json();
    let g = &body["data"]["userGroup"];
    assert_eq!(g["memberCount"], json!(group.members.len()));
    assert_eq!(g["name"], json!(group.name));
    assert!(g.get("members").is_none());

    let reply = client.get(&format!("/sources/{}", source.id), &[]).await;
    let body = reply.json();
    let s = &body["data"]["source"];
    assert_eq!(s["writeKeys"], json!(source.write_keys));
    assert_eq!(s["workspaceId"], json!(workspace.id));
    for key in [
        "id",
        "name",
        "slug",
        "description",
        "logos",
        "options",
        "categories",
        "isCloudEventSource",
        "status",
    ] {
        assert!(s["metadata"].get(key).is_some(), "metadata.{key}");
    }

    // Labels are not paginated and need no pagination parameter.
    let reply = client.get("/labels", &[]).await;
    assert_eq!(reply.status, StatusCode::OK);
    let body = reply.json();
    assert_eq!(
        body["data"]["labels"],
        serde_json::to_value(&labels).unwrap()
    );
    assert!(body["data"].get("pagination").is_none());

    for path in [
        "/users/nope".to_owned(),
        "/groups/nope".to_owned(),
        "/groups/nope/users?pagination[count]=5".to_owned(),
        "/sources/nope".to_owned(),
        "/destinations/nope".to_owned(),
        "/spaces".to_owned(),
    ] {
        let reply = client.get(&path, &[]).await;
        assert_eq!(reply.status, StatusCode::NOT_FOUND, "{path}");
        assert_eq!(
            reply.json(),
            json!({"errors": [{"type": "NotFound", "message": "Resource not found"}]})
        );
        assert_eq!(reply.content_type(), "application/json");
    }
    let reply = client
        .send(
            client
                .http
                .delete(format!("{}/users", sim.base_url()))
                .bearer_auth(TOKEN),
        )
        .await;
    assert_eq!(reply.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(reply.error_type(), "MethodNotAllowed");
    sim.shutdown().await;
}

#[tokio::test]
async fn generated_data_is_plausible() {
    let sim = sim(SimConfig::default()).await;
    sim.read(|st| {
        assert_eq!(st.check_invariants(), Ok(()));
        assert_eq!(
            (
                st.users.len(),
                st.groups.len(),
                st.sources.len(),
                st.invites.len()
            ),
            (40, 5, 12, 3)
        );
        assert_eq!(st.roles.len(), 12);
        let all_ids = std::iter::once(&st.workspace.id)
            .chain(st.users.iter().map(|u| &u.id))
            .chain(st.groups.iter().map(|g| &g.id))
            .chain(st.sources.iter().map(|s| &s.id));
        for id in all_ids {
            assert_eq!(id.len(), 27);
            assert!(id.chars().all(|c| c.is_ascii_alphanumeric()));
        }
        let owners = st.users_with_workspace_role("Workspace Owner").count();
        assert!((2..=3).contains(&owners), "{owners} owners");
        let emails: HashSet<&str> = st.users.iter().map(|u| u.email.as_str()).collect();
        assert_eq!(emails.len(), st.users.len());
        for invite in &st.invites {
            assert!(!emails.contains(invite.as_str()));
        }
        for s in &st.sources {
            assert!((1..=2).contains(&s.write_keys.len()));
            assert!(s.write_keys.iter().all(|k| k.len() == 32));
        }
        assert!(st.groups.iter().any(|g| !g.invites.is_empty()));
    });
    // At a realistic size, the shares the rules look for are present.
    let big = generate::generate(
        7,
        generate::Sizes {
            users: 2000,
            groups: 40,
            sources: 300,
            invites: 20,
            destinations: 150,
            warehouses: 4,
            functions: 10,
            tracking_plans: 6,
        },
    );
    assert_eq!(big.check_invariants(), Ok(()));
    let outside = big
        .users
        .iter()
        .filter(|u| !u.email.ends_with("@acme.io"))
        .count();
    assert!((40..300).contains(&outside), "{outside} outside emails");
    assert!(big.users.iter().any(|u| u.name.is_empty()));
    assert!(
        big.users
            .iter()
            .any(|u| u.permissions.iter().any(|p| p.labels.is_some()))
    );
    assert!(big.users.iter().any(|u| {
        u.permissions
            .iter()
            .any(|p| p.resources.iter().any(|r| r.kind == ResourceType::Source))
    }));
    let minimal = big
        .users_with_workspace_role("Minimal Workspace Access")
        .count();
    assert!(minimal > 1500, "{minimal}");
    assert!(big.sources.iter().any(|s| s.label("environment").is_none()));
    assert!(big.sources.iter().any(|s| s.label("team").is_some()));
    assert!(big.sources.iter().any(|s| !s.enabled));
    let slugs: HashSet<&str> = big.sources.iter().map(|s| s.slug.as_str()).collect();
    assert_eq!(slugs.len(), big.sources.len());
    let sizes: Vec<usize> = big.groups.iter().map(|g| g.members.len()).collect();
    assert!(sizes.iter().all(|n| (20..=50).contains(n)), "{sizes:?}");
    sim.shutdown().await;
}

#[tokio::test]
async fn same_seed_gives_identical_bodies() {
    let a = sim(SimConfig::default()).await;
    let b = sim(SimConfig::default()).await;
    let c = sim(SimConfig {
        seed: 2,
        ..SimConfig::default()
    })
    .await;
    let (ca, cb, cc) = (Client::new(&a), Client::new(&b), Client::new(&c));
    for path in ["/users", "/groups", "/sources", "/invites", "/roles"] {
        let (x, y) = (
            ca.page(path, 200, None).await,
            cb.page(path, 200, None).await,
        );
        assert_eq!(x.status, StatusCode::OK);
        assert_eq!(x.body, y.body, "{path}");
    }
    assert_ne!(
        ca.page("/users", 200, None).await.body,
        cc.page("/users", 200, None).await.body
    );
    // The mutation sequence is seeded too.
    let run = |h: &SimHandle| (0..50).map(|_| h.random_mutation()).collect::<Vec<_>>();
    assert_eq!(run(&a), run(&b));
    assert_eq!(
        ca.page("/users", 200, None).await.body,
        cb.page("/users", 200, None).await.body
    );
    for h in [a, b, c] {
        h.shutdown().await;
    }
}
