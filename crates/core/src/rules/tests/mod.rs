//! Tests of the rule engine: the fixtures they share here, and the tests by topic: loading and
//! its errors, helpers and CEL operators, evaluation, explanations.

mod conditions;
mod evaluation;
mod explanation;
mod loading;
mod trail;

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

/// Rules over users, read by the evaluation and explanation tests.
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
