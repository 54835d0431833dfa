//! The PagerDuty sink against the Events API v2 stand-in: a finding's lifecycle through the
//! daemon across an outage and a `kill -9` (one incident per open period, each resolved after
//! its trigger, nothing else), many findings as many incidents (never a digest or a summary),
//! how PagerDuty's answers are retried or given up, change alerts, and `segwatch sinks test`,
//! which pages nobody.

use std::sync::Arc;
use std::time::{Duration, Instant};

use segwatch::poll::Poller;
use segwatch_api::segment::SegmentClient;
use segwatch_core::redact::SecretPolicy;
use segwatch_core::rules::RuleSet;
use segwatch_simulator::{Mutation, SimConfig};
use segwatch_sinks::pagerduty::ChangeAlerts;
use segwatch_sinks::{Message, SendError, Sink};
use segwatch_store::{AlertFilter, DeliveryStatus, SnapshotStatus, Store};
use segwatch_testkit::{PAGERDUTY_KEY, PagerDutyMode, PagerDutyOutcome, PagerDutyStandIn};

use crate::util::TestWorkspace;

/// A finding only while a source carries the `pd-drill` label: the test opens and closes it.
const DRILL_RULE: &str = r#"
- id: pagerduty-drill
  title: Source labelled for the PagerDuty drill
  description: Test rule.
  remediation: Remove the pd-drill label.
  severity: high
  resource: source
  kind: compliance
  when: 'has_label(resource, "pd-drill")'
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
"#;

/// Every second: the daemon polls (and so delivers) often enough for a test.
const EVERY_SECOND: &str = "* * * * * *";

/// Waits (at most 30 s) until `ready` holds.
async fn wait_until(what: &str, ready: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !ready() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn complete(store: &Store) -> usize {
    store
        .snapshots(1, 1000)
        .unwrap_or_default()
        .iter()
        .filter(|s| s.status == SnapshotStatus::Complete)
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_finding_is_one_incident_per_open_period_across_an_outage_and_a_kill_9() {
    let ws = TestWorkspace::start().await;
    let pd = PagerDutyStandIn::start().await;
    let source = ws.sim.read(|s| s.sources[0].id.clone());
    let rules = ws.dir.path().join("rules.yaml");
    std::fs::write(&rules, DRILL_RULE).unwrap();
    let config = ws.dir.path().join("segwatch.toml");
    std::fs::write(
        &config,
        format!(
            "{}retry_base_secs = 1\nretry_max_secs = 2\nmax_attempts = 100\n",
            pd.sink_toml("pager", "PD_ROUTING_KEY")
        ),
    )
    .unwrap();
    let daemon = || {
        ws.segwatch()
            .env("SEGWATCH_SCHEDULE__CRON", EVERY_SECOND)
            .env("SEGWATCH_RULES__PATH", rules.to_str().unwrap())
            .env("PD_ROUTING_KEY", PAGERDUTY_KEY)
            .args(["--config", config.to_str().unwrap(), "run"])
            .spawn()
    };
    let label = |on: bool| {
        let m = if on {
            Mutation::SetSourceLabel {
                source_id: source.clone(),
                key: "pd-drill".into(),
                value: "on".into(),
            }
        } else {
            Mutation::RemoveSourceLabel {
                source_id: source.clone(),
                key: "pd-drill".into(),
            }
        };
        ws.sim.apply(m).unwrap();
    };
    let incidents = || pd.incidents();

    let mut child = daemon();
    ws.wait_for_db("the baseline poll", |s| complete(s) >= 1)
        .await;
    assert!(pd.requests().is_empty(), "no finding, no event");

    // The finding opens while PagerDuty is down: its trigger meets 503 and waits.
    pd.set_mode(PagerDutyMode::Unavailable).await;
    label(true);
    wait_until("the trigger met the outage", || {
        pd.requests()
            .iter()
            .any(|r| r.outcome == PagerDutyOutcome::Down(503) && r.action() == Some("trigger"))
    })
    .await;
    assert!(incidents().is_empty());

    // Back up: the retried trigger opens the incident; the fix resolves it.
    pd.set_mode(PagerDutyMode::Up).await;
    wait_until("the first incident opened", || incidents().len() == 1).await;
    label(false);
    wait_until("the first incident resolved", || incidents()[0].resolved).await;

    // The finding regresses. PagerDuty takes the trigger but answers late, and the daemon is
    // killed (SIGKILL: no handler runs) before it reads the answer: the delivery stays queued.
    pd.hold_answers(Duration::from_secs(30));
    label(true);
    wait_until("the second incident opened", || incidents().len() == 2).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    child.kill().unwrap();
    let killed = child.wait_with_output().unwrap();
    pd.hold_answers(Duration::ZERO);

    // Restarted on the same database while PagerDuty refuses connections: the queued trigger
    // fails and waits; once PagerDuty is back it is sent again, and deduplicated.
    pd.set_mode(PagerDutyMode::Closed).await;
    let child = daemon();
    ws.wait_for_db("the redelivery met a closed port", |s| {
        s.deliveries(1, Some(DeliveryStatus::Failed), 10)
            .is_ok_and(|d| {
                d.iter().any(|d| {
                    d.last_error
                        .as_deref()
                        .is_some_and(|e| e.contains("PagerDuty request failed"))
                })
            })
    })
    .await;
    pd.set_mode(PagerDutyMode::Up).await;
    wait_until("the repeated trigger was deduplicated", || {
        pd.requests()
            .iter()
            .any(|r| r.outcome == PagerDutyOutcome::Deduplicated(2))
    })
    .await;
    label(false);
    wait_until("the second incident resolved", || incidents()[1].resolved).await;
    let stopped = segwatch_testkit::stop_daemon(child);
    assert!(stopped.status.success(), "{stopped:?}");

    // What PagerDuty shows: one incident per open period of the finding, both keyed by its
    // uid, each resolved after its trigger, and nothing else.
    let store = ws.store();
    let workspace = store.find_workspace("default").unwrap().unwrap();
    let alerts = store
        .alerts(
            workspace,
            &AlertFilter {
                rule_id: Some("pagerduty-drill".into()),
                ..Default::default()
            },
        )
        .unwrap();
    assert_eq!(
        alerts.len(),
        2,
        "opened, resolved, re-opened: two alert rows"
    );
    let uid = alerts[0].finding_uid();
    assert_eq!(alerts[1].finding_uid(), uid);
    let incidents = incidents();
    assert_eq!(incidents.len(), 2, "{incidents:?}");
    for incident in &incidents {
        assert_eq!(incident.dedup_key, uid);
        assert!(incident.resolved, "{incident:?}");
        assert!(incident.resolved_by.unwrap() > incident.opened_by);
        assert_eq!(incident.severity, "error", "high is PagerDuty's error");
        assert!(
            incident
                .summary
                .starts_with("Source labelled for the PagerDuty drill: source "),
            "{incident:?}"
        );
    }
    assert!(incidents[0].resolved_by.unwrap() < incidents[1].opened_by);
    assert_eq!(
        (incidents[0].triggers, incidents[1].triggers),
        (1, 2),
        "the trigger repeated after the kill went to the open incident"
    );
    let requests = pd.requests();
    let accepted: Vec<(&str, &PagerDutyOutcome)> = requests
        .iter()
        .filter(|r| r.status == 202)
        .map(|r| (r.action().unwrap(), &r.outcome))
        .collect();
    assert_eq!(
        accepted,
        [
            ("trigger", &PagerDutyOutcome::Opened(1)),
            ("resolve", &PagerDutyOutcome::Resolved(1)),
            ("trigger", &PagerDutyOutcome::Opened(2)),
            ("trigger", &PagerDutyOutcome::Deduplicated(2)),
            ("resolve", &PagerDutyOutcome::Resolved(2)),
        ]
    );
    assert!(
        requests
            .iter()
            .all(|r| r.status == 202 || r.outcome == PagerDutyOutcome::Down(503)),
        "nothing invalid, no resolve dropped: {requests:?}"
    );
    assert!(requests.iter().all(|r| r.dedup_key() == Some(uid.as_str())));
    assert_eq!(
        store
            .deliveries(workspace, Some(DeliveryStatus::Sent), 10)
            .unwrap()
            .len(),
        4,
        "every event delivered: two raised, two resolved"
    );

    // The routing key appears nowhere: not in the daemons' logs and output, not in the
    // database.
    let mut everything = String::new();
    for output in [&killed, &stopped] {
        everything.push_str(&String::from_utf8_lossy(&output.stdout));
        everything.push_str(&String::from_utf8_lossy(&output.stderr));
    }
    assert!(everything.contains("delivery failed"), "{everything}");
    for suffix in ["", "-wal"] {
        let mut path = ws.db().into_os_string();
        path.push(suffix);
        everything.push_str(&String::from_utf8_lossy(
            &std::fs::read(&path).unwrap_or_default(),
        ));
    }
    assert!(everything.contains("pagerduty-drill"));
    assert!(
        !everything.contains(PAGERDUTY_KEY),
        "the routing key leaked"
    );
}

/// One poll of `rules` with `sinks`, and its deliveries, as `segwatch poll` does.
async fn poll(ws: &TestWorkspace, rules: &str, sinks: Vec<Sink>) {
    let rules = Arc::new(RuleSet::from_yaml("rules.yaml", rules).unwrap());
    let client = SegmentClient::new(ws.client_config()).unwrap();
    let poller = Poller::new(client, SecretPolicy::default(), "default")
        .with_rules(rules, false)
        .with_sinks(Arc::new(sinks));
    let mut store = ws.store();
    poller.poll(&mut store).await.unwrap();
    poller.deliver_queued(&mut store).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn change_alerts_are_incidents_of_their_own_or_change_events() {
    let ws = TestWorkspace::with(SimConfig {
        users: 3,
        ..SimConfig::default()
    })
    .await;
    let incidents = PagerDutyStandIn::start().await;
    let changes = PagerDutyStandIn::start().await;
    let sinks = || {
        vec![
            incidents.sink("incidents", ChangeAlerts::Trigger),
            changes.sink("changes", ChangeAlerts::ChangeEvent),
        ]
    };
    poll(&ws, OWNER_GRANTED, sinks()).await;
    ws.sim
        .apply(Mutation::AddUser {
            email: "ceo@acme.io".into(),
            name: "New CEO".into(),
            role_name: "Workspace Owner".into(),
        })
        .unwrap();
    poll(&ws, OWNER_GRANTED, sinks()).await;

    let store = ws.store();
    let alerts = store.alerts(1, &AlertFilter::default()).unwrap();
    assert_eq!(alerts.len(), 1);
    let opened = incidents.incidents();
    assert_eq!(opened.len(), 1);
    assert_eq!(opened[0].dedup_key, alerts[0].finding_uid());
    assert_eq!(opened[0].severity, "critical");
    assert!(
        changes.incidents().is_empty(),
        "a change event opens no incident"
    );
    let events = changes.change_events();
    assert_eq!(events.len(), 1);
    assert!(
        events[0]["payload"]["summary"]
            .as_str()
            .unwrap()
            .starts_with("Workspace Owner granted: user "),
        "{}",
        events[0]
    );
    assert_eq!(
        events[0]["payload"]["custom_details"]["resource"]["id"],
        alerts[0].resource_id
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resolution_waits_for_its_failed_trigger() {
    let ws = TestWorkspace::start().await;
    let pd = PagerDutyStandIn::start().await;
    let sink = pd.sink("pager", ChangeAlerts::Trigger);
    let source = ws.sim.read(|s| s.sources[0].id.clone());
    poll(&ws, DRILL_RULE, vec![sink.clone()]).await;

    // The trigger fails and waits for its retry (30 s later)...
    pd.set_mode(PagerDutyMode::Unavailable).await;
    ws.sim
        .apply(Mutation::SetSourceLabel {
            source_id: source.clone(),
            key: "pd-drill".into(),
            value: "on".into(),
        })
        .unwrap();
    poll(&ws, DRILL_RULE, vec![sink.clone()]).await;
    // ...PagerDuty is back, and the finding resolves before the retry is due: the resolve is
    // due at once but must not overtake the trigger (PagerDuty would drop it, then open an
    // incident nothing resolves).
    pd.set_mode(PagerDutyMode::Up).await;
    ws.sim
        .apply(Mutation::RemoveSourceLabel {
            source_id: source,
            key: "pd-drill".into(),
        })
        .unwrap();
    poll(&ws, DRILL_RULE, vec![sink.clone()]).await;
    assert_eq!(
        pd.requests().len(),
        1,
        "only the failed trigger so far: {:?}",
        pd.requests()
    );

    let mut store = ws.store();
    let later = chrono::Utc::now() + chrono::Duration::hours(1);
    let report = segwatch_sinks::outbox::deliver_due(&mut store, &[sink], 1, later)
        .await
        .unwrap();
    assert_eq!(report.sent, 2);
    let outcomes: Vec<PagerDutyOutcome> = pd.requests().into_iter().map(|r| r.outcome).collect();
    assert_eq!(
        outcomes,
        [
            PagerDutyOutcome::Down(503),
            PagerDutyOutcome::Opened(1),
            PagerDutyOutcome::Resolved(1),
        ]
    );
}

/// Every user is a finding.
const EVERY_USER: &str = r#"
- id: every-user
  title: A user exists
  description: Test rule.
  remediation: None.
  severity: medium
  resource: user
  kind: compliance
  when: 'true'
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_findings_are_many_incidents_never_a_digest_and_the_rest_waits_for_the_next_run() {
    let ws = TestWorkspace::with(SimConfig {
        users: 25,
        ..SimConfig::default()
    })
    .await;
    let pd = PagerDutyStandIn::start().await;
    let sink = pd.sink("pager", ChangeAlerts::Trigger);
    assert!(sink.config.digest_threshold < 25 && sink.config.max_messages_per_run == 20);
    poll(&ws, EVERY_USER, vec![sink.clone()]).await;
    assert_eq!(
        pd.incidents().len(),
        20,
        "one run sends max_messages_per_run events"
    );
    let mut store = ws.store();
    assert_eq!(
        store
            .deliveries(1, Some(DeliveryStatus::Pending), 100)
            .unwrap()
            .len(),
        5,
        "the rest wait, neither digested nor summarised"
    );
    let report = segwatch_sinks::outbox::deliver_due(&mut store, &[sink], 1, chrono::Utc::now())
        .await
        .unwrap();
    assert_eq!((report.sent, report.digests, report.summarised), (5, 0, 0));
    let incidents = pd.incidents();
    assert_eq!(incidents.len(), 25);
    let mut keys: Vec<&str> = incidents.iter().map(|i| i.dedup_key.as_str()).collect();
    keys.sort_unstable();
    keys.dedup();
    assert_eq!(keys.len(), 25, "one incident per finding");
    assert!(incidents.iter().all(|i| i.severity == "warning"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pagerdutys_answers_are_retried_or_given_up_as_documented() {
    let pd = PagerDutyStandIn::start().await;
    let sink = pd.sink("pager", ChangeAlerts::Trigger);
    let send = || sink.send(&Message::Test);

    pd.set_mode(PagerDutyMode::RateLimited(Some(7))).await;
    match send().await {
        Err(SendError::Retryable {
            message,
            retry_after,
        }) => {
            assert_eq!(
                retry_after,
                Some(Duration::from_secs(7)),
                "Retry-After honoured"
            );
            assert!(
                message.contains("429") && message.contains("rate limited"),
                "{message}"
            );
        }
        other => panic!("{other:?}"),
    }
    pd.set_mode(PagerDutyMode::RateLimited(None)).await;
    assert!(matches!(
        send().await,
        Err(SendError::Retryable {
            retry_after: None,
            ..
        })
    ));
    for status in [500, 503] {
        pd.set_mode(PagerDutyMode::Answer(status)).await;
        assert!(
            matches!(send().await, Err(SendError::Retryable { .. })),
            "{status}"
        );
    }
    pd.set_mode(PagerDutyMode::Answer(413)).await;
    assert!(matches!(send().await, Err(SendError::TooLarge { .. })));
    pd.set_mode(PagerDutyMode::Answer(404)).await;
    assert!(matches!(send().await, Err(SendError::Permanent { .. })));
    pd.set_mode(PagerDutyMode::Closed).await;
    match send().await {
        Err(SendError::Retryable { message, .. }) => {
            assert!(message.starts_with("PagerDuty request failed"), "{message}");
        }
        other => panic!("{other:?}"),
    }
    pd.set_mode(PagerDutyMode::Up).await;
    send().await.unwrap();

    // A key PagerDuty does not know: 400, dead at once, with PagerDuty's errors and without
    // the key.
    let other = PagerDutyStandIn::with_key("0123456789abcdef0123456789abcdef").await;
    let wrong = other.sink("pager", ChangeAlerts::Trigger);
    match wrong.send(&Message::Test).await {
        Err(SendError::Permanent { message }) => {
            assert!(
                message.contains(
                    "HTTP 400 Bad Request: invalid event: Event object is invalid (Invalid routing key)"
                ),
                "{message}"
            );
            assert!(!message.contains(PAGERDUTY_KEY));
        }
        other => panic!("{other:?}"),
    }
    // Through the outbox, such a trigger is dead at once with PagerDuty's reason.
    let ws = TestWorkspace::with(SimConfig {
        users: 1,
        ..SimConfig::default()
    })
    .await;
    poll(&ws, EVERY_USER, vec![wrong]).await;
    let dead = ws
        .store()
        .deliveries(1, Some(DeliveryStatus::Dead), 10)
        .unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].attempts, 1, "not retried");
    let error = dead[0].last_error.as_deref().unwrap();
    assert!(error.contains("(Invalid routing key)"), "{error}");
    assert!(other.incidents().is_empty());

    // A ruleset key takes no change events: its test is a resolve of a key no alert has,
    // accepted and dropped.
    let ruleset_key = "R0123456789ABCDEF0123456789ABCDE";
    let ruleset = PagerDutyStandIn::with_key(ruleset_key).await;
    ruleset
        .sink_keyed("pager", ruleset_key, ChangeAlerts::Trigger)
        .send(&Message::Test)
        .await
        .unwrap();
    let probe = ruleset.requests();
    assert_eq!(probe.len(), 1);
    assert_eq!(
        (probe[0].action(), &probe[0].outcome),
        (Some("resolve"), &PagerDutyOutcome::Dropped)
    );
    let changes = ruleset.sink_keyed("changes", ruleset_key, ChangeAlerts::ChangeEvent);
    assert!(
        changes.send(&Message::Test).await.is_ok(),
        "the test avoids change events for a ruleset key whatever change_alerts says"
    );

    let statuses: Vec<u16> = pd.requests().iter().map(|r| r.status).collect();
    assert_eq!(statuses, [429, 429, 500, 503, 413, 404, 202]);
    assert!(pd.incidents().is_empty(), "a test opens no incident");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sinks_test_sends_a_change_event_and_pages_nobody() {
    let ws = TestWorkspace::start().await;
    let pd = PagerDutyStandIn::start().await;
    let config = ws.dir.path().join("segwatch.toml");
    std::fs::write(&config, pd.sink_toml("pager", "PD_ROUTING_KEY")).unwrap();
    let test = |key: &str| {
        ws.segwatch().env("PD_ROUTING_KEY", key).args([
            "--config",
            config.to_str().unwrap(),
            "sinks",
            "test",
        ])
    };
    let run = test(PAGERDUTY_KEY).success().stdout_is("pager: ok\n");
    assert!(!run.stdout().contains(PAGERDUTY_KEY));
    let events = pd.change_events();
    assert_eq!(events.len(), 1, "{:?}", pd.requests());
    assert!(
        events[0]["payload"]["summary"]
            .as_str()
            .unwrap()
            .contains("nobody paged")
    );
    assert!(pd.incidents().is_empty());

    // A key of the right shape that PagerDuty refuses: the precise answer, exit 1.
    let wrong = "0123456789abcdef0123456789abcdef";
    let run = test(wrong).code(1);
    assert_eq!(
        run.stdout(),
        "pager: FAILED: PagerDuty answered HTTP 400 Bad Request: invalid event: Event object is invalid (Invalid routing key)\n"
    );
    // A key of the wrong shape never leaves: a configuration error naming the key.
    let run = test("not-a-key")
        .code(1)
        .stderr_has_line("error: invalid configuration: `sinks.routing_key_env`: sink `pager`: a PagerDuty integration key is 32 characters; this one has 9 (copy the Integration Key of the service's Events API v2 integration)");
    assert!(!run.stderr().contains("not-a-key"));
    assert_eq!(pd.requests().len(), 2);
}
