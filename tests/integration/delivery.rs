//! Alert delivery through the outbox to a real HTTP receiver started by the test: signatures,
//! outages, digests, and a process killed between alert creation and delivery.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::body::Bytes;
use axum::http::StatusCode;
use secrecy::SecretString;
use segwatch::poll::Poller;
use segwatch_api::segment::SegmentClient;
use segwatch_core::redact::SecretPolicy;
use segwatch_core::rules::RuleSet;
use segwatch_simulator::SimConfig;
use segwatch_sinks::outbox::deliver_due;
use segwatch_sinks::{Sink, SinkConfig, SinkFilter};
use segwatch_store::DeliveryStatus;

use crate::util::{HMAC_KEY, TestWorkspace, WebhookReceiver as Receiver};

/// Every user is a finding: many alerts from one poll.
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

async fn poll(ws: &TestWorkspace, rules: &str, sinks: Vec<Sink>) -> segwatch::poll::PollOutcome {
    let rules = Arc::new(RuleSet::from_yaml("rules.yaml", rules).unwrap());
    let client = SegmentClient::new(ws.client_config()).unwrap();
    let poller = Poller::new(client, SecretPolicy::default(), "default")
        .with_rules(rules, false)
        .with_sinks(Arc::new(sinks));
    // As `segwatch poll` does: the poll, then what it queued is delivered.
    let mut store = ws.store();
    let mut outcome = poller.poll(&mut store).await.unwrap();
    outcome.deliveries = poller.deliver_queued(&mut store).await.unwrap();
    outcome
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signed_alerts_arrive_once_even_across_an_outage() {
    let ws = TestWorkspace::with(SimConfig {
        users: 5,
        ..SimConfig::default()
    })
    .await;
    let receiver = Receiver::start().await;
    receiver.status.store(503, Ordering::SeqCst);

    // The receiver is down: nothing is lost, everything waits for a retry.
    let outcome = poll(&ws, EVERY_USER, vec![receiver.sink(100)]).await;
    assert_eq!(outcome.alerts.len(), 5);
    let report = outcome.deliveries.unwrap();
    assert_eq!((report.sent, report.failed, report.dead), (0, 5, 0));
    assert!(receiver.events().is_empty());

    // Back up; the retries are due later (backoff), so run the worker as of then.
    receiver.status.store(200, Ordering::SeqCst);
    let mut store = ws.store();
    let workspace = store.find_workspace("default").unwrap().unwrap();
    let later = chrono::Utc::now() + chrono::Duration::hours(2);
    let report = deliver_due(&mut store, &[receiver.sink(100)], workspace, later)
        .await
        .unwrap();
    assert_eq!(report.sent, 5);
    let mut events = receiver.events();
    events.sort();
    events.dedup();
    assert_eq!(events.len(), 5, "each alert arrived, once");
    assert_eq!(receiver.events().len(), 5);
    let (_, body) = receiver.accepted.lock().unwrap()[0].clone();
    assert_eq!(body["type"], "alert");
    assert_eq!(body["alert"]["rule_id"], "every-user");

    // Nothing is left to send.
    let report = deliver_due(&mut store, &[receiver.sink(100)], workspace, later)
        .await
        .unwrap();
    assert_eq!(report.sent, 0);
    let sent = store
        .deliveries(workspace, Some(DeliveryStatus::Sent), 100)
        .unwrap();
    assert_eq!(sent.len(), 5);
    assert!(sent.iter().all(|d| d.attempts == 2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_poll_raising_200_alerts_sends_one_digest_per_sink() {
    let ws = TestWorkspace::with(SimConfig {
        users: 200,
        ..SimConfig::default()
    })
    .await;
    let first = Receiver::start().await;
    let second = Receiver::start().await;
    let mut other = second.sink(10);
    other.config.name = "other".into();
    let outcome = poll(&ws, EVERY_USER, vec![first.sink(10), other]).await;
    assert_eq!(outcome.alerts.len(), 200);
    let report = outcome.deliveries.unwrap();
    assert_eq!((report.sent, report.digests), (400, 2));
    for receiver in [&first, &second] {
        let accepted = receiver.accepted.lock().unwrap().clone();
        assert_eq!(accepted.len(), 1, "one message per sink, not 200");
        assert_eq!(accepted[0].1["type"], "digest");
        assert_eq!(accepted[0].1["count"], 200);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_permanent_refusal_is_dead_with_the_receivers_reply_and_can_be_retried() {
    let ws = TestWorkspace::with(SimConfig {
        users: 1,
        ..SimConfig::default()
    })
    .await;
    let receiver = Receiver::start().await;
    receiver.status.store(410, Ordering::SeqCst);
    let report = poll(&ws, EVERY_USER, vec![receiver.sink(100)])
        .await
        .deliveries
        .unwrap();
    assert_eq!(report.dead, 1);
    let run = ws
        .segwatch()
        .args(["deliveries", "--status", "dead", "--format", "json"])
        .success();
    let dead = run.json();
    assert!(
        dead[0]["last_error"].as_str().unwrap().contains("410"),
        "{dead}"
    );
    assert!(
        !dead.to_string().contains("secret-path-4411"),
        "the webhook URL is a secret"
    );

    let id = dead[0]["id"].as_i64().unwrap().to_string();
    ws.segwatch().args(["deliveries", "retry", &id]).success();
    receiver.status.store(200, Ordering::SeqCst);
    let mut store = ws.store();
    let workspace = store.find_workspace("default").unwrap().unwrap();
    let report = deliver_due(
        &mut store,
        &[receiver.sink(100)],
        workspace,
        chrono::Utc::now(),
    )
    .await
    .unwrap();
    assert_eq!(report.sent, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alerts_survive_a_kill_between_creation_and_delivery() {
    let ws = TestWorkspace::with(SimConfig {
        users: 3,
        ..SimConfig::default()
    })
    .await;
    let receiver = Receiver::start().await;
    let config = ws.dir.path().join("segwatch.toml");
    let rules = ws.dir.path().join("rules.yaml");
    std::fs::write(&rules, EVERY_USER).unwrap();
    std::fs::write(
        &config,
        "[[sinks]]\nname = \"hook\"\ntype = \"webhook\"\nurl_env = \"HOOK_URL\"\nsecret_env = \"HOOK_KEY\"\n",
    )
    .unwrap();
    let segwatch = || {
        ws.segwatch()
            .env("HOOK_URL", &receiver.url)
            .env("HOOK_KEY", HMAC_KEY)
            .env("SEGWATCH_RULES__PATH", rules.to_str().unwrap())
            .args(["--config", config.to_str().unwrap(), "poll"])
    };

    // The receiver hangs; kill the poller once its alerts are committed and it is sending.
    receiver.delay_ms.store(10_000, Ordering::SeqCst);
    let mut child = segwatch().spawn();
    ws.wait_for_db("the alerts are queued", |s| {
        s.deliveries(1, Some(DeliveryStatus::Pending), 10)
            .is_ok_and(|d| d.len() == 3)
    })
    .await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(receiver.events().is_empty());

    // The next run delivers what the killed one could not.
    receiver.delay_ms.store(0, Ordering::SeqCst);
    let run = segwatch().env("RUST_LOG", "trace").success();
    assert!(
        run.stdout().contains("deliveries: 3 sent"),
        "{}",
        run.stdout()
    );

    // The sink's secrets appear nowhere: not in the logs, the output or the database files.
    let mut everything = run.stdout() + &run.stderr();
    for suffix in ["", "-wal"] {
        let mut path = ws.db().into_os_string();
        path.push(suffix);
        everything.push_str(&String::from_utf8_lossy(
            &std::fs::read(&path).unwrap_or_default(),
        ));
    }
    assert!(everything.contains("every-user"), "the scan sees alerts");
    for secret in [HMAC_KEY, "secret-path-4411"] {
        assert!(!everything.contains(secret), "a sink secret leaked");
    }
    let mut events = receiver.events();
    events.sort();
    events.dedup();
    assert_eq!(events.len(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sinks_test_reports_each_sink_with_the_precise_error() {
    let ws = TestWorkspace::start().await;
    let receiver = Receiver::start().await;
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let config = ws.dir.path().join("segwatch.toml");
    std::fs::write(
        &config,
        format!(
            "[[sinks]]\nname = \"hook\"\ntype = \"webhook\"\nurl_env = \"HOOK_URL\"\nsecret_env = \"HOOK_KEY\"\n\n\
             [[sinks]]\nname = \"mail\"\ntype = \"email\"\nsmtp_host = \"127.0.0.1\"\nsmtp_port = {closed}\ntls = \"none\"\n\
             from = \"segwatch@acme.io\"\nto = [\"security@acme.io\"]\ntimeout_secs = 2\n"
        ),
    )
    .unwrap();
    let run = ws
        .segwatch()
        .env("HOOK_URL", &receiver.url)
        .env("HOOK_KEY", HMAC_KEY)
        .args(["--config", config.to_str().unwrap(), "sinks", "test"])
        .code(1);
    let run = run.stdout_contains(&["hook: ok", "mail: FAILED"]);
    assert_eq!(receiver.events(), vec!["test".to_string()]);
    assert!(!run.stdout().contains("secret-path-4411"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rule_names_its_sinks_and_an_unknown_one_stops_the_poll() {
    let ws = TestWorkspace::with(SimConfig {
        users: 2,
        ..SimConfig::default()
    })
    .await;
    let receiver = Receiver::start().await;
    let other = Receiver::start().await;
    let named = format!("{EVERY_USER}  sinks: [hook]\n");
    let mut second = other.sink(100);
    second.config.name = "other".into();
    let outcome = poll(&ws, &named, vec![receiver.sink(100), second]).await;
    assert_eq!(outcome.deliveries.unwrap().sent, 2);
    assert_eq!(receiver.events().len(), 2, "the named sink gets the alerts");
    assert!(
        other.events().is_empty(),
        "a sink the rule does not name gets nothing"
    );

    // Through the binary, a rule naming a sink that is not configured stops the poll.
    let rules = ws.dir.path().join("named.yaml");
    std::fs::write(&rules, EVERY_USER.to_string() + "  sinks: [pager]\n").unwrap();
    let requests = ws.sim.request_count();
    ws.segwatch()
        .env("SEGWATCH_RULES__PATH", rules.to_str().unwrap())
        .args(["poll"])
        .code(1)
        .stderr_contains(&["every-user", "sink `pager`", "not configured"]);
    assert_eq!(ws.sim.request_count(), requests, "nothing was fetched");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slack_429_retry_after_is_waited_out() {
    use segwatch_sinks::SinkTarget;

    let ws = TestWorkspace::with(SimConfig {
        users: 1,
        ..SimConfig::default()
    })
    .await;
    // A Slack stand-in: 429 with Retry-After on the first post, then accepts.
    let posts = Arc::new(AtomicU64::new(0));
    let counter = posts.clone();
    let app = axum::Router::new().route(
        "/services/T000/B000/XXXX",
        axum::routing::post(move |body: Bytes| {
            let counter = counter.clone();
            async move {
                let n = counter.fetch_add(1, Ordering::SeqCst);
                assert!(
                    serde_json::from_slice::<serde_json::Value>(&body).unwrap()["blocks"]
                        .is_array()
                );
                if n == 0 {
                    (
                        StatusCode::TOO_MANY_REQUESTS,
                        [("retry-after", "120")],
                        "rate_limited",
                    )
                } else {
                    (StatusCode::OK, [("retry-after", "0")], "ok")
                }
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!(
        "http://{}/services/T000/B000/XXXX",
        listener.local_addr().unwrap()
    );
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let slack = Sink::new(SinkConfig {
        name: "slack".into(),
        filter: SinkFilter {
            send_resolved: true,
            ..SinkFilter::default()
        },
        digest_threshold: 100,
        max_message_bytes: segwatch_sinks::DEFAULT_MAX_MESSAGE_BYTES,
        max_messages_per_run: segwatch_sinks::DEFAULT_MAX_MESSAGES_PER_RUN,
        max_attempts: 5,
        retry_backoff: segwatch_sinks::outbox::RetryBackoff::default(),
        target: SinkTarget::Slack {
            url: SecretString::from(url),
        },
        send_updates: None,
        app_base: None,
        templates: None,
    })
    .unwrap();

    let started = chrono::Utc::now();
    let report = poll(&ws, EVERY_USER, vec![slack.clone()])
        .await
        .deliveries
        .unwrap();
    assert_eq!(report.failed, 1);
    let mut store = ws.store();
    let workspace = store.find_workspace("default").unwrap().unwrap();
    let waiting = store
        .deliveries(workspace, Some(DeliveryStatus::Failed), 10)
        .unwrap();
    let next =
        chrono::DateTime::parse_from_rfc3339(&waiting[0].next_attempt_at.to_string()).unwrap();
    assert!(
        next >= started + chrono::Duration::seconds(119),
        "retried no earlier than Retry-After: {next}"
    );

    // Before Retry-After has passed nothing is sent; after, it goes through.
    let soon = deliver_due(
        &mut store,
        std::slice::from_ref(&slack),
        workspace,
        chrono::Utc::now(),
    )
    .await
    .unwrap();
    assert_eq!(soon.sent, 0);
    let later = chrono::Utc::now() + chrono::Duration::seconds(125);
    let report = deliver_due(&mut store, &[slack], workspace, later)
        .await
        .unwrap();
    assert_eq!(report.sent, 1);
    assert_eq!(posts.load(Ordering::SeqCst), 2);
}
