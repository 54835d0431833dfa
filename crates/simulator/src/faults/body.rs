//! The answers of the body faults: a body that never ends and one that trickles.

use futures_util::StreamExt as _;

/// Filler an endless body repeats: looks like the start of a listing, so a client that parses
/// as it reads would not stop early either.
const ENDLESS_ITEM: &[u8] = br#"{"id":"endless","email":"endless@acme.io","permissions":[]},"#;

/// A 200 whose body never ends: `{"data":{"items":[` then `ENDLESS_ITEM` forever, in 64 KiB
/// chunks, without `Content-Length`. The stream stops when the client hangs up.
pub fn endless_body() -> axum::response::Response {
    use axum::body::{Body, Bytes};
    let chunk: Bytes = ENDLESS_ITEM
        .iter()
        .copied()
        .cycle()
        .take(64 * 1024 / ENDLESS_ITEM.len() * ENDLESS_ITEM.len())
        .collect::<Vec<u8>>()
        .into();
    let head = Bytes::from_static(br#"{"data":{"items":["#);
    let stream = futures_util::stream::iter(std::iter::once(head).chain(std::iter::repeat(chunk)))
        .map(Ok::<_, std::convert::Infallible>);
    axum::response::Response::builder()
        .status(200)
        .header(axum::http::header::CONTENT_TYPE, "application/json")
        .body(Body::from_stream(stream))
        .expect("a static response is valid")
}

/// `response` with its body sent one byte every `interval_ms`; status and headers (the true
/// `Content-Length` included) are kept.
pub async fn trickle(
    response: axum::response::Response,
    interval_ms: u64,
) -> axum::response::Response {
    use axum::body::{Body, Bytes};
    let (parts, body) = response.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, usize::MAX).await else {
        return axum::response::Response::from_parts(parts, Body::empty());
    };
    let interval = std::time::Duration::from_millis(interval_ms);
    let stream = futures_util::stream::unfold(0usize, move |at| {
        let bytes = bytes.clone();
        async move {
            if at >= bytes.len() {
                return None;
            }
            // The first byte waits too: the status line arrives at once, the body does not.
            tokio::time::sleep(interval).await;
            let one: Bytes = bytes.slice(at..at + 1);
            Some((Ok::<_, std::convert::Infallible>(one), at + 1))
        }
    });
    axum::response::Response::from_parts(parts, Body::from_stream(stream))
}
