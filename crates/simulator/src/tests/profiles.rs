//! The Profile API: cursors and its documented errors.

use super::*;

#[tokio::test]
async fn profile_api_pages_with_cursors_and_answers_documented_errors() {
    let sim = sim(SimConfig::default()).await;
    let user = sim.read(|s| s.users[0].clone());
    let summary = sim.profile(&user.id).unwrap();
    let http = reqwest::Client::new();
    let base = format!(
        "{}/v1/spaces/spa_sim/collections/users/profiles",
        sim.base_url()
    );
    let get = |url: String, secret: &'static str| {
        let http = http.clone();
        async move {
            let r = http
                .get(url)
                .basic_auth(secret, Some(""))
                .send()
                .await
                .unwrap();
            let status = r.status();
            (status, r.json::<Value>().await.unwrap())
        }
    };
    let secret = "sim-profiles-secret";

    // Default limit 10; the cursor leads through every event exactly once.
    let mut seen = HashSet::new();
    let mut url = format!("{base}/user_id:{}/events", user.id);
    let mut pages = 0;
    loop {
        let (status, body) = get(url.clone(), secret).await;
        assert_eq!(status, StatusCode::OK);
        pages += 1;
        for e in body["data"].as_array().unwrap() {
            assert!(seen.insert(e["message_id"].as_str().unwrap().to_owned()));
        }
        let cursor = &body["cursor"];
        assert_eq!(cursor["limit"], 10);
        if !cursor["has_more"].as_bool().unwrap() {
            assert_eq!(cursor["next"], "");
            break;
        }
        url = format!("{}{}", sim.base_url(), cursor["url"].as_str().unwrap());
    }
    assert_eq!(seen.len(), summary.events);
    assert_eq!(pages, summary.events.div_ceil(10));

    let (status, body) = get(format!("{base}/email:{}/metadata", user.email), secret).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["segment_id"], summary.segment_id.as_str());

    let (status, body) = get(format!("{base}/user_id:nobody/traits"), secret).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(
        body,
        json!({"error": {"code": "not_found", "message": "Profile was not found."}})
    );

    let (status, body) = get(format!("{base}/user_id:{}/traits", user.id), "wrong").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["error"]["code"], "authentication_error");

    let (status, body) = get(
        format!("{base}/user_id:{}/traits", user.id).replace("spa_sim", "spa_other"),
        secret,
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_ne!(body["error"]["message"], "Profile was not found.");

    let (status, body) = get(format!("{base}/user_id:{}/traits?limit=0", user.id), secret).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"]["code"], "validation_error");

    sim.inject(Fault::new(FaultKind::ServerError { status: 503 }).times(1));
    let (status, body) = get(format!("{base}/user_id:{}/traits", user.id), secret).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(body["error"]["code"].is_string());
}
