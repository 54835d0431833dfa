//! The client itself: crossing tasks, keeping the token secret, bounding concurrency and
//! validating its configuration.

use super::*;

#[test]
fn client_and_futures_can_cross_tasks() {
    fn send_sync<T: Send + Sync>(_: &T) {}
    fn send<T: Send>(_: &T) {}
    let client = SegmentClient::new(ClientConfig::new(
        "https://api.segmentapis.com",
        SecretString::from(TOKEN),
    ))
    .unwrap();
    send_sync(&client);
    let mut pages = client.pages("/users", "users");
    send(&pages.next_page());
    send(&client.list_all("/users", "users"));
    send(&client.get_object("/", "workspace"));
}

#[tokio::test]
async fn token_never_appears_in_debug_or_errors() {
    // A hostile or buggy server that echoes the Authorization header back.
    let server = serve(|n, hit| {
        let auth = hit.headers["authorization"].to_str().unwrap().to_owned();
        match n % 3 {
            0 => Reply::json(
                401,
                json!({"errors": [{"type": "Unauthorized", "message": format!("bad {auth}"),
                    "data": {"echo": [auth]}}]}),
            ),
            1 => Reply::raw(404, &format!("no such thing for {auth}")),
            _ => Reply::raw(500, &format!("oops {auth}")),
        }
    })
    .await;
    let mut cfg = config(&server.base);
    cfg.max_attempts = 1;
    let client = SegmentClient::new(cfg.clone()).unwrap();
    assert_no_token(&format!("{client:?}"));
    assert_no_token(&format!("{cfg:?}"));

    let mut errors = Vec::new();
    for _ in 0..3 {
        errors.push(client.get_object("/", "workspace").await.unwrap_err());
    }
    let mut pages = client.pages("/users", "users");
    assert_no_token(&format!("{pages:?}"));
    errors.push(pages.next_page().await.unwrap_err());
    errors.push(
        SegmentClient::new(ClientConfig::new(
            "http://example.com",
            SecretString::from(TOKEN),
        ))
        .unwrap_err(),
    );
    errors.push(
        SegmentClient::new(ClientConfig::new(
            "https://api.segmentapis.com",
            SecretString::from(format!("{TOKEN}\u{7f}bad")),
        ))
        .unwrap_err(),
    );
    for err in &errors {
        assert_no_token(&err.to_string());
        assert_no_token(&format!("{err:?}"));
    }
    assert!(
        errors[0].to_string().contains("[REDACTED]"),
        "{}",
        errors[0]
    );
}

#[tokio::test]
async fn concurrency_limit_is_respected() {
    let in_flight = Arc::new(AtomicUsize::new(0));
    let max_seen = Arc::new(AtomicUsize::new(0));
    let (now, max) = (in_flight.clone(), max_seen.clone());
    let app = Router::new().fallback(move || {
        let (now, max) = (now.clone(), max.clone());
        async move {
            let current = now.fetch_add(1, Ordering::SeqCst) + 1;
            max.fetch_max(current, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(100)).await;
            now.fetch_sub(1, Ordering::SeqCst);
            Response::new(axum::body::Body::from(r#"{"data":{"user":{}}}"#))
        }
    });
    let base = listen(app).await;
    let mut cfg = config(&base);
    cfg.concurrency = 3;
    let client = SegmentClient::new(cfg).unwrap();
    let tasks: Vec<_> = (0..12)
        .map(|i| {
            let client = client.clone();
            tokio::spawn(async move { client.get_object(&format!("/users/u{i}"), "user").await })
        })
        .collect();
    for task in tasks {
        task.await.unwrap().unwrap();
    }
    assert_eq!(max_seen.load(Ordering::SeqCst), 3);
    assert_eq!(client.stats().requests, 12);
}

#[test]
fn config_is_validated() {
    let token = || SecretString::from(TOKEN);
    let ok = |url: &str| SegmentClient::new(ClientConfig::new(url, token())).is_ok();
    assert!(ok("https://api.segmentapis.com"));
    assert!(ok("https://eu1.api.segmentapis.com/"));
    assert!(ok("http://127.0.0.1:8080"));
    assert!(ok("http://localhost:8080"));
    assert!(ok("http://[::1]:8080"));
    assert!(!ok("http://api.segmentapis.com"));
    assert!(!ok("ftp://api.segmentapis.com"));
    assert!(!ok("https://user:pw@api.segmentapis.com"));
    assert!(!ok("not a url"));

    let with = |edit: fn(&mut ClientConfig)| {
        let mut cfg = ClientConfig::new("https://api.segmentapis.com", token());
        edit(&mut cfg);
        SegmentClient::new(cfg)
    };
    assert!(with(|c| c.page_size = 201).is_err());
    assert!(with(|c| c.page_size = 0).is_err());
    assert!(with(|c| c.concurrency = 0).is_err());
    assert!(with(|c| c.max_attempts = 0).is_err());
    assert!(with(|c| c.max_pages = 0).is_err());
    assert!(with(|c| c.token = SecretString::from("  \n")).is_err());
    assert!(with(|c| c.backoff_min = Duration::from_secs(60)).is_err());
}

#[tokio::test]
async fn token_is_trimmed_and_base_path_kept() {
    let server = serve(|_, hit| {
        assert_eq!(hit.path, "/prefix/users");
        Reply::data(json!({"users": []}))
    })
    .await;
    let mut cfg = config(&format!("{}/prefix/", server.base));
    cfg.token = SecretString::from(format!("  {TOKEN}\n"));
    let client = SegmentClient::new(cfg).unwrap();
    client.list_all("/users", "users").await.unwrap();
    assert_eq!(
        server.hits()[0].headers["authorization"],
        format!("Bearer {TOKEN}").as_str()
    );
}
