//! The `/_simulator` control routes, the background mutator, configuration checks and timings.

use super::*;

#[tokio::test]
async fn control_routes() {
    let sim = sim(SimConfig::default()).await;
    let client = Client::new(&sim);
    let workspace_id = sim.read(|st| st.workspace.id.clone());

    let reply = client
        .post("/_simulator/mutations", &json!({"op": "add_user", "email": "x.y@contractor.dev", "name": "X Y", "role_name": "Source Admin"}))
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(
        reply.json(),
        json!(["added user x.y@contractor.dev (X Y) with Source Admin"])
    );
    let reply = client
        .post("/_simulator/mutations", &json!({"random": 3}))
        .await;
    assert_eq!(reply.json().as_array().unwrap().len(), 3);
    let reply = client
        .post(
            "/_simulator/mutations",
            &json!({"op": "grant_role", "user_id": "nope", "role_name": "Workspace Owner"}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
    let reply = client
        .post("/_simulator/mutations", &json!({"op": "explode"}))
        .await;
    assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(reply.error_type(), "ValidationFailure");

    let reply = client
        .post("/_simulator/faults", &json!("500,path=/users,times=1"))
        .await;
    assert_eq!(reply.status, StatusCode::CREATED);
    assert_eq!(reply.json(), json!({"fault": "500,path=/users,times=1"}));
    let reply = client
        .post(
            "/_simulator/faults",
            &json!({"kind": {"type": "server_error", "status": 502}, "path": "/roles"}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::CREATED);
    let reply = client.post("/_simulator/faults", &json!("teapot")).await;
    assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        reply.json()["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("unknown fault kind")
    );
    // Control routes are never faulted.
    assert_eq!(
        client.get("/_simulator/state", &[]).await.status,
        StatusCode::OK
    );
    assert_eq!(
        client.page("/users", 5, None).await.status,
        StatusCode::INTERNAL_SERVER_ERROR
    );
    assert_eq!(
        client.page("/roles", 5, None).await.status,
        StatusCode::BAD_GATEWAY
    );
    let url = format!("{}/_simulator/faults", sim.base_url());
    let reply = client
        .send(client.http.delete(url).bearer_auth(TOKEN))
        .await;
    assert_eq!(reply.status, StatusCode::NO_CONTENT);
    assert_eq!(client.page("/roles", 5, None).await.status, StatusCode::OK);

    let reply = client.post("/_simulator/shuffle", &json!(null)).await;
    assert_eq!(reply.status, StatusCode::NO_CONTENT);
    let state = client.get("/_simulator/state", &[]).await;
    assert_eq!(state.content_type(), "application/json");
    let state = state.json();
    assert_eq!(
        state["users"].as_array().unwrap().len(),
        sim.read(|st| st.users.len())
    );
    assert_eq!(state["workspace"]["id"], json!(workspace_id));
    assert!(state["groups"][0]["members"].is_array());
    // Control requests are not counted.
    assert_eq!(sim.request_count(), 3);
    sim.shutdown().await;
}

#[tokio::test]
async fn mutator_runs_until_shutdown() {
    let sim = sim(SimConfig::default()).await;
    let before = sim.read(Clone::clone);
    let mutator = sim.spawn_mutator(Duration::from_millis(20));
    tokio::time::sleep(Duration::from_millis(150)).await;
    let addr = sim.addr();
    let changed = sim.read(|st| {
        st.users != before.users
            || st.sources != before.sources
            || st.invites != before.invites
            || st.groups != before.groups
    });
    assert!(changed);
    sim.shutdown().await;
    tokio::time::timeout(Duration::from_secs(2), mutator)
        .await
        .expect("the mutator stops on shutdown")
        .unwrap();
    assert!(tokio::net::TcpStream::connect(addr).await.is_err());
}

#[tokio::test]
async fn start_rejects_bad_config() {
    let addr = "127.0.0.1:0".parse().unwrap();
    let empty_token = SimConfig {
        token: String::new(),
        ..SimConfig::default()
    };
    assert_eq!(
        start(empty_token, addr).await.unwrap_err().kind(),
        std::io::ErrorKind::InvalidInput
    );
    let zero_limit = SimConfig {
        rate_limit: Some(RateLimit::per_minute(0)),
        ..SimConfig::default()
    };
    assert_eq!(
        start(zero_limit, addr).await.unwrap_err().kind(),
        std::io::ErrorKind::InvalidInput
    );
    let debug = format!("{:?}", SimConfig::default());
    assert!(!debug.contains("sim-token"), "{debug}");
}

/// Generation and serving at benchmark scale. Run by hand, in release:
/// `cargo test --release --lib simulator::tests::large_workspace_timings -- --ignored --nocapture`
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "timing measurement, run by hand in release mode"]
async fn large_workspace_timings() {
    let started = Instant::now();
    let state = generate::generate(
        1,
        generate::Sizes {
            users: 100_000,
            groups: 1_000,
            sources: 10_000,
            invites: 500,
            destinations: 1_000,
            warehouses: 20,
            functions: 50,
            tracking_plans: 40,
        },
    );
    let generation = started.elapsed();
    let members: usize = state.groups.iter().map(|g| g.members.len()).sum();
    println!(
        "generated {} users, {} groups ({} memberships), {} sources in {generation:?}",
        state.users.len(),
        state.groups.len(),
        members,
        state.sources.len()
    );
    // Informative only: resident memory of the whole test process with the state alive.
    if let Ok(status) = std::fs::read_to_string("/proc/self/status") {
        let rss = status.lines().find(|l| l.starts_with("VmRSS:"));
        println!("{}", rss.unwrap_or("VmRSS: unknown"));
    }
    drop(state);

    let started = Instant::now();
    let sim = sim(SimConfig {
        users: 100_000,
        groups: 1_000,
        sources: 10_000,
        invites: 500,
        ..SimConfig::default()
    })
    .await;
    println!("start() including generation: {:?}", started.elapsed());
    let client = Client::new(&sim);
    client.page("/users", 200, None).await;
    let mut fastest = Duration::MAX;
    let started = Instant::now();
    for i in 0..100 {
        let cursor = server::encode_cursor(i * 997);
        let t = Instant::now();
        let reply = client.page("/users", 200, Some(&cursor)).await;
        fastest = fastest.min(t.elapsed());
        assert_eq!(reply.status, StatusCode::OK);
    }
    println!(
        "100 pages of 200 users: {:?} total, fastest {fastest:?}",
        started.elapsed()
    );
    let t = Instant::now();
    let users = client.all("/users", "users", 200).await;
    println!("all {} users in 500 pages: {:?}", users.len(), t.elapsed());
    let t = Instant::now();
    println!(
        "churn: {} in {:?}",
        sim.apply(Mutation::Churn { percent: 1.0 }).unwrap(),
        t.elapsed()
    );
    let t = Instant::now();
    println!(
        "random mutation: {} in {:?}",
        sim.random_mutation(),
        t.elapsed()
    );
    let t = Instant::now();
    sim.shuffle();
    println!("shuffle in {:?}", t.elapsed());
    sim.shutdown().await;
}

#[tokio::test]
async fn control_routes_for_plans_releases_and_races() {
    let sim = sim(SimConfig::default()).await;
    let client = Client::new(&sim);
    let url = format!("{}/_simulator/plan", sim.base_url());
    let put = |body: Value| client.http.put(&url).bearer_auth(TOKEN).json(&body);
    assert_eq!(
        client.send(put(json!("team"))).await.status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(sim.plan(), Plan::Team);
    assert_eq!(
        client.page("/groups", 5, None).await.status,
        StatusCode::FORBIDDEN
    );
    let reply = client.send(put(json!("free"))).await;
    assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        reply.json()["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("unknown plan `free`")
    );
    assert_eq!(
        client.send(put(json!("business"))).await.status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(client.page("/groups", 5, None).await.status, StatusCode::OK);

    let reply = client
        .post(
            "/_simulator/unavailable",
            &json!({"path": "/sources", "status": 404}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::NO_CONTENT);
    assert_eq!(
        client.page("/sources", 5, None).await.status,
        StatusCode::NOT_FOUND
    );
    let reply = client
        .post(
            "/_simulator/unavailable",
            &json!({"path": "/sources", "status": 500}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY);
    let reply = client
        .post(
            "/_simulator/unavailable",
            &json!({"path": "/sources", "status": null}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::NO_CONTENT);
    assert_eq!(
        client.page("/sources", 5, None).await.status,
        StatusCode::OK
    );

    let reply = client
        .post("/_simulator/releases", &json!("users:createdAt"))
        .await;
    assert_eq!(reply.status, StatusCode::CREATED);
    assert_eq!(
        reply.json(),
        json!({"release": "/users:createdAt=\"2024-01-01T00:00:00.000Z\""})
    );
    let reply = client
        .post(
            "/_simulator/releases",
            &json!({"path": "/users", "field": "email", "value": null}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::CREATED);
    assert_eq!(reply.json(), json!({"release": "/users:-email"}));
    let reply = client
        .post("/_simulator/releases", &json!("users:a[]"))
        .await;
    assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY);
    let user = client.page("/users", 1, None).await.json()["data"]["users"][0].clone();
    assert_eq!(user["createdAt"], json!(Release::DEFAULT_VALUE));
    assert!(user.get("email").is_none());
    let url = format!("{}/_simulator/releases", sim.base_url());
    let reply = client
        .send(client.http.delete(url).bearer_auth(TOKEN))
        .await;
    assert_eq!(reply.status, StatusCode::NO_CONTENT);
    let user = client.page("/users", 1, None).await.json()["data"]["users"][0].clone();
    assert!(user.get("createdAt").is_none() && user["email"].is_string());

    let first = sim.read(|s| s.users[0].id.clone());
    let reply = client
        .post("/_simulator/faults", &json!("race:delete,path=/users"))
        .await;
    assert_eq!(
        reply.json(),
        json!({"fault": "race:delete,path=/users,times=1"})
    );
    read_pages(&client, "/users", "users", 15).await;
    let races = client.get("/_simulator/races", &[]).await.json();
    assert_eq!(races.as_array().unwrap().len(), 1);
    assert_eq!(races[0]["path"], "/users");
    assert_eq!(races[0]["action"], "delete");
    assert_eq!(races[0]["id"], json!(first));
    sim.shutdown().await;
}
