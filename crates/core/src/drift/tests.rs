use std::collections::HashMap;
use std::convert::Infallible;

use serde_json::{Value, json};

use super::*;
use crate::alerts::{self, PlanInput};
use crate::diff::{self, CurrentVersion, PlannedChange};
use crate::rules::RuleSet;

const TS: &str = "2024-01-01T00:00:00Z";

fn res(kind: ResourceKind, id: &str, body: Value) -> Resource {
    Resource::new(kind, id.to_string(), id.to_string(), body)
}

fn user(i: usize) -> Resource {
    let id = format!("u{i}");
    res(
        ResourceKind::User,
        &id,
        json!({
            "id": id,
            "email": format!("{id}@acme.io"),
            "permissions": [
                {"roleId": "r1", "roleName": "Source Admin", "resources": [{"id": "s1", "type": "SOURCE"}]},
                {"roleId": "r2", "roleName": "Read-only", "resources": [{"id": "ws1", "type": "WORKSPACE"}]}
            ]
        }),
    )
}

fn group(i: usize) -> Resource {
    let id = format!("g{i}");
    res(
        ResourceKind::Group,
        &id,
        json!({
            "id": id,
            "name": format!("Group {i}"),
            "members": [{"email": "a@acme.io"}],
            "permissions": [{"roleId": "r3", "roleName": "Workspace Owner", "resources": [{"id": "ws1", "type": "WORKSPACE"}]}]
        }),
    )
}

fn destination(i: usize) -> Resource {
    let id = format!("d{i}");
    res(
        ResourceKind::Destination,
        &id,
        json!({"id": id, "name": format!("Dest {i}"), "enabled": true, "settings": {"apiKey": "sha256:0123456789ab"}}),
    )
}

fn source(i: usize) -> Resource {
    let id = format!("s{i}");
    res(
        ResourceKind::Source,
        &id,
        json!({"id": id, "name": format!("Source {i}"), "labels": [{"key": "environment", "value": "prod"}], "settings": {}}),
    )
}

/// `resources` after `edit` (kind, id, body) on each.
fn with(resources: &[Resource], edit: impl Fn(ResourceKind, &str, &mut Value)) -> Vec<Resource> {
    resources
        .iter()
        .map(|r| {
            let mut body: Value = serde_json::from_str(&r.body).unwrap();
            edit(r.kind, &r.id, &mut body);
            res(r.kind, &r.id, body)
        })
        .collect()
}

/// Adds `key: value` to every element of `body[array]`.
fn in_each(body: &mut Value, array: &str, key: &str, value: Value) {
    for item in body[array].as_array_mut().unwrap() {
        item[key] = value.clone();
    }
}

fn attribution(id: &str) -> Attribution {
    Attribution {
        actor: Some("uAdmin".into()),
        actor_email: Some("admin@acme.io".into()),
        event_type: Some("Resource Updated".into()),
        event_id: Some(format!("events/{id}")),
    }
}

struct Detected<'a> {
    changes: Vec<PlannedChange<'a>>,
    drift: Vec<DriftSummary>,
    /// Stored bodies `mark` loaded.
    loads: usize,
    bodies: HashMap<i64, Value>,
}

/// Diffs `after` against `before` as a poll does, attributes the changes of the resources in
/// `attributed` to an audit event, then runs [`mark`].
fn detect<'a>(
    before: &[Resource],
    after: &'a [Resource],
    attributed: &[&str],
    trail_read: bool,
) -> Detected<'a> {
    let mut current = HashMap::new();
    let mut bodies: HashMap<i64, Value> = HashMap::new();
    for (i, r) in before.iter().enumerate() {
        let version_id = i as i64 + 1;
        current.insert(
            (r.kind, r.id.clone()),
            CurrentVersion {
                version_id,
                hash: r.hash.clone(),
                name: r.name.clone(),
            },
        );
        bodies.insert(version_id, serde_json::from_str(&r.body).unwrap());
    }
    let load = |id: i64| Ok::<_, Infallible>(bodies[&id].clone());
    let mut changes = diff::plan(after, &current, false, load).unwrap().changes;
    for c in &mut changes {
        if attributed.contains(&c.change.resource_id.as_str()) {
            c.change.attribution = attribution(&c.change.resource_id);
        }
    }
    let mut loads = 0;
    let drift = mark(&mut changes, after, &current, trail_read, |id| {
        loads += 1;
        load(id)
    })
    .unwrap();
    Detected {
        changes,
        drift,
        loads,
        bodies,
    }
}

fn summary(kind: ResourceKind, path: &str, direction: Direction, n: usize) -> DriftSummary {
    DriftSummary {
        kind,
        path: path.to_string(),
        direction,
        resources: n,
    }
}

fn marked(d: &Detected<'_>) -> Vec<(String, bool)> {
    d.changes
        .iter()
        .flat_map(|c| {
            c.change
                .fields
                .iter()
                .map(|f| (f.path.clone(), f.api_drift))
        })
        .collect()
}

#[test]
fn a_release_adding_fields_to_users_and_to_every_permission_entry_is_drift() {
    let mut before: Vec<Resource> = (1..=6).map(user).collect();
    before.extend((1..=3).map(group));
    before.extend((1..=2).map(destination));
    let after = with(&before, |kind, _, body| match kind {
        ResourceKind::User => {
            body["createdAt"] = json!(TS);
            in_each(body, "permissions", "grantedAt", json!(TS));
        }
        ResourceKind::Group => in_each(body, "permissions", "grantedAt", json!(TS)),
        _ => {}
    });
    // One user was also edited by someone in the window: one event of six changes.
    let d = detect(&before, &after, &["u2"], true);
    assert_eq!(
        d.drift,
        vec![
            summary(ResourceKind::User, "createdAt", Direction::Added, 6),
            summary(
                ResourceKind::User,
                "permissions[].grantedAt",
                Direction::Added,
                6
            ),
            summary(
                ResourceKind::Group,
                "permissions[].grantedAt",
                Direction::Added,
                3
            ),
        ]
    );
    assert_eq!(d.changes.len(), 9);
    for c in &d.changes {
        assert!(is_drift_only(&c.change), "{}", c.change);
        // Nobody is named for a release.
        assert_eq!(c.change.attribution, Attribution::default(), "{}", c.change);
    }
    let u1 = d
        .changes
        .iter()
        .find(|c| c.change.resource_id == "u1")
        .unwrap();
    let paths: Vec<&str> = u1.change.fields.iter().map(|f| f.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "createdAt",
            "permissions[roleId=r1].grantedAt",
            "permissions[roleId=r2].grantedAt"
        ]
    );
    // (a) read every current user and group once, and nothing of the untouched kinds.
    assert_eq!(d.loads, 9);
    assert_eq!(
        d.drift[0].describe(),
        "Segment's API now returns `createdAt` on 6 users"
    );
    assert!(
        u1.change
            .to_string()
            .contains("createdAt: (absent) → \"2024-01-01T00:00:00Z\" (API drift)"),
        "{}",
        u1.change
    );
}

#[test]
fn a_new_settings_key_on_one_destination_of_five_is_a_change() {
    let before: Vec<Resource> = (1..=5).map(destination).collect();
    let after = with(&before, |_, id, body| {
        if id == "d3" {
            body["settings"]["region"] = json!("eu");
        }
    });
    let d = detect(&before, &after, &[], true);
    assert_eq!(d.drift, []);
    assert_eq!(marked(&d), [("settings.region".to_string(), false)]);
    // Fails (b) before anything is loaded: an ordinary poll costs nothing.
    assert_eq!(d.loads, 0);
}

#[test]
fn the_same_label_added_to_every_source_is_a_change() {
    let before: Vec<Resource> = (1..=4).map(source).collect();
    let after = with(&before, |_, _, body| {
        body["labels"]
            .as_array_mut()
            .unwrap()
            .push(json!({"key": "team", "value": "growth"}));
    });
    for attributed in [&["s1", "s2", "s3", "s4"][..], &[]] {
        let d = detect(&before, &after, attributed, true);
        assert_eq!(d.drift, []);
        assert_eq!(marked(&d).len(), 4);
        assert!(
            marked(&d)
                .iter()
                .all(|(p, drift)| p == "labels[key=team]" && !drift)
        );
        if !attributed.is_empty() {
            assert!(d.changes.iter().all(|c| c.change.attribution.is_known()));
        }
    }
}

#[test]
fn a_field_already_on_an_unchanged_resource_of_the_kind_is_a_change() {
    // s4 had `settings.region` before; the other three get it now, with no audit event: the
    // API already returned the field, so people set it.
    let before = with(&(1..=4).map(source).collect::<Vec<_>>(), |_, id, body| {
        if id == "s4" {
            body["settings"]["region"] = json!("us");
        }
    });
    let after = with(&before, |_, id, body| {
        if id != "s4" {
            body["settings"]["region"] = json!("eu");
        }
    });
    let d = detect(&before, &after, &[], true);
    assert_eq!(d.drift, []);
    assert_eq!(d.changes.len(), 3);
    assert!(marked(&d).iter().all(|(_, drift)| !drift));
    // It passed (b) and (c), so (a) read the stored sources.
    assert_eq!(d.loads, 4);
}

#[test]
fn a_field_removed_from_every_resource_is_drift() {
    let before = with(
        &(1..=4).map(destination).collect::<Vec<_>>(),
        |_, _, body| {
            body["legacyId"] = json!(null);
        },
    );
    let after = with(&before, |_, _, body| {
        body.as_object_mut().unwrap().remove("legacyId");
    });
    let d = detect(&before, &after, &[], false);
    assert_eq!(
        d.drift,
        vec![summary(
            ResourceKind::Destination,
            "legacyId",
            Direction::Removed,
            4
        )]
    );
    assert_eq!(
        d.drift[0].describe(),
        "Segment's API no longer returns `legacyId` on 4 destinations"
    );
    assert!(d.changes.iter().all(|c| is_drift_only(&c.change)));
    // Checked against this poll's resources: no stored body needed.
    assert_eq!(d.loads, 0);
}

#[test]
fn a_change_mostly_attributed_to_audit_events_is_not_drift() {
    let before: Vec<Resource> = (1..=6).map(user).collect();
    let after = with(&before, |_, _, body| body["createdAt"] = json!(TS));
    // Half attributed: people did this.
    let d = detect(&before, &after, &["u1", "u2", "u3"], true);
    assert_eq!(d.drift, []);
    assert!(marked(&d).iter().all(|(_, drift)| !drift));
    assert_eq!(
        d.changes
            .iter()
            .filter(|c| c.change.attribution.is_known())
            .count(),
        3
    );
    // Fewer than half: drift, and the two events are not blamed for it.
    let d = detect(&before, &after, &["u1", "u2"], true);
    assert_eq!(
        d.drift,
        vec![summary(
            ResourceKind::User,
            "createdAt",
            Direction::Added,
            6
        )]
    );
    assert!(d.changes.iter().all(|c| !c.change.attribution.is_known()));
}

#[test]
fn a_mixed_change_keeps_its_attribution_and_its_real_fields() {
    let before: Vec<Resource> = (1..=4).map(user).collect();
    let after = with(&before, |_, id, body| {
        body["createdAt"] = json!(TS);
        if id == "u1" {
            body["email"] = json!("u1@evil.io");
        }
    });
    let d = detect(&before, &after, &["u1"], true);
    assert_eq!(d.drift.len(), 1);
    let u1 = &d.changes[0].change;
    assert_eq!(u1.resource_id, "u1");
    assert!(!is_drift_only(u1));
    assert!(u1.attribution.is_known());
    let real = real_fields(&u1.fields);
    let real: Vec<&str> = real.iter().map(|f| f.path.as_str()).collect();
    assert_eq!(real, ["email"]);
    assert!(matches!(real_fields(&d.changes[1].change.fields), Cow::Owned(f) if f.is_empty()));
}

#[test]
fn the_single_workspace_is_drift_only_when_the_audit_trail_could_have_named_someone() {
    let before = vec![res(
        ResourceKind::Workspace,
        "ws1",
        json!({"id": "ws1", "name": "Acme", "slug": "acme"}),
    )];
    let after = with(&before, |_, _, body| body["createdAt"] = json!(TS));
    // No audit trail: a lone resource gaining a field proves nothing.
    assert_eq!(detect(&before, &after, &[], false).drift, []);
    // The trail was read and has no event on it.
    assert_eq!(
        detect(&before, &after, &[], true).drift,
        vec![summary(
            ResourceKind::Workspace,
            "createdAt",
            Direction::Added,
            1
        )]
    );
    // The trail names someone.
    assert_eq!(detect(&before, &after, &["ws1"], true).drift, []);
}

#[test]
fn one_of_two_resources_is_not_enough() {
    let before: Vec<Resource> = (1..=2).map(destination).collect();
    let after = with(&before, |_, id, body| {
        if id == "d1" {
            body["createdAt"] = json!(TS);
        }
    });
    assert_eq!(detect(&before, &after, &[], true).drift, []);
}

#[test]
fn a_field_added_on_some_and_removed_on_others_is_a_change() {
    let before = with(&(1..=4).map(user).collect::<Vec<_>>(), |_, id, body| {
        if id == "u1" || id == "u2" {
            body["title"] = json!("x");
        }
    });
    let after = with(&before, |_, id, body| {
        if id == "u1" || id == "u2" {
            body.as_object_mut().unwrap().remove("title");
        } else {
            body["title"] = json!("x");
        }
    });
    let d = detect(&before, &after, &[], true);
    assert_eq!(d.changes.len(), 4);
    assert_eq!(d.drift, []);
    assert!(marked(&d).iter().all(|(_, drift)| !drift));
}

#[test]
fn value_edits_and_new_elements_are_never_candidates() {
    let before: Vec<Resource> = (1..=3).map(group).collect();
    let after = with(&before, |_, _, body| {
        body["name"] = json!("Renamed");
        body["members"]
            .as_array_mut()
            .unwrap()
            .push(json!({"email": "b@acme.io"}));
    });
    let d = detect(&before, &after, &[], true);
    assert_eq!(d.drift, []);
    assert_eq!(d.loads, 0);
}

#[test]
fn paths_normalise_selectors_and_keep_keys() {
    let n = |p: &str| normalise(p).map(|n| n.text);
    assert_eq!(n("createdAt").as_deref(), Some("createdAt"));
    assert_eq!(
        n("permissions[roleId=r1].resources[id=w1].type").as_deref(),
        Some("permissions[].resources[].type")
    );
    assert_eq!(
        n("labels[key=\"a]b\"].value").as_deref(),
        Some("labels[].value")
    );
    assert_eq!(
        n("members[email=a@x.com].role").as_deref(),
        Some("members[].role")
    );
    assert_eq!(n("settings[\"x.y\"]").as_deref(), Some("settings[\"x.y\"]"));
    assert_eq!(n("[\"a b\"].c").as_deref(), Some("[\"a b\"].c"));
    // Elements, the root, and what does not parse.
    for p in [
        "$",
        "",
        "members[email=a@x.com]",
        "labels[key=env]",
        "a..b",
        "a[",
        ".a",
    ] {
        assert_eq!(n(p), None, "{p}");
    }
    let steps = normalise("settings[\"x.y\"].p[id=1].q").unwrap().steps;
    assert_eq!(
        steps,
        [
            Step::Key("settings".into()),
            Step::Key("x.y".into()),
            Step::Key("p".into()),
            Step::Any,
            Step::Key("q".into())
        ]
    );
    let body = json!({"settings": {"x.y": {"p": [{"id": 1}, {"id": 2, "q": null}]}}});
    assert!(has_value(&body, &steps));
    assert!(!has_value(
        &json!({"settings": {"x.y": {"p": [{"id": 1}]}}}),
        &steps
    ));
    assert!(!has_value(
        &json!({"settings": {"x.y": {"p": {"q": 1}}}}),
        &steps
    ));
}

#[test]
fn the_flag_is_stored_only_when_true() {
    let plain = FieldChange {
        path: "a".into(),
        old: None,
        new: Some(json!(1)),
        api_drift: false,
    };
    assert_eq!(
        serde_json::to_string(&plain).unwrap(),
        r#"{"path":"a","new":1}"#
    );
    let drift = FieldChange {
        api_drift: true,
        ..plain.clone()
    };
    let text = serde_json::to_string(&drift).unwrap();
    assert_eq!(text, r#"{"path":"a","new":1,"api_drift":true}"#);
    let read: FieldChange = serde_json::from_str(&text).unwrap();
    assert_eq!(read, drift);
    // A row stored before the flag existed reads as a real change.
    let old: FieldChange = serde_json::from_str(r#"{"path":"a","new":1}"#).unwrap();
    assert_eq!(old, plain);
}

const RULES: &str = r#"
- id: user-changed
  title: User changed
  description: D
  remediation: R
  severity: high
  resource: user
  kind: change
  on: [modified]
  when: "true"
  message: "{{ change.paths | join(', ') }}"
- id: user-has-created-at
  title: User has createdAt
  description: D
  remediation: R
  severity: low
  resource: user
  kind: compliance
  when: has(resource.createdAt)
- id: user-lacks-created-at
  title: User lacks createdAt
  description: D
  remediation: R
  severity: low
  resource: user
  kind: compliance
  when: "!has(resource.createdAt)"
"#;

/// An open finding of `rule` on user `id`.
fn finding(rule: &str, id: &str) -> alerts::AlertRecord {
    alerts::AlertRecord {
        id: crate::ids::AlertId(1),
        rule_id: rule.to_string(),
        rule_kind: "compliance".to_string(),
        severity: crate::rules::Severity::Low,
        title: "T".to_string(),
        resource_kind: ResourceKind::User,
        resource_id: id.to_string(),
        resource_name: id.to_string(),
        snapshot_id: crate::ids::SnapshotId(1),
        change_id: None,
        status: alerts::AlertStatus::Open,
        opened_at: TS.parse().unwrap(),
        resolved_at: None,
        resolved_snapshot_id: None,
        resolution: None,
        summary: "S".to_string(),
        explanation: json!({}),
        remediation: "R".to_string(),
        tags: Vec::new(),
        attribution: Attribution::default(),
        workspace: "acme".to_string(),
    }
}

#[test]
fn finding_uid_is_kept_across_a_lifecycle_and_differs_per_workspace_and_alert() {
    let opened = finding("r", "u1");
    let reopened = alerts::AlertRecord {
        id: crate::ids::AlertId(9),
        ..finding("r", "u1")
    };
    assert_eq!(opened.finding_uid(), reopened.finding_uid());
    assert_eq!(opened.finding_uid().len(), "segwatch-".len() + 32);
    let elsewhere = alerts::AlertRecord {
        workspace: "other".to_string(),
        ..finding("r", "u1")
    };
    assert_ne!(opened.finding_uid(), elsewhere.finding_uid());
    assert_ne!(opened.finding_uid(), finding("r", "u2").finding_uid());
    let change = |id| alerts::AlertRecord {
        id: crate::ids::AlertId(id),
        rule_kind: "change".to_string(),
        ..finding("r", "u1")
    };
    assert_ne!(change(1).finding_uid(), change(2).finding_uid());
}

#[test]
fn change_rules_and_findings_never_see_drift() {
    let rules = RuleSet::from_yaml("rules.yaml", RULES).unwrap();
    let before: Vec<Resource> = (1..=4).map(user).collect();
    let after = with(&before, |_, id, body| {
        body["createdAt"] = json!(TS);
        if id == "u3" {
            body["email"] = json!("u3@evil.io");
        }
    });
    let d = detect(&before, &after, &[], true);
    assert_eq!(d.drift.len(), 1);
    // The rules were evaluated last poll: only changed resources are evaluated again.
    let rule_states: HashMap<String, String> = rules
        .rules()
        .iter()
        .map(|r| (r.id.clone(), r.fingerprint().to_string()))
        .collect();
    let seen_since = HashMap::new();
    let input = PlanInput {
        rules: &rules,
        now: chrono::Utc::now(),
        resources: &after,
        changes: &d.changes,
        unread_kinds: &[],
        baseline: false,
        alert_on_baseline: false,
        baseline_kinds: &[],
        open_findings: &[finding("user-lacks-created-at", "u1")],
        rule_states: &rule_states,
        seen_since: &seen_since,
        inventory: json!({}),
        audit_events: &[],
        access: None,
        relations: None,
        trail: None,
    };
    let plan = alerts::plan(&input, |id| Ok::<_, Infallible>(d.bodies[&id].clone())).unwrap();
    let opened: Vec<(&str, &str, &str)> = plan
        .opened
        .iter()
        .map(|a| {
            (
                a.rule_id.as_str(),
                a.resource_id.as_str(),
                a.summary.as_str(),
            )
        })
        .collect();
    // u3's own edit alerts, with only its real field; its finding comes from a real change.
    // The three drift-only users raise nothing.
    assert_eq!(opened.len(), 2, "{opened:?}");
    assert!(
        opened.contains(&("user-changed", "u3", "email")),
        "{opened:?}"
    );
    assert!(
        opened
            .iter()
            .any(|(rule, id, _)| *rule == "user-has-created-at" && *id == "u3"),
        "{opened:?}"
    );
    // u1's open finding was not re-evaluated (it now has the field): drift resolves nothing.
    assert_eq!(plan.resolved.len(), 0, "{:?}", plan.resolved);
}
