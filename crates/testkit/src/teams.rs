//! A Microsoft Teams Workflows webhook stand-in: it takes what the "When a Teams webhook request
//! is received" trigger takes, checks the request's shape as Microsoft documents it, records the
//! Adaptive Cards it accepted, and can be told to fail or to take smaller bodies.
//!
//! What it checks (the envelope of
//! <https://learn.microsoft.com/en-us/connectors/teams/#microsoft-teams-webhook>, the size limit
//! of about 28 KB, the Adaptive Card versions Teams renders, up to 1.5):
//! - `POST` to the workflow's path with its `sig` query parameter (else 401, as a flow answers
//!   a request without a valid signature);
//! - `Content-Type: application/json` and a body of at most [`TEAMS_LIMIT_BYTES`] (else 413);
//! - `{"type": "message", "attachments": [...]}` with at least one attachment, each of
//!   `contentType` `application/vnd.microsoft.card.adaptive` whose `content` has `type`
//!   `AdaptiveCard`, `version` `1.0` to `1.5`, `$schema`
//!   `http://adaptivecards.io/schemas/adaptive-card.json` and a non-empty `body`;
//! - every element of the body of a known type, with its required properties (`TextBlock.text`,
//!   `FactSet.facts[].title/value`, `Container.items`), and every action an `Action.OpenUrl` to an
//!   `http(s)` URL.
//!
//! A request that fails a check gets 400 with the reason, as a flow's trigger answers a body
//! it cannot take; the reason is kept in [`TeamsReceiver::rejected`]. Accepted requests get
//! 202 Accepted, as a Workflows webhook answers. The card is not validated against the full
//! Adaptive Card JSON schema: only the structure above.

use std::sync::atomic::{AtomicU16, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use serde_json::Value;

/// The message size Teams documents ("about 28 KB"): larger bodies get 413.
pub const TEAMS_LIMIT_BYTES: usize = 28_000;

/// The signature the stand-in's URL carries (a secret: tests check it never leaks).
pub const TEAMS_SIG: &str = "tEaMsSiG-5b8e1f0c2d7a9e3b";

/// Element types a card's body may hold (Adaptive Cards 1.0–1.5).
const ELEMENTS: &[&str] = &[
    "TextBlock",
    "RichTextBlock",
    "FactSet",
    "Container",
    "ColumnSet",
    "Image",
    "ImageSet",
    "ActionSet",
    "Table",
];

/// A Teams Workflows webhook stand-in on a loopback port.
pub struct TeamsReceiver {
    /// The webhook URL (with its `sig`).
    pub url: String,
    /// The cards (each attachment's `content`) accepted, in order.
    pub cards: Arc<Mutex<Vec<Value>>>,
    /// Every request: the status answered and the body's size in bytes.
    pub requests: Arc<Mutex<Vec<(u16, usize)>>>,
    /// Why each refused request was refused.
    pub rejected: Arc<Mutex<Vec<String>>>,
    /// Status it answers a valid request with (202 = up).
    pub status: Arc<AtomicU16>,
    /// Largest body it takes (413 past it); starts at [`TEAMS_LIMIT_BYTES`].
    pub max_body: Arc<AtomicUsize>,
}

#[derive(Clone)]
struct Shared {
    cards: Arc<Mutex<Vec<Value>>>,
    requests: Arc<Mutex<Vec<(u16, usize)>>>,
    rejected: Arc<Mutex<Vec<String>>>,
    status: Arc<AtomicU16>,
    max_body: Arc<AtomicUsize>,
}

impl TeamsReceiver {
    /// Starts on a loopback port.
    pub async fn start() -> TeamsReceiver {
        let shared = Shared {
            cards: Arc::default(),
            requests: Arc::default(),
            rejected: Arc::default(),
            status: Arc::new(AtomicU16::new(202)),
            max_body: Arc::new(AtomicUsize::new(TEAMS_LIMIT_BYTES)),
        };
        let app = axum::Router::new()
            .route(
                "/workflows/{flow}/triggers/manual/paths/invoke",
                axum::routing::post(receive),
            )
            .layer(axum::extract::DefaultBodyLimit::disable())
            .with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!(
            "http://{}/workflows/7c0ffee5d1/triggers/manual/paths/invoke?api-version=2016-06-01&sp=%2Ftriggers%2Fmanual%2Frun&sv=1.0&sig={TEAMS_SIG}",
            listener.local_addr().unwrap()
        );
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        TeamsReceiver {
            url,
            cards: shared.cards,
            requests: shared.requests,
            rejected: shared.rejected,
            status: shared.status,
            max_body: shared.max_body,
        }
    }

    /// The cards accepted so far.
    pub fn cards(&self) -> Vec<Value> {
        self.cards.lock().unwrap().clone()
    }

    /// A `[[sinks]]` entry of type `teams` named `name`, its URL read from the environment
    /// variable `url_env`.
    pub fn sink_toml(name: &str, url_env: &str) -> String {
        format!("[[sinks]]\nname = \"{name}\"\ntype = \"teams\"\nurl_env = \"{url_env}\"\n")
    }
}

async fn receive(
    State(s): State<Shared>,
    Query(query): Query<Vec<(String, String)>>,
    headers: HeaderMap,
    body: Bytes,
) -> (StatusCode, String) {
    let refuse = |status: StatusCode, why: String| {
        s.requests
            .lock()
            .unwrap()
            .push((status.as_u16(), body.len()));
        s.rejected.lock().unwrap().push(why.clone());
        (status, why)
    };
    if !query.iter().any(|(k, v)| k == "sig" && v == TEAMS_SIG) {
        return refuse(
            StatusCode::UNAUTHORIZED,
            "DirectApiAuthorizationRequired: no valid sig".into(),
        );
    }
    let json = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if !json {
        return refuse(
            StatusCode::BAD_REQUEST,
            "Content-Type is not application/json".into(),
        );
    }
    if body.len() > s.max_body.load(Ordering::SeqCst) {
        return refuse(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("Request Entity too large: {} bytes", body.len()),
        );
    }
    let cards = match serde_json::from_slice::<Value>(&body)
        .map_err(|e| format!("not JSON: {e}"))
        .and_then(|v| check_message(&v))
    {
        Ok(cards) => cards,
        Err(why) => return refuse(StatusCode::BAD_REQUEST, why),
    };
    let status = StatusCode::from_u16(s.status.load(Ordering::SeqCst)).unwrap();
    s.requests
        .lock()
        .unwrap()
        .push((status.as_u16(), body.len()));
    if status.is_success() {
        s.cards.lock().unwrap().extend(cards);
    }
    (status, String::new())
}

/// The cards of a message, or why the message is not one Teams takes.
pub fn check_message(v: &Value) -> Result<Vec<Value>, String> {
    if v["type"] != "message" {
        return Err(format!("type is {}, not \"message\"", v["type"]));
    }
    let attachments = v["attachments"]
        .as_array()
        .filter(|a| !a.is_empty())
        .ok_or("attachments is not a non-empty array")?;
    let mut cards = Vec::new();
    for (i, a) in attachments.iter().enumerate() {
        if a["contentType"] != "application/vnd.microsoft.card.adaptive" {
            return Err(format!(
                "attachments[{i}].contentType is {}",
                a["contentType"]
            ));
        }
        let card = &a["content"];
        if card["type"] != "AdaptiveCard" {
            return Err(format!("attachments[{i}].content.type is {}", card["type"]));
        }
        if card["$schema"] != "http://adaptivecards.io/schemas/adaptive-card.json" {
            return Err(format!(
                "attachments[{i}].content.$schema is {}",
                card["$schema"]
            ));
        }
        let version = card["version"].as_str().unwrap_or_default();
        if !matches!(version, "1.0" | "1.1" | "1.2" | "1.3" | "1.4" | "1.5") {
            return Err(format!(
                "attachments[{i}].content.version is {}: Teams renders 1.0 to 1.5",
                card["version"]
            ));
        }
        let body = card["body"]
            .as_array()
            .filter(|b| !b.is_empty())
            .ok_or(format!("attachments[{i}].content.body is empty"))?;
        for (j, element) in body.iter().enumerate() {
            check_element(element, &format!("attachments[{i}].content.body[{j}]"))?;
        }
        if let Some(actions) = card.get("actions") {
            for (j, action) in actions
                .as_array()
                .ok_or("actions is not an array")?
                .iter()
                .enumerate()
            {
                check_action(action, &format!("attachments[{i}].content.actions[{j}]"))?;
            }
        }
        cards.push(card.clone());
    }
    Ok(cards)
}

fn check_element(e: &Value, at: &str) -> Result<(), String> {
    let kind = e["type"].as_str().unwrap_or_default();
    if !ELEMENTS.contains(&kind) {
        return Err(format!(
            "{at}.type is {}: not an Adaptive Card element",
            e["type"]
        ));
    }
    match kind {
        "TextBlock" if !e["text"].is_string() => Err(format!("{at}: a TextBlock needs text")),
        "FactSet" => {
            let facts = e["facts"]
                .as_array()
                .ok_or(format!("{at}: a FactSet needs facts"))?;
            for (k, f) in facts.iter().enumerate() {
                if !f["title"].is_string() || !f["value"].is_string() {
                    return Err(format!("{at}.facts[{k}] needs a title and a value"));
                }
            }
            Ok(())
        }
        "Container" => {
            let items = e["items"]
                .as_array()
                .ok_or(format!("{at}: a Container needs items"))?;
            for (k, item) in items.iter().enumerate() {
                check_element(item, &format!("{at}.items[{k}]"))?;
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

fn check_action(a: &Value, at: &str) -> Result<(), String> {
    if a["type"] != "Action.OpenUrl" {
        return Err(format!("{at}.type is {}", a["type"]));
    }
    let url = a["url"].as_str().unwrap_or_default();
    if !(url.starts_with("https://") || url.starts_with("http://")) {
        return Err(format!("{at}.url is not an http(s) URL"));
    }
    Ok(())
}
