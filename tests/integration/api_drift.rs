//! API drift end to end: fields that appear on (or vanish from) most resources of a kind at
//! once, with no audit trail event behind them, are recorded exactly but raise no alert, are
//! attributed to no one and are reported once per kind; people's edits still alert. The second
//! test makes a real release in the simulator (`SimHandle::api_release`).

use segwatch_simulator::Mutation;
use serde_json::{Value, json};

use crate::util::{TestWorkspace, WebhookReceiver};

/// What the simulated API starts returning in the releases below.
const TS: &str = "2024-01-01T00:00:00Z";

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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_release_adding_fields_raises_no_alert_and_a_real_change_still_does() {
    let (ws, receiver, config) = setup().await;
    let cfg = config.to_str().unwrap();
    let segwatch = |args: &[&str]| ws.segwatch().args(["--config", cfg]).args(args);
    let alerts = || {
        segwatch(&["alerts", "--format", "json", "--limit", "100000"])
            .success()
            .json()
    };

    // Baseline: the starter rules open their findings on what the workspace holds.
    segwatch(&["poll", "--format", "json"]).success();
    let alerts_before = alerts();
    let delivered_before = receiver.events().len();

    let (users, sources, groups_with_permissions, user) = ws.sim.read(|s| {
        (
            s.users.len(),
            s.sources.len(),
            s.groups
                .iter()
                .filter(|g| !g.permissions.is_empty())
                .count(),
            s.users[0].id.clone(),
        )
    });
    assert!(users >= 2 && sources >= 2 && groups_with_permissions >= 2);
    ws.sim.api_release("/users", "createdAt", Some(json!(TS)));
    ws.sim.api_release("/sources", "createdAt", Some(json!(TS)));
    ws.sim
        .api_release("/groups", "permissions[].createdAt", Some(json!(TS)));

    let stdout = segwatch(&["poll", "--format", "json"]).success().stdout();
    let (poll, raised) = poll_lines(&stdout);
    assert_eq!(raised, Vec::<Value>::new(), "no alert raised or resolved");
    assert_eq!(
        poll["api_drift"],
        json!([
            {"kind": "user", "path": "createdAt", "direction": "added", "resources": users},
            {"kind": "group", "path": "permissions[].createdAt", "direction": "added",
             "resources": groups_with_permissions},
            {"kind": "source", "path": "createdAt", "direction": "added", "resources": sources},
        ])
    );
    let changes = poll["changes"].as_array().unwrap();
    assert_eq!(changes.len(), users + sources + groups_with_permissions);
    for c in changes {
        assert_eq!(c["op"], "modified", "{c}");
        assert_eq!(c["actor"], Value::Null, "drift is nobody's: {c}");
        for f in c["fields"].as_array().unwrap() {
            assert_eq!(f["api_drift"], true, "{c}");
            assert_eq!(f["new"], TS, "{c}");
        }
    }
    assert_eq!(alerts(), alerts_before, "`segwatch alerts` is unchanged");
    assert_eq!(
        receiver.events().len(),
        delivered_before,
        "nothing delivered"
    );

    // The history is exact: the new field is there, marked as drift.
    let diff = segwatch(&["diff"]).success().stdout();
    assert!(
        diff.contains(&format!("createdAt: (absent) → \"{TS}\" (API drift)")),
        "{diff}"
    );
    let diff_json = segwatch(&["diff", "--format", "json"]).success().json();
    let of_user = diff_json["changes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["resource_id"] == user.as_str())
        .unwrap()
        .clone();
    assert_eq!(
        of_user["fields"],
        json!([{"path": "createdAt", "new": TS, "api_drift": true}])
    );
    let history = segwatch(&["history", "user", &user]).success().stdout();
    assert!(history.contains("modified"), "{history}");
    assert!(
        history.contains(&format!("createdAt: (absent) → \"{TS}\" (API drift)")),
        "{history}"
    );
    let history_json = segwatch(&["history", "user", &user, "--format", "json"])
        .success()
        .json();
    let last = history_json["steps"].as_array().unwrap().last().unwrap();
    assert_eq!(last["fields"][0]["api_drift"], true, "{history_json}");
    let now = chrono::Utc::now().to_rfc3339();
    let state = segwatch(&["state", "--at", &now, "--kind", "user"])
        .success()
        .json();
    let body = &state["resources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["id"] == user.as_str())
        .unwrap()["body"];
    assert_eq!(body["createdAt"], TS);

    // A person adds a settings key to one destination: that is a change, and it alerts.
    let destination = ws.sim.read(|s| s.destinations[0].id.clone());
    ws.sim
        .apply(Mutation::SetDestinationSetting {
            destination_id: destination.clone(),
            key: "region".into(),
            value: json!("eu-west-1"),
        })
        .unwrap();
    let stdout = segwatch(&["poll", "--format", "json"]).success().stdout();
    let (poll, raised) = poll_lines(&stdout);
    assert_eq!(poll["api_drift"], json!([]));
    let change = &poll["changes"][0];
    assert_eq!(change["resource_id"], destination.as_str());
    assert_eq!(
        change["fields"],
        json!([{"path": "settings.region", "new": "eu-west-1"}])
    );
    assert!(
        raised
            .iter()
            .any(|a| a["rule_id"] == "destination-settings-changed"),
        "{stdout}"
    );
    let sent = receiver.alerts_of("destination-settings-changed");
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert_eq!(sent[0].1["resource_id"], destination.as_str());

    // The API stops returning a field: reported as such in the text output, still no alert.
    ws.sim.api_release("/sources", "createdAt", None);
    let delivered = receiver.events().len();
    let text = segwatch(&["poll"]).success().stdout();
    assert!(
        text.contains(&format!(
            "API drift: Segment's API no longer returns `createdAt` on {sources} sources (no alerts)"
        )),
        "{text}"
    );
    assert!(
        !text.contains("ALERT") && !text.contains("FINDING"),
        "{text}"
    );
    assert_eq!(receiver.events().len(), delivered);
}
