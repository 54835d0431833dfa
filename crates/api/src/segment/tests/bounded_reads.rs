//! Bounded reads: the body size limit and the whole-exchange deadline.

use super::*;

/// A client whose bodies may have at most `limit` bytes.
fn limited_client(base: &str, limit: u64) -> SegmentClient {
    let mut config = config(base);
    config.max_response_bytes = limit;
    SegmentClient::new(config).unwrap()
}

#[tokio::test]
async fn a_body_announced_larger_than_the_limit_fails_unread_and_unretried() {
    let big = "x".repeat(5000);
    let server = serve(move |_, _| Reply::data(json!({ "workspace": { "name": big } }))).await;
    let err = limited_client(&server.base, 4096)
        .get_object("/", "workspace")
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            SegmentError::ResponseTooLarge { limit: 4096, declared: Some(n), .. } if n > 5000
        ),
        "{err:?}"
    );
    let message = err.to_string();
    assert!(
        message.starts_with("GET /: ")
            && message.contains("4 KiB (4096 bytes)")
            && message.contains("max_response_bytes"),
        "{message}"
    );
    assert_eq!(server.count(), 1, "the same endpoint would send the same");
    // Under the limit, the same answer is read.
    assert!(
        limited_client(&server.base, 8192)
            .get_object("/", "workspace")
            .await
            .is_ok()
    );
}

#[tokio::test]
async fn an_endless_body_is_cut_at_the_limit_and_not_retried() {
    let hits = Arc::new(AtomicUsize::new(0));
    let counted = hits.clone();
    let app = Router::new().fallback(move || {
        counted.fetch_add(1, Ordering::SeqCst);
        async { segwatch_simulator::endless_body() }
    });
    let base = listen(app).await;
    let limit = 1024 * 1024;
    let err = limited_client(&base, limit)
        .list_all("/users", "users")
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            SegmentError::ResponseTooLarge { ref path, limit: 1048576, declared: None, .. }
                if path == "/users"
        ),
        "{err:?}"
    );
    assert!(err.to_string().contains("1 MiB (1048576 bytes)"), "{err}");
    assert_eq!(hits.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_trickling_body_cannot_stretch_the_request_timeout() {
    // reqwest's `timeout` runs from connect to the body's last byte; this proves it for the
    // version in use. The body is valid and would take 20 s; the timeout is 1 s.
    let server =
        serve(|_, _| Reply::data(json!({ "workspace": { "name": "w".repeat(200) } }))).await;
    let app = Router::new().fallback(move || {
        let base = server.base.clone();
        async move {
            let upstream = reqwest::get(format!("{base}/")).await.unwrap();
            let body = axum::body::Body::from(upstream.bytes().await.unwrap());
            let response = Response::builder().status(200).body(body).unwrap();
            segwatch_simulator::trickle(response, 100).await
        }
    });
    let base = listen(app).await;
    let mut config = config(&base);
    config.request_timeout = Duration::from_secs(1);
    config.max_attempts = 2;
    let started = Instant::now();
    let err = SegmentClient::new(config)
        .unwrap()
        .get_object("/", "workspace")
        .await
        .unwrap_err();
    let elapsed = started.elapsed();
    assert!(
        matches!(&err, SegmentError::RetriesExhausted { attempts: 2, last, .. } if last.contains("timed out after 1s")),
        "{err:?}"
    );
    // Two attempts of 1 s and a short backoff; the trickle alone would take 20 s per attempt.
    assert!(elapsed < Duration::from_secs(6), "{elapsed:?}");
}
