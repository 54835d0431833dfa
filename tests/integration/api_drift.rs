//! API drift end to end: fields that appear on (or vanish from) most resources of a kind at
//! once, with no audit trail event behind them, are recorded exactly but raise no alert, are
//! attributed to no one and are reported once per kind; people's edits still alert.

use segwatch::simulator::Mutation;
use serde_json::{Value, json};

use crate::util::{TestWorkspace, WebhookReceiver};

/// The poll line and the alert lines of `segwatch poll --format json`.
fn poll_lines(stdout: &str) -> (Value, Vec<Value>) {
    let mut lines = stdout
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap());
    let poll = lines.next().expect("a poll line");
    assert_eq!(poll["type"], "poll", "{stdout}");
    (poll, lines.collect())
}

/// A workspace with a webhook sink (no digests) and the binary configured for it.
async fn setup() -> (TestWorkspace, WebhookReceiver, std::path::PathBuf) {
    let ws = TestWorkspace::start().await;
    let receiver = WebhookReceiver::start().await;
    let config = ws.dir.path().join("segwatch.toml");
    std::fs::write(
        &config,
        format!("{}digest_threshold = 1000\n", receiver.sink_toml()),
    )
    .unwrap();
    (ws, receiver, config)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_settings_key_on_every_destination_is_drift_only_when_nobody_made_it() {
    let (ws, receiver, config) = setup().await;
    let cfg = config.to_str().unwrap();
    let segwatch = |args: &[&str]| ws.segwatch().args(["--config", cfg]).args(args);
    segwatch(&["poll", "--format", "json"]).success();
    let delivered = receiver.events().len();
    let destinations: Vec<String> = ws
        .sim
        .read(|s| s.destinations.iter().map(|d| d.id.clone()).collect());
    assert!(destinations.len() >= 4, "{destinations:?}");

    // Every destination starts returning `settings.consentMode`, with no audit event: what a
    // Segment release looks like from the outside.
    for id in &destinations {
        ws.sim
            .apply_unaudited(Mutation::SetDestinationSetting {
                destination_id: id.clone(),
                key: "consentMode".into(),
                value: json!("basic"),
            })
            .unwrap();
    }
    let stdout = segwatch(&["poll", "--format", "json"]).success().stdout();
    let (poll, raised) = poll_lines(&stdout);
    assert_eq!(raised, Vec::<Value>::new(), "no alert raised or resolved");
    assert_eq!(
        poll["api_drift"],
        json!([{"kind": "destination", "path": "settings.consentMode", "direction": "added",
                "resources": destinations.len()}])
    );
    let changes = poll["changes"].as_array().unwrap();
    assert_eq!(changes.len(), destinations.len());
    for c in changes {
        assert_eq!(
            c["fields"],
            json!([{"path": "settings.consentMode", "new": "basic", "api_drift": true}]),
            "{c}"
        );
        assert_eq!(c["actor"], Value::Null, "{c}");
    }
    assert_eq!(receiver.events().len(), delivered, "nothing delivered");
    let (drift_changes, drift_fields): (i64, i64) = ws
        .store()
        .connection()
        .query_row(
            "SELECT (SELECT sum(api_drift) FROM audit_changes),
                    (SELECT sum(api_drift) FROM audit_change_fields)",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!(
        (drift_changes, drift_fields),
        (destinations.len() as i64, destinations.len() as i64)
    );
    let diff = segwatch(&["diff"]).success().stdout();
    assert!(
        diff.contains("settings.consentMode: (absent) → \"basic\" (API drift)"),
        "{diff}"
    );
    let history = segwatch(&["history", "destination", &destinations[0]])
        .success()
        .stdout();
    assert!(history.contains("(API drift)"), "{history}");
    let text = segwatch(&["poll"]).success().stdout();
    assert!(
        !text.contains("API drift"),
        "a quiet poll reports none: {text}"
    );

    // The same thing done by people (each edit in the audit trail) is a change on every
    // destination, and the starter rule alerts on each.
    for id in &destinations {
        ws.sim
            .apply(Mutation::SetDestinationSetting {
                destination_id: id.clone(),
                key: "dataResidency".into(),
                value: json!("eu-west-1"),
            })
            .unwrap();
    }
    let stdout = segwatch(&["poll", "--format", "json"]).success().stdout();
    let (poll, raised) = poll_lines(&stdout);
    assert_eq!(poll["api_drift"], json!([]));
    for c in poll["changes"].as_array().unwrap() {
        assert_eq!(
            c["fields"],
            json!([{"path": "settings.dataResidency", "new": "eu-west-1"}]),
            "{c}"
        );
        assert_ne!(c["actor"], Value::Null, "{c}");
    }
    let fired = raised
        .iter()
        .filter(|a| a["rule_id"] == "destination-settings-changed")
        .count();
    assert_eq!(fired, destinations.len(), "{stdout}");
    assert_eq!(
        receiver.alerts_of("destination-settings-changed").len(),
        destinations.len()
    );
}
