//! Reading an HTTP response body with a size limit.
//!
//! `reqwest::Response::bytes` buffers whatever the server sends: a body that never ends (a broken
//! proxy, a hostile endpoint) grows memory until the process dies. Both API clients read bodies
//! through [`read_limited`] instead, which stops as soon as the limit is passed.

use std::fmt;

/// The default most bytes one response body may have: 64 MiB, far above any real Segment page
/// (200 items) or Profile API page (100 records), far below what hurts a small host.
pub const DEFAULT_MAX_RESPONSE_BYTES: u64 = 64 * 1024 * 1024;

/// Why a body could not be read.
#[derive(Debug)]
pub(crate) enum BodyError {
    /// The transport failed while reading (connection cut, the request's timeout…).
    Http(reqwest::Error),
    /// The body is larger than the limit. `declared` is the `Content-Length` when that alone
    /// gave it away (nothing was read then).
    TooLarge { declared: Option<u64> },
}

/// Reads the whole body of `response`, failing once it passes `limit` bytes.
///
/// A `Content-Length` above the limit fails before any byte is read. Otherwise the body is read
/// chunk by chunk and at most `limit` bytes plus one chunk are ever held. The response is
/// dropped on failure, which closes the connection instead of draining an endless body.
pub(crate) async fn read_limited(
    mut response: reqwest::Response,
    limit: u64,
) -> Result<Vec<u8>, BodyError> {
    if let Some(declared) = response.content_length()
        && declared > limit
    {
        return Err(BodyError::TooLarge {
            declared: Some(declared),
        });
    }
    // Pre-size from an honest Content-Length; an absent one grows the buffer as chunks come.
    let capacity = response.content_length().unwrap_or(0) as usize;
    let mut body = Vec::with_capacity(capacity);
    while let Some(chunk) = response.chunk().await.map_err(BodyError::Http)? {
        if body.len() as u64 + chunk.len() as u64 > limit {
            return Err(BodyError::TooLarge { declared: None });
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// A byte count for messages: `64 MiB (67108864 bytes)`, or `1500 bytes` when not a round
/// number of KiB.
pub struct ByteSize(pub u64);

impl fmt::Display for ByteSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const KIB: u64 = 1024;
        const MIB: u64 = 1024 * 1024;
        let n = self.0;
        if n >= MIB && n.is_multiple_of(MIB) {
            write!(f, "{} MiB ({n} bytes)", n / MIB)
        } else if n >= KIB && n.is_multiple_of(KIB) {
            write!(f, "{} KiB ({n} bytes)", n / KIB)
        } else {
            write!(f, "{n} bytes")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_as_people_write_them() {
        assert_eq!(
            ByteSize(DEFAULT_MAX_RESPONSE_BYTES).to_string(),
            "64 MiB (67108864 bytes)"
        );
        assert_eq!(ByteSize(65536).to_string(), "64 KiB (65536 bytes)");
        assert_eq!(ByteSize(1500).to_string(), "1500 bytes");
    }
}
