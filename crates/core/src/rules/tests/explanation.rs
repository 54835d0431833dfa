//! Explanations: what a firing condition read, shortened and previewed.

use super::*;

#[test]
fn explanation_reports_what_the_condition_read() {
    let rules = load(USER_RULES);
    let evaluator = Evaluator::new(&rules, now(), inventory([]));
    let body = user("eve@Evil.io", &["Workspace Owner"]);
    let verdicts = evaluator.check_resource(
        &subject(ResourceKind::User, "u1", "eve@Evil.io", &body),
        None,
    );
    let Outcome::Fire {
        summary,
        explanation,
    } = &verdicts[0].outcome
    else {
        panic!("{:?}", verdicts[0].outcome)
    };
    assert_eq!(summary, "eve@Evil.io is a Workspace Owner from Evil.io");
    assert_eq!(
        explanation,
        &json!({
            "condition": r#"has_role(resource, "Workspace Owner") && email_domain(resource.email) != "acme.io""#,
            "values": [
                {"expr": r#"has_role(resource, "Workspace Owner")"#, "value": true},
                {"expr": "email_domain(resource.email)", "value": "evil.io"},
                {"expr": "resource.email", "value": "eve@Evil.io"},
            ],
        })
    );

    // A change rule: values from before/after/change, and the changes.
    let before = json!({"id": "s1", "name": "web", "enabled": true});
    let after = json!({"id": "s1", "name": "web", "enabled": false});
    let fields = [field("enabled", Some(json!(true)), Some(json!(false)))];
    let change = ChangeFacts {
        op: ChangeOp::Modified,
        before: Some(&before),
        after: Some(&after),
        fields: &fields,
        attribution: &Default::default(),
    };
    let verdicts =
        evaluator.check_change(&subject(ResourceKind::Source, "s1", "web", &after), &change);
    let Outcome::Fire {
        summary,
        explanation,
    } = &verdicts[0].outcome
    else {
        panic!("{:?}", verdicts[0].outcome)
    };
    // The two-line template is collapsed to one line.
    assert_eq!(summary, "Source web was disabled");
    assert_eq!(
        explanation["values"],
        json!([
            {"expr": "changed(change, \"enabled\")", "value": true},
            {"expr": "after.enabled", "value": false},
        ])
    );
    assert_eq!(
        explanation["changes"],
        json!([{"path": "enabled", "old": true, "new": false}])
    );
}

#[test]
fn explanation_skips_comprehension_variables_and_shortens_long_values() {
    let when = r#"resource.permissions.exists(p, p.roleName == "Owner" && has_role(resource, p.roleName)) || size(resource.permissions) > 30 || id == "" || has(resource.phone)"#;
    let roles: Vec<String> = (0..40).map(|i| format!("Role number {i}")).collect();
    let role_refs: Vec<&str> = roles.iter().map(String::as_str).collect();
    let mut body = user("a@x.io", &role_refs);
    body["bio"] = json!("x".repeat(500));
    let rules = load(&compliance_rule(
        "user",
        &format!("{when} && resource.bio != \"\""),
    ));
    let evaluator = Evaluator::new(&rules, now(), inventory([]));
    let verdicts =
        evaluator.check_resource(&subject(ResourceKind::User, "u1", "a@x.io", &body), None);
    let Outcome::Fire { explanation, .. } = &verdicts[0].outcome else {
        panic!("{:?}", verdicts[0].outcome)
    };
    let values = explanation["values"].as_array().unwrap();
    let exprs: Vec<&str> = values.iter().map(|v| v["expr"].as_str().unwrap()).collect();
    // `p.roleName` and `has_role(resource, p.roleName)` read the loop variable: skipped.
    // `resource.permissions` is read twice: reported once.
    assert_eq!(
        exprs,
        [
            "resource.permissions",
            "id",
            "has(resource.phone)",
            "resource.bio"
        ]
    );
    let permissions = &values[0]["value"];
    assert!(
        permissions.to_string().chars().count() < 400,
        "{permissions}"
    );
    assert!(
        permissions
            .as_array()
            .unwrap()
            .last()
            .unwrap()
            .as_str()
            .unwrap()
            .ends_with("more"),
        "{permissions}"
    );
    let bio = values[3]["value"].as_str().unwrap();
    assert_eq!(bio.chars().count(), 201);
    assert!(bio.ends_with('…'));
}

#[test]
fn explanation_reports_errors_and_timestamps() {
    let rules = load(&compliance_rule(
        "user",
        r#"now - seen_since > duration("1h") || resource.missing == 1 || true"#,
    ));
    let evaluator = Evaluator::new(&rules, now(), inventory([]));
    let body = user("a@x.io", &[]);
    let verdicts =
        evaluator.check_resource(&subject(ResourceKind::User, "u", "a@x.io", &body), None);
    let Outcome::Fire { explanation, .. } = &verdicts[0].outcome else {
        panic!("{:?}", verdicts[0].outcome)
    };
    assert_eq!(
        explanation["values"],
        json!([
            {"expr": "seen_since", "value": "2026-06-01T00:00:00Z"},
            {"expr": "resource.missing", "error": "No such key: missing"},
        ])
    );
}

#[test]
fn explanation_previews_big_values_without_copying_them() {
    let users: Vec<Value> = (0..5000)
        .map(|i| {
            user(
                &format!("user{i:04}@x.io"),
                &["Workspace Owner", &format!("Role {i:04}")],
            )
        })
        .collect();
    let inv = inventory(users.iter().map(|u| (ResourceKind::User, u.clone())));
    let rules = load(&compliance_rule(
        "workspace",
        r#"size(inventory.role_holders["Workspace Owner"]) > 1 && size(inventory.role_holders) > 1"#,
    ));
    let evaluator = Evaluator::new(&rules, now(), inv);
    let ws = json!({"id": "w"});
    let verdicts = evaluator.check_resource(&subject(ResourceKind::Workspace, "w", "w", &ws), None);
    let Outcome::Fire { explanation, .. } = &verdicts[0].outcome else {
        panic!("{:?}", verdicts[0].outcome)
    };
    let values = &explanation["values"];
    // A literal index is part of the chain.
    assert_eq!(
        values[0]["expr"],
        r#"inventory.role_holders["Workspace Owner"]"#
    );
    let holders = values[0]["value"].as_array().unwrap();
    assert_eq!(holders[0], "user0000@x.io");
    assert!(
        holders.last().unwrap().as_str().unwrap().ends_with(" more"),
        "{holders:?}"
    );
    assert!(
        values[0]["value"].to_string().chars().count() <= 220,
        "{}",
        values[0]["value"]
    );
    // A big map keeps its first keys, in order.
    assert_eq!(values[1]["expr"], "inventory.role_holders");
    let map = values[1]["value"].as_object().unwrap();
    assert!(map.contains_key("Role 0000"), "{map:?}");
    assert_eq!(map["…"], format!("{} more", 5001 - (map.len() - 1)));
    assert!(
        values[1]["value"].to_string().chars().count() <= 240,
        "{}",
        values[1]["value"]
    );
}
