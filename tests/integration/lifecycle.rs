//! The alert lifecycle over several polls of the simulated workspace: findings open once, are not
//! repeated, resolve and re-open; change alerts fire once per change; exceptions; baselines.

use std::collections::BTreeSet;
use std::sync::Arc;

use segwatch_core::alerts::{AlertRecord, AlertStatus};
use segwatch_core::rules::RuleSet;
use segwatch_simulator::Mutation;
use segwatch_store::AlertFilter;

use crate::util::{STARTER_RULES, Segwatch, TestWorkspace};

const NO_ENVIRONMENT: &str = r#"
- id: source-without-environment
  title: Source without environment label
  description: Every source must say which environment it belongs to.
  remediation: Add an environment label.
  severity: medium
  tags: [soc2:CC8.1]
  resource: source
  kind: compliance
  when: '!has_label(resource, "environment")'
  message: "{{ name }} has no environment label"
"#;

const OWNER_GRANTED: &str = r#"
- id: owner-granted
  title: Workspace Owner granted
  description: Someone became Workspace Owner.
  remediation: Check who approved it.
  severity: critical
  resource: user
  kind: change
  on: [added, modified]
  when: 'has_role(after, "Workspace Owner") && !has_role(before, "Workspace Owner")'
  message: "Workspace Owner granted to {{ name }}"
"#;

fn rules(yaml: &str) -> Arc<RuleSet> {
    Arc::new(RuleSet::from_yaml("test-rules.yaml", yaml).unwrap_or_else(|e| panic!("{e}")))
}

fn alerts(ws: &TestWorkspace, filter: AlertFilter) -> Vec<AlertRecord> {
    let store = ws.store();
    let workspace = store.find_workspace("default").unwrap().unwrap();
    store.alerts(workspace, &filter).unwrap()
}

fn ids(alerts: &[AlertRecord]) -> BTreeSet<String> {
    alerts.iter().map(|a| a.resource_id.clone()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn findings_open_once_resolve_and_reopen() {
    let ws = TestWorkspace::start().await;
    let rules = rules(NO_ENVIRONMENT);
    let unlabelled: BTreeSet<String> = ws.sim.read(|s| {
        s.sources
            .iter()
            .filter(|s| s.label("environment").is_none())
            .map(|s| s.id.clone())
            .collect()
    });
    assert!(
        !unlabelled.is_empty(),
        "the simulated workspace has unlabelled sources"
    );

    // Baseline: one finding per non-compliant source.
    let first = ws.poll_rules(&rules).await.unwrap();
    assert_eq!(ids(&first.alerts), unlabelled);
    assert!(
        first
            .alerts
            .iter()
            .all(|a| a.status == AlertStatus::Open
                && a.summary.ends_with("has no environment label"))
    );

    // Nothing changed: no repeat, and no evaluation at all.
    let quiet = ws.poll_rules(&rules).await.unwrap();
    assert!(quiet.alerts.is_empty(), "{:?}", quiet.alerts);
    assert_eq!(
        quiet.rule_evaluations, 0,
        "an unchanged rule is not re-run on unchanged resources"
    );

    // A labelled source loses its label: exactly one new finding, one evaluation.
    let target = ws.sim.read(|s| {
        s.sources
            .iter()
            .find(|s| s.label("environment").is_some())
            .unwrap()
            .id
            .clone()
    });
    ws.sim
        .apply(Mutation::RemoveSourceLabel {
            source_id: target.clone(),
            key: "environment".into(),
        })
        .unwrap();
    let opened = ws.poll_rules(&rules).await.unwrap();
    assert_eq!(ids(&opened.alerts), BTreeSet::from([target.clone()]));
    assert_eq!(opened.rule_evaluations, 1);
    let first_id = opened.alerts[0].id;

    // Fixed: resolved as compliant.
    ws.sim
        .apply(Mutation::SetSourceLabel {
            source_id: target.clone(),
            key: "environment".into(),
            value: "prod".into(),
        })
        .unwrap();
    let resolved = ws.poll_rules(&rules).await.unwrap();
    assert_eq!(resolved.alerts.len(), 1);
    assert_eq!(resolved.alerts[0].id, first_id);
    assert_eq!(resolved.alerts[0].status, AlertStatus::Resolved);
    assert_eq!(resolved.alerts[0].resolution.as_deref(), Some("compliant"));

    // Regression: a new finding, the old one stays resolved.
    ws.sim
        .apply(Mutation::RemoveSourceLabel {
            source_id: target.clone(),
            key: "environment".into(),
        })
        .unwrap();
    let reopened = ws.poll_rules(&rules).await.unwrap();
    assert_eq!(reopened.alerts.len(), 1);
    assert_ne!(reopened.alerts[0].id, first_id);
    let history: Vec<_> = alerts(
        &ws,
        AlertFilter {
            rule_id: Some("source-without-environment".into()),
            ..Default::default()
        },
    )
    .into_iter()
    .filter(|a| a.resource_id == target)
    .map(|a| (a.status, a.resolution))
    .collect();
    assert_eq!(
        history,
        vec![
            (AlertStatus::Open, None),
            (AlertStatus::Resolved, Some("compliant".into()))
        ]
    );

    // The finding explains itself: what the condition read.
    let explanation = &reopened.alerts[0].explanation;
    assert!(
        explanation
            .to_string()
            .contains("has_label(resource, \\\"environment\\\")"),
        "{explanation}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn change_alerts_fire_once_per_change_with_the_field_changes() {
    let ws = TestWorkspace::start().await;
    let rules = rules(OWNER_GRANTED);
    let baseline = ws.poll_rules(&rules).await.unwrap();
    assert!(
        baseline.alerts.is_empty(),
        "a baseline raises no change alerts"
    );

    let (user, email) = ws.sim.read(|s| {
        let u = s
            .users
            .iter()
            .find(|u| {
                !u.permissions
                    .iter()
                    .any(|p| p.role_name == "Workspace Owner")
            })
            .unwrap();
        (u.id.clone(), u.email.clone())
    });
    ws.sim
        .apply(Mutation::GrantRole {
            user_id: user.clone(),
            role_name: "Workspace Owner".into(),
        })
        .unwrap();
    ws.sim
        .apply(Mutation::AddUser {
            email: "ceo@acme.io".into(),
            name: "New CEO".into(),
            role_name: "Workspace Owner".into(),
        })
        .unwrap();
    let outcome = ws.poll_rules(&rules).await.unwrap();
    let mut fired: Vec<_> = outcome
        .alerts
        .iter()
        .map(|a| (a.status, a.summary.clone()))
        .collect();
    fired.sort_by(|a, b| a.1.cmp(&b.1));
    assert_eq!(
        fired,
        vec![
            (
                AlertStatus::Fired,
                "Workspace Owner granted to ceo@acme.io".to_string()
            ),
            (
                AlertStatus::Fired,
                format!("Workspace Owner granted to {email}")
            ),
        ]
    );
    let stored = alerts(&ws, AlertFilter::default());
    assert_eq!(stored.len(), 2);
    assert!(
        stored.iter().all(|a| a.change_id.is_some()),
        "change alerts point at their change"
    );
    let granted = stored.iter().find(|a| a.resource_id == user).unwrap();
    assert!(
        granted.explanation["changes"]
            .to_string()
            .contains("permissions[roleId="),
        "{}",
        granted.explanation
    );

    // The next poll sees no new change: no repeat.
    assert!(ws.poll_rules(&rules).await.unwrap().alerts.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_baseline_can_be_alerted_on_when_configured() {
    use segwatch::poll::Poller;
    use segwatch_api::segment::SegmentClient;
    use segwatch_core::redact::SecretPolicy;

    let user_added = OWNER_GRANTED
        .replace("owner-granted", "owner-present")
        .replace(
            "has_role(after, \"Workspace Owner\") && !has_role(before, \"Workspace Owner\")",
            "has_role(after, \"Workspace Owner\")",
        );
    let ws = TestWorkspace::start().await;
    let owners = ws
        .sim
        .read(|s| s.users_with_workspace_role("Workspace Owner").count());
    let client = SegmentClient::new(ws.client_config()).unwrap();
    let poller = Poller::new(client, SecretPolicy::default(), "default")
        .with_rules(rules(&user_added), true);
    let outcome = poller.poll(&mut ws.store()).await.unwrap();
    assert!(outcome.is_baseline());
    assert_eq!(
        outcome.alerts.len(),
        owners,
        "every owner of the baseline counts as added"
    );
    assert!(
        outcome
            .alerts
            .iter()
            .all(|a| a.status == AlertStatus::Fired)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exceptions_with_and_without_expiry() {
    let ws = TestWorkspace::start().await;
    let (exempt_id, other) = ws.sim.read(|s| {
        let mut unlabelled = s
            .sources
            .iter()
            .filter(|s| s.label("environment").is_none());
        let a = unlabelled.next().unwrap().id.clone();
        let b = s
            .sources
            .iter()
            .find(|s| s.label("environment").is_some())
            .unwrap()
            .id
            .clone();
        (a, b)
    });
    ws.sim
        .apply(Mutation::RemoveSourceLabel {
            source_id: other.clone(),
            key: "environment".into(),
        })
        .unwrap();
    let with_exceptions = format!(
        "{NO_ENVIRONMENT}  exceptions:\n    - id: {exempt_id}\n      reason: sandbox source\n    - id: {other}\n      reason: was a migration\n      expires: 2020-01-31\n"
    );
    let outcome = ws.poll_rules(&rules(&with_exceptions)).await.unwrap();
    let opened = ids(&outcome.alerts);
    assert!(!opened.contains(&exempt_id), "an active exception applies");
    assert!(
        opened.contains(&other),
        "an expired exception no longer applies"
    );

    // Adding an exception for an open finding resolves it as exempted.
    let later = format!("{with_exceptions}    - id: {other}\n      reason: accepted risk\n");
    let outcome = ws.poll_rules(&rules(&later)).await.unwrap();
    let resolved: Vec<_> = outcome
        .alerts
        .iter()
        .map(|a| (a.resource_id.clone(), a.resolution.clone()))
        .collect();
    assert_eq!(resolved, vec![(other, Some("exempted".to_string()))]);
}

const EXTERNAL_USER: &str = r#"
- id: external-user
  title: User outside the company domain
  description: Accounts should belong to acme.io.
  remediation: Remove the account or document it.
  severity: low
  resource: user
  kind: compliance
  when: 'email_domain(resource.email) != "acme.io"'
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn removed_resources_and_removed_rules_resolve_their_findings() {
    let ws = TestWorkspace::start().await;
    let both = format!("{NO_ENVIRONMENT}{EXTERNAL_USER}");
    let first = ws.poll_rules(&rules(&both)).await.unwrap();
    let external: Vec<_> = first
        .alerts
        .iter()
        .filter(|a| a.rule_id == "external-user")
        .collect();
    assert!(
        !external.is_empty(),
        "the simulated workspace has external users"
    );

    // An external user is deleted: their finding resolves as removed.
    let gone = external[0].resource_id.clone();
    ws.sim
        .apply(Mutation::RemoveUser {
            user_id: gone.clone(),
        })
        .unwrap();
    let outcome = ws.poll_rules(&rules(&both)).await.unwrap();
    let resolved: Vec<_> = outcome
        .alerts
        .iter()
        .map(|a| (a.resource_id.clone(), a.resolution.clone()))
        .collect();
    assert_eq!(resolved, vec![(gone, Some("removed".to_string()))]);

    // The user rule is dropped: its findings resolve; the source rule's stay open.
    let outcome = ws.poll_rules(&rules(NO_ENVIRONMENT)).await.unwrap();
    assert_eq!(outcome.alerts.len(), external.len() - 1);
    assert!(
        outcome.alerts.iter().all(
            |a| a.rule_id == "external-user" && a.resolution.as_deref() == Some("rule_removed")
        )
    );
    let open = alerts(
        &ws,
        AlertFilter {
            status: Some(AlertStatus::Open),
            ..Default::default()
        },
    );
    assert!(
        !open.is_empty()
            && open
                .iter()
                .all(|a| a.rule_id == "source-without-environment")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalid_rule_set_stops_poll_before_any_request() {
    let ws = TestWorkspace::start().await;
    let bad = ws.dir.path().join("bad.yaml");
    std::fs::write(
        &bad,
        NO_ENVIRONMENT.replace("severity: medium", "severity: urgent"),
    )
    .unwrap();
    ws.segwatch()
        .env("SEGWATCH_RULES__PATH", bad.to_str().unwrap())
        .args(["poll"])
        .code(1)
        .stderr_contains(&[
            "bad.yaml:6",
            "source-without-environment",
            "severity",
            "urgent",
        ]);
    assert_eq!(ws.sim.request_count(), 0, "nothing was fetched");
    Segwatch::new()
        .args(["rules", "validate", bad.to_str().unwrap()])
        .code(1)
        .stderr_contains(&["bad.yaml:6"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_validates_dry_runs_and_lists_alerts() {
    let ws = TestWorkspace::start().await;
    Segwatch::new()
        .args(["rules", "validate", STARTER_RULES])
        .success()
        .stdout_contains(&["compliance"]);
    // A poll through the binary evaluates the starter pack and prints its findings.
    let run = ws.segwatch().args(["poll"]).success();
    assert!(run.stdout().contains("FINDING ["), "{}", run.stdout());
    let open = ws
        .segwatch()
        .args(["alerts", "--status", "open", "--format", "json"])
        .success()
        .json();
    assert!(!open.as_array().unwrap().is_empty());
    assert!(
        open.as_array()
            .unwrap()
            .iter()
            .all(|a| a["status"] == "open")
    );
    ws.segwatch()
        .args(["alerts", "--severity", "critical"])
        .success();

    // A dry run on the stored snapshot records nothing.
    let before = alerts(&ws, AlertFilter::default()).len();
    let dry = ws
        .segwatch()
        .args(["rules", "test", "--format", "json"])
        .success()
        .json();
    assert!(
        dry["results"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["outcome"] == "fires")
    );
    ws.segwatch()
        .args(["rules", "test"])
        .success()
        .stdout_contains(&["would fire (nothing recorded)"]);
    assert_eq!(alerts(&ws, AlertFilter::default()).len(), before);
}
