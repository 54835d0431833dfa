//! A stand-in for PagerDuty's Events API v2: it checks each event against the documented
//! shape, models alerts as PagerDuty does by `dedup_key`, can be taken down (503, 429 or a
//! closed port) and brought back, and records every request.
//!
//! What it checks, after PagerDuty's documentation (see `segwatch_sinks::pagerduty` for the
//! sources): `POST /v2/enqueue` takes a JSON object with `routing_key` (32 characters, and here
//! the stand-in's own key), `event_action` (`trigger`, `acknowledge`, `resolve`), `dedup_key`
//! (at most 255 characters), and for a trigger a `payload` with `summary` (1 to 1024
//! characters), `source` and `severity` (`critical`, `error`, `warning`, `info`), optional
//! `timestamp`, `component`, `group`, `class` (strings) and `custom_details` (an object);
//! `links` [{`href`, `text`}], `images` [{`src`, `href`, `alt`}], `client`, `client_url`.
//! `POST /v2/change/enqueue` takes `routing_key` (not a ruleset key, which starts with `R`),
//! `payload` {`summary`, `source`, `timestamp`, `custom_details`} and `links`. Bodies are at most
//! 512 KB (413 past it). It is stricter than PagerDuty in two ways, to catch mistakes in what
//! segwatch sends: a field it does not know is invalid, and every alert event needs a
//! `dedup_key` (PagerDuty would make one up for a trigger, and segwatch could then never
//! resolve it). An invalid event gets 400 `{"status": "invalid event", "message": "Event object
//! is invalid", "errors": […]}`; an accepted one 202 `{"status": "success", "message": "Event
//! processed", "dedup_key": …}`.
//!
//! The model: one open alert per `dedup_key` (each is an incident here). A trigger for a key
//! with an open incident is deduplicated into it; a resolve closes it; a trigger after the
//! resolve opens a new incident; a resolve or acknowledge with no open incident is dropped.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use secrecy::SecretString;
use segwatch_sinks::pagerduty::{ChangeAlerts, PagerDutyConfig};
use segwatch_sinks::{Sink, SinkConfig, SinkFilter, SinkTarget};
use serde_json::{Map, Value, json};

/// The stand-in's integration key (32 characters, distinctive so that a leak is easy to find).
pub const PAGERDUTY_KEY: &str = "pdk3yst4nd1n0000000000000000beef";

/// Largest body the stand-in takes, as PagerDuty documents (512 KB).
pub const PAGERDUTY_MAX_BODY: usize = 512 * 1024;

/// How the stand-in answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PagerDutyMode {
    /// Validates and applies events.
    Up,
    /// 503 to everything.
    Unavailable,
    /// 429 to everything, with a `Retry-After` of so many seconds when given.
    RateLimited(Option<u64>),
    /// This status to everything (e.g. 413, 500), with an error body in PagerDuty's shape.
    Answer(u16),
    /// The port is closed: connections are refused.
    Closed,
}

/// What the stand-in did with one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PagerDutyOutcome {
    /// A trigger opened a new incident (its number, from 1).
    Opened(usize),
    /// A trigger for a key with an open incident: added to it.
    Deduplicated(usize),
    /// An acknowledge of an open incident.
    Acknowledged(usize),
    /// A resolve closed the incident.
    Resolved(usize),
    /// A resolve or acknowledge for a key with no open incident: dropped.
    Dropped,
    /// A change event, recorded.
    Change,
    /// Refused with 400, with the errors given.
    Invalid(Vec<String>),
    /// Refused with 413.
    TooLarge,
    /// Refused with this status because the stand-in was down (503), limiting (429) or told
    /// to answer it ([`PagerDutyMode::Answer`]).
    Down(u16),
}

/// One request received.
#[derive(Debug, Clone)]
pub struct PagerDutyRequest {
    /// `/v2/enqueue` or `/v2/change/enqueue`.
    pub path: String,
    /// The status answered.
    pub status: u16,
    /// The body as JSON (`Null` when it was not JSON).
    pub body: Value,
    /// What was done with it.
    pub outcome: PagerDutyOutcome,
}

impl PagerDutyRequest {
    /// `event_action` of an alert event.
    pub fn action(&self) -> Option<&str> {
        self.body["event_action"].as_str()
    }

    /// `dedup_key` of an alert event.
    pub fn dedup_key(&self) -> Option<&str> {
        self.body["dedup_key"].as_str()
    }
}

/// An incident as PagerDuty would show it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Incident {
    /// Its number, from 1, in the order opened.
    pub number: usize,
    /// The key that opened it.
    pub dedup_key: String,
    /// The summary of the trigger that opened it.
    pub summary: String,
    /// The severity of the trigger that opened it.
    pub severity: String,
    /// Triggers it received (the first included).
    pub triggers: usize,
    /// Whether it was acknowledged.
    pub acknowledged: bool,
    /// Whether it is resolved.
    pub resolved: bool,
    /// Index in [`PagerDutyStandIn::requests`] of the trigger that opened it.
    pub opened_by: usize,
    /// Index of the resolve that closed it.
    pub resolved_by: Option<usize>,
}

#[derive(Default)]
struct State {
    key: String,
    requests: Vec<PagerDutyRequest>,
    incidents: Vec<Incident>,
    hold: Duration,
}

type Server = (
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<()>,
);

/// A PagerDuty Events API v2 stand-in on a loopback port.
pub struct PagerDutyStandIn {
    /// The events URL (`http://127.0.0.1:PORT/v2/enqueue`), for a sink's `url`.
    pub url: String,
    addr: SocketAddr,
    state: Arc<Mutex<State>>,
    mode: Arc<Mutex<PagerDutyMode>>,
    server: tokio::sync::Mutex<Option<Server>>,
}

impl PagerDutyStandIn {
    /// Starts, up, on a loopback port, taking [`PAGERDUTY_KEY`].
    pub async fn start() -> PagerDutyStandIn {
        Self::with_key(PAGERDUTY_KEY).await
    }

    /// Starts, taking events for `key` only (e.g. a ruleset key, starting with `R`).
    pub async fn with_key(key: &str) -> PagerDutyStandIn {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let standin = PagerDutyStandIn {
            url: format!("http://{addr}/v2/enqueue"),
            addr,
            state: Arc::new(Mutex::new(State {
                key: key.to_owned(),
                ..State::default()
            })),
            mode: Arc::new(Mutex::new(PagerDutyMode::Up)),
            server: tokio::sync::Mutex::new(None),
        };
        *standin.server.lock().await = Some(standin.serve(listener));
        standin
    }

    fn serve(&self, listener: tokio::net::TcpListener) -> Server {
        let (state, mode) = (self.state.clone(), self.mode.clone());
        let route = |path: &'static str| {
            let (state, mode) = (state.clone(), mode.clone());
            axum::routing::post(move |headers: HeaderMap, body: Bytes| {
                let (state, mode) = (state.clone(), mode.clone());
                async move { answer(&state, &mode, path, &headers, &body).await }
            })
        };
        let app = axum::Router::new()
            .route("/v2/enqueue", route("/v2/enqueue"))
            .route("/v2/change/enqueue", route("/v2/change/enqueue"))
            // The stand-in applies PagerDuty's own limit (axum's default is 2 MB).
            .layer(axum::extract::DefaultBodyLimit::disable());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    let _ = stopped.await;
                })
                .await
                .unwrap();
        });
        (stop, task)
    }

    /// Switches how it answers; [`PagerDutyMode::Closed`] closes the port (idle connections
    /// included) and any other mode opens it again on the same port.
    pub async fn set_mode(&self, mode: PagerDutyMode) {
        *self.mode.lock().unwrap() = mode;
        let mut server = self.server.lock().await;
        match (mode, server.is_some()) {
            (PagerDutyMode::Closed, true) => {
                let (stop, _task) = server.take().unwrap();
                let _ = stop.send(());
                // Wait until connecting is refused: the listener is gone.
                let deadline = std::time::Instant::now() + Duration::from_secs(10);
                while tokio::net::TcpStream::connect(self.addr).await.is_ok() {
                    assert!(
                        std::time::Instant::now() < deadline,
                        "the stand-in's port did not close"
                    );
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
            (PagerDutyMode::Closed, false) | (_, true) => {}
            (_, false) => {
                let listener = tokio::net::TcpListener::bind(self.addr)
                    .await
                    .expect("the stand-in's port can be bound again");
                *server = Some(self.serve(listener));
            }
        }
    }

    /// Makes it answer `delay` late, after applying the event: like a response lost when the
    /// sender dies before reading it.
    pub fn hold_answers(&self, delay: Duration) {
        self.state.lock().unwrap().hold = delay;
    }

    /// Every request received, in order.
    pub fn requests(&self) -> Vec<PagerDutyRequest> {
        self.state.lock().unwrap().requests.clone()
    }

    /// Every incident opened, in order.
    pub fn incidents(&self) -> Vec<Incident> {
        self.state.lock().unwrap().incidents.clone()
    }

    /// The change events accepted, in order.
    pub fn change_events(&self) -> Vec<Value> {
        self.requests()
            .into_iter()
            .filter(|r| r.outcome == PagerDutyOutcome::Change)
            .map(|r| r.body)
            .collect()
    }

    /// A PagerDuty sink to the stand-in sending [`PAGERDUTY_KEY`] (resolutions sent), as
    /// the configuration builds it.
    pub fn sink(&self, name: &str, change_alerts: ChangeAlerts) -> Sink {
        self.sink_keyed(name, PAGERDUTY_KEY, change_alerts)
    }

    /// [`PagerDutyStandIn::sink`] sending `key` (whatever key the stand-in takes).
    pub fn sink_keyed(&self, name: &str, key: &str, change_alerts: ChangeAlerts) -> Sink {
        Sink::new(SinkConfig {
            name: name.into(),
            filter: SinkFilter {
                send_resolved: true,
                ..SinkFilter::default()
            },
            digest_threshold: 10,
            max_message_bytes: segwatch_sinks::DEFAULT_MAX_MESSAGE_BYTES,
            max_messages_per_run: segwatch_sinks::DEFAULT_MAX_MESSAGES_PER_RUN,
            max_attempts: 5,
            retry_backoff: segwatch_sinks::outbox::RetryBackoff::default(),
            target: SinkTarget::PagerDuty(PagerDutyConfig {
                routing_key: SecretString::from(key),
                url: self.url.clone(),
                change_alerts,
            }),
            send_updates: None,
            app_base: None,
            templates: None,
        })
        .unwrap()
    }

    /// A `[[sinks]]` entry sending here, its key read from the environment variable `key_env`.
    pub fn sink_toml(&self, name: &str, key_env: &str) -> String {
        format!(
            "[[sinks]]\nname = \"{name}\"\ntype = \"pagerduty\"\nurl = \"{}\"\nrouting_key_env = \"{key_env}\"\n",
            self.url
        )
    }
}

async fn answer(
    state: &Mutex<State>,
    mode: &Mutex<PagerDutyMode>,
    path: &str,
    headers: &HeaderMap,
    body: &[u8],
) -> Response {
    let mode = *mode.lock().unwrap();
    let (status, reply, hold) = {
        let mut state = state.lock().unwrap();
        let parsed: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
        let (status, reply, outcome) = match mode {
            PagerDutyMode::Unavailable | PagerDutyMode::Closed => (
                503,
                json!({"status": "unavailable", "message": "Service Unavailable"}),
                PagerDutyOutcome::Down(503),
            ),
            PagerDutyMode::RateLimited(_) => (
                429,
                json!({"status": "throttle exceeded", "message": "Requests for this service are arriving too quickly. Please retry later."}),
                PagerDutyOutcome::Down(429),
            ),
            PagerDutyMode::Answer(status) => (
                status,
                json!({"status": "error", "message": format!("stand-in answering {status}")}),
                PagerDutyOutcome::Down(status),
            ),
            PagerDutyMode::Up if body.len() > PAGERDUTY_MAX_BODY => (
                413,
                json!({"status": "invalid event", "message": "Request entity too large"}),
                PagerDutyOutcome::TooLarge,
            ),
            PagerDutyMode::Up => match check(path, headers, &parsed, &state.key) {
                Err(errors) => (
                    400,
                    json!({"status": "invalid event", "message": "Event object is invalid", "errors": errors}),
                    PagerDutyOutcome::Invalid(errors),
                ),
                Ok(()) if path.ends_with("/change/enqueue") => (
                    202,
                    json!({"status": "success", "message": "Change event processed"}),
                    PagerDutyOutcome::Change,
                ),
                Ok(()) => {
                    let outcome = apply(&mut state, &parsed);
                    (
                        202,
                        json!({"status": "success", "message": "Event processed", "dedup_key": parsed["dedup_key"]}),
                        outcome,
                    )
                }
            },
        };
        state.requests.push(PagerDutyRequest {
            path: path.to_owned(),
            status,
            body: parsed,
            outcome,
        });
        (status, reply, state.hold)
    };
    if !hold.is_zero() {
        tokio::time::sleep(hold).await;
    }
    let status = StatusCode::from_u16(status).unwrap();
    match mode {
        PagerDutyMode::RateLimited(Some(secs)) => (
            status,
            [("retry-after", secs.to_string())],
            axum::Json(reply),
        )
            .into_response(),
        _ => (status, axum::Json(reply)).into_response(),
    }
}

/// Applies an alert event that passed [`check`] to the incidents.
fn apply(state: &mut State, event: &Value) -> PagerDutyOutcome {
    let index = state.requests.len();
    let key = event["dedup_key"].as_str().unwrap_or_default().to_owned();
    let open = state
        .incidents
        .iter_mut()
        .find(|i| i.dedup_key == key && !i.resolved);
    match (event["event_action"].as_str().unwrap_or_default(), open) {
        ("trigger", Some(incident)) => {
            incident.triggers += 1;
            PagerDutyOutcome::Deduplicated(incident.number)
        }
        ("trigger", None) => {
            let number = state.incidents.len() + 1;
            state.incidents.push(Incident {
                number,
                dedup_key: key,
                summary: event["payload"]["summary"]
                    .as_str()
                    .unwrap_or_default()
                    .into(),
                severity: event["payload"]["severity"]
                    .as_str()
                    .unwrap_or_default()
                    .into(),
                triggers: 1,
                acknowledged: false,
                resolved: false,
                opened_by: index,
                resolved_by: None,
            });
            PagerDutyOutcome::Opened(number)
        }
        ("acknowledge", Some(incident)) => {
            incident.acknowledged = true;
            PagerDutyOutcome::Acknowledged(incident.number)
        }
        ("resolve", Some(incident)) => {
            incident.resolved = true;
            incident.resolved_by = Some(index);
            PagerDutyOutcome::Resolved(incident.number)
        }
        _ => PagerDutyOutcome::Dropped,
    }
}

/// The documented shape of an event (module docs); the errors found, if any.
fn check(path: &str, headers: &HeaderMap, event: &Value, own: &str) -> Result<(), Vec<String>> {
    let mut errors = Vec::new();
    let json = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if !json {
        errors.push("Content-Type must be application/json".to_owned());
    }
    let Some(object) = event.as_object() else {
        errors.push("JSON parse error: the body is not a JSON object".to_owned());
        return Err(errors);
    };
    let change = path.ends_with("/change/enqueue");
    let allowed: &[&str] = if change {
        &["routing_key", "payload", "links"]
    } else {
        &[
            "routing_key",
            "event_action",
            "dedup_key",
            "payload",
            "links",
            "images",
            "client",
            "client_url",
        ]
    };
    unknown(object, allowed, "", &mut errors);
    match object.get("routing_key").map(Value::as_str) {
        None => errors.push("'routing_key' is missing".to_owned()),
        Some(None) => errors.push("'routing_key' must be a string".to_owned()),
        Some(Some(key)) if key.chars().count() != 32 => {
            errors.push("Length of 'routing_key' is incorrect (should be 32 characters)".to_owned())
        }
        Some(Some(key)) if key != own => errors.push("Invalid routing key".to_owned()),
        Some(Some(key)) if change && key.starts_with('R') => {
            errors.push("Change events cannot be sent to a ruleset routing key".to_owned())
        }
        Some(Some(_)) => {}
    }
    let action = if change {
        None
    } else {
        match object.get("event_action").and_then(Value::as_str) {
            Some(a @ ("trigger" | "acknowledge" | "resolve")) => Some(a),
            _ => {
                errors.push(
                    "'event_action' is invalid (must be one of: trigger, acknowledge, resolve)"
                        .to_owned(),
                );
                None
            }
        }
    };
    if !change {
        match object.get("dedup_key").and_then(Value::as_str) {
            Some(k) if !k.is_empty() && k.chars().count() <= 255 => {}
            Some(_) => errors.push("'dedup_key' must be 1 to 255 characters".to_owned()),
            None => errors.push("'dedup_key' is missing".to_owned()),
        }
    }
    match object.get("payload") {
        Some(Value::Object(payload)) => check_payload(payload, change, &mut errors),
        Some(_) => errors.push("'payload' must be an object".to_owned()),
        None if change || action == Some("trigger") => {
            errors.push("'payload' is missing".to_owned())
        }
        None => {}
    }
    if let Some(links) = object.get("links") {
        check_list(links, "links", "href", &["href", "text"], &mut errors);
    }
    if let Some(images) = object.get("images") {
        check_list(
            images,
            "images",
            "src",
            &["src", "href", "alt"],
            &mut errors,
        );
    }
    for key in ["client", "client_url"] {
        if object.get(key).is_some_and(|v| !v.is_string()) {
            errors.push(format!("'{key}' must be a string"));
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors)
    }
}

fn check_payload(payload: &Map<String, Value>, change: bool, errors: &mut Vec<String>) {
    let allowed: &[&str] = if change {
        &["summary", "source", "timestamp", "custom_details"]
    } else {
        &[
            "summary",
            "source",
            "severity",
            "timestamp",
            "component",
            "group",
            "class",
            "custom_details",
        ]
    };
    unknown(payload, allowed, "payload.", errors);
    match payload.get("summary").and_then(Value::as_str) {
        Some(s) if !s.is_empty() && s.chars().count() <= 1024 => {}
        Some("") => errors.push("'payload.summary' is empty".to_owned()),
        Some(s) => errors.push(format!(
            "'payload.summary' is {} characters; at most 1024",
            s.chars().count()
        )),
        None => errors.push("'payload.summary' is missing".to_owned()),
    }
    match payload.get("source") {
        Some(Value::String(s)) if !s.is_empty() => {}
        None if change => {}
        _ => errors.push("'payload.source' is missing or empty".to_owned()),
    }
    if !change {
        match payload.get("severity").and_then(Value::as_str) {
            Some("critical" | "error" | "warning" | "info") => {}
            _ => errors.push(
                "'payload.severity' is invalid (must be one of: critical, error, warning, info)"
                    .to_owned(),
            ),
        }
    }
    for key in ["timestamp", "component", "group", "class"] {
        if payload.get(key).is_some_and(|v| !v.is_string()) {
            errors.push(format!("'payload.{key}' must be a string"));
        }
    }
    if payload
        .get("custom_details")
        .is_some_and(|v| !v.is_object())
    {
        errors.push("'payload.custom_details' must be an object".to_owned());
    }
}

fn check_list(
    list: &Value,
    name: &str,
    required: &str,
    allowed: &[&str],
    errors: &mut Vec<String>,
) {
    let Some(items) = list.as_array() else {
        errors.push(format!("'{name}' must be an array"));
        return;
    };
    for item in items {
        match item.as_object() {
            Some(o) if o.get(required).is_some_and(Value::is_string) => {
                unknown(o, allowed, &format!("{name}[]."), errors);
                if o.values().any(|v| !v.is_string()) {
                    errors.push(format!("'{name}' items hold strings"));
                }
            }
            _ => errors.push(format!("each of '{name}' needs '{required}'")),
        }
    }
}

fn unknown(object: &Map<String, Value>, allowed: &[&str], prefix: &str, errors: &mut Vec<String>) {
    for key in object.keys() {
        if !allowed.contains(&key.as_str()) {
            errors.push(format!("'{prefix}{key}' is not a field of the event"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn json_headers() -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert("content-type", "application/json".parse().unwrap());
        h
    }

    fn trigger() -> Value {
        json!({
            "routing_key": PAGERDUTY_KEY,
            "event_action": "trigger",
            "dedup_key": "segwatch-0123",
            "payload": {"summary": "s", "source": "segment:acme", "severity": "error"},
        })
    }

    fn errors(path: &str, event: &Value) -> Vec<String> {
        check(path, &json_headers(), event, PAGERDUTY_KEY)
            .err()
            .unwrap_or_default()
    }

    #[test]
    fn each_documented_rule_is_checked() {
        assert!(errors("/v2/enqueue", &trigger()).is_empty());
        let cases: Vec<(Value, &str)> = vec![
            (json!({"routing_key": "short"}), "Length of 'routing_key'"),
            (
                json!({"routing_key": "0123456789abcdef0123456789abcdef"}),
                "Invalid routing key",
            ),
            (json!({"event_action": "page"}), "'event_action' is invalid"),
            (json!({"dedup_key": null}), "'dedup_key' is missing"),
            (
                json!({"dedup_key": "k".repeat(256)}),
                "'dedup_key' must be 1 to 255",
            ),
            (json!({"payload": null}), "'payload' must be an object"),
            (
                json!({"payload": {"summary": "é".repeat(1025), "source": "s", "severity": "info"}}),
                "is 1025 characters; at most 1024",
            ),
            (
                json!({"payload": {"summary": "s", "source": "", "severity": "info"}}),
                "'payload.source'",
            ),
            (
                json!({"payload": {"summary": "s", "source": "s", "severity": "high"}}),
                "'payload.severity' is invalid",
            ),
            (
                json!({"payload": {"summary": "s", "source": "s", "severity": "info", "custom_details": "x"}}),
                "'payload.custom_details' must be an object",
            ),
            (
                json!({"payload": {"summary": "s", "source": "s", "severity": "info", "priority": 1}}),
                "'payload.priority' is not a field",
            ),
            (
                json!({"links": [{"text": "no href"}]}),
                "each of 'links' needs 'href'",
            ),
            (
                json!({"incident_key": "old v1 field"}),
                "'incident_key' is not a field",
            ),
        ];
        for (change, expected) in cases {
            let mut event = trigger();
            for (k, v) in change.as_object().unwrap() {
                if v.is_null() && k == "dedup_key" {
                    event.as_object_mut().unwrap().remove(k);
                } else {
                    event[k] = v.clone();
                }
            }
            let found = errors("/v2/enqueue", &event);
            assert!(
                found.iter().any(|e| e.contains(expected)),
                "{expected}: {found:?}"
            );
        }
        // A resolve needs no payload; a trigger does.
        let resolve =
            json!({"routing_key": PAGERDUTY_KEY, "event_action": "resolve", "dedup_key": "k"});
        assert!(errors("/v2/enqueue", &resolve).is_empty());
        let mut bare = resolve.clone();
        bare["event_action"] = json!("trigger");
        assert!(errors("/v2/enqueue", &bare).contains(&"'payload' is missing".to_owned()));
        // Change events: no event_action, no dedup_key, no ruleset key.
        let change = json!({"routing_key": PAGERDUTY_KEY, "payload": {"summary": "s"}});
        assert!(errors("/v2/change/enqueue", &change).is_empty());
        assert!(!errors("/v2/change/enqueue", &trigger()).is_empty());
        let ruleset = "R0123456789ABCDEF0123456789ABCDE";
        let mut to_ruleset = change.clone();
        to_ruleset["routing_key"] = json!(ruleset);
        let found = check("/v2/change/enqueue", &json_headers(), &to_ruleset, ruleset).unwrap_err();
        assert!(found[0].contains("ruleset"), "{found:?}");
        // Not JSON.
        let found = check(
            "/v2/enqueue",
            &HeaderMap::new(),
            &Value::Null,
            PAGERDUTY_KEY,
        )
        .unwrap_err();
        assert_eq!(found.len(), 2, "{found:?}");
    }

    #[test]
    fn incidents_follow_dedup_keys() {
        let mut state = State::default();
        let resolve = json!({"event_action": "resolve", "dedup_key": "segwatch-0123"});
        let mut run = |event: &Value| {
            let outcome = apply(&mut state, event);
            state.requests.push(PagerDutyRequest {
                path: "/v2/enqueue".into(),
                status: 202,
                body: event.clone(),
                outcome: outcome.clone(),
            });
            outcome
        };
        assert_eq!(
            run(&resolve),
            PagerDutyOutcome::Dropped,
            "nothing to resolve"
        );
        assert_eq!(run(&trigger()), PagerDutyOutcome::Opened(1));
        assert_eq!(run(&trigger()), PagerDutyOutcome::Deduplicated(1));
        assert_eq!(run(&resolve), PagerDutyOutcome::Resolved(1));
        assert_eq!(run(&resolve), PagerDutyOutcome::Dropped, "already resolved");
        assert_eq!(
            run(&trigger()),
            PagerDutyOutcome::Opened(2),
            "a new incident after the resolve"
        );
        assert_eq!(state.incidents[0].triggers, 2);
        assert_eq!(
            (state.incidents[0].opened_by, state.incidents[0].resolved_by),
            (1, Some(3))
        );
        assert!(!state.incidents[1].resolved);
    }
}
