//! Message rendering: email subjects and bodies from minijinja templates, Slack Block Kit
//! payloads.
//!
//! The email subject, plain-text body and HTML body come from three templates with built-in
//! defaults ([`SUBJECT_TEMPLATE`], [`TEXT_TEMPLATE`], [`HTML_TEMPLATE`]); a directory of
//! overrides may replace any of them ([`Templates::with_overrides`]). The HTML template is
//! auto-escaped. Every template sees the same context:
//!
//! - `kind`: `"alert"`, `"digest"`, `"summary"` or `"test"`;
//! - `alert` (for `kind == "alert"`): the alert as described below;
//! - `digest` (for `kind == "digest"`): `snapshot_id`, `total`, `counts` (a list of
//!   `{severity, label, count}`, most severe first), `counts_text` (`2 critical, 5 high`),
//!   `alerts` (at most [`DIGEST_LIMIT`] alerts) and `more` (how many were left out);
//! - `summary` (for `kind == "summary"`, the last message of a run that reached the sink's
//!   `max_messages_per_run`): `count` (alerts not listed), `counts_text`, `rules` (a list of
//!   `{rule_id, count}`), `more_rules`, `command` (how to list them) and `text` (all of it in
//!   one paragraph ending with the count and the command). Override templates should handle it.
//!
//! An alert has `id`, `rule_id`, `rule_kind`, `severity` (`high`), `label` (`HIGH`), `title`,
//! `resource_kind`, `resource_id`, `resource_name`, `status` (`fired`, `open`, `resolved`),
//! `resolved` (bool), `updated` (bool: an update of an open finding whose resource changed
//! while it still fails; `kind` is then `"alert"` too), `resolution` (`compliant`, … or none), `resolution_text` (a sentence),
//! `summary`, `remediation`, `tags`, `opened_at`, `resolved_at`, `snapshot_id`, `condition`,
//! `values` (`{expr, value}` with shortened values), `changes` (`{path, old, new}`, shortened,
//! change alerts only), `link` (the resource in the Segment app, when one is known), `actor`,
//! `actor_email` and `event_type` (from the audit trail, when known) and `attribution` (one
//! line: `Made by alice@acme.io (User Policy Updated)`, `Actor unknown: …` for a change alert
//! no audit event matched, none for a finding no known change opened), `workspace` (the
//! configured name), `command` (the `segwatch alerts` command listing it, in full),
//! `digest_changes` (at most [`DIGEST_CHANGES`] changes with values shortened to
//! [`DIGEST_VALUE_CHARS`], what a digest shows) and `more_changes` (how many it leaves out).
//!
//! The built-in Slack payload is built in code rather than from a template, so that it always
//! stays within Slack's Block Kit limits and its text is always escaped; its `text` fallback
//! (what notifications show) is the rendered subject. An override directory may add
//! [`SLACK_FILE`], a template that renders the whole Slack JSON payload from the same context
//! (use the `tojson` filter for values); its output must be a JSON object.

use std::path::{Path, PathBuf};

use minijinja::Environment;
use serde::Serialize;
use serde_json::{Value, json};

use super::{Message, Summary};
use segwatch_core::alerts::{AlertRecord, AlertStatus};
use segwatch_core::ids::{AlertId, SnapshotId};
use segwatch_core::model::ResourceKind;
use segwatch_core::rules::Severity;
use segwatch_core::time::Timestamp;
use slack::{
    SLACK_MAX_BLOCKS, SLACK_SECTION_CHARS, esc, slack_alert_blocks, slack_digest_blocks,
    slack_summary_blocks, slack_test_blocks,
};

/// File name of the subject template.
pub const SUBJECT_FILE: &str = "subject.txt.j2";
/// File name of the plain-text body template.
pub const TEXT_FILE: &str = "email.txt.j2";
/// File name of the HTML body template (auto-escaped).
pub const HTML_FILE: &str = "email.html.j2";
/// File name of an optional template replacing the built-in Slack payload (no built-in).
pub const SLACK_FILE: &str = "slack.json.j2";

/// Built-in subject template (one line; whitespace is collapsed after rendering).
pub const SUBJECT_TEMPLATE: &str = include_str!("templates/subject.txt.j2");
/// Built-in plain-text body template.
pub const TEXT_TEMPLATE: &str = include_str!("templates/email.txt.j2");
/// Built-in HTML body template.
pub const HTML_TEMPLATE: &str = include_str!("templates/email.html.j2");

/// How many alerts a digest lists before saying "and N more".
pub const DIGEST_LIMIT: usize = 50;

/// How many characters of an old or new value a change shows.
const VALUE_CHARS: usize = 120;

/// How many changed fields each alert of a digest shows (the rest are counted).
pub const DIGEST_CHANGES: usize = 3;
/// How many characters of an old or new value, or of a field's path, a digest shows.
pub const DIGEST_VALUE_CHARS: usize = 60;

/// Why templates could not be loaded or rendered.
#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    /// The override directory or one of its files could not be read.
    #[error("cannot read template override {path}: {source}")]
    Read {
        /// The file or directory.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A file in the override directory is not one of the known template names.
    #[error(
        "unknown template override {path}: expected one of {SUBJECT_FILE}, {TEXT_FILE}, {HTML_FILE}"
    )]
    Unknown {
        /// The file.
        path: PathBuf,
    },
    /// An override does not compile.
    #[error("template override {path} does not compile: {message}")]
    Compile {
        /// The file.
        path: PathBuf,
        /// minijinja's description, with the line.
        message: String,
    },
    /// A template failed while rendering.
    #[error("template {name} failed to render: {message}")]
    Render {
        /// The template's file name.
        name: &'static str,
        /// minijinja's description, with the line.
        message: String,
    },
}

/// The compiled templates: the built-ins, possibly with some replaced by overrides.
#[derive(Debug)]
pub struct Templates {
    env: Environment<'static>,
    /// Whether [`SLACK_FILE`] was given.
    slack_override: bool,
}

impl Templates {
    /// The built-in templates.
    pub fn builtin() -> Templates {
        let mut env = base_env();
        for (name, source) in builtin_sources() {
            env.add_template(name, source)
                .expect("built-in templates compile");
        }
        Templates {
            env,
            slack_override: false,
        }
    }

    /// The built-ins, with every file of `dir` named like one of them ([`SUBJECT_FILE`],
    /// [`TEXT_FILE`], [`HTML_FILE`]) replacing it. Other `.j2` files are an error (a misspelt
    /// override would otherwise be silently ignored); other files are ignored.
    pub fn with_overrides(dir: &Path) -> Result<Templates, RenderError> {
        let read_err = |path: &Path| {
            let path = path.to_path_buf();
            move |source| RenderError::Read { path, source }
        };
        let mut overrides = Vec::new();
        for entry in std::fs::read_dir(dir).map_err(read_err(dir))? {
            let path = entry.map_err(read_err(dir))?.path();
            let Some(file) = path.file_name().and_then(|f| f.to_str()) else {
                continue;
            };
            let known = builtin_sources()
                .iter()
                .map(|(n, _)| *n)
                .chain([SLACK_FILE])
                .find(|n| *n == file);
            let Some(name) = known else {
                if file.ends_with(".j2") {
                    return Err(RenderError::Unknown { path });
                }
                continue;
            };
            let source = std::fs::read_to_string(&path).map_err(read_err(&path))?;
            overrides.push((name, path, source));
        }
        let mut env = base_env();
        for (name, source) in builtin_sources() {
            env.add_template(name, source)
                .expect("built-in templates compile");
        }
        let slack_override = overrides.iter().any(|(name, _, _)| *name == SLACK_FILE);
        for (name, path, source) in overrides {
            env.add_template_owned(name, source)
                .map_err(|e| RenderError::Compile {
                    path,
                    message: describe(&e),
                })?;
        }
        Ok(Templates {
            env,
            slack_override,
        })
    }

    /// The email subject: `[segwatch][HIGH] Workspace Owner granted: alice@example.com`, or for
    /// a digest `[segwatch] 37 alerts from snapshot 12 (2 critical, 5 high)`. Always one line.
    pub fn subject(
        &self,
        msg: &Message<'_>,
        app_base: Option<&str>,
    ) -> Result<String, RenderError> {
        let raw = self.render(SUBJECT_FILE, msg, app_base)?;
        Ok(one_line(&raw))
    }

    /// The plain-text body.
    pub fn text(&self, msg: &Message<'_>, app_base: Option<&str>) -> Result<String, RenderError> {
        self.render(TEXT_FILE, msg, app_base)
    }

    /// The HTML body (every value escaped).
    pub fn html(&self, msg: &Message<'_>, app_base: Option<&str>) -> Result<String, RenderError> {
        self.render(HTML_FILE, msg, app_base)
    }

    /// The Slack Block Kit payload: `text` (the subject, for notifications) and `blocks`.
    pub fn slack(&self, msg: &Message<'_>, app_base: Option<&str>) -> Result<Value, RenderError> {
        if self.slack_override {
            let raw = self.render(SLACK_FILE, msg, app_base)?;
            return match serde_json::from_str::<Value>(&raw) {
                Ok(payload) if payload.is_object() => Ok(payload),
                Ok(_) => Err(RenderError::Render {
                    name: SLACK_FILE,
                    message: "the output is not a JSON object".into(),
                }),
                Err(e) => Err(RenderError::Render {
                    name: SLACK_FILE,
                    message: format!("the output is not JSON: {e}"),
                }),
            };
        }
        let text = self.subject(msg, app_base)?;
        let blocks = match *msg {
            Message::Alert(alert) => slack_alert_blocks(&AlertView::new(alert, app_base)),
            Message::Update { alert, .. } => {
                slack_alert_blocks(&AlertView::new(alert, app_base).updated())
            }
            Message::Digest {
                alerts,
                snapshot_id,
            } => slack_digest_blocks(&DigestView::new(alerts, snapshot_id, app_base)),
            Message::Summary(summary) => slack_summary_blocks(summary),
            Message::Test => slack_test_blocks(),
        };
        debug_assert!(blocks.len() <= SLACK_MAX_BLOCKS);
        // The fallback is mrkdwn too: escape it like the blocks.
        Ok(json!({"text": truncate(&esc(&text), SLACK_SECTION_CHARS), "blocks": blocks}))
    }

    /// The Microsoft Teams message: an Adaptive Card in the envelope a Teams Workflows webhook
    /// takes (see [`teams`]). Built in code; no template overrides it.
    pub fn teams(&self, msg: &Message<'_>, app_base: Option<&str>) -> Value {
        match *msg {
            Message::Alert(alert) => teams::teams_alert(&AlertView::new(alert, app_base)),
            Message::Update { alert, .. } => {
                teams::teams_alert(&AlertView::new(alert, app_base).updated())
            }
            Message::Digest {
                alerts,
                snapshot_id,
            } => teams::teams_digest(&DigestView::new(alerts, snapshot_id, app_base)),
            Message::Summary(summary) => teams::teams_summary(summary),
            Message::Test => teams::teams_test(),
        }
    }

    fn render(
        &self,
        name: &'static str,
        msg: &Message<'_>,
        app_base: Option<&str>,
    ) -> Result<String, RenderError> {
        let ctx = Context::new(msg, app_base);
        let template = self
            .env
            .get_template(name)
            .map_err(|e| RenderError::Render {
                name,
                message: describe(&e),
            })?;
        template
            .render(minijinja::value::Serde(&ctx))
            .map_err(|e| RenderError::Render {
                name,
                message: describe(&e),
            })
    }
}

impl Default for Templates {
    fn default() -> Self {
        Templates::builtin()
    }
}

fn builtin_sources() -> [(&'static str, &'static str); 3] {
    [
        (SUBJECT_FILE, SUBJECT_TEMPLATE),
        (TEXT_FILE, TEXT_TEMPLATE),
        (HTML_FILE, HTML_TEMPLATE),
    ]
}

fn base_env() -> Environment<'static> {
    let mut env = Environment::new();
    env.set_syntax(
        minijinja::syntax::SyntaxConfig::builder()
            .trim_blocks(true)
            .lstrip_blocks(true)
            .keep_trailing_newline(true)
            .build()
            .expect("the default delimiters are valid"),
    );
    env
}

/// A minijinja error with its line and any cause, on one line (also used by the report).
pub fn describe(e: &minijinja::Error) -> String {
    let mut out = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Template context

#[derive(Serialize)]
struct Context {
    kind: &'static str,
    alert: Option<AlertView>,
    digest: Option<DigestView>,
    summary: Option<SummaryView>,
}

#[derive(Serialize)]
struct SummaryView {
    count: usize,
    counts_text: String,
    rules: Vec<RuleCountView>,
    more_rules: usize,
    command: String,
    text: String,
}

#[derive(Serialize)]
struct RuleCountView {
    rule_id: String,
    count: usize,
}

impl SummaryView {
    fn new(s: &Summary) -> SummaryView {
        SummaryView {
            count: s.count,
            counts_text: summary_counts(s),
            rules: s
                .rules
                .iter()
                .map(|(rule_id, count)| RuleCountView {
                    rule_id: rule_id.clone(),
                    count: *count,
                })
                .collect(),
            more_rules: s.more_rules,
            command: s.command.clone(),
            text: summary_text(s),
        }
    }
}

/// `2 critical, 5 high`.
fn summary_counts(s: &Summary) -> String {
    s.severities
        .iter()
        .map(|(severity, n)| format!("{n} {}", severity.as_str()))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A summary in one paragraph, ending with how many alerts it does not list and the command
/// that lists them.
pub fn summary_text(s: &Summary) -> String {
    let mut rules: Vec<String> = s
        .rules
        .iter()
        .map(|(rule, n)| format!("{rule} ({n})"))
        .collect();
    if s.more_rules > 0 {
        rules.push(format!("{} more rules", s.more_rules));
    }
    format!(
        "segwatch reached this sink's message limit for the run (max_messages_per_run). \
         Severities: {}. Rules: {}. {} alert{} not listed; list them with: {}",
        summary_counts(s),
        rules.join(", "),
        s.count,
        if s.count == 1 { "" } else { "s" },
        s.command
    )
}

impl Context {
    fn new(msg: &Message<'_>, app_base: Option<&str>) -> Context {
        match *msg {
            Message::Alert(a) => Context {
                kind: "alert",
                alert: Some(AlertView::new(a, app_base)),
                digest: None,
                summary: None,
            },
            // An update renders as its finding, worded as changed while open.
            Message::Update { alert, .. } => Context {
                kind: "alert",
                alert: Some(AlertView::new(alert, app_base).updated()),
                digest: None,
                summary: None,
            },
            Message::Digest {
                alerts,
                snapshot_id,
            } => Context {
                kind: "digest",
                alert: None,
                digest: Some(DigestView::new(alerts, snapshot_id, app_base)),
                summary: None,
            },
            Message::Summary(s) => Context {
                kind: "summary",
                alert: None,
                digest: None,
                summary: Some(SummaryView::new(s)),
            },
            Message::Test => Context {
                kind: "test",
                alert: None,
                digest: None,
                summary: None,
            },
        }
    }
}

#[derive(Serialize)]
struct AlertView {
    id: AlertId,
    rule_id: String,
    rule_kind: String,
    severity: &'static str,
    label: String,
    #[serde(skip)]
    severity_level: Severity,
    title: String,
    resource_kind: &'static str,
    resource_id: String,
    resource_name: String,
    status: &'static str,
    resolved: bool,
    /// An update: the finding's resource changed while it is open and still fails.
    updated: bool,
    resolution: Option<String>,
    resolution_text: Option<String>,
    summary: String,
    remediation: String,
    tags: Vec<String>,
    opened_at: Timestamp,
    resolved_at: Option<Timestamp>,
    snapshot_id: SnapshotId,
    condition: Option<String>,
    values: Vec<ValueView>,
    changes: Vec<ChangeView>,
    link: Option<String>,
    actor: Option<String>,
    actor_email: Option<String>,
    event_type: Option<String>,
    attribution: Option<String>,
    workspace: String,
    command: String,
    digest_changes: Vec<ChangeView>,
    more_changes: usize,
}

#[derive(Serialize)]
struct ValueView {
    expr: String,
    value: String,
}

#[derive(Serialize)]
struct ChangeView {
    path: String,
    old: String,
    new: String,
}

impl AlertView {
    fn new(a: &AlertRecord, app_base: Option<&str>) -> AlertView {
        let explanation = &a.explanation;
        let values = explanation["values"]
            .as_array()
            .map(|vs| {
                vs.iter()
                    .map(|v| ValueView {
                        expr: v["expr"].as_str().unwrap_or_default().to_owned(),
                        value: match v.get("error") {
                            Some(err) => format!("error: {}", show_value(err)),
                            None => show_value(&v["value"]),
                        },
                    })
                    .collect()
            })
            .unwrap_or_default();
        let changes: Vec<ChangeView> = explanation["changes"]
            .as_array()
            .map(|cs| {
                cs.iter()
                    .map(|c| ChangeView {
                        path: c["path"].as_str().unwrap_or_default().to_owned(),
                        old: show_value(&c["old"]),
                        new: show_value(&c["new"]),
                    })
                    .collect()
            })
            .unwrap_or_default();
        let digest_changes = changes
            .iter()
            .take(DIGEST_CHANGES)
            .map(|c| ChangeView {
                path: truncate(&c.path, DIGEST_VALUE_CHARS),
                old: truncate(&c.old, DIGEST_VALUE_CHARS),
                new: truncate(&c.new, DIGEST_VALUE_CHARS),
            })
            .collect();
        let more_changes = changes.len().saturating_sub(DIGEST_CHANGES);
        let resolved = a.status == AlertStatus::Resolved;
        AlertView {
            id: a.id,
            rule_id: a.rule_id.clone(),
            rule_kind: a.rule_kind.clone(),
            severity: a.severity.as_str(),
            label: a.severity.as_str().to_uppercase(),
            severity_level: a.severity,
            title: a.title.clone(),
            resource_kind: a.resource_kind.as_str(),
            resource_id: a.resource_id.clone(),
            resource_name: a.resource_name.clone(),
            status: a.status.as_str(),
            resolved,
            updated: false,
            resolution: a.resolution.clone(),
            resolution_text: resolved.then(|| resolution_text(a.resolution.as_deref())),
            summary: a.summary.clone(),
            remediation: a.remediation.clone(),
            tags: a.tags.clone(),
            opened_at: a.opened_at,
            resolved_at: a.resolved_at,
            snapshot_id: a.snapshot_id,
            condition: explanation["condition"].as_str().map(str::to_owned),
            values,
            changes,
            link: app_base.and_then(|base| resource_link(base, a.resource_kind, &a.resource_id)),
            actor: a.attribution.actor.clone(),
            actor_email: a.attribution.actor_email.clone(),
            event_type: a.attribution.event_type.clone(),
            attribution: attribution_line(a),
            workspace: a.workspace.clone(),
            command: alert_command(a),
            digest_changes,
            more_changes,
        }
    }
}

impl AlertView {
    /// The view of an update of the finding.
    fn updated(self) -> AlertView {
        AlertView {
            updated: true,
            ..self
        }
    }
}

/// One alert's template context (the fields listed in the module documentation) as JSON, for
/// sinks that build their payloads in code from the same content as the email (Jira's ADF).
pub(crate) fn alert_context(a: &AlertRecord, app_base: Option<&str>) -> Value {
    serde_json::to_value(AlertView::new(a, app_base)).expect("alert views serialise")
}

/// The `segwatch alerts` command listing `a` in full (its explanation with `--format json`):
/// its workspace, rule and status.
pub fn alert_command(a: &AlertRecord) -> String {
    format!(
        "segwatch --workspace {} alerts --rule {} --status {} --format json",
        shell_word(&a.workspace),
        shell_word(&a.rule_id),
        a.status.as_str()
    )
}

/// `s` as one shell word: bare when it is plain, otherwise single-quoted.
fn shell_word(s: &str) -> String {
    let plain = !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':' | '/' | '@'));
    if plain {
        s.to_owned()
    } else {
        format!("'{}'", one_line(s).replace('\'', "'\\''"))
    }
}

/// Who made what the alert is about, as one line: `Made by alice@acme.io (User Policy
/// Updated)`; for a change alert no audit event matched, `Actor unknown: …`; for a finding
/// nobody's change opened, nothing.
fn attribution_line(a: &AlertRecord) -> Option<String> {
    let who = &a.attribution;
    if who.is_known() {
        Some(format!("Made {}", who.describe()))
    } else if a.rule_kind == "change" && !segwatch_core::alerts::is_meta(&a.rule_id) {
        Some("Actor unknown: no audit trail event matched this change".to_owned())
    } else {
        None
    }
}

#[derive(Serialize)]
struct DigestView {
    snapshot_id: SnapshotId,
    total: usize,
    counts: Vec<CountView>,
    counts_text: String,
    alerts: Vec<AlertView>,
    more: usize,
}

#[derive(Serialize)]
struct CountView {
    severity: &'static str,
    label: String,
    count: usize,
}

impl DigestView {
    fn new(alerts: &[AlertRecord], snapshot_id: SnapshotId, app_base: Option<&str>) -> DigestView {
        let counts: Vec<CountView> = Severity::ALL
            .iter()
            .rev()
            .filter_map(|&s| {
                let count = alerts.iter().filter(|a| a.severity == s).count();
                (count > 0).then(|| CountView {
                    severity: s.as_str(),
                    label: s.as_str().to_uppercase(),
                    count,
                })
            })
            .collect();
        let counts_text = counts
            .iter()
            .map(|c| format!("{} {}", c.count, c.severity))
            .collect::<Vec<_>>()
            .join(", ");
        DigestView {
            snapshot_id,
            total: alerts.len(),
            counts,
            counts_text,
            alerts: alerts
                .iter()
                .take(DIGEST_LIMIT)
                .map(|a| AlertView::new(a, app_base))
                .collect(),
            more: alerts.len().saturating_sub(DIGEST_LIMIT),
        }
    }
}

/// A sentence saying why a finding was resolved.
fn resolution_text(resolution: Option<&str>) -> String {
    match resolution {
        Some("compliant") => "the resource now complies with the rule".to_owned(),
        Some("removed") => "the resource was removed".to_owned(),
        Some("exempted") => "an exception now covers the resource".to_owned(),
        Some("rule_changed") => "the rule was edited and no longer applies".to_owned(),
        Some("rule_removed") => "the rule was removed or disabled".to_owned(),
        Some(other) => other.replace('_', " "),
        None => "resolved".to_owned(),
    }
}

/// The page of the Segment app showing a resource, under `app_base`
/// (`https://app.segment.com/{workspace-slug}`), when there is one.
pub fn resource_link(app_base: &str, kind: ResourceKind, id: &str) -> Option<String> {
    let base = app_base.trim().trim_end_matches('/');
    if base.is_empty() {
        return None;
    }
    match kind {
        ResourceKind::Source => {
            let safe = !id.is_empty()
                && id
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
            safe.then(|| format!("{base}/sources/{id}/overview"))
        }
        ResourceKind::User | ResourceKind::Group | ResourceKind::Role | ResourceKind::Invite => {
            Some(format!("{base}/settings/access-management"))
        }
        ResourceKind::AuditEvent => Some(format!("{base}/settings/audit-trail")),
        ResourceKind::Access => Some(format!("{base}/settings/access-management")),
        // No stable app URL is documented for these; a wrong link is worse than none.
        ResourceKind::Workspace
        | ResourceKind::Label
        | ResourceKind::Destination
        | ResourceKind::Warehouse
        | ResourceKind::Function
        | ResourceKind::TrackingPlan
        | ResourceKind::DestinationFilter
        | ResourceKind::DestinationSubscription
        | ResourceKind::SourceSchemaSettings
        | ResourceKind::Transformation
        | ResourceKind::ReverseEtlModel => None,
    }
}

/// A JSON value for people: strings bare, `null` as `(none)`, the rest compact JSON; shortened.
fn show_value(v: &Value) -> String {
    let s = match v {
        Value::Null => "(none)".to_owned(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    truncate(&one_line(&s), VALUE_CHARS)
}

/// At most `max` characters (never cutting one), ending with `…` when cut.
pub(crate) fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_owned();
    }
    let mut out: String = s.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

/// Whitespace (newlines included) collapsed to single spaces, control characters dropped.
pub(crate) fn one_line(s: &str) -> String {
    s.split_whitespace()
        .map(|w| w.chars().filter(|c| !c.is_control()).collect::<String>())
        .filter(|w| !w.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

mod slack;
pub mod teams;

#[cfg(test)]
#[path = "tests_fixtures.rs"]
pub(crate) mod fixtures;

#[cfg(test)]
#[path = "tests_render.rs"]
mod tests;
