//! Configuration: built-in defaults < TOML file < `SEGWATCH_*` environment variables.
//!
//! Raw [`Settings`] are what the user wrote; [`Settings::validate`] turns them into checked values
//! and names the offending key in every error, because a daemon that starts with a half-understood
//! configuration is worse than one that refuses to start. Every key is documented in
//! `config/segwatch.example.toml`; the key names are a contract for scripts (`[segment] token`
//! is `SEGWATCH_SEGMENT__TOKEN`, `[database] path` is `SEGWATCH_DATABASE__PATH`).

mod secrets;
mod sections;
mod sinks;
#[cfg(test)]
mod tests;
mod workspaces;

use std::collections::HashMap;
use std::path::Path;

use serde::Deserialize;

pub use secrets::MAX_SECRET_FILE_BYTES;
pub use sections::{
    AccessSettings, CollectSettings, DatabaseSettings, DeliverySettings, FlowsSettings,
    HealthSettings, ProfilesSettings, RetentionSettings, RulesSettings, ScheduleSettings,
    SegmentSettings,
};
pub use segwatch_api::profiles::ProfilesTarget;
pub use sinks::SinkSettings;
pub use workspaces::{ConfiguredWorkspace, Flag, WorkspaceSettings, WorkspaceTarget};

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
    /// `[access]`: access reviews (company domains).
    #[serde(default)]
    pub access: AccessSettings,
    /// `[flows]`: the data-flow map (personal-field patterns).
    #[serde(default)]
    pub flows: FlowsSettings,
    /// Several workspaces in one daemon (`[[workspaces]]`); when absent, `[segment]` is the one
    /// workspace.
    #[serde(default)]
    pub workspaces: Vec<WorkspaceSettings>,
    /// Every configured workspace's name, kept when `--workspace` narrows the configuration.
    #[serde(skip)]
    all_workspaces: Vec<String>,
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
    ("collect.destination_filters", DefaultValue::Bool(true)),
    (
        "collect.destination_subscriptions",
        DefaultValue::Bool(true),
    ),
    ("collect.source_schema_settings", DefaultValue::Bool(true)),
    ("collect.transformations", DefaultValue::Bool(true)),
    ("collect.reverse_etl_models", DefaultValue::Bool(true)),
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
}

impl From<config::ConfigError> for ConfigError {
    fn from(e: config::ConfigError) -> Self {
        ConfigError::Load(e)
    }
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

fn invalid(key: impl Into<String>, message: String) -> ConfigError {
    ConfigError::Invalid {
        key: key.into(),
        message,
    }
}
