//! Configuration: built-in defaults < TOML file < `SEGWATCH_*` environment variables.
//!
//! Raw [`Settings`] are what the user wrote; [`Settings::validate`] turns them into checked values
//! and names the offending key in every error, because a daemon that starts with a half-understood
//! configuration is worse than one that refuses to start. Every key is documented in
//! `config/segwatch.example.toml`; the key names are a contract for scripts (`[segment] token`
//! is `SEGWATCH_SEGMENT__TOKEN`, `[database] path` is `SEGWATCH_DATABASE__PATH`).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
pub use segwatch_api::profiles::ProfilesTarget;
use serde::Deserialize;

/// Prefix of the environment variables that override the file.
pub const ENV_PREFIX: &str = "SEGWATCH";
/// Separator between a section and a key in environment variable names.
pub const ENV_SEPARATOR: &str = "__";
/// US Public API host.
pub const US_API_URL: &str = "https://api.segmentapis.com";
/// EU Public API host.
pub const EU_API_URL: &str = "https://eu1.api.segmentapis.com";
/// The Profile API of the US region.
pub const PROFILES_US_URL: &str = "https://profiles.segment.com";
/// The Profile API of the EU region.
pub const PROFILES_EU_URL: &str = "https://profiles.euw1.segment.com";

/// Errors while loading or validating configuration.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file or the environment could not be read or parsed.
    #[error("cannot load configuration: {0}")]
    Load(config::ConfigError),
    /// A value is present but not acceptable.
    #[error("invalid configuration: `{key}`: {message}")]
    Invalid {
        /// The dotted key, e.g. `segment.region` or `workspaces[prod].token`.
        key: String,
        /// What is wrong and what is allowed.
        message: String,
    },
}

/// Everything the user configured, as written (see `config/segwatch.example.toml`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// The Segment workspace to poll.
    pub segment: SegmentSettings,
    /// Where snapshots are stored.
    pub database: DatabaseSettings,
    /// Which rules are evaluated.
    pub rules: RulesSettings,
    /// When `segwatch run` polls.
    pub schedule: ScheduleSettings,
    /// The daemon's `/healthz` and `/metrics` endpoint.
    pub health: HealthSettings,
    /// `[delivery]`: how one-shot polls deliver.
    pub delivery: DeliverySettings,
    /// Where alerts are delivered (`[[sinks]]`, any number).
    #[serde(default)]
    pub sinks: Vec<SinkSettings>,
    /// How long failed polls and quiet snapshots are kept.
    pub retention: RetentionSettings,
    /// What each poll reads: optional resource kinds and the audit trail.
    pub collect: CollectSettings,
    /// The Profile API (data-subject access requests); unused unless `space_id` is set.
    pub profiles: ProfilesSettings,
    /// Several workspaces in one daemon (`[[workspaces]]`); when absent, `[segment]` is the one
    /// workspace.
    #[serde(default)]
    pub workspaces: Vec<WorkspaceSettings>,
    /// Every configured workspace's name, kept when `--workspace` narrows the configuration.
    #[serde(skip)]
    all_workspaces: Vec<String>,
}

/// The `[profiles]` section: where and how to reach Segment's Profile API.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProfilesSettings {
    /// `us` or `eu`.
    pub region: String,
    /// Explicit Profile API base URL; overrides `region`.
    pub api_url: Option<String>,
    /// The Unify space whose profiles are read.
    pub space_id: Option<String>,
    /// The space's Profile API access secret, inline.
    pub access_secret: Option<SecretString>,
    /// Name of an environment variable holding the access secret.
    pub access_secret_env: Option<String>,
    /// A file holding the access secret.
    pub access_secret_file: Option<PathBuf>,
    /// Most bytes one Profile API response body may have.
    pub max_response_bytes: u64,
}

/// One `[[workspaces]]` entry. Unset tuning keys (`page_size`, `concurrency`, …) and the schedule
/// come from `[segment]` and `[schedule]`; the token never does, since a Segment token belongs to
/// exactly one workspace.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkspaceSettings {
    /// Label of the workspace in the database and on the command line (`--workspace`).
    pub name: String,
    /// `us` or `eu`.
    pub region: Option<String>,
    /// Explicit API base URL.
    pub api_url: Option<String>,
    /// The workspace token (prefer `token_env` or `token_file`).
    pub token: Option<SecretString>,
    /// Name of an environment variable holding the token.
    pub token_env: Option<String>,
    /// A file holding the token.
    pub token_file: Option<PathBuf>,
    /// Items per page, 1..=200.
    pub page_size: Option<u32>,
    /// Per-request timeout in seconds.
    pub request_timeout_secs: Option<u64>,
    /// Most bytes one response body may have.
    pub max_response_bytes: Option<u64>,
    /// Requests in flight at once.
    pub concurrency: Option<usize>,
    /// Attempts per request before a poll fails.
    pub max_attempts: Option<u32>,
    /// Pages per list before the list is declared endless.
    pub max_pages: Option<u32>,
    /// Longest single wait on a 429, in seconds.
    pub max_rate_limit_wait_secs: Option<u64>,
    /// This workspace's cron expression.
    pub cron: Option<String>,
    /// This workspace's jitter, in seconds.
    pub jitter_secs: Option<u64>,
    /// This workspace's schedule time zone.
    pub timezone: Option<String>,
    /// Rule ids (globs such as `access-*`) evaluated for this workspace; empty: every rule.
    #[serde(default)]
    pub rules: Vec<String>,
    /// What this workspace is, for people reading `segwatch workspaces`.
    pub description: Option<String>,
    /// `true`: keep its data but do not poll it (see [`WorkspaceTarget::paused`]).
    #[serde(default)]
    pub paused: Flag,
}

/// A `true`/`false` key kept as written until validation, so that a wrong value is reported
/// under the workspace's own key (`workspaces[prod].paused`), not as a deserialisation error
/// naming an array index.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Flag {
    /// Not in the file.
    #[default]
    Unset,
    /// `true` or `false`.
    Set(bool),
    /// Anything else, described for the error message.
    Invalid(String),
}

impl Flag {
    /// The value (`default` when unset), or an error naming `key`.
    pub fn get(&self, key: &str, default: bool) -> Result<bool, ConfigError> {
        match self {
            Flag::Unset => Ok(default),
            Flag::Set(value) => Ok(*value),
            Flag::Invalid(found) => Err(invalid(
                key,
                format!("expected `true` or `false`, found {found}"),
            )),
        }
    }
}

impl<'de> Deserialize<'de> for Flag {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Flag, D::Error> {
        deserializer.deserialize_any(FlagVisitor)
    }
}

struct FlagVisitor;

impl<'de> serde::de::Visitor<'de> for FlagVisitor {
    type Value = Flag;
    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("true or false")
    }
    fn visit_bool<E>(self, v: bool) -> Result<Flag, E> {
        Ok(Flag::Set(v))
    }
    fn visit_str<E>(self, v: &str) -> Result<Flag, E> {
        // Environment variables arrive as text.
        Ok(match v.trim() {
            "true" => Flag::Set(true),
            "false" => Flag::Set(false),
            other => Flag::Invalid(format!("`{other}`")),
        })
    }
    fn visit_i64<E>(self, v: i64) -> Result<Flag, E> {
        Ok(Flag::Invalid(format!("the number {v}")))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Flag, E> {
        Ok(Flag::Invalid(format!("the number {v}")))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Flag, E> {
        Ok(Flag::Invalid(format!("the number {v}")))
    }
    fn visit_unit<E>(self) -> Result<Flag, E> {
        Ok(Flag::Unset)
    }
    fn visit_none<E>(self) -> Result<Flag, E> {
        Ok(Flag::Unset)
    }
    fn visit_some<D: serde::Deserializer<'de>>(self, d: D) -> Result<Flag, D::Error> {
        d.deserialize_any(self)
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Flag, A::Error> {
        while seq.next_element::<serde::de::IgnoredAny>()?.is_some() {}
        Ok(Flag::Invalid("a list".into()))
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Flag, A::Error> {
        while map
            .next_entry::<serde::de::IgnoredAny, serde::de::IgnoredAny>()?
            .is_some()
        {}
        Ok(Flag::Invalid("a table".into()))
    }
}

/// A configured workspace as `segwatch workspaces` and `segwatch poll` see it, checked without
/// reading tokens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfiguredWorkspace {
    /// Its label.
    pub name: String,
    /// `description`, if set.
    pub description: Option<String>,
    /// `paused = true`.
    pub paused: bool,
}

/// One `[[sinks]]` entry: a destination for alerts and which alerts it wants.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SinkSettings {
    /// Unique name, used in the database and on the command line.
    pub name: String,
    /// `slack`, `email` or `webhook`.
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

/// `[health]`: the daemon's operator endpoint.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HealthSettings {
    /// `host:port` to serve `/healthz` and `/metrics` on; empty: off.
    pub listen: String,
    /// `/healthz` answers 503 when the last complete poll is older than this.
    pub max_age_secs: u64,
    /// The daemon raises its own alert through the sinks when a workspace's polls have failed
    /// for longer than this (and resolves it when a poll completes); 0: never.
    pub alert_after_failing_secs: u64,
    /// A bearer token both endpoints require when set (prefer `token_env` or `token_file`).
    pub token: Option<SecretString>,
    /// Name of an environment variable holding the bearer token.
    pub token_env: Option<String>,
    /// File holding the bearer token.
    pub token_file: Option<PathBuf>,
}

impl HealthSettings {
    /// The bearer token `/healthz` and `/metrics` require, if one is configured (from `token`,
    /// `token_env` or `token_file`: one of them, not empty).
    pub fn token(&self) -> Result<Option<SecretString>, ConfigError> {
        read_secret(
            "health.token",
            "",
            self.token.as_ref(),
            self.token_env.as_deref(),
            self.token_file.as_deref(),
        )
    }
}

/// `[delivery]`: how long a one-shot `segwatch poll` delivers after its snapshot. The daemon
/// delivers in a task of its own and is not bound by it.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeliverySettings {
    /// Seconds `segwatch poll` spends sending what is due before it leaves the rest queued.
    pub poll_deadline_secs: u64,
}

impl DeliverySettings {
    /// The deadline, checked (1 s to 1 h).
    pub fn poll_deadline(&self) -> Result<Duration, ConfigError> {
        if !(1..=3600).contains(&self.poll_deadline_secs) {
            return Err(ConfigError::Invalid {
                key: "delivery.poll_deadline_secs".into(),
                message: format!(
                    "{} is out of range; expected 1 to 3600 seconds",
                    self.poll_deadline_secs
                ),
            });
        }
        Ok(Duration::from_secs(self.poll_deadline_secs))
    }
}

/// `[retention]`: what old records the daemon (and `segwatch prune`) deletes. Resource versions,
/// changes, alerts and deliveries are never deleted.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetentionSettings {
    /// Failed polls older than this many days are deleted; 0: kept forever.
    pub failed_polls_days: u64,
    /// Quiet complete snapshots older than this many days become tombstones; 0: kept forever.
    pub quiet_snapshots_days: u64,
}

impl RetentionSettings {
    /// The policy as of `now`.
    pub fn at(
        &self,
        now: chrono::DateTime<chrono::Utc>,
        dry_run: bool,
    ) -> segwatch_store::Retention {
        let before = |days: u64| {
            (days > 0).then(|| {
                (now - chrono::Duration::days(days as i64))
                    .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
            })
        };
        segwatch_store::Retention {
            failed_before: before(self.failed_polls_days),
            quiet_before: before(self.quiet_snapshots_days),
            dry_run,
        }
    }
}

/// `[collect]`: what each poll reads. The workspace, roles, users, groups, invites, sources and
/// labels always are; destinations, warehouses, functions and tracking plans can each be turned
/// off (they are then neither requested nor stored), and so can the audit trail.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CollectSettings {
    /// Collect destinations (`GET /destinations`).
    pub destinations: bool,
    /// Collect warehouses and their connected sources.
    pub warehouses: bool,
    /// Collect functions of every type, each with `GET /functions/{id}`.
    pub functions: bool,
    /// Collect tracking plans and their connected sources.
    pub tracking_plans: bool,
    /// Store function code in clear instead of a fingerprint.
    pub function_code: bool,
    /// Whether to read the audit trail (`GET /audit-events`), store its events and name who
    /// made each change.
    pub audit_events: bool,
    /// How far back the first read of a workspace's audit trail goes, in hours.
    pub audit_lookback_hours: u64,
}

impl CollectSettings {
    /// What the collector reads.
    pub fn options(&self) -> segwatch_api::collect::CollectOptions {
        segwatch_api::collect::CollectOptions {
            destinations: self.destinations,
            warehouses: self.warehouses,
            functions: self.functions,
            tracking_plans: self.tracking_plans,
        }
    }

    /// How collected resources are redacted (function code kept only when asked).
    pub fn secret_policy(&self) -> segwatch_core::redact::SecretPolicy {
        segwatch_core::redact::SecretPolicy::keeping_function_code(self.function_code)
    }

    /// The first read's lookback when the audit trail is read, checked.
    pub fn audit_lookback(&self) -> Result<Option<Duration>, ConfigError> {
        if !self.audit_events {
            return Ok(None);
        }
        if !(1..=24 * 366).contains(&self.audit_lookback_hours) {
            return Err(invalid(
                "collect.audit_lookback_hours",
                format!(
                    "{} is out of range; expected 1 to 8784 (a year)",
                    self.audit_lookback_hours
                ),
            ));
        }
        Ok(Some(Duration::from_secs(self.audit_lookback_hours * 3600)))
    }
}

/// `[schedule]`: when the daemon polls.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScheduleSettings {
    /// Cron expression, 5 fields (`min hour dom mon dow`) or 6 (seconds first).
    pub cron: String,
    /// Random delay added to each tick, up to this many seconds.
    pub jitter_secs: u64,
    /// The IANA time zone the expression is read in (`UTC`, `Europe/Paris`, …).
    pub timezone: String,
}

/// `[rules]`: the YAML rules evaluated after every complete snapshot.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RulesSettings {
    /// A rule file or a folder of them (searched recursively).
    pub path: PathBuf,
    /// Whether change rules see every resource of the first snapshot as added.
    pub alert_on_baseline: bool,
}

/// `[segment]`: how to reach the Public API.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SegmentSettings {
    /// Label of this workspace in the database.
    pub name: String,
    /// `us` or `eu`; ignored when `api_url` is set.
    pub region: String,
    /// Explicit API base URL (for proxies and the simulator).
    pub api_url: Option<String>,
    /// The workspace token; best given as `SEGWATCH_SEGMENT__TOKEN`.
    pub token: Option<SecretString>,
    /// Name of an environment variable holding the token.
    pub token_env: Option<String>,
    /// A file holding the token (e.g. a systemd credential or a mounted secret).
    pub token_file: Option<PathBuf>,
    /// Items per page, 1..=200.
    pub page_size: u32,
    /// Per-request timeout in seconds: bounds the whole exchange, body included.
    pub request_timeout_secs: u64,
    /// Most bytes one response body may have; a larger one fails the poll, unretried.
    pub max_response_bytes: u64,
    /// Requests in flight at once.
    pub concurrency: usize,
    /// Attempts per request before a poll fails (5xx, timeouts, 429).
    pub max_attempts: u32,
    /// Pages per list before the list is declared endless.
    pub max_pages: u32,
    /// Longest single wait on a 429 or rate-limit reset, in seconds.
    pub max_rate_limit_wait_secs: u64,
    /// What this workspace is (the short form's `[[workspaces]] description`).
    pub description: Option<String>,
    /// Keep its data but do not poll it (the short form's `[[workspaces]] paused`).
    #[serde(default)]
    pub paused: Flag,
}

/// `[database]`: the SQLite snapshot store.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseSettings {
    /// Path of the SQLite file (created if missing).
    pub path: PathBuf,
}

/// Validated settings for one workspace: its client, its schedule, its rule selection.
#[derive(Debug)]
pub struct WorkspaceTarget {
    /// Label of the workspace in the database.
    pub name: String,
    /// Client configuration, token included.
    pub client: segwatch_api::segment::ClientConfig,
    /// When the daemon polls it.
    pub schedule: crate::schedule::Schedule,
    /// The cron expression and time zone, for logs.
    pub schedule_text: String,
    /// Rule id globs it evaluates; empty: every rule.
    pub rules: Vec<String>,
    /// The key prefix its errors are reported under (`segment` or `workspaces[NAME]`).
    pub key: String,
    /// `description`, if set.
    pub description: Option<String>,
    /// Not polled (`paused = true`): the daemon keeps its task idle, `segwatch poll` skips it,
    /// and its data stays as it is. Every other key is still checked, so resuming cannot fail
    /// on a mistake made while it was paused.
    pub paused: bool,
}

const DEFAULTS: &[(&str, DefaultValue)] = &[
    ("segment.name", DefaultValue::Str("default")),
    ("segment.region", DefaultValue::Str("us")),
    ("segment.page_size", DefaultValue::Int(200)),
    ("segment.request_timeout_secs", DefaultValue::Int(30)),
    (
        "segment.max_response_bytes",
        DefaultValue::Int(segwatch_api::segment::DEFAULT_MAX_RESPONSE_BYTES as i64),
    ),
    ("segment.concurrency", DefaultValue::Int(8)),
    ("segment.max_attempts", DefaultValue::Int(6)),
    ("segment.max_pages", DefaultValue::Int(10_000)),
    ("segment.max_rate_limit_wait_secs", DefaultValue::Int(120)),
    ("database.path", DefaultValue::Str("segwatch.db")),
    ("profiles.region", DefaultValue::Str("us")),
    (
        "profiles.max_response_bytes",
        DefaultValue::Int(segwatch_api::segment::DEFAULT_MAX_RESPONSE_BYTES as i64),
    ),
    ("rules.path", DefaultValue::Str("rules")),
    ("rules.alert_on_baseline", DefaultValue::Bool(false)),
    ("schedule.cron", DefaultValue::Str("*/15 * * * *")),
    ("schedule.jitter_secs", DefaultValue::Int(0)),
    ("schedule.timezone", DefaultValue::Str("UTC")),
    ("health.listen", DefaultValue::Str("")),
    ("health.max_age_secs", DefaultValue::Int(3600)),
    ("health.alert_after_failing_secs", DefaultValue::Int(3600)),
    ("delivery.poll_deadline_secs", DefaultValue::Int(60)),
    ("retention.failed_polls_days", DefaultValue::Int(30)),
    ("retention.quiet_snapshots_days", DefaultValue::Int(0)),
    ("collect.audit_events", DefaultValue::Bool(true)),
    ("collect.audit_lookback_hours", DefaultValue::Int(24)),
    ("collect.destinations", DefaultValue::Bool(true)),
    ("collect.warehouses", DefaultValue::Bool(true)),
    ("collect.functions", DefaultValue::Bool(true)),
    ("collect.tracking_plans", DefaultValue::Bool(true)),
    ("collect.function_code", DefaultValue::Bool(false)),
];

enum DefaultValue {
    Str(&'static str),
    Int(i64),
    Bool(bool),
}

impl Settings {
    /// Loads defaults, then `file` if it exists (it must exist when `file_required`), then the
    /// process environment.
    pub fn load(file: &Path, file_required: bool) -> Result<Settings, ConfigError> {
        Self::load_with_env(file, file_required, std::env::vars().collect())
    }

    /// Like [`Settings::load`] with an explicit environment, so tests need not touch the process.
    pub fn load_with_env(
        file: &Path,
        file_required: bool,
        env: HashMap<String, String>,
    ) -> Result<Settings, ConfigError> {
        let mut builder = config::Config::builder();
        for (key, value) in DEFAULTS {
            builder = match value {
                DefaultValue::Str(s) => builder.set_default(*key, *s)?,
                DefaultValue::Int(i) => builder.set_default(*key, *i)?,
                DefaultValue::Bool(b) => builder.set_default(*key, *b)?,
            };
        }
        let source = config::File::from(file)
            .format(config::FileFormat::Toml)
            .required(file_required);
        // Only `SEGWATCH_<SECTION>__<KEY>` variables are configuration; others with the same
        // prefix (e.g. `SEGWATCH_CONFIG`) belong to the command line and must not be rejected as
        // unknown keys.
        let prefix = format!("{ENV_PREFIX}_");
        let ours: config::Map<String, String> = env
            .into_iter()
            .filter(|(k, _)| {
                k.strip_prefix(&prefix)
                    .is_some_and(|rest| rest.contains(ENV_SEPARATOR))
            })
            .collect();
        let environment = config::Environment::with_prefix(ENV_PREFIX)
            .prefix_separator("_")
            .separator(ENV_SEPARATOR)
            .try_parsing(true)
            .source(Some(ours));
        let settings = builder
            .add_source(source)
            .add_source(environment)
            .build()?
            .try_deserialize::<Settings>()?;
        Ok(settings)
    }

    /// The checked `[profiles]` section; `None` when neither a space id nor an access secret is
    /// configured (the Profile API is optional).
    pub fn profiles(&self) -> Result<Option<ProfilesTarget>, ConfigError> {
        let p = &self.profiles;
        let base_url = match &p.api_url {
            Some(url) if !url.trim().is_empty() => {
                segwatch_api::segment::check_base_url(url.trim())
                    .map_err(|why| invalid("profiles.api_url", why))?
            }
            _ => match p.region.as_str() {
                "us" => PROFILES_US_URL.to_string(),
                "eu" => PROFILES_EU_URL.to_string(),
                other => {
                    return Err(invalid(
                        "profiles.region",
                        format!(
                            "`{other}` is not a region; expected `us` or `eu` (or set `profiles.api_url`)"
                        ),
                    ));
                }
            },
        };
        check_max_response_bytes("profiles.max_response_bytes", p.max_response_bytes)?;
        let secret = read_secret(
            "profiles.access_secret",
            "",
            p.access_secret.as_ref(),
            p.access_secret_env.as_deref(),
            p.access_secret_file.as_deref(),
        )?;
        let space_id = p
            .space_id
            .as_deref()
            .map(str::trim)
            .filter(|s| !s.is_empty());
        match (space_id, secret) {
            (None, None) => Ok(None),
            (Some(_), None) => Err(invalid(
                "profiles.access_secret",
                "no access secret: set SEGWATCH_PROFILES__ACCESS_SECRET, `profiles.access_secret_env` or `profiles.access_secret_file`".into(),
            )),
            (None, Some(_)) => Err(invalid(
                "profiles.space_id",
                "an access secret is configured but no space id".into(),
            )),
            (Some(space), Some(secret)) => {
                if !space
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
                {
                    return Err(invalid(
                        "profiles.space_id",
                        format!("`{space}` is not a space id (letters, digits, `_` and `-`)"),
                    ));
                }
                Ok(Some(ProfilesTarget {
                    base_url,
                    space_id: space.to_owned(),
                    access_secret: secret,
                    max_response_bytes: p.max_response_bytes,
                }))
            }
        }
    }

    /// Checks every value of the single workspace (`[segment]`, or the one `[[workspaces]]`
    /// entry) and builds its client configuration, reading token files.
    pub fn validate(&self) -> Result<WorkspaceTarget, ConfigError> {
        let names = self.workspace_names();
        if names.len() > 1 {
            return Err(choose_one(&names));
        }
        let mut targets = self.targets()?;
        Ok(targets.remove(0))
    }

    /// The label of the workspace named `name` (checked against the configuration), or of the
    /// only one; for read-only commands, which need no token.
    pub fn workspace_name(&self, name: Option<&str>) -> Result<String, ConfigError> {
        let names = self.workspace_names();
        match name {
            Some(name) if names.iter().any(|n| n == name) => Ok(name.to_string()),
            Some(name) => Err(unknown_workspace(name, &names)),
            None if names.len() == 1 => Ok(names[0].clone()),
            None => Err(choose_one(&names)),
        }
    }

    /// Narrows the configuration to the workspace `name` (from `--workspace`), so commands that
    /// act on one workspace find exactly one; `None` leaves it as it is.
    pub fn select_workspace(&mut self, name: Option<&str>) -> Result<(), ConfigError> {
        let Some(name) = name else { return Ok(()) };
        let names = self.workspace_names();
        if !names.iter().any(|n| n == name) {
            return Err(unknown_workspace(name, &names));
        }
        self.all_workspaces = names;
        self.workspaces.retain(|w| w.name == name);
        Ok(())
    }

    /// The labels of every configured workspace, including those `--workspace` narrowed away.
    pub fn all_workspace_names(&self) -> Vec<String> {
        if self.all_workspaces.is_empty() {
            self.workspace_names()
        } else {
            self.all_workspaces.clone()
        }
    }

    /// The labels of the configured workspaces, without validating anything else.
    pub fn workspace_names(&self) -> Vec<String> {
        if self.workspaces.is_empty() {
            vec![self.segment.name.clone()]
        } else {
            self.workspaces.iter().map(|w| w.name.clone()).collect()
        }
    }

    /// Checks every workspace (the `[segment]` short form or each `[[workspaces]]` entry) and
    /// builds their clients and schedules, reading token files and variables.
    pub fn targets(&self) -> Result<Vec<WorkspaceTarget>, ConfigError> {
        let schedule = &self.schedule;
        if self.workspaces.is_empty() {
            return Ok(vec![target(
                "segment",
                &self.segment,
                (&schedule.cron, schedule.jitter_secs, &schedule.timezone),
                Vec::new(),
                "schedule",
            )?]);
        }
        let base = &self.segment;
        if base.token.is_some() || base.token_env.is_some() || base.token_file.is_some() {
            return Err(invalid(
                "segment.token",
                "`[[workspaces]]` are configured, so each takes its own `token`, `token_env` or \
                 `token_file`; a token in `[segment]` (or SEGWATCH_SEGMENT__TOKEN) would be ambiguous"
                    .into(),
            ));
        }
        self.check_short_form_keys()?;
        let mut seen = std::collections::HashSet::new();
        let mut out = Vec::with_capacity(self.workspaces.len());
        for (i, w) in self.workspaces.iter().enumerate() {
            let key = if w.name.trim().is_empty() {
                format!("workspaces[{i}]")
            } else {
                format!("workspaces[{}]", w.name)
            };
            if !seen.insert(w.name.as_str()) {
                return Err(invalid(
                    format!("{key}.name"),
                    "is used by two workspaces; names must be unique".into(),
                ));
            }
            let segment = SegmentSettings {
                name: w.name.clone(),
                region: w.region.clone().unwrap_or_else(|| base.region.clone()),
                api_url: w.api_url.clone().or_else(|| base.api_url.clone()),
                token: w.token.clone(),
                token_env: w.token_env.clone(),
                token_file: w.token_file.clone(),
                page_size: w.page_size.unwrap_or(base.page_size),
                request_timeout_secs: w.request_timeout_secs.unwrap_or(base.request_timeout_secs),
                max_response_bytes: w.max_response_bytes.unwrap_or(base.max_response_bytes),
                concurrency: w.concurrency.unwrap_or(base.concurrency),
                max_attempts: w.max_attempts.unwrap_or(base.max_attempts),
                max_pages: w.max_pages.unwrap_or(base.max_pages),
                max_rate_limit_wait_secs: w
                    .max_rate_limit_wait_secs
                    .unwrap_or(base.max_rate_limit_wait_secs),
                // Never inherited: they describe one workspace, not a default.
                description: w.description.clone(),
                paused: w.paused.clone(),
            };
            let when = (
                w.cron.as_deref().unwrap_or(&schedule.cron),
                w.jitter_secs.unwrap_or(schedule.jitter_secs),
                w.timezone.as_deref().unwrap_or(&schedule.timezone),
            );
            for pattern in &w.rules {
                globset::Glob::new(pattern).map_err(|e| {
                    invalid(
                        format!("{key}.rules"),
                        format!("`{pattern}` is not a glob: {e}"),
                    )
                })?;
            }
            out.push(target(&key, &segment, when, w.rules.clone(), &key)?);
        }
        Ok(out)
    }

    /// The configured workspaces with their description and pause state, checking only those
    /// keys (no token is read): for commands that list or skip workspaces.
    pub fn configured_workspaces(&self) -> Result<Vec<ConfiguredWorkspace>, ConfigError> {
        if self.workspaces.is_empty() {
            let s = &self.segment;
            return Ok(vec![ConfiguredWorkspace {
                name: s.name.clone(),
                description: s.description.clone(),
                paused: s.paused.get("segment.paused", false)?,
            }]);
        }
        self.check_short_form_keys()?;
        self.workspaces
            .iter()
            .map(|w| {
                Ok(ConfiguredWorkspace {
                    name: w.name.clone(),
                    description: w.description.clone(),
                    paused: w
                        .paused
                        .get(&format!("workspaces[{}].paused", w.name), false)?,
                })
            })
            .collect()
    }

    /// With `[[workspaces]]`, `[segment]` holds defaults only; a description or pause there
    /// would silently apply to nothing.
    fn check_short_form_keys(&self) -> Result<(), ConfigError> {
        if self.workspaces.is_empty() {
            return Ok(());
        }
        let base = &self.segment;
        for (key, set) in [
            ("segment.paused", base.paused != Flag::Unset),
            ("segment.description", base.description.is_some()),
        ] {
            if set {
                return Err(invalid(
                    key,
                    "`[[workspaces]]` are configured, so `[segment]` holds only defaults; set \
                     `paused` and `description` on each `[[workspaces]]` entry"
                        .into(),
                ));
            }
        }
        Ok(())
    }

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
                "email" => segwatch_sinks::SinkTarget::Email(email_config(s)?),
                other => {
                    return Err(invalid(
                        "sinks.type",
                        format!(
                            "sink `{}`: `{other}` is not a sink type; expected `slack`, `email` or `webhook`",
                            s.name
                        ),
                    ));
                }
            };
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
                app_base: s.app_base.clone(),
                templates: s.templates.clone(),
            });
        }
        Ok(out)
    }
}

/// A sink's size limit: `max_body_bytes` for a webhook, `max_message_bytes` for email, each
/// only on its own type (Slack's limits are fixed by Slack).
fn message_limit(s: &SinkSettings) -> Result<usize, ConfigError> {
    let (key, value, other) = match s.kind.as_str() {
        "webhook" => (
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
                "sink `{}`: `{other}` does not apply to a `{}` sink (webhook: max_body_bytes; email: max_message_bytes; Slack's limits are fixed)",
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

/// Several workspaces are configured and the command acts on one.
fn choose_one(names: &[String]) -> ConfigError {
    invalid(
        "workspaces",
        format!(
            "{} workspaces are configured ({}); choose one with --workspace NAME",
            names.len(),
            names.join(", ")
        ),
    )
}

fn unknown_workspace(name: &str, names: &[String]) -> ConfigError {
    invalid(
        "--workspace",
        format!(
            "no workspace named `{name}` is configured (configured: {})",
            names.join(", ")
        ),
    )
}

/// Validates one workspace's `[segment]`-shaped settings, reporting errors under `key`
/// (`segment` or `workspaces[NAME]`) and its schedule under `schedule_key`.
fn target(
    key: &str,
    s: &SegmentSettings,
    (cron, jitter_secs, timezone): (&str, u64, &str),
    rules: Vec<String>,
    schedule_key: &str,
) -> Result<WorkspaceTarget, ConfigError> {
    let at = |field: &str| format!("{key}.{field}");
    if s.name.trim().is_empty() {
        return Err(invalid(at("name"), "must not be empty".into()));
    }
    let base_url = match &s.api_url {
        // The client's own check (https, or http on loopback only: the token must never
        // cross a network in clear), reported against the key.
        Some(url) if !url.trim().is_empty() => segwatch_api::segment::check_base_url(url.trim())
            .map_err(|why| invalid(at("api_url"), why))?,
        _ => match s.region.as_str() {
            "us" => US_API_URL.to_string(),
            "eu" => EU_API_URL.to_string(),
            other => {
                return Err(invalid(
                    at("region"),
                    format!(
                        "`{other}` is not a region; expected `us` or `eu` (or set `{key}.api_url`)"
                    ),
                ));
            }
        },
    };
    if !(1..=200).contains(&s.page_size) {
        return Err(invalid(
            at("page_size"),
            format!("{} is out of range; Segment accepts 1 to 200", s.page_size),
        ));
    }
    if s.request_timeout_secs == 0 {
        return Err(invalid(
            at("request_timeout_secs"),
            "must be at least 1".into(),
        ));
    }
    check_max_response_bytes(&at("max_response_bytes"), s.max_response_bytes)?;
    if !(1..=64).contains(&s.concurrency) {
        return Err(invalid(
            at("concurrency"),
            format!("{} is out of range; expected 1 to 64", s.concurrency),
        ));
    }
    if !(1..=20).contains(&s.max_attempts) {
        return Err(invalid(
            at("max_attempts"),
            format!("{} is out of range; expected 1 to 20", s.max_attempts),
        ));
    }
    if s.max_pages == 0 {
        return Err(invalid(at("max_pages"), "must be at least 1".into()));
    }
    let zone: chrono_tz::Tz = timezone.parse().map_err(|_| {
        invalid(
            format!("{schedule_key}.timezone"),
            format!(
                "`{timezone}` is not an IANA time zone (e.g. `UTC`, `Europe/Paris`, `America/New_York`)"
            ),
        )
    })?;
    let schedule = crate::schedule::Schedule::parse(cron, Duration::from_secs(jitter_secs), zone)
        .map_err(|e| invalid(format!("{schedule_key}.cron"), e.to_string()))?;
    let paused = s.paused.get(&at("paused"), false)?;
    let token = token(key, s)?;
    let mut client = segwatch_api::segment::ClientConfig::new(base_url, token);
    client.page_size = s.page_size;
    client.request_timeout = Duration::from_secs(s.request_timeout_secs);
    client.max_response_bytes = s.max_response_bytes;
    client.concurrency = s.concurrency;
    client.max_attempts = s.max_attempts;
    client.max_pages = s.max_pages;
    client.max_rate_limit_wait = Duration::from_secs(s.max_rate_limit_wait_secs);
    Ok(WorkspaceTarget {
        name: s.name.clone(),
        client,
        schedule,
        schedule_text: format!("{cron} ({zone})"),
        rules,
        key: key.to_string(),
        description: s.description.clone(),
        paused,
    })
}

/// The token of one workspace: inline, from a named variable, or from a file; exactly one.
fn token(key: &str, s: &SegmentSettings) -> Result<SecretString, ConfigError> {
    let base = format!("{key}.token");
    let token = read_secret(
        &base,
        "",
        s.token.as_ref(),
        s.token_env.as_deref(),
        s.token_file.as_deref(),
    )?;
    token.ok_or_else(|| {
        let how = if key == "segment" {
            "set SEGWATCH_SEGMENT__TOKEN or `segment.token_file`".to_string()
        } else {
            format!("set `{key}.token_env` or `{key}.token_file`")
        };
        invalid(base, format!("no API token: {how}"))
    })
}

impl From<config::ConfigError> for ConfigError {
    fn from(e: config::ConfigError) -> Self {
        ConfigError::Load(e)
    }
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

/// A secret given inline (`key`), by environment variable name (`key_env`) or by file
/// (`key_file`): at most one of the three, trimmed, not empty. Errors name the field that was
/// given, with `context` (e.g. "sink `x`: ") before the message.
fn read_secret(
    key: &str,
    context: &str,
    inline: Option<&SecretString>,
    env: Option<&str>,
    file: Option<&Path>,
) -> Result<Option<SecretString>, ConfigError> {
    let given = [inline.is_some(), env.is_some(), file.is_some()]
        .iter()
        .filter(|b| **b)
        .count();
    if given > 1 {
        return Err(invalid(
            key,
            format!("{context}set one of `{key}`, `{key}_env` or `{key}_file`, not several"),
        ));
    }
    let (value, field) = if let Some(v) = inline {
        (v.expose_secret().to_string(), key.to_string())
    } else if let Some(var) = env {
        let field = format!("{key}_env");
        let value = std::env::var(var).map_err(|_| {
            invalid(
                field.clone(),
                format!("{context}environment variable {var} is not set"),
            )
        })?;
        (value, field)
    } else if let Some(path) = file {
        let field = format!("{key}_file");
        let value = read_secret_file(path).map_err(|why| {
            invalid(
                field.clone(),
                format!("{context}cannot read {}: {why}", path.display()),
            )
        })?;
        (value, field)
    } else {
        return Ok(None);
    };
    let value = value.trim();
    if value.is_empty() {
        return Err(invalid(field, format!("{context}the value is empty")));
    }
    Ok(Some(SecretString::from(value)))
}

/// The smallest `max_response_bytes` accepted: below this even an error envelope is cut off,
/// and every poll would fail on a limit that was surely a typo.
const MIN_RESPONSE_BYTES: u64 = 1024;

fn check_max_response_bytes(key: &str, value: u64) -> Result<(), ConfigError> {
    if value < MIN_RESPONSE_BYTES {
        return Err(invalid(
            key,
            format!(
                "{value} is too small; expected at least {MIN_RESPONSE_BYTES} (bytes; the default is {})",
                segwatch_api::segment::DEFAULT_MAX_RESPONSE_BYTES
            ),
        ));
    }
    Ok(())
}

/// Most bytes read from a token or secret file. Real secrets are well under 1 KiB; the cap makes
/// a wrong path (`/dev/zero`, a log file, a disk image) fail at once instead of filling memory.
pub const MAX_SECRET_FILE_BYTES: u64 = 64 * 1024;

/// The text of a secret file, at most [`MAX_SECRET_FILE_BYTES`] read; the error says why not.
fn read_secret_file(path: &Path) -> Result<String, String> {
    use std::io::Read as _;
    let file = std::fs::File::open(path).map_err(|e| e.to_string())?;
    let mut bytes = Vec::new();
    // One byte past the limit tells "exactly at the limit" from "larger".
    file.take(MAX_SECRET_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| e.to_string())?;
    if bytes.len() as u64 > MAX_SECRET_FILE_BYTES {
        return Err(format!(
            "it is larger than {}, the limit for a secret file (is this the right file?)",
            segwatch_api::segment::ByteSize(MAX_SECRET_FILE_BYTES)
        ));
    }
    String::from_utf8(bytes).map_err(|_| "it is not UTF-8 text".to_owned())
}

fn invalid(key: impl Into<String>, message: String) -> ConfigError {
    ConfigError::Invalid {
        key: key.into(),
        message,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(toml: &str, env: &[(&str, &str)]) -> Result<Settings, ConfigError> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("segwatch.toml");
        std::fs::write(&path, toml).unwrap();
        let env = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Settings::load_with_env(&path, true, env)
    }

    fn error_of(toml: &str, env: &[(&str, &str)]) -> String {
        match load(toml, env).and_then(|s| s.validate().map(|_| ())) {
            Ok(()) => panic!("expected an error"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn defaults_then_file_then_environment() {
        let s = load(
            "[segment]\nregion = \"eu\"\npage_size = 50\n[database]\npath = \"file.db\"\n",
            &[
                ("SEGWATCH_DATABASE__PATH", "env.db"),
                ("SEGWATCH_SEGMENT__TOKEN", "tok"),
            ],
        )
        .unwrap();
        assert_eq!(s.database.path, PathBuf::from("env.db"));
        let target = s.validate().unwrap();
        assert_eq!(target.client.base_url, EU_API_URL);
        assert_eq!(target.client.page_size, 50);
        assert_eq!(target.client.concurrency, 8);
        assert_eq!(target.name, "default");
    }

    #[test]
    fn api_url_from_environment_overrides_region() {
        let s = load(
            "",
            &[
                ("SEGWATCH_SEGMENT__API_URL", "http://127.0.0.1:9000/"),
                ("SEGWATCH_SEGMENT__TOKEN", "tok"),
                ("SEGWATCH_SEGMENT__PAGE_SIZE", "10"),
                ("SEGWATCH_CONFIG", "ignored.toml"),
            ],
        )
        .unwrap();
        let target = s.validate().unwrap();
        assert_eq!(target.client.base_url, "http://127.0.0.1:9000");
        assert_eq!(target.client.page_size, 10);
    }

    #[test]
    fn token_file_is_read_and_trimmed() {
        let dir = tempfile::tempdir().unwrap();
        let token_path = dir.path().join("token");
        std::fs::write(&token_path, "secret-token\n").unwrap();
        let s = load(
            &format!(
                "[segment]\ntoken_file = {:?}\n",
                token_path.display().to_string()
            ),
            &[],
        )
        .unwrap();
        let target = s.validate().unwrap();
        assert_eq!(target.client.token.expose_secret(), "secret-token");
    }

    #[test]
    fn bad_values_name_their_key() {
        let tok = [("SEGWATCH_SEGMENT__TOKEN", "tok")];
        type Env<'a> = &'a [(&'a str, &'a str)];
        let cases: &[(&str, Env, &str)] = &[
            ("[segment]\nregion = \"mars\"\n", &tok, "segment.region"),
            ("[segment]\npage_size = 500\n", &tok, "segment.page_size"),
            ("[segment]\nconcurrency = 0\n", &tok, "segment.concurrency"),
            (
                "[segment]\napi_url = \"http://example.com\"\n",
                &tok,
                "segment.api_url",
            ),
            (
                "[segment]\napi_url = \"not a url\"\n",
                &tok,
                "segment.api_url",
            ),
            ("", &[], "SEGWATCH_SEGMENT__TOKEN"),
            (
                "[segment]\ntoken_file = \"/nonexistent/token\"\n",
                &[],
                "segment.token_file",
            ),
            ("[segment]\npage_size = \"many\"\n", &tok, "page_size"),
            ("[segment]\npagesize = 5\n", &tok, "pagesize"),
            ("[databse]\npath = \"x\"\n", &tok, "databse"),
        ];
        for (toml, env, needle) in cases {
            let message = error_of(toml, env);
            assert!(
                message.contains(needle),
                "{toml:?}: {message:?} should mention {needle}"
            );
        }
    }

    #[test]
    fn the_documented_example_is_valid() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/segwatch.example.toml");
        let env = [("SEGWATCH_SEGMENT__TOKEN".to_string(), "tok".to_string())].into();
        let settings = Settings::load_with_env(&path, true, env).unwrap();
        let target = settings.validate().unwrap();
        assert_eq!(target.client.base_url, US_API_URL);
        // Every key the example sets is spelled as the code reads it (unknown keys are errors),
        // and every key the code reads appears in the example.
        let text = std::fs::read_to_string(&path).unwrap();
        for (key, _) in DEFAULTS {
            let leaf = key.rsplit('.').next().unwrap();
            assert!(
                text.contains(&format!("{leaf} =")),
                "{key} is not documented in the example"
            );
        }
        assert!(settings.profiles().unwrap().is_none());
        for key in [
            "api_url",
            "token_file",
            "space_id",
            "access_secret",
            "access_secret_env",
            "access_secret_file",
        ] {
            assert!(text.contains(key), "{key} is not documented in the example");
        }
    }

    #[test]
    fn profiles_section_is_checked_key_by_key() {
        let err = |toml: &str, env: &[(&str, &str)]| {
            let s = load(toml, env).unwrap();
            match s.profiles().unwrap_err() {
                ConfigError::Invalid { key, .. } => key,
                other => panic!("unexpected {other}"),
            }
        };
        assert_eq!(
            err("[profiles]\nregion = \"mars\"\nspace_id = \"spa\"\n", &[]),
            "profiles.region"
        );
        assert_eq!(
            err("[profiles]\napi_url = \"http://example.com\"\n", &[]),
            "profiles.api_url"
        );
        assert_eq!(
            err("[profiles]\nspace_id = \"spa_1\"\n", &[]),
            "profiles.access_secret"
        );
        assert_eq!(
            err("", &[("SEGWATCH_PROFILES__ACCESS_SECRET", "s3")]),
            "profiles.space_id"
        );
        assert_eq!(
            err(
                "[profiles]\nspace_id = \"a/b\"\n",
                &[("SEGWATCH_PROFILES__ACCESS_SECRET", "s3")]
            ),
            "profiles.space_id"
        );
        let s = load(
            "[profiles]\nregion = \"eu\"\nspace_id = \"spa_1\"\n",
            &[("SEGWATCH_PROFILES__ACCESS_SECRET", "very-secret-profile")],
        )
        .unwrap();
        let target = s.profiles().unwrap().unwrap();
        assert_eq!(target.base_url, PROFILES_EU_URL);
        assert_eq!(target.space_id, "spa_1");
        assert!(!format!("{s:?}{target:?}").contains("very-secret-profile"));
    }

    #[test]
    fn token_is_not_in_debug_output() {
        let s = load("", &[("SEGWATCH_SEGMENT__TOKEN", "very-secret-value")]).unwrap();
        assert!(!format!("{s:?}").contains("very-secret-value"));
    }

    #[test]
    fn workspaces_inherit_tuning_and_schedule_but_not_the_token() {
        let s = load(
            "[segment]\npage_size = 50\n[schedule]\ncron = \"0 * * * *\"\ntimezone = \"Europe/Paris\"\n\
             [[workspaces]]\nname = \"prod\"\ntoken = \"t1\"\n\
             [[workspaces]]\nname = \"eu\"\nregion = \"eu\"\ntoken = \"t2\"\npage_size = 20\n\
             cron = \"*/5 * * * *\"\ntimezone = \"UTC\"\nrules = [\"source-*\"]\n",
            &[],
        )
        .unwrap();
        let targets = s.targets().unwrap();
        assert_eq!(targets.len(), 2);
        assert_eq!(targets[0].name, "prod");
        assert_eq!(targets[0].client.page_size, 50);
        assert_eq!(targets[0].client.base_url, US_API_URL);
        assert_eq!(targets[0].schedule_text, "0 * * * * (Europe/Paris)");
        assert_eq!(targets[0].client.token.expose_secret(), "t1");
        assert_eq!(targets[1].client.base_url, EU_API_URL);
        assert_eq!(targets[1].client.page_size, 20);
        assert_eq!(targets[1].schedule_text, "*/5 * * * * (UTC)");
        assert_eq!(targets[1].rules, ["source-*"]);
        // Commands that act on one workspace must be told which.
        let err = s.validate().unwrap_err().to_string();
        assert!(
            err.contains("--workspace") && err.contains("prod, eu"),
            "{err}"
        );
        let mut one = s;
        one.select_workspace(Some("eu")).unwrap();
        assert_eq!(one.validate().unwrap().name, "eu");
        assert!(
            one.select_workspace(Some("nope"))
                .unwrap_err()
                .to_string()
                .contains("no workspace named `nope`")
        );
    }

    #[test]
    fn workspace_mistakes_name_the_workspace_and_key() {
        let cases: &[(&str, &str)] = &[
            (
                "[[workspaces]]\nname = \"prod\"\n",
                "`workspaces[prod].token`",
            ),
            (
                "[segment]\ntoken = \"t\"\n[[workspaces]]\nname = \"prod\"\ntoken = \"t1\"\n",
                "`segment.token`",
            ),
            (
                "[[workspaces]]\nname = \"a\"\ntoken = \"t\"\n[[workspaces]]\nname = \"a\"\ntoken = \"u\"\n",
                "`workspaces[a].name`",
            ),
            (
                "[[workspaces]]\nname = \"prod\"\ntoken = \"t\"\ntimezone = \"Mars/Olympus\"\n",
                "`workspaces[prod].timezone`",
            ),
            (
                "[[workspaces]]\nname = \"prod\"\ntoken = \"t\"\ncron = \"often\"\n",
                "`workspaces[prod].cron`",
            ),
            (
                "[[workspaces]]\nname = \"prod\"\ntoken = \"t\"\npage_size = 0\n",
                "`workspaces[prod].page_size`",
            ),
            (
                "[[workspaces]]\nname = \"prod\"\ntoken = \"t\"\nrules = [\"[\"]\n",
                "`workspaces[prod].rules`",
            ),
            (
                "[[workspaces]]\nname = \"prod\"\ntoken_env = \"SEGWATCH_TEST_UNSET_VARIABLE\"\n",
                "`workspaces[prod].token_env`",
            ),
            (
                "[schedule]\ntimezone = \"Paris\"\n[segment]\ntoken = \"t\"\n",
                "`schedule.timezone`",
            ),
        ];
        for (toml, needle) in cases {
            let message = match load(toml, &[]).and_then(|s| s.targets().map(|_| ())) {
                Ok(()) => panic!("{toml:?} should be rejected"),
                Err(e) => e.to_string(),
            };
            assert!(
                message.contains(needle),
                "{toml:?}: {message:?} should mention {needle}"
            );
        }
    }

    #[test]
    fn a_sink_limited_to_an_unknown_workspace_is_refused() {
        let toml = "[[workspaces]]\nname = \"prod\"\ntoken = \"t\"\n\
            [[workspaces]]\nname = \"eu\"\ntoken = \"u\"\n\
            [[sinks]]\nname = \"hook\"\ntype = \"webhook\"\nurl = \"https://example.com/h\"\nworkspaces = [\"prd\"]\n";
        let err = load(toml, &[]).unwrap().sinks().unwrap_err().to_string();
        assert!(
            err.contains("`sinks.workspaces`") && err.contains("`prd`"),
            "{err}"
        );
        // Narrowed to one workspace with --workspace, the sink may still name the other.
        let ok = toml.replace("\"prd\"", "\"eu\"");
        let mut settings = load(&ok, &[]).unwrap();
        settings.select_workspace(Some("prod")).unwrap();
        assert_eq!(settings.sinks().unwrap()[0].filter.workspaces, ["eu"]);
    }

    #[test]
    fn health_token_comes_from_one_of_token_env_or_file() {
        let none = load("[segment]\ntoken = \"t\"\n", &[]).unwrap();
        assert!(none.health.token().unwrap().is_none());
        let inline = load(
            "[segment]\ntoken = \"t\"\n[health]\ntoken = \" h-1 \"\n",
            &[],
        )
        .unwrap();
        assert_eq!(
            inline.health.token().unwrap().unwrap().expose_secret(),
            "h-1"
        );
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("health-token");
        std::fs::write(&file, "h-2\n").unwrap();
        let from_file = load(
            &format!(
                "[segment]\ntoken = \"t\"\n[health]\ntoken_file = \"{}\"\n",
                file.display()
            ),
            &[],
        )
        .unwrap();
        assert_eq!(
            from_file.health.token().unwrap().unwrap().expose_secret(),
            "h-2"
        );
        let unset = load(
            "[segment]\ntoken = \"t\"\n[health]\ntoken_env = \"SEGWATCH_TEST_NO_SUCH_VAR_4471\"\n",
            &[],
        )
        .unwrap();
        let err = unset.health.token().unwrap_err().to_string();
        assert!(
            err.contains("`health.token_env`") && err.contains("SEGWATCH_TEST_NO_SUCH_VAR_4471"),
            "{err}"
        );
        let both = load(
            &format!(
                "[segment]\ntoken = \"t\"\n[health]\ntoken = \"a\"\ntoken_file = \"{}\"\n",
                file.display()
            ),
            &[],
        )
        .unwrap();
        let err = both.health.token().unwrap_err().to_string();
        assert!(err.contains("not several"), "{err}");
    }

    #[test]
    fn plain_http_webhooks_only_to_loopback_unless_allowed() {
        let sink = |url: &str, extra: &str| {
            load(
                &format!(
                    "[segment]\ntoken = \"t\"\n[[sinks]]\nname = \"hook\"\ntype = \"webhook\"\nurl = \"{url}\"\n{extra}"
                ),
                &[],
            )
            .unwrap()
            .sinks()
        };
        for ok in [
            "https://hooks.example.com/h",
            "http://127.0.0.1:9000/h",
            "http://127.8.0.1/h",
            "http://localhost:8080/h",
            "http://[::1]:8080/h",
        ] {
            assert!(sink(ok, "").is_ok(), "{ok}");
        }
        for refused in [
            "http://hooks.example.com/h",
            "http://10.0.0.5/h",
            "http://[fd00::1]/h",
        ] {
            let err = sink(refused, "").unwrap_err().to_string();
            for needle in ["`sinks.url`", "sink `hook`", "allow_insecure_http = true"] {
                assert!(err.contains(needle), "{refused}: {err}");
            }
            // The URL is a secret and stays out of the message.
            assert!(!err.contains(refused), "{err}");
            assert!(
                sink(refused, "allow_insecure_http = true\n").is_ok(),
                "{refused}"
            );
        }
        let err = sink("ftp://hooks.example.com/h", "")
            .unwrap_err()
            .to_string();
        assert!(err.contains("`ftp` is not a webhook scheme"), "{err}");
    }

    #[test]
    fn message_limits_are_read_defaulted_and_validated_per_sink_type() {
        let base = "[segment]\ntoken = \"t\"\n[[sinks]]\nname = \"hook\"\ntype = \"webhook\"\nurl = \"https://example.com/h\"\n";
        let sinks = load(base, &[]).unwrap().sinks().unwrap();
        assert_eq!(sinks[0].max_message_bytes, 1024 * 1024);
        assert_eq!(sinks[0].max_messages_per_run, 20);
        let set = format!("{base}max_body_bytes = 65536\nmax_messages_per_run = 5\n");
        let sinks = load(&set, &[]).unwrap().sinks().unwrap();
        assert_eq!(
            (sinks[0].max_message_bytes, sinks[0].max_messages_per_run),
            (65536, 5)
        );
        for (extra, needles) in [
            (
                "max_body_bytes = 100\n",
                &[
                    "`sinks.max_body_bytes`",
                    "sink `hook`",
                    "100 is out of range",
                    "16384",
                ][..],
            ),
            (
                "max_body_bytes = 200000000\n",
                &["`sinks.max_body_bytes`", "104857600"],
            ),
            (
                "max_message_bytes = 65536\n",
                &[
                    "`sinks.max_message_bytes`",
                    "does not apply to a `webhook` sink",
                ],
            ),
            (
                "max_messages_per_run = 0\n",
                &[
                    "`sinks.max_messages_per_run`",
                    "0 is out of range; expected 1 to 10000",
                ],
            ),
        ] {
            let err = load(&format!("{base}{extra}"), &[])
                .unwrap()
                .sinks()
                .unwrap_err()
                .to_string();
            for needle in needles {
                assert!(err.contains(needle), "{extra}: {err}");
            }
        }
    }

    #[test]
    fn retry_backoff_is_read_defaulted_and_validated_per_sink() {
        let base = "[segment]\ntoken = \"t\"\n[[sinks]]\nname = \"hook\"\ntype = \"webhook\"\nurl = \"https://example.com/h\"\n";
        let sinks = load(base, &[]).unwrap().sinks().unwrap();
        assert_eq!(
            sinks[0].retry_backoff,
            segwatch_sinks::outbox::RetryBackoff {
                base: std::time::Duration::from_secs(30),
                max: std::time::Duration::from_secs(3600),
            }
        );
        let set = format!("{base}retry_base_secs = 1\nretry_max_secs = 4\n");
        let sinks = load(&set, &[]).unwrap().sinks().unwrap();
        assert_eq!(
            (sinks[0].retry_backoff.base, sinks[0].retry_backoff.max),
            (
                std::time::Duration::from_secs(1),
                std::time::Duration::from_secs(4)
            )
        );
        for (extra, needles) in [
            (
                "retry_base_secs = 0\n",
                &[
                    "`sinks.retry_base_secs`",
                    "sink `hook`",
                    "0 is out of range; expected 1 to 3600 seconds",
                ][..],
            ),
            (
                "retry_base_secs = 3601\n",
                &["`sinks.retry_base_secs`", "3601 is out of range"],
            ),
            (
                "retry_base_secs = 60\nretry_max_secs = 30\n",
                &[
                    "`sinks.retry_max_secs`",
                    "30 is out of range; expected `retry_base_secs` (60) to 86400 seconds",
                ],
            ),
            (
                "retry_max_secs = 86401\n",
                &["`sinks.retry_max_secs`", "86401 is out of range"],
            ),
        ] {
            let err = load(&format!("{base}{extra}"), &[])
                .unwrap()
                .sinks()
                .unwrap_err()
                .to_string();
            for needle in needles {
                assert!(err.contains(needle), "{extra}: {err}");
            }
        }
    }

    #[test]
    fn description_and_paused_are_read_per_workspace_and_not_inherited() {
        let s = load(
            "[[workspaces]]\nname = \"prod\"\ntoken = \"t1\"\ndescription = \"EU production\"\npaused = true\n\
             [[workspaces]]\nname = \"staging\"\ntoken = \"t2\"\npaused = false\n\
             [[workspaces]]\nname = \"dev\"\ntoken = \"t3\"\n",
            &[],
        )
        .unwrap();
        let listed = s.configured_workspaces().unwrap();
        assert_eq!(
            listed,
            [
                ConfiguredWorkspace {
                    name: "prod".into(),
                    description: Some("EU production".into()),
                    paused: true
                },
                ConfiguredWorkspace {
                    name: "staging".into(),
                    description: None,
                    paused: false
                },
                ConfiguredWorkspace {
                    name: "dev".into(),
                    description: None,
                    paused: false
                },
            ]
        );
        let targets = s.targets().unwrap();
        let paused: Vec<(&str, bool)> = targets
            .iter()
            .map(|t| (t.name.as_str(), t.paused))
            .collect();
        assert_eq!(paused, [("prod", true), ("staging", false), ("dev", false)]);
        assert_eq!(targets[0].description.as_deref(), Some("EU production"));
    }

    #[test]
    fn the_short_form_takes_description_and_paused_from_file_or_environment() {
        let s = load(
            "[segment]\ntoken = \"t\"\ndescription = \"the only one\"\n",
            &[("SEGWATCH_SEGMENT__PAUSED", "true")],
        )
        .unwrap();
        let target = s.validate().unwrap();
        assert!(target.paused);
        assert_eq!(target.description.as_deref(), Some("the only one"));
        let s = load("[segment]\ntoken = \"t\"\n", &[]).unwrap();
        assert!(!s.validate().unwrap().paused, "paused defaults to false");
        assert!(!s.configured_workspaces().unwrap()[0].paused);
    }

    #[test]
    fn bad_pause_values_name_the_workspace_key() {
        let cases = [
            (
                "[[workspaces]]\nname = \"prod\"\ntoken = \"t\"\npaused = \"yes\"\n",
                "`workspaces[prod].paused`: expected `true` or `false`, found `yes`",
            ),
            (
                "[[workspaces]]\nname = \"prod\"\ntoken = \"t\"\npaused = 1\n",
                "`workspaces[prod].paused`: expected `true` or `false`, found the number 1",
            ),
            (
                "[segment]\ntoken = \"t\"\npaused = \"maybe\"\n",
                "`segment.paused`",
            ),
            (
                "[segment]\npaused = true\n[[workspaces]]\nname = \"prod\"\ntoken = \"t\"\n",
                "`segment.paused`: `[[workspaces]]` are configured",
            ),
            (
                "[segment]\ndescription = \"x\"\n[[workspaces]]\nname = \"prod\"\ntoken = \"t\"\n",
                "`segment.description`",
            ),
        ];
        for (toml, needle) in cases {
            let settings = load(toml, &[]).unwrap();
            for message in [
                settings.targets().unwrap_err().to_string(),
                settings.configured_workspaces().unwrap_err().to_string(),
            ] {
                assert!(
                    message.contains(needle),
                    "{toml:?}: {message:?} should mention {needle}"
                );
            }
        }
    }

    #[test]
    fn max_response_bytes_defaults_is_inherited_and_checked() {
        let s = load(
            "[segment]\nmax_response_bytes = 2048\n\
             [[workspaces]]\nname = \"prod\"\ntoken = \"t1\"\n\
             [[workspaces]]\nname = \"eu\"\ntoken = \"t2\"\nmax_response_bytes = 4096\n",
            &[],
        )
        .unwrap();
        let targets = s.targets().unwrap();
        assert_eq!(targets[0].client.max_response_bytes, 2048);
        assert_eq!(targets[1].client.max_response_bytes, 4096);
        let s = load("", &[("SEGWATCH_SEGMENT__TOKEN", "t")]).unwrap();
        assert_eq!(
            s.validate().unwrap().client.max_response_bytes,
            segwatch_api::segment::DEFAULT_MAX_RESPONSE_BYTES
        );
        let err = error_of(
            "[segment]\nmax_response_bytes = 10\n",
            &[("SEGWATCH_SEGMENT__TOKEN", "t")],
        );
        assert!(
            err.contains("`segment.max_response_bytes`") && err.contains("at least 1024"),
            "{err}"
        );
        let err = error_of(
            "[[workspaces]]\nname = \"prod\"\ntoken = \"t\"\nmax_response_bytes = 0\n",
            &[],
        );
        assert!(
            err.contains("`workspaces[prod].max_response_bytes`"),
            "{err}"
        );

        let profiles = |toml: &str| {
            load(toml, &[("SEGWATCH_PROFILES__ACCESS_SECRET", "s3")])
                .unwrap()
                .profiles()
        };
        let target = profiles("[profiles]\nspace_id = \"spa_1\"\n")
            .unwrap()
            .unwrap();
        assert_eq!(
            target.max_response_bytes,
            segwatch_api::segment::DEFAULT_MAX_RESPONSE_BYTES
        );
        let target = profiles("[profiles]\nspace_id = \"spa_1\"\nmax_response_bytes = 5000\n")
            .unwrap()
            .unwrap();
        assert_eq!(target.max_response_bytes, 5000);
        let err = profiles("[profiles]\nspace_id = \"spa_1\"\nmax_response_bytes = 1\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("`profiles.max_response_bytes`"), "{err}");
    }

    #[test]
    fn secret_files_are_read_up_to_the_limit_only() {
        let dir = tempfile::tempdir().unwrap();
        let at_limit = dir.path().join("at-limit");
        let mut text = "t".repeat(MAX_SECRET_FILE_BYTES as usize - 1);
        text.push('\n');
        std::fs::write(&at_limit, &text).unwrap();
        let over = dir.path().join("over");
        text.push('x');
        std::fs::write(&over, &text).unwrap();
        let toml = |key: &str, path: &Path| format!("{key} = {:?}\n", path.display().to_string());

        let s = load(
            &format!("[segment]\n{}", toml("token_file", &at_limit)),
            &[],
        )
        .unwrap();
        assert_eq!(
            s.validate().unwrap().client.token.expose_secret().len(),
            MAX_SECRET_FILE_BYTES as usize - 1
        );
        let err = error_of(&format!("[segment]\n{}", toml("token_file", &over)), &[]);
        assert!(
            err.contains("`segment.token_file`")
                && err.contains(&over.display().to_string())
                && err.contains("larger than 64 KiB (65536 bytes)"),
            "{err}"
        );

        // A device that never ends fails at once instead of filling memory.
        let zero = Path::new("/dev/zero");
        let err = error_of(&format!("[segment]\n{}", toml("token_file", zero)), &[]);
        assert!(err.contains("/dev/zero") && err.contains("64 KiB"), "{err}");
        let s = load(
            &format!(
                "[profiles]\nspace_id = \"spa_1\"\n{}",
                toml("access_secret_file", zero)
            ),
            &[],
        )
        .unwrap();
        let err = s.profiles().unwrap_err().to_string();
        assert!(
            err.contains("`profiles.access_secret_file`") && err.contains("64 KiB"),
            "{err}"
        );
        let s = load(
            &format!(
                "[[sinks]]\nname = \"hook\"\ntype = \"webhook\"\n{}",
                toml("url_file", zero)
            ),
            &[],
        )
        .unwrap();
        let err = s.sinks().unwrap_err().to_string();
        assert!(
            err.contains("`sinks.url_file`")
                && err.contains("sink `hook`")
                && err.contains("64 KiB"),
            "{err}"
        );
    }
}
