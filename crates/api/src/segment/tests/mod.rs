//! Client tests against small loopback axum servers speaking real HTTP.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use axum::Router;
use axum::extract::Request;
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use secrecy::SecretString;
use serde_json::{Value, json};

use super::*;

const TOKEN: &str = "sgp_SUPER_SECRET_token_0123456789";

/// One request as the test server saw it.
#[derive(Debug, Clone)]
struct Hit {
    path: String,
    query: Vec<(String, String)>,
    headers: HeaderMap,
    at: Instant,
}

impl Hit {
    fn param(&self, key: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// What the test server answers.
struct Reply {
    status: u16,
    headers: Vec<(&'static str, String)>,
    body: String,
    delay: Duration,
}

impl Reply {
    fn json(status: u16, body: Value) -> Self {
        Reply {
            status,
            headers: vec![("content-type", "application/json".to_owned())],
            body: body.to_string(),
            delay: Duration::ZERO,
        }
    }
    fn data(data: Value) -> Self {
        Reply::json(200, json!({ "data": data }))
    }
    fn raw(status: u16, body: &str) -> Self {
        Reply {
            status,
            headers: Vec::new(),
            body: body.to_owned(),
            delay: Duration::ZERO,
        }
    }
    fn header(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }
    fn delay(mut self, delay: Duration) -> Self {
        self.delay = delay;
        self
    }
}

struct TestServer {
    base: String,
    hits: Arc<Mutex<Vec<Hit>>>,
}

impl TestServer {
    fn hits(&self) -> Vec<Hit> {
        self.hits.lock().unwrap().clone()
    }
    fn count(&self) -> usize {
        self.hits.lock().unwrap().len()
    }
}

async fn listen(app: Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}")
}

/// A server answering request number `n` (0-based) with `script(n, hit)`.
async fn serve<F>(script: F) -> TestServer
where
    F: Fn(usize, &Hit) -> Reply + Send + Sync + 'static,
{
    let hits = Arc::new(Mutex::new(Vec::new()));
    let script = Arc::new(script);
    let recorded = hits.clone();
    let app = Router::new().fallback(move |req: Request| {
        let hits = recorded.clone();
        let script = script.clone();
        async move {
            let uri = req.uri().clone();
            let query = Url::parse(&format!("http://x{uri}"))
                .unwrap()
                .query_pairs()
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect();
            let hit = Hit {
                path: uri.path().to_owned(),
                query,
                headers: req.headers().clone(),
                at: Instant::now(),
            };
            let n = {
                let mut hits = hits.lock().unwrap();
                hits.push(hit.clone());
                hits.len() - 1
            };
            let reply = script(n, &hit);
            tokio::time::sleep(reply.delay).await;
            let mut response =
                (StatusCode::from_u16(reply.status).unwrap(), reply.body).into_response();
            for (name, value) in reply.headers {
                response.headers_mut().insert(
                    HeaderName::from_static(name),
                    HeaderValue::from_str(&value).unwrap(),
                );
            }
            response
        }
    });
    TestServer {
        base: listen(app).await,
        hits,
    }
}

/// Fast settings so retry tests take milliseconds.
fn config(base: &str) -> ClientConfig {
    let mut config = ClientConfig::new(base, SecretString::from(TOKEN));
    config.request_timeout = Duration::from_secs(5);
    config.backoff_min = Duration::from_millis(1);
    config.backoff_max = Duration::from_millis(10);
    config.max_rate_limit_wait = Duration::from_secs(5);
    config.max_attempts = 4;
    config
}

fn client(base: &str) -> SegmentClient {
    SegmentClient::new(config(base)).unwrap()
}

fn http_date(at: SystemTime) -> String {
    httpdate::fmt_http_date(at)
}

fn assert_no_token(text: &str) {
    assert!(!text.contains(TOKEN), "token leaked: {text}");
    assert!(!text.contains("SUPER_SECRET"), "token leaked: {text}");
}

#[tokio::test]
async fn follows_three_pages_with_bracket_params() {
    let server = serve(|_, hit| match hit.param("pagination[cursor]") {
        None => Reply::data(json!({
            "users": [{"id": "u1"}, {"id": "u2"}],
            "pagination": {"current": "MA==", "next": "Mg==", "totalEntries": 5}
        })),
        Some("Mg==") => Reply::data(json!({
            "users": [{"id": "u3"}, {"id": "u4"}],
            "pagination": {"current": "Mg==", "next": "NA==", "previous": "MA==", "totalEntries": 5}
        })),
        Some("NA==") => Reply::data(json!({
            "users": [{"id": "u5"}],
            "pagination": {"current": "NA==", "next": null, "previous": "Mg==", "totalEntries": 5}
        })),
        Some(other) => Reply::json(400, json!({"errors": [{"type": "Bad", "message": other}]})),
    })
    .await;
    let mut cfg = config(&server.base);
    cfg.page_size = 2;
    let client = SegmentClient::new(cfg).unwrap();

    let mut pages = client.pages_with_query(
        "/users",
        vec![("resourceType".to_owned(), "SOURCE".to_owned())],
        "users",
    );
    let mut ids = Vec::new();
    let mut sizes = Vec::new();
    while let Some(page) = pages.next_page().await.unwrap() {
        sizes.push(page.len());
        ids.extend(page.iter().map(|u| u["id"].as_str().unwrap().to_owned()));
    }
    assert_eq!(ids, ["u1", "u2", "u3", "u4", "u5"]);
    assert_eq!(sizes, [2, 2, 1]);
    assert_eq!(pages.total_entries(), Some(5));
    // Exhausted listings stay exhausted without further requests.
    assert!(pages.next_page().await.unwrap().is_none());

    let hits = server.hits();
    assert_eq!(hits.len(), 3);
    let cursors: Vec<_> = hits.iter().map(|h| h.param("pagination[cursor]")).collect();
    assert_eq!(cursors, [None, Some("Mg=="), Some("NA==")]);
    for hit in &hits {
        assert_eq!(hit.path, "/users");
        assert_eq!(hit.param("pagination[count]"), Some("2"));
        assert_eq!(hit.param("resourceType"), Some("SOURCE"));
        assert_eq!(
            hit.headers["authorization"],
            format!("Bearer {TOKEN}").as_str()
        );
        assert_eq!(hit.headers["accept"], "application/vnd.segment.v1+json");
        assert_eq!(
            hit.headers["user-agent"],
            concat!("segwatch/", env!("CARGO_PKG_VERSION"))
        );
    }
    assert_eq!(client.stats().requests, 3);
    assert_eq!(client.stats().retries, 0);

    // list_all gives the same items.
    let all = client.list_all("/users", "users").await.unwrap();
    assert_eq!(all.len(), 5);
}

#[tokio::test]
async fn unpaginated_list_is_one_page_and_values_are_untouched() {
    let labels = json!([
        {"key": "env", "value": "prod", "description": "Production", "futureField": {"nested": [1, 2.5, null]}},
        {"key": "team", "value": "data"}
    ]);
    let body = labels.clone();
    let server = serve(move |_, _| Reply::data(json!({"labels": body}))).await;
    let client = client(&server.base);
    let items = client.list_all("/labels", "labels").await.unwrap();
    assert_eq!(Value::Array(items), labels);
    assert_eq!(server.count(), 1);
}

#[tokio::test]
async fn get_object_returns_the_keyed_data() {
    let server = serve(|_, hit| {
        assert_eq!(hit.path, "/");
        assert!(hit.query.is_empty());
        Reply::data(
            json!({"workspace": {"id": "w1", "slug": "acme", "name": "Acme", "extra": true}}),
        )
    })
    .await;
    let client = client(&server.base);
    let ws = client.get_object("/", "workspace").await.unwrap();
    assert_eq!(
        ws,
        json!({"id": "w1", "slug": "acme", "name": "Acme", "extra": true})
    );
    let err = client.get_object("/", "nope").await.unwrap_err();
    assert!(matches!(err, SegmentError::Malformed { .. }), "{err}");
    assert!(err.to_string().contains("GET /: "), "{err}");
}

#[tokio::test]
async fn repeated_cursor_is_a_pagination_loop() {
    let server = serve(|_, _| {
        Reply::data(
            json!({"users": [{"id": "u"}], "pagination": {"current": "MA==", "next": "MQ=="}}),
        )
    })
    .await;
    let client = client(&server.base);
    let mut pages = client.pages("/users", "users");
    assert_eq!(pages.next_page().await.unwrap().unwrap().len(), 1);
    let err = pages.next_page().await.unwrap_err();
    assert!(
        matches!(&err, SegmentError::PaginationLoop { path, cursor, .. } if path == "/users" && cursor == "MQ=="),
        "{err:?}"
    );
    let msg = err.to_string();
    assert!(msg.contains("/users") && msg.contains("MQ=="), "{msg}");
    assert_eq!(server.count(), 2);
    // Sticky: no silent end, no more requests.
    assert!(matches!(
        pages.next_page().await,
        Err(SegmentError::PaginationLoop { .. })
    ));
    assert_eq!(server.count(), 2);
    let err = client.list_all("/users", "users").await.unwrap_err();
    assert!(matches!(err, SegmentError::PaginationLoop { .. }));
}

#[tokio::test]
async fn endless_new_cursors_hit_max_pages() {
    let server = serve(|n, _| {
        Reply::data(json!({"users": [], "pagination": {"current": "x", "next": format!("c{n}")}}))
    })
    .await;
    let mut cfg = config(&server.base);
    cfg.max_pages = 3;
    let client = SegmentClient::new(cfg).unwrap();
    let err = client.list_all("/users", "users").await.unwrap_err();
    assert!(
        matches!(&err, SegmentError::TooManyPages { path, max_pages: 3 } if path == "/users"),
        "{err:?}"
    );
    assert_eq!(server.count(), 3);
}

#[tokio::test]
async fn rate_limit_waits_for_ms_before_next() {
    let server = serve(|n, _| {
        if n == 0 {
            Reply::json(
                429,
                json!({"errors": [{"type": "RequestError", "message": "Too many requests",
                    "data": {"remainingPoints": 0, "msBeforeNext": 300, "consumedPoints": 21}}]}),
            )
        } else {
            Reply::data(json!({"workspace": {"id": "w1"}}))
        }
    })
    .await;
    let client = client(&server.base);
    let started = Instant::now();
    client.get_object("/", "workspace").await.unwrap();
    assert!(started.elapsed() >= Duration::from_millis(300));
    let hits = server.hits();
    assert!(hits[1].at - hits[0].at >= Duration::from_millis(300));
    assert_eq!(
        client.stats(),
        ClientStats {
            requests: 2,
            retries: 1,
            rate_limited: 1
        }
    );
}

#[tokio::test]
async fn rate_limit_waits_until_reset_header() {
    let server = serve(|n, _| {
        if n == 0 {
            let now = SystemTime::now();
            Reply::json(
                429,
                json!({"errors": [{"type": "RateLimited", "message": "Rate limit exceeded"}]}),
            )
            .header("date", http_date(now))
            .header("x-ratelimit-remaining", "0")
            .header("x-ratelimit-reset", http_date(now + Duration::from_secs(1)))
        } else {
            Reply::data(json!({"workspace": {}}))
        }
    })
    .await;
    let client = client(&server.base);
    client.get_object("/", "workspace").await.unwrap();
    let hits = server.hits();
    let gap = hits[1].at - hits[0].at;
    assert!(gap >= Duration::from_millis(950), "{gap:?}");
    assert!(gap < Duration::from_secs(4), "{gap:?}");
    assert_eq!(client.stats().rate_limited, 1);
}

#[tokio::test]
async fn rate_limit_waits_are_capped_and_honour_retry_after() {
    let server = serve(|n, _| match n {
        0 => Reply::json(
            429,
            json!({"errors": [{"type": "RequestError",
            "data": {"msBeforeNext": 600_000}}]}),
        ),
        1 => Reply::raw(429, "").header("retry-after", "3600"),
        _ => Reply::data(json!({"workspace": {}})),
    })
    .await;
    let mut cfg = config(&server.base);
    cfg.max_rate_limit_wait = Duration::from_millis(200);
    let client = SegmentClient::new(cfg).unwrap();
    let started = Instant::now();
    client.get_object("/", "workspace").await.unwrap();
    let took = started.elapsed();
    assert!(took >= Duration::from_millis(400), "{took:?}");
    assert!(took < Duration::from_secs(3), "{took:?}");
    assert_eq!(client.stats().rate_limited, 2);
}

#[tokio::test]
async fn rate_limited_until_attempts_run_out() {
    let server = serve(|_, _| {
        Reply::json(
            429,
            json!({"errors": [{"type": "RateLimited", "message": "Rate limit exceeded",
            "data": {"msBeforeNext": 1}}]}),
        )
    })
    .await;
    let client = client(&server.base);
    let err = client.list_all("/sources", "sources").await.unwrap_err();
    assert!(
        matches!(
            err,
            SegmentError::RateLimited {
                times: 4,
                attempts: 4,
                ..
            }
        ),
        "{err:?}"
    );
    let msg = err.to_string();
    assert!(
        msg.contains("GET /sources")
            && msg.contains("rate limited (HTTP 429) 4 times in 4 attempts"),
        "{msg}"
    );
    assert!(msg.contains("Rate limit exceeded"), "{msg}");
    assert_eq!(server.count(), 4);
    assert_eq!(client.stats().rate_limited, 4);
    assert_eq!(client.stats().retries, 3);
}

#[tokio::test]
async fn remaining_zero_paces_other_tasks() {
    let server = serve(|n, _| {
        let now = SystemTime::now();
        let reply = Reply::data(json!({"workspace": {"n": n}}));
        if n == 0 {
            reply
                .header("date", http_date(now))
                .header("x-ratelimit-remaining", "0")
                .header("x-ratelimit-reset", http_date(now + Duration::from_secs(1)))
        } else {
            reply.header("x-ratelimit-remaining", "99")
        }
    })
    .await;
    let client = client(&server.base);
    client.get_object("/", "workspace").await.unwrap();
    // Another task sharing (a clone of) the client must wait for the reset.
    let other = client.clone();
    tokio::spawn(async move { other.get_object("/users/u1", "workspace").await })
        .await
        .unwrap()
        .unwrap();
    let hits = server.hits();
    let gap = hits[1].at - hits[0].at;
    assert!(gap >= Duration::from_millis(950), "{gap:?}");
    assert_eq!(client.stats().retries, 0);
    assert_eq!(client.stats().rate_limited, 0);
}

#[tokio::test]
async fn server_errors_are_retried() {
    let server = serve(|n, _| {
        if n < 2 {
            Reply::json(500, json!({"errors": [{"type": "InternalError"}]}))
        } else {
            Reply::data(json!({"workspace": {"id": "w1"}}))
        }
    })
    .await;
    let client = client(&server.base);
    let ws = client.get_object("/", "workspace").await.unwrap();
    assert_eq!(ws["id"], "w1");
    assert_eq!(
        client.stats(),
        ClientStats {
            requests: 3,
            retries: 2,
            rate_limited: 0
        }
    );
}

#[tokio::test]
async fn persistent_server_errors_stop_after_max_attempts() {
    let server = serve(|_, _| Reply::raw(503, "<html>upstream unavailable</html>")).await;
    let client = client(&server.base);
    let err = client.get_object("/roles", "roles").await.unwrap_err();
    assert_eq!(server.count(), 4);
    assert!(
        matches!(&err, SegmentError::RetriesExhausted { attempts: 4, .. }),
        "{err:?}"
    );
    let msg = err.to_string();
    assert!(msg.contains("GET /roles"), "{msg}");
    assert!(msg.contains("4 attempts"), "{msg}");
    assert!(
        msg.contains("HTTP 503") && msg.contains("upstream unavailable"),
        "{msg}"
    );
}

#[tokio::test]
async fn timeouts_are_retried() {
    let server = serve(|n, _| {
        let reply = Reply::data(json!({"workspace": {"id": "w1"}}));
        if n == 0 {
            reply.delay(Duration::from_secs(2))
        } else {
            reply
        }
    })
    .await;
    let mut cfg = config(&server.base);
    cfg.request_timeout = Duration::from_millis(200);
    let client = SegmentClient::new(cfg).unwrap();
    client.get_object("/", "workspace").await.unwrap();
    assert_eq!(server.count(), 2);
    assert_eq!(client.stats().retries, 1);

    let slow = serve(|_, _| Reply::data(json!({})).delay(Duration::from_secs(2))).await;
    let mut cfg = config(&slow.base);
    cfg.request_timeout = Duration::from_millis(100);
    cfg.max_attempts = 2;
    let client = SegmentClient::new(cfg).unwrap();
    let err = client.get_object("/", "workspace").await.unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("2 attempts") && msg.contains("timed out"),
        "{msg}"
    );
}

#[tokio::test]
async fn connection_resets_and_refusals_are_retried() {
    // A listener that accepts and immediately closes every connection.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let accepted = Arc::new(AtomicUsize::new(0));
    let counter = accepted.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            counter.fetch_add(1, Ordering::SeqCst);
            drop(stream);
        }
    });
    let client = client(&format!("http://{addr}"));
    let err = client.get_object("/", "workspace").await.unwrap_err();
    assert!(
        matches!(&err, SegmentError::RetriesExhausted { attempts: 4, .. }),
        "{err:?}"
    );
    assert_eq!(accepted.load(Ordering::SeqCst), 4);

    // Nothing listening at all.
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = closed.local_addr().unwrap();
    drop(closed);
    let client = SegmentClient::new(config(&format!("http://{addr}"))).unwrap();
    let err = client.get_object("/", "workspace").await.unwrap_err();
    assert!(
        matches!(&err, SegmentError::RetriesExhausted { attempts: 4, .. }),
        "{err:?}"
    );
    assert_eq!(client.stats().requests, 4);
    assert_no_token(&err.to_string());
}

#[tokio::test]
async fn unauthorized_fails_at_once_with_workspace_owner_hint() {
    for status in [401, 403] {
        let server = serve(move |_, _| {
            Reply::json(
                status,
                json!({"errors": [{"type": "Unauthorized", "message": "Invalid token"}]}),
            )
        })
        .await;
        let client = client(&server.base);
        let err = client.list_all("/users", "users").await.unwrap_err();
        assert_eq!(server.count(), 1);
        assert_eq!(err.status(), Some(status));
        let msg = err.to_string();
        assert!(msg.contains("Workspace Owner"), "{msg}");
        assert!(msg.contains("invalid or expired"), "{msg}");
        assert!(msg.contains(&format!("HTTP {status}")), "{msg}");
        assert!(msg.contains("GET /users"), "{msg}");
        assert!(msg.contains("Invalid token"), "{msg}");
        assert_eq!(client.stats().retries, 0);
    }
}

#[tokio::test]
async fn other_client_errors_show_type_and_message() {
    let server = serve(|_, hit| {
        if hit.path == "/users" {
            Reply::json(422, json!({"errors": [{"type": "ValidationFailure", "message": "pagination is required"}]}))
        } else {
            Reply::json(404, json!({"errors": [{"type": "NotFound", "message": "Resource not found"}]}))
        }
    })
    .await;
    let client = client(&server.base);
    let err = client.get_object("/users/u1", "user").await.unwrap_err();
    assert_eq!(
        err.to_string(),
        "GET /users/u1: HTTP 404 NotFound: Resource not found"
    );
    assert!(err.is_not_found());
    let err = client.list_all("/users", "users").await.unwrap_err();
    assert_eq!(
        err.to_string(),
        "GET /users: HTTP 422 ValidationFailure: pagination is required"
    );
    assert!(matches!(
        &err,
        SegmentError::Api { status: 422, server, .. } if server.errors[0].error_type == "ValidationFailure"
    ));
    assert_eq!(server.count(), 2);
}

#[tokio::test]
async fn malformed_bodies_are_reported_with_path_and_position() {
    let server = serve(|_, hit| match hit.path.as_str() {
        "/bad-json" => Reply::raw(200, "{\"data\": {\"users\": [1, 2,"),
        "/html" => Reply::raw(200, "<html>hello</html>"),
        "/no-data" => Reply::json(200, json!({"result": []})),
        "/not-array" => Reply::data(json!({"users": {"u1": {}}})),
        "/bad-next" => Reply::data(json!({"users": [], "pagination": {"current": "a", "next": 7}})),
        _ => Reply::data(json!({"something": []})),
    })
    .await;
    let client = client(&server.base);

    let err = client.list_all("/bad-json", "users").await.unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, SegmentError::Malformed { .. }), "{err:?}");
    assert!(
        msg.starts_with("GET /bad-json: malformed response"),
        "{msg}"
    );
    assert!(msg.contains("line 1 column"), "{msg}");
    // One retry (a proxy may have truncated it), then give up.
    assert_eq!(server.count(), 2);

    let msg = client
        .get_object("/html", "x")
        .await
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("GET /html") && msg.contains("not valid JSON"),
        "{msg}"
    );

    let msg = client
        .get_object("/no-data", "x")
        .await
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("GET /no-data") && msg.contains("no `data`"),
        "{msg}"
    );

    let msg = client
        .list_all("/not-array", "users")
        .await
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("GET /not-array") && msg.contains("`data.users` is an object"),
        "{msg}"
    );

    let msg = client
        .list_all("/missing", "users")
        .await
        .unwrap_err()
        .to_string();
    assert!(msg.contains("`data.users` is missing"), "{msg}");

    let msg = client
        .list_all("/bad-next", "users")
        .await
        .unwrap_err()
        .to_string();
    assert!(msg.contains("`data.pagination.next` is a number"), "{msg}");
}

#[test]
fn client_and_futures_can_cross_tasks() {
    fn send_sync<T: Send + Sync>(_: &T) {}
    fn send<T: Send>(_: &T) {}
    let client = SegmentClient::new(ClientConfig::new(
        "https://api.segmentapis.com",
        SecretString::from(TOKEN),
    ))
    .unwrap();
    send_sync(&client);
    let mut pages = client.pages("/users", "users");
    send(&pages.next_page());
    send(&client.list_all("/users", "users"));
    send(&client.get_object("/", "workspace"));
}

#[tokio::test]
async fn token_never_appears_in_debug_or_errors() {
    // A hostile or buggy server that echoes the Authorization header back.
    let server = serve(|n, hit| {
        let auth = hit.headers["authorization"].to_str().unwrap().to_owned();
        match n % 3 {
            0 => Reply::json(
                401,
                json!({"errors": [{"type": "Unauthorized", "message": format!("bad {auth}"),
                    "data": {"echo": [auth]}}]}),
            ),
            1 => Reply::raw(404, &format!("no such thing for {auth}")),
            _ => Reply::raw(500, &format!("oops {auth}")),
        }
    })
    .await;
    let mut cfg = config(&server.base);
    cfg.max_attempts = 1;
    let client = SegmentClient::new(cfg.clone()).unwrap();
    assert_no_token(&format!("{client:?}"));
    assert_no_token(&format!("{cfg:?}"));

    let mut errors = Vec::new();
    for _ in 0..3 {
        errors.push(client.get_object("/", "workspace").await.unwrap_err());
    }
    let mut pages = client.pages("/users", "users");
    assert_no_token(&format!("{pages:?}"));
    errors.push(pages.next_page().await.unwrap_err());
    errors.push(
        SegmentClient::new(ClientConfig::new(
            "http://example.com",
            SecretString::from(TOKEN),
        ))
        .unwrap_err(),
    );
    errors.push(
        SegmentClient::new(ClientConfig::new(
            "https://api.segmentapis.com",
            SecretString::from(format!("{TOKEN}\u{7f}bad")),
        ))
        .unwrap_err(),
    );
    for err in &errors {
        assert_no_token(&err.to_string());
        assert_no_token(&format!("{err:?}"));
    }
    assert!(
        errors[0].to_string().contains("[REDACTED]"),
        "{}",
        errors[0]
    );
}

#[tokio::test]
async fn concurrency_limit_is_respected() {
    let in_flight = Arc::new(AtomicUsize::new(0));
    let max_seen = Arc::new(AtomicUsize::new(0));
    let (now, max) = (in_flight.clone(), max_seen.clone());
    let app = Router::new().fallback(move || {
        let (now, max) = (now.clone(), max.clone());
        async move {
            let current = now.fetch_add(1, Ordering::SeqCst) + 1;
            max.fetch_max(current, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(100)).await;
            now.fetch_sub(1, Ordering::SeqCst);
            Response::new(axum::body::Body::from(r#"{"data":{"user":{}}}"#))
        }
    });
    let base = listen(app).await;
    let mut cfg = config(&base);
    cfg.concurrency = 3;
    let client = SegmentClient::new(cfg).unwrap();
    let tasks: Vec<_> = (0..12)
        .map(|i| {
            let client = client.clone();
            tokio::spawn(async move { client.get_object(&format!("/users/u{i}"), "user").await })
        })
        .collect();
    for task in tasks {
        task.await.unwrap().unwrap();
    }
    assert_eq!(max_seen.load(Ordering::SeqCst), 3);
    assert_eq!(client.stats().requests, 12);
}

#[test]
fn config_is_validated() {
    let token = || SecretString::from(TOKEN);
    let ok = |url: &str| SegmentClient::new(ClientConfig::new(url, token())).is_ok();
    assert!(ok("https://api.segmentapis.com"));
    assert!(ok("https://eu1.api.segmentapis.com/"));
    assert!(ok("http://127.0.0.1:8080"));
    assert!(ok("http://localhost:8080"));
    assert!(ok("http://[::1]:8080"));
    assert!(!ok("http://api.segmentapis.com"));
    assert!(!ok("ftp://api.segmentapis.com"));
    assert!(!ok("https://user:pw@api.segmentapis.com"));
    assert!(!ok("not a url"));

    let with = |edit: fn(&mut ClientConfig)| {
        let mut cfg = ClientConfig::new("https://api.segmentapis.com", token());
        edit(&mut cfg);
        SegmentClient::new(cfg)
    };
    assert!(with(|c| c.page_size = 201).is_err());
    assert!(with(|c| c.page_size = 0).is_err());
    assert!(with(|c| c.concurrency = 0).is_err());
    assert!(with(|c| c.max_attempts = 0).is_err());
    assert!(with(|c| c.max_pages = 0).is_err());
    assert!(with(|c| c.token = SecretString::from("  \n")).is_err());
    assert!(with(|c| c.backoff_min = Duration::from_secs(60)).is_err());
}

#[tokio::test]
async fn token_is_trimmed_and_base_path_kept() {
    let server = serve(|_, hit| {
        assert_eq!(hit.path, "/prefix/users");
        Reply::data(json!({"users": []}))
    })
    .await;
    let mut cfg = config(&format!("{}/prefix/", server.base));
    cfg.token = SecretString::from(format!("  {TOKEN}\n"));
    let client = SegmentClient::new(cfg).unwrap();
    client.list_all("/users", "users").await.unwrap();
    assert_eq!(
        server.hits()[0].headers["authorization"],
        format!("Bearer {TOKEN}").as_str()
    );
}

#[tokio::test]
async fn a_regulation_post_is_retried_after_429_but_not_after_a_server_error() {
    let server = serve(|n, _| match n {
        0 => Reply::json(429, json!({"errors": [{"type": "RateLimited"}]})),
        _ => Reply::data(json!({"regulateId": "reg-1"})),
    })
    .await;
    let first = client(&server.base);
    let id = first
        .create_regulation(RegulationType::DeleteOnly, &["u1".to_owned()])
        .await
        .unwrap();
    assert_eq!(id, "reg-1");
    assert_eq!(server.count(), 2);
    assert_eq!(server.hits()[1].path, "/regulations");

    // A 5xx may come after Segment acted: one attempt, and the error says why.
    let server = serve(|_, _| Reply::json(503, json!({"errors": [{"type": "Unavailable"}]}))).await;
    let second = client(&server.base);
    let err = second
        .create_regulation(RegulationType::DeleteOnly, &["u1".to_owned()])
        .await
        .unwrap_err();
    assert_eq!(server.count(), 1);
    assert!(err.to_string().contains("not sent again"), "{err}");

    // A timeout likewise.
    let server = serve(|_, _| Reply::data(json!({})).delay(Duration::from_secs(3))).await;
    let mut cfg = config(&server.base);
    cfg.request_timeout = Duration::from_millis(200);
    let third = SegmentClient::new(cfg).unwrap();
    let err = third
        .create_regulation(RegulationType::DeleteOnly, &["u1".to_owned()])
        .await
        .unwrap_err();
    assert_eq!(server.count(), 1);
    assert!(err.to_string().contains("not sent again"), "{err}");
}

#[tokio::test]
async fn a_regulation_post_is_retried_when_the_connection_was_refused() {
    // Nothing listens on the port: the request never left, so another attempt is safe.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    let client = client(&base);
    let err = client
        .create_regulation(RegulationType::DeleteOnly, &["u1".to_owned()])
        .await
        .unwrap_err();
    assert!(
        matches!(err, SegmentError::RetriesExhausted { attempts: 4, .. }),
        "{err:?}"
    );
}

#[tokio::test]
async fn a_regulation_is_read_with_its_destination_statuses() {
    let server = serve(|_, _| {
        Reply::data(json!({"regulation": {
            "id": "reg/1", "workspaceId": "w", "overallStatus": "RUNNING",
            "createdAt": "2026-01-01T00:00:00Z",
            "streamStatus": [{"id": "s1", "destinationStatus": [
                {"name": "Amplitude", "id": "d1", "status": "FINISHED", "errString": "", "finishedAt": "2026-01-01T00:01:00Z"}
            ]}]
        }}))
    })
    .await;
    let client = client(&server.base);
    let regulation = client.get_regulation("reg/1").await.unwrap();
    assert_eq!(server.hits()[0].path, "/regulations/reg%2F1");
    assert_eq!(regulation.overall_status, "RUNNING");
    assert!(!regulation.is_final());
    let destination = &regulation.stream_status[0].destination_status[0];
    assert_eq!(destination.name.as_deref(), Some("Amplitude"));
    assert_eq!(destination.status.as_deref(), Some("FINISHED"));
}

// ----- bounded reads: body size limit and the whole-exchange deadline -----

/// A client whose bodies may have at most `limit` bytes.
fn limited_client(base: &str, limit: u64) -> SegmentClient {
    let mut config = config(base);
    config.max_response_bytes = limit;
    SegmentClient::new(config).unwrap()
}

#[tokio::test]
async fn a_body_announced_larger_than_the_limit_fails_unread_and_unretried() {
    let big = "x".repeat(5000);
    let server = serve(move |_, _| Reply::data(json!({ "workspace": { "name": big } }))).await;
    let err = limited_client(&server.base, 4096)
        .get_object("/", "workspace")
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            SegmentError::ResponseTooLarge { limit: 4096, declared: Some(n), .. } if n > 5000
        ),
        "{err:?}"
    );
    let message = err.to_string();
    assert!(
        message.starts_with("GET /: ")
            && message.contains("4 KiB (4096 bytes)")
            && message.contains("max_response_bytes"),
        "{message}"
    );
    assert_eq!(server.count(), 1, "the same endpoint would send the same");
    // Under the limit, the same answer is read.
    assert!(
        limited_client(&server.base, 8192)
            .get_object("/", "workspace")
            .await
            .is_ok()
    );
}

#[tokio::test]
async fn an_endless_body_is_cut_at_the_limit_and_not_retried() {
    let hits = Arc::new(AtomicUsize::new(0));
    let counted = hits.clone();
    let app = Router::new().fallback(move || {
        counted.fetch_add(1, Ordering::SeqCst);
        async { segwatch_simulator::endless_body() }
    });
    let base = listen(app).await;
    let limit = 1024 * 1024;
    let err = limited_client(&base, limit)
        .list_all("/users", "users")
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            SegmentError::ResponseTooLarge { ref path, limit: 1048576, declared: None, .. }
                if path == "/users"
        ),
        "{err:?}"
    );
    assert!(err.to_string().contains("1 MiB (1048576 bytes)"), "{err}");
    assert_eq!(hits.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_trickling_body_cannot_stretch_the_request_timeout() {
    // reqwest's `timeout` runs from connect to the body's last byte; this proves it for the
    // version in use. The body is valid and would take 20 s; the timeout is 1 s.
    let server =
        serve(|_, _| Reply::data(json!({ "workspace": { "name": "w".repeat(200) } }))).await;
    let app = Router::new().fallback(move || {
        let base = server.base.clone();
        async move {
            let upstream = reqwest::get(format!("{base}/")).await.unwrap();
            let body = axum::body::Body::from(upstream.bytes().await.unwrap());
            let response = Response::builder().status(200).body(body).unwrap();
            segwatch_simulator::trickle(response, 100).await
        }
    });
    let base = listen(app).await;
    let mut config = config(&base);
    config.request_timeout = Duration::from_secs(1);
    config.max_attempts = 2;
    let started = Instant::now();
    let err = SegmentClient::new(config)
        .unwrap()
        .get_object("/", "workspace")
        .await
        .unwrap_err();
    let elapsed = started.elapsed();
    assert!(
        matches!(&err, SegmentError::RetriesExhausted { attempts: 2, last, .. } if last.contains("timed out after 1s")),
        "{err:?}"
    );
    // Two attempts of 1 s and a short backoff; the trickle alone would take 20 s per attempt.
    assert!(elapsed < Duration::from_secs(6), "{elapsed:?}");
}

#[tokio::test]
async fn a_lone_surrogate_in_one_name_is_replaced_not_fatal() {
    // One source name carries an unpaired high surrogate; its neighbour a valid pair and an
    // escaped backslash followed by `ud800`, which is text.
    let server = serve(|_, _| {
        Reply::raw(
            200,
            r#"{"data":{"sources":[{"id":"s1","name":"Bad \ud800 name"},{"id":"s2","name":"\ud83d\ude00 \\ud800"}]}}"#,
        )
    })
    .await;
    let sources = client(&server.base)
        .list_all("/sources", "sources")
        .await
        .unwrap();
    assert_eq!(
        Value::Array(sources),
        json!([
            {"id": "s1", "name": "Bad \u{fffd} name"},
            {"id": "s2", "name": "\u{1f600} \\ud800"},
        ])
    );
}
