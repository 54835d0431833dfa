//! Retry classification, rate-limit header parsing and request pacing.

use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use reqwest::header::{DATE, HeaderMap, RETRY_AFTER};
use serde_json::Value;
use tokio::time::Instant;

use super::error::{SegmentError, ServerMessage};

/// The outcome of one failed HTTP exchange, as the retry loop sees it.
#[derive(Debug)]
pub(super) enum AttemptError {
    /// HTTP 429. `wait` is how long the server asked us to wait, if it said.
    RateLimited {
        wait: Option<Duration>,
        server: ServerMessage,
    },
    /// 5xx (but 501), 408, timeout or connection failure: worth retrying with backoff.
    Transient {
        /// The status or cause, for the final error message.
        last: String,
        /// A `Retry-After` the server sent with it, if any.
        retry_after: Option<Duration>,
        /// The request never left (the connection failed): safe to send again even when it
        /// is not idempotent.
        unsent: bool,
    },
    /// A success status whose body is not a usable envelope.
    Malformed { detail: String },
    /// Anything that retrying cannot fix (401/403, other 4xx, bad request).
    Fatal(SegmentError),
}

impl AttemptError {
    /// A short reason for retry log lines.
    pub(super) fn reason(&self) -> String {
        match self {
            AttemptError::RateLimited { server, .. } if !server.is_empty() => {
                format!("HTTP 429 {server}")
            }
            AttemptError::RateLimited { .. } => "HTTP 429".to_owned(),
            AttemptError::Transient { last, .. } => last.clone(),
            AttemptError::Malformed { detail } => format!("malformed response: {detail}"),
            AttemptError::Fatal(e) => e.to_string(),
        }
    }
}

/// The rate-limit headers of one response.
#[derive(Debug, Default, PartialEq)]
pub(super) struct RateLimitHeaders {
    /// `X-RateLimit-Remaining`.
    pub(super) remaining: Option<u64>,
    /// Time from now until `X-RateLimit-Reset`, if that is in the future.
    pub(super) reset_in: Option<Duration>,
    /// `Retry-After` (seconds or HTTP date), if present and in the future.
    pub(super) retry_after: Option<Duration>,
}

impl RateLimitHeaders {
    pub(super) fn parse(headers: &HeaderMap) -> Self {
        let text = |name| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::trim)
        };
        // Measure the reset against the server's own clock when it sends `Date`, so a skewed
        // local clock neither makes us hammer the API nor sleep for the whole cap.
        let server_now = text(DATE.as_str()).and_then(parse_date);
        RateLimitHeaders {
            remaining: text("x-ratelimit-remaining").and_then(|v| v.parse().ok()),
            reset_in: text("x-ratelimit-reset").and_then(|v| time_until(v, server_now)),
            retry_after: text(RETRY_AFTER.as_str()).and_then(|v| time_until(v, server_now)),
        }
    }
}

/// Parses an HTTP date; the API documents RFC 5322, which `httpdate` covers only in its
/// IMF-fixdate form (`… GMT`), so numeric zones (`+0000`) go through chrono.
fn parse_date(value: &str) -> Option<SystemTime> {
    httpdate::parse_http_date(value).ok().or_else(|| {
        chrono::DateTime::parse_from_rfc2822(value)
            .ok()
            .map(SystemTime::from)
    })
}

/// How long from now until the instant a reset/retry header names.
///
/// Accepts a date, or (leniently, as other APIs do) an integer: epoch milliseconds, epoch
/// seconds, or a number of seconds from now.
fn time_until(value: &str, server_now: Option<SystemTime>) -> Option<Duration> {
    let now = server_now.unwrap_or_else(SystemTime::now);
    if let Ok(n) = value.parse::<u64>() {
        let at = match n {
            n if n >= 100_000_000_000 => SystemTime::UNIX_EPOCH + Duration::from_millis(n),
            n if n >= 1_000_000_000 => SystemTime::UNIX_EPOCH + Duration::from_secs(n),
            n => return Some(Duration::from_secs(n)),
        };
        return at.duration_since(now).ok();
    }
    parse_date(value)?.duration_since(now).ok()
}

/// `msBeforeNext` from a 429 body's error entries, if any entry carries it.
pub(super) fn ms_before_next(body: &Value) -> Option<Duration> {
    body.get("errors")?
        .as_array()?
        .iter()
        .filter_map(|e| e.get("data")?.get("msBeforeNext")?.as_f64())
        .find(|ms| ms.is_finite() && *ms >= 0.0)
        .map(|ms| Duration::from_secs_f64(ms / 1000.0))
}

/// A shared "do not send before" instant, so that every task using the client pauses when the
/// API says the budget is spent, instead of each one discovering it with its own 429.
#[derive(Debug, Default)]
pub(super) struct Gate {
    until: Mutex<Option<Instant>>,
}

impl Gate {
    /// Holds requests back until `until` (keeps the later of this and any existing hold).
    pub(super) fn hold_until(&self, until: Instant) {
        let mut guard = self.until.lock().unwrap_or_else(|p| p.into_inner());
        if guard.is_none_or(|current| current < until) {
            *guard = Some(until);
        }
    }

    /// The instant requests must wait for, if it is still in the future.
    pub(super) fn pending(&self) -> Option<Instant> {
        let guard = self.until.lock().unwrap_or_else(|p| p.into_inner());
        guard.filter(|until| *until > Instant::now())
    }

    /// Waits until no hold is pending (a hold may be extended while we sleep).
    pub(super) async fn wait(&self, path: &str) {
        while let Some(until) = self.pending() {
            let wait = until.saturating_duration_since(Instant::now());
            let wait_ms = wait.as_millis() as u64;
            // Long pauses are worth an operator's attention: a poll seems stuck otherwise.
            if wait >= Duration::from_secs(5) {
                tracing::info!(
                    path,
                    wait_ms,
                    "pacing: waiting for the Segment rate-limit reset"
                );
            } else {
                tracing::debug!(
                    path,
                    wait_ms,
                    "pacing: waiting for the Segment rate-limit reset"
                );
            }
            tokio::time::sleep_until(until).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    fn headers(pairs: &[(&'static str, String)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (k, v) in pairs {
            map.insert(*k, HeaderValue::from_str(v).unwrap());
        }
        map
    }

    #[test]
    fn reset_is_measured_against_the_server_date() {
        let h = headers(&[
            ("date", "Tue, 31 Dec 2024 23:59:00 GMT".into()),
            ("x-ratelimit-reset", "Tue, 31 Dec 2024 23:59:59 GMT".into()),
            ("x-ratelimit-remaining", "0".into()),
        ]);
        let parsed = RateLimitHeaders::parse(&h);
        assert_eq!(parsed.remaining, Some(0));
        assert_eq!(parsed.reset_in, Some(Duration::from_secs(59)));
    }

    #[test]
    fn reset_accepts_numeric_zone_and_epoch_forms() {
        let h = headers(&[
            ("date", "Tue, 31 Dec 2024 23:59:00 GMT".into()),
            (
                "x-ratelimit-reset",
                "Tue, 31 Dec 2024 23:59:30 +0000".into(),
            ),
        ]);
        assert_eq!(
            RateLimitHeaders::parse(&h).reset_in,
            Some(Duration::from_secs(30))
        );

        let soon = SystemTime::now() + Duration::from_secs(100);
        let epoch = soon
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let reset = RateLimitHeaders::parse(&headers(&[("x-ratelimit-reset", epoch.to_string())]))
            .reset_in
            .unwrap();
        assert!(reset > Duration::from_secs(95) && reset <= Duration::from_secs(100));
    }

    #[test]
    fn past_or_garbage_reset_is_ignored() {
        let h = headers(&[
            ("x-ratelimit-reset", "Tue, 31 Dec 2024 23:59:59 GMT".into()),
            ("retry-after", "soon".into()),
        ]);
        assert_eq!(RateLimitHeaders::parse(&h), RateLimitHeaders::default());
    }

    #[test]
    fn retry_after_seconds() {
        let h = headers(&[("retry-after", "7".into())]);
        assert_eq!(
            RateLimitHeaders::parse(&h).retry_after,
            Some(Duration::from_secs(7))
        );
    }

    #[test]
    fn ms_before_next_from_docs_example() {
        let body: Value = serde_json::from_str(
            r#"{"errors":[{"type":"RequestError","message":"Too many requests","data":{"remainingPoints":0,"msBeforeNext":57647,"consumedPoints":21}}]}"#,
        )
        .unwrap();
        assert_eq!(ms_before_next(&body), Some(Duration::from_millis(57647)));
        assert_eq!(
            ms_before_next(&serde_json::json!({"errors":[{"type":"RateLimited"}]})),
            None
        );
    }
}
