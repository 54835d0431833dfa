//! A client for Segment's Profile API (Unify): reads one profile's metadata, traits, external
//! ids and events for a data-subject access request.
//!
//! Basic auth with the space's access secret as user name (empty password), at most 100
//! requests per second per space (Segment's default limit), 429 and 5xx retried with
//! exponential backoff, cursor pagination followed to the end. The secret is never logged nor
//! kept in an error: server text is scrubbed of it before it is stored.

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use backon::{ExponentialBuilder, Retryable};
use base64::Engine as _;
use reqwest::StatusCode;
use reqwest::header::{ACCEPT, AUTHORIZATION, HeaderMap, HeaderValue, RETRY_AFTER};
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Map, Value, json};
use tokio::sync::Mutex;
use tokio::time::Instant;

/// A checked `[profiles]` configuration section: what the Profile API client needs.
#[derive(Debug, Clone)]
pub struct ProfilesTarget {
    /// Base URL without a trailing slash.
    pub base_url: String,
    /// The space id.
    pub space_id: String,
    /// The access secret.
    pub access_secret: SecretString,
    /// Most bytes one response body may have (`profiles.max_response_bytes`).
    pub max_response_bytes: u64,
}

/// Segment's default Profile API limit is 100 requests per second per space.
const MIN_INTERVAL: Duration = Duration::from_millis(10);
/// Records asked for per page (the documented maximum of the generic `limit`).
const PAGE_LIMIT: u32 = 100;
/// Pages read from one section before it is declared endless.
const MAX_PAGES: u32 = 10_000;
/// The message of a 404 for an identifier the space does not know.
const PROFILE_NOT_FOUND: &str = "Profile was not found";

/// The kind of identifier a subject is looked up by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum IdType {
    /// A `userId` sent with `identify`/`track` calls.
    UserId,
    /// An email trait / external id.
    Email,
    /// An `anonymousId`.
    AnonymousId,
}

impl IdType {
    /// The prefix the Profile API expects, e.g. `user_id`.
    pub fn as_str(self) -> &'static str {
        match self {
            IdType::UserId => "user_id",
            IdType::Email => "email",
            IdType::AnonymousId => "anonymous_id",
        }
    }
}

/// A data subject's identifier: `user_id:u1`, `email:x@y`, `anonymous_id:a1`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identifier {
    /// What the value is.
    pub kind: IdType,
    /// The value as given.
    pub value: String,
}

impl std::fmt::Display for Identifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.kind.as_str(), self.value)
    }
}

impl Identifier {
    /// The identifier as a path segment, its value percent-encoded (`+` becomes `%2B`: an
    /// unencoded non-alphanumeric identifier can make the API fail with a 500).
    pub fn path_segment(&self) -> String {
        format!("{}:{}", self.kind.as_str(), encode(&self.value))
    }
}

/// Percent-encodes everything but RFC 3986 unreserved characters.
fn encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Errors from the Profile API client.
#[derive(Debug, thiserror::Error)]
pub enum ProfileError {
    /// The configuration cannot make a client (e.g. an empty secret).
    #[error("invalid Profile API configuration: {0}")]
    InvalidConfig(String),
    /// HTTP 401/403: the access secret is wrong, revoked, or belongs to another space.
    #[error(
        "the Profile API rejected the access secret (HTTP {status}{server}); check `profiles.access_secret` and that it belongs to space `{space}`"
    )]
    InvalidSecret {
        /// 401 or 403.
        status: u16,
        /// The space asked for.
        space: String,
        /// What the server said, prefixed with ": " (empty if nothing).
        server: String,
    },
    /// A 404 that is not "Profile was not found.": the space is unknown on this host.
    #[error(
        "the Profile API does not know space `{space}` (HTTP 404{server}); check `profiles.space_id`, and `profiles.region` (a space lives in one region)"
    )]
    UnknownSpace {
        /// The space asked for.
        space: String,
        /// What the server said, prefixed with ": ".
        server: String,
    },
    /// 404 "Profile was not found.": the space has no profile for this identifier.
    #[error("no profile for {subject} in space {space}")]
    NoProfile {
        /// The identifier looked up.
        subject: String,
        /// The space.
        space: String,
    },
    /// The host could not be reached (DNS, connection, TLS, timeout), after retries.
    #[error("cannot reach the Profile API at {url} after {attempts} attempt(s): {cause}")]
    Network {
        /// Base URL.
        url: String,
        /// Attempts made.
        attempts: u32,
        /// The last transport error.
        cause: String,
    },
    /// Any other unsuccessful status (after retries for 429 and 5xx).
    #[error(
        "the Profile API answered HTTP {status} to GET {path} after {attempts} attempt(s){server}"
    )]
    Http {
        /// The last status.
        status: u16,
        /// The request path.
        path: String,
        /// Attempts made.
        attempts: u32,
        /// What the server said, prefixed with ": ".
        server: String,
    },
    /// A success whose body is not the documented shape.
    #[error("malformed Profile API response to GET {path}: {detail}")]
    Malformed {
        /// The request path.
        path: String,
        /// What is wrong.
        detail: String,
    },
    /// A response body was larger than `profiles.max_response_bytes`. Never retried: the same
    /// request would get the same body.
    #[error(
        "GET {path}: the Profile API response body is larger than the limit of {limit} \
         (`profiles.max_response_bytes`); stopped reading it",
        limit = crate::segment::ByteSize(*limit)
    )]
    ResponseTooLarge {
        /// The request path.
        path: String,
        /// The configured limit in bytes.
        limit: u64,
    },
    /// A section kept handing out cursors past the page limit (10,000 pages).
    #[error("GET {path} kept paginating past {pages} pages")]
    Endless {
        /// The request path.
        path: String,
        /// Pages read.
        pages: u32,
    },
}

/// A whole section of a profile, all pages gathered.
#[derive(Debug, Clone, PartialEq)]
pub enum Section {
    /// An object (traits: name → value).
    Object(Map<String, Value>),
    /// A list of records (external ids, events).
    List(Vec<Value>),
}

impl Section {
    /// Records in the section.
    pub fn count(&self) -> usize {
        match self {
            Section::Object(m) => m.len(),
            Section::List(v) => v.len(),
        }
    }

    /// The records as JSON.
    pub fn into_value(self) -> Value {
        match self {
            Section::Object(m) => Value::Object(m),
            Section::List(v) => Value::Array(v),
        }
    }
}

/// A client for one space of the Profile API.
pub struct ProfileClient {
    http: reqwest::Client,
    base_url: String,
    space_id: String,
    secret: SecretString,
    /// The earliest instant the next request may start (the per-space pacing).
    next_slot: Mutex<Instant>,
    max_attempts: u32,
    max_response_bytes: u64,
    backoff_min: Duration,
    backoff_max: Duration,
}

impl std::fmt::Debug for ProfileClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProfileClient")
            .field("base_url", &self.base_url)
            .field("space_id", &self.space_id)
            .finish_non_exhaustive()
    }
}

/// One failed exchange, as the retry loop sees it.
#[derive(Debug)]
enum Attempt {
    Retry {
        status: Option<u16>,
        last: String,
        retry_after: Option<Duration>,
    },
    Fatal(ProfileError),
}

impl ProfileClient {
    /// Builds a client for the configured space.
    pub fn new(target: &ProfilesTarget) -> Result<Self, ProfileError> {
        let invalid = |m: &str| ProfileError::InvalidConfig(m.to_owned());
        let base_url = crate::segment::check_base_url(&target.base_url)
            .map_err(ProfileError::InvalidConfig)?;
        let secret = target.access_secret.expose_secret().trim();
        if secret.is_empty() {
            return Err(invalid("the access secret is empty"));
        }
        let basic = base64::engine::general_purpose::STANDARD.encode(format!("{secret}:"));
        let mut auth = HeaderValue::from_str(&format!("Basic {basic}"))
            .map_err(|_| invalid("the access secret cannot be sent in an HTTP header"))?;
        auth.set_sensitive(true);
        let mut headers = HeaderMap::new();
        headers.insert(AUTHORIZATION, auth);
        headers.insert(ACCEPT, HeaderValue::from_static("application/json"));
        let http = reqwest::Client::builder()
            .user_agent(concat!("segwatch/", env!("CARGO_PKG_VERSION")))
            .default_headers(headers)
            .timeout(Duration::from_secs(30))
            .connect_timeout(Duration::from_secs(10))
            // A redirect could carry the secret to another host.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| {
                ProfileError::InvalidConfig(format!("cannot build the HTTP client: {e}"))
            })?;
        Ok(ProfileClient {
            http,
            base_url,
            space_id: target.space_id.clone(),
            secret: SecretString::from(secret),
            next_slot: Mutex::new(Instant::now()),
            max_attempts: 6,
            max_response_bytes: target.max_response_bytes.max(1),
            backoff_min: Duration::from_millis(200),
            backoff_max: Duration::from_secs(10),
        })
    }

    /// Sets the attempts per request (at least 1) on 429, 5xx and network errors; a connection
    /// check wants an answer in seconds rather than the default retry budget.
    pub fn with_max_attempts(mut self, attempts: u32) -> Self {
        self.max_attempts = attempts.max(1);
        self
    }

    /// The space this client reads.
    pub fn space_id(&self) -> &str {
        &self.space_id
    }

    /// The base URL.
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    fn profile_path(&self, profile: &str, section: &str) -> String {
        format!(
            "/v1/spaces/{}/collections/users/profiles/{profile}/{section}",
            encode(&self.space_id)
        )
    }

    /// The profile's metadata (`{segment_id?, metadata}`), or [`ProfileError::NoProfile`].
    pub async fn metadata(&self, subject: &Identifier) -> Result<Value, ProfileError> {
        let path = self.profile_path(&subject.path_segment(), "metadata");
        self.get(&path, &[]).await.map_err(|e| match e {
            ProfileError::NoProfile { space, .. } => ProfileError::NoProfile {
                subject: subject.to_string(),
                space,
            },
            other => other,
        })
    }

    /// Every page of one section of a profile. `profile` is an already-encoded path segment
    /// (an identifier or a `use_…` Segment id); `items_key` is `traits` or `data`.
    pub async fn section(
        &self,
        profile: &str,
        section: &str,
        items_key: &str,
    ) -> Result<Section, ProfileError> {
        let path = self.profile_path(profile, section);
        let mut out = if items_key == "traits" {
            Section::Object(Map::new())
        } else {
            Section::List(Vec::new())
        };
        let mut next: Option<String> = None;
        for _ in 0..MAX_PAGES {
            let mut query = vec![("limit".to_owned(), PAGE_LIMIT.to_string())];
            if let Some(cursor) = next.take() {
                query.push(("next".to_owned(), cursor));
            }
            let mut body = self.get(&path, &query).await.map_err(|e| match e {
                // The profile went away (or was merged) while it was being read.
                ProfileError::NoProfile { space, .. } => ProfileError::NoProfile {
                    subject: decode_for_display(profile),
                    space,
                },
                other => other,
            })?;
            let malformed = |detail: String| ProfileError::Malformed {
                path: path.clone(),
                detail,
            };
            match (&mut out, body.get_mut(items_key).map(Value::take)) {
                (Section::Object(all), Some(Value::Object(page))) => all.extend(page),
                (Section::List(all), Some(Value::Array(page))) => all.extend(page),
                (_, None | Some(Value::Null)) => {}
                (_, Some(other)) => {
                    return Err(malformed(format!(
                        "`{items_key}` is {}",
                        crate::segment::kind_of(&other)
                    )));
                }
            }
            let cursor = body.get("cursor");
            let has_more = cursor
                .and_then(|c| c.get("has_more"))
                .and_then(Value::as_bool)
                .unwrap_or(false);
            if !has_more {
                return Ok(out);
            }
            match cursor
                .and_then(|c| c.get("next"))
                .and_then(Value::as_str)
                .filter(|n| !n.is_empty())
            {
                Some(n) => next = Some(n.to_owned()),
                None => {
                    return Err(malformed(
                        "`cursor.has_more` is true but `cursor.next` is missing".into(),
                    ));
                }
            }
        }
        Err(ProfileError::Endless {
            path,
            pages: MAX_PAGES,
        })
    }

    /// Waits for this request's slot in the per-space pacing.
    async fn pace(&self) {
        let slot = {
            let mut next = self.next_slot.lock().await;
            let slot = (*next).max(Instant::now());
            *next = slot + MIN_INTERVAL;
            slot
        };
        tokio::time::sleep_until(slot).await;
    }

    /// `GET path?query` with pacing and retries; the JSON object answered.
    async fn get(&self, path: &str, query: &[(String, String)]) -> Result<Value, ProfileError> {
        let url = reqwest::Url::parse(&format!("{}{path}", self.base_url))
            .map_err(|e| ProfileError::InvalidConfig(format!("cannot build a request URL: {e}")))?;
        let attempts = AtomicU32::new(0);
        let shown = shown_path(path);
        let backoff = ExponentialBuilder::default()
            .with_min_delay(self.backoff_min)
            .with_max_delay(self.backoff_max)
            .with_jitter()
            .with_max_times(self.max_attempts.saturating_sub(1) as usize);
        let result = (|| async {
            attempts.fetch_add(1, Ordering::Relaxed);
            self.attempt(url.clone(), path, query).await
        })
        .retry(backoff)
        .when(|e| matches!(e, Attempt::Retry { .. }))
        .adjust(|e, backoff| {
            let backoff = backoff?;
            Some(match e {
                Attempt::Retry {
                    retry_after: Some(after),
                    ..
                } => (*after).max(backoff).min(Duration::from_secs(60)),
                _ => backoff.min(self.backoff_max),
            })
        })
        .notify(|e, wait| {
            if let Attempt::Retry { last, .. } = e {
                tracing::warn!(
                    path = %shown,
                    attempt = attempts.load(Ordering::Relaxed),
                    wait_ms = wait.as_millis() as u64,
                    reason = %last,
                    "retrying Profile API request"
                );
            }
        })
        .await;
        result.map_err(|e| {
            let attempts = attempts.load(Ordering::Relaxed);
            match e {
                Attempt::Fatal(e) => e,
                Attempt::Retry {
                    status: Some(status),
                    last,
                    ..
                } => ProfileError::Http {
                    status,
                    path: path.to_owned(),
                    attempts,
                    server: format!(": {last}"),
                },
                Attempt::Retry {
                    status: None, last, ..
                } => ProfileError::Network {
                    url: self.base_url.clone(),
                    attempts,
                    cause: last,
                },
            }
        })
    }

    async fn attempt(
        &self,
        url: reqwest::Url,
        path: &str,
        query: &[(String, String)],
    ) -> Result<Value, Attempt> {
        self.pace().await;
        let response = match self.http.get(url).query(query).send().await {
            Ok(r) => r,
            Err(e) => {
                return Err(Attempt::Retry {
                    status: None,
                    last: self.scrub(&error_chain(&e)),
                    retry_after: None,
                });
            }
        };
        let status = response.status();
        let retry_after = response
            .headers()
            .get(RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        // The client's 30 s timeout bounds this read too, so a trickling body times out.
        let body = match crate::segment::read_limited(response, self.max_response_bytes).await {
            Ok(body) => body,
            Err(crate::segment::BodyError::Http(e)) => {
                return Err(Attempt::Retry {
                    status: None,
                    last: self.scrub(&error_chain(&e)),
                    retry_after: None,
                });
            }
            Err(crate::segment::BodyError::TooLarge { .. }) => {
                return Err(Attempt::Fatal(ProfileError::ResponseTooLarge {
                    path: shown_path(path),
                    limit: self.max_response_bytes,
                }));
            }
        };
        tracing::debug!(path = %shown_path(path), status = status.as_u16(), "Profile API response");
        if status.is_success() {
            return match serde_json::from_slice::<Value>(&body) {
                Ok(v) if v.is_object() => Ok(v),
                Ok(v) => Err(Attempt::Fatal(ProfileError::Malformed {
                    path: path.to_owned(),
                    detail: format!("the body is {}, not an object", crate::segment::kind_of(&v)),
                })),
                Err(e) => Err(Attempt::Fatal(ProfileError::Malformed {
                    path: path.to_owned(),
                    detail: format!("invalid JSON: {e}"),
                })),
            };
        }
        let message = self.server_message(&body);
        let server = if message.is_empty() {
            String::new()
        } else {
            format!(": {message}")
        };
        let space = self.space_id.clone();
        Err(match status {
            StatusCode::TOO_MANY_REQUESTS => Attempt::Retry {
                status: Some(429),
                last: format!("HTTP 429{server}"),
                retry_after,
            },
            s if s.is_server_error() => Attempt::Retry {
                status: Some(s.as_u16()),
                last: format!("HTTP {}{server}", s.as_u16()),
                retry_after,
            },
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => {
                Attempt::Fatal(ProfileError::InvalidSecret {
                    status: status.as_u16(),
                    space,
                    server,
                })
            }
            StatusCode::NOT_FOUND if message.contains(PROFILE_NOT_FOUND) => {
                Attempt::Fatal(ProfileError::NoProfile {
                    subject: String::new(),
                    space,
                })
            }
            StatusCode::NOT_FOUND => Attempt::Fatal(ProfileError::UnknownSpace { space, server }),
            s => Attempt::Fatal(ProfileError::Http {
                status: s.as_u16(),
                path: path.to_owned(),
                attempts: 1,
                server,
            }),
        })
    }

    /// `code: message` from `{"error":{"code","message"}}`, else a short excerpt; scrubbed.
    fn server_message(&self, body: &[u8]) -> String {
        let text = match serde_json::from_slice::<Value>(body) {
            Ok(v) => {
                let error = v.get("error");
                let field = |k: &str| error.and_then(|e| e.get(k)).and_then(Value::as_str);
                match (field("code"), field("message")) {
                    (Some(c), Some(m)) => format!("{c}: {m}"),
                    (Some(c), None) => c.to_owned(),
                    (None, Some(m)) => m.to_owned(),
                    (None, None) => excerpt(body),
                }
            }
            Err(_) => excerpt(body),
        };
        self.scrub(&text)
    }

    fn scrub(&self, text: &str) -> String {
        text.replace(self.secret.expose_secret(), "<redacted>")
    }
}

/// A request path for logs: the subject's identifier (personal data) is left out.
fn shown_path(path: &str) -> String {
    match path.split_once("/profiles/") {
        Some((head, rest)) => {
            let section = rest.rsplit('/').next().unwrap_or_default();
            format!("{head}/profiles/…/{section}")
        }
        None => path.to_owned(),
    }
}

/// A path segment as a person would write it (`%2B` back to `+`), for messages.
fn decode_for_display(segment: &str) -> String {
    let bytes = segment.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(b)) => {
                out.push(b);
                i += 3;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn excerpt(body: &[u8]) -> String {
    String::from_utf8_lossy(body)
        .chars()
        .take(200)
        .collect::<String>()
        .trim()
        .to_owned()
}

/// An error and its sources, `outer: inner: …`.
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(e) = source {
        let part = e.to_string();
        if !text.contains(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        source = e.source();
    }
    text
}

/// The access-request document of one data subject: resolves the subject to its Segment id,
/// then reads every section (metadata, traits, external ids, the last events) in full.
pub async fn access_document(
    client: &ProfileClient,
    subject: &Identifier,
) -> Result<Value, ProfileError> {
    let mut metadata = client.metadata(subject).await?;
    let segment_id = metadata
        .get("segment_id")
        .or_else(|| metadata.pointer("/metadata/segment_id"))
        .and_then(Value::as_str)
        .map(str::to_owned);
    // Reading by the canonical id covers the whole merged profile, whatever identifier found it.
    let profile = match &segment_id {
        Some(id) => id.clone(),
        None => subject.path_segment(),
    };
    let section = |s: Section| {
        let count = s.count();
        json!({"count": count, "records": s.into_value()})
    };
    let traits = client.section(&profile, "traits", "traits").await?;
    let external_ids = client.section(&profile, "external_ids", "data").await?;
    let events = client.section(&profile, "events", "data").await?;
    let mut events = section(events);
    events["note"] = "the Profile API keeps at most the last 14 days of a profile's events".into();
    let metadata = metadata
        .get_mut("metadata")
        .map(Value::take)
        .unwrap_or(Value::Null);
    Ok(json!({
        "subject": {
            "type": subject.kind,
            "value": subject.value,
            "identifier": subject.to_string(),
        },
        "gathered_at": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        "space": client.space_id(),
        "api": client.base_url(),
        "segment_id": segment_id,
        "metadata": {"count": usize::from(!metadata.is_null()), "records": metadata},
        "traits": section(traits),
        "external_ids": section(external_ids),
        "events": events,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn requests_are_paced_to_a_hundred_per_second() {
        let client = ProfileClient::new(&ProfilesTarget {
            base_url: "http://127.0.0.1:9".into(),
            space_id: "spa_1".into(),
            access_secret: SecretString::from("s"),
            max_response_bytes: crate::segment::DEFAULT_MAX_RESPONSE_BYTES,
        })
        .unwrap();
        let start = Instant::now();
        for _ in 0..51 {
            client.pace().await;
        }
        // The first request goes at once, each other one at least 10 ms after the previous one.
        assert!(start.elapsed() >= Duration::from_millis(500));
    }

    #[test]
    fn identifiers_are_percent_encoded() {
        let id = Identifier {
            kind: IdType::Email,
            value: "ann+news@example.com".into(),
        };
        assert_eq!(id.path_segment(), "email:ann%2Bnews%40example.com");
        assert_eq!(id.to_string(), "email:ann+news@example.com");
        let id = Identifier {
            kind: IdType::UserId,
            value: "a b/ü".into(),
        };
        assert_eq!(id.path_segment(), "user_id:a%20b%2F%C3%BC");
        assert_eq!(decode_for_display(&id.path_segment()), "user_id:a b/ü");
    }
}
