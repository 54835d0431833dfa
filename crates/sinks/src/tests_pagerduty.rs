//! PagerDuty bodies (snapshots), the severity map, and the bounds of summary and details.

use super::*;

use crate::render::fixtures::{APP_BASE, PAGERDUTY_KEY, change_alert, finding, resolved_finding};

fn sink(change_alerts: ChangeAlerts, app_base: Option<&str>) -> PagerDutySink {
    PagerDutySink::new(
        PagerDutyConfig {
            routing_key: SecretString::from(PAGERDUTY_KEY),
            url: EVENTS_URL.to_owned(),
            change_alerts,
        },
        app_base.map(str::to_owned),
    )
    .unwrap()
}

fn only(sink: &PagerDutySink, message: &Message<'_>) -> (Endpoint, Value) {
    let event = sink.event(message).unwrap();
    (event.endpoint, event.body)
}

#[test]
fn trigger_and_resolve_bodies() {
    let sink = sink(ChangeAlerts::Trigger, Some(APP_BASE));
    let found = finding();
    let (endpoint, trigger) = only(&sink, &Message::Alert(&found));
    assert_eq!(endpoint, Endpoint::Events);
    assert_eq!(trigger["dedup_key"], found.finding_uid());
    insta::assert_json_snapshot!("pagerduty_trigger_finding", trigger);

    let resolved = resolved_finding();
    let (endpoint, resolve) = only(&sink, &Message::Alert(&resolved));
    assert_eq!(endpoint, Endpoint::Events);
    assert_eq!(
        resolve["dedup_key"], trigger["dedup_key"],
        "a resolution closes the incident its finding opened"
    );
    insta::assert_json_snapshot!("pagerduty_resolve_finding", resolve);

    let change = change_alert();
    let (_, trigger) = only(&sink, &Message::Alert(&change));
    assert_eq!(trigger["dedup_key"], change.finding_uid());
    assert_ne!(trigger["dedup_key"], resolve["dedup_key"]);
    insta::assert_json_snapshot!("pagerduty_trigger_change", trigger);
}

#[test]
fn an_update_is_a_trigger_with_the_findings_dedup_key() {
    let sink = sink(ChangeAlerts::Trigger, Some(APP_BASE));
    let found = crate::render::fixtures::updated_finding();
    let (endpoint, update) = only(
        &sink,
        &Message::Update {
            alert: &found,
            update: crate::render::fixtures::update(),
        },
    );
    assert_eq!(endpoint, Endpoint::Events);
    assert_eq!(update["event_action"], "trigger");
    assert_eq!(update["dedup_key"], finding().finding_uid());
    assert_eq!(update["payload"]["custom_details"]["event"], "updated");
    insta::assert_json_snapshot!("pagerduty_update_finding", update);
}

#[test]
fn change_alerts_as_change_events_and_the_test_event() {
    let sink = sink(ChangeAlerts::ChangeEvent, Some(APP_BASE));
    let change = change_alert();
    let (endpoint, body) = only(&sink, &Message::Alert(&change));
    assert_eq!(endpoint, Endpoint::Change);
    insta::assert_json_snapshot!("pagerduty_change_event", body);
    // Findings are still incidents.
    let found = finding();
    let (endpoint, body) = only(&sink, &Message::Alert(&found));
    assert_eq!(
        (endpoint, body["event_action"].as_str()),
        (Endpoint::Events, Some("trigger"))
    );

    let (endpoint, body) = only(&sink, &Message::Test);
    assert_eq!(endpoint, Endpoint::Change, "a test pages nobody");
    insta::assert_json_snapshot!("pagerduty_test", body);
}

#[test]
fn a_ruleset_key_is_tested_with_a_resolve_of_an_unknown_key() {
    let ruleset = PagerDutySink::new(
        PagerDutyConfig {
            routing_key: SecretString::from("R0123456789ABCDEF0123456789ABCDE"),
            url: EVENTS_URL.to_owned(),
            change_alerts: ChangeAlerts::Trigger,
        },
        None,
    )
    .unwrap();
    let (endpoint, body) = only(&ruleset, &Message::Test);
    assert_eq!(endpoint, Endpoint::Events);
    assert_eq!(body["event_action"], "resolve");
    assert_eq!(body["dedup_key"], TEST_DEDUP_KEY);
}

#[test]
fn severities_map_to_pagerdutys_four() {
    let mapped: Vec<&str> = Severity::ALL.iter().map(|s| severity(*s)).collect();
    assert_eq!(mapped, ["info", "info", "warning", "error", "critical"]);
}

#[test]
fn the_summary_is_cut_at_1024_characters_on_a_character_boundary() {
    let sink = sink(ChangeAlerts::Trigger, None);
    let mut alert = finding();
    // Multi-byte characters: a byte-based cut would split one.
    alert.title = "é".repeat(2000);
    let (_, body) = only(&sink, &Message::Alert(&alert));
    let summary = body["payload"]["summary"].as_str().unwrap();
    assert_eq!(summary.chars().count(), SUMMARY_CHARS);
    assert!(summary.ends_with('…'));
    assert!(summary.starts_with("ééé"));
    // Without links or app base, neither `links` nor `client_url` is sent.
    assert!(body.get("links").is_none() && body.get("client_url").is_none());
}

#[test]
fn custom_details_are_bounded() {
    let sink = sink(ChangeAlerts::Trigger, None);
    let mut alert = change_alert();
    let changes: Vec<Value> = (0..100)
        .map(|i| json!({"path": format!("settings.k{i}"), "old": null, "new": "x".repeat(5000)}))
        .collect();
    alert.explanation = json!({"changes": changes});
    alert.remediation = "r".repeat(10_000);
    alert.tags = (0..200).map(|i| format!("t{i}")).collect();
    let (_, body) = only(&sink, &Message::Alert(&alert));
    let details = &body["payload"]["custom_details"];
    assert_eq!(details["changes"].as_array().unwrap().len(), DETAIL_CHANGES);
    assert_eq!(details["changes_not_listed"], 80);
    assert_eq!(
        details["changes"][0]["new"]
            .as_str()
            .unwrap()
            .chars()
            .count(),
        DETAIL_VALUE_CHARS
    );
    assert_eq!(details["changes"][0]["old"], "(none)");
    assert_eq!(
        details["remediation"].as_str().unwrap().chars().count(),
        DETAIL_TEXT_CHARS
    );
    assert_eq!(details["tags"].as_array().unwrap().len(), DETAIL_TAGS);
    assert!(sink.body_len(&Message::Alert(&alert)).unwrap() < MAX_BODY_BYTES / 4);
}

#[test]
fn the_largest_possible_trigger_fits_pagerdutys_limit() {
    // Every bounded text at its bound, in a character JSON escapes as six bytes.
    let worst = "\u{1}".repeat(100_000);
    let sink = sink(ChangeAlerts::Trigger, Some(APP_BASE));
    let mut alert = change_alert();
    alert.title = worst.clone();
    alert.rule_id = worst.clone();
    alert.resource_id = worst.clone();
    alert.resource_name = worst.clone();
    alert.workspace = worst.clone();
    alert.summary = worst.clone();
    alert.remediation = worst.clone();
    alert.tags = vec![worst.clone(); 1000];
    alert.attribution.actor = Some(worst.clone());
    alert.attribution.actor_email = Some(worst.clone());
    alert.attribution.event_type = Some(worst.clone());
    alert.attribution.event_id = Some(worst.clone());
    let changes: Vec<Value> = (0..1000)
        .map(|_| json!({"path": worst, "old": worst, "new": worst}))
        .collect();
    alert.explanation = json!({ "changes": changes });
    let size = sink.body_len(&Message::Alert(&alert)).unwrap();
    println!("largest trigger: {size} bytes");
    assert!(size < MAX_BODY_BYTES, "{size} bytes");
}

#[test]
fn the_routing_key_is_checked_and_never_shown() {
    for bad in [
        "short",
        "fixturek3y0fa5erv1ce0000000000aaX",
        "fixturek3y0fa5erv1ce-000000000aa",
    ] {
        let err = check_routing_key(bad).unwrap_err();
        assert!(!err.contains(bad), "{err}");
    }
    assert!(
        check_routing_key("short")
            .unwrap_err()
            .contains("32 characters; this one has 5")
    );
    assert!(check_routing_key(PAGERDUTY_KEY).is_ok());
    let sink = sink(ChangeAlerts::Trigger, None);
    let shown = format!("{sink:?}");
    assert!(!shown.contains(PAGERDUTY_KEY), "{shown}");
    assert_eq!(
        sink.redact(&format!("Invalid routing key {PAGERDUTY_KEY}")),
        "Invalid routing key <routing key>"
    );
}

#[test]
fn the_change_events_url_sits_next_to_the_events_url() {
    let with = |url: &str| {
        PagerDutySink::new(
            PagerDutyConfig {
                routing_key: SecretString::from(PAGERDUTY_KEY),
                url: url.to_owned(),
                change_alerts: ChangeAlerts::Trigger,
            },
            None,
        )
    };
    assert_eq!(
        with(EVENTS_URL).unwrap().change_url.as_str(),
        "https://events.pagerduty.com/v2/change/enqueue"
    );
    assert_eq!(
        with("http://127.0.0.1:9000/pd/v2/enqueue")
            .unwrap()
            .change_url
            .as_str(),
        "http://127.0.0.1:9000/pd/v2/change/enqueue"
    );
    let err = with("https://events.pagerduty.com/v2/enqueue/x").unwrap_err();
    assert!(err.to_string().contains("ends with `/v2/enqueue`"), "{err}");
}

#[test]
fn pagerdutys_error_answers_are_described() {
    let text = r#"{"status":"invalid event","message":"Event object is invalid","errors":["'payload.severity' is invalid"]}"#;
    assert_eq!(
        describe_answer(text),
        "invalid event: Event object is invalid ('payload.severity' is invalid)"
    );
    assert_eq!(
        describe_answer("upstream\nconnect error"),
        "upstream connect error"
    );
}

#[test]
fn digests_and_summaries_are_refused() {
    let sink = sink(ChangeAlerts::Trigger, None);
    let both = [finding(), change_alert()];
    let digest = Message::Digest {
        alerts: &both,
        snapshot_id: segwatch_core::ids::SnapshotId(12),
    };
    let summary = crate::Summary::default();
    for message in [digest, Message::Summary(&summary)] {
        assert!(matches!(
            sink.event(&message),
            Err(SendError::Permanent { .. })
        ));
    }
}
