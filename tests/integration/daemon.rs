//! `segwatch run` as a process: scheduled polls, no overlap, graceful shutdown.

use std::process::Child;
use std::time::{Duration, Instant};

use segwatch_core::ids::SnapshotId;
use segwatch_simulator::{Fault, FaultKind, SimConfig};
use segwatch_store::{SnapshotStatus, Store};

use segwatch_simulator::Mutation;

use crate::util::{
    HMAC_KEY, STARTER_RULES, Segwatch, TOKEN, TestWorkspace, WebhookReceiver, free_port,
};

/// Every second: fast enough for tests, same code path as `*/15 * * * *`.
const EVERY_SECOND: &str = "* * * * * *";

fn terminate(child: &Child) {
    let status = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

/// Waits for the process to exit, at most `bound`; returns its output.
fn exits_within(mut child: Child, bound: Duration) -> std::process::Output {
    let deadline = Instant::now() + bound;
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            child.kill().unwrap();
            panic!("the daemon did not stop within {bound:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

/// Starts `segwatch run` polling every second, lets one poll complete, then makes the next one
/// hang on sources and returns once it is running: a daemon caught mid-poll.
async fn daemon_mid_poll(ws: &TestWorkspace) -> Child {
    let child = ws
        .segwatch()
        .env("SEGWATCH_SCHEDULE__CRON", EVERY_SECOND)
        .args(["run"])
        .spawn();
    ws.wait_for_db("the first poll completed", |s| complete(s).len() == 1)
        .await;
    ws.sim
        .inject(Fault::new(FaultKind::Slow { delay_ms: 30_000 }).on_path("/sources"));
    ws.wait_until_mid_poll().await;
    child
}

fn complete(store: &Store) -> Vec<segwatch_store::SnapshotInfo> {
    let mut list = store.snapshots(1, 100).unwrap_or_default();
    list.retain(|s| s.status == SnapshotStatus::Complete);
    list
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn polls_on_schedule_without_overlap_and_stops_on_sigterm() {
    let ws = TestWorkspace::start().await;
    // Each poll takes ~1.5 s, longer than the 1 s tick: the ticks in between must be skipped.
    ws.sim
        .inject(Fault::new(FaultKind::Slow { delay_ms: 1_500 }).on_path("/roles"));
    let child = ws
        .segwatch()
        .env("SEGWATCH_SCHEDULE__CRON", EVERY_SECOND)
        .args(["run"])
        .spawn();
    ws.wait_for_db("three polls completed", |s| complete(s).len() >= 3)
        .await;
    terminate(&child);
    let output = exits_within(child, Duration::from_secs(5));
    assert!(output.status.success(), "{output:?}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("skipped"),
        "overlapping ticks are logged:\n{stderr}"
    );
    assert!(stderr.contains("daemon stopped"), "{stderr}");
    assert!(String::from_utf8_lossy(&output.stdout).contains("baseline of"));

    // Polls never overlapped: each started after the previous one finished.
    let store = ws.store();
    let mut all = store.snapshots(1, 100).unwrap();
    all.reverse();
    for pair in all.windows(2) {
        let finished = pair[0]
            .finished_at
            .map(|t| t.to_string())
            .unwrap_or_default();
        assert!(
            pair[1].started_at.to_string() >= finished,
            "{:?} overlaps {:?}",
            pair[1],
            pair[0]
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_during_a_slow_poll_exits_promptly_and_leaves_a_consistent_database() {
    let ws = TestWorkspace::start().await;
    let child = daemon_mid_poll(&ws).await;
    let stopping = Instant::now();
    terminate(&child);
    let output = exits_within(child, Duration::from_secs(5));
    assert!(output.status.success(), "{output:?}");
    assert!(stopping.elapsed() < Duration::from_secs(5));

    ws.assert_intact();
    let store = ws.store();
    let list = store.snapshots(1, 10).unwrap();
    assert_eq!(
        list.iter()
            .filter(|s| s.status == SnapshotStatus::Complete)
            .count(),
        1
    );
    let abandoned = &list[0];
    assert_eq!(abandoned.status, SnapshotStatus::Failed);
    assert!(
        abandoned.error.as_deref().unwrap().contains("interrupted"),
        "{abandoned:?}"
    );
}

const SOURCES_RULE: &str = r#"
- id: RULE_ID
  title: Source without environment label
  description: Test rule.
  remediation: Label it.
  severity: medium
  resource: source
  kind: compliance
  when: '!has_label(resource, "environment")'
"#;

fn hangup(child: &Child) {
    let status = std::process::Command::new("kill")
        .args(["-HUP", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_keeps_the_old_rules_when_the_new_ones_are_broken_and_applies_good_ones() {
    let ws = TestWorkspace::start().await;
    let rules = ws.dir.path().join("rules.yaml");
    std::fs::write(&rules, SOURCES_RULE.replace("RULE_ID", "first-rule")).unwrap();
    let child = ws
        .segwatch()
        .env("SEGWATCH_SCHEDULE__CRON", EVERY_SECOND)
        .env("SEGWATCH_RULES__PATH", rules.to_str().unwrap())
        .args(["run"])
        .spawn();
    let has_alerts_of = |rule: &'static str| {
        move |s: &Store| {
            let filter = segwatch_store::AlertFilter {
                rule_id: Some(rule.into()),
                ..Default::default()
            };
            s.alerts(1, &filter).is_ok_and(|a| !a.is_empty())
        }
    };
    ws.wait_for_db(
        "the first rule raised findings",
        has_alerts_of("first-rule"),
    )
    .await;

    // A broken rule file: rejected, the daemon keeps polling with the old rules.
    std::fs::write(
        &rules,
        SOURCES_RULE
            .replace("RULE_ID", "second-rule")
            .replace("severity: medium", "severity: urgent"),
    )
    .unwrap();
    hangup(&child);
    let polls = complete(&ws.store()).len();
    ws.wait_for_db("two more polls completed", |s| {
        complete(s).len() >= polls + 2
    })
    .await;
    assert!(!has_alerts_of("second-rule")(&ws.store()));

    // A good one: applied; its rule raises findings, the old rule's resolve.
    std::fs::write(&rules, SOURCES_RULE.replace("RULE_ID", "second-rule")).unwrap();
    hangup(&child);
    ws.wait_for_db("the new rule raised findings", has_alerts_of("second-rule"))
        .await;
    terminate(&child);
    let output = exits_within(child, Duration::from_secs(5));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("reload rejected")
            && stderr.contains("rules.yaml:6")
            && stderr.contains("urgent"),
        "{stderr}"
    );
    assert!(
        stderr.contains("configuration and rules reloaded"),
        "{stderr}"
    );
    let open = ws
        .store()
        .alerts(
            1,
            &segwatch_store::AlertFilter {
                status: Some(segwatch_core::alerts::AlertStatus::Open),
                ..Default::default()
            },
        )
        .unwrap();
    assert!(
        open.iter().all(|a| a.rule_id == "second-rule"),
        "the removed rule's findings resolved"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn healthz_turns_503_when_the_api_fails_a_meta_alert_is_delivered_and_metrics_move() {
    let ws = TestWorkspace::start().await;
    let receiver = WebhookReceiver::start().await;
    let config = ws.dir.path().join("segwatch.toml");
    std::fs::write(&config, receiver.sink_toml()).unwrap();
    let port = free_port();
    let child = ws
        .segwatch()
        .env("SEGWATCH_SCHEDULE__CRON", EVERY_SECOND)
        .env("SEGWATCH_HEALTH__LISTEN", &format!("127.0.0.1:{port}"))
        .env("SEGWATCH_HEALTH__MAX_AGE_SECS", "2")
        .env("SEGWATCH_HEALTH__ALERT_AFTER_FAILING_SECS", "2")
        // The child's stderr is a pipe nobody drains until it exits: one retry warning per
        // request and kind of each failing poll would fill it within the test and block the
        // daemon's next log line, so the client's warnings are left out.
        .env("RUST_LOG", "segwatch=info,segwatch_api=error")
        .args(["--config", config.to_str().unwrap(), "run"])
        .spawn();
    ws.wait_for_db("the first poll completed", |s| complete(s).len() == 1)
        .await;
    let http = reqwest::Client::new();
    let get = |path: &str| {
        let request = http.get(format!("http://127.0.0.1:{port}{path}"));
        async move { request.send().await }
    };
    let healthz = get("/healthz").await.unwrap();
    assert_eq!(healthz.status(), 200);

    let metrics = get("/metrics").await.unwrap().text().await.unwrap();
    let value = |text: &str, series: &str| -> f64 {
        text.lines()
            .find(|l| l.starts_with(series))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0.0)
    };
    // Every sample line parses as `name{labels} value`.
    for line in metrics.lines().filter(|l| !l.starts_with('#')) {
        let (series, value) = line.rsplit_once(' ').unwrap();
        assert!(
            series.starts_with("segwatch_") && series.ends_with('}'),
            "{line}"
        );
        value.parse::<f64>().unwrap_or_else(|_| panic!("{line}"));
    }
    let requests_before = value(&metrics, "segwatch_api_requests_total");
    assert!(requests_before > 0.0);
    assert!(
        value(
            &metrics,
            "segwatch_resources{workspace=\"default\",kind=\"user\"}"
        ) > 0.0
    );

    // The API starts failing: polls fail, and /healthz turns 503 once the last success is old.
    ws.sim
        .inject(Fault::new(FaultKind::ServerError { status: 500 }));
    let deadline = Instant::now() + Duration::from_secs(20);
    let body = loop {
        let response = get("/healthz").await.unwrap();
        if response.status() == 503 {
            let body = response.json::<serde_json::Value>().await.unwrap();
            // Once a failed poll has finished, the reason names it.
            if body["workspaces"][0]["last_poll"] == "failed" {
                break body;
            }
        }
        assert!(Instant::now() < deadline, "/healthz never turned 503");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(body["status"], "unhealthy");
    let reason = body["workspaces"][0]["reason"].as_str().unwrap();
    assert!(
        reason.contains("last complete poll") && reason.contains("failed"),
        "{reason}"
    );
    let metrics = get("/metrics").await.unwrap().text().await.unwrap();
    assert!(
        value(
            &metrics,
            "segwatch_polls_total{workspace=\"default\",outcome=\"failed\"}"
        ) >= 1.0,
        "{metrics}"
    );
    assert!(value(&metrics, "segwatch_api_requests_total") > requests_before);

    // Failing for longer than the threshold: segwatch's own alert reaches the sink, once.
    let raised = wait_for_alert(&receiver, "segwatch:polls-failing", "raised").await;
    assert_eq!(raised["severity"], "high");
    assert_eq!(raised["resource_name"], "default");
    let summary = raised["summary"].as_str().unwrap();
    assert!(
        summary.contains("default") && summary.contains("500"),
        "{summary}"
    );
    ws.wait_for_db("two more polls failed", |s| {
        s.snapshots(1, 100).is_ok_and(|l| {
            l.iter()
                .take_while(|p| p.status != SnapshotStatus::Complete)
                .filter(|p| p.status == SnapshotStatus::Failed)
                .count()
                >= 6
        })
    })
    .await;
    assert_eq!(
        receiver.alerts_of("segwatch:polls-failing").len(),
        1,
        "raised once, not at every failed poll"
    );

    // The API recovers: the next complete poll resolves it, and /healthz is 200 again.
    ws.sim.clear_faults();
    let resolved = wait_for_alert(&receiver, "segwatch:polls-failing", "resolved").await;
    assert_eq!(resolved["id"], raised["id"]);
    assert_eq!(get("/healthz").await.unwrap().status(), 200);

    terminate(&child);
    assert!(exits_within(child, Duration::from_secs(5)).status.success());
}

/// Waits (at most 30 s) until the receiver has accepted `event` of an alert of `rule_id`.
async fn wait_for_alert(
    receiver: &WebhookReceiver,
    rule_id: &str,
    event: &str,
) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some((_, alert)) = receiver
            .alerts_of(rule_id)
            .into_iter()
            .find(|(e, _)| e == event)
        {
            return alert;
        }
        assert!(
            Instant::now() < deadline,
            "no `{event}` of {rule_id} arrived; got {:?}",
            receiver.events()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_workspaces_one_with_a_revoked_token_the_other_keeps_polling_and_alerting() {
    let production = TestWorkspace::start().await;
    // Another seed: another Segment workspace (two labels for one are refused).
    let staging = TestWorkspace::with(SimConfig {
        seed: 11,
        ..SimConfig::default()
    })
    .await;
    let receiver = WebhookReceiver::start().await;
    // A second sink that only takes staging's alerts.
    let staging_only = WebhookReceiver::start().await;
    let config = production.dir.path().join("segwatch.toml");
    let port = free_port();
    let sinks = format!(
        "{}[[sinks]]\nname = \"staging-team\"\ntype = \"webhook\"\nurl = \"{}\"\nsecret = \"{HMAC_KEY}\"\nworkspaces = [\"staging\"]\n",
        receiver.sink_toml(),
        staging_only.url
    );
    std::fs::write(
        &config,
        format!(
            "[health]\nlisten = \"127.0.0.1:{port}\"\nmax_age_secs = 30\nalert_after_failing_secs = 1\n\
             [[workspaces]]\nname = \"production\"\napi_url = \"{prod}\"\ntoken_env = \"PRODUCTION_TOKEN\"\n\
             cron = \"{EVERY_SECOND}\"\n\
             [[workspaces]]\nname = \"staging\"\napi_url = \"{stag}\"\ntoken_env = \"STAGING_TOKEN\"\n\
             cron = \"*/2 * * * * *\"\ntimezone = \"Europe/Paris\"\nrules = [\"source-*\"]\n{sink}",
            prod = production.sim.base_url(),
            stag = staging.sim.base_url(),
            sink = sinks,
        ),
    )
    .unwrap();
    let segwatch = || {
        Segwatch::new()
            .env("SEGWATCH_DATABASE__PATH", production.db().to_str().unwrap())
            .env("SEGWATCH_SEGMENT__MAX_ATTEMPTS", "2")
            .env("SEGWATCH_RULES__PATH", STARTER_RULES)
            .env("PRODUCTION_TOKEN", TOKEN)
            .env("STAGING_TOKEN", "sgw-revoked-token")
            .args(["--config", config.to_str().unwrap()])
    };
    let child = segwatch().args(["run"]).spawn();
    let store_has = |what: &'static str,
                     workspace: &'static str,
                     ok: fn(&[segwatch_store::SnapshotInfo]) -> bool| {
        production.wait_for_db(what, move |s| {
            s.find_workspace(workspace)
                .ok()
                .flatten()
                .and_then(|id| s.snapshots(id, 100).ok())
                .is_some_and(|l| ok(&l))
        })
    };
    store_has("production's baseline", "production", |l| {
        l.iter().any(|s| s.status == SnapshotStatus::Complete)
    })
    .await;
    let source = production.sim.read(|s| s.sources[0].clone());
    production
        .sim
        .apply(Mutation::SetSourceEnabled {
            source_id: source.id.clone(),
            enabled: !source.enabled,
        })
        .unwrap();
    // Production alerts on its change while staging fails on every poll.
    let alert = wait_for_alert(
        &receiver,
        if source.enabled {
            "source-disabled"
        } else {
            "source-reenabled"
        },
        "raised",
    )
    .await;
    assert_eq!(alert["resource_id"], source.id.as_str());
    let meta = wait_for_alert(&receiver, "segwatch:polls-failing", "raised").await;
    assert_eq!(meta["resource_name"], "staging");
    // The staging team's sink gets staging's alert, not production's change.
    wait_for_alert(&staging_only, "segwatch:polls-failing", "raised").await;
    assert_eq!(
        staging_only.events().len(),
        1,
        "only staging's alerts reach the staging sink"
    );
    assert!(meta["summary"].as_str().unwrap().contains("401"), "{meta}");
    let health: serde_json::Value = reqwest::get(format!("http://127.0.0.1:{port}/healthz"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(health["status"], "unhealthy", "{health}");
    assert_eq!(health["workspaces"][0]["name"], "production");
    assert!(health["workspaces"][0]["reason"].is_null(), "{health}");
    assert_eq!(health["workspaces"][1]["name"], "staging");
    assert!(health["workspaces"][1]["reason"].is_string(), "{health}");
    store_has("production polled on", "production", |l| {
        l.iter()
            .filter(|s| s.status == SnapshotStatus::Complete)
            .count()
            >= 4
    })
    .await;
    let store = production.store();
    let staging_id = store.find_workspace("staging").unwrap().unwrap();
    let staging_polls = store.snapshots(staging_id, 100).unwrap();
    assert!(staging_polls.len() >= 2);
    assert!(
        staging_polls
            .iter()
            .all(|s| s.status != SnapshotStatus::Complete),
        "{staging_polls:?}"
    );
    assert!(
        staging_polls[0]
            .error
            .as_deref()
            .unwrap_or("")
            .contains("Workspace Owner"),
        "{staging_polls:?}"
    );

    // Read-only commands pick a workspace; without one they say which exist.
    segwatch().args(["snapshots"]).code(1).stderr_has_line("error: invalid configuration: `workspaces`: 2 workspaces are configured (production, staging); choose one with --workspace NAME");
    segwatch()
        .args(["--workspace", "production", "alerts", "--format", "json"])
        .success()
        .stdout_contains(&[source.id.as_str()]);
    segwatch()
        .args(["--workspace", "staging", "snapshots"])
        .success()
        .stdout_contains(&["failed"]);
    segwatch()
        .args(["--workspace", "nowhere", "snapshots"])
        .code(1)
        .stderr_has_line("error: invalid configuration: `--workspace`: no workspace named `nowhere` is configured (configured: production, staging)");

    terminate(&child);
    let output = exits_within(child, Duration::from_secs(5));
    assert!(output.status.success(), "{output:?}");
    let stdout = String::from_utf8_lossy(&output.stdout);
    // Snapshot ids are shared by the workspaces, so the baseline's id depends on who came first.
    assert!(
        stdout
            .lines()
            .any(|l| l.starts_with("[production] snapshot ") && l.contains("baseline of")),
        "{stdout}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_mid_poll_then_restart_finds_a_consistent_database() {
    let ws = TestWorkspace::start().await;
    let mut child = daemon_mid_poll(&ws).await;
    child.kill().unwrap(); // SIGKILL: no handler runs
    child.wait().unwrap();
    ws.assert_intact();
    assert_eq!(
        complete(&ws.store()).len(),
        1,
        "the killed poll left no complete snapshot"
    );

    // A restarted daemon marks the killed poll failed and polls normally again.
    ws.sim.clear_faults();
    let child = ws
        .segwatch()
        .env("SEGWATCH_SCHEDULE__CRON", EVERY_SECOND)
        .args(["run"])
        .spawn();
    ws.wait_for_db("a poll after the restart completed", |s| {
        complete(s).len() == 2
    })
    .await;
    terminate(&child);
    assert!(exits_within(child, Duration::from_secs(5)).status.success());
    let list = ws.store().snapshots(1, 10).unwrap();
    let killed = list.iter().find(|s| s.id == SnapshotId(2)).unwrap();
    assert_eq!(killed.status, SnapshotStatus::Failed);
    assert!(
        killed.error.as_deref().unwrap().contains("interrupted"),
        "{killed:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_adds_and_removes_workspaces() {
    let first = TestWorkspace::start().await;
    let second = TestWorkspace::with(SimConfig {
        seed: 11,
        ..SimConfig::default()
    })
    .await;
    let config = first.dir.path().join("segwatch.toml");
    let entry = |name: &str, ws: &TestWorkspace| {
        format!(
            "[[workspaces]]\nname = \"{name}\"\napi_url = \"{}\"\ntoken_env = \"TEST_TOKEN\"\ncron = \"{EVERY_SECOND}\"\n",
            ws.sim.base_url()
        )
    };
    std::fs::write(&config, entry("first", &first)).unwrap();
    let child = Segwatch::new()
        .env("SEGWATCH_DATABASE__PATH", first.db().to_str().unwrap())
        .env("SEGWATCH_RULES__PATH", STARTER_RULES)
        .env("TEST_TOKEN", TOKEN)
        .args(["--config", config.to_str().unwrap(), "run"])
        .spawn();
    let polls_of = |s: &Store, name: &str| {
        s.find_workspace(name)
            .ok()
            .flatten()
            .map_or(0, |id| s.snapshots(id, 1000).map_or(0, |l| l.len()))
    };
    first
        .wait_for_db("the first workspace polled", |s| polls_of(s, "first") >= 1)
        .await;
    std::fs::write(
        &config,
        format!("{}{}", entry("first", &first), entry("second", &second)),
    )
    .unwrap();
    hangup(&child);
    first
        .wait_for_db("the added workspace polled", |s| polls_of(s, "second") >= 2)
        .await;

    // Removing the first: it stops, the second goes on.
    std::fs::write(&config, entry("second", &second)).unwrap();
    hangup(&child);
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    let stopped_at = polls_of(&first.store(), "first");
    let second_at = polls_of(&first.store(), "second");
    first
        .wait_for_db("the second workspace polled on", |s| {
            polls_of(s, "second") >= second_at + 2
        })
        .await;
    assert_eq!(polls_of(&first.store(), "first"), stopped_at);
    terminate(&child);
    let output = exits_within(child, Duration::from_secs(5));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("workspace added"), "{stderr}");
    assert!(stderr.contains("workspace removed"), "{stderr}");
}

/// A webhook endpoint that accepts connections and never answers (a firewall dropping
/// replies). Returns its URL; the sockets stay open until the test ends.
async fn silent_receiver() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    url
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sink_that_never_answers_delays_no_poll_and_health_reports_its_lag_apart() {
    let ws = TestWorkspace::start().await;
    let url = silent_receiver().await;
    let receiver = WebhookReceiver::start().await;
    let config = ws.dir.path().join("segwatch.toml");
    std::fs::write(
        &config,
        format!(
            "[[sinks]]\nname = \"a-silent\"\ntype = \"webhook\"\nurl = \"{url}\"\n\n{}",
            receiver.sink_toml()
        ),
    )
    .unwrap();
    let port = free_port();
    let child = ws
        .segwatch()
        .env("SEGWATCH_SCHEDULE__CRON", EVERY_SECOND)
        .env("SEGWATCH_HEALTH__LISTEN", &format!("127.0.0.1:{port}"))
        .env("SEGWATCH_HEALTH__MAX_AGE_SECS", "5")
        .args(["--config", config.to_str().unwrap(), "run"])
        .spawn();
    let _mutator = ws.sim.spawn_mutator(Duration::from_millis(700));
    // The baseline's findings wait on a sink that holds each send for its 15 s timeout; polls
    // go on at their schedule all the same.
    ws.wait_for_db("10 polls completed", |s| complete(s).len() >= 10)
        .await;
    // The other sink is not held up by the silent one.
    assert!(
        !receiver.events().is_empty(),
        "the working sink received nothing"
    );
    let health = reqwest::get(format!("http://127.0.0.1:{port}/healthz"))
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
    let body: serde_json::Value = health.json().await.unwrap();
    let lag = &body["workspaces"][0]["deliveries"]["a-silent"];
    assert!(lag["undelivered"].as_i64().unwrap() > 0, "{body}");
    assert!(
        lag["oldest_undelivered_age_secs"].as_f64().unwrap() > 0.0,
        "{body}"
    );
    let metrics = reqwest::get(format!("http://127.0.0.1:{port}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.lines().any(|l| l.starts_with(
            "segwatch_oldest_undelivered_age_seconds{workspace=\"default\",sink=\"a-silent\"}"
        )),
        "{metrics}"
    );
    terminate(&child);
    let output = exits_within(child, Duration::from_secs(15));
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_one_shot_poll_delivers_within_its_deadline_and_leaves_the_rest_queued() {
    let ws = TestWorkspace::start().await;
    let url = silent_receiver().await;
    let config = ws.dir.path().join("segwatch.toml");
    std::fs::write(
        &config,
        format!(
            "[delivery]\npoll_deadline_secs = 2\n\n[[sinks]]\nname = \"silent\"\ntype = \"webhook\"\nurl = \"{url}\"\n"
        ),
    )
    .unwrap();
    let started = Instant::now();
    let run = ws
        .segwatch()
        .args(["--config", config.to_str().unwrap(), "poll"])
        .success();
    // Each send would wait 15 s for the silent sink; the command ends after its 2 s deadline.
    assert!(
        started.elapsed() < Duration::from_secs(14),
        "{:?}\n{}",
        started.elapsed(),
        run.stderr()
    );
    assert!(
        run.stderr().contains("delivery deadline reached"),
        "{}",
        run.stderr()
    );
    let queued: i64 = ws
        .store()
        .connection()
        .query_row(
            "SELECT count(*) FROM deliveries WHERE status IN ('pending', 'failed')",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert!(queued > 0, "the findings stay queued for the next run");
    let run = ws
        .segwatch()
        .env("SEGWATCH_DELIVERY__POLL_DEADLINE_SECS", "0")
        .args(["--config", config.to_str().unwrap(), "poll"])
        .code(1);
    assert!(
        run.stderr().contains("delivery.poll_deadline_secs"),
        "{}",
        run.stderr()
    );
}
