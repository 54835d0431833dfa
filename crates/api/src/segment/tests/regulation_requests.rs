//! Creating and reading deletion regulations: which failures a `POST` may be retried after.

use super::*;

#[tokio::test]
async fn a_regulation_post_is_retried_after_429_but_not_after_a_server_error() {
    let server = serve(|n, _| match n {
        0 => Reply::json(429, json!({"errors": [{"type": "RateLimited"}]})),
        _ => Reply::data(json!({"regulateId": "reg-1"})),
    })
    .await;
    let first = client(&server.base);
    let id = first
        .create_regulation(RegulationType::DeleteOnly, &["u1".to_owned()])
        .await
        .unwrap();
    assert_eq!(id, "reg-1");
    assert_eq!(server.count(), 2);
    assert_eq!(server.hits()[1].path, "/regulations");

    // A 5xx may come after Segment acted: one attempt, and the error says why.
    let server = serve(|_, _| Reply::json(503, json!({"errors": [{"type": "Unavailable"}]}))).await;
    let second = client(&server.base);
    let err = second
        .create_regulation(RegulationType::DeleteOnly, &["u1".to_owned()])
        .await
        .unwrap_err();
    assert_eq!(server.count(), 1);
    assert!(err.to_string().contains("not sent again"), "{err}");

    // A timeout likewise.
    let server = serve(|_, _| Reply::data(json!({})).delay(Duration::from_secs(3))).await;
    let mut cfg = config(&server.base);
    cfg.request_timeout = Duration::from_millis(200);
    let third = SegmentClient::new(cfg).unwrap();
    let err = third
        .create_regulation(RegulationType::DeleteOnly, &["u1".to_owned()])
        .await
        .unwrap_err();
    assert_eq!(server.count(), 1);
    assert!(err.to_string().contains("not sent again"), "{err}");
}

#[tokio::test]
async fn a_regulation_post_is_retried_when_the_connection_was_refused() {
    // Nothing listens on the port: the request never left, so another attempt is safe.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    let client = client(&base);
    let err = client
        .create_regulation(RegulationType::DeleteOnly, &["u1".to_owned()])
        .await
        .unwrap_err();
    assert!(
        matches!(err, SegmentError::RetriesExhausted { attempts: 4, .. }),
        "{err:?}"
    );
}

#[tokio::test]
async fn a_regulation_is_read_with_its_destination_statuses() {
    let server = serve(|_, _| {
        Reply::data(json!({"regulation": {
            "id": "reg/1", "workspaceId": "w", "overallStatus": "RUNNING",
            "createdAt": "2026-01-01T00:00:00Z",
            "streamStatus": [{"id": "s1", "destinationStatus": [
                {"name": "Amplitude", "id": "d1", "status": "FINISHED", "errString": "", "finishedAt": "2026-01-01T00:01:00Z"}
            ]}]
        }}))
    })
    .await;
    let client = client(&server.base);
    let regulation = client.get_regulation("reg/1").await.unwrap();
    assert_eq!(server.hits()[0].path, "/regulations/reg%2F1");
    assert_eq!(regulation.overall_status, "RUNNING");
    assert!(!regulation.is_final());
    let destination = &regulation.stream_status[0].destination_status[0];
    assert_eq!(destination.name.as_deref(), Some("Amplitude"));
    assert_eq!(destination.status.as_deref(), Some("FINISHED"));
}
