//! Workspaces: the short form (`[segment]`) or `[[workspaces]]` entries, what each inherits,
//! and the checked per-workspace targets.

use std::path::PathBuf;
use std::time::Duration;

use secrecy::SecretString;
use serde::Deserialize;

use super::secrets::read_secret;
use super::sections::SegmentSettings;
use super::{ConfigError, EU_API_URL, Settings, US_API_URL, check_max_response_bytes, invalid};

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

impl Settings {
    /// Checks every value of the single workspace (`[segment]`, or the one `[[workspaces]]`
    /// entry) and builds its client configuration, reading token files.
    pub fn validate(&self) -> Result<WorkspaceTarget, ConfigError> {
        self.access.internal_domains()?;
        self.flows.patterns()?;
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
