use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use secrecy::SecretString;
use serde_json::Value;

use super::*;
use crate::render::fixtures::{APP_BASE, change_alert, finding};
use segwatch_core::alerts::AlertRecord;
use segwatch_core::ids::{AlertId, SnapshotId};

const SECRET_PATH: &str = "/workflows/0a1b2c3d4e5f/triggers/manual/paths/invoke";
const SIG: &str = "SiGnAtUrEsEcReT987";

/// What the receiver got: when, the body, its `Content-Type`.
type Bodies = Arc<Mutex<Vec<(Instant, Value, Option<String>)>>>;

#[derive(Clone)]
struct Receiver {
    bodies: Bodies,
    status: StatusCode,
    headers: Vec<(&'static str, &'static str)>,
    reply: &'static str,
}

async fn receive(State(r): State<Receiver>, headers: HeaderMap, body: Bytes) -> Response {
    let content_type = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    r.bodies.lock().unwrap().push((
        Instant::now(),
        serde_json::from_slice(&body).unwrap(),
        content_type,
    ));
    let mut out = HeaderMap::new();
    for (k, v) in &r.headers {
        out.insert(*k, HeaderValue::from_static(v));
    }
    (r.status, out, r.reply).into_response()
}

/// Starts a receiver on 127.0.0.1:0 answering `status` with `reply`; returns its webhook URL.
async fn start(
    status: StatusCode,
    headers: Vec<(&'static str, &'static str)>,
    reply: &'static str,
) -> (String, Bodies) {
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
        format!(
            "http://127.0.0.1:{}{SECRET_PATH}?api-version=2016-06-01&sp=%2Ftriggers%2Fmanual%2Frun&sv=1.0&sig={SIG}",
            addr.port()
        ),
        bodies,
    )
}

fn sink(url: &str) -> TeamsSink {
    TeamsSink::new(
        SecretString::from(url.to_owned()),
        Some(APP_BASE.to_owned()),
        Arc::new(Templates::builtin()),
    )
    .unwrap()
    .with_min_interval(Duration::ZERO)
}

fn assert_no_secret(e: &SendError) {
    for text in [e.to_string(), format!("{e:?}")] {
        assert!(!text.contains(SIG), "{text}");
        assert!(!text.contains("0a1b2c3d4e5f"), "{text}");
    }
}

#[tokio::test]
async fn delivers_adaptive_cards_in_the_message_envelope() {
    let (url, bodies) = start(StatusCode::ACCEPTED, vec![], "").await;
    let sink = sink(&url);
    let change = change_alert();
    let found = finding();
    sink.send(&Message::Alert(&change)).await.unwrap();
    sink.send(&Message::Alert(&found)).await.unwrap();

    let bodies = bodies.lock().unwrap();
    assert_eq!(bodies.len(), 2);
    let (_, first, content_type) = &bodies[0];
    assert_eq!(content_type.as_deref(), Some("application/json"));
    assert_eq!(
        *first,
        Templates::builtin().teams(&Message::Alert(&change), Some(APP_BASE))
    );
    assert_eq!(first["type"], "message");
    let attachment = &first["attachments"][0];
    assert_eq!(
        attachment["contentType"],
        "application/vnd.microsoft.card.adaptive"
    );
    let card = &attachment["content"];
    assert_eq!(card["type"], "AdaptiveCard");
    assert_eq!(card["version"], "1.5");
    assert_eq!(
        card["$schema"],
        "http://adaptivecards.io/schemas/adaptive-card.json"
    );
    let text = card.to_string();
    assert!(text.contains("HIGH: Workspace Owner granted"), "{text}");
    assert!(
        text.contains("Read-Only Member → Workspace Owner"),
        "{text}"
    );
    assert!(
        text.contains("Made by bob@example.com (User Policy Updated)"),
        "{text}"
    );
    assert!(text.contains("Confirm the grant"), "{text}");
    assert_eq!(card["actions"][0]["type"], "Action.OpenUrl");
    assert_eq!(
        card["actions"][0]["url"],
        "https://app.segment.com/acme-analytics/settings/access-management"
    );
    assert!(
        bodies[1]
            .1
            .to_string()
            .contains("https://app.segment.com/acme-analytics/sources/src_9f3K2a/overview")
    );
}

#[tokio::test]
async fn too_many_requests_is_retryable_with_retry_after() {
    let (url, _) = start(
        StatusCode::TOO_MANY_REQUESTS,
        vec![("retry-after", "7")],
        "throttled",
    )
    .await;
    let err = sink(&url).send(&Message::Test).await.unwrap_err();
    match &err {
        SendError::Retryable {
            message,
            retry_after,
        } => {
            assert_eq!(*retry_after, Some(Duration::from_secs(7)));
            assert!(message.contains("429"), "{message}");
        }
        other => panic!("{other:?}"),
    }
    assert_no_secret(&err);
}

#[tokio::test]
async fn server_errors_are_retryable() {
    let (url, _) = start(StatusCode::SERVICE_UNAVAILABLE, vec![], "").await;
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
    let (url, _) = start(
        StatusCode::PAYLOAD_TOO_LARGE,
        vec![],
        "Request Entity too large",
    )
    .await;
    let err = sink(&url).send(&Message::Test).await.unwrap_err();
    match &err {
        SendError::TooLarge { message } => assert!(message.contains("413"), "{message}"),
        other => panic!("{other:?}"),
    }
    assert_no_secret(&err);
}

#[tokio::test]
async fn client_errors_are_permanent_quote_the_reply_and_hide_the_signature() {
    // A reply echoing the URL (as some gateways do) is scrubbed.
    let (url, _) = start(StatusCode::UNAUTHORIZED, vec![], "").await;
    let echo: &'static str = Box::leak(
        format!("{{\"error\":{{\"code\":\"DirectApiAuthorizationRequired\",\"message\":\"bad sig={SIG} for {SECRET_PATH}\"}}}}")
            .into_boxed_str(),
    );
    let (echoing, _) = start(StatusCode::UNAUTHORIZED, vec![], echo).await;
    for url in [url, echoing] {
        let err = sink(&url).send(&Message::Test).await.unwrap_err();
        match &err {
            SendError::Permanent { message } => assert!(message.contains("401"), "{message}"),
            other => panic!("{other:?}"),
        }
        assert_no_secret(&err);
    }
}

#[tokio::test]
async fn network_errors_are_retryable_and_hide_the_url() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let sink = sink(&format!(
        "http://127.0.0.1:{port}{SECRET_PATH}?sv=1.0&sig={SIG}"
    ));
    let err = sink.send(&Message::Test).await.unwrap_err();
    assert!(matches!(err, SendError::Retryable { .. }), "{err:?}");
    assert_no_secret(&err);
    let debug = format!("{sink:?}");
    assert!(
        !debug.contains(SIG) && !debug.contains("0a1b2c3d4e5f"),
        "{debug}"
    );
}

#[test]
fn urls_must_be_https_or_loopback_and_are_never_echoed() {
    let templates = Arc::new(Templates::builtin());
    for url in [
        format!("not a url {SIG}"),
        format!("http://prod-00.westus.logic.azure.com/workflows/x?sig={SIG}"),
        format!("ftp://127.0.0.1/x?sig={SIG}"),
    ] {
        let err = TeamsSink::new(SecretString::from(url), None, templates.clone()).unwrap_err();
        assert!(!err.to_string().contains(SIG), "{err}");
        assert!(!format!("{err:?}").contains(SIG), "{err:?}");
    }
    for url in [
        "https://prod-00.westus.logic.azure.com:443/workflows/x/triggers/manual/paths/invoke?sig=a",
        "http://localhost:8080/x",
        "http://127.0.0.1:8080/x",
        "http://[::1]:8080/x",
    ] {
        assert!(check_url(url).is_ok(), "{url}");
    }
}

#[tokio::test]
async fn posts_are_paced_across_clones() {
    let (url, bodies) = start(StatusCode::ACCEPTED, vec![], "").await;
    let a = sink(&url).with_min_interval(DEFAULT_MIN_INTERVAL);
    let (b, c) = (a.clone(), a.clone());
    // Measured at the sender: arrival times at the receiver vary with connection set-up.
    let started = Instant::now();
    let (ra, rb, rc) = tokio::join!(
        a.send(&Message::Test),
        b.send(&Message::Test),
        c.send(&Message::Test)
    );
    let took = started.elapsed();
    ra.unwrap();
    rb.unwrap();
    rc.unwrap();
    assert_eq!(bodies.lock().unwrap().len(), 3);
    // The third post waits two intervals behind the first.
    assert!(took >= 2 * DEFAULT_MIN_INTERVAL, "{took:?}");
}

/// A change alert with many large changed fields and long text everywhere.
fn huge(i: i64) -> AlertRecord {
    let mut a = change_alert();
    a.id = AlertId(i);
    a.title = "T".repeat(1000);
    a.resource_name = format!("{i}-{}", "n".repeat(1000));
    a.summary = "S".repeat(10_000);
    a.remediation = "R".repeat(10_000);
    a.explanation["changes"] = (0..500)
        .map(|j| serde_json::json!({"path": format!("p{j}-{}", "x".repeat(300)), "old": "o".repeat(500), "new": "n".repeat(500)}))
        .collect();
    a
}

#[test]
fn one_alert_always_fits_and_a_digest_is_measured_in_bytes() {
    let sink = sink("https://example.invalid/x");
    let a = huge(1);
    let m = sink.measure(&Message::Alert(&a));
    assert!(m.fits(), "{m:?}");
    assert_eq!(m.limit, MAX_BODY_BYTES);
    assert_eq!(
        m.size,
        serde_json::to_vec(&Templates::builtin().teams(&Message::Alert(&a), Some(APP_BASE)))
            .unwrap()
            .len()
    );
    let text = Templates::builtin()
        .teams(&Message::Alert(&a), Some(APP_BASE))
        .to_string();
    assert!(
        text.contains("…and 480 more changes"),
        "the rest are counted"
    );

    // One huge alert alone fits a digest; fifty do not, and the outbox splits by this measure.
    let alerts: Vec<AlertRecord> = (0..50).map(huge).collect();
    let one = sink.measure(&Message::Digest {
        alerts: &alerts[..1],
        snapshot_id: SnapshotId(3),
    });
    assert!(one.fits(), "{one:?}");
    let all = sink.measure(&Message::Digest {
        alerts: &alerts,
        snapshot_id: SnapshotId(3),
    });
    assert!(!all.fits(), "{all:?}");
    let (n, fit) = crate::outbox::largest_fit(alerts.len(), |n| {
        Ok(sink.measure(&Message::Digest {
            alerts: &alerts[..n],
            snapshot_id: SnapshotId(3),
        }))
    })
    .unwrap();
    assert!((1..50).contains(&n), "{n}");
    assert!(fit.unwrap().fits());
}
