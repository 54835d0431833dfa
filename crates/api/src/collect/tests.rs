//! Item conversion, quarantine, repeated ids and path encoding, without a server.

use serde_json::json;

use super::items::{dedupe, to_resource};
use super::kinds::encode_segment;
use super::*;

#[test]
fn identities_and_names_by_kind() {
    let p = SecretPolicy::default();
    let user = to_resource(
        ResourceKind::User,
        "/users",
        0,
        json!({"id": "u1", "email": "a@x.io", "name": ""}),
        &p,
    )
    .unwrap();
    assert_eq!((user.id.as_str(), user.name.as_str()), ("u1", "a@x.io"));
    let invite = to_resource(ResourceKind::Invite, "/invites", 0, json!("b@x.io"), &p).unwrap();
    assert_eq!(
        (invite.id.as_str(), invite.body.as_str()),
        ("b@x.io", r#"{"email":"b@x.io"}"#)
    );
    let label = to_resource(
        ResourceKind::Label,
        "/labels",
        0,
        json!({"key": "environment", "value": "prod"}),
        &p,
    )
    .unwrap();
    assert_eq!(label.id, "environment:prod");
    let source = to_resource(
        ResourceKind::Source,
        "/sources",
        0,
        json!({"id": "s1", "slug": "web", "name": null, "writeKeys": ["clear"]}),
        &p,
    )
    .unwrap();
    assert_eq!(source.name, "web");
    assert!(!source.body.contains("clear"));
}

#[test]
fn items_without_identity_are_reported_with_their_position() {
    let err = to_resource(
        ResourceKind::User,
        "/users",
        7,
        json!({"email": "a@x.io"}),
        &SecretPolicy::default(),
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("item 7") && err.contains("/users") && err.contains("`id`"),
        "{err}"
    );
}

#[test]
fn repeated_ids_keep_the_last_copy() {
    let p = SecretPolicy::default();
    let r = |id: &str, n: i64| {
        to_resource(
            ResourceKind::Role,
            "/roles",
            0,
            json!({"id": id, "name": "r", "n": n}),
            &p,
        )
        .unwrap()
    };
    let (kept, repeated) = dedupe(ResourceKind::Role, vec![r("a", 1), r("b", 1), r("a", 2)]);
    assert_eq!(repeated.as_deref(), Some("a"));
    assert_eq!(kept.len(), 2);
    assert_eq!(kept[1].id, "a");
    assert!(kept[1].body.contains("\"n\":2"));
}

#[test]
fn unreadable_items_are_quarantined_and_make_the_kind_incomplete() {
    let p = SecretPolicy::default();
    let mut read = KindRead::default();
    read.convert(
        ResourceKind::User,
        "/users",
        json!({"id": "u1", "email": "a@x.io"}),
        &p,
    );
    read.convert(ResourceKind::User, "/users", json!({"email": "b@x.io"}), &p);
    read.convert(
        ResourceKind::User,
        "/users",
        json!({"id": "u3", "email": "c@x.io"}),
        &p,
    );
    read.convert(ResourceKind::User, "/users", json!(42), &p);
    read.convert(
        ResourceKind::User,
        "/users",
        json!({"id": "u5", "email": "e@x.io"}),
        &p,
    );
    assert_eq!(read.resources.len(), 3);
    let reasons: Vec<(usize, &str)> = read
        .quarantine
        .iter()
        .map(|q| (q.position, q.reason.as_str()))
        .collect();
    assert_eq!(
        reasons,
        [(1, "has no `id`"), (3, "expected an object, got a number")]
    );
    let mut c = Collection {
        workspace_id: "w".into(),
        resources: Vec::new(),
        kind_status: KindStatuses::new(),
        quarantine: Vec::new(),
        listed: BTreeMap::new(),
    };
    c.absorb(ResourceKind::User, read).unwrap();
    assert!(!c.is_complete(ResourceKind::User));
    assert_eq!(
        c.kind_status[&ResourceKind::User].to_string(),
        "incomplete: 2 of 5 items quarantined (first: has no `id`)"
    );
    assert_eq!(c.quarantine.len(), 2);
}

#[test]
fn most_of_a_listing_unreadable_is_a_new_api_shape() {
    let p = SecretPolicy::default();
    let mut read = KindRead::default();
    read.convert(ResourceKind::Source, "/sources", json!({"id": "s1"}), &p);
    for _ in 0..2 {
        read.convert(
            ResourceKind::Source,
            "/sources",
            json!({"sourceId": "s"}),
            &p,
        );
    }
    let mut c = Collection {
        workspace_id: "w".into(),
        resources: Vec::new(),
        kind_status: KindStatuses::new(),
        quarantine: Vec::new(),
        listed: BTreeMap::new(),
    };
    let err = c
        .absorb(ResourceKind::Source, read)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("2 of the 3 items from GET /sources could not be read")
            && err.contains("changed shape"),
        "{err}"
    );
}

#[test]
fn quarantined_items_are_redacted_and_bounded() {
    let p = SecretPolicy::default();
    let mut read = KindRead::default();
    let big = "x".repeat(segwatch_core::model::QUARANTINE_RAW_MAX + 10);
    read.convert(
        ResourceKind::Source,
        "/sources",
        json!({"name": "web", "writeKeys": ["clear-key"], "blob": big}),
        &p,
    );
    let q = &read.quarantine[0];
    assert!(!q.raw.contains("clear-key"), "write keys are fingerprinted");
    assert!(q.truncated && q.raw.len() <= segwatch_core::model::QUARANTINE_RAW_MAX);
}

#[test]
fn path_segments_are_encoded() {
    assert_eq!(encode_segment("abc_09-Z"), "abc_09-Z");
    // Dots too: `..` as a segment would be normalised away by URL parsing.
    assert_eq!(encode_segment("../x?y"), "%2E%2E%2Fx%3Fy");
}
