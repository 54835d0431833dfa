//! Loading rule files: a good rule with every field, every mistake reported at its line with
//! its rule and field, directories, and fingerprints that follow the definition.

use super::*;

/// A valid change rule; the line of each field is its position in this text.
const GOOD: &str = r#"- id: owner-granted
  title: Workspace Owner granted
  description: Someone was given the Workspace Owner role.
  remediation: Confirm the grant; revoke it if unexpected.
  severity: critical
  tags: [soc2:CC6.1, soc2:CC6.3]
  resource: user
  kind: change
  on: [added, modified]
  when: >
    has_role(after, "Workspace Owner") && !has_role(before, "Workspace Owner")
  message: "Workspace Owner granted to {{ name }}"
  exceptions:
    - name: "breakglass-*@acme.io"
      reason: Break-glass account, reviewed quarterly
      expires: 2027-03-31
    - id: 2Zx9abc
      reason: Service owner account
"#;

#[test]
fn a_good_rule_loads_with_every_field() {
    let rules = load(GOOD);
    let rule = rules.get("owner-granted").unwrap();
    assert_eq!(rule.title, "Workspace Owner granted");
    assert_eq!(rule.severity, Severity::Critical);
    assert_eq!(rule.tags, ["soc2:CC6.1", "soc2:CC6.3"]);
    assert!(rule.enabled);
    assert_eq!(rule.resource, ResourceKind::User);
    assert_eq!(
        rule.kind,
        RuleKind::Change {
            on: vec![ChangeOp::Added, ChangeOp::Modified]
        }
    );
    assert!(rule.is_change());
    assert!(!rule.is_time_dependent());
    assert_eq!(
        rule.when.trim(),
        r#"has_role(after, "Workspace Owner") && !has_role(before, "Workspace Owner")"#
    );
    assert_eq!(rule.exceptions.len(), 2);
    assert_eq!(
        rule.exceptions[0],
        Exception {
            id: None,
            name: Some("breakglass-*@acme.io".into()),
            reason: "Break-glass account, reviewed quarterly".into(),
            expires: Some(NaiveDate::from_ymd_opt(2027, 3, 31).unwrap()),
        }
    );
    assert_eq!(rule.exceptions[1].id.as_deref(), Some("2Zx9abc"));
    assert_eq!(rule.file, PathBuf::from(FILE));
    assert_eq!(rule.line, 1);
    assert_eq!(rule.fingerprint().len(), 64);
    assert!(rules.get("nope").is_none());
}

#[test]
fn an_empty_file_has_no_rules() {
    assert!(load("").rules().is_empty());
    assert!(load("# only a comment\n").rules().is_empty());
    assert!(load("[]").rules().is_empty());
}

#[test]
fn files_may_hold_several_documents_and_use_anchors() {
    let rules = load(&format!(
        "{GOOD}---\n{}",
        good_with("id: owner-granted", "id: other")
    ));
    let found: Vec<(&str, usize)> = rules
        .rules()
        .iter()
        .map(|r| (r.id.as_str(), r.line))
        .collect();
    assert_eq!(found, [("owner-granted", 1), ("other", 20)]);
    // Shared fields through an anchor and a merge key; errors still point at the rule.
    let yaml = "- &base\n  id: a\n  title: T\n  description: D\n  remediation: R\n  severity: low\n  \
                resource: user\n  kind: compliance\n  when: \"true\"\n- <<: *base\n  id: b\n  severity: hgih\n";
    let errors = load_errors(yaml);
    assert_eq!(errors.len(), 1, "{}", LoadErrors(errors.clone()));
    assert_eq!(
        (errors[0].line, errors[0].rule_id.as_deref()),
        (Some(12), Some("b"))
    );
    assert!(load(&yaml.replace("hgih", "high")).get("b").is_some());
    // Windows line ends and a byte-order mark are fine.
    assert_eq!(load(&GOOD.replace('\n', "\r\n")).rules().len(), 1);
    assert_eq!(load(&format!("\u{feff}{GOOD}")).rules().len(), 1);
    // Tabs are a YAML error, with a hint.
    let errors = load_errors(&GOOD.replace("  title:", "\ttitle:"));
    assert!(
        errors[0]
            .message
            .ends_with("indent YAML with spaces, not tabs"),
        "{}",
        errors[0]
    );
}

#[test]
fn severity_orders_parses_and_serialises() {
    assert!(Severity::Info < Severity::Low && Severity::High < Severity::Critical);
    assert_eq!("medium".parse::<Severity>(), Ok(Severity::Medium));
    assert_eq!(Severity::High.to_string(), "high");
    assert_eq!(
        serde_json::to_value(Severity::Critical).unwrap(),
        json!("critical")
    );
    assert_eq!(
        "hgih".parse::<Severity>().unwrap_err().to_string(),
        "`hgih` is not a severity; expected one of info, low, medium, high, critical"
    );
}

/// One bad-rule case: the file, then the expected error's line, rule id, field and a part of
/// its message.
struct Bad {
    name: &'static str,
    yaml: String,
    line: usize,
    rule: Option<&'static str>,
    field: Option<&'static str>,
    message: &'static str,
}

/// The good rule with `old` replaced by `new` (which must occur in it).
fn good_with(old: &str, new: &str) -> String {
    assert!(GOOD.contains(old), "{old}");
    GOOD.replacen(old, new, 1)
}

fn bad_cases() -> Vec<Bad> {
    let owner = Some("owner-granted");
    vec![
        Bad {
            name: "bad YAML syntax",
            yaml: good_with(
                "title: Workspace Owner granted",
                "title: Workspace Owner: granted",
            ),
            line: 2,
            rule: None,
            field: None,
            message: "invalid YAML: mapping values are not allowed in this context (column 25)",
        },
        Bad {
            name: "top level not a sequence",
            yaml: "id: owner-granted\ntitle: T\n".into(),
            line: 1,
            rule: None,
            field: None,
            message: "a rule file must be a YAML list of rules, each starting with `- id: …`; found a mapping",
        },
        Bad {
            name: "a rule that is not a mapping",
            yaml: format!("{GOOD}- just a string\n"),
            line: 19,
            rule: None,
            field: None,
            message: "each rule must be a mapping of fields",
        },
        Bad {
            name: "unknown field",
            yaml: good_with("severity: critical", "severity: critical\n  severty: high"),
            line: 6,
            rule: owner,
            field: Some("severty"),
            message: "unknown field `severty` (did you mean `severity`?); a rule's fields are: id, title, description, remediation, severity, tags, enabled, resource, kind, on, when, message, exceptions",
        },
        Bad {
            name: "missing required field",
            yaml: good_with(
                "  remediation: Confirm the grant; revoke it if unexpected.\n",
                "",
            ),
            line: 1,
            rule: owner,
            field: Some("remediation"),
            message: "missing required field `remediation`",
        },
        Bad {
            name: "bad id format",
            yaml: good_with("id: owner-granted", "id: Owner_Granted"),
            line: 1,
            rule: Some("Owner_Granted"),
            field: Some("id"),
            message: "`Owner_Granted` is not a valid rule id: use lowercase letters, digits and `-`",
        },
        Bad {
            name: "duplicate id",
            yaml: format!("{GOOD}{GOOD}"),
            line: 19,
            rule: owner,
            field: Some("id"),
            message: "duplicate rule id `owner-granted`: already defined at rules/test.yaml:1",
        },
        Bad {
            name: "unknown resource kind",
            yaml: good_with("resource: user", "resource: users"),
            line: 7,
            rule: owner,
            field: Some("resource"),
            message: "unknown resource kind `users`; expected one of: workspace, role, user, group, invite, source, label, destination, warehouse, function, tracking_plan, destination_filter, destination_subscription, source_schema_settings, transformation, reverse_etl_model (did you mean `user`?)",
        },
        Bad {
            name: "bad severity",
            yaml: good_with("severity: critical", "severity: hgih"),
            line: 5,
            rule: owner,
            field: Some("severity"),
            message: "`hgih` is not a severity; expected one of info, low, medium, high, critical",
        },
        Bad {
            name: "kind not change or compliance",
            yaml: good_with("kind: change", "kind: changes"),
            line: 8,
            rule: owner,
            field: Some("kind"),
            message: "`changes` is not a rule kind (did you mean `change`?); expected `change`",
        },
        Bad {
            name: "change rule without on",
            yaml: good_with("  on: [added, modified]\n", ""),
            line: 8,
            rule: owner,
            field: Some("on"),
            message: "a change rule needs `on`, the changes it applies to: a list of added, removed, modified",
        },
        Bad {
            name: "change rule with empty on",
            yaml: good_with("on: [added, modified]", "on: []"),
            line: 9,
            rule: owner,
            field: Some("on"),
            message: "`on` is empty; list at least one of added, removed, modified",
        },
        Bad {
            name: "unknown op",
            yaml: good_with("on: [added, modified]", "on:\n    - added\n    - create"),
            line: 11,
            rule: owner,
            field: Some("on[1]"),
            message: "`create` is not a change operation; expected added, removed or modified",
        },
        Bad {
            name: "on in a compliance rule",
            yaml: good_with("kind: change", "kind: compliance")
                .replace("after", "resource")
                .replace("!has_role(before, \"Workspace Owner\")", "true"),
            line: 9,
            rule: owner,
            field: Some("on"),
            message: "`on` is only for change rules (kind: change)",
        },
        Bad {
            name: "CEL that fails to compile",
            yaml: good_with(
                r#"!has_role(before, "Workspace Owner")"#,
                r#"!has_role(before, "Workspace Owner") &&"#,
            ),
            line: 10,
            rule: owner,
            field: Some("when"),
            message: "CEL syntax error at 1:78: unexpected end of condition, expecting an expression\n    | has_role(after",
        },
        Bad {
            name: "CEL with an unknown variable",
            yaml: good_with("has_role(after,", "has_role(usr,"),
            line: 10,
            rule: owner,
            field: Some("when"),
            message: "unknown variable `usr` (at 1:10); the variables are resource, id, name, now, seen_since, inventory, related, last_acting, trail_since, before, after, change\n    | has_role(usr,",
        },
        Bad {
            name: "change variables in a compliance rule",
            yaml: good_with("kind: change\n  on: [added, modified]", "kind: compliance"),
            line: 9,
            rule: owner,
            field: Some("when"),
            message: "`after` is only available in change rules (kind: change) (at 1:10); a compliance rule reads the current resource as `resource`",
        },
        Bad {
            name: "unknown function",
            yaml: good_with("has_role(after,", "has_roles(after,"),
            line: 10,
            rule: owner,
            field: Some("when"),
            message: "unknown function `has_roles` (did you mean `has_role`?) (at 1:1); rules can call the helpers role_names, has_role",
        },
        Bad {
            name: "helper with the wrong number of arguments",
            yaml: good_with(r#"has_role(after, "Workspace Owner")"#, "has_role(after)"),
            line: 10,
            rule: owner,
            field: Some("when"),
            message: "`has_role` is given 1 argument (at 1:1); it takes 2, as in has_role(x, \"Role Name\")",
        },
        Bad {
            name: "exception without reason",
            yaml: good_with("      reason: Service owner account\n", ""),
            line: 17,
            rule: owner,
            field: Some("exceptions[1].reason"),
            message: "an exception needs a `reason`",
        },
        Bad {
            name: "exception without id or name",
            yaml: good_with("- id: 2Zx9abc\n      reason", "- reason"),
            line: 17,
            rule: owner,
            field: Some("exceptions[1]"),
            message: "an exception needs `id` (one resource) or `name` (a glob on resource names, e.g. \"breakglass-*@acme.io\"); it has neither",
        },
        Bad {
            name: "exception with both id and name",
            yaml: good_with("- id: 2Zx9abc", "- id: 2Zx9abc\n      name: svc@acme.io"),
            line: 17,
            rule: owner,
            field: Some("exceptions[1]"),
            message: "an exception has either `id` or `name`, not both",
        },
        Bad {
            name: "bad expires date",
            yaml: good_with("expires: 2027-03-31", "expires: 2027-02-30"),
            line: 16,
            rule: owner,
            field: Some("exceptions[0].expires"),
            message: "expected the last day the exception applies, as YYYY-MM-DD (e.g. 2027-03-31); found the string `2027-02-30`",
        },
        Bad {
            name: "bad glob",
            yaml: good_with("breakglass-*@acme.io", "breakglass-[*@acme.io"),
            line: 14,
            rule: owner,
            field: Some("exceptions[0].name"),
            message: "`breakglass-[*@acme.io` is not a valid glob: unclosed character class",
        },
        Bad {
            name: "unknown exception field",
            yaml: good_with(
                "reason: Service owner account",
                "reason: Service owner account\n      expire: 2027-01-01",
            ),
            line: 19,
            rule: owner,
            field: Some("exceptions[1].expire"),
            message: "unknown field `expire` (did you mean `expires`?); an exception's fields are: id, name, reason, expires",
        },
        Bad {
            name: "bad message template",
            yaml: good_with("{{ name }}", "{{ name }"),
            line: 12,
            rule: owner,
            field: Some("message"),
            message: "invalid message template: syntax error: unexpected `}`",
        },
        Bad {
            name: "unknown message template variable",
            yaml: good_with("{{ name }}", "{{ nmae }}"),
            line: 12,
            rule: owner,
            field: Some("message"),
            message: "the message template uses an unknown variable `nmae` (did you mean `name`?)",
        },
        Bad {
            name: "wrong type",
            yaml: good_with("severity: critical", "severity: critical\n  enabled: yes"),
            line: 6,
            rule: owner,
            field: Some("enabled"),
            message: "expected true or false, found the string `yes`",
        },
        Bad {
            name: "wrong type of a list",
            yaml: good_with("tags: [soc2:CC6.1, soc2:CC6.3]", "tags: soc2:CC6.1"),
            line: 6,
            rule: owner,
            field: Some("tags"),
            message: "expected a list (e.g. `tags: [soc2:CC6.1]`); found the string `soc2:CC6.1`",
        },
        Bad {
            name: "repeated field",
            yaml: good_with("severity: critical", "severity: critical\n  severity: low"),
            line: 6,
            rule: owner,
            field: Some("severity"),
            message: "`severity` is given twice (first at line 5); keep one",
        },
    ]
}

#[test]
fn every_mistake_is_reported_at_its_line_with_its_rule_and_field() {
    for case in bad_cases() {
        let errors = match RuleSet::from_yaml(FILE, &case.yaml) {
            Ok(_) => panic!("{}: loaded", case.name),
            Err(e) => e,
        };
        let found = errors.0.iter().find(|e| e.message.contains(case.message));
        let Some(error) = found else {
            panic!(
                "{}: no error says {:?}; the errors are:\n{errors}",
                case.name, case.message
            );
        };
        assert_eq!(error.file, PathBuf::from(FILE), "{}", case.name);
        assert_eq!(error.line, Some(case.line), "{}: {error}", case.name);
        assert_eq!(
            error.rule_id.as_deref(),
            case.rule,
            "{}: {error}",
            case.name
        );
        assert_eq!(error.field.as_deref(), case.field, "{}: {error}", case.name);
        let shown = error.to_string();
        assert!(
            shown.starts_with(&format!("{FILE}:{}: ", case.line)),
            "{}: {shown}",
            case.name
        );
        if let Some(rule) = case.rule {
            assert!(
                shown.contains(&format!("rule `{rule}`")),
                "{}: {shown}",
                case.name
            );
        }
    }
}

#[test]
fn error_display_names_file_line_rule_and_field() {
    let errors = load_errors(&good_with("severity: critical", "severity: hgih"));
    assert_eq!(
        errors[0].to_string(),
        "rules/test.yaml:5: rule `owner-granted`: field `severity`: `hgih` is not a severity; \
         expected one of info, low, medium, high, critical (did you mean `high`?)"
    );
    let errors = load_errors("- id: [unclosed\n");
    assert_eq!(
        errors[0].to_string(),
        "rules/test.yaml:1: invalid YAML: unclosed bracket '[' (column 7)"
    );
}

#[test]
fn cel_errors_show_the_position_and_a_caret() {
    let errors = load_errors(&change_rule(
        "has_role(after, \"A\") &&\n  resource.emial.endsWith(\"x\") || bogus",
        "",
    ));
    assert_eq!(errors.len(), 1, "{}", LoadErrors(errors.clone()));
    assert_eq!(
        errors[0].message,
        "unknown variable `bogus` (at 2:35); the variables are resource, id, name, now, \
         seen_since, inventory, related, last_acting, trail_since, before, after, change\n    |   resource.emial.endsWith(\"x\") || bogus\n    |                                   ^"
    );
    let errors = load_errors(&change_rule("after.has_role(\"A\")", ""));
    assert!(
        errors[0].message.starts_with(
            "`has_role` is a function, not a method (at 1:7): write has_role(x, \"Role Name\")"
        ),
        "{}",
        errors[0]
    );
    let errors = load_errors(&change_rule("resource.permissions.exists(p)", ""));
    assert!(
        errors[0].message.starts_with(
            "`exists` is not written as CEL expects (at 1:22); write list.exists(x, condition)"
        ),
        "{}",
        errors[0]
    );
}

#[test]
fn comprehension_variables_and_type_names_are_not_unknown() {
    load(&compliance_rule(
        "user",
        "resource.permissions.exists(p, p.resources.all(r, r.type == \"SOURCE\")) && type(id) == string",
    ));
    // A comprehension variable is only in scope inside its comprehension.
    let errors = load_errors(&compliance_rule(
        "user",
        "resource.permissions.exists(p, true) && p.roleName == \"x\"",
    ));
    assert!(
        errors[0].message.contains("unknown variable `p`"),
        "{}",
        errors[0]
    );
}

#[test]
fn every_error_of_a_file_is_collected() {
    let yaml = format!(
        "{}{}",
        good_with("severity: critical", "severity: urgent")
            .replace("resource: user", "resource: users"),
        good_with("id: owner-granted", "id: second")
            .replace("has_role(after,", "has_role(usr,")
            .replace("expires: 2027-03-31", "expires: someday"),
    );
    let errors = load_errors(&yaml);
    let summary: Vec<(Option<usize>, Option<&str>, Option<&str>)> = errors
        .iter()
        .map(|e| (e.line, e.rule_id.as_deref(), e.field.as_deref()))
        .collect();
    assert_eq!(
        summary,
        [
            (Some(5), Some("owner-granted"), Some("severity")),
            (Some(7), Some("owner-granted"), Some("resource")),
            (Some(28), Some("second"), Some("when")),
            (Some(34), Some("second"), Some("exceptions[0].expires")),
        ],
        "{}",
        LoadErrors(errors.clone())
    );
}

#[test]
fn a_directory_is_loaded_recursively_in_path_order_with_all_errors() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    fs::create_dir_all(root.join("iam")).unwrap();
    fs::create_dir_all(root.join(".git")).unwrap();
    fs::write(root.join("a.yaml"), GOOD).unwrap();
    fs::write(
        root.join("iam/b.yml"),
        format!(
            "{}{}",
            good_with("id: owner-granted", "id: second"),
            // Same id as in a.yaml, and a bad severity.
            good_with("severity: critical", "severity: hgih")
        ),
    )
    .unwrap();
    fs::write(root.join("notes.txt"), "not rules").unwrap();
    fs::write(root.join(".git/x.yaml"), "not: rules").unwrap();

    let errors = RuleSet::load(root).unwrap_err().0;
    let b = root.join("iam/b.yml");
    assert_eq!(errors.len(), 2, "{}", LoadErrors(errors.clone()));
    assert_eq!((&errors[0].file, errors[0].line), (&b, Some(19)));
    assert_eq!(errors[0].field.as_deref(), Some("id"));
    assert_eq!(
        errors[0].message,
        format!(
            "duplicate rule id `owner-granted`: already defined at {}:1; rule ids must be \
             unique across all rule files",
            root.join("a.yaml").display()
        )
    );
    assert_eq!((&errors[1].file, errors[1].line), (&b, Some(23)));
    assert_eq!(errors[1].field.as_deref(), Some("severity"));

    // Fixed, both files load, a.yaml first.
    fs::write(&b, good_with("id: owner-granted", "id: second")).unwrap();
    let rules = RuleSet::load(root).unwrap();
    let ids: Vec<&str> = rules.rules().iter().map(|r| r.id.as_str()).collect();
    assert_eq!(ids, ["owner-granted", "second"]);
    assert_eq!(rules.get("second").unwrap().file, b);

    // A single file, and a path that is not there.
    assert_eq!(RuleSet::load(&b).unwrap().rules().len(), 1);
    let missing = RuleSet::load(&root.join("nope")).unwrap_err().0;
    assert!(
        missing[0]
            .to_string()
            .contains("cannot read rules from here"),
        "{}",
        missing[0]
    );
}

#[test]
fn fingerprints_are_stable_and_follow_the_definition() {
    let fingerprint = |yaml: &str| load(yaml).rules()[0].fingerprint().to_string();
    let base = fingerprint(GOOD);
    assert_eq!(fingerprint(GOOD), base, "stable across reloads");
    // Where a rule is written does not matter; `on` order neither.
    assert_eq!(fingerprint(&format!("\n\n# moved\n{GOOD}")), base);
    assert_eq!(
        fingerprint(&good_with("on: [added, modified]", "on: [modified, added]")),
        base
    );
    let rules = RuleSet::from_yaml("other/file.yaml", GOOD).unwrap();
    assert_eq!(rules.rules()[0].fingerprint(), base);
    for (old, new) in [
        ("!has_role(before", "!has_role(   before"),
        ("expires: 2027-03-31", "expires: 2027-04-30"),
        ("reason: Service owner account", "reason: Service owner"),
        ("severity: critical", "severity: high"),
        ("{{ name }}", "{{ id }}"),
        ("on: [added, modified]", "on: [added]"),
        ("tags: [soc2:CC6.1, soc2:CC6.3]", "tags: [soc2:CC6.1]"),
        ("kind: change", "enabled: false\n  kind: change"),
    ] {
        assert_ne!(fingerprint(&good_with(old, new)), base, "{old} → {new}");
    }
}
