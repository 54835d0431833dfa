//! Rate limits and pacing, and the retries of server errors, timeouts and connection faults.

use super::*;

#[tokio::test]
async fn rate_limit_waits_for_ms_before_next() {
    let server = serve(|n, _| {
        if n == 0 {
            Reply::json(
                429,
                json!({"errors": [{"type": "RequestError", "message": "Too many requests",
                    "data": {"remainingPoints": 0, "msBeforeNext": 300, "consumedPoints": 21}}]}),
            )
        } else {
            Reply::data(json!({"workspace": {"id": "w1"}}))
        }
    })
    .await;
    let client = client(&server.base);
    let started = Instant::now();
    client.get_object("/", "workspace").await.unwrap();
    assert!(started.elapsed() >= Duration::from_millis(300));
    let hits = server.hits();
    assert!(hits[1].at - hits[0].at >= Duration::from_millis(300));
    assert_eq!(
        client.stats(),
        ClientStats {
            requests: 2,
            retries: 1,
            rate_limited: 1
        }
    );
}

#[tokio::test]
async fn rate_limit_waits_until_reset_header() {
    let server = serve(|n, _| {
        if n == 0 {
            let now = SystemTime::now();
            Reply::json(
                429,
                json!({"errors": [{"type": "RateLimited", "message": "Rate limit exceeded"}]}),
            )
            .header("date", http_date(now))
            .header("x-ratelimit-remaining", "0")
            .header("x-ratelimit-reset", http_date(now + Duration::from_secs(1)))
        } else {
            Reply::data(json!({"workspace": {}}))
        }
    })
    .await;
    let client = client(&server.base);
    client.get_object("/", "workspace").await.unwrap();
    let hits = server.hits();
    let gap = hits[1].at - hits[0].at;
    assert!(gap >= Duration::from_millis(950), "{gap:?}");
    assert!(gap < Duration::from_secs(4), "{gap:?}");
    assert_eq!(client.stats().rate_limited, 1);
}

#[tokio::test]
async fn rate_limit_waits_are_capped_and_honour_retry_after() {
    let server = serve(|n, _| match n {
        0 => Reply::json(
            429,
            json!({"errors": [{"type": "RequestError",
            "data": {"msBeforeNext": 600_000}}]}),
        ),
        1 => Reply::raw(429, "").header("retry-after", "3600"),
        _ => Reply::data(json!({"workspace": {}})),
    })
    .await;
    let mut cfg = config(&server.base);
    cfg.max_rate_limit_wait = Duration::from_millis(200);
    let client = SegmentClient::new(cfg).unwrap();
    let started = Instant::now();
    client.get_object("/", "workspace").await.unwrap();
    let took = started.elapsed();
    assert!(took >= Duration::from_millis(400), "{took:?}");
    assert!(took < Duration::from_secs(3), "{took:?}");
    assert_eq!(client.stats().rate_limited, 2);
}

#[tokio::test]
async fn rate_limited_until_attempts_run_out() {
    let server = serve(|_, _| {
        Reply::json(
            429,
            json!({"errors": [{"type": "RateLimited", "message": "Rate limit exceeded",
            "data": {"msBeforeNext": 1}}]}),
        )
    })
    .await;
    let client = client(&server.base);
    let err = client.list_all("/sources", "sources").await.unwrap_err();
    assert!(
        matches!(
            err,
            SegmentError::RateLimited {
                times: 4,
                attempts: 4,
                ..
            }
        ),
        "{err:?}"
    );
    let msg = err.to_string();
    assert!(
        msg.contains("GET /sources")
            && msg.contains("rate limited (HTTP 429) 4 times in 4 attempts"),
        "{msg}"
    );
    assert!(msg.contains("Rate limit exceeded"), "{msg}");
    assert_eq!(server.count(), 4);
    assert_eq!(client.stats().rate_limited, 4);
    assert_eq!(client.stats().retries, 3);
}

#[tokio::test]
async fn remaining_zero_paces_other_tasks() {
    let server = serve(|n, _| {
        let now = SystemTime::now();
        let reply = Reply::data(json!({"workspace": {"n": n}}));
        if n == 0 {
            reply
                .header("date", http_date(now))
                .header("x-ratelimit-remaining", "0")
                .header("x-ratelimit-reset", http_date(now + Duration::from_secs(1)))
        } else {
            reply.header("x-ratelimit-remaining", "99")
        }
    })
    .await;
    let client = client(&server.base);
    client.get_object("/", "workspace").await.unwrap();
    // Another task sharing (a clone of) the client must wait for the reset.
    let other = client.clone();
    tokio::spawn(async move { other.get_object("/users/u1", "workspace").await })
        .await
        .unwrap()
        .unwrap();
    let hits = server.hits();
    let gap = hits[1].at - hits[0].at;
    assert!(gap >= Duration::from_millis(950), "{gap:?}");
    assert_eq!(client.stats().retries, 0);
    assert_eq!(client.stats().rate_limited, 0);
}

#[tokio::test]
async fn server_errors_are_retried() {
    let server = serve(|n, _| {
        if n < 2 {
            Reply::json(500, json!({"errors": [{"type": "InternalError"}]}))
        } else {
            Reply::data(json!({"workspace": {"id": "w1"}}))
        }
    })
    .await;
    let client = client(&server.base);
    let ws = client.get_object("/", "workspace").await.unwrap();
    assert_eq!(ws["id"], "w1");
    assert_eq!(
        client.stats(),
        ClientStats {
            requests: 3,
            retries: 2,
            rate_limited: 0
        }
    );
}

#[tokio::test]
async fn persistent_server_errors_stop_after_max_attempts() {
    let server = serve(|_, _| Reply::raw(503, "<html>upstream unavailable</html>")).await;
    let client = client(&server.base);
    let err = client.get_object("/roles", "roles").await.unwrap_err();
    assert_eq!(server.count(), 4);
    assert!(
        matches!(&err, SegmentError::RetriesExhausted { attempts: 4, .. }),
        "{err:?}"
    );
    let msg = err.to_string();
    assert!(msg.contains("GET /roles"), "{msg}");
    assert!(msg.contains("4 attempts"), "{msg}");
    assert!(
        msg.contains("HTTP 503") && msg.contains("upstream unavailable"),
        "{msg}"
    );
}

#[tokio::test]
async fn timeouts_are_retried() {
    let server = serve(|n, _| {
        let reply = Reply::data(json!({"workspace": {"id": "w1"}}));
        if n == 0 {
            reply.delay(Duration::from_secs(2))
        } else {
            reply
        }
    })
    .await;
    let mut cfg = config(&server.base);
    cfg.request_timeout = Duration::from_millis(200);
    let client = SegmentClient::new(cfg).unwrap();
    client.get_object("/", "workspace").await.unwrap();
    assert_eq!(server.count(), 2);
    assert_eq!(client.stats().retries, 1);

    let slow = serve(|_, _| Reply::data(json!({})).delay(Duration::from_secs(2))).await;
    let mut cfg = config(&slow.base);
    cfg.request_timeout = Duration::from_millis(100);
    cfg.max_attempts = 2;
    let client = SegmentClient::new(cfg).unwrap();
    let err = client.get_object("/", "workspace").await.unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("2 attempts") && msg.contains("timed out"),
        "{msg}"
    );
}

#[tokio::test]
async fn connection_resets_and_refusals_are_retried() {
    // A listener that accepts and immediately closes every connection.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let accepted = Arc::new(AtomicUsize::new(0));
    let counter = accepted.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            counter.fetch_add(1, Ordering::SeqCst);
            drop(stream);
        }
    });
    let client = client(&format!("http://{addr}"));
    let err = client.get_object("/", "workspace").await.unwrap_err();
    assert!(
        matches!(&err, SegmentError::RetriesExhausted { attempts: 4, .. }),
        "{err:?}"
    );
    assert_eq!(accepted.load(Ordering::SeqCst), 4);

    // Nothing listening at all.
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = closed.local_addr().unwrap();
    drop(closed);
    let client = SegmentClient::new(config(&format!("http://{addr}"))).unwrap();
    let err = client.get_object("/", "workspace").await.unwrap_err();
    assert!(
        matches!(&err, SegmentError::RetriesExhausted { attempts: 4, .. }),
        "{err:?}"
    );
    assert_eq!(client.stats().requests, 4);
    assert_no_token(&err.to_string());
}
