//! The Segment Public API client: the only place segwatch speaks HTTP to Segment.
//!
//! [`SegmentClient`] sends authenticated `GET`s (and the `POST` of a regulation), unwraps the `{"data": …}` envelope, follows
//! cursor pagination ([`Pages`]) and copes with the API's failure modes:
//!
//! - HTTP 429 waits for `msBeforeNext`, else `X-RateLimit-Reset`, else `Retry-After`, else
//!   exponential backoff (each wait capped at `max_rate_limit_wait`), then retries;
//! - `X-RateLimit-Remaining: 0` pauses every task sharing the client until the reset (pacing);
//! - 5xx, timeouts and connection failures are retried with jittered exponential backoff;
//! - 401/403 and other 4xx fail at once with the server's error message;
//! - at most `concurrency` HTTP exchanges are in flight at once.
//!
//! The token is only ever held as a [`SecretString`] and a sensitive header value; it never
//! appears in `Debug` output, logs or errors.

mod body;
mod error;
mod pages;
pub(crate) use pages::kind_of;
mod regulations;
mod retry;
mod surrogates;
#[cfg(test)]
mod tests;

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use backon::{ExponentialBuilder, Retryable};
use reqwest::header::{ACCEPT, AUTHORIZATION, HeaderMap, HeaderValue};
use reqwest::{Method, StatusCode, Url};
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Map, Value};
use tokio::sync::Semaphore;
use tokio::time::Instant;

pub use body::ByteSize;
pub use body::DEFAULT_MAX_RESPONSE_BYTES;
pub(crate) use body::{BodyError, read_limited};
pub use error::{ApiErrorDetail, SegmentError, ServerMessage};
pub use pages::Pages;
pub use regulations::{
    DestinationStatus, FINAL_STATUSES, Regulation, RegulationType, SUBJECT_TYPE_USER_ID,
    StreamStatus,
};

use retry::{AttemptError, Gate, RateLimitHeaders};

/// The media type of the stable Public API version.
const ACCEPT_V1: &str = "application/vnd.segment.v1+json";
/// The largest page the API accepts on every list endpoint (API spec 32.0.5).
const MAX_PAGE_SIZE: u32 = 200;
/// How much of a non-JSON error body is kept for messages.
const EXCERPT_CHARS: usize = 200;

/// Settings for a [`SegmentClient`].
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// API root, e.g. `https://api.segmentapis.com` or `https://eu1.api.segmentapis.com`.
    /// Plain `http` is only accepted for loopback hosts (test servers, the simulator).
    pub base_url: String,
    /// Workspace token (needs Workspace Owner access).
    pub token: SecretString,
    /// `pagination[count]` for list requests, 1..=200.
    pub page_size: u32,
    /// Limit for one whole HTTP exchange (connect, send, read body): a body that trickles in
    /// cannot stretch it.
    pub request_timeout: Duration,
    /// Most bytes one response body may have; a larger one fails the request with
    /// [`SegmentError::ResponseTooLarge`], unretried.
    pub max_response_bytes: u64,
    /// Most HTTP exchanges in flight at once across all clones of the client.
    pub concurrency: usize,
    /// Most attempts per request, the first included (so 1 means no retries).
    pub max_attempts: u32,
    /// Most pages one listing may have before it fails with [`SegmentError::TooManyPages`].
    pub max_pages: u32,
    /// Cap on any single rate-limit wait (429 or pacing), whatever the server asks for.
    pub max_rate_limit_wait: Duration,
    /// First backoff delay for retries.
    pub backoff_min: Duration,
    /// Largest backoff delay for retries.
    pub backoff_max: Duration,
}

impl ClientConfig {
    /// A configuration with production defaults: pages of 200, 30 s timeout, bodies of at most
    /// 64 MiB, 8 concurrent requests, 6 attempts, at most 10 000 pages per listing, rate-limit
    /// waits capped at 120 s, backoff from 500 ms to 30 s.
    pub fn new(base_url: impl Into<String>, token: SecretString) -> Self {
        ClientConfig {
            base_url: base_url.into(),
            token,
            page_size: MAX_PAGE_SIZE,
            request_timeout: Duration::from_secs(30),
            max_response_bytes: DEFAULT_MAX_RESPONSE_BYTES,
            concurrency: 8,
            max_attempts: 6,
            max_pages: 10_000,
            max_rate_limit_wait: Duration::from_secs(120),
            backoff_min: Duration::from_millis(500),
            backoff_max: Duration::from_secs(30),
        }
    }
}

/// Cumulative request counters of a [`SegmentClient`] (shared by all its clones).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ClientStats {
    /// HTTP exchanges attempted (retries included).
    pub requests: u64,
    /// Retries scheduled after a failed attempt (429, 5xx, timeout, connection error…).
    pub retries: u64,
    /// Responses with HTTP 429.
    pub rate_limited: u64,
}

/// A Segment Public API client. Cheap to clone; clones share the connection pool, the
/// concurrency limit, the rate-limit pacing and the statistics.
#[derive(Clone)]
pub struct SegmentClient {
    inner: Arc<Inner>,
}

struct Inner {
    http: reqwest::Client,
    /// Base URL without a trailing slash; paths are appended to it.
    base_url: String,
    /// Kept only to scrub it from server-provided text before that goes into an error.
    token: SecretString,
    page_size: u32,
    request_timeout: Duration,
    max_response_bytes: u64,
    max_attempts: u32,
    max_pages: u32,
    max_rate_limit_wait: Duration,
    backoff_min: Duration,
    backoff_max: Duration,
    semaphore: Semaphore,
    concurrency: usize,
    gate: Gate,
    requests: AtomicU64,
    retries: AtomicU64,
    rate_limited: AtomicU64,
}

impl fmt::Debug for SegmentClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let i = &self.inner;
        f.debug_struct("SegmentClient")
            .field("base_url", &i.base_url)
            .field("token", &"[REDACTED]")
            .field("page_size", &i.page_size)
            .field("concurrency", &i.concurrency)
            .field("max_attempts", &i.max_attempts)
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

impl SegmentClient {
    /// Builds a client, validating the configuration.
    pub fn new(config: ClientConfig) -> Result<Self, SegmentError> {
        let invalid = |msg: String| SegmentError::InvalidConfig(msg);
        let base_url = check_base_url(&config.base_url).map_err(SegmentError::InvalidConfig)?;
        if !(1..=MAX_PAGE_SIZE).contains(&config.page_size) {
            return Err(invalid(format!(
                "page_size must be between 1 and {MAX_PAGE_SIZE}, got {}",
                config.page_size
            )));
        }
        if config.concurrency == 0 || config.concurrency > Semaphore::MAX_PERMITS {
            return Err(invalid(format!(
                "concurrency must be between 1 and {}, got {}",
                Semaphore::MAX_PERMITS,
                config.concurrency
            )));
        }
        if config.max_attempts == 0 {
            return Err(invalid("max_attempts must be at least 1".to_owned()));
        }
        if config.max_pages == 0 {
            return Err(invalid("max_pages must be at least 1".to_owned()));
        }
        if config.request_timeout.is_zero() {
            return Err(invalid("request_timeout must be positive".to_owned()));
        }
        if config.max_response_bytes == 0 {
            return Err(invalid("max_response_bytes must be at least 1".to_owned()));
        }
        if config.backoff_min > config.backoff_max {
            return Err(invalid(format!(
                "backoff_min ({:?}) is larger than backoff_max ({:?})",
                config.backoff_min, config.backoff_max
            )));
        }

        // Tokens pasted from files often carry a trailing newline.
        let token = config.token.expose_secret().trim();
        if token.is_empty() {
            return Err(invalid("the Segment token is empty".to_owned()));
        }
        let mut auth = HeaderValue::from_str(&format!("Bearer {token}")).map_err(|_| {
            // Never echo the token, not even in part.
            invalid("the Segment token contains characters not allowed in an HTTP header".into())
        })?;
        auth.set_sensitive(true);
        let mut headers = HeaderMap::new();
        headers.insert(AUTHORIZATION, auth);
        headers.insert(ACCEPT, HeaderValue::from_static(ACCEPT_V1));

        let http = reqwest::Client::builder()
            .user_agent(concat!("segwatch/", env!("CARGO_PKG_VERSION")))
            .default_headers(headers)
            .timeout(config.request_timeout)
            .connect_timeout(config.request_timeout.min(Duration::from_secs(10)))
            // The API never redirects; following one could carry the token somewhere else.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| invalid(format!("cannot build the HTTP client: {}", error_chain(&e))))?;

        Ok(SegmentClient {
            inner: Arc::new(Inner {
                http,
                base_url,
                token: SecretString::from(token),
                page_size: config.page_size,
                request_timeout: config.request_timeout,
                max_response_bytes: config.max_response_bytes,
                max_attempts: config.max_attempts,
                max_pages: config.max_pages,
                max_rate_limit_wait: config.max_rate_limit_wait,
                backoff_min: config.backoff_min,
                backoff_max: config.backoff_max,
                semaphore: Semaphore::new(config.concurrency),
                concurrency: config.concurrency,
                gate: Gate::default(),
                requests: AtomicU64::new(0),
                retries: AtomicU64::new(0),
                rate_limited: AtomicU64::new(0),
            }),
        })
    }

    /// `GET path` and returns `data[key]`, e.g. `get_object("/", "workspace")`.
    ///
    /// Also suits list endpoints that take no pagination input at all.
    pub async fn get_object(&self, path: &str, key: &str) -> Result<Value, SegmentError> {
        let mut data = self.get_data(path, &[]).await?;
        data.remove(key).ok_or_else(|| SegmentError::Malformed {
            method: "GET".to_owned(),
            path: path.to_owned(),
            detail: format!("`data.{key}` is missing"),
        })
    }

    /// A paginated listing of `data[items_key]` at `path`, fetched page by page.
    pub fn pages(&self, path: &str, items_key: &str) -> Pages {
        self.pages_with_query(path, Vec::new(), items_key)
    }

    /// Like [`pages`](Self::pages), with extra query parameters (e.g. `resourceType=SOURCE`)
    /// sent on every page before the pagination parameters.
    pub fn pages_with_query(
        &self,
        path: &str,
        query: Vec<(String, String)>,
        items_key: &str,
    ) -> Pages {
        Pages::new(self.clone(), path, query, items_key)
    }

    /// Every item of a paginated listing, in order. Prefer [`pages`](Self::pages) for big lists.
    pub async fn list_all(&self, path: &str, items_key: &str) -> Result<Vec<Value>, SegmentError> {
        let mut pages = self.pages(path, items_key);
        let mut all = Vec::new();
        while let Some(items) = pages.next_page().await? {
            all.extend(items);
        }
        Ok(all)
    }

    /// Items per page of a listing (`pagination[count]`).
    pub fn page_size(&self) -> u32 {
        self.inner.page_size
    }

    /// Cumulative counters since the client was built.
    pub fn stats(&self) -> ClientStats {
        let i = &self.inner;
        ClientStats {
            requests: i.requests.load(Ordering::Relaxed),
            retries: i.retries.load(Ordering::Relaxed),
            rate_limited: i.rate_limited.load(Ordering::Relaxed),
        }
    }

    /// `GET path?query` with retries; returns the `data` object of the envelope.
    async fn get_data(
        &self,
        path: &str,
        query: &[(String, String)],
    ) -> Result<Map<String, Value>, SegmentError> {
        self.request(Method::GET, path, query, None).await
    }

    /// `POST path` with a JSON body; returns the `data` object of the envelope.
    ///
    /// A POST creates something and is not idempotent, so it is retried only when Segment
    /// certainly did not act on it: after HTTP 429 (the request was refused) and after a
    /// connection failure before the request was sent. A timeout, a 5xx or a cut connection
    /// after sending fail at once ([`SegmentError::Transport`] or [`SegmentError::Api`]): the
    /// request may have been received, and sending it again could act twice.
    pub async fn post_data(
        &self,
        path: &str,
        body: &Value,
    ) -> Result<Map<String, Value>, SegmentError> {
        self.request(Method::POST, path, &[], Some(body)).await
    }

    /// One request with retries; returns the `data` object of the envelope.
    async fn request(
        &self,
        method: Method,
        path: &str,
        query: &[(String, String)],
        body: Option<&Value>,
    ) -> Result<Map<String, Value>, SegmentError> {
        let idempotent = method == Method::GET;
        let inner = &self.inner;
        let url = self.url(path, query)?;
        // For logs: path and query as sent, with the pagination brackets left readable.
        let shown = match url.query() {
            Some(q) => format!(
                "{}?{}",
                url.path(),
                q.replace("%5B", "[").replace("%5D", "]")
            ),
            None => url.path().to_owned(),
        };
        let attempts = AtomicU32::new(0);
        let rate_limited = AtomicU32::new(0);
        let malformed = AtomicU32::new(0);

        let backoff = ExponentialBuilder::default()
            .with_min_delay(inner.backoff_min)
            .with_max_delay(inner.backoff_max)
            .with_jitter()
            .with_max_times(inner.max_attempts.saturating_sub(1) as usize);

        let result = (|| async {
            let attempt = attempts.fetch_add(1, Ordering::Relaxed) + 1;
            let result = self.attempt(&method, &url, body, &shown, attempt).await;
            match &result {
                Err(AttemptError::RateLimited { .. }) => {
                    rate_limited.fetch_add(1, Ordering::Relaxed);
                }
                Err(AttemptError::Malformed { .. }) => {
                    malformed.fetch_add(1, Ordering::Relaxed);
                }
                _ => {}
            }
            result
        })
        .retry(backoff)
        .when(|e| match e {
            AttemptError::Fatal(_) => false,
            AttemptError::RateLimited { .. } => true,
            // Not idempotent: only a request that never left may be sent again.
            AttemptError::Transient { unsent, .. } if !idempotent => *unsent,
            AttemptError::Malformed { .. } if !idempotent => false,
            // A malformed success body is rarely transient (it is the server's bug, not a
            // blip), but a proxy can truncate one: retry once, then report it.
            AttemptError::Malformed { .. } => malformed.load(Ordering::Relaxed) < 2,
            AttemptError::Transient { .. } => true,
        })
        .adjust(|e, backoff| {
            // `None` means the attempts are used up: stop, whatever the server asked for.
            let backoff = backoff?;
            Some(match e {
                AttemptError::RateLimited { wait, .. } => {
                    wait.unwrap_or(backoff).min(inner.max_rate_limit_wait)
                }
                AttemptError::Transient {
                    retry_after: Some(after),
                    ..
                } => (*after).max(backoff).min(inner.max_rate_limit_wait),
                // Jitter can push past the maximum; keep the promise of `backoff_max`.
                _ => backoff.min(inner.backoff_max),
            })
        })
        .notify(|e, wait| {
            inner.retries.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(
                method = %method,
                path = %shown,
                attempt = attempts.load(Ordering::Relaxed),
                max_attempts = inner.max_attempts,
                wait_ms = wait.as_millis() as u64,
                reason = %e.reason(),
                "retrying Segment API request"
            );
        })
        .await;

        result.map_err(|e| {
            let method = method.as_str().to_owned();
            let path = path.to_owned();
            let attempts = attempts.load(Ordering::Relaxed);
            match e {
                AttemptError::Transient { last, unsent, .. } if !idempotent && !unsent => {
                    SegmentError::Transport {
                        method,
                        path,
                        cause: format!(
                            "{last}; the request may have reached Segment, so it was not sent again"
                        ),
                    }
                }
                AttemptError::Fatal(e) => e,
                AttemptError::RateLimited { server, .. } => SegmentError::RateLimited {
                    method,
                    path,
                    times: rate_limited.load(Ordering::Relaxed),
                    attempts,
                    server,
                },
                AttemptError::Transient { last, .. } => SegmentError::RetriesExhausted {
                    method,
                    path,
                    attempts,
                    last,
                },
                AttemptError::Malformed { detail } => SegmentError::Malformed {
                    method,
                    path,
                    detail,
                },
            }
        })
    }

    /// One HTTP exchange, classified for the retry loop.
    async fn attempt(
        &self,
        method: &Method,
        url: &Url,
        body: Option<&Value>,
        shown: &str,
        attempt: u32,
    ) -> Result<Map<String, Value>, AttemptError> {
        let inner = &self.inner;
        // Pacing first, then a permit; re-check the gate because a response that arrived while
        // we queued for the permit may have closed it. The permit is never held while sleeping.
        let permit = loop {
            inner.gate.wait(shown).await;
            let permit = inner.semaphore.acquire().await.map_err(|_| {
                // The semaphore is never closed; this is only here to avoid a panic path.
                AttemptError::Fatal(self.transport_error(
                    method,
                    url,
                    "client is shutting down".into(),
                ))
            })?;
            if inner.gate.pending().is_none() {
                break permit;
            }
        };

        inner.requests.fetch_add(1, Ordering::Relaxed);
        let started = Instant::now();
        let exchange = async {
            let mut request = inner.http.request(method.clone(), url.clone());
            if let Some(body) = body {
                request = request.json(body);
            }
            let response = request.send().await.map_err(BodyError::Http)?;
            let status = response.status();
            let headers = response.headers().clone();
            // The client's `timeout` also bounds this read: a trickling body times out.
            let body = read_limited(response, inner.max_response_bytes).await?;
            Ok::<_, BodyError>((status, headers, body))
        }
        .await;
        drop(permit);
        let elapsed_ms = started.elapsed().as_millis() as u64;

        let (status, headers, body) = match exchange {
            Ok(parts) => parts,
            Err(BodyError::TooLarge { declared }) => {
                tracing::debug!(
                    method = %method,
                    path = %shown,
                    attempt,
                    elapsed_ms,
                    limit = inner.max_response_bytes,
                    "Segment API response too large"
                );
                // The same endpoint would send the same body again: never retried.
                return Err(AttemptError::Fatal(SegmentError::ResponseTooLarge {
                    method: method.as_str().to_owned(),
                    path: url.path().to_owned(),
                    limit: inner.max_response_bytes,
                    declared,
                }));
            }
            Err(BodyError::Http(e)) => {
                let builder = e.is_builder();
                // A failed connect means nothing was sent; anything later may have been.
                let unsent = e.is_connect();
                let cause = if e.is_timeout() {
                    format!("timed out after {:?}", inner.request_timeout)
                } else {
                    error_chain(&e.without_url())
                };
                tracing::debug!(
                    method = %method,
                    path = %shown,
                    attempt,
                    elapsed_ms,
                    %cause,
                    "Segment API request failed"
                );
                if builder {
                    return Err(AttemptError::Fatal(
                        self.transport_error(method, url, cause),
                    ));
                }
                return Err(AttemptError::Transient {
                    last: cause,
                    retry_after: None,
                    unsent,
                });
            }
        };
        tracing::debug!(
            method = %method,
            path = %shown,
            attempt,
            status = status.as_u16(),
            elapsed_ms,
            "Segment API request"
        );

        let limits = RateLimitHeaders::parse(&headers);
        if limits.remaining == Some(0)
            && let Some(reset_in) = limits.reset_in
        {
            inner
                .gate
                .hold_until(Instant::now() + reset_in.min(inner.max_rate_limit_wait));
        }

        if status.is_success() {
            return self.parse_success(&body);
        }

        let json: Option<Value> = serde_json::from_slice(&body).ok();
        let server = self.server_message(json.as_ref(), &body);
        let path = url.path().to_owned();
        let code = status.as_u16();
        match status {
            StatusCode::TOO_MANY_REQUESTS => {
                inner.rate_limited.fetch_add(1, Ordering::Relaxed);
                let wait = json
                    .as_ref()
                    .and_then(retry::ms_before_next)
                    .or(limits.reset_in)
                    .or(limits.retry_after);
                if let Some(wait) = wait {
                    // Everyone sharing the client should respect the server's wait, not just us.
                    inner
                        .gate
                        .hold_until(Instant::now() + wait.min(inner.max_rate_limit_wait));
                }
                Err(AttemptError::RateLimited { wait, server })
            }
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => {
                Err(AttemptError::Fatal(SegmentError::Unauthorized {
                    method: method.as_str().to_owned(),
                    path,
                    status: code,
                    server,
                }))
            }
            // 501: the API does not implement the endpoint; asking again cannot change that.
            s if (s.is_server_error() && s != StatusCode::NOT_IMPLEMENTED)
                || s == StatusCode::REQUEST_TIMEOUT =>
            {
                Err(AttemptError::Transient {
                    last: if server.is_empty() {
                        format!("HTTP {code}")
                    } else {
                        format!("HTTP {code} {server}")
                    },
                    retry_after: limits.retry_after,
                    unsent: false,
                })
            }
            _ => Err(AttemptError::Fatal(SegmentError::Api {
                method: method.as_str().to_owned(),
                path,
                status: code,
                server,
            })),
        }
    }

    /// Unwraps `{"data": {...}}` from a success body.
    fn parse_success(&self, body: &[u8]) -> Result<Map<String, Value>, AttemptError> {
        let malformed = |detail: String| AttemptError::Malformed { detail };
        let mut envelope: Value = surrogates::parse_json(body)
            // serde_json's message carries the line and column.
            .map_err(|e| malformed(format!("response body is not valid JSON: {e}")))?;
        let Some(object) = envelope.as_object_mut() else {
            return Err(malformed(format!(
                "response body is {}, expected an object with `data`",
                pages::kind_of(&envelope)
            )));
        };
        match object.remove("data") {
            Some(Value::Object(data)) => Ok(data),
            Some(other) => Err(malformed(format!(
                "`data` is {}, expected an object",
                pages::kind_of(&other)
            ))),
            None => {
                let errors = ServerMessage {
                    errors: ApiErrorDetail::from_envelope(&envelope).unwrap_or_default(),
                    excerpt: None,
                };
                Err(malformed(if errors.is_empty() {
                    "response has no `data` object".to_owned()
                } else {
                    format!("success status with an error envelope: {errors}")
                }))
            }
        }
    }

    /// What an error response said, scrubbed of the token.
    fn server_message(&self, json: Option<&Value>, body: &[u8]) -> ServerMessage {
        if let Some(mut errors) = json.and_then(ApiErrorDetail::from_envelope) {
            for e in &mut errors {
                e.error_type = self.scrub(&e.error_type);
                e.message = e.message.as_deref().map(|m| self.scrub(m));
                e.field = e.field.as_deref().map(|m| self.scrub(m));
                // `data` is never displayed, but it is in `Debug` output.
                if let Some(data) = &mut e.data {
                    self.scrub_value(data);
                }
            }
            return ServerMessage {
                errors,
                excerpt: None,
            };
        }
        let text = String::from_utf8_lossy(body);
        let collapsed = text.split_whitespace().collect::<Vec<_>>().join(" ");
        if collapsed.is_empty() {
            return ServerMessage::default();
        }
        let mut excerpt: String = collapsed.chars().take(EXCERPT_CHARS).collect();
        if collapsed.chars().nth(EXCERPT_CHARS).is_some() {
            excerpt.push('…');
        }
        ServerMessage {
            errors: Vec::new(),
            excerpt: Some(self.scrub(&excerpt)),
        }
    }

    /// Removes the token from text a server sent back, in case it echoes request headers.
    fn scrub(&self, text: &str) -> String {
        text.replace(self.inner.token.expose_secret(), "[REDACTED]")
    }

    fn scrub_value(&self, value: &mut Value) {
        match value {
            Value::String(s) => *s = self.scrub(s),
            Value::Array(items) => items.iter_mut().for_each(|v| self.scrub_value(v)),
            Value::Object(map) => map.values_mut().for_each(|v| self.scrub_value(v)),
            _ => {}
        }
    }

    fn transport_error(&self, method: &Method, url: &Url, cause: String) -> SegmentError {
        SegmentError::Transport {
            method: method.as_str().to_owned(),
            path: url.path().to_owned(),
            cause,
        }
    }

    fn url(&self, path: &str, query: &[(String, String)]) -> Result<Url, SegmentError> {
        let separator = if path.starts_with('/') { "" } else { "/" };
        let mut url =
            Url::parse(&format!("{}{separator}{path}", self.inner.base_url)).map_err(|e| {
                SegmentError::Transport {
                    method: "GET".to_owned(),
                    path: path.to_owned(),
                    cause: format!("invalid request URL: {e}"),
                }
            })?;
        if !query.is_empty() {
            url.query_pairs_mut().extend_pairs(query);
        }
        Ok(url)
    }
}

/// Checks an API base URL and returns it without a trailing slash, or says what is wrong with
/// it. Configuration calls this too, so the rules live in one place.
pub fn check_base_url(base_url: &str) -> Result<String, String> {
    let invalid = |why: &str| format!("base_url {base_url:?} {why}");
    let url = Url::parse(base_url.trim()).map_err(|e| invalid(&format!("is not a URL: {e}")))?;
    if !url.username().is_empty() || url.password().is_some() {
        return Err(invalid("must not contain credentials"));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(invalid("must not have a query or fragment"));
    }
    let Some(host) = url.host_str() else {
        return Err(invalid("has no host"));
    };
    let loopback = host.eq_ignore_ascii_case("localhost")
        || host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    match url.scheme() {
        "https" => {}
        // The token grants Workspace Owner access: never send it in clear text off this host.
        "http" if loopback => {}
        "http" => {
            return Err(invalid(
                "must use https (plain http is only allowed for loopback)",
            ));
        }
        _ => return Err(invalid("must be an http(s) URL")),
    }
    Ok(url.as_str().trim_end_matches('/').to_owned())
}

/// An error and its sources, `outer: inner: …`, skipping repeated messages.
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut parts: Vec<String> = vec![error.to_string()];
    let mut source = error.source();
    while let Some(e) = source {
        let text = e.to_string();
        if parts.last().is_none_or(|last| !last.contains(&text)) {
            parts.push(text);
        }
        source = e.source();
    }
    parts.join(": ")
}
