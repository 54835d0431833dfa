//! Following pages and cursors, and reading single objects.

use super::*;

#[tokio::test]
async fn follows_three_pages_with_bracket_params() {
    let server = serve(|_, hit| match hit.param("pagination[cursor]") {
        None => Reply::data(json!({
            "users": [{"id": "u1"}, {"id": "u2"}],
            "pagination": {"current": "MA==", "next": "Mg==", "totalEntries": 5}
        })),
        Some("Mg==") => Reply::data(json!({
            "users": [{"id": "u3"}, {"id": "u4"}],
            "pagination": {"current": "Mg==", "next": "NA==", "previous": "MA==", "totalEntries": 5}
        })),
        Some("NA==") => Reply::data(json!({
            "users": [{"id": "u5"}],
            "pagination": {"current": "NA==", "next": null, "previous": "Mg==", "totalEntries": 5}
        })),
        Some(other) => Reply::json(400, json!({"errors": [{"type": "Bad", "message": other}]})),
    })
    .await;
    let mut cfg = config(&server.base);
    cfg.page_size = 2;
    let client = SegmentClient::new(cfg).unwrap();

    let mut pages = client.pages_with_query(
        "/users",
        vec![("resourceType".to_owned(), "SOURCE".to_owned())],
        "users",
    );
    let mut ids = Vec::new();
    let mut sizes = Vec::new();
    while let Some(page) = pages.next_page().await.unwrap() {
        sizes.push(page.len());
        ids.extend(page.iter().map(|u| u["id"].as_str().unwrap().to_owned()));
    }
    assert_eq!(ids, ["u1", "u2", "u3", "u4", "u5"]);
    assert_eq!(sizes, [2, 2, 1]);
    assert_eq!(pages.total_entries(), Some(5));
    // Exhausted listings stay exhausted without further requests.
    assert!(pages.next_page().await.unwrap().is_none());

    let hits = server.hits();
    assert_eq!(hits.len(), 3);
    let cursors: Vec<_> = hits.iter().map(|h| h.param("pagination[cursor]")).collect();
    assert_eq!(cursors, [None, Some("Mg=="), Some("NA==")]);
    for hit in &hits {
        assert_eq!(hit.path, "/users");
        assert_eq!(hit.param("pagination[count]"), Some("2"));
        assert_eq!(hit.param("resourceType"), Some("SOURCE"));
        assert_eq!(
            hit.headers["authorization"],
            format!("Bearer {TOKEN}").as_str()
        );
        assert_eq!(hit.headers["accept"], "application/vnd.segment.v1+json");
        assert_eq!(
            hit.headers["user-agent"],
            concat!("segwatch/", env!("CARGO_PKG_VERSION"))
        );
    }
    assert_eq!(client.stats().requests, 3);
    assert_eq!(client.stats().retries, 0);

    // list_all gives the same items.
    let all = client.list_all("/users", "users").await.unwrap();
    assert_eq!(all.len(), 5);
}

#[tokio::test]
async fn unpaginated_list_is_one_page_and_values_are_untouched() {
    let labels = json!([
        {"key": "env", "value": "prod", "description": "Production", "futureField": {"nested": [1, 2.5, null]}},
        {"key": "team", "value": "data"}
    ]);
    let body = labels.clone();
    let server = serve(move |_, _| Reply::data(json!({"labels": body}))).await;
    let client = client(&server.base);
    let items = client.list_all("/labels", "labels").await.unwrap();
    assert_eq!(Value::Array(items), labels);
    assert_eq!(server.count(), 1);
}

#[tokio::test]
async fn get_object_returns_the_keyed_data() {
    let server = serve(|_, hit| {
        assert_eq!(hit.path, "/");
        assert!(hit.query.is_empty());
        Reply::data(
            json!({"workspace": {"id": "w1", "slug": "acme", "name": "Acme", "extra": true}}),
        )
    })
    .await;
    let client = client(&server.base);
    let ws = client.get_object("/", "workspace").await.unwrap();
    assert_eq!(
        ws,
        json!({"id": "w1", "slug": "acme", "name": "Acme", "extra": true})
    );
    let err = client.get_object("/", "nope").await.unwrap_err();
    assert!(matches!(err, SegmentError::Malformed { .. }), "{err}");
    assert!(err.to_string().contains("GET /: "), "{err}");
}

#[tokio::test]
async fn repeated_cursor_is_a_pagination_loop() {
    let server = serve(|_, _| {
        Reply::data(
            json!({"users": [{"id": "u"}], "pagination": {"current": "MA==", "next": "MQ=="}}),
        )
    })
    .await;
    let client = client(&server.base);
    let mut pages = client.pages("/users", "users");
    assert_eq!(pages.next_page().await.unwrap().unwrap().len(), 1);
    let err = pages.next_page().await.unwrap_err();
    assert!(
        matches!(&err, SegmentError::PaginationLoop { path, cursor, .. } if path == "/users" && cursor == "MQ=="),
        "{err:?}"
    );
    let msg = err.to_string();
    assert!(msg.contains("/users") && msg.contains("MQ=="), "{msg}");
    assert_eq!(server.count(), 2);
    // Sticky: no silent end, no more requests.
    assert!(matches!(
        pages.next_page().await,
        Err(SegmentError::PaginationLoop { .. })
    ));
    assert_eq!(server.count(), 2);
    let err = client.list_all("/users", "users").await.unwrap_err();
    assert!(matches!(err, SegmentError::PaginationLoop { .. }));
}

#[tokio::test]
async fn endless_new_cursors_hit_max_pages() {
    let server = serve(|n, _| {
        Reply::data(json!({"users": [], "pagination": {"current": "x", "next": format!("c{n}")}}))
    })
    .await;
    let mut cfg = config(&server.base);
    cfg.max_pages = 3;
    let client = SegmentClient::new(cfg).unwrap();
    let err = client.list_all("/users", "users").await.unwrap_err();
    assert!(
        matches!(&err, SegmentError::TooManyPages { path, max_pages: 3 } if path == "/users"),
        "{err:?}"
    );
    assert_eq!(server.count(), 3);
}
