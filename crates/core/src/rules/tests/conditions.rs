//! The helper functions and CEL operators rules use, evaluated on small bodies, and the
//! function lists checked against the CEL environment.

use super::*;

#[test]
fn role_names_and_has_role() {
    let alice = user("alice@acme.io", &["Workspace Owner", "Source Admin"]);
    assert_all_true(
        ResourceKind::User,
        &alice,
        &[
            r#"role_names(resource) == ["Workspace Owner", "Source Admin"]"#,
            r#"has_role(resource, "Workspace Owner")"#,
            r#"!has_role(resource, "Workspace Billing Admin")"#,
            // Null, no `permissions`, `permissions: null`: no roles.
            "role_names(null) == []",
            r#"!has_role(null, "Workspace Owner")"#,
            r#"role_names({"id": "x"}) == []"#,
            r#"role_names({"permissions": null}) == []"#,
            // A permission without a role name is skipped.
            r#"role_names({"permissions": [{"roleId": "r1"}, {"roleName": "A"}]}) == ["A"]"#,
        ],
    );
    let err = on_user("role_names(resource.email) == []", &alice).unwrap_err();
    assert!(
        err.contains("role_names") && err.contains("expected a user or group"),
        "{err}"
    );
    let err = on_user(r#"has_role({"permissions": "x"}, "A")"#, &alice).unwrap_err();
    assert!(err.contains("`permissions` is a string"), "{err}");
}

#[test]
fn workspace_roles_only_counts_unrestricted_workspace_grants() {
    let body = json!({
        "email": "a@x.io",
        "permissions": [
            {"roleName": "Workspace Owner", "resources": [{"id": "w", "type": "WORKSPACE"}]},
            {"roleName": "Labelled", "resources": [{"id": "w", "type": "WORKSPACE", "labels": [{"key": "env", "value": "dev"}]}]},
            {"roleName": "Permission labels", "labels": [{"key": "env", "value": "dev"}], "resources": [{"id": "w", "type": "WORKSPACE"}]},
            {"roleName": "Empty labels", "labels": [], "resources": [{"id": "w", "type": "WORKSPACE", "labels": null}]},
            {"roleName": "Source Admin", "resources": [{"id": "s1", "type": "SOURCE"}]},
            {"roleName": "No resources"},
            {"roleName": "Workspace Owner", "resources": [{"id": "w", "type": "WORKSPACE"}]},
        ],
    });
    assert_all_true(
        ResourceKind::User,
        &body,
        &[
            r#"workspace_roles(resource) == ["Workspace Owner", "Empty labels"]"#,
            "workspace_roles(null) == []",
            r#"workspace_roles({"email": "x"}) == []"#,
        ],
    );
}

#[test]
fn labels() {
    let source = json!({
        "id": "s1", "name": "web", "enabled": true,
        "labels": [{"key": "environment", "value": "prod"}, {"key": "team"}],
    });
    assert_all_true(
        ResourceKind::Source,
        &source,
        &[
            r#"has_label(resource, "environment")"#,
            r#"!has_label(resource, "owner")"#,
            r#"label(resource, "environment") == "prod""#,
            r#"label(resource, "owner") == """#,
            // A label without a value reads as "".
            r#"has_label(resource, "team") && label(resource, "team") == """#,
            r#"!has_label(null, "environment") && label(null, "environment") == """#,
            r#"!has_label({"id": "s2"}, "environment")"#,
            r#"label({"labels": null}, "environment") == """#,
        ],
    );
}

#[test]
fn email_domain() {
    let body = user("Bob@Acme.IO", &[]);
    assert_all_true(
        ResourceKind::User,
        &body,
        &[
            r#"email_domain("a@Acme.io") == "acme.io""#,
            r#"email_domain(resource.email) == "acme.io""#,
            r#"email_domain(name) == "acme.io""#,
            r#"email_domain("a@b@Corp.example") == "corp.example""#,
            r#"email_domain("no-at-sign") == """#,
            r#"email_domain(null) == """#,
        ],
    );
    let err = on_user("email_domain(1) == \"\"", &body).unwrap_err();
    assert!(err.contains("expected a string or null"), "{err}");
}

#[test]
fn changed_matches_a_path_or_its_children() {
    let before = user("a@x.io", &[]);
    let after = user("a@x.io", &["Workspace Owner"]);
    let fields = [
        field("enabled", Some(json!(false)), Some(json!(true))),
        field(
            "permissions[roleId=r0]",
            None,
            Some(after["permissions"][0].clone()),
        ),
        field("settings[\"x.y\"]", Some(json!(1)), None),
    ];
    let change = ChangeFacts {
        op: ChangeOp::Modified,
        before: Some(&before),
        after: Some(&after),
        fields: &fields,
        attribution: &Default::default(),
    };
    for (when, expected) in [
        (r#"changed(change, "enabled")"#, true),
        (r#"changed(change, "permissions")"#, true),
        (r#"changed(change, "permissions[roleId=r0]")"#, true),
        (r#"changed(change, "settings")"#, true),
        // A prefix must end at a path boundary.
        (r#"changed(change, "perm")"#, false),
        (r#"changed(change, "enabledX")"#, false),
        (r#"changed(change, "name")"#, false),
        (r#"changed(null, "enabled")"#, false),
        (r#"changed({"op": "added"}, "enabled")"#, false),
        (
            r#"change.op == "modified" && change.paths.size() == 3"#,
            true,
        ),
        (
            r#"change.fields.exists(f, f.path == "enabled" && f.old == false && f.new == true)"#,
            true,
        ),
        (
            r#"change.fields.exists(f, f.path == "settings[\"x.y\"]" && f.new == null)"#,
            true,
        ),
        (
            r#"has_role(after, "Workspace Owner") && !has_role(before, "Workspace Owner")"#,
            true,
        ),
    ] {
        assert_eq!(eval_change(when, &change), Ok(expected), "{when}");
    }
}

#[test]
fn before_and_after_are_null_when_absent() {
    let body = user("a@x.io", &["Workspace Owner"]);
    let added = ChangeFacts {
        op: ChangeOp::Added,
        before: None,
        after: Some(&body),
        fields: &[],
        attribution: &Default::default(),
    };
    assert_eq!(
        eval_change(
            r#"before == null && has_role(after, "Workspace Owner") && change.paths == []"#,
            &added
        ),
        Ok(true)
    );
    let removed = ChangeFacts {
        op: ChangeOp::Removed,
        before: Some(&body),
        after: None,
        fields: &[],
        attribution: &Default::default(),
    };
    assert_eq!(
        eval_change(
            r#"after == null && resource == before && !has_role(after, "Workspace Owner")"#,
            &removed
        ),
        Ok(true)
    );
}

#[test]
fn common_cel_operators() {
    let alice = user("alice@acme.io", &["Workspace Owner", "Source Admin"]);
    assert_all_true(
        ResourceKind::User,
        &alice,
        &[
            r#"resource.email == "alice@acme.io" && name == "alice@acme.io""#,
            r#"resource.email != "bob@acme.io""#,
            r#"true && !false || false"#,
            r#""Source Admin" in role_names(resource)"#,
            r#""email" in resource && !("phone" in resource)"#,
            "size(resource.permissions) == 2 && resource.permissions.size() == 2",
            r#"resource.permissions.exists(p, p.roleName == "Workspace Owner")"#,
            r#"resource.permissions.all(p, p.resources.all(r, r.type == "WORKSPACE"))"#,
            r#"resource.permissions.exists_one(p, p.roleName.startsWith("Source"))"#,
            r#"resource.permissions.filter(p, p.roleName.endsWith("Admin")).size() == 1"#,
            r#"resource.permissions.map(p, p.roleId) == ["r0", "r1"]"#,
            r#"resource.email.startsWith("alice") && resource.email.endsWith("@acme.io")"#,
            r#"resource.email.matches("^[a-z]+@acme\\.io$")"#,
            r#"resource.email.contains("@")"#,
            "has(resource.email) && !has(resource.phone)",
            r#"(has(resource.phone) ? resource.phone : "none") == "none""#,
            r#"id == "id1""#,
        ],
    );
}

#[test]
fn timestamps_and_durations() {
    let body = user("a@x.io", &[]);
    // now = 2026-06-15T12:00:00Z, seen_since = 2026-06-01T00:00:00Z.
    assert_all_true(
        ResourceKind::User,
        &body,
        &[
            "now > seen_since",
            r#"now - seen_since > duration("347h")"#,
            r#"now - seen_since < duration("349h")"#,
            r#"seen_since + duration("24h") < now"#,
            r#"now == timestamp("2026-06-15T12:00:00Z")"#,
            r#"now.getFullYear() == 2026"#,
            r#"now - duration("720h") < seen_since"#,
        ],
    );
    // Unknown `seen_since` is null: arithmetic on it is an error, not a silent pass.
    let rules = load(&compliance_rule(
        "user",
        "now - seen_since > duration(\"1h\")",
    ));
    let evaluator = Evaluator::new(&rules, now(), inventory([]));
    let mut s = subject(ResourceKind::User, "u", "a@x.io", &body);
    s.seen_since = None;
    let verdicts = evaluator.check_resource(&s, None);
    assert!(
        matches!(&verdicts[0].outcome, Outcome::Error { message } if message.contains("Null")),
        "{:?}",
        verdicts[0].outcome
    );
}

#[test]
fn inventory_lists_role_holders_and_counts() {
    let roles = [
        json!({"id": "r1", "name": "Workspace Owner"}),
        json!({"id": "r2", "name": "Source Admin"}),
        json!({"id": "r3", "name": "Tracking Plan Admin"}),
    ];
    let users = [
        user("b@x.io", &["Workspace Owner"]),
        user("a@x.io", &["Workspace Owner", "Custom Role"]),
    ];
    let source = json!({"id": "s1"});
    let resources = roles
        .iter()
        .map(|r| (ResourceKind::Role, r.clone()))
        .chain(users.iter().map(|u| (ResourceKind::User, u.clone())))
        .chain([(ResourceKind::Source, source.clone())]);
    let inv = inventory(resources);
    assert_eq!(
        inv["role_holders"],
        json!({
            "Workspace Owner": ["a@x.io", "b@x.io"],
            "Source Admin": [],
            "Tracking Plan Admin": [],
            "Custom Role": ["a@x.io"],
        })
    );
    assert_eq!(
        inv["counts"],
        json!({"workspace": 0, "role": 3, "user": 2, "group": 0, "invite": 0, "source": 1, "label": 0,
               "destination": 0, "warehouse": 0, "function": 0, "tracking_plan": 0,
               "destination_filter": 0, "destination_subscription": 0, "source_schema_settings": 0,
               "transformation": 0, "reverse_etl_model": 0})
    );

    // A rule reading it.
    let rules = load(&compliance_rule(
        "workspace",
        r#"size(inventory.role_holders["Workspace Owner"]) > 1 && inventory.counts.user == 2"#,
    ));
    assert!(rules.rules()[0].is_time_dependent());
    let evaluator = Evaluator::new(&rules, now(), inv);
    let ws = json!({"id": "w", "slug": "acme", "name": "Acme"});
    let verdicts =
        evaluator.check_resource(&subject(ResourceKind::Workspace, "w", "Acme", &ws), None);
    assert!(
        matches!(verdicts[0].outcome, Outcome::Fire { .. }),
        "{:?}",
        verdicts[0].outcome
    );
}

#[test]
fn the_function_lists_match_the_cel_environment() {
    use cel::{Context, DeclarationError, Env};
    // A name that is declared cannot be added as a plain function: that is the probe.
    let mut stdlib = Context::with_env(Arc::new(Env::stdlib()));
    for name in CEL_STANDARD_FUNCTIONS {
        assert_eq!(
            stdlib.add_function(name, |a: i64| a),
            Err(DeclarationError::overload_conflict(name)),
            "{name} should be a standard function"
        );
    }
    let mut ours = Context::with_env(expr::environment());
    for name in HELPER_FUNCTIONS {
        assert!(
            stdlib.add_function(name, |a: i64| a).is_ok(),
            "{name} is not standard"
        );
        assert!(
            ours.add_function(name, |a: i64| a).is_err(),
            "{name} is declared"
        );
    }
}
