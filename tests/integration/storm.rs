//! An alert storm: one poll raising an alert for each of 20,000 users, delivered by the real
//! binary to webhook receivers that refuse bodies over 1 MiB. Nothing is dead, every alert is
//! delivered or summarised, every accepted body is within the limit, the number of messages is
//! bounded, and the alerts stay listed one by one.

use std::sync::atomic::Ordering;

use segwatch_simulator::SimConfig;

use crate::util::{HMAC_KEY, TestWorkspace, WebhookReceiver};

const USERS: usize = 20_000;
const MIB: usize = 1024 * 1024;

/// A rule matching every user, with a long remediation (copied into each alert) so that the
/// storm's alerts (about 2.7 KB each as JSON) need more messages than the sinks may send.
fn every_user() -> String {
    format!(
        "- id: every-user\n  title: A user exists\n  description: Storm test rule, matching every user.\n  \
         remediation: {}\n  severity: high\n  resource: user\n  kind: compliance\n  when: 'true'\n",
        "Review this user's access and remove it if unexpected. "
            .repeat(40)
            .trim_end()
    )
}

/// Deliveries of `sink` per status.
fn statuses(ws: &TestWorkspace, sink: &str) -> std::collections::BTreeMap<String, usize> {
    let mut out = std::collections::BTreeMap::new();
    for d in ws.store().deliveries(1, None, usize::MAX).unwrap() {
        if d.sink == sink {
            *out.entry(d.status.as_str().to_string()).or_default() += 1;
        }
    }
    out
}

/// The alert ids in the digests a receiver accepted, in order, and its summary bodies.
fn accepted(receiver: &WebhookReceiver) -> (Vec<i64>, Vec<serde_json::Value>) {
    let mut ids = Vec::new();
    let mut summaries = Vec::new();
    for (_, body) in receiver.accepted.lock().unwrap().iter() {
        match body["type"].as_str() {
            Some("digest") => {
                let alerts = body["alerts"].as_array().unwrap();
                assert_eq!(body["count"], alerts.len());
                ids.extend(alerts.iter().map(|a| a["id"].as_i64().unwrap()));
            }
            Some("summary") => summaries.push(body.clone()),
            other => panic!("unexpected body type {other:?}"),
        }
    }
    (ids, summaries)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_storm_of_alerts_is_a_bounded_number_of_messages_within_the_limit() {
    let ws = TestWorkspace::with(SimConfig {
        users: USERS,
        ..SimConfig::default()
    })
    .await;
    // `fits` keeps to the default limit (1 MiB) of a receiver refusing more; `big` is told the
    // receiver takes 4 MiB, so its receiver's 413s make it split batches.
    let fits = WebhookReceiver::start().await;
    let big = WebhookReceiver::start().await;
    fits.max_body.store(MIB, Ordering::SeqCst);
    big.max_body.store(MIB, Ordering::SeqCst);
    let rules = ws.dir.path().join("rules.yaml");
    std::fs::write(&rules, every_user()).unwrap();
    let config = ws.dir.path().join("segwatch.toml");
    std::fs::write(
        &config,
        format!(
            "[[sinks]]\nname = \"fits\"\ntype = \"webhook\"\nurl = \"{}\"\nsecret = \"{HMAC_KEY}\"\n\n\
             [[sinks]]\nname = \"big\"\ntype = \"webhook\"\nurl = \"{}\"\nsecret = \"{HMAC_KEY}\"\n\
             max_body_bytes = {}\nmax_messages_per_run = 30\n",
            fits.url,
            big.url,
            4 * MIB
        ),
    )
    .unwrap();
    let segwatch = |args: &[&str]| {
        ws.segwatch()
            .env("SEGWATCH_RULES__PATH", rules.to_str().unwrap())
            .args(["--config", config.to_str().unwrap()])
            .args(args)
    };

    let run = segwatch(&["poll", "--format", "json"]).success();
    // JSON lines: the poll, then each alert.
    let stdout = run.stdout();
    let outcome: serde_json::Value = serde_json::from_str(stdout.lines().next().unwrap()).unwrap();
    assert_eq!(stdout.lines().count(), 1 + USERS);
    let report = &outcome["deliveries"];
    assert_eq!(report["dead"], 0, "{report}");
    assert_eq!(report["failed"], 0, "{report}");
    assert_eq!(
        report["sent"].as_u64().unwrap() + report["summarised"].as_u64().unwrap(),
        2 * USERS as u64,
        "{report}"
    );

    for (name, receiver, cap) in [("fits", &fits, 20), ("big", &big, 30)] {
        // Nothing dead or waiting: every alert was delivered or summarised.
        let by_status = statuses(&ws, name);
        let sent = by_status.get("sent").copied().unwrap_or(0);
        let summarised = by_status.get("summarised").copied().unwrap_or(0);
        assert_eq!(sent + summarised, USERS, "{name}: {by_status:?}");
        assert!(sent > 0 && summarised > 0, "{name}: {by_status:?}");

        // Bounded: at most `max_messages_per_run` requests, the last a summary.
        let requests = receiver.requests.lock().unwrap().clone();
        assert!(requests.len() <= cap, "{name}: {} requests", requests.len());
        let accepted_sizes: Vec<usize> = requests
            .iter()
            .filter(|(status, _)| *status == 200)
            .map(|(_, size)| *size)
            .collect();
        assert!(
            accepted_sizes.iter().all(|&size| size <= MIB),
            "{name}: {accepted_sizes:?}"
        );
        let (ids, summaries) = accepted(receiver);
        assert_eq!(ids.len(), sent, "{name}: each sent alert listed once");
        let mut unique = ids.clone();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(unique.len(), ids.len(), "{name}: an alert listed twice");
        assert_eq!(summaries.len(), 1, "{name}");
        let summary = &summaries[0];
        assert_eq!(summary["count"], summarised);
        let text = summary["text"].as_str().unwrap();
        let command =
            format!("segwatch alerts --status open --rule every-user --limit {summarised}");
        assert_eq!(summary["command"], command.as_str());
        assert!(
            text.ends_with(&format!(
                "{summarised} alerts not listed; list them with: {command}"
            )),
            "{text}"
        );
        let last = receiver.accepted.lock().unwrap().last().unwrap().1.clone();
        assert_eq!(last["type"], "summary", "{name}: the summary comes last");
    }

    // `fits` never needed the receiver to refuse anything; `big` did, and split instead.
    let refused = |r: &WebhookReceiver| {
        r.requests
            .lock()
            .unwrap()
            .iter()
            .filter(|(status, _)| *status == 413)
            .count()
    };
    assert_eq!(refused(&fits), 0);
    assert!(refused(&big) > 0, "the big sink's receiver refused nothing");
    assert!(
        big.requests
            .lock()
            .unwrap()
            .iter()
            .any(|(_, size)| *size > MIB),
        "the big sink sent nothing over 1 MiB"
    );

    // Every alert is stored and listed one by one, summarised or not.
    let listed = segwatch(&[
        "alerts",
        "--rule",
        "every-user",
        "--limit",
        &USERS.to_string(),
        "--format",
        "json",
    ])
    .success()
    .json();
    assert_eq!(listed.as_array().unwrap().len(), USERS);
    let summarised = segwatch(&["deliveries", "--status", "summarised", "--format", "json"])
        .success()
        .json();
    let rows = summarised.as_array().unwrap();
    assert_eq!(rows.len(), 100, "the default --limit of a listing");
    assert!(
        rows.iter()
            .all(|d| d["status"] == "summarised" && d["sent_at"].is_string())
    );
}
