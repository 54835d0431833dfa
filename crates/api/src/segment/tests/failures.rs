//! What a refused, rejected or malformed answer reports.

use super::*;

#[tokio::test]
async fn unauthorized_fails_at_once_with_workspace_owner_hint() {
    for status in [401, 403] {
        let server = serve(move |_, _| {
            Reply::json(
                status,
                json!({"errors": [{"type": "Unauthorized", "message": "Invalid token"}]}),
            )
        })
        .await;
        let client = client(&server.base);
        let err = client.list_all("/users", "users").await.unwrap_err();
        assert_eq!(server.count(), 1);
        assert_eq!(err.status(), Some(status));
        let msg = err.to_string();
        assert!(msg.contains("Workspace Owner"), "{msg}");
        assert!(msg.contains("invalid or expired"), "{msg}");
        assert!(msg.contains(&format!("HTTP {status}")), "{msg}");
        assert!(msg.contains("GET /users"), "{msg}");
        assert!(msg.contains("Invalid token"), "{msg}");
        assert_eq!(client.stats().retries, 0);
    }
}

#[tokio::test]
async fn other_client_errors_show_type_and_message() {
    let server = serve(|_, hit| {
        if hit.path == "/users" {
            Reply::json(422, json!({"errors": [{"type": "ValidationFailure", "message": "pagination is required"}]}))
        } else {
            Reply::json(404, json!({"errors": [{"type": "NotFound", "message": "Resource not found"}]}))
        }
    })
    .await;
    let client = client(&server.base);
    let err = client.get_object("/users/u1", "user").await.unwrap_err();
    assert_eq!(
        err.to_string(),
        "GET /users/u1: HTTP 404 NotFound: Resource not found"
    );
    assert!(err.is_not_found());
    let err = client.list_all("/users", "users").await.unwrap_err();
    assert_eq!(
        err.to_string(),
        "GET /users: HTTP 422 ValidationFailure: pagination is required"
    );
    assert!(matches!(
        &err,
        SegmentError::Api { status: 422, server, .. } if server.errors[0].error_type == "ValidationFailure"
    ));
    assert_eq!(server.count(), 2);
}

#[tokio::test]
async fn malformed_bodies_are_reported_with_path_and_position() {
    let server = serve(|_, hit| match hit.path.as_str() {
        "/bad-json" => Reply::raw(200, "{\"data\": {\"users\": [1, 2,"),
        "/html" => Reply::raw(200, "<html>hello</html>"),
        "/no-data" => Reply::json(200, json!({"result": []})),
        "/not-array" => Reply::data(json!({"users": {"u1": {}}})),
        "/bad-next" => Reply::data(json!({"users": [], "pagination": {"current": "a", "next": 7}})),
        _ => Reply::data(json!({"something": []})),
    })
    .await;
    let client = client(&server.base);

    let err = client.list_all("/bad-json", "users").await.unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, SegmentError::Malformed { .. }), "{err:?}");
    assert!(
        msg.starts_with("GET /bad-json: malformed response"),
        "{msg}"
    );
    assert!(msg.contains("line 1 column"), "{msg}");
    // One retry (a proxy may have truncated it), then give up.
    assert_eq!(server.count(), 2);

    let msg = client
        .get_object("/html", "x")
        .await
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("GET /html") && msg.contains("not valid JSON"),
        "{msg}"
    );

    let msg = client
        .get_object("/no-data", "x")
        .await
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("GET /no-data") && msg.contains("no `data`"),
        "{msg}"
    );

    let msg = client
        .list_all("/not-array", "users")
        .await
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("GET /not-array") && msg.contains("`data.users` is an object"),
        "{msg}"
    );

    let msg = client
        .list_all("/missing", "users")
        .await
        .unwrap_err()
        .to_string();
    assert!(msg.contains("`data.users` is missing"), "{msg}");

    let msg = client
        .list_all("/bad-next", "users")
        .await
        .unwrap_err()
        .to_string();
    assert!(msg.contains("`data.pagination.next` is a number"), "{msg}");
}

#[tokio::test]
async fn a_lone_surrogate_in_one_name_is_replaced_not_fatal() {
    // One source name carries an unpaired high surrogate; its neighbour a valid pair and an
    // escaped backslash followed by `ud800`, which is text.
    let server = serve(|_, _| {
        Reply::raw(
            200,
            r#"{"data":{"sources":[{"id":"s1","name":"Bad \ud800 name"},{"id":"s2","name":"\ud83d\ude00 \\ud800"}]}}"#,
        )
    })
    .await;
    let sources = client(&server.base)
        .list_all("/sources", "sources")
        .await
        .unwrap();
    assert_eq!(
        Value::Array(sources),
        json!([
            {"id": "s1", "name": "Bad \u{fffd} name"},
            {"id": "s2", "name": "\u{1f600} \\ud800"},
        ])
    );
}
