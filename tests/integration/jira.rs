//! The Jira sink against the Jira stand-in: one issue per finding through its lifecycle, repeats
//! and lost answers never duplicating anything, each failure classified, `sinks test`, and the
//! daemon killed with SIGKILL mid-delivery.

use std::time::{Duration, Instant};

use segwatch_api::segment::SegmentClient;
use segwatch_core::alerts::{AlertRecord, AlertStatus};
use segwatch_core::ids::{AlertId, SnapshotId};
use segwatch_core::model::{Attribution, ResourceKind};
use segwatch_core::redact::SecretPolicy;
use segwatch_core::rules::RuleSet;
use segwatch_core::rules::Severity;
use segwatch_simulator::Mutation;
use segwatch_simulator::SimConfig;
use segwatch_sinks::{Message, SendError};
use segwatch_store::{AlertFilter, DeliveryStatus};
use segwatch_testkit::JiraStandIn;
use segwatch_testkit::jira::{JIRA_TOKEN, JIRA_TOKEN_ENV};
use serde_json::json;

use crate::util::{TestWorkspace, stop_daemon};

/// A finding of `source-without-environment` on `resource`, as alert row `id`.
fn finding(id: i64, resource: &str, status: AlertStatus) -> AlertRecord {
    let resolved = status == AlertStatus::Resolved;
    AlertRecord {
        id: AlertId(id),
        rule_id: "source-without-environment".into(),
        rule_kind: "compliance".into(),
        severity: Severity::High,
        title: "Source without environment label".into(),
        resource_kind: ResourceKind::Source,
        resource_id: resource.into(),
        resource_name: format!("{resource}-name"),
        snapshot_id: SnapshotId(3),
        change_id: None,
        status,
        opened_at: "2026-03-02T09:15:00.000Z".parse().unwrap(),
        resolved_at: resolved.then(|| "2026-03-02T10:15:00.000Z".parse().unwrap()),
        resolved_snapshot_id: resolved.then_some(SnapshotId(4)),
        resolution: resolved.then(|| "compliant".into()),
        summary: format!("{resource}-name has no environment label"),
        explanation: json!({"condition": "!has_label(resource, \"environment\")", "values": []}),
        remediation: "Add an environment label.".into(),
        tags: vec!["soc2:CC8.1".into()],
        attribution: Attribution::default(),
        workspace: "default".into(),
    }
}

fn alerts(ws: &TestWorkspace) -> Vec<AlertRecord> {
    let store = ws.store();
    let workspace = store.find_workspace("default").unwrap().unwrap();
    store.alerts(workspace, &AlertFilter::default()).unwrap()
}

fn failure(err: Result<(), SendError>) -> SendError {
    err.expect_err("the send fails")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_issue_per_finding_through_repeats_lost_answers_and_reopening() {
    let jira = JiraStandIn::start().await;
    let sink = jira.sink(jira.config());
    let opened = finding(1, "src_a", AlertStatus::Open);
    let uid = opened.finding_uid();

    // Raised: one issue, labelled with the uid, `segwatch` and the configured label.
    sink.send(&Message::Alert(&opened)).await.unwrap();
    let issues = jira.issues();
    assert_eq!(issues.len(), 1);
    assert_eq!(
        issues[0].labels(),
        vec![uid.clone(), "segwatch".into(), "posture".into()]
    );
    assert_eq!(issues[0].status, "To Do");
    let search = jira.calls()[0].clone();
    assert_eq!(search.path, "/rest/api/3/search/jql");
    assert_eq!(
        search.body.unwrap()["jql"],
        format!("project = \"SEC\" AND labels = \"{uid}\" ORDER BY created ASC")
    );

    // The same event again (a redelivery): nothing new.
    sink.send(&Message::Alert(&opened)).await.unwrap();
    assert_eq!(jira.issues().len(), 1);
    assert!(jira.issues()[0].comments.is_empty());

    // Resolved: a comment, then the Done transition; a repeat adds neither.
    let resolved = finding(1, "src_a", AlertStatus::Resolved);
    for _ in 0..2 {
        sink.send(&Message::Alert(&resolved)).await.unwrap();
    }
    let issue = &jira.issues()[0];
    assert_eq!(issue.status, "Done");
    assert_eq!(issue.transitions, vec!["Done"]);
    assert_eq!(issue.comments_with("event alert-1-resolved"), 1);

    // Re-opened (a new alert row, the same uid): back to To Do, one comment saying so.
    let reopened = finding(2, "src_a", AlertStatus::Open);
    assert_eq!(reopened.finding_uid(), uid);
    for _ in 0..2 {
        sink.send(&Message::Alert(&reopened)).await.unwrap();
    }
    let issue = &jira.issues()[0];
    assert_eq!(issue.transitions, vec!["Done", "To Do"]);
    assert_eq!(issue.comments_with("event alert-2-raised"), 1);
    assert_eq!(issue.comments_with("Re-opened"), 1);

    // The resolution's comment is made but its answer lost: the retry neither repeats it nor
    // skips the transition.
    jira.lose_answers
        .store(1, std::sync::atomic::Ordering::SeqCst);
    let resolved = finding(2, "src_a", AlertStatus::Resolved);
    assert!(matches!(
        failure(sink.send(&Message::Alert(&resolved)).await),
        SendError::Retryable { .. }
    ));
    sink.send(&Message::Alert(&resolved)).await.unwrap();
    let issue = &jira.issues()[0];
    assert_eq!(issue.comments_with("event alert-2-resolved"), 1);
    assert_eq!(issue.transitions, vec!["Done", "To Do", "Done"]);

    // A create whose answer is lost: the retry finds the issue by its label, makes no second.
    let other = finding(3, "src_b", AlertStatus::Open);
    jira.lose_answers
        .store(1, std::sync::atomic::Ordering::SeqCst);
    assert!(matches!(
        failure(sink.send(&Message::Alert(&other)).await),
        SendError::Retryable { .. }
    ));
    sink.send(&Message::Alert(&other)).await.unwrap();
    let theirs = jira.issues_labelled(&other.finding_uid());
    assert_eq!(theirs.len(), 1);
    assert!(
        theirs[0].comments.is_empty(),
        "no 'raised again' for a repeat"
    );
    assert_eq!(jira.issues().len(), 2);
    let creates = jira
        .calls()
        .iter()
        .filter(|c| c.method == "POST" && c.path == "/rest/api/3/issue")
        .count();
    assert_eq!(creates, 2, "one create per finding, none on a retry");
    assert!(
        jira.calls().iter().all(|c| c.status != 401),
        "every call authenticated"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_failure_is_classified_with_jiras_message_and_never_the_token() {
    let jira = JiraStandIn::start().await;
    let raised = finding(1, "src_a", AlertStatus::Open);

    // Down, rate limited, too large: retryable (429 with its Retry-After), or TooLarge.
    let sink = jira.sink(jira.config());
    jira.set_status(503);
    assert!(matches!(
        failure(sink.send(&Message::Alert(&raised)).await),
        SendError::Retryable {
            retry_after: None,
            ..
        }
    ));
    jira.set_status(429);
    match failure(sink.send(&Message::Alert(&raised)).await) {
        SendError::Retryable { retry_after, .. } => {
            assert_eq!(retry_after, Some(Duration::from_secs(7)))
        }
        other => panic!("{other:?}"),
    }
    jira.set_status(413);
    assert!(matches!(
        failure(sink.send(&Message::Alert(&raised)).await),
        SendError::TooLarge { .. }
    ));
    jira.set_status(200);
    assert!(jira.issues().is_empty());

    // A wrong token: permanent, Jira's message, not the token.
    let mut config = jira.config();
    config.token = "not-the-token-3e1".to_owned().into();
    let error = failure(jira.sink(config).send(&Message::Alert(&raised)).await);
    let SendError::Permanent { message } = &error else {
        panic!("{error:?}")
    };
    assert!(
        message.contains("HTTP 401") && message.contains("must be authenticated"),
        "{message}"
    );
    assert!(!message.contains("not-the-token-3e1") && !message.contains(JIRA_TOKEN));

    // Jira refuses a field (400): permanent, naming the field.
    let mut config = jira.config();
    config.priorities.insert(Severity::High, "Urgent".into());
    let error = failure(jira.sink(config).send(&Message::Alert(&raised)).await);
    assert!(
        error
            .to_string()
            .contains("HTTP 400: priority: Specify a valid priority"),
        "{error}"
    );
    assert!(matches!(error, SendError::Permanent { .. }));

    // A resolve transition the workflow lacks: permanent, naming the ones it has.
    let mut config = jira.config();
    config.resolve_transition = "Close Issue".into();
    let sink = jira.sink(config);
    sink.send(&Message::Alert(&raised)).await.unwrap();
    let error = failure(
        sink.send(&Message::Alert(&finding(1, "src_a", AlertStatus::Resolved)))
            .await,
    );
    assert!(matches!(error, SendError::Permanent { .. }));
    assert!(
        error
            .to_string()
            .contains("no transition named `Close Issue` (resolve_transition); available: `In Progress`, `Done`"),
        "{error}"
    );

    // Resolving a finding no issue carries: permanent, saying so.
    let error = failure(
        sink.send(&Message::Alert(&finding(9, "src_z", AlertStatus::Resolved)))
            .await,
    );
    assert!(error.to_string().contains("nothing to resolve"), "{error}");

    // Change alerts turned off: no call at all.
    let mut config = jira.config();
    config.change_alerts = false;
    let before = jira.calls().len();
    let mut change = finding(10, "usr_1", AlertStatus::Fired);
    change.rule_kind = "change".into();
    jira.sink(config)
        .send(&Message::Alert(&change))
        .await
        .unwrap();
    assert_eq!(jira.calls().len(), before);
}

/// Every user is a finding.
const EVERY_USER: &str = r#"
- id: every-user
  title: A user exists
  description: Test rule.
  remediation: None.
  severity: high
  resource: user
  kind: compliance
  when: 'true'
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_storm_files_one_issue_per_finding_never_a_digest_nor_a_summary() {
    let ws = TestWorkspace::with(SimConfig {
        users: 25,
        ..SimConfig::default()
    })
    .await;
    let jira = JiraStandIn::start().await;
    let rules = std::sync::Arc::new(RuleSet::from_yaml("rules.yaml", EVERY_USER).unwrap());
    let client = SegmentClient::new(ws.client_config()).unwrap();
    let poller = segwatch::poll::Poller::new(client, SecretPolicy::default(), "default")
        .with_rules(rules, false)
        .with_sinks(std::sync::Arc::new(vec![jira.sink(jira.config())]));
    let mut store = ws.store();
    let outcome = poller.poll(&mut store).await.unwrap();
    let users = outcome.alerts.len();
    assert!(users >= 25, "{users}");

    // Past max_messages_per_run (20), the rest waits for the next run: no summary.
    let report = poller.deliver_queued(&mut store).await.unwrap().unwrap();
    assert_eq!((report.sent, report.summarised, report.digests), (20, 0, 0));
    assert_eq!(jira.issues().len(), 20);
    while jira.issues().len() < users {
        let report = poller.deliver_queued(&mut store).await.unwrap().unwrap();
        assert!(report.sent > 0 && report.summarised == 0, "{report:?}");
    }
    let mut labels: Vec<String> = jira
        .issues()
        .iter()
        .map(|i| i.labels()[0].clone())
        .collect();
    labels.sort();
    labels.dedup();
    assert_eq!(labels.len(), users, "one issue per finding");
    assert!(
        store
            .deliveries(1, Some(DeliveryStatus::Summarised), 100)
            .unwrap()
            .is_empty()
    );
}

const CONFIG_RULE: &str = r#"
- id: source-without-environment
  title: Source without environment label
  description: Every source must say which environment it belongs to.
  remediation: Add an environment label.
  severity: high
  resource: source
  kind: compliance
  when: 'resource.id == "TARGET" && !has_label(resource, "environment")'
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sinks_test_checks_the_credentials_and_project_and_creates_nothing() {
    let ws = TestWorkspace::start().await;
    let jira = JiraStandIn::start().await;
    let config = ws.dir.path().join("segwatch.toml");
    std::fs::write(&config, jira.sink_toml()).unwrap();
    let run = ws
        .segwatch()
        .env(JIRA_TOKEN_ENV, JIRA_TOKEN)
        .args(["--config", config.to_str().unwrap(), "sinks", "test"])
        .success()
        .stdout_contains(&["jira: ok"]);
    let calls: Vec<String> = jira
        .calls()
        .iter()
        .map(|c| format!("{} {}", c.method, c.path))
        .collect();
    assert_eq!(
        calls,
        vec!["GET /rest/api/3/myself", "GET /rest/api/3/project/SEC"]
    );
    assert!(jira.issues().is_empty());
    assert!(!(run.stdout() + &run.stderr()).contains(JIRA_TOKEN));

    // A project the account cannot see: the sink fails, quoting Jira.
    std::fs::write(&config, jira.sink_toml().replace("\"SEC\"", "\"OPS\"")).unwrap();
    let run = ws
        .segwatch()
        .env(JIRA_TOKEN_ENV, JIRA_TOKEN)
        .args(["--config", config.to_str().unwrap(), "sinks", "test"])
        .code(1)
        .stdout_contains(&["jira: FAILED", "No project could be found with key 'OPS'"]);
    assert!(!(run.stdout() + &run.stderr()).contains(JIRA_TOKEN));

    // A site over plain http: a configuration error naming the key and the sink.
    std::fs::write(
        &config,
        jira.sink_toml()
            .replace(&jira.base_url, "http://acme.atlassian.net"),
    )
    .unwrap();
    let run = ws
        .segwatch()
        .env(JIRA_TOKEN_ENV, JIRA_TOKEN)
        .args(["--config", config.to_str().unwrap(), "sinks", "test"])
        .output();
    assert_eq!(run.output.status.code(), Some(1), "{}", run.stderr());
    assert!(
        run.stderr().contains("sinks.base_url") && run.stderr().contains("sink `jira`"),
        "{}",
        run.stderr()
    );

    // No token configured: a configuration error naming the key and the sink.
    std::fs::write(&config, jira.sink_toml()).unwrap();
    let run = ws
        .segwatch()
        .args(["--config", config.to_str().unwrap(), "sinks", "test"])
        .output();
    assert_eq!(run.output.status.code(), Some(1), "{}", run.stderr());
    assert!(
        run.stderr().contains("sinks.token_env") && run.stderr().contains("sink `jira`"),
        "{}",
        run.stderr()
    );
}

/// Waits (at most 30 s) until `ready` holds for the stand-in.
async fn wait_for(what: &str, jira: &JiraStandIn, ready: impl Fn(&JiraStandIn) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !ready(jira) {
        assert!(
            Instant::now() < deadline,
            "timed out waiting until {what}: {:#?}",
            jira.calls()
                .iter()
                .map(|c| format!("{} {} {}", c.method, c.path, c.status))
                .collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_finding_keeps_one_issue_across_an_outage_a_reopening_and_a_kill_9() {
    let ws = TestWorkspace::start().await;
    let jira = JiraStandIn::start().await;
    // A labelled source: its finding opens only when the label goes.
    let target = ws.sim.read(|s| {
        s.sources
            .iter()
            .find(|s| s.label("environment").is_some())
            .unwrap()
            .id
            .clone()
    });
    let rules = ws.dir.path().join("rules.yaml");
    std::fs::write(&rules, CONFIG_RULE.replace("TARGET", &target)).unwrap();
    let config = ws.dir.path().join("segwatch.toml");
    std::fs::write(
        &config,
        format!(
            "{}retry_base_secs = 1\nretry_max_secs = 1\nmax_attempts = 100\n",
            jira.sink_toml()
        ),
    )
    .unwrap();
    let daemon = || {
        ws.segwatch()
            .env(JIRA_TOKEN_ENV, JIRA_TOKEN)
            .env("SEGWATCH_RULES__PATH", rules.to_str().unwrap())
            .env("SEGWATCH_SCHEDULE__CRON", "* * * * * *")
            // The stderr pipe is drained only at exit: keep it to warnings and errors.
            .env("RUST_LOG", "error")
            .args(["--config", config.to_str().unwrap(), "run"])
            .spawn()
    };
    let set_label = |on: bool| {
        let mutation = if on {
            Mutation::SetSourceLabel {
                source_id: target.clone(),
                key: "environment".into(),
                value: "prod".into(),
            }
        } else {
            Mutation::RemoveSourceLabel {
                source_id: target.clone(),
                key: "environment".into(),
            }
        };
        ws.sim.apply(mutation).unwrap();
    };

    // The receiver is down when the finding opens: the delivery is retried, nothing is lost.
    jira.set_status(503);
    let child = daemon();
    ws.wait_for_db("the first poll completed", |s| {
        s.snapshots(1, 10).is_ok_and(|l| !l.is_empty())
    })
    .await;
    set_label(false);
    wait_for("a refused attempt", &jira, |j| {
        j.calls().iter().any(|c| c.status == 503)
    })
    .await;
    jira.set_status(200);
    wait_for("the issue", &jira, |j| j.issues().len() == 1).await;
    let uid = alerts(&ws)[0].finding_uid();
    assert_eq!(jira.issues_labelled(&uid).len(), 1);

    // Resolved: a comment and the Done transition.
    set_label(true);
    wait_for("the issue is done", &jira, |j| {
        j.issues()[0].status == "Done"
    })
    .await;

    // Regresses: the re-open's comment is made, and the daemon is killed before it hears so.
    *jira.hang.lock().unwrap() = Some(("POST".into(), "/comment".into()));
    set_label(false);
    wait_for("the re-open comment", &jira, |j| {
        j.issues()[0].comments.len() == 2
    })
    .await;
    let mut child = child;
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    *jira.hang.lock().unwrap() = None;
    let alerts = alerts(&ws);
    let reopened = alerts
        .iter()
        .find(|a| a.status == AlertStatus::Open)
        .expect("the re-opened finding")
        .clone();
    assert_eq!(reopened.finding_uid(), uid);
    let pending = ws
        .store()
        .deliveries(1, Some(DeliveryStatus::Pending), 10)
        .unwrap();
    assert_eq!(
        pending.len(),
        1,
        "the killed daemon never recorded the re-open as sent"
    );

    // Started again on the same database: the re-open is delivered again, and recognised.
    let child = daemon();
    ws.wait_for_db("the re-open delivery is sent", |s| {
        s.deliveries(1, Some(DeliveryStatus::Pending), 10)
            .is_ok_and(|d| d.is_empty())
    })
    .await;
    set_label(true);
    wait_for("the issue is done again", &jira, |j| {
        j.issues()[0].status == "Done" && j.issues()[0].comments.len() == 3
    })
    .await;
    let _ = stop_daemon(child);

    // Exactly the documented calls: one issue, a comment when it re-opened, a transition
    // (and a comment) each time it resolved, all on that one issue.
    let issues = jira.issues();
    assert_eq!(issues.len(), 1, "{issues:#?}");
    let issue = &issues[0];
    assert_eq!(issue.labels()[0], uid);
    assert_eq!(issue.transitions, vec!["Done", "To Do", "Done"]);
    let first = alerts
        .iter()
        .find(|a| a.status == AlertStatus::Resolved)
        .unwrap();
    for (event, count) in [
        (format!("event alert-{}-resolved", first.id), 1),
        (format!("event alert-{}-raised", reopened.id), 1),
        (format!("event alert-{}-resolved", reopened.id), 1),
    ] {
        assert_eq!(issue.comments_with(&event), count, "{event}");
    }
    let calls = jira.calls();
    let creates = calls
        .iter()
        .filter(|c| c.method == "POST" && c.path == "/rest/api/3/issue")
        .collect::<Vec<_>>();
    assert_eq!(creates.iter().filter(|c| c.status == 201).count(), 1);
    for call in &calls {
        let on_issue = call.path.starts_with("/rest/api/3/issue/");
        assert!(
            !on_issue
                || call
                    .path
                    .starts_with(&format!("/rest/api/3/issue/{}/", issue.key)),
            "a call on another issue: {} {}",
            call.method,
            call.path
        );
        assert_ne!(call.status, 401, "every call authenticated");
    }
    assert!(calls.iter().any(|c| c.status == 503), "the outage was met");

    // The token is nowhere in the database.
    let mut stored = String::new();
    for suffix in ["", "-wal"] {
        let mut path = ws.db().into_os_string();
        path.push(suffix);
        stored.push_str(&String::from_utf8_lossy(
            &std::fs::read(&path).unwrap_or_default(),
        ));
    }
    assert!(
        stored.contains("source-without-environment"),
        "the scan reads alerts"
    );
    assert!(
        !stored.contains(JIRA_TOKEN),
        "the Jira token leaked into the database"
    );
}
