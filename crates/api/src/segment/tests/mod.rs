//! Client tests against small loopback axum servers speaking real HTTP: the scripted server
//! and helpers they share, and the tests by topic.

mod bounded_reads;
mod client;
mod failures;
mod pagination;
mod regulation_requests;
mod retries;

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
