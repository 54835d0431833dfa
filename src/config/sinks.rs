//! `[[sinks]]`: raw sink settings, their limits and defaults, and the checked sink
//! configurations with their secrets.

use std::path::{Path, PathBuf};

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

mod ocsf;
mod pagerduty;

use super::secrets::read_secret;
use super::{ConfigError, Settings, invalid};

/// `change_alerts`: a flag for Jira, a mode for PagerDuty.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum ChangeAlertsSetting {
    /// `true` or `false` (Jira).
    Flag(bool),
    /// `trigger` or `change-event` (PagerDuty).
    Mode(String),
}

/// One `[[sinks]]` entry: a destination for alerts and which alerts it wants.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SinkSettings {
    /// Unique name, used in the database and on the command line.
    pub name: String,
    /// `slack`, `teams`, `email`, `webhook`, `ocsf`, `pagerduty` or `jira`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Only alerts of this severity or higher (default: all).
    pub min_severity: Option<String>,
    /// Only alerts of these rules (default: all).
    #[serde(default)]
    pub rules: Vec<String>,
    /// Only alerts carrying one of these tags (default: all).
    #[serde(default)]
    pub tags: Vec<String>,
    /// Only alerts of these workspaces (`[[workspaces]]` names; default: all).
    #[serde(default)]
    pub workspaces: Vec<String>,
    /// Whether resolutions of findings are sent too.
    #[serde(default = "yes")]
    pub send_resolved: bool,
    /// Whether updates of open findings (their resource changed, still failing) are sent
    /// (default: yes for `ocsf`, `pagerduty` and `jira`, no for the others).
    pub send_updates: Option<bool>,
    /// When one poll raises more than this many alerts for the sink, send one digest instead.
    #[serde(default = "default_digest_threshold")]
    pub digest_threshold: usize,
    /// Attempts before a delivery is marked dead.
    #[serde(default = "default_delivery_attempts")]
    pub max_attempts: u32,
    /// Seconds a delivery waits after its first failed attempt; doubles per attempt (default 30).
    pub retry_base_secs: Option<u64>,
    /// Longest wait between two attempts, in seconds (default 3600).
    pub retry_max_secs: Option<u64>,
    /// Webhook: largest body in bytes; bigger digests are split (default 1 MiB).
    pub max_body_bytes: Option<usize>,
    /// Email: largest message in bytes, headers included; bigger digests are split (default 1 MiB).
    pub max_message_bytes: Option<usize>,
    /// Messages per delivery run; past it, one summary stands for the rest (default 20).
    #[serde(default = "default_max_messages_per_run")]
    pub max_messages_per_run: usize,
    /// The URL (a secret: prefer `url_env` or `url_file`).
    pub url: Option<SecretString>,
    /// Name of an environment variable holding the URL.
    pub url_env: Option<String>,
    /// File holding the URL.
    pub url_file: Option<PathBuf>,
    /// Webhook: allow a plain `http://` URL to a host other than loopback (labs only: the
    /// alerts, and the URL's own token if it has one, cross the network in clear).
    #[serde(default)]
    pub allow_insecure_http: bool,
    /// Webhook: HMAC-SHA256 key signing each body (prefer `secret_env` or `secret_file`).
    pub secret: Option<SecretString>,
    /// Name of an environment variable holding the HMAC key.
    pub secret_env: Option<String>,
    /// File holding the HMAC key.
    pub secret_file: Option<PathBuf>,
    /// PagerDuty: the integration key (a secret: prefer `routing_key_env` or `routing_key_file`).
    pub routing_key: Option<SecretString>,
    /// PagerDuty: name of an environment variable holding the integration key.
    pub routing_key_env: Option<String>,
    /// PagerDuty: file holding the integration key.
    pub routing_key_file: Option<PathBuf>,
    /// What becomes of change alerts. PagerDuty: `trigger` (default: an incident of its own)
    /// or `change-event` (the Change Events API: on the service's timeline, nobody paged).
    /// Jira: `true` (default: an issue each) or `false` (skipped).
    pub change_alerts: Option<ChangeAlertsSetting>,
    /// The workspace in the Segment app, for links in messages (e.g. `https://app.segment.com/acme`).
    pub app_base: Option<String>,
    /// A folder whose templates override the built-in message templates.
    pub templates: Option<PathBuf>,
    /// Email: SMTP server host.
    pub smtp_host: Option<String>,
    /// Email: SMTP port (default 587 with STARTTLS, 465 with implicit TLS).
    pub smtp_port: Option<u16>,
    /// Email: `starttls` (default), `implicit`, or `none` (localhost only).
    pub tls: Option<String>,
    /// Email: SMTP user.
    pub username: Option<String>,
    /// Email: SMTP password (prefer `password_env` or `password_file`).
    pub password: Option<SecretString>,
    /// Email: name of an environment variable holding the SMTP password.
    pub password_env: Option<String>,
    /// Email: file holding the SMTP password.
    pub password_file: Option<PathBuf>,
    /// Email: sender address.
    pub from: Option<String>,
    /// Email: recipients.
    #[serde(default)]
    pub to: Vec<String>,
    /// Email: SMTP timeout in seconds.
    #[serde(default = "default_smtp_timeout")]
    pub timeout_secs: u64,
    /// OCSF: the JSON lines file events are appended to (instead of a `url`).
    pub path: Option<PathBuf>,
    /// OCSF file: rotate before a write that would take the file past this size (default 100 MiB).
    pub max_file_bytes: Option<u64>,
    /// OCSF file: rotated files kept besides the live one (default 5).
    pub max_files: Option<u32>,
    /// OCSF collector: `splunk-hec` or `ndjson` (default).
    pub format: Option<String>,
    /// OCSF collector: the token sent in `Authorization`; Jira: the API token (prefer
    /// `token_env` or `token_file`).
    pub token: Option<SecretString>,
    /// Name of an environment variable holding the collector's (or Jira's) token.
    pub token_env: Option<String>,
    /// File holding the collector's (or Jira's) token.
    pub token_file: Option<PathBuf>,
    /// Jira: the site, `https://<site>.atlassian.net`.
    pub base_url: Option<String>,
    /// Jira: the Atlassian account's email (with its API token).
    pub email: Option<String>,
    /// Jira: the project key.
    pub project: Option<String>,
    /// Jira: the issue type's name (default `Task`).
    pub issue_type: Option<String>,
    /// Jira: labels added to every issue.
    #[serde(default)]
    pub labels: Vec<String>,
    /// Jira: the transition closing an issue when its finding resolves (default `Done`).
    pub resolve_transition: Option<String>,
    /// Jira: the transition re-opening a done issue when its finding re-opens (default: none,
    /// the issue only gets a comment).
    pub reopen_transition: Option<String>,
    /// Jira: priority name per severity (`{ critical = "Highest", high = "High" }`).
    #[serde(default)]
    pub priorities: std::collections::BTreeMap<String, String>,
}

fn default_smtp_timeout() -> u64 {
    30
}

fn yes() -> bool {
    true
}

fn default_digest_threshold() -> usize {
    10
}

fn default_max_messages_per_run() -> usize {
    segwatch_sinks::DEFAULT_MAX_MESSAGES_PER_RUN
}

/// Bounds of `max_body_bytes` / `max_message_bytes`: room for one alert and a summary, and
/// no more than a receiver could reasonably be asked to take.
const MESSAGE_BYTES_RANGE: std::ops::RangeInclusive<usize> = 16 * 1024..=100 * 1024 * 1024;
/// Bounds of `max_messages_per_run`.
const MESSAGES_PER_RUN_RANGE: std::ops::RangeInclusive<usize> = 1..=10_000;

/// Bounds of a sink's `retry_base_secs`: at least a second, at most an hour.
const RETRY_BASE_SECS_RANGE: std::ops::RangeInclusive<u64> = 1..=3600;
/// Upper bound of a sink's `retry_max_secs` (a day); its lower bound is `retry_base_secs`.
const RETRY_MAX_SECS_LIMIT: u64 = 86_400;

fn default_delivery_attempts() -> u32 {
    8
}

impl Settings {
    /// Checks every `[[sinks]]` entry and reads its secrets from the environment or files.
    pub fn sinks(&self) -> Result<Vec<segwatch_sinks::SinkConfig>, ConfigError> {
        let mut names = std::collections::HashSet::new();
        let mut out = Vec::with_capacity(self.sinks.len());
        for s in &self.sinks {
            if s.name.trim().is_empty() || !names.insert(s.name.clone()) {
                return Err(invalid(
                    "sinks.name",
                    format!("`{}` must be non-empty and unique", s.name),
                ));
            }
            let min_severity = match &s.min_severity {
                Some(text) => Some(text.parse().map_err(|_| {
                    invalid(
                        "sinks.min_severity",
                        format!(
                            "sink `{}`: `{text}` is not one of info, low, medium, high, critical",
                            s.name
                        ),
                    )
                })?),
                None => None,
            };
            let known = if self.all_workspaces.is_empty() {
                self.workspace_names()
            } else {
                self.all_workspaces.clone()
            };
            if let Some(unknown) = s.workspaces.iter().find(|w| !known.contains(w)) {
                return Err(invalid(
                    "sinks.workspaces",
                    format!(
                        "sink `{}`: no workspace named `{unknown}` is configured (configured: {})",
                        s.name,
                        known.join(", ")
                    ),
                ));
            }
            let filter = segwatch_sinks::SinkFilter {
                min_severity,
                rules: s.rules.clone(),
                tags: s.tags.clone(),
                send_resolved: s.send_resolved,
                workspaces: s.workspaces.clone(),
            };
            let url = secret(
                "sinks.url",
                &s.name,
                s.url.as_ref(),
                s.url_env.as_deref(),
                s.url_file.as_deref(),
            )?;
            let hmac = secret(
                "sinks.secret",
                &s.name,
                s.secret.as_ref(),
                s.secret_env.as_deref(),
                s.secret_file.as_deref(),
            )?;
            if s.kind != "ocsf" {
                ocsf::refuse_keys(s)?;
            }
            pagerduty::refuse_keys(s)?;
            let target = match s.kind.as_str() {
                "webhook" => {
                    let url = url.ok_or_else(|| {
                        invalid(
                            "sinks.url",
                            format!("sink `{}` needs `url`, `url_env` or `url_file`", s.name),
                        )
                    })?;
                    check_webhook_url(s, &url)?;
                    segwatch_sinks::SinkTarget::Webhook { url, secret: hmac }
                }
                "slack" => {
                    let url = url.ok_or_else(|| {
                        invalid("sinks.url", format!("sink `{}` needs `url`, `url_env` or `url_file` (the incoming webhook)", s.name))
                    })?;
                    segwatch_sinks::SinkTarget::Slack { url }
                }
                "teams" => segwatch_sinks::SinkTarget::Teams {
                    url: teams_url(s, url)?,
                },
                "email" => segwatch_sinks::SinkTarget::Email(email_config(s)?),
                "ocsf" => segwatch_sinks::SinkTarget::Ocsf(ocsf::target(s, url, hmac.is_some())?),
                "pagerduty" => segwatch_sinks::SinkTarget::PagerDuty(pagerduty::config(s, url)?),
                "jira" => segwatch_sinks::SinkTarget::Jira(jira_config(s)?),
                other => {
                    return Err(invalid(
                        "sinks.type",
                        format!(
                            "sink `{}`: `{other}` is not a sink type; expected `slack`, `teams`, `email`, `webhook`, `ocsf`, `pagerduty` or `jira`",
                            s.name
                        ),
                    ));
                }
            };
            if s.kind != "jira"
                && let Some(key) = jira_only_key(s)
            {
                return Err(invalid(
                    format!("sinks.{key}"),
                    format!("sink `{}`: `{key}` applies only to a `jira` sink", s.name),
                ));
            }
            if s.max_attempts == 0 {
                return Err(invalid(
                    "sinks.max_attempts",
                    format!("sink `{}`: must be at least 1", s.name),
                ));
            }
            let max_message_bytes = message_limit(s)?;
            let retry_backoff = retry_backoff(s)?;
            if !MESSAGES_PER_RUN_RANGE.contains(&s.max_messages_per_run) {
                return Err(invalid(
                    "sinks.max_messages_per_run",
                    format!(
                        "sink `{}`: {} is out of range; expected {} to {}",
                        s.name,
                        s.max_messages_per_run,
                        MESSAGES_PER_RUN_RANGE.start(),
                        MESSAGES_PER_RUN_RANGE.end()
                    ),
                ));
            }
            out.push(segwatch_sinks::SinkConfig {
                name: s.name.clone(),
                filter,
                digest_threshold: s.digest_threshold,
                max_message_bytes,
                max_messages_per_run: s.max_messages_per_run,
                max_attempts: s.max_attempts,
                retry_backoff,
                target,
                send_updates: s.send_updates,
                app_base: s.app_base.clone(),
                templates: s.templates.clone(),
            });
        }
        Ok(out)
    }
}

/// A sink's size limit: `max_body_bytes` for a webhook, `max_message_bytes` for email, each
/// only on its own type (Slack's and Teams' limits are fixed by them).
fn message_limit(s: &SinkSettings) -> Result<usize, ConfigError> {
    let (key, value, other) = match s.kind.as_str() {
        "webhook" | "ocsf" => (
            "max_body_bytes",
            s.max_body_bytes,
            s.max_message_bytes.map(|_| "max_message_bytes"),
        ),
        "email" => (
            "max_message_bytes",
            s.max_message_bytes,
            s.max_body_bytes.map(|_| "max_body_bytes"),
        ),
        _ => {
            let other = s
                .max_body_bytes
                .map(|_| "max_body_bytes")
                .or(s.max_message_bytes.map(|_| "max_message_bytes"));
            ("", None, other)
        }
    };
    if let Some(other) = other {
        return Err(invalid(
            format!("sinks.{other}"),
            format!(
                "sink `{}`: `{other}` does not apply to a `{}` sink (webhook and ocsf: max_body_bytes; email: max_message_bytes; Slack's and Teams' limits are fixed)",
                s.name, s.kind
            ),
        ));
    }
    let value = value.unwrap_or(segwatch_sinks::DEFAULT_MAX_MESSAGE_BYTES);
    if !key.is_empty() && !MESSAGE_BYTES_RANGE.contains(&value) {
        return Err(invalid(
            format!("sinks.{key}"),
            format!(
                "sink `{}`: {value} is out of range; expected {} to {} bytes",
                s.name,
                MESSAGE_BYTES_RANGE.start(),
                MESSAGE_BYTES_RANGE.end()
            ),
        ));
    }
    Ok(value)
}

/// A sink's wait between delivery attempts: `retry_base_secs` (1 s to 1 h) doubling, at most
/// `retry_max_secs` (`retry_base_secs` to a day).
fn retry_backoff(s: &SinkSettings) -> Result<segwatch_sinks::outbox::RetryBackoff, ConfigError> {
    let default = segwatch_sinks::outbox::RetryBackoff::default();
    let base = s.retry_base_secs.unwrap_or(default.base.as_secs());
    if !RETRY_BASE_SECS_RANGE.contains(&base) {
        return Err(invalid(
            "sinks.retry_base_secs",
            format!(
                "sink `{}`: {base} is out of range; expected {} to {} seconds",
                s.name,
                RETRY_BASE_SECS_RANGE.start(),
                RETRY_BASE_SECS_RANGE.end()
            ),
        ));
    }
    let max = s.retry_max_secs.unwrap_or(default.max.as_secs());
    if !(base..=RETRY_MAX_SECS_LIMIT).contains(&max) {
        return Err(invalid(
            "sinks.retry_max_secs",
            format!(
                "sink `{}`: {max} is out of range; expected `retry_base_secs` ({base}) to {RETRY_MAX_SECS_LIMIT} seconds",
                s.name
            ),
        ));
    }
    Ok(segwatch_sinks::outbox::RetryBackoff {
        base: std::time::Duration::from_secs(base),
        max: std::time::Duration::from_secs(max),
    })
}

/// A webhook URL must be `https://`, or `http://` to a loopback host, unless the sink sets
/// `allow_insecure_http`: alerts describe the workspace's access and data flows, and a
/// receiver's URL often carries its token.
fn check_webhook_url(s: &SinkSettings, url: &SecretString) -> Result<(), ConfigError> {
    let parsed = reqwest::Url::parse(url.expose_secret().trim()).map_err(|e| {
        // The URL is a secret: name the error, not the text.
        invalid(
            "sinks.url",
            format!("sink `{}`: the URL does not parse: {e}", s.name),
        )
    })?;
    let loopback = parsed.host_str().is_some_and(|host| {
        host.eq_ignore_ascii_case("localhost")
            || host
                .trim_start_matches('[')
                .trim_end_matches(']')
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_loopback())
    });
    match parsed.scheme() {
        "https" => Ok(()),
        "http" if loopback || s.allow_insecure_http => Ok(()),
        "http" => Err(invalid(
            "sinks.url",
            format!(
                "sink `{}`: a plain http:// URL sends alerts in clear text to a host other than \
                 this one; use https://, or set `allow_insecure_http = true` on the sink (labs only)",
                s.name
            ),
        )),
        other => Err(invalid(
            "sinks.url",
            format!(
                "sink `{}`: `{other}` is not a webhook scheme; expected https:// (or http://)",
                s.name
            ),
        )),
    }
}

/// The Workflows webhook URL of a `teams` sink: given, and `https://` (or `http://` to this
/// host). Errors name `sinks.url` and the sink, never the URL (it carries its signature).
fn teams_url(s: &SinkSettings, url: Option<SecretString>) -> Result<SecretString, ConfigError> {
    let url = url.ok_or_else(|| {
        invalid(
            "sinks.url",
            format!(
                "sink `{}` needs `url`, `url_env` or `url_file` (the Teams Workflows webhook)",
                s.name
            ),
        )
    })?;
    if s.allow_insecure_http {
        return Err(invalid(
            "sinks.allow_insecure_http",
            format!("sink `{}`: a Teams sink posts to https:// only", s.name),
        ));
    }
    segwatch_sinks::teams::check_url(url.expose_secret())
        .map_err(|e| invalid("sinks.url", format!("sink `{}`: {e}", s.name)))?;
    Ok(url)
}

/// The SMTP settings of an `email` sink.
fn email_config(s: &SinkSettings) -> Result<segwatch_sinks::email::EmailConfig, ConfigError> {
    use segwatch_sinks::email::Tls;
    let tls = match s.tls.as_deref().unwrap_or("starttls") {
        "starttls" => Tls::StartTls,
        "implicit" => Tls::Implicit,
        "none" => Tls::None,
        other => {
            return Err(invalid(
                "sinks.tls",
                format!(
                    "sink `{}`: `{other}` is not a TLS mode; expected `starttls`, `implicit` or `none`",
                    s.name
                ),
            ));
        }
    };
    let host = s.smtp_host.clone().ok_or_else(|| {
        invalid(
            "sinks.smtp_host",
            format!("sink `{}`: an email sink needs `smtp_host`", s.name),
        )
    })?;
    let from = s.from.clone().ok_or_else(|| {
        invalid(
            "sinks.from",
            format!("sink `{}`: an email sink needs `from`", s.name),
        )
    })?;
    let password = secret(
        "sinks.password",
        &s.name,
        s.password.as_ref(),
        s.password_env.as_deref(),
        s.password_file.as_deref(),
    )?;
    Ok(segwatch_sinks::email::EmailConfig {
        port: s
            .smtp_port
            .unwrap_or(if tls == Tls::Implicit { 465 } else { 587 }),
        host,
        tls,
        username: s.username.clone(),
        password,
        from,
        to: s.to.clone(),
        timeout: std::time::Duration::from_secs(s.timeout_secs.max(1)),
    })
}

/// The settings of a `jira` sink.
fn jira_config(s: &SinkSettings) -> Result<segwatch_sinks::jira::JiraConfig, ConfigError> {
    use segwatch_sinks::jira;
    let need = |key: &'static str, value: &Option<String>, what: &str| {
        value
            .as_deref()
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .map(str::to_owned)
            .ok_or_else(|| {
                invalid(
                    format!("sinks.{key}"),
                    format!("sink `{}`: a jira sink needs `{key}` ({what})", s.name),
                )
            })
    };
    let base_url = need("base_url", &s.base_url, "https://<site>.atlassian.net")?;
    let parsed = reqwest::Url::parse(&base_url).map_err(|e| {
        invalid(
            "sinks.base_url",
            format!("sink `{}`: `{base_url}` does not parse: {e}", s.name),
        )
    })?;
    let loopback = parsed.host_str().is_some_and(|host| {
        host.eq_ignore_ascii_case("localhost")
            || host
                .trim_start_matches('[')
                .trim_end_matches(']')
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_loopback())
    });
    if !(parsed.scheme() == "https" || parsed.scheme() == "http" && loopback) {
        return Err(invalid(
            "sinks.base_url",
            format!(
                "sink `{}`: `{base_url}` must be https://<site>.atlassian.net (http:// only to a loopback host)",
                s.name
            ),
        ));
    }
    let email = need("email", &s.email, "the Atlassian account's email")?;
    if !email.contains('@') {
        return Err(invalid(
            "sinks.email",
            format!("sink `{}`: `{email}` is not an email address", s.name),
        ));
    }
    let token = secret(
        "sinks.token",
        &s.name,
        s.token.as_ref(),
        s.token_env.as_deref(),
        s.token_file.as_deref(),
    )?
    .ok_or_else(|| {
        invalid(
            "sinks.token",
            format!(
                "sink `{}`: a jira sink needs `token`, `token_env` or `token_file` (an Atlassian API token)",
                s.name
            ),
        )
    })?;
    let project = need("project", &s.project, "the project key")?;
    if !jira::valid_project_key(&project) {
        return Err(invalid(
            "sinks.project",
            format!(
                "sink `{}`: `{project}` is not a Jira project key (uppercase letters, digits and `_`, starting with a letter)",
                s.name
            ),
        ));
    }
    if let Some(problem) = s.labels.iter().find_map(|l| jira::label_problem(l)) {
        return Err(invalid(
            "sinks.labels",
            format!("sink `{}`: {problem}", s.name),
        ));
    }
    let mut priorities = std::collections::BTreeMap::new();
    for (severity, priority) in &s.priorities {
        let level = severity.parse().map_err(|_| {
            invalid(
                "sinks.priorities",
                format!(
                    "sink `{}`: `{severity}` is not one of info, low, medium, high, critical",
                    s.name
                ),
            )
        })?;
        if priority.trim().is_empty() {
            return Err(invalid(
                "sinks.priorities",
                format!("sink `{}`: the priority of `{severity}` is empty", s.name),
            ));
        }
        priorities.insert(level, priority.trim().to_owned());
    }
    let named = |key: &'static str, value: &Option<String>| match value.as_deref().map(str::trim) {
        Some("") => Err(invalid(
            format!("sinks.{key}"),
            format!("sink `{}`: `{key}` is empty", s.name),
        )),
        other => Ok(other.map(str::to_owned)),
    };
    Ok(jira::JiraConfig {
        base_url,
        email,
        token,
        project,
        issue_type: named("issue_type", &s.issue_type)?.unwrap_or_else(|| "Task".to_owned()),
        labels: s.labels.clone(),
        resolve_transition: named("resolve_transition", &s.resolve_transition)?
            .unwrap_or_else(|| jira::DEFAULT_RESOLVE_TRANSITION.to_owned()),
        reopen_transition: named("reopen_transition", &s.reopen_transition)?,
        change_alerts: match &s.change_alerts {
            None => true,
            Some(ChangeAlertsSetting::Flag(on)) => *on,
            Some(ChangeAlertsSetting::Mode(other)) => {
                return Err(invalid(
                    "sinks.change_alerts",
                    format!(
                        "sink `{}`: `{other}` is not a choice for a `jira` sink; expected true or false",
                        s.name
                    ),
                ));
            }
        },
        priorities,
    })
}

/// Jira's keys set on a sink of another type: a mistake worth stopping on. (The token keys,
/// shared with `ocsf` sinks, are checked with the OCSF ones.)
fn jira_only_key(s: &SinkSettings) -> Option<&'static str> {
    [
        ("base_url", s.base_url.is_some()),
        ("email", s.email.is_some()),
        ("project", s.project.is_some()),
        ("issue_type", s.issue_type.is_some()),
        ("labels", !s.labels.is_empty()),
        ("resolve_transition", s.resolve_transition.is_some()),
        ("reopen_transition", s.reopen_transition.is_some()),
        (
            "change_alerts",
            s.change_alerts.is_some() && s.kind != "pagerduty",
        ),
        ("priorities", !s.priorities.is_empty()),
    ]
    .into_iter()
    .find(|(_, set)| *set)
    .map(|(key, _)| key)
}

/// A secret given inline, by environment variable name, or by file: at most one of the three.
fn secret(
    key: &'static str,
    sink: &str,
    inline: Option<&SecretString>,
    env: Option<&str>,
    file: Option<&Path>,
) -> Result<Option<SecretString>, ConfigError> {
    read_secret(key, &format!("sink `{sink}`: "), inline, env, file)
}
