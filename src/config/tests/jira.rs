//! Jira sinks: defaults, and each bad setting named with its key and sink.

use super::*;

const BASE: &str = "[segment]\ntoken = \"t\"\n[[sinks]]\nname = \"tickets\"\ntype = \"jira\"\n\
    base_url = \"https://acme.atlassian.net\"\nemail = \"bot@acme.io\"\ntoken = \"tok-1\"\n\
    project = \"SEC\"\n";

fn jira(extra: &str) -> Result<segwatch_sinks::jira::JiraConfig, String> {
    let sinks = load(&format!("{BASE}{extra}"), &[])
        .unwrap()
        .sinks()
        .map_err(|e| e.to_string())?;
    match &sinks[0].target {
        segwatch_sinks::SinkTarget::Jira(config) => Ok(config.clone()),
        other => panic!("{other:?}"),
    }
}

#[test]
fn defaults_and_priorities() {
    let config = jira("priorities = { critical = \"Highest\" }\n").unwrap();
    assert_eq!(config.token.expose_secret(), "tok-1");
    assert_eq!(config.issue_type, "Task");
    assert_eq!(config.resolve_transition, "Done");
    assert_eq!(config.reopen_transition, None);
    assert!(config.change_alerts);
    assert_eq!(
        config
            .priorities
            .get(&segwatch_core::rules::Severity::Critical),
        Some(&"Highest".to_owned())
    );
}

#[test]
fn each_bad_setting_is_named() {
    for (extra, key) in [
        (
            "priorities = { urgent = \"Highest\" }\n",
            "`sinks.priorities`",
        ),
        ("labels = [\"two words\"]\n", "`sinks.labels`"),
        ("reopen_transition = \"\"\n", "`sinks.reopen_transition`"),
    ] {
        let err = jira(extra).unwrap_err();
        assert!(
            err.contains(key) && err.contains("sink `tickets`"),
            "{extra}: {err}"
        );
    }
    for (from, to, key) in [
        (
            "project = \"SEC\"",
            "project = \"sec ops\"",
            "`sinks.project`",
        ),
        (
            "email = \"bot@acme.io\"",
            "email = \"bot\"",
            "`sinks.email`",
        ),
        ("https://acme", "http://acme", "`sinks.base_url`"),
        ("token = \"tok-1\"\n", "", "`sinks.token`"),
    ] {
        let toml = BASE.replace(from, to);
        let err = load(&toml, &[]).unwrap().sinks().unwrap_err().to_string();
        assert!(
            err.contains(key) && err.contains("sink `tickets`"),
            "{to}: {err}"
        );
        assert!(!err.contains("tok-1"));
    }
    // A Jira key on another sink type is a mistake, not ignored.
    let toml = "[segment]\ntoken = \"t\"\n[[sinks]]\nname = \"hook\"\ntype = \"webhook\"\n\
        url = \"https://example.com/h\"\nproject = \"SEC\"\n";
    let err = load(toml, &[]).unwrap().sinks().unwrap_err().to_string();
    assert!(
        err.contains("`sinks.project`") && err.contains("only to a `jira` sink"),
        "{err}"
    );
}

#[test]
fn change_alerts_is_a_flag_for_jira_and_a_mode_for_pagerduty() {
    assert!(!jira("change_alerts = false\n").unwrap().change_alerts);
    let err = jira("change_alerts = \"trigger\"\n").unwrap_err();
    assert!(
        err.contains("`sinks.change_alerts`") && err.contains("expected true or false"),
        "{err}"
    );
    let pagerduty = "[segment]\ntoken = \"t\"\n[[sinks]]\nname = \"pager\"\ntype = \"pagerduty\"\n\
        routing_key = \"0123456789abcdef0123456789abcdef\"\nchange_alerts = false\n";
    let err = load(pagerduty, &[])
        .unwrap()
        .sinks()
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("`sinks.change_alerts`") && err.contains("`trigger` or `change-event`"),
        "{err}"
    );
    // Neither sink's key is refused on the other, and both are refused elsewhere.
    let webhook = "[segment]\ntoken = \"t\"\n[[sinks]]\nname = \"hook\"\ntype = \"webhook\"\n\
        url = \"https://hooks.example.com/x\"\nchange_alerts = true\n";
    let err = load(webhook, &[]).unwrap().sinks().unwrap_err().to_string();
    assert!(
        err.contains("`sinks.change_alerts`")
            && err.contains("applies only to `pagerduty` and `jira` sinks, not a `webhook` one"),
        "{err}"
    );
}
