//! The Jira payloads (ADF description, comments, transition) as snapshots, and their bounds.

use std::sync::Arc;

use super::*;
use crate::render::fixtures::{APP_BASE, change_alert, finding, resolved_finding};

fn sink() -> JiraSink {
    JiraSink::new(
        JiraConfig {
            base_url: "https://acme.atlassian.net".into(),
            email: "secops@acme.io".into(),
            token: SecretString::from("jira-token-never-shown"),
            project: "SEC".into(),
            issue_type: "Task".into(),
            labels: vec!["posture".into()],
            resolve_transition: DEFAULT_RESOLVE_TRANSITION.into(),
            reopen_transition: Some("To Do".into()),
            change_alerts: true,
            priorities: BTreeMap::from([(Severity::High, "High".to_owned())]),
        },
        Some(APP_BASE.into()),
        Arc::new(Templates::builtin()),
    )
    .unwrap()
}

#[test]
fn create_bodies_of_a_finding_and_a_change_alert() {
    let sink = sink();
    let found = finding();
    let body = sink.create_body(&found, &found.finding_uid()).unwrap();
    assert_eq!(body["fields"]["labels"][0], found.finding_uid());
    assert!(
        body["fields"].get("priority").is_none(),
        "medium has no priority mapped"
    );
    insta::assert_json_snapshot!("jira_create_finding", body);
    let change = change_alert();
    let body = sink.create_body(&change, &change.finding_uid()).unwrap();
    assert_eq!(body["fields"]["priority"]["name"], "High");
    insta::assert_json_snapshot!("jira_create_change", body);
}

#[test]
fn an_updates_comment_carries_its_own_event_id() {
    let sink = sink();
    let updated = crate::render::fixtures::updated_finding();
    let event = update_event_id(&updated, crate::render::fixtures::update());
    assert_eq!(event, "event alert-42-updated-3");
    let body = sink.comment_body_for(&updated, UPDATED, &event);
    assert!(body["body"].to_string().contains(&event));
    assert!(body["body"].to_string().contains("Changed while open"));
    assert!(body["body"].to_string().contains("bob@example.com"));
    insta::assert_json_snapshot!("jira_comment_updated", body);
}

#[test]
fn comment_and_transition_bodies() {
    let sink = sink();
    let reopened = finding();
    insta::assert_json_snapshot!(
        "jira_comment_reopened",
        sink.comment_body(&reopened, "Re-opened")
    );
    insta::assert_json_snapshot!(
        "jira_comment_resolved",
        sink.comment_body(&resolved_finding(), "Resolved")
    );
    insta::assert_json_snapshot!("jira_transition", transition_body("31"));
    insta::assert_json_snapshot!("jira_search", search_body("SEC", &reopened.finding_uid()));
}

#[test]
fn the_event_id_ends_every_document() {
    let sink = sink();
    let raised = finding();
    let text = sink.description(&raised).to_string();
    assert!(text.contains("event alert-42-raised"), "{text}");
    let text = sink
        .comment_body(&resolved_finding(), "Resolved")
        .to_string();
    assert!(text.contains("event alert-42-resolved"), "{text}");
}

#[test]
fn a_huge_alert_is_shortened_within_jiras_limit_keeping_its_event_id() {
    let sink = sink();
    let mut huge = change_alert();
    huge.summary = "x".repeat(100_000);
    huge.remediation = "step\n".repeat(20_000);
    huge.resource_name = "n".repeat(5_000);
    let changes: Vec<Value> = (0..5_000)
        .map(|i| json!({"path": format!("field{i}"), "old": "a".repeat(200), "new": "b".repeat(200)}))
        .collect();
    huge.explanation["changes"] = Value::Array(changes);
    let description = sink.description(&huge);
    let size = chars(&description);
    assert!(size <= MAX_TEXT_FIELD_CHARS, "{size}");
    assert!(
        size > MAX_TEXT_FIELD_CHARS / 4,
        "not shortened more than needed: {size}"
    );
    assert!(description.to_string().contains("event alert-41-raised"));
    let measure = sink.measure(&Message::Alert(&huge)).unwrap();
    assert!(measure.fits());
    let comment = sink.comment_body(&huge, "Raised again");
    assert!(chars(&comment["body"]) <= MAX_TEXT_FIELD_CHARS);
    let body = sink.create_body(&huge, "segwatch-0").unwrap();
    assert!(body["fields"]["summary"].as_str().unwrap().chars().count() <= MAX_SUMMARY_CHARS);
}

#[test]
fn settings_are_checked_and_the_token_never_shows() {
    let sink = sink();
    let debug = format!("{sink:?}");
    assert!(!debug.contains("jira-token-never-shown"), "{debug}");
    let with = |f: &dyn Fn(&mut JiraConfig)| {
        let mut config = sink.config.as_ref().clone();
        f(&mut config);
        JiraSink::new(config, None, Arc::new(Templates::builtin()))
            .unwrap_err()
            .to_string()
    };
    assert!(with(&|c| c.base_url = "http://acme.atlassian.net".into()).contains("base_url"));
    assert!(with(&|c| c.project = "sec team".into()).contains("project"));
    assert!(with(&|c| c.labels = vec!["two words".into()]).contains("contains a space"));
    assert!(with(&|c| c.email = "nobody".into()).contains("email"));
    let mut local = sink.config.as_ref().clone();
    local.base_url = "http://127.0.0.1:8080".into();
    assert!(JiraSink::new(local, None, Arc::new(Templates::builtin())).is_ok());
}

#[test]
fn jira_errors_are_quoted_on_one_line() {
    assert_eq!(
        error_details(
            r#"{"errorMessages":["Issue does not exist"],"errors":{"summary":"You must specify a summary."}}"#
        ),
        "Issue does not exist; summary: You must specify a summary."
    );
    assert_eq!(
        error_details("<html>\n Unauthorized </html>"),
        "<html> Unauthorized </html>"
    );
}
