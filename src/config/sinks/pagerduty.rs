//! The settings of a `pagerduty` sink: the integration key (checked for shape, never shown),
//! the events URL, and what change alerts become.

use secrecy::{ExposeSecret, SecretString};

use super::{ChangeAlertsSetting, ConfigError, SinkSettings, check_webhook_url, invalid, secret};

/// PagerDuty's keys on another type of sink are a mistake worth naming.
pub(super) fn refuse_keys(s: &SinkSettings) -> Result<(), ConfigError> {
    if s.kind == "pagerduty" {
        return Ok(());
    }
    let given = [
        ("routing_key", s.routing_key.is_some()),
        ("routing_key_env", s.routing_key_env.is_some()),
        ("routing_key_file", s.routing_key_file.is_some()),
        (
            "change_alerts",
            s.change_alerts.is_some() && s.kind != "jira",
        ),
    ];
    match given.iter().find(|(_, set)| *set) {
        Some((key, _)) => Err(invalid(
            format!("sinks.{key}"),
            format!(
                "sink `{}`: `{key}` applies only to {}, not a `{}` one",
                s.name,
                if *key == "change_alerts" {
                    "`pagerduty` and `jira` sinks"
                } else {
                    "a `pagerduty` sink"
                },
                s.kind
            ),
        )),
        None => Ok(()),
    }
}

/// The settings of a `pagerduty` sink: its integration key (checked for shape, never shown)
/// and its events URL (PagerDuty's unless `url` says otherwise: https, or http to loopback).
pub(super) fn config(
    s: &SinkSettings,
    url: Option<SecretString>,
) -> Result<segwatch_sinks::pagerduty::PagerDutyConfig, ConfigError> {
    use segwatch_sinks::pagerduty;
    let routing_key = secret(
        "sinks.routing_key",
        &s.name,
        s.routing_key.as_ref(),
        s.routing_key_env.as_deref(),
        s.routing_key_file.as_deref(),
    )?
    .ok_or_else(|| {
        invalid(
            "sinks.routing_key",
            format!(
                "sink `{}`: a pagerduty sink needs `routing_key_env`, `routing_key_file` or `routing_key` (the service's Events API v2 integration key)",
                s.name
            ),
        )
    })?;
    let given = if s.routing_key_env.is_some() {
        "sinks.routing_key_env"
    } else if s.routing_key_file.is_some() {
        "sinks.routing_key_file"
    } else {
        "sinks.routing_key"
    };
    pagerduty::check_routing_key(routing_key.expose_secret())
        .map_err(|why| invalid(given, format!("sink `{}`: {why}", s.name)))?;
    let url = match url {
        Some(url) => {
            check_webhook_url(s, &url)?;
            pagerduty::check_url(url.expose_secret())
                .map_err(|why| invalid("sinks.url", format!("sink `{}`: {why}", s.name)))?;
            url.expose_secret().trim().to_owned()
        }
        None => pagerduty::EVENTS_URL.to_owned(),
    };
    let mode = match &s.change_alerts {
        None => None,
        Some(ChangeAlertsSetting::Mode(m)) => Some(m.clone()),
        Some(ChangeAlertsSetting::Flag(b)) => Some(b.to_string()),
    };
    let change_alerts = match mode.as_deref() {
        None | Some("trigger") => pagerduty::ChangeAlerts::Trigger,
        Some("change-event") => pagerduty::ChangeAlerts::ChangeEvent,
        Some(other) => {
            return Err(invalid(
                "sinks.change_alerts",
                format!(
                    "sink `{}`: `{other}` is not a choice; expected `trigger` or `change-event`",
                    s.name
                ),
            ));
        }
    };
    if change_alerts == pagerduty::ChangeAlerts::ChangeEvent
        && routing_key.expose_secret().starts_with('R')
    {
        // PagerDuty: "change events cannot be sent to ruleset integration keys".
        return Err(invalid(
            "sinks.change_alerts",
            format!(
                "sink `{}`: a global ruleset key (starting with R) cannot take change events; use a service's integration key or `change_alerts = \"trigger\"`",
                s.name
            ),
        ));
    }
    Ok(pagerduty::PagerDutyConfig {
        routing_key,
        url,
        change_alerts,
    })
}
