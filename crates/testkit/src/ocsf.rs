//! A stand-in for a Splunk HTTP Event Collector (`POST /services/collector/event`): it checks
//! `Authorization: Splunk <token>`, reads the body as concatenated JSON event objects as HEC
//! does, answers as HEC answers (401 no token, 403 wrong token, 400 `Invalid data format`,
//! 413 too large, 503 busy with `Retry-After`), and records the events it accepted.
//!
//! It also takes newline-delimited JSON at `POST /ndjson` (an OCSF sink's plain format), with
//! `Authorization: Bearer <token>`, recording each line as `{"event": line}`.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;

/// The token the stand-in accepts.
pub const HEC_TOKEN: &str = "hec-test-0b6e7d2c";

/// A Splunk HEC stand-in on loopback.
pub struct HecReceiver {
    /// The collector's URL (`…/services/collector/event`).
    pub url: String,
    /// The plain collector's URL (`…/ndjson`): one JSON object per line, bearer token.
    pub ndjson_url: String,
    /// The HEC envelopes it accepted, in order.
    pub accepted: Arc<Mutex<Vec<serde_json::Value>>>,
    /// Every request: the status it answered and the body's size in bytes.
    pub requests: Arc<Mutex<Vec<(u16, usize)>>>,
    /// The next this many requests are answered 503 "server is busy" with `Retry-After: 1`.
    pub busy: Arc<AtomicUsize>,
    /// Largest body it takes, in bytes; bigger ones get 413 (0 = any size).
    pub max_body: Arc<AtomicUsize>,
}

impl HecReceiver {
    /// Starts on a loopback port.
    pub async fn start() -> HecReceiver {
        let accepted = Arc::new(Mutex::new(Vec::new()));
        let requests = Arc::new(Mutex::new(Vec::new()));
        let busy = Arc::new(AtomicUsize::new(0));
        let max_body = Arc::new(AtomicUsize::new(0));
        let (a, r, b, m) = (
            accepted.clone(),
            requests.clone(),
            busy.clone(),
            max_body.clone(),
        );
        let (na, nr) = (accepted.clone(), requests.clone());
        let app = axum::Router::new()
            .route(
                "/ndjson",
                axum::routing::post(move |headers: HeaderMap, body: Bytes| {
                    let (a, r) = (na.clone(), nr.clone());
                    async move {
                        let status = ndjson(&headers, &body, &a);
                        r.lock().unwrap().push((status.as_u16(), body.len()));
                        status
                    }
                }),
            )
            .route(
                "/services/collector/event",
                axum::routing::post(move |headers: HeaderMap, body: Bytes| {
                    let (a, r, b, m) = (a.clone(), r.clone(), b.clone(), m.clone());
                    async move {
                        let (status, text) = answer(&headers, &body, &a, &b, &m);
                        r.lock().unwrap().push((status.as_u16(), body.len()));
                        let mut response = (
                            status,
                            [("content-type", "application/json")],
                            text.to_owned(),
                        )
                            .into_response();
                        if status == StatusCode::SERVICE_UNAVAILABLE {
                            response
                                .headers_mut()
                                .insert("retry-after", "1".parse().unwrap());
                        }
                        response
                    }
                }),
            )
            .layer(axum::extract::DefaultBodyLimit::disable());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let url = format!("http://{addr}/services/collector/event");
        let ndjson_url = format!("http://{addr}/ndjson");
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        HecReceiver {
            url,
            ndjson_url,
            accepted,
            requests,
            busy,
            max_body,
        }
    }

    /// The OCSF events (the envelopes' `event`) it accepted, in order.
    pub fn events(&self) -> Vec<serde_json::Value> {
        self.accepted
            .lock()
            .unwrap()
            .iter()
            .map(|e| e["event"].clone())
            .collect()
    }
}

fn answer(
    headers: &HeaderMap,
    body: &[u8],
    accepted: &Mutex<Vec<serde_json::Value>>,
    busy: &AtomicUsize,
    max_body: &AtomicUsize,
) -> (StatusCode, &'static str) {
    let auth = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if auth.is_empty() {
        return (
            StatusCode::UNAUTHORIZED,
            r#"{"text":"Token is required","code":2}"#,
        );
    }
    if auth != format!("Splunk {HEC_TOKEN}") {
        return (
            StatusCode::FORBIDDEN,
            r#"{"text":"Invalid token","code":4}"#,
        );
    }
    if busy
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok()
    {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            r#"{"text":"Server is busy","code":9}"#,
        );
    }
    let max = max_body.load(Ordering::SeqCst);
    if max > 0 && body.len() > max {
        return (
            StatusCode::PAYLOAD_TOO_LARGE,
            r#"{"text":"Content too large","code":27}"#,
        );
    }
    let mut events = Vec::new();
    for value in serde_json::Deserializer::from_slice(body).into_iter::<serde_json::Value>() {
        match value {
            Ok(v) if v.get("event").is_some_and(|e| !e.is_null()) => events.push(v),
            _ => {
                return (
                    StatusCode::BAD_REQUEST,
                    r#"{"text":"Invalid data format","code":6}"#,
                );
            }
        }
    }
    if events.is_empty() {
        return (StatusCode::BAD_REQUEST, r#"{"text":"No data","code":5}"#);
    }
    accepted.lock().unwrap().extend(events);
    (StatusCode::OK, r#"{"text":"Success","code":0}"#)
}

fn ndjson(
    headers: &HeaderMap,
    body: &[u8],
    accepted: &Mutex<Vec<serde_json::Value>>,
) -> StatusCode {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned()
    };
    if header("authorization") != format!("Bearer {HEC_TOKEN}") {
        return StatusCode::UNAUTHORIZED;
    }
    if header("content-type") != "application/x-ndjson" {
        return StatusCode::UNSUPPORTED_MEDIA_TYPE;
    }
    let Ok(text) = std::str::from_utf8(body) else {
        return StatusCode::BAD_REQUEST;
    };
    let mut events = Vec::new();
    for line in text.lines() {
        match serde_json::from_str::<serde_json::Value>(line) {
            Ok(v) if v.is_object() => events.push(serde_json::json!({ "event": v })),
            _ => return StatusCode::BAD_REQUEST,
        }
    }
    if events.is_empty() || !text.ends_with('\n') {
        return StatusCode::BAD_REQUEST;
    }
    accepted.lock().unwrap().extend(events);
    StatusCode::OK
}
