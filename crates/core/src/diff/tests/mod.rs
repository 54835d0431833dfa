//! Examples of field changes, paths, resource changes and their human output.

mod properties;

use super::*;
use crate::canonical::identity;
use serde_json::json;

fn change(path: &str, old: Option<Value>, new: Option<Value>) -> FieldChange {
    FieldChange {
        path: path.to_string(),
        old,
        new,
        api_drift: false,
    }
}

fn user() -> Value {
    json!({
        "id": "2Zx9",
        "name": "Alice",
        "email": "alice@acme.io",
        "permissions": [
            {"roleId": "r1", "roleName": "Source Admin", "resources": [
                {"id": "s1", "type": "SOURCE", "labels": [{"key": "environment", "value": "prod"}]},
                {"id": "s2", "type": "SOURCE"}
            ]},
            {"roleId": "r3", "roleName": "Read-only", "resources": [
                {"id": "ws1", "type": "WORKSPACE"}
            ]}
        ]
    })
}

fn source() -> Value {
    json!({
        "id": "src1",
        "slug": "ios_prod",
        "name": "iOS App (prod)",
        "workspaceId": "ws1",
        "enabled": true,
        "writeKeys": ["sha256:ab12", "sha256:cd34"],
        "metadata": {
            "id": "m1", "name": "iOS", "slug": "ios",
            "logos": {"default": "https://cdn/ios.svg"},
            "categories": ["Mobile", "Website"],
            "options": [{"name": "apiKey", "type": "string", "required": true}]
        },
        "settings": {"trackLifecycle": true},
        "labels": [{"key": "environment", "value": "prod"}, {"key": "team", "value": "mobile"}]
    })
}

#[test]
fn reordered_identity_arrays_are_no_change() {
    let a = user();
    let mut b = user();
    b["permissions"].as_array_mut().unwrap().reverse();
    b["permissions"][1]["resources"]
        .as_array_mut()
        .unwrap()
        .reverse();
    assert_ne!(a, b);
    assert_eq!(canonicalize(a.clone()), canonicalize(b.clone()));
    assert!(field_changes(&a, &b).is_empty());
    assert!(
        diff_resource(
            ResourceKind::User,
            "2Zx9",
            "alice@acme.io",
            Some(&a),
            Some(&b)
        )
        .is_none()
    );
}

#[test]
fn role_granted() {
    let a = user();
    let mut b = user();
    let granted = json!({"roleId": "r2", "roleName": "Workspace Owner", "resources": [{"id": "ws1", "type": "WORKSPACE"}]});
    b["permissions"]
        .as_array_mut()
        .unwrap()
        .insert(0, granted.clone());
    assert_eq!(
        field_changes(&a, &b),
        vec![change("permissions[roleId=r2]", None, Some(granted))]
    );
}

#[test]
fn first_role_granted_to_user_without_permissions() {
    let a = json!({"id": "u1", "permissions": []});
    let b = json!({"id": "u1", "permissions": [{"roleId": "r1", "roleName": "Owner"}]});
    assert_eq!(
        field_changes(&a, &b),
        vec![change(
            "permissions[roleId=r1]",
            None,
            Some(json!({"roleId": "r1", "roleName": "Owner"}))
        )]
    );
    // And the reverse: the last role revoked.
    assert_eq!(field_changes(&b, &a)[0].path, "permissions[roleId=r1]");
}

#[test]
fn resource_added_inside_permission() {
    let a = user();
    let mut b = user();
    b["permissions"][0]["resources"]
        .as_array_mut()
        .unwrap()
        .push(json!({"id": "s9", "type": "SOURCE"}));
    assert_eq!(
        field_changes(&a, &b),
        vec![change(
            "permissions[roleId=r1].resources[id=s9]",
            None,
            Some(json!({"id": "s9", "type": "SOURCE"}))
        )]
    );
}

#[test]
fn label_removed() {
    let a = source();
    let mut b = source();
    b["labels"].as_array_mut().unwrap().remove(0);
    assert_eq!(
        field_changes(&a, &b),
        vec![change(
            "labels[key=environment]",
            Some(json!({"key": "environment", "value": "prod"})),
            None
        )]
    );
}

#[test]
fn label_value_changed_deep_and_shallow() {
    let a = source();
    let mut b = source();
    b["labels"][0]["value"] = json!("staging");
    assert_eq!(
        field_changes(&a, &b),
        vec![change(
            "labels[key=environment].value",
            Some(json!("prod")),
            Some(json!("staging"))
        )]
    );

    let a = user();
    let mut b = user();
    b["permissions"][0]["resources"][0]["labels"][0]["value"] = json!("dev");
    b["permissions"][0]["roleName"] = json!("Workspace Owner");
    let paths: Vec<String> = field_changes(&a, &b).into_iter().map(|c| c.path).collect();
    assert_eq!(
        paths,
        [
            "permissions[roleId=r1].resources[id=s1].labels[key=environment].value",
            "permissions[roleId=r1].roleName",
        ]
    );
}

#[test]
fn source_disabled() {
    let a = source();
    let mut b = source();
    b["enabled"] = json!(false);
    assert_eq!(
        field_changes(&a, &b),
        vec![change("enabled", Some(json!(true)), Some(json!(false)))]
    );
}

#[test]
fn write_keys_rotated_is_a_whole_array_change() {
    let a = source();
    let mut b = source();
    b["writeKeys"] = json!(["sha256:cd34", "sha256:ef56"]);
    assert_eq!(
        field_changes(&a, &b),
        vec![change(
            "writeKeys",
            Some(json!(["sha256:ab12", "sha256:cd34"])),
            Some(json!(["sha256:cd34", "sha256:ef56"]))
        )]
    );
    // Order is data in unkeyed arrays.
    let mut c = source();
    c["metadata"]["categories"] = json!(["Website", "Mobile"]);
    assert_eq!(field_changes(&a, &c)[0].path, "metadata.categories");
}

#[test]
fn unknown_nested_fields() {
    let a = source();
    let mut b = source();
    b["metadata"]["logos"]["alt"] = json!("https://cdn/alt.svg");
    b["metadata"]["options"][0]["defaultValue"] = json!({"nested": [1, 2]});
    b["settings"]["newThing"] = json!({"deep": {"x": 1}});
    assert_eq!(
        field_changes(&a, &b),
        vec![
            change(
                "metadata.logos.alt",
                None,
                Some(json!("https://cdn/alt.svg"))
            ),
            // `options` elements have no identity: the array changes as a whole.
            change(
                "metadata.options",
                Some(a["metadata"]["options"].clone()),
                Some(b["metadata"]["options"].clone())
            ),
            change("settings.newThing", None, Some(json!({"deep": {"x": 1}}))),
        ]
    );
}

#[test]
fn keys_needing_quotes() {
    let a = json!({"settings": {"x.y": 1, "": 1, "a b": 1, "q\"": 1, "br[0]": 1, "ok-key_1": 1, "$": 1}, "$": 1});
    let b = json!({"settings": {"x.y": 2, "": 2, "a b": 2, "q\"": 2, "br[0]": 2, "ok-key_1": 2, "$": 2}, "$": 2});
    let paths: Vec<String> = field_changes(&a, &b).into_iter().map(|c| c.path).collect();
    assert_eq!(
        paths,
        [
            r#"["$"]"#,
            r#"settings.ok-key_1"#,
            r#"settings[""]"#,
            r#"settings["$"]"#,
            r#"settings["a b"]"#,
            r#"settings["br[0]"]"#,
            r#"settings["q\""]"#,
            r#"settings["x.y"]"#,
        ]
    );
}

#[test]
fn selector_values() {
    let a = json!({"members": [{"email": "a@x.com", "name": "A"}], "items": [{"id": 7, "v": 1}], "labels": [{"key": "a]b", "value": 1}, {"key": "", "value": 1}]});
    let b = json!({"members": [{"email": "a@x.com", "name": "B"}], "items": [{"id": 7, "v": 2}], "labels": [{"key": "a]b", "value": 2}, {"key": "", "value": 2}]});
    let paths: Vec<String> = field_changes(&a, &b).into_iter().map(|c| c.path).collect();
    assert_eq!(
        paths,
        [
            "items[id=7].v",
            r#"labels[key=""].value"#,
            r#"labels[key="a]b"].value"#,
            "members[email=a@x.com].name",
        ]
    );
}

#[test]
fn root_changes() {
    assert_eq!(
        field_changes(&json!({"a": 1}), &json!([1])),
        vec![change("$", Some(json!({"a": 1})), Some(json!([1])))]
    );
    assert_eq!(field_changes(&json!(1), &json!(2))[0].path, "$");
    assert_eq!(field_changes(&json!([1, 2]), &json!([2, 1]))[0].path, "$");
    assert_eq!(
        field_changes(&json!([{"id": "a", "x": 1}]), &json!([{"id": "a", "x": 2}]))[0].path,
        "[id=a].x"
    );
    assert!(field_changes(&json!(null), &json!(null)).is_empty());
}

#[test]
fn mixed_and_duplicate_identity_arrays_are_compared_whole() {
    let cases = [
        // Mixed identified and unidentified elements.
        (
            json!([{"id": "a"}, {"name": "n"}]),
            json!([{"id": "a"}, {"name": "m"}]),
        ),
        // Duplicate identities.
        (
            json!([{"id": "a", "v": 1}, {"id": "a", "v": 2}]),
            json!([{"id": "a", "v": 1}, {"id": "a", "v": 3}]),
        ),
        // Different identity fields on the two sides.
        (json!([{"id": "a"}]), json!([{"key": "a"}])),
        // Objects and scalars.
        (json!([{"id": "a"}, 1]), json!([{"id": "a"}, 2])),
    ];
    for (a, b) in cases {
        let got = field_changes(&json!({"arr": a}), &json!({"arr": b}));
        assert_eq!(got, vec![change("arr", Some(a), Some(b))]);
    }
    // Reordering a duplicate-identity array is a change (its order is kept as data).
    let a = json!([{"id": "a", "v": 1}, {"id": "a", "v": 2}]);
    let b = json!([{"id": "a", "v": 2}, {"id": "a", "v": 1}]);
    assert_eq!(field_changes(&a, &b).len(), 1);
    assert_ne!(canonicalize(a), canonicalize(b));
}

#[test]
fn reordering_inside_unkeyed_arrays_is_no_change() {
    // The inner keyed arrays differ only in order; the outer array has no identity.
    let a = json!({"options": [{"name": "x", "labels": [{"key": "a"}, {"key": "b"}]}]});
    let b = json!({"options": [{"name": "x", "labels": [{"key": "b"}, {"key": "a"}]}]});
    assert!(field_changes(&a, &b).is_empty());
}

#[test]
fn diff_resource_ops() {
    let s = source();
    assert!(diff_resource(ResourceKind::Source, "src1", "iOS App (prod)", None, None).is_none());
    assert!(
        diff_resource(
            ResourceKind::Source,
            "src1",
            "iOS App (prod)",
            Some(&s),
            Some(&s)
        )
        .is_none()
    );

    let added = diff_resource(
        ResourceKind::Source,
        "src1",
        "iOS App (prod)",
        None,
        Some(&s),
    )
    .unwrap();
    assert_eq!(added.op, ChangeOp::Added);
    assert!(added.fields.is_empty());
    assert!(
        added
            .text_diff
            .starts_with("--- /dev/null\n+++ after/source/src1\n")
    );
    assert!(added.text_diff.contains("+  \"enabled\": true,"));

    let removed = diff_resource(
        ResourceKind::Invite,
        "bob@x.com",
        "bob@x.com",
        Some(&json!({"email": "bob@x.com"})),
        None,
    )
    .unwrap();
    assert_eq!(removed.op, ChangeOp::Removed);
    assert!(removed.fields.is_empty());
    assert!(removed.text_diff.contains("-  \"email\": \"bob@x.com\""));

    let mut t = source();
    t["enabled"] = json!(false);
    let modified = diff_resource(
        ResourceKind::Source,
        "src1",
        "iOS App (prod)",
        Some(&s),
        Some(&t),
    )
    .unwrap();
    assert_eq!(modified.op, ChangeOp::Modified);
    assert_eq!(modified.fields.len(), 1);
    assert!(modified.text_diff.contains("before/source/src1"));
}

#[test]
fn text_diff_is_unified_with_labels_and_context() {
    let a = source();
    let mut b = source();
    b["name"] = json!("iOS App (production)");
    let d = text_diff(Some(&a), Some(&b), "old", "new");
    let lines: Vec<&str> = d.lines().collect();
    assert_eq!(lines[0], "--- old");
    assert_eq!(lines[1], "+++ new");
    assert!(lines[2].starts_with("@@ "));
    assert!(lines.contains(&"-  \"name\": \"iOS App (prod)\","));
    assert!(lines.contains(&"+  \"name\": \"iOS App (production)\","));
    // One hunk: 3 lines of context either side of the one changed line.
    assert_eq!(lines.len(), 3 + 3 + 2 + 3);
    assert!(!d.contains("No newline"));
    // Canonical: a reordering alone gives no text diff.
    let mut c = source();
    c["labels"].as_array_mut().unwrap().reverse();
    assert_eq!(text_diff(Some(&a), Some(&c), "old", "new"), "");
}

#[test]
fn display() {
    let a = user();
    let mut b = user();
    b["permissions"][0]["roleName"] = json!("Workspace Owner");
    let c = diff_resource(
        ResourceKind::User,
        "2Zx9",
        "alice@acme.io",
        Some(&a),
        Some(&b),
    )
    .unwrap();
    assert_eq!(
        c.to_string(),
        "~ user alice@acme.io (2Zx9)\n    permissions[roleId=r1].roleName: \"Source Admin\" → \"Workspace Owner\""
    );

    let s = source();
    let c = diff_resource(
        ResourceKind::Source,
        "src1",
        "iOS App (prod)",
        None,
        Some(&s),
    )
    .unwrap();
    assert_eq!(c.to_string(), "+ source iOS App (prod) (src1)");

    let inv = json!({"email": "bob@x.com"});
    let c = diff_resource(
        ResourceKind::Invite,
        "bob@x.com",
        "bob@x.com",
        Some(&inv),
        None,
    )
    .unwrap();
    assert_eq!(c.to_string(), "- invite bob@x.com");

    let mut t = source();
    t["labels"].as_array_mut().unwrap().remove(0);
    t["settings"]["blob"] = json!("x".repeat(200));
    let c = diff_resource(
        ResourceKind::Source,
        "src1",
        "evil\nname",
        Some(&s),
        Some(&t),
    )
    .unwrap();
    let text = c.to_string();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "~ source evil\\nname (src1)");
    assert_eq!(
        lines[1],
        "    labels[key=environment]: {\"key\":\"environment\",\"value\":\"prod\"} → (absent)"
    );
    let blob = lines[2]
        .strip_prefix("    settings.blob: (absent) → ")
        .unwrap();
    assert_eq!(blob.chars().count(), MAX_SHOWN_CHARS);
    assert!(blob.starts_with("\"xxx") && blob.ends_with("x…"));
}

#[test]
fn change_op_strings_and_serde() {
    for op in [ChangeOp::Added, ChangeOp::Removed, ChangeOp::Modified] {
        assert_eq!(op.as_str().parse::<ChangeOp>().unwrap(), op);
        assert_eq!(op.to_string(), op.as_str());
        assert_eq!(serde_json::to_value(op).unwrap(), json!(op.as_str()));
    }
    assert!("changed".parse::<ChangeOp>().is_err());

    let fc = change(
        "labels[key=environment]",
        None,
        Some(json!({"key": "environment"})),
    );
    let v = serde_json::to_value(&fc).unwrap();
    assert_eq!(
        v,
        json!({"path": "labels[key=environment]", "new": {"key": "environment"}})
    );
    assert_eq!(serde_json::from_value::<FieldChange>(v).unwrap(), fc);
    // A JSON null is a present value, distinct from an absent side.
    let fc = change("x", Some(json!(null)), None);
    let v = serde_json::to_value(&fc).unwrap();
    assert_eq!(v, json!({"path": "x", "old": null}));
    assert_eq!(serde_json::from_value::<FieldChange>(v).unwrap(), fc);
}
