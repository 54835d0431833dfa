//! An HTTP receiver standing in for a webhook endpoint: it checks the signature, records what
//! it accepted, and can be told to fail, to be slow or to refuse large bodies.

use std::sync::atomic::{AtomicU16, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use secrecy::SecretString;
use segwatch_sinks::webhook::signature;
use segwatch_sinks::{Sink, SinkConfig, SinkFilter, SinkTarget};

/// The HMAC key every test webhook sink signs with.
pub const HMAC_KEY: &str = "whsec-test-7d1f0c9a";

/// An HTTP receiver standing in for a webhook endpoint.
pub struct WebhookReceiver {
    /// The URL to send to.
    pub url: String,
    /// Event ids of the requests it accepted, with their parsed bodies.
    pub accepted: Arc<Mutex<Vec<(String, serde_json::Value)>>>,
    /// Status it answers with (200 = up).
    pub status: Arc<AtomicU16>,
    /// Milliseconds it waits before answering.
    pub delay_ms: Arc<AtomicU64>,
    /// Largest body it takes, in bytes; bigger ones get 413 (0 = any size).
    pub max_body: Arc<AtomicUsize>,
    /// Every request it received: the status it answered and the body's size in bytes.
    pub requests: Arc<Mutex<Vec<(u16, usize)>>>,
}

impl WebhookReceiver {
    /// Starts on a loopback port.
    pub async fn start() -> WebhookReceiver {
        let accepted = Arc::new(Mutex::new(Vec::new()));
        let status = Arc::new(AtomicU16::new(200));
        let delay_ms = Arc::new(AtomicU64::new(0));
        let max_body = Arc::new(AtomicUsize::new(0));
        let requests = Arc::new(Mutex::new(Vec::new()));
        let (a, s, d) = (accepted.clone(), status.clone(), delay_ms.clone());
        let (m, r) = (max_body.clone(), requests.clone());
        let app = axum::Router::new()
            .route(
                "/hook/{token}",
                axum::routing::post(move |headers: HeaderMap, body: Bytes| {
                    let (a, s, d) = (a.clone(), s.clone(), d.clone());
                    let (m, r) = (m.clone(), r.clone());
                    async move {
                        tokio::time::sleep(Duration::from_millis(d.load(Ordering::SeqCst))).await;
                        let max = m.load(Ordering::SeqCst);
                        if max > 0 && body.len() > max {
                            r.lock().unwrap().push((413, body.len()));
                            return StatusCode::PAYLOAD_TOO_LARGE;
                        }
                        let expected = signature(HMAC_KEY.as_bytes(), &body);
                        let given = headers
                            .get("x-segwatch-signature")
                            .and_then(|v| v.to_str().ok())
                            .unwrap_or("");
                        if given != expected {
                            r.lock().unwrap().push((401, body.len()));
                            return StatusCode::UNAUTHORIZED;
                        }
                        let status = StatusCode::from_u16(s.load(Ordering::SeqCst)).unwrap();
                        r.lock().unwrap().push((status.as_u16(), body.len()));
                        if status.is_success() {
                            let event = headers
                                .get("x-segwatch-event")
                                .unwrap()
                                .to_str()
                                .unwrap()
                                .to_string();
                            a.lock()
                                .unwrap()
                                .push((event, serde_json::from_slice(&body).unwrap()));
                        }
                        status
                    }
                }),
            )
            // The receiver's own `max_body` is the only limit (axum's default is 2 MB).
            .layer(axum::extract::DefaultBodyLimit::disable());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!(
            "http://{}/hook/secret-path-4411",
            listener.local_addr().unwrap()
        );
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        WebhookReceiver {
            url,
            accepted,
            status,
            delay_ms,
            max_body,
            requests,
        }
    }

    /// The `X-Segwatch-Event` of each accepted request, in order.
    pub fn events(&self) -> Vec<String> {
        self.accepted
            .lock()
            .unwrap()
            .iter()
            .map(|(e, _)| e.clone())
            .collect()
    }

    /// A webhook sink to this receiver, sending resolutions too.
    pub fn sink(&self, digest_threshold: usize) -> Sink {
        Sink::new(SinkConfig {
            name: "hook".into(),
            filter: SinkFilter {
                send_resolved: true,
                ..SinkFilter::default()
            },
            digest_threshold,
            max_message_bytes: segwatch_sinks::DEFAULT_MAX_MESSAGE_BYTES,
            max_messages_per_run: segwatch_sinks::DEFAULT_MAX_MESSAGES_PER_RUN,
            max_attempts: 5,
            retry_backoff: segwatch_sinks::outbox::RetryBackoff::default(),
            target: SinkTarget::Webhook {
                url: SecretString::from(self.url.clone()),
                secret: Some(SecretString::from(HMAC_KEY)),
            },
            send_updates: None,
            app_base: None,
            templates: None,
        })
        .unwrap()
    }

    /// The alert bodies accepted so far for `rule_id`, with their events (`raised`, `resolved`).
    pub fn alerts_of(&self, rule_id: &str) -> Vec<(String, serde_json::Value)> {
        self.accepted
            .lock()
            .unwrap()
            .iter()
            .filter(|(_, body)| body["alert"]["rule_id"] == rule_id)
            .map(|(_, body)| {
                let event = body["event"].as_str().unwrap_or_default().to_string();
                (event, body["alert"].clone())
            })
            .collect()
    }

    /// A `[[sinks]]` entry for a configuration file sending here.
    pub fn sink_toml(&self) -> String {
        format!(
            "[[sinks]]\nname = \"hook\"\ntype = \"webhook\"\nurl = \"{}\"\nsecret = \"{HMAC_KEY}\"\n",
            self.url
        )
    }
}
