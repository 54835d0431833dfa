//! The `updated` event of a finding: an open finding whose resource changed and still fails.

use std::collections::HashMap;
use std::convert::Infallible;

use serde_json::{Value, json};

use super::*;
use crate::diff::{self, CurrentVersion};

const RULES: &str = r#"
- id: source-has-no-owner
  title: Source has no owner
  description: D
  remediation: R
  severity: medium
  resource: source
  kind: compliance
  when: '!resource.labels.exists(l, l.key == "owner")'
  message: "{{ name }} has no owner ({{ resource.labels | length }} labels)"
"#;

fn source(labels: Value) -> Resource {
    Resource::new(
        ResourceKind::Source,
        "s1".to_string(),
        "Source 1".to_string(),
        json!({"id": "s1", "name": "Source 1", "labels": labels, "settings": {}}),
    )
}

fn open_finding() -> AlertRecord {
    AlertRecord {
        id: AlertId(7),
        rule_id: "source-has-no-owner".to_string(),
        rule_kind: "compliance".to_string(),
        severity: Severity::Medium,
        title: "Source has no owner".to_string(),
        resource_kind: ResourceKind::Source,
        resource_id: "s1".to_string(),
        resource_name: "Source 1".to_string(),
        snapshot_id: SnapshotId(1),
        change_id: None,
        status: AlertStatus::Open,
        opened_at: "2024-01-01T00:00:00Z".parse().unwrap(),
        resolved_at: None,
        resolved_snapshot_id: None,
        resolution: None,
        summary: "Source 1 has no owner (1 labels)".to_string(),
        explanation: json!({}),
        remediation: "R".to_string(),
        tags: Vec::new(),
        attribution: Attribution::default(),
        workspace: "acme".to_string(),
    }
}

fn editor() -> Attribution {
    Attribution {
        actor: Some("uEditor".into()),
        actor_email: Some("editor@acme.io".into()),
        event_type: Some("Source Modified".into()),
        event_id: Some("events/9".into()),
    }
}

/// How the poll sees the resource.
#[derive(PartialEq)]
enum Seen {
    /// Diffed against the stored version.
    Changed,
    /// Diffed, every field marked API drift.
    Drift,
    /// A baseline: no changes.
    Baseline,
}

/// Plans the poll that turns `before` into `after` (attributed to [`editor`]) with the
/// finding open and the rule already evaluated last poll.
fn poll(before: &Resource, after: &[Resource], seen: Seen) -> AlertPlan {
    let rules = RuleSet::from_yaml("rules.yaml", RULES).unwrap();
    let mut current = HashMap::new();
    current.insert(
        (before.kind, before.id.clone()),
        CurrentVersion {
            version_id: 1,
            hash: before.hash.clone(),
            name: before.name.clone(),
        },
    );
    let body: Value = serde_json::from_str(&before.body).unwrap();
    let load = |_: i64| Ok::<_, Infallible>(body.clone());
    let mut changes = diff::plan(after, &current, false, load).unwrap().changes;
    for c in &mut changes {
        c.change.attribution = editor();
        for f in &mut c.change.fields {
            f.api_drift = seen == Seen::Drift;
        }
    }
    let baseline = seen == Seen::Baseline;
    let rule_states: HashMap<String, String> = rules
        .rules()
        .iter()
        .map(|r| (r.id.clone(), r.fingerprint().to_string()))
        .collect();
    let seen_since = HashMap::new();
    let findings = [open_finding()];
    let input = PlanInput {
        rules: &rules,
        now: chrono::Utc::now(),
        resources: after,
        changes: if baseline { &[] } else { &changes },
        unread_kinds: &[],
        baseline,
        alert_on_baseline: false,
        baseline_kinds: &[],
        open_findings: &findings,
        rule_states: &rule_states,
        seen_since: &seen_since,
        inventory: json!({}),
        audit_events: &[],
        access: None,
        relations: None,
        trail: None,
    };
    plan(&input, |_| Ok::<_, Infallible>(body.clone())).unwrap()
}

#[test]
fn a_modified_resource_that_still_fails_updates_its_open_finding() {
    let before = source(json!([{"key": "environment", "value": "prod"}]));
    let after = [source(json!([
        {"key": "environment", "value": "staging"},
        {"key": "team", "value": "growth"}
    ]))];
    let plan = poll(&before, &after, Seen::Changed);
    assert!(plan.opened.is_empty(), "{:?}", plan.opened);
    assert!(plan.resolved.is_empty(), "{:?}", plan.resolved);
    assert_eq!(plan.updated.len(), 1, "{:?}", plan.updated);
    let u = &plan.updated[0];
    assert_eq!(u.alert.id, AlertId(7));
    assert_eq!(u.summary, "Source 1 has no owner (2 labels)");
    assert_eq!(u.attribution, editor());
    assert_eq!(u.change_index, 0);
    assert!(u.explanation.is_object(), "{}", u.explanation);
}

#[test]
fn an_unchanged_resource_updates_nothing() {
    let before = source(json!([{"key": "environment", "value": "prod"}]));
    let plan = poll(&before, std::slice::from_ref(&before), Seen::Changed);
    assert!(plan.updated.is_empty(), "{:?}", plan.updated);
    assert!(plan.opened.is_empty() && plan.resolved.is_empty());
}

#[test]
fn a_resolving_change_resolves_and_updates_nothing() {
    let before = source(json!([{"key": "environment", "value": "prod"}]));
    let after = [source(json!([
        {"key": "environment", "value": "prod"},
        {"key": "owner", "value": "data-team"}
    ]))];
    let plan = poll(&before, &after, Seen::Changed);
    assert!(plan.updated.is_empty(), "{:?}", plan.updated);
    assert_eq!(plan.resolved.len(), 1);
    assert_eq!(plan.resolved[0].resolution, Resolution::Compliant);
}

#[test]
fn api_drift_and_baselines_update_nothing() {
    let before = source(json!([{"key": "environment", "value": "prod"}]));
    let after = [source(json!([{"key": "environment", "value": "staging"}]))];
    for seen in [Seen::Drift, Seen::Baseline] {
        let plan = poll(&before, &after, seen);
        assert!(plan.updated.is_empty(), "{:?}", plan.updated);
        assert!(plan.opened.is_empty() && plan.resolved.is_empty());
    }
}
