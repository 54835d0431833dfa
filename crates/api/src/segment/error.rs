//! Errors returned by the Segment Public API client.
//!
//! Every variant names the request (method and path) it came from, so a failed poll can be
//! diagnosed from the message alone. No variant ever holds the token: server-provided text is
//! scrubbed of it before it is stored (see `SegmentClient::scrub`).

use std::fmt;

use serde_json::Value;

/// One entry of Segment's error envelope: `{"errors":[{"type","message"?,"field"?,"data"?,"status"?}]}`.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiErrorDetail {
    /// The error `type`, e.g. `NotFound`, `ValidationFailure`, `RequestError`.
    pub error_type: String,
    /// The human-readable `message`, if any.
    pub message: Option<String>,
    /// The request `field` the error refers to, if any.
    pub field: Option<String>,
    /// Free-form `data` attached to the error (e.g. rate-limit details), if any.
    pub data: Option<Value>,
}

impl ApiErrorDetail {
    /// Reads the entries of an error envelope; `None` when `body` is not one.
    ///
    /// Lenient on purpose: an entry whose fields have unexpected types still yields what can be
    /// read, because the point is to show the operator whatever the server said.
    pub(crate) fn from_envelope(body: &Value) -> Option<Vec<ApiErrorDetail>> {
        let entries = body.get("errors")?.as_array()?;
        Some(
            entries
                .iter()
                .map(|entry| {
                    let text =
                        |key: &str| entry.get(key).and_then(Value::as_str).map(str::to_owned);
                    ApiErrorDetail {
                        error_type: text("type").unwrap_or_else(|| "UnknownError".to_owned()),
                        message: text("message"),
                        field: text("field"),
                        data: entry.get("data").filter(|d| !d.is_null()).cloned(),
                    }
                })
                .collect(),
        )
    }
}

impl fmt::Display for ApiErrorDetail {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.error_type)?;
        if let Some(field) = &self.field {
            write!(f, " (field `{field}`)")?;
        }
        if let Some(message) = &self.message {
            write!(f, ": {message}")?;
        }
        Ok(())
    }
}

/// What the server said in an error response, for messages: the envelope's entries if the body
/// was one, else a short excerpt of the raw body.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ServerMessage {
    /// The error envelope's entries (empty if the body was not an envelope).
    pub errors: Vec<ApiErrorDetail>,
    /// A short, token-scrubbed excerpt of a body that was not an error envelope (e.g. an HTML
    /// page from a proxy); `None` if the body was an envelope or empty.
    pub excerpt: Option<String>,
}

impl ServerMessage {
    /// True if the server said nothing usable.
    pub fn is_empty(&self) -> bool {
        self.errors.is_empty() && self.excerpt.is_none()
    }
}

impl fmt::Display for ServerMessage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if !self.errors.is_empty() {
            for (i, e) in self.errors.iter().enumerate() {
                if i > 0 {
                    f.write_str("; ")?;
                }
                write!(f, "{e}")?;
            }
        } else if let Some(excerpt) = &self.excerpt {
            write!(f, "{excerpt:?}")?;
        }
        Ok(())
    }
}

/// ` <server message>` with a leading space, or nothing.
struct Said<'a>(&'a ServerMessage);

impl fmt::Display for Said<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            Ok(())
        } else {
            write!(f, " {}", self.0)
        }
    }
}

/// An error from the Segment Public API client.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum SegmentError {
    /// The [`ClientConfig`](super::ClientConfig) cannot be used (bad base URL, zero limits…).
    #[error("invalid Segment client configuration: {0}")]
    InvalidConfig(String),

    /// HTTP 401/403: the token was refused. Never retried.
    #[error(
        "{method} {path}: HTTP {status}: the Segment token was refused. It is invalid or expired, \
         or it lacks the Workspace Owner access the Segment Public API requires.{said}",
        said = ServerSaid(server)
    )]
    Unauthorized {
        /// HTTP method.
        method: String,
        /// Request path (without query).
        path: String,
        /// 401 or 403.
        status: u16,
        /// What the server said.
        server: ServerMessage,
    },

    /// Any other non-success status that is not retried (404, 409, 422, unexpected 3xx…).
    #[error("{method} {path}: HTTP {status}{said}", said = ApiSaid(server))]
    Api {
        /// HTTP method.
        method: String,
        /// Request path (without query).
        path: String,
        /// HTTP status code.
        status: u16,
        /// What the server said.
        server: ServerMessage,
    },

    /// Still HTTP 429 after `max_attempts` attempts.
    #[error(
        "{method} {path}: rate limited (HTTP 429) {times} {} in {attempts} {}; giving up.{said}",
        plural(*times, "time"), plural(*attempts, "attempt"),
        said = ServerSaid(server)
    )]
    RateLimited {
        /// HTTP method.
        method: String,
        /// Request path (without query).
        path: String,
        /// How many of the attempts got HTTP 429.
        times: u32,
        /// How many attempts were made.
        attempts: u32,
        /// What the server said in the last 429.
        server: ServerMessage,
    },

    /// A transient failure (5xx, timeout, connection error) persisted for `max_attempts` attempts.
    #[error(
        "{method} {path}: failed after {attempts} {}; last error: {last}",
        plural(*attempts, "attempt")
    )]
    RetriesExhausted {
        /// HTTP method.
        method: String,
        /// Request path (without query).
        path: String,
        /// How many attempts were made.
        attempts: u32,
        /// The last status or cause, e.g. `HTTP 503: …` or `timed out after 30s`.
        last: String,
    },

    /// A non-retryable transport failure (e.g. the request could not be built).
    #[error("{method} {path}: {cause}")]
    Transport {
        /// HTTP method.
        method: String,
        /// Request path (without query).
        path: String,
        /// The cause, with its source chain.
        cause: String,
    },

    /// The response was not what the API documents: not JSON, not an envelope, or missing the
    /// expected keys.
    #[error("{method} {path}: malformed response: {detail}")]
    Malformed {
        /// HTTP method.
        method: String,
        /// Request path (without query).
        path: String,
        /// What was wrong, with line/column for JSON syntax errors.
        detail: String,
    },

    /// The server handed back a cursor this listing had already requested.
    #[error(
        "GET {path}: pagination loop: cursor {cursor:?} was returned again after {pages} pages; \
         stopping instead of looping forever"
    )]
    PaginationLoop {
        /// Request path of the listing.
        path: String,
        /// The repeated cursor.
        cursor: String,
        /// Pages fetched before the loop was detected.
        pages: u32,
    },

    /// A response body was larger than `max_response_bytes`. Never retried: the same endpoint
    /// would send the same body.
    #[error(
        "{method} {path}: the response body is larger than the limit of {limit} \
         (`max_response_bytes`){declared}; stopped reading it. Raise `max_response_bytes` if \
         Segment really answers this much",
        limit = super::ByteSize(*limit),
        declared = Declared(*declared)
    )]
    ResponseTooLarge {
        /// HTTP method.
        method: String,
        /// Request path (without query).
        path: String,
        /// The configured limit in bytes.
        limit: u64,
        /// The `Content-Length` the server announced, when that alone exceeded the limit.
        declared: Option<u64>,
    },

    /// The listing had more pages than `max_pages`.
    #[error(
        "GET {path}: more than {max_pages} pages; stopping (raise max_pages if this is expected)"
    )]
    TooManyPages {
        /// Request path of the listing.
        path: String,
        /// The configured limit.
        max_pages: u32,
    },
}

impl SegmentError {
    /// The HTTP status the server answered with, for errors that carry one.
    pub fn status(&self) -> Option<u16> {
        match self {
            SegmentError::Unauthorized { status, .. } | SegmentError::Api { status, .. } => {
                Some(*status)
            }
            SegmentError::RateLimited { .. } => Some(429),
            _ => None,
        }
    }

    /// For HTTP 403 or 404: the status and what the request and server said, e.g.
    /// `(403, "GET /groups: Forbidden: not on your plan")`. A list endpoint that answers so to a
    /// token `GET /` accepted is a feature the workspace's plan or the token lacks, not a bad
    /// token, so the message leaves out [`SegmentError::Unauthorized`]'s token advice.
    pub fn refusal(&self) -> Option<(u16, String)> {
        match self {
            SegmentError::Unauthorized {
                method,
                path,
                status,
                server,
            }
            | SegmentError::Api {
                method,
                path,
                status,
                server,
            } if matches!(status, 403 | 404) => {
                let said = if server.is_empty() {
                    match status {
                        403 => "Forbidden".to_owned(),
                        _ => "Not Found".to_owned(),
                    }
                } else {
                    server.to_string()
                };
                Some((*status, format!("{method} {path}: HTTP {status}: {said}")))
            }
            _ => None,
        }
    }

    /// True for HTTP 404, e.g. an object deleted between listing it and fetching it.
    pub fn is_not_found(&self) -> bool {
        self.status() == Some(404)
    }
}

/// `: <server message>` or nothing, for status-line style messages.
struct ApiSaid<'a>(&'a ServerMessage);

impl fmt::Display for ApiSaid<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.errors.is_empty() {
            // A non-envelope body is shown quoted after a colon.
            if self.0.excerpt.is_some() {
                write!(f, ": {}", self.0)?;
            }
            Ok(())
        } else {
            // `HTTP 422 ValidationFailure: pagination is required`.
            write!(f, "{}", Said(self.0))
        }
    }
}

/// ` Server said: <message>` or nothing, for sentence-style messages.
struct ServerSaid<'a>(&'a ServerMessage);

impl fmt::Display for ServerSaid<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            Ok(())
        } else {
            write!(f, " Server said: {}", self.0)
        }
    }
}

/// `: Content-Length announced N bytes` or nothing.
struct Declared(Option<u64>);

impl fmt::Display for Declared {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(n) => write!(f, " (Content-Length announced {n} bytes)"),
            None => Ok(()),
        }
    }
}

/// `time` or `times`.
fn plural(n: u32, word: &str) -> String {
    if n == 1 {
        word.to_owned()
    } else {
        format!("{word}s")
    }
}
