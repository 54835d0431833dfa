//! Tests of the rule engine: loading and its errors, helpers and CEL operators, evaluation.

use std::fs;
use std::sync::Arc;

use chrono::{DateTime, NaiveDate, Utc};
use serde_json::{Value, json};

use super::*;
use crate::diff::{ChangeOp, FieldChange};

const FILE: &str = "rules/test.yaml";

fn now() -> DateTime<Utc> {
    "2026-06-15T12:00:00Z".parse().unwrap()
}

fn load(yaml: &str) -> RuleSet {
    RuleSet::from_yaml(FILE, yaml).unwrap_or_else(|e| panic!("rules should load:\n{e}"))
}

fn load_errors(yaml: &str) -> Vec<LoadError> {
    match RuleSet::from_yaml(FILE, yaml) {
        Ok(_) => panic!("rules should not load:\n{yaml}"),
        Err(e) => e.0,
    }
}

/// A user body with these role names, each on the whole workspace.
fn user(email: &str, roles: &[&str]) -> Value {
    json!({
        "id": format!("u-{email}"),
        "name": email.split('@').next().unwrap(),
        "email": email,
        "permissions": roles.iter().enumerate().map(|(i, role)| json!({
            "roleId": format!("r{i}"),
            "roleName": role,
            "resources": [{"id": "ws1", "type": "WORKSPACE"}],
        })).collect::<Vec<_>>(),
    })
}

fn subject<'a>(kind: ResourceKind, id: &'a str, name: &'a str, body: &'a Value) -> Subject<'a> {
    Subject {
        kind,
        id,
        name,
        body,
        seen_since: Some("2026-06-01T00:00:00Z".parse().unwrap()),
    }
}

/// One compliance rule on `kind` with this condition (written as a JSON string, which YAML
/// reads as a double-quoted scalar).
fn compliance_rule(kind: &str, when: &str) -> String {
    format!(
        "- id: r\n  title: T\n  description: D\n  remediation: R\n  severity: low\n  \
         resource: {kind}\n  kind: compliance\n  when: {}\n",
        serde_json::to_string(when).unwrap()
    )
}

/// Evaluates `when` as a compliance rule on `body`: `Ok(fired)` or the evaluation error.
fn eval_on(kind: ResourceKind, when: &str, body: &Value) -> Result<bool, String> {
    let rules = load(&compliance_rule(kind.as_str(), when));
    let evaluator = Evaluator::new(&rules, now(), inventory([]));
    let name = body["email"].as_str().unwrap_or("name1");
    let verdicts = evaluator.check_resource(&subject(kind, "id1", name, body), None);
    assert_eq!(verdicts.len(), 1);
    outcome_result(&verdicts[0].outcome)
}

fn outcome_result(outcome: &Outcome) -> Result<bool, String> {
    match outcome {
        Outcome::Pass => Ok(false),
        Outcome::Fire { .. } | Outcome::Exempt { .. } => Ok(true),
        Outcome::Error { message } => Err(message.clone()),
    }
}

fn on_user(when: &str, body: &Value) -> Result<bool, String> {
    eval_on(ResourceKind::User, when, body)
}

/// Asserts that each condition is true on `body`.
fn assert_all_true(kind: ResourceKind, body: &Value, conditions: &[&str]) {
    for when in conditions {
        assert_eq!(eval_on(kind, when, body), Ok(true), "{when}");
    }
}

// ---------------------------------------------------------------------------------------------
// Helpers

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

fn field(path: &str, old: Option<Value>, new: Option<Value>) -> FieldChange {
    FieldChange {
        path: path.to_string(),
        old,
        new,
        api_drift: false,
    }
}

/// One change rule on users, `on: [added, removed, modified]`.
fn change_rule(when: &str, extra: &str) -> String {
    format!(
        "- id: c\n  title: Changed\n  description: D\n  remediation: R\n  severity: high\n  \
         resource: user\n  kind: change\n  on: [added, removed, modified]\n  when: {}\n{extra}",
        serde_json::to_string(when).unwrap()
    )
}

fn eval_change(when: &str, change: &ChangeFacts<'_>) -> Result<bool, String> {
    let rules = load(&change_rule(when, ""));
    let evaluator = Evaluator::new(&rules, now(), inventory([]));
    let body = change.after.or(change.before).unwrap();
    let verdicts =
        evaluator.check_change(&subject(ResourceKind::User, "u1", "a@x.io", body), change);
    assert_eq!(verdicts.len(), 1);
    outcome_result(&verdicts[0].outcome)
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

// ---------------------------------------------------------------------------------------------
// CEL operators rules use

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
               "destination": 0, "warehouse": 0, "function": 0, "tracking_plan": 0})
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

// ---------------------------------------------------------------------------------------------
// Loading

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
            message: "unknown resource kind `users`; expected one of: workspace, role, user, group, invite, source, label, destination, warehouse, function, tracking_plan (did you mean `user`?)",
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
            message: "unknown variable `usr` (at 1:10); the variables are resource, id, name, now, seen_since, inventory, related, before, after, change\n    | has_role(usr,",
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
         seen_since, inventory, related, before, after, change\n    |   resource.emial.endsWith(\"x\") || bogus\n    |                                   ^"
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

// ---------------------------------------------------------------------------------------------
// Evaluation

const USER_RULES: &str = r#"
- id: external-owner
  title: Workspace Owner outside acme.io
  description: D
  remediation: R
  severity: high
  resource: user
  kind: compliance
  when: has_role(resource, "Workspace Owner") && email_domain(resource.email) != "acme.io"
  message: "{{ name }} is a Workspace Owner from {{ resource.email | split('@') | last }}"
  exceptions:
    - id: u-contractor@partner.io
      reason: Contractor under contract until 2027
    - name: "BREAKGLASS-*@*"
      reason: Break-glass accounts
    - name: "old-*@*"
      reason: Expired exemption
      expires: 2026-06-14
    - name: "today-*@*"
      reason: Expires at the end of today
      expires: 2026-06-15
- id: phone-required
  title: Phone required
  description: D
  remediation: R
  severity: low
  resource: user
  kind: compliance
  when: resource.phone == ""
- id: not-a-bool
  title: Not a bool
  description: D
  remediation: R
  severity: low
  resource: user
  kind: compliance
  when: resource.email
- id: disabled
  title: Disabled
  description: D
  remediation: R
  severity: low
  enabled: false
  resource: user
  kind: compliance
  when: "true"
- id: owner-granted
  title: Owner granted
  description: D
  remediation: R
  severity: critical
  resource: user
  kind: change
  on: [added, modified]
  when: has_role(after, "Workspace Owner") && !has_role(before, "Workspace Owner")
- id: user-removed
  title: User removed
  description: D
  remediation: R
  severity: info
  resource: user
  kind: change
  on: [removed]
  when: "true"
- id: source-disabled
  title: Source disabled
  description: D
  remediation: R
  severity: medium
  resource: source
  kind: change
  on: [modified]
  when: changed(change, "enabled") && !after.enabled
  message: |
    Source {{ name }}
    was disabled
"#;

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

#[test]
fn rule_sets_can_be_shared_between_threads() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<RuleSet>();
    assert_send_sync::<Rule>();
}

/// Measures evaluation speed; run by hand:
/// `cargo test --release --lib rules::tests::measure -- --ignored --nocapture`.
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
