//! Slack sink: posts Block Kit messages to an incoming webhook.
//!
//! Slack accepts about one message per second per webhook, so a sink (and its clones) waits
//! until a second has passed since its previous post. The webhook URL is a credential: it never
//! appears in errors, logs or `Debug` output.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use tokio::sync::Mutex;
use tokio::time::Instant;

use super::render::Templates;
use super::{Message, SendError};

/// Slack's documented rate for incoming webhooks: one message per second.
pub const DEFAULT_MIN_INTERVAL: Duration = Duration::from_secs(1);

/// Slack's limits on one message, which the outbox splits digests to fit:
/// - at most 50 blocks per message ("You can include up to 50 blocks in each message",
///   <https://docs.slack.dev/reference/block-kit/blocks>);
/// - `text` is truncated past 40,000 characters (chat.postMessage, `text` argument,
///   <https://api.slack.com/methods/chat.postMessage>);
/// - 3,000 characters per section block text
///   (<https://api.slack.com/reference/block-kit/blocks#section>), which the built-in renderer
///   keeps to (`render.rs`);
/// - and, undocumented, `msg_blocks_too_long` past about 13,000 characters of block text in one
///   message (slackapi/bolt-js#2509), so block text is kept under 12,000.
pub const MAX_BLOCKS: usize = 50;
/// See [`MAX_BLOCKS`].
pub const MAX_TEXT_CHARS: usize = 40_000;
/// See [`MAX_BLOCKS`].
pub const MAX_BLOCK_TEXT_CHARS: usize = 12_000;

/// How long one post may take, connection included.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(15);

/// How many characters of Slack's reply an error quotes.
const REPLY_CHARS: usize = 200;

/// Why a Slack sink cannot be built. Never contains the webhook URL.
#[derive(Debug, thiserror::Error)]
pub enum SlackConfigError {
    /// The webhook URL does not parse or is not HTTPS.
    #[error("invalid Slack webhook URL: {0}")]
    InvalidUrl(&'static str),
    /// The HTTP client could not be built.
    #[error("cannot build the HTTP client: {0}")]
    Client(String),
}

/// Delivers messages to a Slack incoming webhook. Clones share the pacing gate.
#[derive(Clone)]
pub struct SlackSink {
    webhook_url: SecretString,
    client: reqwest::Client,
    app_base: Option<String>,
    templates: Arc<Templates>,
    pace: Pace,
}

impl fmt::Debug for SlackSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SlackSink")
            .field("webhook_url", &"[redacted]")
            .field("app_base", &self.app_base)
            .field("min_interval", &self.pace.interval)
            .finish_non_exhaustive()
    }
}

impl SlackSink {
    /// A sink posting to `webhook_url` (HTTPS; plain HTTP only to `localhost`/`127.0.0.1`, for
    /// tests), linking resources under `app_base` (`https://app.segment.com/{workspace-slug}`)
    /// when given.
    pub fn new(
        webhook_url: SecretString,
        app_base: Option<String>,
        templates: Arc<Templates>,
    ) -> Result<SlackSink, SlackConfigError> {
        let url = reqwest::Url::parse(webhook_url.expose_secret().trim())
            .map_err(|_| SlackConfigError::InvalidUrl("it does not parse as a URL"))?;
        let local = matches!(url.host_str(), Some("localhost" | "127.0.0.1" | "[::1]"));
        match url.scheme() {
            "https" => {}
            "http" if local => {}
            _ => return Err(SlackConfigError::InvalidUrl("it must be an https:// URL")),
        }
        let client = reqwest::Client::builder()
            .timeout(REQUEST_TIMEOUT)
            .user_agent(concat!("segwatch/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| SlackConfigError::Client(e.without_url().to_string()))?;
        Ok(SlackSink {
            webhook_url: SecretString::from(url.to_string()),
            client,
            app_base: app_base.filter(|b| !b.trim().is_empty()),
            templates,
            pace: Pace::new(DEFAULT_MIN_INTERVAL),
        })
    }

    /// The same sink with another minimum interval between posts (default one second).
    pub fn with_min_interval(mut self, interval: Duration) -> SlackSink {
        self.pace = Pace::new(interval);
        self
    }

    /// The most constraining of Slack's limits for `msg` (see [`MAX_BLOCKS`]).
    pub fn measure(&self, msg: &Message<'_>) -> Result<super::Measure, SendError> {
        let payload = self
            .templates
            .slack(msg, self.app_base.as_deref())
            .map_err(|e| SendError::Permanent {
                message: format!("cannot render the Slack message: {e}"),
            })?;
        Ok(slack_measure(&payload))
    }

    /// Posts `msg` once. 2xx is success; 429 (with its `Retry-After`), 5xx and network errors
    /// are retryable; any other status is permanent and quotes Slack's reply
    /// (`invalid_payload`, `no_service`, …).
    pub async fn send(&self, msg: &Message<'_>) -> Result<(), SendError> {
        let payload = self
            .templates
            .slack(msg, self.app_base.as_deref())
            .map_err(|e| SendError::Permanent {
                message: format!("cannot render the Slack message: {e}"),
            })?;

        self.pace.wait().await;
        let response = self
            .client
            .post(self.webhook_url.expose_secret())
            .json(&payload)
            .send()
            .await
            .map_err(|e| SendError::Retryable {
                message: self.scrub(&format!("cannot reach Slack: {}", chain(e.without_url()))),
                retry_after: None,
            })?;

        let status = response.status();
        if status.is_success() {
            tracing::debug!(status = status.as_u16(), "Slack accepted the message");
            return Ok(());
        }
        let retry_after = crate::answer::retry_after(response.headers());
        let reply = crate::answer::read_start(response).await;
        let reply = self.scrub(&short(&reply));
        let message = if reply.is_empty() {
            format!("Slack answered HTTP {}", status.as_u16())
        } else {
            format!("Slack answered HTTP {}: {reply}", status.as_u16())
        };
        tracing::warn!(status = status.as_u16(), reply = %reply, "Slack refused the message");
        Err(crate::answer::refused(status, retry_after, message))
    }

    /// `text` without the webhook URL or its secret path, should anything have echoed them.
    fn scrub(&self, text: &str) -> String {
        let url = self.webhook_url.expose_secret();
        let mut out = text.replace(url, "[webhook]");
        if let Ok(parsed) = reqwest::Url::parse(url)
            && parsed.path().len() > 1
        {
            out = out.replace(parsed.path(), "/[redacted]");
        }
        out
    }
}

/// Blocks, `text` characters and block text characters of a payload against Slack's limits:
/// the one nearest to (or furthest past) its limit.
pub fn slack_measure(payload: &serde_json::Value) -> super::Measure {
    let blocks = payload["blocks"].as_array().map_or(0, Vec::len);
    let text = payload["text"].as_str().map_or(0, |t| t.chars().count());
    let block_text = text_chars(&payload["blocks"]);
    [
        super::Measure {
            size: blocks,
            limit: MAX_BLOCKS,
            what: "Slack blocks",
        },
        super::Measure {
            size: text,
            limit: MAX_TEXT_CHARS,
            what: "Slack text characters",
        },
        super::Measure {
            size: block_text,
            limit: MAX_BLOCK_TEXT_CHARS,
            what: "Slack block text characters",
        },
    ]
    .into_iter()
    .max_by(|a, b| (a.size * b.limit).cmp(&(b.size * a.limit)))
    .expect("three measures")
}

/// Characters of every `text` string under `v`.
fn text_chars(v: &serde_json::Value) -> usize {
    match v {
        serde_json::Value::Array(items) => items.iter().map(text_chars).sum(),
        serde_json::Value::Object(map) => map
            .iter()
            .map(|(k, v)| match v {
                serde_json::Value::String(s) if k == "text" => s.chars().count(),
                other => text_chars(other),
            })
            .sum(),
        _ => 0,
    }
}

/// An error and its causes on one line.
pub(crate) fn chain(e: reqwest::Error) -> String {
    let mut out = e.to_string();
    let mut source = std::error::Error::source(&e);
    while let Some(s) = source {
        let s_text = s.to_string();
        if !out.contains(&s_text) {
            out.push_str(": ");
            out.push_str(&s_text);
        }
        source = s.source();
    }
    out
}

/// A receiver's reply (Slack's, Teams'), on one line and short.
pub(crate) fn short(reply: &str) -> String {
    let line = reply.split_whitespace().collect::<Vec<_>>().join(" ");
    if line.chars().count() <= REPLY_CHARS {
        line
    } else {
        let mut cut: String = line.chars().take(REPLY_CHARS - 1).collect();
        cut.push('…');
        cut
    }
}

/// A gate letting one post through per interval, shared by clones.
#[derive(Clone)]
pub(crate) struct Pace {
    pub(crate) interval: Duration,
    last: Arc<Mutex<Option<Instant>>>,
}

impl Pace {
    pub(crate) fn new(interval: Duration) -> Pace {
        Pace {
            interval,
            last: Arc::new(Mutex::new(None)),
        }
    }

    /// Waits until `interval` has passed since the previous caller went through. The lock is
    /// held while waiting, so concurrent senders go through one at a time, in order.
    pub(crate) async fn wait(&self) {
        let mut last = self.last.lock().await;
        if let Some(previous) = *last {
            tokio::time::sleep_until(previous + self.interval).await;
        }
        *last = Some(Instant::now());
    }
}

#[cfg(test)]
#[path = "tests_slack.rs"]
mod tests;
