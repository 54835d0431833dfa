//! What a receiver's HTTP answer means for a delivery, the same for every sender over HTTP:
//! 413 asks the outbox to split, 429 and 5xx are worth another try (after the receiver's
//! `Retry-After` when it sent one), any other failure is permanent.

use std::time::Duration;

use reqwest::StatusCode;
use reqwest::header::{HeaderMap, RETRY_AFTER};

use super::SendError;

/// The failure a non-success `status` stands for; `message` says it (never a secret).
pub(crate) fn refused(
    status: StatusCode,
    retry_after: Option<Duration>,
    message: String,
) -> SendError {
    if status == StatusCode::PAYLOAD_TOO_LARGE {
        SendError::TooLarge { message }
    } else if status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error() {
        SendError::Retryable {
            message,
            retry_after,
        }
    } else {
        SendError::Permanent { message }
    }
}

/// Sends `request` with `body` and reads the answer: `Ok` on 2xx, else the refusal quoting the
/// first 200 characters of the reply. `what` names the receiver in messages, never its URL
/// (a secret).
pub(crate) async fn post(
    request: reqwest::RequestBuilder,
    body: Vec<u8>,
    what: &str,
) -> Result<(), SendError> {
    let length = body.len();
    let response = request
        .body(body)
        .send()
        .await
        .map_err(|e| SendError::Retryable {
            message: format!("{what} request failed: {}", e.without_url()),
            retry_after: None,
        })?;
    let status = response.status();
    if status.is_success() {
        return Ok(());
    }
    let retry_after = retry_after(response.headers());
    let text: String = read_start(response).await.chars().take(200).collect();
    let message = format!("{what} answered HTTP {status}: {}", text.trim());
    let message = if status == StatusCode::PAYLOAD_TOO_LARGE {
        format!("{message} (body of {length} bytes)")
    } else {
        message
    };
    Err(refused(status, retry_after, message))
}

/// Most bytes of a refusal's body read to quote it: a receiver answering with an endless body
/// costs no more than this.
pub(crate) const ANSWER_BYTES: usize = 8 * 1024;

/// The start of a response's body (at most [`ANSWER_BYTES`]), as text; what cannot be read is
/// left out.
pub(crate) async fn read_start(mut response: reqwest::Response) -> String {
    let mut bytes = Vec::new();
    while let Ok(Some(chunk)) = response.chunk().await {
        bytes.extend_from_slice(&chunk);
        if bytes.len() >= ANSWER_BYTES {
            bytes.truncate(ANSWER_BYTES);
            break;
        }
    }
    String::from_utf8_lossy(&bytes).into_owned()
}

/// The wait a `Retry-After` header asks for: seconds, or an HTTP date.
pub(crate) fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    headers
        .get(RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(parse_retry_after)
}

/// `Retry-After`'s value as a wait: seconds, or an HTTP date (a date past is no wait).
pub(crate) fn parse_retry_after(value: &str) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let when = httpdate::parse_http_date(value).ok()?;
    Some(
        when.duration_since(std::time::SystemTime::now())
            .unwrap_or(Duration::ZERO),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_status_class_maps_to_its_outcome() {
        let wait = Some(Duration::from_secs(7));
        let m = || "m".to_owned();
        assert!(matches!(
            refused(StatusCode::PAYLOAD_TOO_LARGE, None, m()),
            SendError::TooLarge { .. }
        ));
        for status in [StatusCode::TOO_MANY_REQUESTS, StatusCode::BAD_GATEWAY] {
            assert!(matches!(
                refused(status, wait, m()),
                SendError::Retryable { retry_after, .. } if retry_after == wait
            ));
        }
        for status in [StatusCode::BAD_REQUEST, StatusCode::FORBIDDEN] {
            assert!(matches!(
                refused(status, wait, m()),
                SendError::Permanent { .. }
            ));
        }
        assert_eq!(parse_retry_after(" 30 "), Some(Duration::from_secs(30)));
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon"), None);
    }
}
