//! Jira Cloud sink: one issue per finding, kept through the finding's lifecycle.
//!
//! Each finding (and each change alert) is one issue, found again by a label carrying its
//! [`AlertRecord::finding_uid`] (`segwatch-<32 hex>`): every event first searches for it, so a
//! restart or a lost response never makes a second issue.
//!
//! - **Raised**, no issue: create one (summary, an ADF description with the content of the email,
//!   labels `[uid, "segwatch", configured…]`, optional priority by severity).
//! - **Raised**, issue found (a finding that resolved and regressed, or raised while its issue
//!   was still open): when the issue is in a done status and `reopen_transition` is set, move it
//!   back; then comment that it re-opened (or was raised again), with the details.
//! - **Updated** (an open finding whose resource changed and still fails): comment "Changed
//!   while open" with the new details (summary, who made the change); the event id is
//!   `alert-42-updated-<update id>`, one per update. No issue found is a permanent error, as
//!   for a resolution.
//! - **Resolved**: comment with the resolution, then move the issue by `resolve_transition`
//!   (default `Done`) unless it already is in a done status; a name the issue's workflow lacks
//!   is a permanent error naming the transitions it has.
//!
//! **Repeats:** the outbox delivers at least once, so the same event can come twice (a kill
//! between Jira's answer and the delivery being marked sent). Every description and comment
//! ends with the event's id (`event alert-42-raised`, as the webhook's `X-Segwatch-Event`), and
//! before writing one the sink looks for that id in the issue's description and its
//! [`RECENT_COMMENTS`] most recent comments: a repeat writes nothing twice. Transitions are
//! made only from the state they change (done or not), so they are idempotent too.
//!
//! Jira's search is eventually consistent ("recent updates might not be immediately visible");
//! issues this process created are passed as `reconcileIssues` so its own searches see them at
//! once. After a lost create response the next attempt comes after the sink's retry backoff
//! (30 s by default), long after Jira's index caught up.
//!
//! API reference (Jira Cloud platform REST API v3,
//! <https://developer.atlassian.com/cloud/jira/platform/rest/v3/>):
//! - `POST /rest/api/3/search/jql` (`jql`, `fields`, `maxResults`, `reconcileIssues`; answers
//!   `issues` and `isLast`): the enhanced JQL search. `GET/POST /rest/api/3/search` were
//!   deprecated on 31 October 2024 and removed on 1 August 2025
//!   (<https://community.atlassian.com/forums/Jira-articles/Avoiding-Pitfalls-A-Guide-to-Smooth-Migration-to-Enhanced-JQL/ba-p/2985433>,
//!   <https://docs.adaptavist.com/sr4jc/latest/release-notes/breaking-changes/atlassian-rest-api-search-endpoints-deprecation>);
//! - `POST /rest/api/3/issue` (`{"fields": {project, issuetype, summary, description, labels,
//!   priority}}`, answers `id` and `key`);
//! - `GET /rest/api/3/issue/{key}/comment?orderBy=-created&maxResults=N` (a page of
//!   `comments`) and `POST` of `{"body": ADF}`;
//! - `GET /rest/api/3/issue/{key}/transitions` (`transitions`: `id`, `name`, `to`) and `POST`
//!   of `{"transition": {"id": …}}` (answers 204);
//! - `GET /rest/api/3/myself` and `GET /rest/api/3/project/{key}` (with its `issueTypes`);
//! - basic auth with the account's email and an API token; errors as
//!   `{"errorMessages": [...], "errors": {field: message}}`.
//!
//! Rich text is the Atlassian Document Format
//! (<https://developer.atlassian.com/cloud/jira/platform/apis/document/structure>): a
//! `{"type": "doc", "version": 1, "content": [...]}` of block nodes (paragraph, heading,
//! bulletList of listItem) holding text nodes of at least one character, with marks (strong,
//! code, link). A text field holds at most 32,767 characters ("The entered text is too long. It
//! exceeds the allowed limit of 32,767 characters.", JRACLOUD-59124; reported in
//! HASecuritySolutions/VulnWhisperer#151 and mozilla/jira-bugzilla-integration#180).

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use reqwest::Method;
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Value, json};

use super::render::{Templates, alert_context, truncate};
use super::slack::chain;
use super::{Measure, Message, SendError};
use segwatch_core::alerts::{AlertRecord, AlertStatus};
use segwatch_core::rules::Severity;

/// Most characters Jira Cloud keeps in a text field (the description, a comment). The ADF JSON
/// is measured, which is at least as long as the text Jira counts.
pub const MAX_TEXT_FIELD_CHARS: usize = 32_767;
/// Most characters of an issue's summary.
pub const MAX_SUMMARY_CHARS: usize = 255;
/// Most characters of one label (labels cannot contain spaces either).
pub const MAX_LABEL_CHARS: usize = 255;
/// How many of an issue's most recent comments are checked for a repeated event.
pub const RECENT_COMMENTS: usize = 50;
/// Largest response body read from Jira; a larger one fails the call (retried).
pub const MAX_RESPONSE_BYTES: usize = 4 * 1024 * 1024;
/// Default `resolve_transition`.
pub const DEFAULT_RESOLVE_TRANSITION: &str = "Done";
/// How long one request may take, connection included.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(15);
/// How many issues created by this process are remembered for `reconcileIssues`.
const KNOWN_ISSUES: usize = 10_000;
/// How many characters of Jira's error an error message quotes.
const REPLY_CHARS: usize = 300;

/// A Jira sink's settings.
#[derive(Debug, Clone)]
pub struct JiraConfig {
    /// `https://<site>.atlassian.net` (`http://` only to a loopback host, for tests).
    pub base_url: String,
    /// The Atlassian account's email (basic auth user).
    pub email: String,
    /// The account's API token (a secret).
    pub token: SecretString,
    /// Project key (`SEC`).
    pub project: String,
    /// Issue type name (`Task`, `Bug`).
    pub issue_type: String,
    /// Labels added to every issue besides the uid and `segwatch`.
    pub labels: Vec<String>,
    /// Transition moving an issue to done when its finding resolves.
    pub resolve_transition: String,
    /// Transition moving a done issue back when its finding re-opens (none: comment only).
    pub reopen_transition: Option<String>,
    /// Whether change alerts get issues (one each); when not, they are skipped.
    pub change_alerts: bool,
    /// Priority name per severity (unset severities: the project's default priority).
    pub priorities: BTreeMap<Severity, String>,
}

/// Why a Jira sink cannot be built. Never contains the token.
#[derive(Debug, thiserror::Error)]
pub enum JiraConfigError {
    /// `base_url` is not an https URL (or http to loopback).
    #[error("invalid Jira base_url: {0}")]
    BaseUrl(String),
    /// A field is empty or malformed.
    #[error("invalid Jira {field}: {reason}")]
    Field {
        /// The configuration key.
        field: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// The HTTP client could not be built.
    #[error("cannot build the HTTP client: {0}")]
    Client(String),
}

/// Delivers alert events to Jira Cloud. Clones share what they learnt of created issues.
#[derive(Clone)]
pub struct JiraSink {
    config: Arc<JiraConfig>,
    base: reqwest::Url,
    client: reqwest::Client,
    app_base: Option<String>,
    templates: Arc<Templates>,
    /// Issues created by this process, by finding uid: their ids, for `reconcileIssues`.
    known: Arc<Mutex<HashMap<String, u64>>>,
}

impl fmt::Debug for JiraSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JiraSink")
            .field("base_url", &self.config.base_url)
            .field("email", &self.config.email)
            .field("token", &"[redacted]")
            .field("project", &self.config.project)
            .field("issue_type", &self.config.issue_type)
            .finish_non_exhaustive()
    }
}

/// Whether `key` is a Jira project key: an uppercase letter, then uppercase letters, digits or
/// underscores (what Jira accepts; it also keeps the JQL free of quoting problems).
pub fn valid_project_key(key: &str) -> bool {
    let mut chars = key.chars();
    chars.next().is_some_and(|c| c.is_ascii_uppercase())
        && chars.all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
}

/// Why `label` cannot be a Jira label, if it cannot.
pub fn label_problem(label: &str) -> Option<String> {
    if label.is_empty() {
        Some("a label cannot be empty".to_owned())
    } else if label.chars().any(char::is_whitespace) {
        Some(format!("label `{label}` contains a space"))
    } else if label.chars().count() > MAX_LABEL_CHARS {
        Some(format!("a label is at most {MAX_LABEL_CHARS} characters"))
    } else {
        None
    }
}

/// Whether the URL's host is loopback, the only place `http://` is allowed.
fn is_loopback(url: &reqwest::Url) -> bool {
    url.host_str().is_some_and(|host| {
        host.eq_ignore_ascii_case("localhost")
            || host
                .trim_start_matches('[')
                .trim_end_matches(']')
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_loopback())
    })
}

/// An issue found by its label.
#[derive(Debug)]
struct Found {
    key: String,
    done: bool,
    /// The description as JSON text (to look for an event id).
    description: String,
}

impl JiraSink {
    /// A sink for `config`, linking resources under `app_base` when given. Checks the
    /// settings; does not connect.
    pub fn new(
        config: JiraConfig,
        app_base: Option<String>,
        templates: Arc<Templates>,
    ) -> Result<JiraSink, JiraConfigError> {
        let base = reqwest::Url::parse(config.base_url.trim())
            .map_err(|e| JiraConfigError::BaseUrl(format!("it does not parse: {e}")))?;
        match base.scheme() {
            "https" => {}
            "http" if is_loopback(&base) => {}
            _ => {
                return Err(JiraConfigError::BaseUrl(
                    "it must be https://<site>.atlassian.net (http:// only to a loopback host)"
                        .into(),
                ));
            }
        }
        let field = |field: &'static str, reason: String| JiraConfigError::Field { field, reason };
        if config.email.trim().is_empty() || !config.email.contains('@') {
            return Err(field(
                "email",
                "expected the Atlassian account's email".into(),
            ));
        }
        if !valid_project_key(&config.project) {
            return Err(field(
                "project",
                format!(
                    "`{}` is not a project key (uppercase letters, digits, `_`, starting with a letter)",
                    config.project
                ),
            ));
        }
        if config.issue_type.trim().is_empty() {
            return Err(field("issue_type", "it is empty".into()));
        }
        if config.resolve_transition.trim().is_empty() {
            return Err(field("resolve_transition", "it is empty".into()));
        }
        if let Some(problem) = config.labels.iter().find_map(|l| label_problem(l)) {
            return Err(field("labels", problem));
        }
        let client = reqwest::Client::builder()
            .timeout(REQUEST_TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("segwatch/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| JiraConfigError::Client(e.without_url().to_string()))?;
        Ok(JiraSink {
            config: Arc::new(config),
            base,
            client,
            app_base: app_base.filter(|b| !b.trim().is_empty()),
            templates,
            known: Arc::new(Mutex::new(HashMap::new())),
        })
    }

    /// The description's size against Jira's limit (always within it: it is shortened to fit).
    pub fn measure(&self, msg: &Message<'_>) -> Result<Measure, SendError> {
        let size = match *msg {
            Message::Alert(a) => chars(&self.description(a)),
            Message::Update { alert, update } => chars(
                &self.comment_body_for(alert, UPDATED, &update_event_id(alert, update))["body"],
            ),
            _ => 0,
        };
        Ok(Measure {
            size,
            limit: MAX_TEXT_FIELD_CHARS,
            what: "Jira description characters (ADF JSON)",
        })
    }

    /// Delivers `msg` once: see the module documentation for what each event does.
    pub async fn send(&self, msg: &Message<'_>) -> Result<(), SendError> {
        match *msg {
            Message::Alert(alert) => self.send_alert(alert).await,
            Message::Update { alert, update } => self.send_update(alert, update).await,
            // The outbox sends a sink that tracks findings each event on its own.
            Message::Digest { .. } | Message::Summary(_) => Err(SendError::Permanent {
                message: "a Jira sink files one alert event at a time, not a digest or a summary"
                    .to_owned(),
            }),
            Message::Test => self.test().await,
        }
    }

    /// `segwatch sinks test`: the credentials (`GET /myself`), the project and its issue type
    /// (`GET /project/{key}`); creates nothing.
    async fn test(&self) -> Result<(), SendError> {
        self.call(Method::GET, "/rest/api/3/myself", None).await?;
        let path = format!("/rest/api/3/project/{}", self.config.project);
        let project = self.call(Method::GET, &path, None).await?;
        if let Some(types) = project["issueTypes"].as_array() {
            let names: Vec<&str> = types.iter().filter_map(|t| t["name"].as_str()).collect();
            if !names
                .iter()
                .any(|n| n.eq_ignore_ascii_case(&self.config.issue_type))
            {
                return Err(SendError::Permanent {
                    message: format!(
                        "Jira project {} has no issue type `{}` (it has: {})",
                        self.config.project,
                        self.config.issue_type,
                        names.join(", ")
                    ),
                });
            }
        }
        Ok(())
    }

    async fn send_alert(&self, alert: &AlertRecord) -> Result<(), SendError> {
        if alert.rule_kind == "change" && !self.config.change_alerts {
            tracing::debug!(
                alert = alert.id.get(),
                "change alerts are off for this Jira sink"
            );
            return Ok(());
        }
        let uid = alert.finding_uid();
        let resolved = alert.status == AlertStatus::Resolved;
        let event = event_id(alert);
        let found = self.search(&uid).await?;
        match (resolved, found) {
            (false, None) => self.create(alert, &uid).await,
            (false, Some(issue)) => {
                if issue.description.contains(&event) || self.commented(&issue, &event).await? {
                    tracing::debug!(issue = %issue.key, event = %event, "already delivered to Jira");
                    return Ok(());
                }
                let reopen = issue.done && self.config.reopen_transition.is_some();
                if let Some(name) = self.config.reopen_transition.as_deref()
                    && issue.done
                {
                    self.transition(&issue.key, name, "reopen_transition")
                        .await?;
                }
                let body =
                    self.comment_body(alert, if reopen { "Re-opened" } else { "Raised again" });
                self.comment(&issue.key, &body).await
            }
            (true, None) => Err(SendError::Permanent {
                message: format!(
                    "no Jira issue in project {} carries label {uid}: nothing to resolve (was the finding raised before this sink was configured, or the issue deleted?)",
                    self.config.project
                ),
            }),
            (true, Some(issue)) => {
                if !self.commented(&issue, &event).await? {
                    let body = self.comment_body(alert, "Resolved");
                    self.comment(&issue.key, &body).await?;
                }
                if !issue.done {
                    self.transition(
                        &issue.key,
                        &self.config.resolve_transition,
                        "resolve_transition",
                    )
                    .await?;
                }
                Ok(())
            }
        }
    }

    /// An update of an open finding: a comment on its issue, once per update.
    async fn send_update(
        &self,
        alert: &AlertRecord,
        update: crate::Update,
    ) -> Result<(), SendError> {
        if alert.rule_kind == "change" && !self.config.change_alerts {
            return Ok(());
        }
        let uid = alert.finding_uid();
        let event = update_event_id(alert, update);
        let Some(issue) = self.search(&uid).await? else {
            return Err(SendError::Permanent {
                message: format!(
                    "no Jira issue in project {} carries label {uid}: nothing to update (was the finding raised before this sink was configured, or the issue deleted?)",
                    self.config.project
                ),
            });
        };
        if self.commented(&issue, &event).await? {
            tracing::debug!(issue = %issue.key, event = %event, "already delivered to Jira");
            return Ok(());
        }
        let body = self.comment_body_for(alert, UPDATED, &event);
        self.comment(&issue.key, &body).await
    }

    /// The issue labelled `uid` in the project, the oldest if several.
    async fn search(&self, uid: &str) -> Result<Option<Found>, SendError> {
        let mut body = search_body(&self.config.project, uid);
        let known = self.known.lock().expect("not poisoned").get(uid).copied();
        if let Some(id) = known {
            body["reconcileIssues"] = json!([id]);
        }
        let answer = self
            .call(Method::POST, "/rest/api/3/search/jql", Some(&body))
            .await?;
        let Some(issue) = answer["issues"].as_array().and_then(|i| i.first()) else {
            return Ok(None);
        };
        let key = issue["key"].as_str().unwrap_or_default().to_owned();
        if !valid_issue_key(&key) {
            return Err(SendError::Permanent {
                message: format!("Jira's search answered an issue without a usable key: {key:?}"),
            });
        }
        let fields = &issue["fields"];
        Ok(Some(Found {
            key,
            done: fields["status"]["statusCategory"]["key"] == "done",
            description: fields["description"].to_string(),
        }))
    }

    async fn create(&self, alert: &AlertRecord, uid: &str) -> Result<(), SendError> {
        let body = self.create_body(alert, uid)?;
        let created = self
            .call(Method::POST, "/rest/api/3/issue", Some(&body))
            .await?;
        let key = created["key"].as_str().unwrap_or_default();
        tracing::info!(issue = key, uid, "Jira issue created");
        if let Some(id) = created["id"].as_str().and_then(|id| id.parse::<u64>().ok()) {
            let mut known = self.known.lock().expect("not poisoned");
            if known.len() >= KNOWN_ISSUES {
                known.clear();
            }
            known.insert(uid.to_owned(), id);
        }
        Ok(())
    }

    /// The body of `POST /rest/api/3/issue` for `alert`.
    fn create_body(&self, alert: &AlertRecord, uid: &str) -> Result<Value, SendError> {
        let summary = self
            .templates
            .subject(&Message::Alert(alert), self.app_base.as_deref())
            .map_err(|e| SendError::Permanent {
                message: format!("cannot render the Jira summary: {e}"),
            })?;
        let mut labels = vec![uid.to_owned(), "segwatch".to_owned()];
        for l in &self.config.labels {
            if !labels.contains(l) {
                labels.push(l.clone());
            }
        }
        let mut fields = json!({
            "project": {"key": self.config.project},
            "issuetype": {"name": self.config.issue_type},
            "summary": truncate(&summary, MAX_SUMMARY_CHARS),
            "description": self.description(alert),
            "labels": labels,
        });
        if let Some(priority) = self.config.priorities.get(&alert.severity) {
            fields["priority"] = json!({"name": priority});
        }
        Ok(json!({"fields": fields}))
    }

    /// The issue's description: the email's content in ADF, within [`MAX_TEXT_FIELD_CHARS`].
    fn description(&self, alert: &AlertRecord) -> Value {
        let view = alert_context(alert, self.app_base.as_deref());
        let footer = footer(alert);
        fit(|caps| description_doc(&view, caps, &footer))
    }

    /// A comment on a re-opened, raised-again or resolved finding.
    fn comment_body(&self, alert: &AlertRecord, what: &str) -> Value {
        self.comment_body_for(alert, what, &event_id(alert))
    }

    /// A comment whose footer carries `event`.
    fn comment_body_for(&self, alert: &AlertRecord, what: &str, event: &str) -> Value {
        let view = alert_context(alert, self.app_base.as_deref());
        let footer = footer_with(alert, event);
        json!({"body": fit(|caps| comment_doc(&view, what, caps, &footer))})
    }

    /// Whether one of the issue's recent comments carries `event`.
    async fn commented(&self, issue: &Found, event: &str) -> Result<bool, SendError> {
        let path = format!(
            "/rest/api/3/issue/{}/comment?orderBy=-created&maxResults={RECENT_COMMENTS}",
            issue.key
        );
        let page = self.call(Method::GET, &path, None).await?;
        Ok(page["comments"]
            .as_array()
            .is_some_and(|cs| cs.iter().any(|c| c["body"].to_string().contains(event))))
    }

    async fn comment(&self, key: &str, body: &Value) -> Result<(), SendError> {
        let path = format!("/rest/api/3/issue/{key}/comment");
        self.call(Method::POST, &path, Some(body)).await?;
        Ok(())
    }

    /// Moves the issue by the transition named `name` (case-insensitive), set by `setting`.
    async fn transition(&self, key: &str, name: &str, setting: &str) -> Result<(), SendError> {
        let path = format!("/rest/api/3/issue/{key}/transitions");
        let list = self.call(Method::GET, &path, None).await?;
        let transitions = list["transitions"].as_array().cloned().unwrap_or_default();
        let Some(id) = transitions
            .iter()
            .find(|t| {
                t["name"]
                    .as_str()
                    .is_some_and(|n| n.eq_ignore_ascii_case(name))
            })
            .and_then(|t| t["id"].as_str())
        else {
            let available: Vec<String> = transitions
                .iter()
                .filter_map(|t| t["name"].as_str().map(|n| format!("`{n}`")))
                .collect();
            return Err(SendError::Permanent {
                message: format!(
                    "Jira issue {key} has no transition named `{name}` ({setting}); available: {}",
                    if available.is_empty() {
                        "none".to_owned()
                    } else {
                        available.join(", ")
                    }
                ),
            });
        };
        self.call(Method::POST, &path, Some(&transition_body(id)))
            .await?;
        tracing::info!(issue = key, transition = name, "Jira issue transitioned");
        Ok(())
    }

    /// One request; its JSON answer (`Null` when empty), or the classified failure.
    async fn call(
        &self,
        method: Method,
        path_and_query: &str,
        body: Option<&Value>,
    ) -> Result<Value, SendError> {
        let url = self
            .base
            .join(path_and_query)
            .map_err(|e| SendError::Permanent {
                message: format!("cannot build the Jira URL {path_and_query}: {e}"),
            })?;
        let path = path_and_query.split('?').next().unwrap_or_default();
        let what = format!("Jira {method} {path}");
        let mut request = self
            .client
            .request(method, url)
            .basic_auth(&self.config.email, Some(self.config.token.expose_secret()))
            .header(reqwest::header::ACCEPT, "application/json");
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request.send().await.map_err(|e| SendError::Retryable {
            message: self.scrub(&format!("cannot reach {what}: {}", chain(e.without_url()))),
            retry_after: None,
        })?;
        let status = response.status();
        let retry_after = crate::answer::retry_after(response.headers());
        if status.is_success() {
            let text = match read_limited(response, MAX_RESPONSE_BYTES).await {
                Ok(text) => text,
                Err(why) => {
                    return Err(SendError::Retryable {
                        message: format!("{what}: {why}"),
                        retry_after: None,
                    });
                }
            };
            if text.trim().is_empty() {
                return Ok(Value::Null);
            }
            return serde_json::from_str(&text).map_err(|e| SendError::Retryable {
                message: format!("{what} answered HTTP {}, not JSON: {e}", status.as_u16()),
                retry_after: None,
            });
        }
        // A refusal is classified by its status, whatever its body: only its start is quoted.
        let text = crate::answer::read_start(response).await;
        let details = self.scrub(&error_details(&text));
        let message = if details.is_empty() {
            format!("{what} answered HTTP {}", status.as_u16())
        } else {
            format!("{what} answered HTTP {}: {details}", status.as_u16())
        };
        tracing::warn!(status = status.as_u16(), error = %message, "Jira refused a request");
        Err(crate::answer::refused(status, retry_after, message))
    }

    /// `text` without the token, should anything have echoed it.
    fn scrub(&self, text: &str) -> String {
        let token = self.config.token.expose_secret();
        if token.is_empty() {
            text.to_owned()
        } else {
            text.replace(token, "[token]")
        }
    }
}

/// The event's id, as the webhook's `X-Segwatch-Event`, written into each description and
/// comment so that a repeat is recognised: `event alert-42-raised`.
fn event_id(alert: &AlertRecord) -> String {
    let event = if alert.status == AlertStatus::Resolved {
        "resolved"
    } else {
        "raised"
    };
    format!("event alert-{}-{event}", alert.id)
}

/// The lead of an update's comment.
const UPDATED: &str = "Changed while open";

/// The event id of an update of `alert` (`event alert-42-updated-7`).
fn update_event_id(alert: &AlertRecord, update: crate::Update) -> String {
    format!("event alert-{}-updated-{}", alert.id, update.id)
}

/// The last paragraph of every description and comment: the workspace, the uid and the event id.
fn footer(alert: &AlertRecord) -> String {
    footer_with(alert, &event_id(alert))
}

/// [`footer`] with the event id `event`.
fn footer_with(alert: &AlertRecord, event: &str) -> String {
    format!(
        "segwatch · workspace {} · finding {} · {event}",
        truncate(&alert.workspace, 200),
        alert.finding_uid(),
    )
}

/// The JQL search for the issue labelled `uid` (`POST /rest/api/3/search/jql`).
pub fn search_body(project: &str, uid: &str) -> Value {
    json!({
        "jql": format!("project = \"{project}\" AND labels = \"{uid}\" ORDER BY created ASC"),
        "fields": ["status", "description"],
        "maxResults": 1,
    })
}

/// The body of `POST /rest/api/3/issue/{key}/transitions`.
pub fn transition_body(id: &str) -> Value {
    json!({"transition": {"id": id}})
}

/// Whether `key` looks like an issue key or id (safe in a URL path).
fn valid_issue_key(key: &str) -> bool {
    !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

/// Jira's `errorMessages` and `errors` (`{"errorMessages": [..], "errors": {field: msg}}`), or
/// the start of a body that is not that, on one line and short.
fn error_details(body: &str) -> String {
    let line = match serde_json::from_str::<Value>(body) {
        Ok(v) if v.get("errorMessages").is_some() || v.get("errors").is_some() => {
            let mut parts: Vec<String> = v["errorMessages"]
                .as_array()
                .map(|ms| {
                    ms.iter()
                        .filter_map(|m| m.as_str().map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default();
            if let Some(errors) = v["errors"].as_object() {
                for (field, message) in errors {
                    let message = message.as_str().map_or(message.to_string(), str::to_owned);
                    parts.push(format!("{field}: {message}"));
                }
            }
            parts.join("; ")
        }
        _ => body.to_owned(),
    };
    truncate(
        &line.split_whitespace().collect::<Vec<_>>().join(" "),
        REPLY_CHARS,
    )
}

/// The body as text, reading at most `limit` bytes.
async fn read_limited(mut response: reqwest::Response, limit: usize) -> Result<String, String> {
    if response.content_length().is_some_and(|n| n > limit as u64) {
        return Err(format!("the answer is larger than {limit} bytes"));
    }
    let mut bytes = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|e| format!("reading the answer failed: {}", chain(e.without_url())))?
    {
        if bytes.len() + chunk.len() > limit {
            return Err(format!("the answer is larger than {limit} bytes"));
        }
        bytes.extend_from_slice(&chunk);
    }
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

// ---------------------------------------------------------------------------------------------
// Atlassian Document Format

/// How much of each part a document keeps; halved until the document fits.
#[derive(Debug, Clone, Copy)]
struct Caps {
    /// Characters of one text.
    text: usize,
    /// Items of one list.
    items: usize,
}

/// The first document `build` makes within [`MAX_TEXT_FIELD_CHARS`], halving the caps each
/// time (a dozen renders at most); the smallest caps always fit.
fn fit(build: impl Fn(Caps) -> Value) -> Value {
    let mut caps = Caps {
        text: 4_000,
        items: 100,
    };
    loop {
        let doc = build(caps);
        if chars(&doc) <= MAX_TEXT_FIELD_CHARS || caps.text <= 50 {
            return doc;
        }
        caps = Caps {
            text: caps.text / 2,
            items: (caps.items / 2).max(1),
        };
    }
}

/// Characters of `v` as JSON.
fn chars(v: &Value) -> usize {
    serde_json::to_string(v).map_or(0, |s| s.chars().count())
}

fn doc(content: Vec<Value>) -> Value {
    json!({"type": "doc", "version": 1, "content": content})
}

/// A text node, none for empty text (ADF requires at least one character).
fn text(s: &str, marks: &[Value]) -> Option<Value> {
    if s.is_empty() {
        return None;
    }
    Some(if marks.is_empty() {
        json!({"type": "text", "text": s})
    } else {
        json!({"type": "text", "text": s, "marks": marks})
    })
}

fn plain(s: &str) -> Option<Value> {
    text(s, &[])
}

fn strong(s: &str) -> Option<Value> {
    text(s, &[json!({"type": "strong"})])
}

fn code(s: &str) -> Option<Value> {
    text(s, &[json!({"type": "code"})])
}

fn link(s: &str, href: &str) -> Option<Value> {
    text(s, &[json!({"type": "link", "attrs": {"href": href}})])
}

/// A paragraph of the given inline nodes; none when they are all empty.
fn para(inline: impl IntoIterator<Item = Option<Value>>) -> Option<Value> {
    let content: Vec<Value> = inline.into_iter().flatten().collect();
    (!content.is_empty()).then(|| json!({"type": "paragraph", "content": content}))
}

fn heading(s: &str) -> Value {
    json!({"type": "heading", "attrs": {"level": 3}, "content": [{"type": "text", "text": s}]})
}

/// A bullet list, one paragraph per item; none when empty. Past `caps.items`, a last item
/// says how many were left out.
fn bullets(items: Vec<Vec<Option<Value>>>, caps: Caps) -> Option<Value> {
    let total = items.len();
    let mut list: Vec<Value> = items
        .into_iter()
        .take(caps.items)
        .filter_map(para)
        .map(|p| json!({"type": "listItem", "content": [p]}))
        .collect();
    if total > caps.items {
        let more = format!("… and {} more", total - caps.items);
        list.push(json!({"type": "listItem", "content": [para([plain(&more)])]}));
    }
    (!list.is_empty()).then(|| json!({"type": "bulletList", "content": list}))
}

fn s<'a>(v: &'a Value, key: &str) -> &'a str {
    v[key].as_str().unwrap_or_default()
}

/// `s` cut to `caps.text` characters.
fn cut(s: &str, caps: Caps) -> String {
    truncate(s, caps.text)
}

/// The resource line, the attribution and the link: what every document says first.
fn resource_blocks(view: &Value, caps: Caps) -> Vec<Option<Value>> {
    let resource = format!(
        " {} ({} {})",
        cut(s(view, "resource_name"), caps),
        s(view, "resource_kind"),
        cut(s(view, "resource_id"), caps)
    );
    vec![
        para([strong("Resource:"), plain(&resource)]),
        para([plain(&cut(s(view, "attribution"), caps))]),
        view["link"]
            .as_str()
            .and_then(|href| para([link("Open in Segment", href)])),
    ]
}

/// What changed (fields before → after), as a list.
fn changes_list(view: &Value, caps: Caps) -> Option<Value> {
    let items = view["changes"]
        .as_array()
        .map(|cs| {
            cs.iter()
                .map(|c| {
                    vec![
                        code(&cut(s(c, "path"), caps)),
                        plain(": "),
                        plain(&cut(s(c, "old"), caps)),
                        plain(" → "),
                        plain(&cut(s(c, "new"), caps)),
                    ]
                })
                .collect()
        })
        .unwrap_or_default();
    bullets(items, caps)
}

/// The description of a new issue: the email's content.
fn description_doc(view: &Value, caps: Caps, footer: &str) -> Value {
    let mut blocks: Vec<Option<Value>> = vec![para([
        strong(s(view, "label")),
        plain(": "),
        plain(&cut(s(view, "title"), caps)),
    ])];
    blocks.extend(resource_blocks(view, caps));
    blocks.push(para([plain(&cut(s(view, "summary"), caps))]));
    if let Some(list) = changes_list(view, caps) {
        blocks.push(Some(heading("What changed")));
        blocks.push(Some(list));
    }
    let remediation = s(view, "remediation").trim();
    if !remediation.is_empty() {
        blocks.push(Some(heading("Remediation")));
        blocks.extend(
            cut(remediation, caps)
                .lines()
                .map(|l| para([plain(l.trim())])),
        );
    }
    let values: Vec<Vec<Option<Value>>> = view["values"]
        .as_array()
        .map(|vs| {
            vs.iter()
                .map(|v| {
                    vec![
                        code(&cut(s(v, "expr"), caps)),
                        plain(" = "),
                        plain(&cut(s(v, "value"), caps)),
                    ]
                })
                .collect()
        })
        .unwrap_or_default();
    if let Some(list) = bullets(values, caps) {
        blocks.push(Some(heading("What the rule saw")));
        if let Some(condition) = view["condition"].as_str() {
            blocks.push(para([code(&cut(condition, caps))]));
        }
        blocks.push(Some(list));
    }
    let rule = format!(
        "Rule: {} ({}) · snapshot {} · {}",
        s(view, "rule_id"),
        s(view, "rule_kind"),
        view["snapshot_id"],
        s(view, "opened_at")
    );
    blocks.push(para([plain(&rule)]));
    let tags: Vec<&str> = view["tags"]
        .as_array()
        .map(|ts| ts.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    if !tags.is_empty() {
        blocks.push(para([plain(&cut(
            &format!("Tags: {}", tags.join(", ")),
            caps,
        ))]));
    }
    blocks.push(para([plain(footer)]));
    doc(blocks.into_iter().flatten().collect())
}

/// A comment: `what` (Re-opened, Raised again, Resolved) and the details of the event.
fn comment_doc(view: &Value, what: &str, caps: Caps, footer: &str) -> Value {
    let resolved = view["resolved"].as_bool().unwrap_or(false);
    let mut blocks: Vec<Option<Value>> = Vec::new();
    if resolved {
        let when = view["resolved_at"]
            .as_str()
            .map(|t| format!(" ({t})"))
            .unwrap_or_default();
        let why = format!(
            " by segwatch: {}{when}.",
            cut(s(view, "resolution_text"), caps)
        );
        blocks.push(para([strong(what), plain(&why)]));
        blocks.extend(resource_blocks(view, caps));
        let was = format!("Finding was: {}", cut(s(view, "summary"), caps));
        blocks.push(para([plain(&was)]));
    } else {
        let head = format!(
            " by segwatch ({}): {}",
            s(view, "label"),
            cut(s(view, "summary"), caps)
        );
        blocks.push(para([strong(what), plain(&head)]));
        blocks.extend(resource_blocks(view, caps));
        if let Some(list) = changes_list(view, caps) {
            blocks.push(para([strong("What changed")]));
            blocks.push(Some(list));
        }
        let remediation = s(view, "remediation").trim();
        if !remediation.is_empty() {
            blocks.push(para([
                strong("Remediation: "),
                plain(&cut(remediation, caps)),
            ]));
        }
        let rule = format!(
            "Rule: {} · snapshot {} · {}",
            s(view, "rule_id"),
            view["snapshot_id"],
            s(view, "opened_at")
        );
        blocks.push(para([plain(&rule)]));
    }
    blocks.push(para([plain(footer)]));
    doc(blocks.into_iter().flatten().collect())
}

#[cfg(test)]
#[path = "tests_jira.rs"]
mod tests;
