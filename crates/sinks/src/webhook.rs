//! The generic webhook sink: the alert as JSON, POSTed, optionally signed.
//!
//! Headers: `X-Segwatch-Event` (a stable id of the event, so receivers can drop the duplicates
//! that at-least-once delivery allows) and, with a secret, `X-Segwatch-Signature:
//! sha256=<hex HMAC-SHA256 of the exact body>`.

use std::time::Duration;

use hmac::{Hmac, Mac};
use secrecy::{ExposeSecret, SecretString};
use sha2::Sha256;

use serde::Serialize;
use serde_json::Value;

use super::{Message, SendError};
use segwatch_core::alerts::AlertRecord;
use segwatch_core::ids::SnapshotId;

/// Header carrying the HMAC signature.
pub const SIGNATURE_HEADER: &str = "X-Segwatch-Signature";
/// Header carrying the event id.
pub const EVENT_HEADER: &str = "X-Segwatch-Event";

/// A webhook endpoint.
#[derive(Clone)]
pub struct WebhookSink {
    url: SecretString,
    secret: Option<SecretString>,
    client: reqwest::Client,
}

impl std::fmt::Debug for WebhookSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookSink")
            .field("url", &"<secret>")
            .field("signed", &self.secret.is_some())
            .finish()
    }
}

impl WebhookSink {
    /// A sink posting to `url`, signing with `secret` when given.
    pub fn new(url: SecretString, secret: Option<SecretString>) -> Result<WebhookSink, SendError> {
        reqwest::Url::parse(url.expose_secret()).map_err(|e| SendError::Permanent {
            message: format!("the webhook URL is not a URL: {e}"),
        })?;
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(15))
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("segwatch/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| SendError::Permanent {
                message: format!("cannot build an HTTP client: {e}"),
            })?;
        Ok(WebhookSink {
            url,
            secret,
            client,
        })
    }

    /// Posts the message; 2xx is success, 429/5xx/network errors are worth retrying.
    pub async fn send(&self, message: &Message<'_>) -> Result<(), SendError> {
        let (event, body) = payload(message);
        let body = serde_json::to_vec(&body).expect("payloads serialise");
        let mut request = self
            .client
            .post(self.url.expose_secret())
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header(EVENT_HEADER, event);
        if let Some(secret) = &self.secret {
            request = request.header(
                SIGNATURE_HEADER,
                signature(secret.expose_secret().as_bytes(), &body),
            );
        }
        crate::answer::post(request, body, "webhook").await
    }
}

/// `sha256=<hex>` HMAC-SHA256 of `body` under `key`.
pub fn signature(key: &[u8], body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes keys of any length");
    mac.update(body);
    let bytes = mac.finalize().into_bytes();
    let mut hex = String::with_capacity(7 + 64);
    hex.push_str("sha256=");
    for b in bytes {
        hex.push_str(&format!("{b:02x}"));
    }
    hex
}

/// The length in bytes of the body [`WebhookSink::send`] posts for `message`, computed
/// without building it.
pub fn body_len(message: &Message<'_>) -> usize {
    let mut counter = Counter(0);
    serde_json::to_writer(&mut counter, &payload(message).1).expect("payloads serialise");
    counter.0
}

/// An `io::Write` that only counts.
struct Counter(usize);

impl std::io::Write for Counter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0 += buf.len();
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A webhook body. Fields are in alphabetical order, and alerts are JSON values (whose keys
/// serialise sorted), so that bodies stay byte for byte what they were when built as maps.
#[derive(Serialize)]
#[serde(untagged)]
enum Body<'a> {
    Alert {
        alert: Value,
        event: &'static str,
        r#type: &'static str,
    },
    Digest {
        alerts: Vec<Value>,
        count: usize,
        snapshot_id: SnapshotId,
        r#type: &'static str,
    },
    Summary {
        command: &'a str,
        count: usize,
        more_rules: usize,
        rules: Vec<RuleCount<'a>>,
        severities: Vec<SeverityCount>,
        text: String,
        r#type: &'static str,
    },
    Test {
        message: &'static str,
        r#type: &'static str,
    },
}

#[derive(Serialize)]
struct RuleCount<'a> {
    count: usize,
    rule_id: &'a str,
}

#[derive(Serialize)]
struct SeverityCount {
    count: usize,
    severity: &'static str,
}

/// The event id and JSON body of a message.
fn payload<'a>(message: &Message<'a>) -> (String, Body<'a>) {
    match *message {
        Message::Alert(alert) => {
            let event = if alert.resolved_at.is_some() {
                "resolved"
            } else {
                "raised"
            };
            (
                format!("alert-{}-{event}", alert.id),
                Body::Alert {
                    alert: as_value(alert),
                    event,
                    r#type: "alert",
                },
            )
        }
        Message::Update { alert, update } => (
            format!("alert-{}-updated-{}", alert.id, update.id),
            Body::Alert {
                alert: as_value(alert),
                event: "updated",
                r#type: "alert",
            },
        ),
        Message::Digest {
            alerts,
            snapshot_id,
        } => (
            format!(
                "digest-{snapshot_id}-{}",
                alerts.first().map_or(0, |a| a.id.get())
            ),
            Body::Digest {
                alerts: alerts.iter().map(as_value).collect(),
                count: alerts.len(),
                snapshot_id,
                r#type: "digest",
            },
        ),
        Message::Summary(summary) => (
            // Stable for one set of summarised alerts, so that a repeat can be dropped.
            format!("summary-{}-{}", summary.count, fnv(&summary.command)),
            Body::Summary {
                command: &summary.command,
                count: summary.count,
                more_rules: summary.more_rules,
                rules: summary
                    .rules
                    .iter()
                    .map(|(rule_id, count)| RuleCount {
                        count: *count,
                        rule_id,
                    })
                    .collect(),
                severities: summary
                    .severities
                    .iter()
                    .map(|(s, count)| SeverityCount {
                        count: *count,
                        severity: s.as_str(),
                    })
                    .collect(),
                text: super::render::summary_text(summary),
                r#type: "summary",
            },
        ),
        Message::Test => (
            "test".to_string(),
            Body::Test {
                message: "segwatch test message",
                r#type: "test",
            },
        ),
    }
}

fn as_value(alert: &AlertRecord) -> Value {
    serde_json::to_value(alert).expect("alerts serialise")
}

/// FNV-1a of `text`: a short, stable tag (not a security measure).
fn fnv(text: &str) -> String {
    let hash = text.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    format!("{hash:016x}")
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::render::fixtures::{change_alert, finding};

    #[test]
    fn bodies_of_a_change_alert_a_finding_and_a_digest() {
        let change = change_alert();
        let found = finding();
        let (event, body) = payload(&Message::Alert(&change));
        assert_eq!(event, format!("alert-{}-raised", change.id));
        insta::assert_json_snapshot!("webhook_change", body);
        insta::assert_json_snapshot!("webhook_finding", payload(&Message::Alert(&found)).1);
        let both = [change, found];
        insta::assert_json_snapshot!(
            "webhook_digest",
            payload(&Message::Digest {
                alerts: &both,
                snapshot_id: SnapshotId(12)
            })
            .1
        );
    }

    #[test]
    fn body_of_an_update() {
        let found = crate::render::fixtures::updated_finding();
        let (event, body) = payload(&Message::Update {
            alert: &found,
            update: crate::render::fixtures::update(),
        });
        assert_eq!(event, format!("alert-{}-updated-3", found.id));
        insta::assert_json_snapshot!("webhook_update", body);
    }

    #[test]
    fn signature_is_the_hmac_of_the_body() {
        // RFC 4231 test case 2.
        let sig = signature(b"Jefe", b"what do ya want for nothing?");
        assert_eq!(
            sig,
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }
}
