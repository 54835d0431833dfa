//! The PagerDuty sink: each alert event is an event of PagerDuty's Events API v2.
//!
//! A finding raised is a `trigger` whose `dedup_key` is the alert's
//! [`finding_uid`](AlertRecord::finding_uid); its resolution is a `resolve` with the same key.
//! PagerDuty keeps one alert (and incident) open per key: a trigger repeated while it is open
//! (at-least-once delivery after a crash) is deduplicated into it, and a trigger after the
//! resolve opens a new one, which is exactly a finding that regresses. A change alert has a
//! uid of its own, so it is a trigger of its own (or, with `change_alerts = "change-event"`,
//! a change event, which opens no incident). An update of an open finding (its resource changed
//! and still fails) is a `trigger` with the same `dedup_key`: PagerDuty folds it into the open
//! alert, whose details become the new ones, and pages nobody again.
//!
//! The request, as documented by PagerDuty and relied on here:
//! - `POST https://events.pagerduty.com/v2/enqueue`, JSON with `routing_key` (the 32-character
//!   integration key), `event_action` (`trigger`, `acknowledge`, `resolve`), `dedup_key` (at
//!   most 255 characters), `payload` {`summary` (required, at most 1024 characters), `source`
//!   (required), `severity` (required: `critical`, `error`, `warning`, `info`), `timestamp`,
//!   `component`, `group`, `class`, `custom_details`}, `links` [{`href`, `text`}], `client`,
//!   `client_url`. A resolve needs only `routing_key`, `event_action` and `dedup_key`.
//! - `POST https://events.pagerduty.com/v2/change/enqueue`: `routing_key`, `payload`
//!   {`summary`, `source`, `timestamp`, `custom_details`}, `links`. Change events notify nobody;
//!   ruleset keys (starting with `R`) cannot take them.
//! - Answers: 202 `{"status": "success", "message": "Event processed", "dedup_key": …}`;
//!   400 `{"status": "invalid event", "message": "Event object is invalid", "errors": […]}`
//!   (do not retry); 429 (retry after some time); 5xx and network errors (retry). Bodies are
//!   limited to 512 KB.
//!
//! Sources: <https://developer.pagerduty.com/docs/events-api-v2/trigger-events/>,
//! <https://developer.pagerduty.com/docs/events-api-v2/send-change-events/>,
//! <https://developer.pagerduty.com/docs/events-api-v2/overview/> (response codes, size limit),
//! <https://developer.pagerduty.com/docs/events-api-v2/rate-limits/>, and the OpenAPI document
//! `reference/events-v2/openapiv3.json` of github.com/PagerDuty/api-schema.

use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde_json::{Map, Value, json};

use super::render::{one_line, truncate};
use super::{Message, SendError};
use segwatch_core::alerts::{AlertRecord, AlertStatus};
use segwatch_core::rules::Severity;

/// The Events API v2 endpoint (`url` overrides it, e.g. for an EU account or a test stand-in).
pub const EVENTS_URL: &str = "https://events.pagerduty.com/v2/enqueue";
/// The path every events URL ends with; the change-events URL replaces it with
/// [`CHANGE_PATH`].
pub const EVENTS_PATH: &str = "/v2/enqueue";
/// The path of the Change Events API, next to [`EVENTS_PATH`].
pub const CHANGE_PATH: &str = "/v2/change/enqueue";
/// Length of an integration (routing) key.
pub const ROUTING_KEY_CHARS: usize = 32;
/// PagerDuty's limit on `payload.summary`, in characters.
pub const SUMMARY_CHARS: usize = 1024;
/// PagerDuty's limit on one event's body, in bytes (512 KB).
pub const MAX_BODY_BYTES: usize = 512 * 1024;
/// Most changed fields listed in `custom_details.changes` (the rest are counted).
pub const DETAIL_CHANGES: usize = 20;
/// Most characters of one changed value (its JSON text), path, name or id in `custom_details`.
pub const DETAIL_VALUE_CHARS: usize = 500;
/// Most characters of the remediation and of the alert's own summary in `custom_details`.
pub const DETAIL_TEXT_CHARS: usize = 4000;
/// Most tags listed in `custom_details.tags`.
pub const DETAIL_TAGS: usize = 50;
/// Most characters of one tag in `custom_details.tags`.
pub const DETAIL_TAG_CHARS: usize = 200;
/// The dedup key of `segwatch sinks test` when it probes with a resolve (ruleset keys).
pub const TEST_DEDUP_KEY: &str = "segwatch-sinks-test-probe";
/// Longest wait for one request, answer included; past it the attempt is retried later.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(15);

/// What a change alert becomes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ChangeAlerts {
    /// A trigger of its own (its own dedup key): an incident, as for a finding.
    #[default]
    Trigger,
    /// A change event (`/v2/change/enqueue`): on the service's timeline, no incident, no page.
    ChangeEvent,
}

/// A PagerDuty sink's settings.
#[derive(Debug, Clone)]
pub struct PagerDutyConfig {
    /// The integration key (a secret).
    pub routing_key: SecretString,
    /// The events endpoint, ending with [`EVENTS_PATH`] (default [`EVENTS_URL`]).
    pub url: String,
    /// What change alerts become.
    pub change_alerts: ChangeAlerts,
}

/// Checks an integration key's shape: [`ROUTING_KEY_CHARS`] ASCII letters and digits. The
/// error never repeats the key.
pub fn check_routing_key(key: &str) -> Result<(), String> {
    let chars = key.chars().count();
    if chars != ROUTING_KEY_CHARS {
        return Err(format!(
            "a PagerDuty integration key is {ROUTING_KEY_CHARS} characters; this one has {chars} \
             (copy the Integration Key of the service's Events API v2 integration)"
        ));
    }
    if !key.chars().all(|c| c.is_ascii_alphanumeric()) {
        return Err(
            "a PagerDuty integration key has only letters and digits; this one has other characters"
                .to_owned(),
        );
    }
    Ok(())
}

/// Checks an events URL: it parses and its path ends with [`EVENTS_PATH`].
pub fn check_url(url: &str) -> Result<reqwest::Url, String> {
    let parsed =
        reqwest::Url::parse(url.trim()).map_err(|e| format!("the URL does not parse: {e}"))?;
    if !parsed.path().ends_with(EVENTS_PATH) {
        return Err(format!(
            "the Events API URL ends with `{EVENTS_PATH}` (default {EVENTS_URL})"
        ));
    }
    Ok(parsed)
}

/// Which endpoint an event goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Endpoint {
    /// `/v2/enqueue`: trigger, resolve.
    Events,
    /// `/v2/change/enqueue`.
    Change,
}

/// One request to PagerDuty (not `Debug`: the body holds the routing key).
pub(crate) struct Event {
    pub(crate) endpoint: Endpoint,
    pub(crate) body: Value,
}

/// A PagerDuty Events API v2 sender.
#[derive(Clone)]
pub struct PagerDutySink {
    routing_key: SecretString,
    events_url: reqwest::Url,
    change_url: reqwest::Url,
    change_alerts: ChangeAlerts,
    app_base: Option<String>,
    client: reqwest::Client,
}

impl std::fmt::Debug for PagerDutySink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PagerDutySink")
            .field("routing_key", &"<secret>")
            .field("events_url", &self.events_url.as_str())
            .field("change_alerts", &self.change_alerts)
            .finish()
    }
}

impl PagerDutySink {
    /// A sender for `config`, linking to the Segment app under `app_base` when given.
    pub fn new(config: PagerDutyConfig, app_base: Option<String>) -> Result<Self, SendError> {
        let permanent = |message: String| SendError::Permanent { message };
        check_routing_key(config.routing_key.expose_secret()).map_err(permanent)?;
        let events_url = check_url(&config.url).map_err(permanent)?;
        let mut change_url = events_url.clone();
        let prefix = &events_url.path()[..events_url.path().len() - EVENTS_PATH.len()];
        change_url.set_path(&format!("{prefix}{CHANGE_PATH}"));
        let client = reqwest::Client::builder()
            .timeout(REQUEST_TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("segwatch/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| permanent(format!("cannot build an HTTP client: {e}")))?;
        Ok(PagerDutySink {
            routing_key: config.routing_key,
            events_url,
            change_url,
            change_alerts: config.change_alerts,
            app_base,
            client,
        })
    }

    /// Sends the message's event.
    pub async fn send(&self, message: &Message<'_>) -> Result<(), SendError> {
        self.post(&self.event(message)?).await
    }

    /// The size in bytes of the message's event.
    pub fn body_len(&self, message: &Message<'_>) -> Result<usize, SendError> {
        Ok(serde_json::to_vec(&self.event(message)?.body)
            .expect("events serialise")
            .len())
    }

    /// The request a message makes. The outbox sends a sink that tracks findings one alert
    /// event at a time, never a digest or a summary (an incident is about one finding).
    pub(crate) fn event(&self, message: &Message<'_>) -> Result<Event, SendError> {
        match *message {
            Message::Alert(alert) => Ok(self.alert_event(alert)),
            Message::Update { alert, update } => Ok(self.update_event(alert, update)),
            Message::Test => Ok(self.test_event()),
            Message::Digest { .. } | Message::Summary(_) => Err(SendError::Permanent {
                message:
                    "a PagerDuty sink takes one alert event at a time, not a digest or a summary"
                        .to_owned(),
            }),
        }
    }

    fn alert_event(&self, alert: &AlertRecord) -> Event {
        let key = self.routing_key.expose_secret();
        let dedup_key = alert.finding_uid();
        if alert.status == AlertStatus::Resolved {
            return Event {
                endpoint: Endpoint::Events,
                body: json!({
                    "routing_key": key,
                    "event_action": "resolve",
                    "dedup_key": dedup_key,
                }),
            };
        }
        let summary = truncate(&summary_line(alert), SUMMARY_CHARS);
        let source = truncate(&format!("segment:{}", alert.workspace), DETAIL_VALUE_CHARS);
        let details = custom_details(alert);
        let links = self.links(alert);
        if alert.rule_kind == "change" && self.change_alerts == ChangeAlerts::ChangeEvent {
            let mut body = json!({
                "routing_key": key,
                "payload": {
                    "summary": summary,
                    "source": source,
                    "timestamp": alert.opened_at.to_string(),
                    "custom_details": details,
                },
            });
            if !links.is_empty() {
                body["links"] = Value::Array(links);
            }
            return Event {
                endpoint: Endpoint::Change,
                body,
            };
        }
        let mut body = json!({
            "routing_key": key,
            "event_action": "trigger",
            "dedup_key": dedup_key,
            "payload": {
                "summary": summary,
                "source": source,
                "severity": severity(alert.severity),
                "timestamp": alert.opened_at.to_string(),
                "component": truncate(
                    &format!("{}:{}", alert.resource_kind.as_str(), alert.resource_id),
                    DETAIL_VALUE_CHARS,
                ),
                "group": truncate(&alert.workspace, DETAIL_VALUE_CHARS),
                "class": truncate(&alert.rule_id, DETAIL_VALUE_CHARS),
                "custom_details": details,
            },
            "client": "segwatch",
        });
        if !links.is_empty() {
            body["links"] = Value::Array(links);
        }
        if let Some(base) = self.app_base.as_deref() {
            body["client_url"] = json!(base.trim().trim_end_matches('/'));
        }
        Event {
            endpoint: Endpoint::Events,
            body,
        }
    }

    /// An update of an open finding: its trigger again, same `dedup_key`, with the update's
    /// summary, details and time, and `custom_details.event` = `updated`.
    fn update_event(&self, alert: &AlertRecord, update: crate::Update) -> Event {
        let open = AlertRecord {
            status: AlertStatus::Open,
            ..alert.clone()
        };
        let mut event = self.alert_event(&open);
        if let Some(payload) = event.body.get_mut("payload") {
            payload["timestamp"] = json!(update.at.to_string());
            if let Some(details) = payload["custom_details"].as_object_mut() {
                details.insert("event".into(), json!("updated"));
                details.insert("updated_at".into(), json!(update.at.to_string()));
                details.insert("update_id".into(), json!(update.id));
            }
        }
        event
    }

    /// Links into the Segment app: the resource's page when there is a known one, else the
    /// workspace.
    fn links(&self, alert: &AlertRecord) -> Vec<Value> {
        let Some(base) = self.app_base.as_deref() else {
            return Vec::new();
        };
        let base = base.trim().trim_end_matches('/');
        if base.is_empty() {
            return Vec::new();
        }
        match super::render::resource_link(base, alert.resource_kind, &alert.resource_id) {
            Some(href) => vec![json!({
                "href": href,
                "text": format!("{} in Segment", alert.resource_kind.as_str()),
            })],
            None => vec![json!({"href": base, "text": "Workspace in Segment"})],
        }
    }

    /// `segwatch sinks test`: a change event, which PagerDuty shows on the service's timeline
    /// and which opens no incident and pages nobody. A ruleset key (starting with `R`) cannot
    /// take change events, so for one the test is a `resolve` of a key no alert has, which
    /// PagerDuty accepts and drops.
    fn test_event(&self) -> Event {
        let key = self.routing_key.expose_secret();
        if key.starts_with('R') {
            return Event {
                endpoint: Endpoint::Events,
                body: json!({
                    "routing_key": key,
                    "event_action": "resolve",
                    "dedup_key": TEST_DEDUP_KEY,
                }),
            };
        }
        Event {
            endpoint: Endpoint::Change,
            body: json!({
                "routing_key": key,
                "payload": {
                    "summary": "segwatch test: this sink reaches PagerDuty (a change event: no incident, nobody paged)",
                    "source": "segwatch",
                    "custom_details": {"sent_by": "segwatch sinks test"},
                },
            }),
        }
    }

    async fn post(&self, event: &Event) -> Result<(), SendError> {
        let url = match event.endpoint {
            Endpoint::Events => &self.events_url,
            Endpoint::Change => &self.change_url,
        };
        let body = serde_json::to_vec(&event.body).expect("events serialise");
        let length = body.len();
        let response = self
            .client
            .post(url.clone())
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body)
            .send()
            .await
            .map_err(|e| SendError::Retryable {
                message: format!("PagerDuty request failed: {}", e.without_url()),
                retry_after: None,
            })?;
        let status = response.status();
        if status.is_success() {
            return Ok(());
        }
        let retry_after = crate::answer::retry_after(response.headers());
        let answer = self.redact(&describe_answer(&crate::answer::read_start(response).await));
        let message = format!("PagerDuty answered HTTP {status}: {answer}");
        let message = match status.as_u16() {
            413 => format!("{message} (body of {length} bytes)"),
            429 => format!("{message} (rate limited)"),
            _ => message,
        };
        Err(crate::answer::refused(status, retry_after, message))
    }

    /// `text` with the routing key, should PagerDuty ever quote it, replaced.
    fn redact(&self, text: &str) -> String {
        text.replace(self.routing_key.expose_secret(), "<routing key>")
    }
}

/// PagerDuty's answer for people: `message: errors; …` from its JSON error object, or the
/// start of the text.
fn describe_answer(text: &str) -> String {
    let described = match serde_json::from_str::<Value>(text) {
        Ok(Value::Object(o)) => {
            let mut parts: Vec<String> = Vec::new();
            for key in ["status", "message"] {
                if let Some(s) = o.get(key).and_then(Value::as_str) {
                    parts.push(s.to_owned());
                }
            }
            let errors: Vec<&str> = o
                .get("errors")
                .and_then(Value::as_array)
                .map(|es| es.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            let mut line = parts.join(": ");
            if !errors.is_empty() {
                line.push_str(&format!(" ({})", errors.join("; ")));
            }
            line
        }
        _ => text.trim().to_owned(),
    };
    truncate(&one_line(&described), 500)
}

/// PagerDuty's severity for segwatch's.
pub fn severity(s: Severity) -> &'static str {
    match s {
        Severity::Critical => "critical",
        Severity::High => "error",
        Severity::Medium => "warning",
        Severity::Low | Severity::Info => "info",
    }
}

/// The rule's title and the resource: `Workspace Owner granted: user alice@example.com`.
fn summary_line(alert: &AlertRecord) -> String {
    let name = if alert.resource_name.is_empty() {
        &alert.resource_id
    } else {
        &alert.resource_name
    };
    one_line(&format!(
        "{}: {} {}",
        alert.title,
        alert.resource_kind.as_str(),
        name
    ))
}

/// What a responder needs beside the summary, bounded ([`DETAIL_CHANGES`],
/// [`DETAIL_VALUE_CHARS`], [`DETAIL_TEXT_CHARS`], [`DETAIL_TAGS`]).
fn custom_details(alert: &AlertRecord) -> Value {
    let mut d = Map::new();
    let short = |s: &str| truncate(s, DETAIL_VALUE_CHARS);
    d.insert("workspace".into(), json!(short(&alert.workspace)));
    d.insert(
        "rule".into(),
        json!({"id": short(&alert.rule_id), "kind": alert.rule_kind, "title": short(&alert.title)}),
    );
    d.insert("severity".into(), json!(alert.severity.as_str()));
    d.insert(
        "resource".into(),
        json!({
            "kind": alert.resource_kind.as_str(),
            "id": short(&alert.resource_id),
            "name": short(&alert.resource_name),
        }),
    );
    d.insert(
        "summary".into(),
        json!(truncate(&alert.summary, DETAIL_TEXT_CHARS)),
    );
    d.insert("alert_id".into(), json!(alert.id.get()));
    d.insert("snapshot_id".into(), json!(alert.snapshot_id));
    d.insert("opened_at".into(), json!(alert.opened_at.to_string()));
    let who = &alert.attribution;
    if who.is_known() {
        d.insert(
            "actor".into(),
            json!({
                "id": who.actor.as_deref().map(short),
                "email": who.actor_email.as_deref().map(short),
                "event_type": who.event_type.as_deref().map(short),
                "event_id": who.event_id.as_deref().map(short),
            }),
        );
    }
    if let Some(changes) = alert.explanation["changes"].as_array() {
        let listed: Vec<Value> = changes
            .iter()
            .take(DETAIL_CHANGES)
            .map(|c| {
                json!({
                    "path": truncate(c["path"].as_str().unwrap_or_default(), DETAIL_VALUE_CHARS),
                    "old": show(&c["old"]),
                    "new": show(&c["new"]),
                })
            })
            .collect();
        d.insert("changes".into(), Value::Array(listed));
        if changes.len() > DETAIL_CHANGES {
            d.insert(
                "changes_not_listed".into(),
                json!(changes.len() - DETAIL_CHANGES),
            );
        }
    }
    d.insert(
        "remediation".into(),
        json!(truncate(&alert.remediation, DETAIL_TEXT_CHARS)),
    );
    d.insert(
        "tags".into(),
        json!(
            alert
                .tags
                .iter()
                .take(DETAIL_TAGS)
                .map(|t| truncate(t, DETAIL_TAG_CHARS))
                .collect::<Vec<_>>()
        ),
    );
    Value::Object(d)
}

/// A changed value as text: strings bare, `null` as `(none)`, the rest compact JSON; bounded.
fn show(v: &Value) -> String {
    let s = match v {
        Value::Null => "(none)".to_owned(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    truncate(&s, DETAIL_VALUE_CHARS)
}

#[cfg(test)]
#[path = "tests_pagerduty.rs"]
mod tests;
