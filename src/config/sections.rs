//! The plain sections (`[profiles]`, `[health]`, `[delivery]`, `[retention]`, `[collect]`,
//! `[access]`, `[schedule]`, `[rules]`, `[segment]`, `[database]`) and the checked `[profiles]` target.

use std::path::PathBuf;
use std::time::Duration;

use secrecy::SecretString;
use segwatch_api::profiles::ProfilesTarget;
use serde::Deserialize;

use super::secrets::read_secret;
use super::workspaces::Flag;
use super::{
    ConfigError, PROFILES_EU_URL, PROFILES_US_URL, Settings, check_max_response_bytes, invalid,
};

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
                segwatch_core::time::Timestamp::from(now - chrono::Duration::days(days as i64))
                    .to_string()
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
    /// Collect destination filters, one request per destination (with `destinations` only).
    pub destination_filters: bool,
    /// Collect Actions subscriptions, one request per destination (with `destinations` only).
    pub destination_subscriptions: bool,
    /// Collect sources' schema settings, one request per source.
    pub source_schema_settings: bool,
    /// Collect transformations (`GET /transformations`).
    pub transformations: bool,
    /// Collect reverse ETL models (`GET /reverse-etl-models`).
    pub reverse_etl_models: bool,
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
            destination_filters: self.destination_filters,
            destination_subscriptions: self.destination_subscriptions,
            source_schema_settings: self.source_schema_settings,
            transformations: self.transformations,
            reverse_etl_models: self.reverse_etl_models,
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

/// `[access]`: how access reviews classify accounts. Optional; every key has a default.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AccessSettings {
    /// The company's email domains (`["acme.io"]`): an account whose email is in one of them
    /// (or a subdomain) is `internal`, any other `external`; empty: every account is `unknown`.
    pub internal_domains: Vec<String>,
}

impl AccessSettings {
    /// The domains, checked: each must look like a domain name (letters, digits, `-`, `.`; no
    /// `@` or spaces), so that a typo does not silently make everyone external.
    pub fn internal_domains(&self) -> Result<Vec<String>, ConfigError> {
        let mut out = Vec::with_capacity(self.internal_domains.len());
        for d in &self.internal_domains {
            let trimmed = d.trim().trim_end_matches('.');
            let valid = !trimmed.is_empty()
                && trimmed.contains('.')
                && trimmed
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.');
            if !valid {
                return Err(invalid(
                    "access.internal_domains",
                    format!("`{d}` is not a domain name; expected e.g. `acme.io`"),
                ));
            }
            out.push(trimmed.to_ascii_lowercase());
        }
        Ok(out)
    }
}

/// `[flows]`: the data-flow map (`segwatch flows`, the report's data-flow section). Optional.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FlowsSettings {
    /// Field-name patterns of personal data (docs/FLOWS.md); unset: the built-in list
    /// ([`segwatch_core::flows::personal::DEFAULT_PERSONAL_FIELD_PATTERNS`]), `[]`: none.
    pub personal_field_patterns: Option<Vec<String>>,
}

impl FlowsSettings {
    /// The patterns, checked: each must have a letter or a digit.
    pub fn patterns(&self) -> Result<segwatch_core::flows::PersonalPatterns, ConfigError> {
        match &self.personal_field_patterns {
            None => Ok(segwatch_core::flows::PersonalPatterns::default()),
            Some(list) => segwatch_core::flows::PersonalPatterns::new(list)
                .map_err(|e| invalid("flows.personal_field_patterns", e.to_string())),
        }
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
    /// A rule file or a folder of them (searched recursively). Unset: `./rules` if present,
    /// else the built-in starter pack (see [`crate::rules::RuleSource`]).
    pub path: Option<PathBuf>,
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

impl Settings {
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
}
