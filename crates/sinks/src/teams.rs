//! Microsoft Teams sink: posts Adaptive Cards to a Teams Workflows webhook (a flow started by
//! "When a Teams webhook request is received", which posts the card to a channel or chat).
//!
//! The message is rendered by [`crate::render::teams`]. The webhook URL carries its own
//! signature (`sig=`): it is a credential and never appears in errors, logs or `Debug` output.
//!
//! A Workflows webhook answers 202 Accepted as soon as the flow is queued, before Teams posts
//! the card, so a card Teams refuses as too large fails inside the flow, where segwatch cannot
//! see it: hence a body limit ([`MAX_BODY_BYTES`]) with room to spare under Teams' own.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};

use super::answer;
use super::render::Templates;
use super::slack::{Pace, chain, short};
use super::{Measure, Message, SendError};

/// Largest request body segwatch posts, in bytes (the serialized message, envelope included).
///
/// Teams limits a message to about 28 KB ("When an action posts a message, the message size
/// limit is about 28 KB … the action fails with the error 'Request Entity too large'",
/// <https://learn.microsoft.com/en-us/connectors/teams/>, "Known issues and limitations with
/// actions";
/// also "The message size limit is 28 KB",
/// <https://learn.microsoft.com/en-us/microsoftteams/platform/webhooks-and-connectors/how-to/add-incoming-webhook>).
/// The flow re-encodes the card before posting it, so segwatch keeps about 15% below that:
/// digests are split to fit, and a single alert's card is bounded well under it by the renderer.
pub const MAX_BODY_BYTES: usize = 24_000;

/// Teams throttles a webhook past four requests a second ("Create Incoming Webhooks", the
/// second page above), so a sink (and its clones) posts at most one message per quarter second.
pub const DEFAULT_MIN_INTERVAL: Duration = Duration::from_millis(250);

/// How long one post may take, connection included.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(15);

/// Why a Teams sink cannot be built. Never contains the webhook URL.
#[derive(Debug, thiserror::Error)]
pub enum TeamsConfigError {
    /// The webhook URL does not parse or is not HTTPS.
    #[error("invalid Teams webhook URL: {0}")]
    InvalidUrl(&'static str),
    /// The HTTP client could not be built.
    #[error("cannot build the HTTP client: {0}")]
    Client(String),
}

/// Checks a Teams webhook URL: it must parse and be `https://`, or `http://` to a loopback
/// host (a local stand-in). The reason never quotes the URL.
pub fn check_url(url: &str) -> Result<reqwest::Url, TeamsConfigError> {
    let url = reqwest::Url::parse(url.trim())
        .map_err(|_| TeamsConfigError::InvalidUrl("it does not parse as a URL"))?;
    let loopback = url.host_str().is_some_and(|host| {
        host.eq_ignore_ascii_case("localhost")
            || host
                .trim_start_matches('[')
                .trim_end_matches(']')
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_loopback())
    });
    match url.scheme() {
        "https" => Ok(url),
        "http" if loopback => Ok(url),
        _ => Err(TeamsConfigError::InvalidUrl(
            "it must be an https:// URL (plain http:// only to this host)",
        )),
    }
}

/// Delivers messages to a Teams Workflows webhook. Clones share the pacing gate.
#[derive(Clone)]
pub struct TeamsSink {
    webhook_url: SecretString,
    client: reqwest::Client,
    app_base: Option<String>,
    templates: Arc<Templates>,
    pace: Pace,
}

impl fmt::Debug for TeamsSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TeamsSink")
            .field("webhook_url", &"[redacted]")
            .field("app_base", &self.app_base)
            .field("min_interval", &self.pace.interval)
            .finish_non_exhaustive()
    }
}

impl TeamsSink {
    /// A sink posting to `webhook_url` (see [`check_url`]), linking resources under
    /// `app_base` (`https://app.segment.com/{workspace-slug}`) when given.
    pub fn new(
        webhook_url: SecretString,
        app_base: Option<String>,
        templates: Arc<Templates>,
    ) -> Result<TeamsSink, TeamsConfigError> {
        let url = check_url(webhook_url.expose_secret())?;
        let client = reqwest::Client::builder()
            .timeout(REQUEST_TIMEOUT)
            .user_agent(concat!("segwatch/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| TeamsConfigError::Client(e.without_url().to_string()))?;
        Ok(TeamsSink {
            webhook_url: SecretString::from(url.to_string()),
            client,
            app_base: app_base.filter(|b| !b.trim().is_empty()),
            templates,
            pace: Pace::new(DEFAULT_MIN_INTERVAL),
        })
    }

    /// The same sink with another minimum interval between posts.
    pub fn with_min_interval(mut self, interval: Duration) -> TeamsSink {
        self.pace = Pace::new(interval);
        self
    }

    /// The body `msg` is posted as.
    fn body(&self, msg: &Message<'_>) -> Vec<u8> {
        let payload = self.templates.teams(msg, self.app_base.as_deref());
        serde_json::to_vec(&payload).expect("a JSON value serializes")
    }

    /// The serialized body's size against [`MAX_BODY_BYTES`].
    pub fn measure(&self, msg: &Message<'_>) -> Measure {
        Measure {
            size: self.body(msg).len(),
            limit: MAX_BODY_BYTES,
            what: "Teams body bytes",
        }
    }

    /// Posts `msg` once. 2xx (a Workflows webhook answers 202) is success; 413 asks the outbox
    /// to split; 429 (with its `Retry-After`), 5xx and network errors are retryable; any other
    /// status is permanent and quotes the reply.
    pub async fn send(&self, msg: &Message<'_>) -> Result<(), SendError> {
        let body = self.body(msg);
        self.pace.wait().await;
        let response = self
            .client
            .post(self.webhook_url.expose_secret())
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body)
            .send()
            .await
            .map_err(|e| SendError::Retryable {
                message: self.scrub(&format!("cannot reach Teams: {}", chain(e.without_url()))),
                retry_after: None,
            })?;

        let status = response.status();
        if status.is_success() {
            tracing::debug!(status = status.as_u16(), "Teams accepted the message");
            return Ok(());
        }
        let retry_after = answer::retry_after(response.headers());
        let reply = crate::answer::read_start(response).await;
        let reply = self.scrub(&short(&reply));
        let message = if reply.is_empty() {
            format!("Teams answered HTTP {}", status.as_u16())
        } else {
            format!("Teams answered HTTP {}: {reply}", status.as_u16())
        };
        tracing::warn!(status = status.as_u16(), reply = %reply, "Teams refused the message");
        Err(answer::refused(status, retry_after, message))
    }

    /// `text` without the webhook URL, its path or its query (the `sig=` signature), should
    /// anything have echoed them.
    fn scrub(&self, text: &str) -> String {
        let url = self.webhook_url.expose_secret();
        let mut out = text.replace(url, "[webhook]");
        if let Ok(parsed) = reqwest::Url::parse(url) {
            if let Some(query) = parsed.query().filter(|q| !q.is_empty()) {
                out = out.replace(query, "[redacted]");
                // A value quoted alone: the signature always, and any long value.
                for pair in query.split('&') {
                    let (key, value) = pair.split_once('=').unwrap_or(("", pair));
                    if key == "sig" || value.len() >= 8 {
                        out = out.replace(value, "[redacted]");
                    }
                }
            }
            if parsed.path().len() > 1 {
                out = out.replace(parsed.path(), "/[redacted]");
            }
        }
        out
    }
}

#[cfg(test)]
#[path = "tests_teams.rs"]
mod tests;
