//! Alert sinks: where alerts are delivered (Slack, Microsoft Teams, email, a generic webhook,
//! OCSF, PagerDuty, Jira Cloud), what each one receives, and the rendering of messages.
//!
//! A [`Message`] is one alert event, a digest of several, or a test; [`Sink::send`] delivers it
//! once and says whether a failure is worth retrying. Durability (the outbox, retries, resuming
//! after a restart) lives in [`segwatch_store`] and [`outbox`], not here.

mod answer;
pub mod email;
pub mod jira;
pub mod ocsf;
pub mod pagerduty;
pub mod render;
pub mod slack;
pub mod teams;
pub mod webhook;

use std::time::Duration;

use segwatch_core::alerts::AlertRecord;
use segwatch_core::ids::SnapshotId;

/// What a sink is asked to deliver.
#[derive(Debug, Clone, Copy)]
pub enum Message<'a> {
    /// One alert event: a change alert (`fired`), a new finding (`open`) or a resolution
    /// (`resolved`).
    Alert(&'a AlertRecord),
    /// An open finding whose resource changed and still fails its rule: `alert` is the
    /// finding with the update's summary, explanation and attribution (who changed it).
    Update {
        /// The open finding as of the update.
        alert: &'a AlertRecord,
        /// Which update it is.
        update: Update,
    },
    /// Several alerts of one poll, summarised in one message.
    Digest {
        /// The alerts, most severe first.
        alerts: &'a [AlertRecord],
        /// The snapshot that raised them.
        snapshot_id: SnapshotId,
    },
    /// The last message of a sink's run once its `max_messages_per_run` is reached: counts of
    /// the alerts it does not list, and how to list them.
    Summary(&'a Summary),
    /// `segwatch sinks test`: proves the sink is reachable.
    Test,
}

/// Which update of a finding a [`Message::Update`] carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Update {
    /// The `alert_updates` row id: unique per update, for receivers' deduplication.
    pub id: i64,
    /// When it was recorded.
    pub at: segwatch_core::time::Timestamp,
}

/// What a [`Message::Summary`] says: the alerts of a run that no message listed.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Summary {
    /// How many alerts it stands for (none of them listed).
    pub count: usize,
    /// Per severity, most severe first (only severities present).
    pub severities: Vec<(Severity, usize)>,
    /// Per rule, most alerts first, at most [`SUMMARY_RULES`].
    pub rules: Vec<(String, usize)>,
    /// Rules left out of `rules`.
    pub more_rules: usize,
    /// The command listing them one by one (`segwatch alerts --status open --rule R …`).
    pub command: String,
}

/// How many rules a summary names (it must stay small whatever the storm).
pub const SUMMARY_RULES: usize = 20;

/// Default `max_body_bytes` (webhook) and `max_message_bytes` (email): 1 MiB.
pub const DEFAULT_MAX_MESSAGE_BYTES: usize = 1024 * 1024;
/// Default `max_messages_per_run`.
pub const DEFAULT_MAX_MESSAGES_PER_RUN: usize = 20;

/// How large a message is against the sink's most constraining limit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Measure {
    /// The size, in the unit of `limit`.
    pub size: usize,
    /// The limit.
    pub limit: usize,
    /// What is measured and where the limit comes from (`body bytes (max_body_bytes)`).
    pub what: &'static str,
}

impl Measure {
    /// Whether the message is within the limit.
    pub fn fits(&self) -> bool {
        self.size <= self.limit
    }
}

/// Why a delivery failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum SendError {
    /// Worth trying again later (network error, 5xx, 429); `retry_after` when the receiver said.
    #[error("{message}")]
    Retryable {
        /// What went wrong (never contains a secret).
        message: String,
        /// How long the receiver asked us to wait.
        retry_after: Option<Duration>,
    },
    /// Will fail the same way again (4xx, rejected recipient, bad configuration).
    #[error("{message}")]
    Permanent {
        /// What went wrong (never contains a secret).
        message: String,
    },
    /// The receiver refused the message as too large (HTTP 413): the outbox splits the batch
    /// and sends the halves; a single alert refused so is dead.
    #[error("{message}")]
    TooLarge {
        /// What went wrong (never contains a secret).
        message: String,
    },
}

use secrecy::SecretString;

use segwatch_core::alerts::AlertStatus;
use segwatch_core::rules::Severity;

pub mod outbox;

/// Which alerts a sink wants.
#[derive(Debug, Clone, Default)]
pub struct SinkFilter {
    /// Only this severity or higher.
    pub min_severity: Option<Severity>,
    /// Only these rules (empty: all).
    pub rules: Vec<String>,
    /// Only alerts with one of these tags (empty: all).
    pub tags: Vec<String>,
    /// Whether resolutions are sent.
    pub send_resolved: bool,
    /// Only alerts of these workspaces (empty: all), segwatch's own alerts included.
    pub workspaces: Vec<String>,
}

impl SinkFilter {
    /// Whether an alert event goes to this sink.
    pub fn wants(
        &self,
        rule_id: &str,
        severity: Severity,
        tags: &[String],
        resolved: bool,
    ) -> bool {
        (!resolved || self.send_resolved)
            && self.min_severity.is_none_or(|min| severity >= min)
            && (self.rules.is_empty() || self.rules.iter().any(|r| r == rule_id))
            && (self.tags.is_empty() || self.tags.iter().any(|t| tags.contains(t)))
    }
}

/// Where a sink sends, with its secrets.
#[derive(Debug, Clone)]
pub enum SinkTarget {
    /// A Slack incoming webhook.
    Slack {
        /// The incoming-webhook URL (a secret).
        url: SecretString,
    },
    /// Email over SMTP.
    Email(email::EmailConfig),
    /// A Microsoft Teams Workflows webhook.
    Teams {
        /// The webhook URL (a secret: it carries its signature).
        url: SecretString,
    },
    /// A JSON POST, optionally signed with HMAC-SHA256.
    Webhook {
        /// The endpoint.
        url: SecretString,
        /// Key of the `X-Segwatch-Signature` HMAC, if any.
        secret: Option<SecretString>,
    },
    /// OCSF findings, to a rotated JSON lines file or a collector (Splunk HEC, NDJSON).
    Ocsf(ocsf::OcsfTarget),
    /// PagerDuty's Events API v2 (an incident per finding).
    PagerDuty(pagerduty::PagerDutyConfig),
    /// Jira Cloud: one issue per finding.
    Jira(jira::JiraConfig),
}

/// A configured sink.
#[derive(Debug, Clone)]
pub struct SinkConfig {
    /// Unique name.
    pub name: String,
    /// Which alerts it wants.
    pub filter: SinkFilter,
    /// More alerts than this from one poll go out as digests.
    pub digest_threshold: usize,
    /// Largest message, in bytes: the webhook body (`max_body_bytes`) or the whole email
    /// (`max_message_bytes`); Slack and Teams have fixed limits instead (see [`slack`],
    /// [`teams::MAX_BODY_BYTES`]).
    pub max_message_bytes: usize,
    /// Messages per delivery run; past it the rest of the run is one summary.
    pub max_messages_per_run: usize,
    /// Attempts before a delivery is dead.
    pub max_attempts: u32,
    /// Wait between attempts (`retry_base_secs`, `retry_max_secs`).
    pub retry_backoff: outbox::RetryBackoff,
    /// Where it sends.
    pub target: SinkTarget,
    /// Whether it is sent updates of open findings (`send_updates`); `None`: the default of its
    /// type (see [`Sink::wants_updates`]).
    pub send_updates: Option<bool>,
    /// The workspace in the Segment app (e.g. `https://app.segment.com/acme`), for links.
    pub app_base: Option<String>,
    /// A folder of templates overriding the built-in message templates.
    pub templates: Option<std::path::PathBuf>,
}

/// Most alerts one webhook digest lists: bounds what the outbox holds in memory for one message.
pub const WEBHOOK_DIGEST_ALERTS: usize = 1000;

/// A sink ready to send.
#[derive(Debug, Clone)]
pub struct Sink {
    /// Its configuration.
    pub config: SinkConfig,
    sender: Sender,
}

#[derive(Debug, Clone)]
enum Sender {
    Webhook(webhook::WebhookSink),
    Slack(slack::SlackSink),
    Teams(teams::TeamsSink),
    // Boxed: an SMTP sink is much larger than the HTTP ones.
    Email(Box<email::EmailSink>),
    Ocsf(ocsf::OcsfSink),
    PagerDuty(pagerduty::PagerDutySink),
    Jira(jira::JiraSink),
}

impl Sink {
    /// Builds the sender of a configured sink (reading its template overrides, if any).
    pub fn new(config: SinkConfig) -> Result<Sink, SendError> {
        let permanent = |message: String| SendError::Permanent { message };
        let templates = std::sync::Arc::new(match &config.templates {
            Some(dir) => {
                render::Templates::with_overrides(dir).map_err(|e| permanent(e.to_string()))?
            }
            None => render::Templates::builtin(),
        });
        let sender = match &config.target {
            SinkTarget::Webhook { url, secret } => {
                Sender::Webhook(webhook::WebhookSink::new(url.clone(), secret.clone())?)
            }
            SinkTarget::Slack { url } => Sender::Slack(
                slack::SlackSink::new(url.clone(), config.app_base.clone(), templates)
                    .map_err(|e| permanent(e.to_string()))?,
            ),
            SinkTarget::Teams { url } => Sender::Teams(
                teams::TeamsSink::new(url.clone(), config.app_base.clone(), templates)
                    .map_err(|e| permanent(e.to_string()))?,
            ),
            SinkTarget::Email(email) => Sender::Email(Box::new(
                email::EmailSink::new(email.clone(), config.app_base.clone(), templates)
                    .map_err(|e| permanent(e.to_string()))?,
            )),
            SinkTarget::Ocsf(target) => Sender::Ocsf(ocsf::OcsfSink::new(target)?),
            SinkTarget::PagerDuty(pd) => Sender::PagerDuty(pagerduty::PagerDutySink::new(
                pd.clone(),
                config.app_base.clone(),
            )?),
            SinkTarget::Jira(jira) => Sender::Jira(
                jira::JiraSink::new(jira.clone(), config.app_base.clone(), templates)
                    .map_err(|e| permanent(e.to_string()))?,
            ),
        };
        Ok(Sink { config, sender })
    }

    /// The sink's name.
    pub fn name(&self) -> &str {
        &self.config.name
    }

    /// How large `msg` is against the sink's most constraining limit; an error when it cannot
    /// be rendered at all.
    pub fn measure(&self, msg: &Message<'_>) -> Result<Measure, SendError> {
        match &self.sender {
            Sender::Webhook(_) => Ok(Measure {
                size: webhook::body_len(msg),
                limit: self.config.max_message_bytes,
                what: "body bytes (max_body_bytes)",
            }),
            Sender::Slack(s) => s.measure(msg),
            Sender::Teams(t) => Ok(t.measure(msg)),
            Sender::Email(e) => Ok(Measure {
                size: e.message_len(msg)?,
                limit: self.config.max_message_bytes,
                what: "message bytes (max_message_bytes)",
            }),
            Sender::Ocsf(o) => Ok(Measure {
                size: o.body(msg).map_or(0, |b| b.len()),
                limit: self.config.max_message_bytes,
                what: "body bytes (max_body_bytes)",
            }),
            Sender::PagerDuty(p) => Ok(Measure {
                size: p.body_len(msg)?,
                limit: pagerduty::MAX_BODY_BYTES,
                what: "event bytes (PagerDuty's limit)",
            }),
            Sender::Jira(j) => j.measure(msg),
        }
    }

    /// How many alerts one digest of this sink may list: Slack, Teams and email digests list at most
    /// [`render::DIGEST_LIMIT`]; a webhook digest is bounded by its size (and by
    /// [`WEBHOOK_DIGEST_ALERTS`], to bound memory).
    pub fn max_alerts_per_digest(&self) -> usize {
        match &self.sender {
            Sender::Webhook(_) | Sender::Ocsf(_) => WEBHOOK_DIGEST_ALERTS,
            Sender::Slack(_) | Sender::Teams(_) | Sender::Email(_) => render::DIGEST_LIMIT,
            // Never a digest: each alert event is an event of its own.
            Sender::PagerDuty(_) => 1,
            // Never a digest: the outbox sends it each event on its own.
            Sender::Jira(_) => 1,
        }
    }

    /// Whether the receiver tracks each finding by its uid (an incident, a ticket): the outbox
    /// then sends every alert event on its own, never in a digest or a summary, and one
    /// finding's events in the order they happened.
    pub fn tracks_findings(&self) -> bool {
        match &self.sender {
            Sender::Webhook(_)
            | Sender::Slack(_)
            | Sender::Teams(_)
            | Sender::Email(_)
            | Sender::Ocsf(_) => false,
            Sender::PagerDuty(_) => true,
            Sender::Jira(_) => true,
        }
    }

    /// Whether it is sent the `updated` event of open findings (a finding whose resource changed
    /// and still fails): by default the sinks that track findings or feed a SIEM (OCSF,
    /// PagerDuty, Jira), not the chat, email and webhook sinks, where it would be noise; a
    /// sink's `send_updates` overrides it.
    pub fn wants_updates(&self) -> bool {
        self.config.send_updates.unwrap_or(match &self.sender {
            Sender::Ocsf(_) | Sender::PagerDuty(_) | Sender::Jira(_) => true,
            Sender::Webhook(_) | Sender::Slack(_) | Sender::Teams(_) | Sender::Email(_) => false,
        })
    }

    /// Whether a run that reaches `max_messages_per_run` ends with a summary of the alerts
    /// left. An OCSF sink feeds a SIEM and a sink that tracks findings files each one, so both
    /// need every event: their run stops there instead and the rest stays queued for the next
    /// run.
    pub fn summarises(&self) -> bool {
        !self.tracks_findings() && !matches!(self.sender, Sender::Ocsf(_))
    }

    /// Delivers one message once.
    pub async fn send(&self, message: &Message<'_>) -> Result<(), SendError> {
        match &self.sender {
            Sender::Webhook(w) => w.send(message).await,
            Sender::Slack(s) => s.send(message).await,
            Sender::Teams(t) => t.send(message).await,
            Sender::Email(e) => e.send(message).await,
            Sender::Ocsf(o) => o.send(message).await,
            Sender::PagerDuty(p) => p.send(message).await,
            Sender::Jira(j) => j.send(message).await,
        }
    }
}

/// The names of the sinks an alert event of `workspace` goes to: of the sinks that take that
/// workspace, the ones its rule names (`named`), or when it names none, every one whose filters
/// it passes.
pub fn route(
    sinks: &[Sink],
    workspace: &str,
    named: &[String],
    rule_id: &str,
    severity: Severity,
    tags: &[String],
    status: AlertStatus,
) -> Vec<String> {
    let resolved = status == AlertStatus::Resolved;
    // A silent monitor is the failure segwatch's own alerts exist to report, so rule and tag
    // filters (written for workspace rules) do not hide them; severity still applies.
    let meta = segwatch_core::alerts::is_meta(rule_id);
    sinks
        .iter()
        .filter(|s| {
            let filter = &s.config.filter;
            if !filter.workspaces.is_empty() && !filter.workspaces.iter().any(|w| w == workspace) {
                false
            } else if meta {
                (!resolved || filter.send_resolved)
                    && filter.min_severity.is_none_or(|min| severity >= min)
            } else if named.is_empty() {
                s.config.filter.wants(rule_id, severity, tags, resolved)
            } else {
                named.contains(&s.config.name) && (!resolved || s.config.filter.send_resolved)
            }
        })
        .map(|s| s.config.name.clone())
        .collect()
}

/// Checks that every sink a rule names is configured.
pub fn check_rule_sinks(
    rules: &segwatch_core::rules::RuleSet,
    sinks: &[Sink],
) -> Result<(), String> {
    let mut problems = Vec::new();
    for rule in rules.rules() {
        for name in &rule.sinks {
            if !sinks.iter().any(|s| s.name() == name) {
                problems.push(format!(
                    "{}:{}: rule `{}` sends to sink `{name}`, which is not configured in [[sinks]]",
                    rule.file.display(),
                    rule.line,
                    rule.id
                ));
            }
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("\n"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_by_severity_rule_tag_and_resolution() {
        let f = SinkFilter {
            min_severity: Some(Severity::High),
            rules: vec![],
            tags: vec!["soc2:CC6.1".into()],
            send_resolved: false,
            workspaces: vec![],
        };
        let tags = vec!["soc2:CC6.1".to_string()];
        assert!(f.wants("r", Severity::Critical, &tags, false));
        assert!(
            !f.wants("r", Severity::Medium, &tags, false),
            "below the minimum"
        );
        assert!(!f.wants("r", Severity::High, &[], false), "no matching tag");
        assert!(
            !f.wants("r", Severity::High, &tags, true),
            "resolutions not wanted"
        );
        let only = SinkFilter {
            rules: vec!["a".into()],
            send_resolved: true,
            ..SinkFilter::default()
        };
        assert!(only.wants("a", Severity::Info, &[], true));
        assert!(!only.wants("b", Severity::Critical, &[], false));
    }

    fn sink(target: SinkTarget, send_updates: Option<bool>) -> Sink {
        Sink::new(SinkConfig {
            name: "s".into(),
            filter: SinkFilter::default(),
            digest_threshold: 5,
            max_message_bytes: DEFAULT_MAX_MESSAGE_BYTES,
            max_messages_per_run: DEFAULT_MAX_MESSAGES_PER_RUN,
            max_attempts: 3,
            retry_backoff: outbox::RetryBackoff::default(),
            target,
            send_updates,
            app_base: None,
            templates: None,
        })
        .unwrap()
    }

    #[test]
    fn updates_go_to_sinks_that_track_findings_unless_configured() {
        let webhook = || SinkTarget::Webhook {
            url: SecretString::from("http://127.0.0.1:9/hook"),
            secret: None,
        };
        let ocsf = || {
            SinkTarget::Ocsf(ocsf::OcsfTarget::File(ocsf::file::FileConfig {
                path: "/nonexistent/findings.jsonl".into(),
                max_file_bytes: 1024,
                max_files: 1,
            }))
        };
        let pagerduty = || {
            SinkTarget::PagerDuty(pagerduty::PagerDutyConfig {
                routing_key: SecretString::from("k3y0fa5erv1ce00000000000000000aa"),
                url: pagerduty::EVENTS_URL.to_owned(),
                change_alerts: pagerduty::ChangeAlerts::Trigger,
            })
        };
        assert!(!sink(webhook(), None).wants_updates());
        assert!(sink(webhook(), Some(true)).wants_updates());
        assert!(sink(ocsf(), None).wants_updates());
        assert!(!sink(ocsf(), Some(false)).wants_updates());
        assert!(sink(pagerduty(), None).wants_updates());
    }
}
