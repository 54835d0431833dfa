//! A stand-in for Jira Cloud's REST API v3: the calls the Jira sink makes, in memory, checking
//! the documented shapes (basic auth, the JQL with the label, ADF documents, transitions by
//! id), recording every call, and able to be down, to hang after applying a call, or to lose
//! its answer.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU16, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use secrecy::SecretString;
use segwatch_sinks::jira::{JiraConfig, MAX_TEXT_FIELD_CHARS};
use segwatch_sinks::{Sink, SinkConfig, SinkFilter, SinkTarget};
use serde_json::{Value, json};

/// The account email the stand-in accepts.
pub const JIRA_EMAIL: &str = "secops@acme.io";
/// The API token the stand-in accepts. Distinctive, so a leak is easy to find.
pub const JIRA_TOKEN: &str = "jira-test-token-8c1e5f3a9d7b";
/// The project the stand-in holds.
pub const JIRA_PROJECT: &str = "SEC";
/// The issue types of the project.
pub const JIRA_ISSUE_TYPES: [&str; 2] = ["Task", "Bug"];

/// The workflow: statuses with their category, and one transition to each (named like it, as
/// in Jira's simplified workflows), by id.
const WORKFLOW: [(&str, &str, &str); 3] = [
    ("11", "To Do", "new"),
    ("21", "In Progress", "indeterminate"),
    ("31", "Done", "done"),
];

/// One request the stand-in received.
#[derive(Debug, Clone)]
pub struct Call {
    /// `GET`, `POST`.
    pub method: String,
    /// The path, without the query.
    pub path: String,
    /// The query string (empty when none).
    pub query: String,
    /// The JSON body, if any.
    pub body: Option<Value>,
    /// The status it answered (or would have, for a lost answer).
    pub status: u16,
}

/// An issue the stand-in holds.
#[derive(Debug, Clone)]
pub struct Issue {
    /// Numeric id (`10001`).
    pub id: String,
    /// Key (`SEC-1`).
    pub key: String,
    /// The fields it was created with (summary, description, labels, issuetype, priority).
    pub fields: Value,
    /// Current status name (`To Do`, `Done`).
    pub status: String,
    /// Comment bodies (ADF), oldest first.
    pub comments: Vec<Value>,
    /// Names of the transitions made, in order.
    pub transitions: Vec<String>,
}

impl Issue {
    /// Its labels.
    pub fn labels(&self) -> Vec<String> {
        self.fields["labels"]
            .as_array()
            .map(|ls| {
                ls.iter()
                    .filter_map(|l| l.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// How many comments contain `text`.
    pub fn comments_with(&self, text: &str) -> usize {
        self.comments
            .iter()
            .filter(|c| c.to_string().contains(text))
            .count()
    }
}

#[derive(Default)]
struct State {
    issues: Vec<Issue>,
    calls: Vec<Call>,
    next_id: u64,
}

/// A Jira Cloud stand-in on a loopback port.
pub struct JiraStandIn {
    /// `http://127.0.0.1:PORT`, the sink's `base_url`.
    pub base_url: String,
    state: Arc<Mutex<State>>,
    /// Status every call answers with instead of being served (200: up; 503: down; 429: rate
    /// limited, with `Retry-After: 7`; 401…).
    pub status: Arc<AtomicU16>,
    /// The next this many POSTs are applied, then their answer is lost (502).
    pub lose_answers: Arc<AtomicUsize>,
    /// `(method, path suffix)`: a matching call is applied, then the answer waits a minute (a
    /// process killed meanwhile never learns it succeeded).
    pub hang: Arc<Mutex<Option<(String, String)>>>,
}

impl JiraStandIn {
    /// Starts on a loopback port, up, with an empty project.
    pub async fn start() -> JiraStandIn {
        let state = Arc::new(Mutex::new(State {
            next_id: 10_001,
            ..State::default()
        }));
        let status = Arc::new(AtomicU16::new(200));
        let lose_answers = Arc::new(AtomicUsize::new(0));
        let hang = Arc::new(Mutex::new(None));
        let shared = Shared {
            state: state.clone(),
            status: status.clone(),
            lose_answers: lose_answers.clone(),
            hang: hang.clone(),
        };
        let app = axum::Router::new().fallback(
            move |method: Method, uri: Uri, headers: HeaderMap, body: Bytes| {
                let shared = shared.clone();
                async move { shared.handle(method, uri, headers, body).await }
            },
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base_url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        JiraStandIn {
            base_url,
            state,
            status,
            lose_answers,
            hang,
        }
    }

    /// Every call so far, in order.
    pub fn calls(&self) -> Vec<Call> {
        self.state.lock().unwrap().calls.clone()
    }

    /// The issues it holds, oldest first.
    pub fn issues(&self) -> Vec<Issue> {
        self.state.lock().unwrap().issues.clone()
    }

    /// The issues carrying `label`.
    pub fn issues_labelled(&self, label: &str) -> Vec<Issue> {
        self.issues()
            .into_iter()
            .filter(|i| i.labels().iter().any(|l| l == label))
            .collect()
    }

    /// Sets the status every call answers with (200 = up).
    pub fn set_status(&self, status: u16) {
        self.status.store(status, Ordering::SeqCst);
    }

    /// The sink's settings for this stand-in.
    pub fn config(&self) -> JiraConfig {
        JiraConfig {
            base_url: self.base_url.clone(),
            email: JIRA_EMAIL.into(),
            token: SecretString::from(JIRA_TOKEN),
            project: JIRA_PROJECT.into(),
            issue_type: "Task".into(),
            labels: vec!["posture".into()],
            resolve_transition: "Done".into(),
            reopen_transition: Some("To Do".into()),
            change_alerts: true,
            priorities: BTreeMap::new(),
        }
    }

    /// A Jira sink to this stand-in, sending resolutions too.
    pub fn sink(&self, config: JiraConfig) -> Sink {
        Sink::new(SinkConfig {
            name: "jira".into(),
            filter: SinkFilter {
                send_resolved: true,
                ..SinkFilter::default()
            },
            digest_threshold: 10,
            max_message_bytes: segwatch_sinks::DEFAULT_MAX_MESSAGE_BYTES,
            max_messages_per_run: segwatch_sinks::DEFAULT_MAX_MESSAGES_PER_RUN,
            max_attempts: 5,
            retry_backoff: segwatch_sinks::outbox::RetryBackoff::default(),
            target: SinkTarget::Jira(config),
            send_updates: None,
            app_base: None,
            templates: None,
        })
        .unwrap()
    }

    /// A `[[sinks]]` entry sending here, its token read from `JIRA_TOKEN_ENV`.
    pub fn sink_toml(&self) -> String {
        format!(
            "[[sinks]]\nname = \"jira\"\ntype = \"jira\"\nbase_url = \"{}\"\nemail = \"{JIRA_EMAIL}\"\n\
             token_env = \"{JIRA_TOKEN_ENV}\"\nproject = \"{JIRA_PROJECT}\"\nissue_type = \"Task\"\n\
             labels = [\"posture\"]\nreopen_transition = \"To Do\"\n",
            self.base_url
        )
    }
}

/// The environment variable [`JiraStandIn::sink_toml`] reads the token from.
pub const JIRA_TOKEN_ENV: &str = "SEGWATCH_TEST_JIRA_TOKEN";

#[derive(Clone)]
struct Shared {
    state: Arc<Mutex<State>>,
    status: Arc<AtomicU16>,
    lose_answers: Arc<AtomicUsize>,
    hang: Arc<Mutex<Option<(String, String)>>>,
}

/// A Jira error body.
fn jira_error(status: StatusCode, messages: &[&str], errors: Value) -> (StatusCode, Value) {
    (status, json!({"errorMessages": messages, "errors": errors}))
}

impl Shared {
    async fn handle(&self, method: Method, uri: Uri, headers: HeaderMap, body: Bytes) -> Response {
        let path = uri.path().to_owned();
        let query = uri.query().unwrap_or_default().to_owned();
        let json_body: Option<Value> = if body.is_empty() {
            None
        } else {
            serde_json::from_slice(&body).ok()
        };
        let down = self.status.load(Ordering::SeqCst);
        let (status, answer) = if down != 200 {
            let status = StatusCode::from_u16(down).unwrap();
            jira_error(status, &["The stand-in is set to fail."], json!({}))
        } else if !authorised(&headers) {
            jira_error(
                StatusCode::UNAUTHORIZED,
                &["Client must be authenticated to access this resource."],
                json!({}),
            )
        } else if !body.is_empty() && json_body.is_none() {
            jira_error(
                StatusCode::BAD_REQUEST,
                &["The body is not JSON."],
                json!({}),
            )
        } else {
            let mut state = self.state.lock().unwrap();
            serve(&mut state, &method, &path, &query, json_body.as_ref())
        };
        self.state.lock().unwrap().calls.push(Call {
            method: method.to_string(),
            path: path.clone(),
            query,
            body: json_body,
            status: status.as_u16(),
        });
        let hang = self
            .hang
            .lock()
            .unwrap()
            .as_ref()
            .is_some_and(|(m, suffix)| *m == method.as_str() && path.ends_with(suffix.as_str()));
        if hang {
            tokio::time::sleep(Duration::from_secs(60)).await;
        }
        if method == Method::POST
            && self
                .lose_answers
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                .is_ok()
        {
            return (StatusCode::BAD_GATEWAY, "the answer was lost").into_response();
        }
        let mut response = if answer.is_null() {
            status.into_response()
        } else {
            (status, axum::Json(answer)).into_response()
        };
        if status == StatusCode::TOO_MANY_REQUESTS {
            response
                .headers_mut()
                .insert("retry-after", "7".parse().unwrap());
        }
        response
    }
}

/// Whether the request carries `Authorization: Basic base64(email:token)`.
fn authorised(headers: &HeaderMap) -> bool {
    let expected = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{JIRA_EMAIL}:{JIRA_TOKEN}"))
    );
    headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v == expected)
}

fn not_found_issue() -> (StatusCode, Value) {
    jira_error(
        StatusCode::NOT_FOUND,
        &["Issue does not exist or you do not have permission to see it."],
        json!({}),
    )
}

/// Serves one authorised call.
fn serve(
    state: &mut State,
    method: &Method,
    path: &str,
    query: &str,
    body: Option<&Value>,
) -> (StatusCode, Value) {
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    match (method.as_str(), segments.as_slice()) {
        ("GET", ["rest", "api", "3", "myself"]) => (
            StatusCode::OK,
            json!({"accountId": "5b10ac8d82e05b22cc7d4ef5", "emailAddress": JIRA_EMAIL, "displayName": "SecOps bot", "active": true}),
        ),
        ("GET", ["rest", "api", "3", "project", key]) if *key == JIRA_PROJECT => (
            StatusCode::OK,
            json!({
                "id": "10000", "key": JIRA_PROJECT, "name": "Security",
                "issueTypes": JIRA_ISSUE_TYPES.iter().map(|n| json!({"name": n})).collect::<Vec<_>>(),
            }),
        ),
        ("GET", ["rest", "api", "3", "project", key]) => jira_error(
            StatusCode::NOT_FOUND,
            &[&format!("No project could be found with key '{key}'.")],
            json!({}),
        ),
        ("POST", ["rest", "api", "3", "search", "jql"]) => search(state, body),
        ("POST", ["rest", "api", "3", "issue"]) => create(state, body),
        (_, ["rest", "api", "3", "issue", key, what]) => {
            let Some(issue) = state
                .issues
                .iter_mut()
                .find(|i| i.key == *key || i.id == *key)
            else {
                return not_found_issue();
            };
            match (method.as_str(), *what) {
                ("GET", "comment") => comments(issue, query),
                ("POST", "comment") => {
                    let Some(doc) = body.and_then(|b| b.get("body")) else {
                        return jira_error(
                            StatusCode::BAD_REQUEST,
                            &[],
                            json!({"comment": "Comment body can not be empty!"}),
                        );
                    };
                    if let Err(e) = check_text_field(doc) {
                        return jira_error(StatusCode::BAD_REQUEST, &[], json!({"comment": e}));
                    }
                    issue.comments.push(doc.clone());
                    (
                        StatusCode::CREATED,
                        json!({"id": (issue.comments.len() + 20_000).to_string(), "body": doc}),
                    )
                }
                ("GET", "transitions") => (
                    StatusCode::OK,
                    json!({"transitions": available(issue).map(|(id, name, category)| json!({
                        "id": id, "name": name,
                        "to": {"name": name, "statusCategory": {"key": category}},
                    })).collect::<Vec<_>>()}),
                ),
                ("POST", "transitions") => {
                    let id = body
                        .and_then(|b| b["transition"]["id"].as_str())
                        .unwrap_or_default()
                        .to_owned();
                    let Some((_, name, _)) = available(issue).find(|(i, _, _)| *i == id) else {
                        return jira_error(
                            StatusCode::BAD_REQUEST,
                            &[&format!(
                                "Transition id '{id}' is not valid for this issue."
                            )],
                            json!({}),
                        );
                    };
                    issue.status = name.to_owned();
                    issue.transitions.push(name.to_owned());
                    (StatusCode::NO_CONTENT, Value::Null)
                }
                _ => jira_error(
                    StatusCode::METHOD_NOT_ALLOWED,
                    &["Not supported."],
                    json!({}),
                ),
            }
        }
        _ => jira_error(
            StatusCode::NOT_FOUND,
            &[&format!("The stand-in does not serve {method} {path}")],
            json!({}),
        ),
    }
}

/// The transitions an issue can take: to every status but its own.
fn available(issue: &Issue) -> impl Iterator<Item = (&'static str, &'static str, &'static str)> {
    let status = issue.status.clone();
    WORKFLOW
        .into_iter()
        .filter(move |(_, name, _)| *name != status)
}

fn category(status: &str) -> &'static str {
    WORKFLOW
        .iter()
        .find(|(_, name, _)| *name == status)
        .map_or("new", |(_, _, c)| c)
}

/// `POST /rest/api/3/search/jql`: only `project = "KEY" AND labels = "LABEL"`, optionally
/// `ORDER BY created ASC`, is understood.
fn search(state: &State, body: Option<&Value>) -> (StatusCode, Value) {
    let Some(body) = body else {
        return jira_error(StatusCode::BAD_REQUEST, &["A body is required."], json!({}));
    };
    let jql = body["jql"].as_str().unwrap_or_default();
    let Some((project, label)) = parse_jql(jql) else {
        return jira_error(
            StatusCode::BAD_REQUEST,
            &[&format!(
                "Error in the JQL Query: the stand-in cannot read {jql:?}"
            )],
            json!({}),
        );
    };
    let fields: Vec<&str> = match body.get("fields") {
        None => Vec::new(),
        Some(Value::Array(fs)) if fs.iter().all(Value::is_string) => {
            fs.iter().filter_map(Value::as_str).collect()
        }
        Some(_) => {
            return jira_error(
                StatusCode::BAD_REQUEST,
                &["fields must be a list of strings."],
                json!({}),
            );
        }
    };
    if let Some(reconcile) = body.get("reconcileIssues")
        && !reconcile
            .as_array()
            .is_some_and(|ids| ids.len() <= 50 && ids.iter().all(Value::is_u64))
    {
        return jira_error(
            StatusCode::BAD_REQUEST,
            &["reconcileIssues must be at most 50 issue ids (numbers)."],
            json!({}),
        );
    }
    let max = body["maxResults"].as_u64().unwrap_or(50) as usize;
    let issues: Vec<Value> = state
        .issues
        .iter()
        .filter(|i| project == JIRA_PROJECT && i.labels().contains(&label))
        .take(max)
        .map(|i| {
            let mut shown = serde_json::Map::new();
            for f in &fields {
                let value = match *f {
                    "status" => {
                        json!({"name": i.status, "statusCategory": {"key": category(&i.status)}})
                    }
                    other => i.fields.get(other).cloned().unwrap_or(Value::Null),
                };
                shown.insert((*f).to_owned(), value);
            }
            json!({"id": i.id, "key": i.key, "fields": shown})
        })
        .collect();
    (StatusCode::OK, json!({"issues": issues, "isLast": true}))
}

/// `project = "KEY" AND labels = "LABEL"` (and an optional `ORDER BY created ASC`).
fn parse_jql(jql: &str) -> Option<(String, String)> {
    let jql = jql.strip_suffix(" ORDER BY created ASC").unwrap_or(jql);
    let (project, labels) = jql.split_once(" AND ")?;
    let quoted = |clause: &str, field: &str| {
        let value = clause
            .strip_prefix(field)?
            .strip_prefix(" = \"")?
            .strip_suffix('"')?;
        (!value.contains('"')).then(|| value.to_owned())
    };
    Some((quoted(project, "project")?, quoted(labels, "labels")?))
}

/// `POST /rest/api/3/issue`, checked like Jira checks it.
fn create(state: &mut State, body: Option<&Value>) -> (StatusCode, Value) {
    let Some(fields) = body.and_then(|b| b["fields"].as_object()) else {
        return jira_error(
            StatusCode::BAD_REQUEST,
            &["fields are required."],
            json!({}),
        );
    };
    let mut errors = serde_json::Map::new();
    for key in fields.keys() {
        if ![
            "project",
            "issuetype",
            "summary",
            "description",
            "labels",
            "priority",
        ]
        .contains(&key.as_str())
        {
            errors.insert(
                key.clone(),
                json!(format!(
                    "Field '{key}' cannot be set. It is not on the appropriate screen, or unknown."
                )),
            );
        }
    }
    if fields["project"]["key"] != JIRA_PROJECT {
        errors.insert("project".into(), json!("valid project is required"));
    }
    if !JIRA_ISSUE_TYPES
        .iter()
        .any(|t| fields["issuetype"]["name"] == *t)
    {
        errors.insert("issuetype".into(), json!("Specify a valid issue type"));
    }
    match fields["summary"].as_str() {
        Some(s) if !s.trim().is_empty() && s.chars().count() <= 255 && !s.contains('\n') => {}
        _ => {
            errors.insert(
                "summary".into(),
                json!("Summary must be one line of 1 to 255 characters."),
            );
        }
    }
    if let Err(e) = check_text_field(&fields["description"]) {
        errors.insert("description".into(), json!(e));
    }
    let labels_ok = fields["labels"].as_array().is_some_and(|ls| {
        ls.iter().all(|l| {
            l.as_str().is_some_and(|l| {
                !l.is_empty() && l.chars().count() <= 255 && !l.chars().any(char::is_whitespace)
            })
        })
    });
    if !labels_ok {
        errors.insert(
            "labels".into(),
            json!("The label must not contain spaces and be at most 255 characters."),
        );
    }
    if let Some(priority) = fields.get("priority")
        && !["Highest", "High", "Medium", "Low", "Lowest"]
            .iter()
            .any(|p| priority["name"] == *p)
    {
        errors.insert("priority".into(), json!("Specify a valid priority"));
    }
    if !errors.is_empty() {
        return (
            StatusCode::BAD_REQUEST,
            json!({"errorMessages": [], "errors": errors}),
        );
    }
    let id = state.next_id;
    state.next_id += 1;
    let key = format!("{JIRA_PROJECT}-{}", state.issues.len() + 1);
    state.issues.push(Issue {
        id: id.to_string(),
        key: key.clone(),
        fields: Value::Object(fields.clone()),
        status: "To Do".into(),
        comments: Vec::new(),
        transitions: Vec::new(),
    });
    (
        StatusCode::CREATED,
        json!({"id": id.to_string(), "key": key, "self": format!("/rest/api/3/issue/{id}")}),
    )
}

/// `GET /rest/api/3/issue/{key}/comment?orderBy=…&maxResults=…`.
fn comments(issue: &Issue, query: &str) -> (StatusCode, Value) {
    let params: BTreeMap<&str, &str> = query.split('&').filter_map(|p| p.split_once('=')).collect();
    let max = params
        .get("maxResults")
        .and_then(|m| m.parse::<usize>().ok())
        .unwrap_or(50)
        .min(100);
    let newest_first = match params.get("orderBy").copied() {
        None | Some("created") | Some("%2Bcreated") | Some("+created") => false,
        Some("-created") => true,
        Some(other) => {
            return jira_error(
                StatusCode::BAD_REQUEST,
                &[&format!("orderBy {other} is not supported.")],
                json!({}),
            );
        }
    };
    let mut all: Vec<Value> = issue
        .comments
        .iter()
        .enumerate()
        .map(|(i, body)| json!({"id": (20_001 + i).to_string(), "body": body}))
        .collect();
    if newest_first {
        all.reverse();
    }
    let total = all.len();
    all.truncate(max);
    (
        StatusCode::OK,
        json!({"startAt": 0, "maxResults": max, "total": total, "comments": all}),
    )
}

/// A rich-text field: a valid ADF document within Jira's text field limit.
fn check_text_field(doc: &Value) -> Result<(), String> {
    check_adf(doc)?;
    let size = doc.to_string().chars().count();
    if size > MAX_TEXT_FIELD_CHARS {
        return Err(format!(
            "The entered text is too long. It exceeds the allowed limit of 32,767 characters ({size})."
        ));
    }
    Ok(())
}

/// Checks `doc` against the ADF structure: `{"type": "doc", "version": 1, "content": [...]}`
/// of block nodes, inline nodes inside, known marks, no empty text.
pub fn check_adf(doc: &Value) -> Result<(), String> {
    if doc["type"] != "doc" || doc["version"] != 1 {
        return Err("not an ADF document (type doc, version 1)".into());
    }
    let content = doc["content"]
        .as_array()
        .ok_or("a document needs content")?;
    for node in content {
        check_block(node)?;
    }
    Ok(())
}

fn check_keys(node: &Value, allowed: &[&str]) -> Result<(), String> {
    let object = node.as_object().ok_or("a node is not an object")?;
    match object.keys().find(|k| !allowed.contains(&k.as_str())) {
        Some(k) => Err(format!("unexpected `{k}` in a {} node", node["type"])),
        None => Ok(()),
    }
}

fn check_block(node: &Value) -> Result<(), String> {
    let kind = node["type"].as_str().unwrap_or_default();
    match kind {
        "paragraph" => {
            check_keys(node, &["type", "content", "attrs"])?;
            for inline in node["content"].as_array().into_iter().flatten() {
                check_inline(inline)?;
            }
            Ok(())
        }
        "heading" => {
            check_keys(node, &["type", "content", "attrs"])?;
            if !node["attrs"]["level"]
                .as_u64()
                .is_some_and(|l| (1..=6).contains(&l))
            {
                return Err("a heading needs attrs.level 1 to 6".into());
            }
            for inline in node["content"].as_array().into_iter().flatten() {
                check_inline(inline)?;
            }
            Ok(())
        }
        "bulletList" | "orderedList" => {
            check_keys(node, &["type", "content", "attrs"])?;
            let items = node["content"]
                .as_array()
                .filter(|i| !i.is_empty())
                .ok_or("a list needs items")?;
            for item in items {
                check_keys(item, &["type", "content"])?;
                if item["type"] != "listItem" {
                    return Err("a list holds listItem nodes".into());
                }
                let blocks = item["content"]
                    .as_array()
                    .filter(|b| !b.is_empty())
                    .ok_or("a listItem needs content")?;
                for b in blocks {
                    check_block(b)?;
                }
            }
            Ok(())
        }
        "codeBlock" => {
            check_keys(node, &["type", "content", "attrs"])?;
            for inline in node["content"].as_array().into_iter().flatten() {
                if inline["type"] != "text" || inline.get("marks").is_some() {
                    return Err("a codeBlock holds unmarked text".into());
                }
                check_inline(inline)?;
            }
            Ok(())
        }
        "rule" => check_keys(node, &["type"]),
        other => Err(format!("`{other}` is not a block node the stand-in knows")),
    }
}

fn check_inline(node: &Value) -> Result<(), String> {
    match node["type"].as_str().unwrap_or_default() {
        "text" => {
            check_keys(node, &["type", "text", "marks"])?;
            if node["text"].as_str().is_none_or(str::is_empty) {
                return Err("a text node needs non-empty text".into());
            }
            for mark in node["marks"].as_array().into_iter().flatten() {
                match mark["type"].as_str().unwrap_or_default() {
                    "strong" | "em" | "code" | "strike" | "underline" => {
                        check_keys(mark, &["type"])?
                    }
                    "link" => {
                        check_keys(mark, &["type", "attrs"])?;
                        if mark["attrs"]["href"].as_str().is_none_or(str::is_empty) {
                            return Err("a link mark needs attrs.href".into());
                        }
                    }
                    other => return Err(format!("`{other}` is not a mark")),
                }
            }
            Ok(())
        }
        "hardBreak" => check_keys(node, &["type"]),
        other => Err(format!(
            "`{other}` is not an inline node the stand-in knows"
        )),
    }
}
