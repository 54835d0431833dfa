//! Evaluating loaded rules: outcomes, exceptions, change filters, summaries, time dependence,
//! workspace rule selection, attribution, audit events and related resources.

use super::*;

fn outcomes<'r>(verdicts: &[Verdict<'r>]) -> Vec<(&'r str, &'static str)> {
    verdicts
        .iter()
        .map(|v| {
            let kind = match v.outcome {
                Outcome::Pass => "pass",
                Outcome::Fire { .. } => "fire",
                Outcome::Exempt { .. } => "exempt",
                Outcome::Error { .. } => "error",
            };
            (v.rule.id.as_str(), kind)
        })
        .collect()
}

#[test]
fn compliance_outcomes_fire_pass_exempt_and_error() {
    let rules = load(USER_RULES);
    let evaluator = Evaluator::new(&rules, now(), inventory([]));
    let check = |email: &str, roles: &[&str]| {
        let body = user(email, roles);
        let id = format!("u-{email}");
        let verdicts =
            evaluator.check_resource(&subject(ResourceKind::User, &id, email, &body), None);
        (
            outcomes(&verdicts),
            verdicts.into_iter().map(|v| v.outcome).collect::<Vec<_>>(),
        )
    };

    let (kinds, all) = check("eve@evil.io", &["Workspace Owner"]);
    // Compliance rules only, enabled only, in load order.
    assert_eq!(
        kinds,
        [
            ("external-owner", "fire"),
            ("phone-required", "error"),
            ("not-a-bool", "error")
        ]
    );
    let Outcome::Error { message } = &all[1] else {
        panic!()
    };
    assert_eq!(
        message,
        "No such key: phone: the field `phone` is absent here; test fields that may be absent \
         with has(), e.g. `has(x.phone) && …`"
    );
    let Outcome::Error { message } = &all[2] else {
        panic!()
    };
    assert_eq!(
        message,
        "the condition must be true or false, but it gave a string \"eve@evil.io\""
    );

    assert_eq!(
        check("bob@acme.io", &["Workspace Owner"]).0[0],
        ("external-owner", "pass")
    );
    assert_eq!(check("eve@evil.io", &[]).0[0], ("external-owner", "pass"));

    // By id; by glob, case-insensitively; an expired exception no longer applies; one that
    // expires today still does.
    let (_, all) = check("contractor@partner.io", &["Workspace Owner"]);
    assert_eq!(
        all[0],
        Outcome::Exempt {
            reason: "Contractor under contract until 2027".into()
        }
    );
    let (_, all) = check("breakglass-1@other.io", &["Workspace Owner"]);
    assert_eq!(
        all[0],
        Outcome::Exempt {
            reason: "Break-glass accounts".into()
        }
    );
    assert_eq!(
        check("old-admin@other.io", &["Workspace Owner"]).0[0],
        ("external-owner", "fire")
    );
    assert_eq!(
        check("today-admin@other.io", &["Workspace Owner"]).0[0],
        ("external-owner", "exempt")
    );

    // `only` restricts the rules.
    let body = user("eve@evil.io", &["Workspace Owner"]);
    let verdicts = evaluator.check_resource(
        &subject(ResourceKind::User, "u", "eve@evil.io", &body),
        Some(&["not-a-bool"]),
    );
    assert_eq!(outcomes(&verdicts), [("not-a-bool", "error")]);
    // No rules for this kind: nothing to do.
    let group = json!({"id": "g"});
    assert!(
        evaluator
            .check_resource(&subject(ResourceKind::Group, "g", "g", &group), None)
            .is_empty()
    );
}

#[test]
fn expired_exceptions_are_listed() {
    let rules = load(USER_RULES);
    let expired: Vec<(&str, &str)> = rules
        .expired_exceptions(now())
        .into_iter()
        .map(|(r, e)| (r.id.as_str(), e.reason.as_str()))
        .collect();
    assert_eq!(expired, [("external-owner", "Expired exemption")]);
    let tomorrow = "2026-06-16T00:00:00Z".parse().unwrap();
    assert_eq!(rules.expired_exceptions(tomorrow).len(), 2);
    let last_moment = "2026-06-15T23:59:59Z".parse().unwrap();
    assert_eq!(rules.expired_exceptions(last_moment).len(), 1);
}

#[test]
fn change_rules_are_filtered_by_op() {
    let rules = load(USER_RULES);
    let evaluator = Evaluator::new(&rules, now(), inventory([]));
    let before = user("a@acme.io", &[]);
    let after = user("a@acme.io", &["Workspace Owner"]);
    let s = subject(ResourceKind::User, "u1", "a@acme.io", &after);
    let fields = [field(
        "permissions[roleId=r0]",
        None,
        Some(after["permissions"][0].clone()),
    )];
    let modified = ChangeFacts {
        op: ChangeOp::Modified,
        before: Some(&before),
        after: Some(&after),
        fields: &fields,
        attribution: &Default::default(),
    };
    assert_eq!(
        outcomes(&evaluator.check_change(&s, &modified)),
        [("owner-granted", "fire")]
    );
    let removed = ChangeFacts {
        op: ChangeOp::Removed,
        before: Some(&after),
        after: None,
        fields: &[],
        attribution: &Default::default(),
    };
    let s_removed = subject(ResourceKind::User, "u1", "a@acme.io", &after);
    assert_eq!(
        outcomes(&evaluator.check_change(&s_removed, &removed)),
        [("user-removed", "fire")]
    );
    let unchanged_role = ChangeFacts {
        before: Some(&after),
        ..modified
    };
    assert_eq!(
        outcomes(&evaluator.check_change(&s, &unchanged_role)),
        [("owner-granted", "pass")]
    );
}

#[test]
fn summary_falls_back_to_title_and_name() {
    let yaml = compliance_rule("user", "true")
        + "  message: \"{{ resource.missing.deeper }}\"\n"
        + &compliance_rule("user", "true").replace("id: r", "id: no-message")
        + &compliance_rule("user", "true").replace("id: r", "id: empty")
        + "  message: \"{% if false %}x{% endif %}\"\n";
    let rules = load(&yaml);
    let evaluator = Evaluator::new(&rules, now(), inventory([]));
    let body = user("a@x.io", &[]);
    let verdicts =
        evaluator.check_resource(&subject(ResourceKind::User, "u", "a@x.io", &body), None);
    let summaries: Vec<&str> = verdicts
        .iter()
        .map(|v| match &v.outcome {
            Outcome::Fire { summary, .. } => summary.as_str(),
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(summaries, ["T: a@x.io", "T: a@x.io", "T: a@x.io"]);
}

#[test]
fn summary_template_sees_rule_kind_and_change() {
    let rules = load(&change_rule(
        "true",
        "  message: \"[{{ rule.severity }}] {{ rule.title }} ({{ rule.id }}): {{ kind }} {{ id }} \
         {{ change.op }} {{ change.paths | join(',') }} {{ before.email if before else 'new' }}\"\n",
    ));
    let evaluator = Evaluator::new(&rules, now(), inventory([]));
    let after = user("a@x.io", &[]);
    let fields = [field("name", None, Some(json!("a")))];
    let change = ChangeFacts {
        op: ChangeOp::Added,
        before: None,
        after: Some(&after),
        fields: &fields,
        attribution: &Default::default(),
    };
    let verdicts = evaluator.check_change(
        &subject(ResourceKind::User, "u1", "a@x.io", &after),
        &change,
    );
    let Outcome::Fire { summary, .. } = &verdicts[0].outcome else {
        panic!("{:?}", verdicts[0].outcome)
    };
    assert_eq!(summary, "[high] Changed (c): user u1 added name new");
}

#[test]
fn compliance_templates_cannot_use_change_variables() {
    let errors =
        load_errors(&(compliance_rule("user", "true") + "  message: \"{{ after.email }}\"\n"));
    assert_eq!(
        errors[0].message,
        "the message template uses `after`, which only change rules have; use `resource`"
    );
}

#[test]
fn time_dependence() {
    let dependent =
        |when: &str| load(&compliance_rule("user", when)).rules()[0].is_time_dependent();
    assert!(dependent("now > timestamp(\"2020-01-01T00:00:00Z\")"));
    assert!(dependent("now - seen_since > duration(\"1h\")"));
    assert!(dependent("size(inventory.role_holders) > 0"));
    assert!(!dependent("resource.email != \"\""));
    // A loop variable that happens to be called `now` is not the clock.
    assert!(!dependent(
        "resource.permissions.exists(now, now.roleName == \"x\")"
    ));
}

#[test]
fn rule_sets_can_be_shared_between_threads() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<RuleSet>();
    assert_send_sync::<Rule>();
}

/// Measures evaluation speed; run by hand:
/// `cargo test --release --lib rules::tests::evaluation::measure -- --ignored --nocapture`.
#[test]
#[ignore = "a measurement, run by hand in release mode"]
fn measure_ten_user_rules_over_100k_users() {
    let yaml = r#"
- {id: owner-external, title: T, description: D, remediation: R, severity: high, resource: user, kind: compliance,
   when: 'has_role(resource, "Workspace Owner") && email_domain(resource.email) != "acme.io"'}
- {id: too-many-roles, title: T, description: D, remediation: R, severity: low, resource: user, kind: compliance,
   when: 'size(role_names(resource)) > 3'}
- {id: ws-billing, title: T, description: D, remediation: R, severity: low, resource: user, kind: compliance,
   when: '"Workspace Billing Admin" in workspace_roles(resource)'}
- {id: no-perms, title: T, description: D, remediation: R, severity: info, resource: user, kind: compliance,
   when: 'size(resource.permissions) == 0'}
- {id: gmail, title: T, description: D, remediation: R, severity: medium, resource: user, kind: compliance,
   when: 'resource.email.endsWith("@gmail.com")'}
- {id: source-admin-everywhere, title: T, description: D, remediation: R, severity: medium, resource: user, kind: compliance,
   when: 'resource.permissions.exists(p, p.roleName == "Source Admin" && p.resources.exists(r, r.type == "WORKSPACE"))'}
- {id: domain-not-allowed, title: T, description: D, remediation: R, severity: medium, resource: user, kind: compliance,
   when: '!(email_domain(name) in ["acme.io", "acme.com"])'}
- {id: stale, title: T, description: D, remediation: R, severity: low, resource: user, kind: compliance,
   when: 'now - seen_since > duration("2160h") && has_role(resource, "Workspace Owner")'}
- {id: name-mismatch, title: T, description: D, remediation: R, severity: info, resource: user, kind: compliance,
   when: 'has(resource.name) && resource.name == ""'}
- {id: owners-many, title: T, description: D, remediation: R, severity: low, resource: user, kind: compliance,
   when: 'size(inventory.role_holders["Workspace Owner"]) > 5 && has_role(resource, "Workspace Owner")'}
"#;
    let rules = load(yaml);
    assert_eq!(rules.rules().len(), 10);
    let roles = [
        "Workspace Owner",
        "Minimal Workspace Access",
        "Source Admin",
        "Source Read-only",
        "Workspace Billing Admin",
    ];
    let users: Vec<Value> = (0..100_000)
        .map(|i| {
            let domain = ["acme.io", "acme.com", "partner.io", "gmail.com"][i % 4];
            let held: Vec<&str> = (0..=(i % 3))
                .map(|j| roles[(i + j * 2) % roles.len()])
                .collect();
            user(&format!("user{i}@{domain}"), &held)
        })
        .collect();
    let ids: Vec<String> = users
        .iter()
        .map(|u| u["id"].as_str().unwrap().to_string())
        .collect();

    let started = std::time::Instant::now();
    let inv = inventory(users.iter().map(|u| (ResourceKind::User, u.clone())));
    let inventory_time = started.elapsed();

    let started = std::time::Instant::now();
    let evaluator = Evaluator::new(&rules, now(), inv);
    let new_time = started.elapsed();

    let started = std::time::Instant::now();
    let mut counts: std::collections::BTreeMap<&str, usize> = Default::default();
    for (body, id) in users.iter().zip(&ids) {
        let email = body["email"].as_str().unwrap();
        for verdict in evaluator.check_resource(&subject(ResourceKind::User, id, email, body), None)
        {
            let kind = match verdict.outcome {
                Outcome::Pass => "pass",
                Outcome::Fire { .. } => "fire",
                Outcome::Exempt { .. } => "exempt",
                Outcome::Error { .. } => "error",
            };
            *counts.entry(kind).or_default() += 1;
        }
    }
    let eval_time = started.elapsed();
    let evaluations = users.len() * rules.rules().len();
    println!(
        "inventory of 100k users: {inventory_time:?}; Evaluator::new: {new_time:?}\n\
         {evaluations} evaluations (10 rules × 100k users): {eval_time:?} = {:.2} µs per user, \
         {:.2} µs per rule evaluation; outcomes {counts:?}",
        eval_time.as_secs_f64() * 1e6 / users.len() as f64,
        eval_time.as_secs_f64() * 1e6 / evaluations as f64,
    );
}

#[test]
fn a_workspace_selects_rules_by_id_glob_and_typos_are_reported() {
    let pack = starter::starter_pack().unwrap();
    let (selected, unmatched) = pack
        .select(&[
            "source-*".to_string(),
            "too-many-*".to_string(),
            "sorce-*".to_string(),
        ])
        .unwrap();
    assert_eq!(unmatched, ["sorce-*"]);
    assert!(!selected.rules().is_empty());
    assert!(
        selected
            .rules()
            .iter()
            .all(|r| r.id.starts_with("source-") || r.id == "too-many-workspace-owners")
    );
    assert!(selected.get("too-many-workspace-owners").is_some());
    assert!(selected.get("workspace-owner-granted").is_none());
    assert!(pack.select(&["[".to_string()]).is_err());
}

#[test]
fn change_rules_read_who_made_the_change() {
    let before = user("a@x.io", &[]);
    let after = user("a@x.io", &["Workspace Owner"]);
    let who = crate::model::Attribution {
        actor: Some("u9".into()),
        actor_email: Some("boss@x.io".into()),
        event_type: Some("User Policy Updated".into()),
        event_id: Some("events/7".into()),
    };
    let known = ChangeFacts {
        op: ChangeOp::Modified,
        before: Some(&before),
        after: Some(&after),
        fields: &[],
        attribution: &who,
    };
    let unknown = ChangeFacts {
        attribution: &Default::default(),
        ..known
    };
    for (when, with_actor, without) in [
        (r#"change.actor == "u9""#, true, false),
        (r#"change.actor_email == "boss@x.io""#, true, false),
        (r#"change.event_type == "User Policy Updated""#, true, false),
        ("change.actor == null", false, true),
    ] {
        assert_eq!(eval_change(when, &known), Ok(with_actor), "{when}");
        assert_eq!(eval_change(when, &unknown), Ok(without), "{when}");
    }
    let rules = load(&change_rule(
        "true",
        "  message: \"{{ name }} by {{ change.actor_email or 'someone unknown' }} ({{ change.event_type }})\"\n",
    ));
    let evaluator = Evaluator::new(&rules, now(), inventory([]));
    let verdicts =
        evaluator.check_change(&subject(ResourceKind::User, "u1", "a@x.io", &after), &known);
    match &verdicts[0].outcome {
        Outcome::Fire { summary, .. } => {
            assert_eq!(summary, "a@x.io by boss@x.io (User Policy Updated)")
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn access_rules_are_change_rules_on_grants_gained_or_lost() {
    let rule = |kind_and_on: &str| {
        format!(
            "- id: a\n  title: T\n  description: D\n  remediation: R\n  severity: high\n  \
             resource: access\n{kind_and_on}  when: 'resource.role.level == \"edit\"'\n"
        )
    };
    for good in [
        "  kind: change\n  on: [added]\n",
        "  kind: change\n  on: [removed]\n",
        "  kind: change\n  on: [added, removed]\n",
    ] {
        assert_eq!(load(&rule(good)).rules()[0].resource, ResourceKind::Access);
    }
    for bad in [
        "  kind: compliance\n",
        "  kind: change\n  on: [added, modified]\n",
    ] {
        let errors = load_errors(&rule(bad));
        assert!(
            errors.iter().any(|e| e
                .message
                .contains("access changes are grants gained or lost")),
            "{bad}: {errors:?}"
        );
    }
}

#[test]
fn audit_event_rules_are_change_rules_on_added_events() {
    let rule = |kind_and_on: &str| {
        format!(
            "- id: a\n  title: T\n  description: D\n  remediation: R\n  severity: high\n  \
             resource: audit_event\n{kind_and_on}  when: 'resource.type == \"SSO Settings Updated\"'\n"
        )
    };
    let rules = load(&rule("  kind: change\n  on: [added]\n"));
    assert_eq!(rules.rules()[0].resource, ResourceKind::AuditEvent);
    for bad in [
        "  kind: compliance\n",
        "  kind: change\n  on: [added, modified]\n",
        "  kind: change\n  on: [removed]\n",
    ] {
        let errors = load_errors(&rule(bad));
        assert!(
            errors.iter().any(|e| e.message.contains("only ever added")),
            "{bad}: {errors:?}"
        );
    }
    let event = json!({"id": "events/1", "type": "SSO Settings Updated", "actor": "u1",
                       "resourceId": "ws", "resourceType": "workspace", "resourceName": "Acme"});
    let evaluator = Evaluator::new(&rules, now(), inventory([]));
    let facts = ChangeFacts {
        op: ChangeOp::Added,
        before: None,
        after: Some(&event),
        fields: &[],
        attribution: &Default::default(),
    };
    let verdicts = evaluator.check_change(
        &subject(ResourceKind::AuditEvent, "events/1", "Acme", &event),
        &facts,
    );
    assert_eq!(verdicts.len(), 1);
    assert_eq!(outcome_result(&verdicts[0].outcome), Ok(true));
    // Rules on users never see events, and the other way round.
    let on_users = evaluator.check_change(&subject(ResourceKind::User, "u1", "a", &event), &facts);
    assert!(on_users.is_empty());
}

#[test]
fn related_resources_are_a_variable() {
    use crate::model::Resource;
    use crate::relations::Relations;
    let resources = vec![
        Resource::new(
            ResourceKind::Source,
            "s1".into(),
            "web".into(),
            json!({"id": "s1", "labels": [{"key": "environment", "value": "prod"}]}),
        ),
        Resource::new(
            ResourceKind::Destination,
            "d1".into(),
            "Amplitude".into(),
            json!({"id": "d1", "sourceId": "s1"}),
        ),
    ];
    let relations = Relations::build(&resources);
    let rules = load(&compliance_rule(
        "destination",
        r#"related.source != null && label(related.source, "environment") == "prod""#,
    ));
    assert!(rules.rules()[0].reads("related"));
    assert!(
        rules.rules()[0].is_time_dependent(),
        "related follows other resources, so it is re-evaluated every poll"
    );
    let body = json!({"id": "d1", "sourceId": "s1"});
    let destination = subject(ResourceKind::Destination, "d1", "Amplitude", &body);
    let with = Evaluator::new(&rules, now(), inventory([])).with_relations(&relations);
    assert!(matches!(
        with.check_resource(&destination, None)[0].outcome,
        Outcome::Fire { .. }
    ));
    // Without relationships, `related` has its keys and nothing in them.
    let without = Evaluator::new(&rules, now(), inventory([]));
    assert_eq!(
        without.check_resource(&destination, None)[0].outcome,
        Outcome::Pass
    );
    let source_rules = load(&compliance_rule(
        "source",
        "size(related.destinations) == 1",
    ));
    let source_body = json!({"id": "s1"});
    let source = subject(ResourceKind::Source, "s1", "web", &source_body);
    let evaluator = Evaluator::new(&source_rules, now(), inventory([])).with_relations(&relations);
    assert!(matches!(
        evaluator.check_resource(&source, None)[0].outcome,
        Outcome::Fire { .. }
    ));
}
