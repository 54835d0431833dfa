//! Loopback HTTP tests of the simulator, with reqwest as the client.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use reqwest::header::{CONTENT_TYPE, HeaderMap};
use serde_json::{Value, json};

use super::*;

const TOKEN: &str = "sim-token";

async fn sim(config: SimConfig) -> SimHandle {
    start(config, "127.0.0.1:0".parse().unwrap()).await.unwrap()
}

struct Reply {
    status: StatusCode,
    headers: HeaderMap,
    body: Vec<u8>,
}

impl Reply {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "invalid JSON ({e}): {}",
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    fn content_type(&self) -> &str {
        self.headers
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
    }

    fn error_type(&self) -> String {
        self.json()["errors"][0]["type"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }
}

struct Client {
    http: reqwest::Client,
    base: String,
}

impl Client {
    fn new(sim: &SimHandle) -> Self {
        Client {
            http: reqwest::Client::new(),
            base: sim.base_url(),
        }
    }

    async fn send(&self, request: reqwest::RequestBuilder) -> Reply {
        let response = request.send().await.unwrap();
        Reply {
            status: response.status(),
            headers: response.headers().clone(),
            body: response.bytes().await.unwrap().to_vec(),
        }
    }

    async fn get(&self, path: &str, query: &[(&str, &str)]) -> Reply {
        let url = format!("{}{path}", self.base);
        self.send(self.http.get(url).bearer_auth(TOKEN).query(query))
            .await
    }

    async fn page(&self, path: &str, count: usize, cursor: Option<&str>) -> Reply {
        let count = count.to_string();
        let mut query = vec![("pagination[count]", count.as_str())];
        if let Some(c) = cursor {
            query.push(("pagination[cursor]", c));
        }
        self.get(path, &query).await
    }

    /// Follows `next` to the end, checking the cursors on the way; returns every item.
    async fn all(&self, path: &str, key: &str, count: usize) -> Vec<Value> {
        let mut items = Vec::new();
        let mut cursor: Option<String> = None;
        for page in 0.. {
            assert!(page < 10_000, "pagination of {path} does not end");
            let reply = self.page(path, count, cursor.as_deref()).await;
            assert_eq!(reply.status, StatusCode::OK, "{path}");
            let data = &reply.json()["data"];
            let pagination = &data["pagination"];
            let offset = page * count;
            assert_eq!(pagination["current"], json!(server::encode_cursor(offset)));
            if page == 0 {
                assert_eq!(pagination["current"], "MA==");
                assert_eq!(pagination["previous"], Value::Null);
            } else {
                assert_eq!(
                    pagination["previous"],
                    json!(server::encode_cursor(offset - count))
                );
            }
            let batch = data[key].as_array().unwrap().clone();
            assert!(batch.len() <= count);
            items.extend(batch);
            match &pagination["next"] {
                Value::Null => {
                    assert_eq!(
                        pagination["totalEntries"].as_u64().unwrap() as usize,
                        items.len()
                    );
                    break;
                }
                Value::String(next) => {
                    assert_eq!(next, &server::encode_cursor(offset + count));
                    cursor = Some(next.clone());
                }
                other => panic!("bad next: {other}"),
            }
        }
        items
    }

    async fn post(&self, path: &str, body: &Value) -> Reply {
        let url = format!("{}{path}", self.base);
        self.send(self.http.post(url).bearer_auth(TOKEN).json(body))
            .await
    }
}

fn ids(items: &[Value]) -> Vec<String> {
    items
        .iter()
        .map(|v| v["id"].as_str().unwrap().to_owned())
        .collect()
}

/// Sorts every array recursively, so two values compare equal iff they hold the same content.
fn unordered(v: &Value) -> Value {
    match v {
        Value::Array(items) => {
            let mut items: Vec<Value> = items.iter().map(unordered).collect();
            items.sort_by_key(|v| v.to_string());
            Value::Array(items)
        }
        Value::Object(map) => {
            Value::Object(map.iter().map(|(k, v)| (k.clone(), unordered(v))).collect())
        }
        other => other.clone(),
    }
}

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
async fn mutations_keep_member_counts_and_memberships_consistent() {
    let sim = sim(SimConfig::default()).await;
    let client = Client::new(&sim);
    let (group, outsider, member) = sim.read(|st| {
        let g = st.groups[0].clone();
        let outsider = st
            .users
            .iter()
            .find(|u| !g.members.contains(&u.id))
            .unwrap()
            .id
            .clone();
        let member = g.members[0].clone();
        (g, outsider, member)
    });
    let member_count = |reply: Reply| {
        reply.json()["data"]["userGroup"]["memberCount"]
            .as_u64()
            .unwrap() as usize
    };
    let group_path = format!("/groups/{}", group.id);

    let d = sim
        .apply(Mutation::AddGroupMember {
            group_id: group.id.clone(),
            user_id: outsider.clone(),
        })
        .unwrap();
    assert!(d.contains(&group.name), "{d}");
    assert_eq!(
        member_count(client.get(&group_path, &[]).await),
        group.members.len() + 1
    );
    assert!(matches!(
        sim.apply(Mutation::AddGroupMember {
            group_id: group.id.clone(),
            user_id: outsider.clone()
        }),
        Err(SimError::Conflict(_))
    ));

    sim.apply(Mutation::RemoveGroupMember {
        group_id: group.id.clone(),
        user_id: outsider.clone(),
    })
    .unwrap();
    assert_eq!(
        member_count(client.get(&group_path, &[]).await),
        group.members.len()
    );

    // Removing a user removes them from every group.
    let groups_of_member: Vec<String> = sim.read(|st| {
        st.groups
            .iter()
            .filter(|g| g.members.contains(&member))
            .map(|g| g.id.clone())
            .collect()
    });
    let d = sim
        .apply(Mutation::RemoveUser {
            user_id: member.clone(),
        })
        .unwrap();
    assert!(d.starts_with("removed user "), "{d}");
    assert_eq!(
        client.get(&format!("/users/{member}"), &[]).await.status,
        StatusCode::NOT_FOUND
    );
    for g in &groups_of_member {
        let members = client.all(&format!("/groups/{g}/users"), "users", 10).await;
        assert!(!ids(&members).contains(&member));
        let count = member_count(client.get(&format!("/groups/{g}"), &[]).await);
        assert_eq!(count, members.len());
    }
    assert_eq!(client.all("/users", "users", 200).await.len(), 39);
    sim.read(|st| assert_eq!(st.check_invariants(), Ok(())));

    assert_eq!(
        sim.apply(Mutation::RemoveUser {
            user_id: member.clone()
        }),
        Err(SimError::NotFound {
            kind: "user",
            id: member.clone()
        })
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn role_key_label_and_invite_mutations() {
    let sim = sim(SimConfig::default()).await;
    let client = Client::new(&sim);
    let (user, source, group) = sim.read(|st| {
        let owner_ids: HashSet<String> = st
            .users_with_workspace_role("Workspace Owner")
            .map(|u| u.id.clone())
            .collect();
        let user = st
            .users
            .iter()
            .find(|u| !owner_ids.contains(&u.id))
            .unwrap()
            .clone();
        let source = st
            .sources
            .iter()
            .find(|s| s.label("environment").is_some())
            .unwrap()
            .clone();
        (user, source, st.groups[1].clone())
    });

    let d = sim
        .apply(Mutation::GrantRole {
            user_id: user.id.clone(),
            role_name: "Workspace Owner".into(),
        })
        .unwrap();
    assert_eq!(d, format!("granted Workspace Owner to {}", user.email));
    let body = client.get(&format!("/users/{}", user.id), &[]).await.json();
    let permissions = body["data"]["user"]["permissions"]
        .as_array()
        .unwrap()
        .clone();
    assert!(permissions.iter().any(|p| p["roleName"] == "Workspace Owner"
        && p["resources"] == json!([{"id": sim.read(|st| st.workspace.id.clone()), "type": "WORKSPACE"}])));
    assert!(matches!(
        sim.apply(Mutation::GrantRole {
            user_id: user.id.clone(),
            role_name: "Workspace Owner".into()
        }),
        Err(SimError::Conflict(_))
    ));
    assert!(matches!(
        sim.apply(Mutation::GrantRole {
            user_id: user.id.clone(),
            role_name: "Janitor".into()
        }),
        Err(SimError::NotFound { kind: "role", .. })
    ));
    sim.apply(Mutation::RevokeRole {
        user_id: user.id.clone(),
        role_name: "Workspace Owner".into(),
    })
    .unwrap();
    assert_eq!(
        sim.read(|st| st.user(&user.id).unwrap().permissions.clone()),
        user.permissions
    );

    let d = sim
        .apply(Mutation::RotateWriteKey {
            source_id: source.id.clone(),
        })
        .unwrap();
    assert!(!d.contains(&source.write_keys[0]));
    let keys = sim.read(|st| st.source(&source.id).unwrap().write_keys.clone());
    assert_ne!(keys[0], source.write_keys[0]);
    assert_eq!(keys[1..], source.write_keys[1..]);
    assert_eq!(keys[0].len(), 32);

    sim.apply(Mutation::SetSourceEnabled {
        source_id: source.id.clone(),
        enabled: !source.enabled,
    })
    .unwrap();
    sim.apply(Mutation::RemoveSourceLabel {
        source_id: source.id.clone(),
        key: "environment".into(),
    })
    .unwrap();
    assert!(matches!(
        sim.apply(Mutation::RemoveSourceLabel {
            source_id: source.id.clone(),
            key: "environment".into()
        }),
        Err(SimError::Conflict(_))
    ));
    let d = sim
        .apply(Mutation::SetSourceLabel {
            source_id: source.id.clone(),
            key: "cost-center".into(),
            value: "cc-42".into(),
        })
        .unwrap();
    assert!(d.contains("cost-center=cc-42"), "{d}");
    let body = client
        .get(&format!("/sources/{}", source.id), &[])
        .await
        .json();
    let s = &body["data"]["source"];
    assert_eq!(s["enabled"], json!(!source.enabled));
    assert!(
        s["labels"]
            .as_array()
            .unwrap()
            .iter()
            .all(|l| l["key"] != "environment")
    );
    assert!(
        s["labels"]
            .as_array()
            .unwrap()
            .contains(&json!({"key": "cost-center", "value": "cc-42"}))
    );
    let labels = client.get("/labels", &[]).await.json();
    assert!(
        labels["data"]["labels"]
            .as_array()
            .unwrap()
            .iter()
            .any(|l| l["key"] == "cost-center")
    );

    // Group invites are workspace invites too; accepting one joins the group.
    let email = "new.hire@acme.io";
    sim.apply(Mutation::Invite {
        email: email.into(),
        group_id: Some(group.id.clone()),
    })
    .unwrap();
    let invites = client.all("/invites", "invites", 50).await;
    assert!(invites.contains(&json!(email)));
    let group_invites = client
        .all(&format!("/groups/{}/invites", group.id), "emails", 50)
        .await;
    assert!(group_invites.contains(&json!(email)));
    let d = sim
        .apply(Mutation::AddUser {
            email: email.into(),
            name: "New Hire".into(),
            role_name: "Minimal Workspace Access".into(),
        })
        .unwrap();
    assert!(d.contains(&group.name), "{d}");
    assert!(
        !client
            .all("/invites", "invites", 50)
            .await
            .contains(&json!(email))
    );
    let new_id = sim.read(|st| st.user_by_email(email).unwrap().id.clone());
    let members = client
        .all(&format!("/groups/{}/users", group.id), "users", 50)
        .await;
    assert!(ids(&members).contains(&new_id));
    assert!(matches!(
        sim.apply(Mutation::AddUser {
            email: email.into(),
            name: String::new(),
            role_name: "Minimal Workspace Access".into()
        }),
        Err(SimError::Conflict(_))
    ));
    assert!(matches!(
        sim.apply(Mutation::Invite {
            email: email.into(),
            group_id: None
        }),
        Err(SimError::Conflict(_))
    ));

    sim.apply(Mutation::Invite {
        email: "temp@gmail.com".into(),
        group_id: Some(group.id.clone()),
    })
    .unwrap();
    sim.apply(Mutation::RevokeInvite {
        email: "temp@gmail.com".into(),
    })
    .unwrap();
    sim.read(|st| {
        assert!(!st.invites.iter().any(|e| e == "temp@gmail.com"));
        assert!(
            st.groups
                .iter()
                .all(|g| !g.invites.iter().any(|e| e == "temp@gmail.com"))
        );
        assert_eq!(st.check_invariants(), Ok(()));
    });
    assert!(matches!(
        sim.apply(Mutation::RevokeInvite {
            email: "temp@gmail.com".into()
        }),
        Err(SimError::NotFound { kind: "invite", .. })
    ));
    assert!(matches!(
        sim.apply(Mutation::Invite {
            email: "not-an-email".into(),
            group_id: None
        }),
        Err(SimError::Invalid(_))
    ));
    sim.shutdown().await;
}

#[tokio::test]
async fn churn_and_random_mutations_keep_invariants() {
    let sim = sim(SimConfig {
        users: 500,
        groups: 20,
        sources: 100,
        invites: 10,
        ..SimConfig::default()
    })
    .await;
    let before = sim.read(Clone::clone);
    let d = sim.apply(Mutation::Churn { percent: 10.0 }).unwrap();
    assert_eq!(d, "churned 10%: changed 50 users, 2 groups, 10 sources");
    sim.read(|st| {
        assert_eq!(st.check_invariants(), Ok(()));
        let changed_users = st
            .users
            .iter()
            .zip(&before.users)
            .filter(|(a, b)| a != b)
            .count();
        let changed_sources = st
            .sources
            .iter()
            .zip(&before.sources)
            .filter(|(a, b)| a != b)
            .count();
        let changed_groups = st
            .groups
            .iter()
            .zip(&before.groups)
            .filter(|(a, b)| a != b)
            .count();
        assert_eq!(
            (changed_users, changed_groups, changed_sources),
            (50, 2, 10)
        );
    });
    for bad in [0.0, -1.0, 101.0, f64::NAN] {
        assert!(matches!(
            sim.apply(Mutation::Churn { percent: bad }),
            Err(SimError::Invalid(_))
        ));
    }

    let mut kinds = HashSet::new();
    for _ in 0..300 {
        let d = sim.random_mutation();
        assert!(!d.is_empty() && !d.starts_with("no mutation"), "{d}");
        kinds.insert(d.split_whitespace().next().unwrap().to_owned());
    }
    for verb in ["granted", "removed", "rotated", "added", "invited"] {
        assert!(kinds.contains(verb), "{verb} missing from {kinds:?}");
    }
    sim.read(|st| {
        assert_eq!(st.check_invariants(), Ok(()));
        assert!(st.users_with_workspace_role("Workspace Owner").count() >= 1);
    });
    sim.shutdown().await;
}

#[tokio::test]
async fn mutations_serialise_with_an_op_tag() {
    let m = Mutation::Invite {
        email: "a@b.io".into(),
        group_id: None,
    };
    assert_eq!(
        serde_json::to_value(&m).unwrap(),
        json!({"op": "invite", "email": "a@b.io", "group_id": null})
    );
    let back: Mutation = serde_json::from_value(json!({"op": "churn", "percent": 1.0})).unwrap();
    assert_eq!(back, Mutation::Churn { percent: 1.0 });
    let back: Mutation =
        serde_json::from_value(json!({"op": "invite", "email": "a@b.io"})).unwrap();
    assert_eq!(back, m);
}

/// Every list the API serves, fully paged, keyed by its envelope key.
#[tokio::test]
async fn a_removed_user_can_come_back_with_the_same_id() {
    let sim = sim(SimConfig::default()).await;
    let gone = sim.read(|st| st.users[3].clone());
    sim.apply(Mutation::RemoveUser {
        user_id: gone.id.clone(),
    })
    .unwrap();
    let back = Mutation::AddExistingUser {
        user_id: gone.id.clone(),
        email: gone.email.clone(),
        name: gone.name.clone(),
        role_name: "Workspace Owner".into(),
    };
    sim.apply(back.clone()).unwrap();
    sim.read(|st| {
        let user = st.user(&gone.id).expect("back under the same id");
        assert_eq!(user.email, gone.email);
        assert!(
            st.users_with_workspace_role("Workspace Owner")
                .any(|u| u.id == gone.id)
        );
        assert_eq!(st.check_invariants(), Ok(()));
    });
    assert!(matches!(sim.apply(back), Err(SimError::Conflict(_))));
    assert!(matches!(
        sim.apply(Mutation::AddExistingUser {
            user_id: gone.id.clone(),
            email: "someone.else@acme.io".into(),
            name: String::new(),
            role_name: "Workspace Owner".into(),
        }),
        Err(SimError::Conflict(_))
    ));
    sim.shutdown().await;
}

async fn snapshot(client: &Client) -> Value {
    let mut all = serde_json::Map::new();
    for (path, key) in [
        ("/users", "users"),
        ("/groups", "userGroups"),
        ("/sources", "sources"),
        ("/roles", "roles"),
        ("/invites", "invites"),
    ] {
        all.insert(
            key.to_owned(),
            Value::Array(client.all(path, key, 200).await),
        );
    }
    let labels = client.get("/labels", &[]).await.json()["data"]["labels"].clone();
    all.insert("labels".into(), labels);
    Value::Object(all)
}

#[tokio::test]
async fn shuffle_reorders_without_changing_content() {
    let sim = sim(SimConfig::default()).await;
    let client = Client::new(&sim);
    let before = snapshot(&client).await;
    let state_before = sim.read(Clone::clone);
    sim.shuffle();
    let after = snapshot(&client).await;
    let state_after = sim.read(Clone::clone);

    assert_eq!(unordered(&before), unordered(&after));
    for key in [
        "users",
        "userGroups",
        "sources",
        "roles",
        "invites",
        "labels",
    ] {
        assert_ne!(before[key], after[key], "{key} kept its order");
    }
    let members_moved = state_before.groups.iter().any(|g| {
        let g2 = state_after.group(&g.id).unwrap();
        g2.members != g.members
    });
    assert!(members_moved);
    for s in &state_before.sources {
        assert_eq!(state_after.source(&s.id).unwrap().write_keys, s.write_keys);
    }
    assert_eq!(state_after.check_invariants(), Ok(()));
    sim.shutdown().await;
}

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

#[tokio::test]
async fn profile_api_pages_with_cursors_and_answers_documented_errors() {
    let sim = sim(SimConfig::default()).await;
    let user = sim.read(|s| s.users[0].clone());
    let summary = sim.profile(&user.id).unwrap();
    let http = reqwest::Client::new();
    let base = format!(
        "{}/v1/spaces/spa_sim/collections/users/profiles",
        sim.base_url()
    );
    let get = |url: String, secret: &'static str| {
        let http = http.clone();
        async move {
            let r = http
                .get(url)
                .basic_auth(secret, Some(""))
                .send()
                .await
                .unwrap();
            let status = r.status();
            (status, r.json::<Value>().await.unwrap())
        }
    };
    let secret = "sim-profiles-secret";

    // Default limit 10; the cursor leads through every event exactly once.
    let mut seen = HashSet::new();
    let mut url = format!("{base}/user_id:{}/events", user.id);
    let mut pages = 0;
    loop {
        let (status, body) = get(url.clone(), secret).await;
        assert_eq!(status, StatusCode::OK);
        pages += 1;
        for e in body["data"].as_array().unwrap() {
            assert!(seen.insert(e["message_id"].as_str().unwrap().to_owned()));
        }
        let cursor = &body["cursor"];
        assert_eq!(cursor["limit"], 10);
        if !cursor["has_more"].as_bool().unwrap() {
            assert_eq!(cursor["next"], "");
            break;
        }
        url = format!("{}{}", sim.base_url(), cursor["url"].as_str().unwrap());
    }
    assert_eq!(seen.len(), summary.events);
    assert_eq!(pages, summary.events.div_ceil(10));

    let (status, body) = get(format!("{base}/email:{}/metadata", user.email), secret).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["segment_id"], summary.segment_id.as_str());

    let (status, body) = get(format!("{base}/user_id:nobody/traits"), secret).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(
        body,
        json!({"error": {"code": "not_found", "message": "Profile was not found."}})
    );

    let (status, body) = get(format!("{base}/user_id:{}/traits", user.id), "wrong").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["error"]["code"], "authentication_error");

    let (status, body) = get(
        format!("{base}/user_id:{}/traits", user.id).replace("spa_sim", "spa_other"),
        secret,
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_ne!(body["error"]["message"], "Profile was not found.");

    let (status, body) = get(format!("{base}/user_id:{}/traits?limit=0", user.id), secret).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"]["code"], "validation_error");

    sim.inject(Fault::new(FaultKind::ServerError { status: 503 }).times(1));
    let (status, body) = get(format!("{base}/user_id:{}/traits", user.id), secret).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(body["error"]["code"].is_string());
}

/// Reads `path` page by page with the simulator's own `next` cursors; returns every item.
async fn read_pages(client: &Client, path: &str, key: &str, count: usize) -> Vec<Value> {
    let mut items = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..1000 {
        let reply = client.page(path, count, cursor.as_deref()).await;
        assert_eq!(reply.status, StatusCode::OK, "{path}");
        let data = reply.json()["data"].clone();
        items.extend(data[key].as_array().unwrap().iter().cloned());
        match &data["pagination"]["next"] {
            Value::String(next) => cursor = Some(next.clone()),
            _ => return items,
        }
    }
    panic!("pagination of {path} does not end");
}

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
