use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use secrecy::SecretString;
use serde_json::Value;

use super::*;
use crate::render::fixtures::{APP_BASE, change_alert, finding};

const SECRET_PATH: &str = "/services/T0000/B0000/XyZsEcReTtOkEn123";

#[derive(Clone)]
struct Receiver {
    bodies: Arc<Mutex<Vec<(Instant, Value)>>>,
    status: StatusCode,
    headers: Vec<(&'static str, &'static str)>,
    reply: &'static str,
}

async fn receive(State(r): State<Receiver>, body: axum::Json<Value>) -> Response {
    r.bodies.lock().unwrap().push((Instant::now(), body.0));
    let mut headers = HeaderMap::new();
    for (k, v) in &r.headers {
        headers.insert(*k, HeaderValue::from_static(v));
    }
    (r.status, headers, r.reply).into_response()
}

/// Starts a receiver on 127.0.0.1:0 answering `status` with `reply`; returns its webhook URL.
async fn start(
    status: StatusCode,
    headers: Vec<(&'static str, &'static str)>,
    reply: &'static str,
) -> (String, Arc<Mutex<Vec<(Instant, Value)>>>) {
    let bodies = Arc::new(Mutex::new(Vec::new()));
    let receiver = Receiver {
        bodies: bodies.clone(),
        status,
        headers,
        reply,
    };
    let app = Router::new()
        .route(SECRET_PATH, post(receive))
        .with_state(receiver);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (
        format!("http://127.0.0.1:{}{SECRET_PATH}", addr.port()),
        bodies,
    )
}

fn sink(url: &str) -> SlackSink {
    SlackSink::new(
        SecretString::from(url.to_owned()),
        Some(APP_BASE.to_owned()),
        Arc::new(Templates::builtin()),
    )
    .unwrap()
}

fn assert_no_secret(e: &SendError) {
    for text in [e.to_string(), format!("{e:?}")] {
        assert!(!text.contains("XyZsEcReTtOkEn123"), "{text}");
        assert!(!text.contains("B0000"), "{text}");
    }
}

#[tokio::test]
async fn delivers_block_kit_messages() {
    let (url, bodies) = start(StatusCode::OK, vec![], "ok").await;
    let sink = sink(&url).with_min_interval(Duration::ZERO);
    let change = change_alert();
    let found = finding();
    sink.send(&Message::Alert(&change)).await.unwrap();
    sink.send(&Message::Alert(&found)).await.unwrap();

    let bodies = bodies.lock().unwrap();
    assert_eq!(bodies.len(), 2);
    let templates = Templates::builtin();
    assert_eq!(
        bodies[0].1,
        templates
            .slack(&Message::Alert(&change), Some(APP_BASE))
            .unwrap()
    );
    let first = &bodies[0].1;
    assert_eq!(
        first["text"],
        "[segwatch][HIGH] Workspace Owner granted: alice@example.com"
    );
    assert_eq!(first["blocks"][0]["type"], "header");
    assert!(
        first["blocks"]
            .to_string()
            .contains("`Read-Only Member` → `Workspace Owner`")
    );
    let second = &bodies[1].1;
    assert_eq!(
        second["blocks"][0]["text"]["text"],
        ":large_yellow_circle: MEDIUM: Source has no environment label"
    );
    assert!(
        second["blocks"]
            .to_string()
            .contains("https://app.segment.com/acme-analytics/sources/src_9f3K2a/overview")
    );
}

#[tokio::test]
async fn too_many_requests_is_retryable_with_retry_after() {
    let (url, _) = start(
        StatusCode::TOO_MANY_REQUESTS,
        vec![("retry-after", "2")],
        "rate_limited",
    )
    .await;
    let err = sink(&url).send(&Message::Test).await.unwrap_err();
    match &err {
        SendError::Retryable {
            message,
            retry_after,
        } => {
            assert_eq!(*retry_after, Some(Duration::from_secs(2)));
            assert!(message.contains("429"), "{message}");
        }
        other => panic!("{other:?}"),
    }
    assert_no_secret(&err);
}

#[tokio::test]
async fn server_errors_are_retryable() {
    let (url, _) = start(StatusCode::BAD_GATEWAY, vec![], "").await;
    let err = sink(&url).send(&Message::Test).await.unwrap_err();
    assert!(
        matches!(
            err,
            SendError::Retryable {
                retry_after: None,
                ..
            }
        ),
        "{err:?}"
    );
    assert_no_secret(&err);
}

#[tokio::test]
async fn payload_too_large_asks_the_outbox_to_split() {
    let (url, _) = start(StatusCode::PAYLOAD_TOO_LARGE, vec![], "too large").await;
    let err = sink(&url).send(&Message::Test).await.unwrap_err();
    match &err {
        SendError::TooLarge { message } => assert!(message.contains("413"), "{message}"),
        other => panic!("{other:?}"),
    }
    assert_no_secret(&err);
}

#[tokio::test]
async fn bad_request_is_permanent_with_slacks_reply() {
    let (url, _) = start(StatusCode::BAD_REQUEST, vec![], "invalid_payload").await;
    let err = sink(&url).send(&Message::Test).await.unwrap_err();
    match &err {
        SendError::Permanent { message } => {
            assert!(message.contains("invalid_payload"), "{message}");
            assert!(message.contains("400"), "{message}");
        }
        other => panic!("{other:?}"),
    }
    assert_no_secret(&err);
}

#[tokio::test]
async fn network_errors_are_retryable_and_hide_the_url() {
    // Bind then drop a listener: nothing listens on the port any more.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let sink = sink(&format!("http://127.0.0.1:{port}{SECRET_PATH}"));
    let err = sink.send(&Message::Test).await.unwrap_err();
    assert!(matches!(err, SendError::Retryable { .. }), "{err:?}");
    assert_no_secret(&err);
    let debug = format!("{sink:?}");
    assert!(!debug.contains("XyZsEcReTtOkEn123"), "{debug}");
}

#[test]
fn bad_urls_are_refused_without_echoing_them() {
    let templates = Arc::new(Templates::builtin());
    for url in [
        "not a url XyZsEcReTtOkEn123",
        "http://hooks.slack.com/services/XyZsEcReTtOkEn123",
    ] {
        let err = SlackSink::new(SecretString::from(url.to_owned()), None, templates.clone())
            .unwrap_err();
        assert!(!err.to_string().contains("XyZsEcReTtOkEn123"), "{err}");
        assert!(!format!("{err:?}").contains("XyZsEcReTtOkEn123"), "{err:?}");
    }
}

#[tokio::test]
async fn posts_are_paced_one_per_second_across_clones() {
    let (url, bodies) = start(StatusCode::OK, vec![], "ok").await;
    let a = sink(&url);
    let b = a.clone();
    let (ra, rb) = tokio::join!(a.send(&Message::Test), b.send(&Message::Test));
    ra.unwrap();
    rb.unwrap();
    let bodies = bodies.lock().unwrap();
    assert_eq!(bodies.len(), 2);
    let gap = bodies[1].0.duration_since(bodies[0].0);
    assert!(gap >= Duration::from_millis(950), "{gap:?}");
}
