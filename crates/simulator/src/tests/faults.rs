//! Injected faults: rate limits, server errors, slow and malformed answers, endless cursors,
//! pagination races and malformed records.

use super::*;

#[tokio::test]
async fn rate_limit_headers_and_429() {
    let unlimited = sim(SimConfig::default()).await;
    let reply = Client::new(&unlimited).get("/", &[]).await;
    assert_eq!(reply.headers["x-ratelimit-consumed"], "1");
    let remaining: u64 = reply.headers["x-ratelimit-remaining"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(remaining > 10_000);
    let reset = reply.headers["x-ratelimit-reset"].to_str().unwrap();
    assert!(httpdate::parse_http_date(reset).is_ok(), "{reset}");
    unlimited.shutdown().await;

    let limited = sim(SimConfig {
        rate_limit: Some(RateLimit::per_minute(3)),
        ..SimConfig::default()
    })
    .await;
    let client = Client::new(&limited);
    for i in 1..=3 {
        let reply = client.get("/", &[]).await;
        assert_eq!(reply.status, StatusCode::OK);
        assert_eq!(
            reply.headers["x-ratelimit-consumed"],
            i.to_string().as_str()
        );
        assert_eq!(
            reply.headers["x-ratelimit-remaining"],
            (3 - i).to_string().as_str()
        );
    }
    let reply = client.get("/", &[]).await;
    assert_eq!(reply.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(reply.content_type(), "application/json");
    let error = &reply.json()["errors"][0];
    assert_eq!(error["type"], "RequestError");
    assert_eq!(error["message"], "Too many requests");
    assert_eq!(error["data"]["remainingPoints"], 0);
    assert_eq!(error["data"]["consumedPoints"], 4);
    let ms = error["data"]["msBeforeNext"].as_u64().unwrap();
    assert!(ms > 50_000 && ms <= 60_000, "{ms}");
    assert_eq!(reply.headers["x-ratelimit-remaining"], "0");
    let reset =
        httpdate::parse_http_date(reply.headers["x-ratelimit-reset"].to_str().unwrap()).unwrap();
    assert!(reset > std::time::SystemTime::now() + Duration::from_secs(50));
    assert_eq!(limited.request_count(), 4);
    limited.shutdown().await;

    // A short window lets requests through again once it has passed.
    let short = sim(SimConfig {
        rate_limit: Some(RateLimit {
            requests: 1,
            window: Duration::from_secs(1),
        }),
        ..SimConfig::default()
    })
    .await;
    let client = Client::new(&short);
    assert_eq!(client.get("/", &[]).await.status, StatusCode::OK);
    assert_eq!(
        client.get("/", &[]).await.status,
        StatusCode::TOO_MANY_REQUESTS
    );
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(client.get("/", &[]).await.status, StatusCode::OK);
    short.shutdown().await;
}

#[tokio::test]
async fn rate_limited_fault_with_path_skip_and_times() {
    let sim = sim(SimConfig {
        faults: vec![
            Fault::new(FaultKind::RateLimited {
                ms_before_next: 2000,
            })
            .on_path("/users")
            .skip(1)
            .times(2),
        ],
        ..SimConfig::default()
    })
    .await;
    let client = Client::new(&sim);
    assert_eq!(client.page("/roles", 5, None).await.status, StatusCode::OK);
    assert_eq!(client.page("/users", 5, None).await.status, StatusCode::OK);
    for _ in 0..2 {
        let reply = client.page("/users", 5, None).await;
        assert_eq!(reply.status, StatusCode::TOO_MANY_REQUESTS);
        let error = &reply.json()["errors"][0];
        assert_eq!(error["type"], "RequestError");
        assert_eq!(error["data"]["msBeforeNext"], 2000);
        assert_eq!(error["data"]["remainingPoints"], 0);
        assert_eq!(reply.headers["x-ratelimit-remaining"], "0");
        assert!(reply.headers.contains_key("x-ratelimit-reset"));
    }
    assert_eq!(client.page("/users", 5, None).await.status, StatusCode::OK);
    assert_eq!(sim.request_count(), 5);
    sim.shutdown().await;
}

#[tokio::test]
async fn server_error_slow_and_malformed_faults() {
    let sim = sim(SimConfig::default()).await;
    let client = Client::new(&sim);

    sim.inject(Fault::new(FaultKind::ServerError { status: 503 }).times(1));
    let reply = client.get("/", &[]).await;
    assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(reply.error_type(), "ServiceUnavailable");
    assert!(reply.headers.contains_key("x-ratelimit-consumed"));
    assert_eq!(client.get("/", &[]).await.status, StatusCode::OK);

    sim.inject(Fault::new(FaultKind::Slow { delay_ms: 300 }).on_path("/labels"));
    assert_eq!(client.get("/", &[]).await.status, StatusCode::OK);
    let started = Instant::now();
    let reply = client.get("/labels", &[]).await;
    assert!(started.elapsed() >= Duration::from_millis(300));
    assert_eq!(reply.status, StatusCode::OK);
    reply.json();
    sim.clear_faults();

    sim.inject(Fault::new(FaultKind::MalformedJson).on_path("/sources"));
    let reply = client.page("/sources", 5, None).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert!(!reply.body.is_empty());
    assert!(serde_json::from_slice::<Value>(&reply.body).is_err());
    let source = sim.read(|st| st.sources[0].id.clone());
    let reply = client.get(&format!("/sources/{source}"), &[]).await;
    assert!(serde_json::from_slice::<Value>(&reply.body).is_err());
    // Errors pass through unharmed.
    assert_eq!(
        client.get("/sources", &[]).await.error_type(),
        "ValidationFailure"
    );
    assert_eq!(client.page("/users", 5, None).await.status, StatusCode::OK);
    client.page("/users", 5, None).await.json();
    sim.clear_faults();
    client.page("/sources", 5, None).await.json();
    sim.shutdown().await;
}

#[tokio::test]
async fn endless_cursor_faults() {
    let sim = sim(SimConfig::default()).await;
    let client = Client::new(&sim);

    sim.inject(Fault::new(FaultKind::EndlessCursor { repeat: true }).on_path("/roles"));
    let reply = client.page("/roles", 200, None).await;
    let p = &reply.json()["data"]["pagination"];
    assert_eq!(p["next"], p["current"]);
    assert_eq!(p["next"], "MA==");
    sim.clear_faults();

    sim.inject(Fault::new(FaultKind::EndlessCursor { repeat: false }));
    // Not a paginated list: untouched, and the fault is not used up.
    let reply = client.get("/labels", &[]).await;
    assert!(reply.json()["data"].get("pagination").is_none());
    let mut cursor = None;
    for page in 0..5 {
        let reply = client.page("/roles", 10, cursor.as_deref()).await;
        let body = reply.json();
        let p = &body["data"]["pagination"];
        let next = p["next"].as_str().expect("next is always set").to_owned();
        assert_eq!(next, server::encode_cursor((page + 1) * 10));
        let roles = body["data"]["roles"].as_array().unwrap().len();
        assert_eq!(
            roles,
            if page == 0 {
                10
            } else if page == 1 {
                2
            } else {
                0
            }
        );
        cursor = Some(next);
    }
    sim.shutdown().await;
}

#[tokio::test]
async fn pagination_race_delete_skips_one_existing_user() {
    let sim = sim(SimConfig::default()).await;
    let client = Client::new(&sim);
    let before: Vec<String> = sim.read(|s| s.users.iter().map(|u| u.id.clone()).collect());
    sim.inject("race:delete,path=/users".parse().unwrap());
    // A first page does not trigger it.
    assert_eq!(client.page("/users", 10, None).await.status, StatusCode::OK);
    assert!(sim.races().is_empty());

    let read = ids(&read_pages(&client, "/users", "users", 10).await);
    let races = sim.races();
    assert_eq!(races.len(), 1, "fires once: {races:?}");
    let race = &races[0];
    assert_eq!(race.path, "/users");
    assert_eq!(race.action, RaceAction::Delete);
    // The deleted user was the first one, on the page already read.
    assert_eq!(race.id, before[0]);
    assert!(
        race.description.starts_with("removed user "),
        "{}",
        race.description
    );
    // Offsets computed on the new state: the first user of page 2 is skipped.
    let mut expected = before.clone();
    expected.remove(10);
    assert_eq!(read, expected);
    let skipped = &before[10];
    assert_eq!(
        client.get(&format!("/users/{skipped}"), &[]).await.status,
        StatusCode::OK,
        "the skipped user still exists"
    );
    let deleted = client.get(&format!("/users/{}", before[0]), &[]).await;
    assert_eq!(deleted.status, StatusCode::NOT_FOUND);
    assert_eq!(deleted.error_type(), "NotFound");
    // A real mutation: the audit trail names the deleted user.
    let events = sim.audit_events();
    assert!(
        events
            .iter()
            .any(|e| e.event_type == "User Removed" && e.resource_id == before[0]),
        "{events:?}"
    );
    // Once only: a second read sees every remaining user exactly once.
    let again = ids(&read_pages(&client, "/users", "users", 10).await);
    assert_eq!(again, before[1..].to_vec());
    assert_eq!(sim.races().len(), 1);
    sim.shutdown().await;
}

#[tokio::test]
async fn pagination_race_insert_repeats_one_item() {
    let sim = sim(SimConfig::default()).await;
    let client = Client::new(&sim);
    let before: Vec<String> = sim.read(|s| s.users.iter().map(|u| u.id.clone()).collect());
    sim.inject(Fault::race(RaceAction::Insert, "/users"));
    let read = ids(&read_pages(&client, "/users", "users", 10).await);
    let races = sim.races();
    assert_eq!(races.len(), 1);
    assert_eq!(races[0].action, RaceAction::Insert);
    let inserted = races[0].id.clone();
    assert!(!before.contains(&inserted));
    // The last user of page 1 comes again at the start of page 2.
    let mut expected = before.clone();
    expected.insert(10, before[9].clone());
    assert_eq!(read, expected);
    assert!(
        !read.contains(&inserted),
        "the insert landed on a page already read"
    );
    let one = client.get(&format!("/users/{inserted}"), &[]).await;
    assert_eq!(one.status, StatusCode::OK);
    assert_eq!(one.json()["data"]["user"]["email"], "race-1@acme.io");
    assert_eq!(sim.read(|s| s.users[0].id.clone()), inserted);
    assert!(
        sim.audit_events()
            .iter()
            .any(|e| e.event_type == "User Added" && e.resource_id == inserted)
    );

    // Destinations race the same way.
    let destinations: Vec<String> =
        sim.read(|s| s.destinations.iter().map(|d| d.id.clone()).collect());
    sim.inject("race:delete,path=/destinations".parse().unwrap());
    let read = ids(&read_pages(&client, "/destinations", "destinations", 3).await);
    let race = sim.races().pop().unwrap();
    assert_eq!(
        (race.path.as_str(), race.id.as_str()),
        ("/destinations", destinations[0].as_str())
    );
    let mut expected = destinations.clone();
    expected.remove(3);
    assert_eq!(read, expected);
    assert_eq!(
        client
            .get(&format!("/destinations/{}", destinations[0]), &[])
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn malformed_items_are_added_next_to_untouched_real_ones() {
    let sim = sim(SimConfig::default()).await;
    let client = Client::new(&sim);
    let real = client.page("/users", 10, None).await.json()["data"]["users"].clone();
    let real = real.as_array().unwrap();
    for (spec, bad) in [
        ("bad-item:no-id,path=/users,times=1", {
            let mut b = real[0].clone();
            b.as_object_mut().unwrap().remove("id");
            b
        }),
        ("bad-item:null-id,path=/users,times=1", {
            let mut b = real[0].clone();
            b["id"] = Value::Null;
            b
        }),
        (
            "bad-item:not-object,path=/users,times=1",
            json!("not-an-object"),
        ),
    ] {
        sim.inject(spec.parse().unwrap());
        let reply = client.page("/users", 10, None).await;
        assert_eq!(reply.status, StatusCode::OK, "{spec}");
        let data = reply.json()["data"].clone();
        let mut items = data["users"].as_array().unwrap().clone();
        assert_eq!(items.len(), 11, "{spec}");
        assert_eq!(items.remove(5), bad, "{spec}");
        assert_eq!(&items, real, "{spec}: real items untouched");
        assert_eq!(data["pagination"]["totalEntries"], json!(40), "{spec}");
        // `times=1`: the next page is clean again.
        let clean = client.page("/users", 10, None).await.json();
        assert_eq!(
            &clean["data"]["users"].as_array().unwrap()[..],
            real,
            "{spec}"
        );
    }
    sim.inject("bad-item:not-object,path=/sources".parse().unwrap());
    let sources = client.page("/sources", 200, None).await.json();
    let sources = sources["data"]["sources"].as_array().unwrap();
    assert_eq!(sources.len(), 13);
    assert_eq!(sources.iter().filter(|s| !s.is_object()).count(), 1);
    // Single items are never given a bad sibling.
    let sid = sources[0]["id"].as_str().unwrap();
    let one = client.get(&format!("/sources/{sid}"), &[]).await.json();
    assert!(one["data"]["source"].is_object());
    sim.clear_faults();

    // Most of a response unreadable: every item loses its id.
    sim.inject("bad-item:all,path=/users,times=1".parse().unwrap());
    let all = client.page("/users", 10, None).await.json();
    let all = all["data"]["users"].as_array().unwrap();
    assert_eq!(all.len(), 10);
    for (item, real) in all.iter().zip(real) {
        assert!(item.get("id").is_none());
        assert_eq!(item["email"], real["email"]);
    }
    sim.shutdown().await;
}

#[tokio::test]
async fn malformed_audit_events_have_a_bad_or_no_timestamp() {
    let sim = sim(SimConfig::default()).await;
    let client = Client::new(&sim);
    for _ in 0..6 {
        sim.random_mutation();
    }
    let real = client.page("/audit-events", 200, None).await.json()["data"]["events"].clone();
    let real = real.as_array().unwrap();
    assert!(real.len() >= 6);
    sim.inject("bad-event:timestamp,times=1".parse().unwrap());
    sim.inject("bad-event:no-timestamp,times=1".parse().unwrap());
    for defect in ["timestamp", "no-timestamp"] {
        let page = client.page("/audit-events", 200, None).await.json()["data"]["events"].clone();
        let mut page = page.as_array().unwrap().clone();
        assert_eq!(page.len(), real.len() + 1, "{defect}");
        let bad = page.remove(page.len() / 2);
        assert_eq!(&page, real, "{defect}: real events untouched");
        assert_eq!(
            bad["id"],
            json!(format!("{}-malformed", real[0]["id"].as_str().unwrap()))
        );
        assert_eq!(bad["type"], real[0]["type"]);
        match defect {
            "timestamp" => assert_eq!(bad["timestamp"], "yesterday"),
            _ => assert!(bad.get("timestamp").is_none(), "{bad}"),
        }
    }
    // Both spent.
    let clean = client.page("/audit-events", 200, None).await.json();
    assert_eq!(&clean["data"]["events"].as_array().unwrap()[..], &real[..]);
    sim.shutdown().await;
}
