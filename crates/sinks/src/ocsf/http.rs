//! The OCSF HTTP sink: batches of events POSTed to a Splunk HTTP Event Collector or to any
//! collector that takes newline-delimited JSON.
//!
//! - `splunk-hec`: the body is the events' HEC envelopes concatenated (one per line),
//!   `{"event": {…OCSF…}, "sourcetype": "ocsf", "source": "segwatch", "time": <epoch seconds>}`,
//!   with `Authorization: Splunk <token>`, as Splunk documents HEC authentication and batching
//!   for `/services/collector/event` ("Format events for HTTP Event Collector",
//!   <https://help.splunk.com/splunk-enterprise/get-data-in/collect-http-event-data/format-events-for-http-event-collector>:
//!   several event objects one after another in one request, no commas or enclosing array).
//! - `ndjson`: one OCSF event per line (`Content-Type: application/x-ndjson`), with
//!   `Authorization: Bearer <token>` when a token is configured.
//!
//! 2xx is success; 429, 5xx and network errors are retried (after `Retry-After` seconds when
//! the receiver gives one, e.g. HEC's 503 "server is busy"); 413 is `TooLarge` (the outbox
//! splits the batch); any other status is permanent (HEC's 400 "invalid data format", 401/403
//! a bad token).

use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;

use crate::SendError;

/// How the batch is framed and authenticated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HttpFormat {
    /// Splunk HTTP Event Collector envelopes, `Authorization: Splunk <token>`.
    SplunkHec,
    /// Newline-delimited OCSF events, `Authorization: Bearer <token>`.
    Ndjson,
}

impl HttpFormat {
    /// The configuration's name of the format.
    pub fn as_str(self) -> &'static str {
        match self {
            HttpFormat::SplunkHec => "splunk-hec",
            HttpFormat::Ndjson => "ndjson",
        }
    }
}

/// Where an OCSF HTTP sink posts.
#[derive(Clone)]
pub struct HttpConfig {
    /// The collector's URL (a secret: it may carry a token).
    pub url: SecretString,
    /// The token sent in `Authorization` (required for `splunk-hec`).
    pub token: Option<SecretString>,
    /// Framing and authentication.
    pub format: HttpFormat,
}

impl std::fmt::Debug for HttpConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpConfig")
            .field("url", &"<secret>")
            .field("token", &self.token.as_ref().map(|_| "<secret>"))
            .field("format", &self.format)
            .finish()
    }
}

/// A collector endpoint.
#[derive(Clone)]
pub struct HttpSink {
    config: HttpConfig,
    client: reqwest::Client,
}

impl std::fmt::Debug for HttpSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpSink")
            .field("config", &self.config)
            .finish()
    }
}

impl HttpSink {
    /// A sink posting to `config.url`.
    pub fn new(config: HttpConfig) -> Result<HttpSink, SendError> {
        reqwest::Url::parse(config.url.expose_secret()).map_err(|e| SendError::Permanent {
            message: format!("the OCSF collector URL is not a URL: {e}"),
        })?;
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("segwatch/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| SendError::Permanent {
                message: format!("cannot build an HTTP client: {e}"),
            })?;
        Ok(HttpSink { config, client })
    }

    /// Its framing.
    pub fn format(&self) -> HttpFormat {
        self.config.format
    }

    /// Posts one batch (built by [`body`]).
    pub async fn post(&self, body: Vec<u8>) -> Result<(), SendError> {
        let (content_type, auth) = match self.config.format {
            HttpFormat::SplunkHec => ("application/json", "Splunk"),
            HttpFormat::Ndjson => ("application/x-ndjson", "Bearer"),
        };
        let mut request = self
            .client
            .post(self.config.url.expose_secret())
            .header(reqwest::header::CONTENT_TYPE, content_type);
        if let Some(token) = &self.config.token {
            let mut value = reqwest::header::HeaderValue::from_str(&format!(
                "{auth} {}",
                token.expose_secret()
            ))
            .map_err(|_| SendError::Permanent {
                message: "the token cannot be sent in an HTTP header".to_owned(),
            })?;
            value.set_sensitive(true);
            request = request.header(reqwest::header::AUTHORIZATION, value);
        }
        crate::answer::post(request, body, "OCSF collector").await
    }
}

/// The body of a batch of OCSF events in `format`.
pub fn body(format: HttpFormat, events: &[Value]) -> Vec<u8> {
    let mut out = Vec::new();
    for event in events {
        match format {
            HttpFormat::Ndjson => {
                serde_json::to_writer(&mut out, event).expect("events serialise");
            }
            HttpFormat::SplunkHec => {
                let millis = event["time"].as_i64().unwrap_or_default();
                let envelope = serde_json::json!({
                    "event": event,
                    "source": "segwatch",
                    "sourcetype": "ocsf",
                    "time": millis as f64 / 1000.0,
                });
                serde_json::to_writer(&mut out, &envelope).expect("events serialise");
            }
        }
        out.push(b'\n');
    }
    out
}
