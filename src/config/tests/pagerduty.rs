//! PagerDuty sinks: the integration key (required, 32 characters, never shown), the events
//! URL, and what change alerts become.

use super::*;

const KEY: &str = "0123456789abcdef0123456789ABCDEF";

fn sinks(extra: &str) -> Result<Vec<segwatch_sinks::SinkConfig>, ConfigError> {
    load(
        &format!(
            "[segment]\ntoken = \"t\"\n[[sinks]]\nname = \"pager\"\ntype = \"pagerduty\"\n{extra}"
        ),
        &[],
    )
    .unwrap()
    .sinks()
}

fn error(extra: &str) -> String {
    sinks(extra).unwrap_err().to_string()
}

#[test]
fn a_pagerduty_sink_reads_its_key_url_and_change_alerts() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("pd.key");
    std::fs::write(&file, format!("{KEY}\n")).unwrap();
    let read = sinks(&format!("routing_key_file = \"{}\"\n", file.display())).unwrap();
    let segwatch_sinks::SinkTarget::PagerDuty(pd) = &read[0].target else {
        panic!("not a PagerDuty target: {:?}", read[0].target);
    };
    assert_eq!(pd.routing_key.expose_secret(), KEY);
    assert_eq!(pd.url, segwatch_sinks::pagerduty::EVENTS_URL);
    assert_eq!(
        pd.change_alerts,
        segwatch_sinks::pagerduty::ChangeAlerts::Trigger
    );
    assert!(read[0].filter.send_resolved, "resolutions go by default");
    assert!(
        !format!("{:?}", read[0]).contains(KEY),
        "Debug hides the key"
    );

    let read = sinks(&format!(
        "routing_key = \"{KEY}\"\nurl = \"http://127.0.0.1:9000/v2/enqueue\"\nchange_alerts = \"change-event\"\n"
    ))
    .unwrap();
    let segwatch_sinks::SinkTarget::PagerDuty(pd) = &read[0].target else {
        panic!("not a PagerDuty target");
    };
    assert_eq!(pd.url, "http://127.0.0.1:9000/v2/enqueue");
    assert_eq!(
        pd.change_alerts,
        segwatch_sinks::pagerduty::ChangeAlerts::ChangeEvent
    );
    // Built into a sink, it tracks findings.
    assert!(
        segwatch_sinks::Sink::new(read.into_iter().next().unwrap())
            .unwrap()
            .tracks_findings()
    );
}

#[test]
fn a_bad_pagerduty_sink_is_refused_naming_the_key_and_the_sink() {
    let short = "0123456789abcdef0123456789abcde";
    for (extra, needles) in [
        (
            String::new(),
            &["`sinks.routing_key`", "sink `pager`", "routing_key_env"][..],
        ),
        (
            format!("routing_key = \"{short}\"\n"),
            &[
                "`sinks.routing_key`",
                "sink `pager`",
                "32 characters; this one has 31",
            ],
        ),
        (
            "routing_key = \"0123456789abcdef-0123456789abcde\"\n".to_owned(),
            &["`sinks.routing_key`", "only letters and digits"],
        ),
        (
            format!("routing_key = \"{KEY}\"\nurl = \"https://events.pagerduty.com/v2/send\"\n"),
            &["`sinks.url`", "sink `pager`", "ends with `/v2/enqueue`"],
        ),
        (
            format!("routing_key = \"{KEY}\"\nurl = \"http://events.example.com/v2/enqueue\"\n"),
            &["`sinks.url`", "allow_insecure_http = true"],
        ),
        (
            format!("routing_key = \"{KEY}\"\nchange_alerts = \"incident\"\n"),
            &[
                "`sinks.change_alerts`",
                "`incident` is not a choice; expected `trigger` or `change-event`",
            ],
        ),
        (
            "routing_key = \"R0123456789ABCDEF0123456789ABCDE\"\nchange_alerts = \"change-event\"\n"
                .to_owned(),
            &["`sinks.change_alerts`", "ruleset key (starting with R) cannot take change events"],
        ),
        (
            format!("routing_key = \"{KEY}\"\nmax_body_bytes = 65536\n"),
            &[
                "`sinks.max_body_bytes`",
                "does not apply to a `pagerduty` sink",
            ],
        ),
    ] {
        let err = error(&extra);
        for needle in needles {
            assert!(err.contains(needle), "{extra}: {err}");
        }
        assert!(
            !err.contains(short) && !err.contains(KEY),
            "the key is shown: {err}"
        );
    }
}

#[test]
fn pagerduty_keys_on_another_sink_are_refused() {
    let err = load(
        &format!(
            "[segment]\ntoken = \"t\"\n[[sinks]]\nname = \"hook\"\ntype = \"webhook\"\nurl = \"https://example.com/h\"\nrouting_key = \"{KEY}\"\n"
        ),
        &[],
    )
    .unwrap()
    .sinks()
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("`sinks.routing_key`")
            && err.contains("applies only to a `pagerduty` sink, not a `webhook` one"),
        "{err}"
    );
    assert!(!err.contains(KEY));
}

#[test]
fn send_updates_is_read_and_defaults_per_type() {
    let build = |extra: &str| {
        segwatch_sinks::Sink::new(
            sinks(&format!("routing_key = \"{KEY}\"\n{extra}"))
                .unwrap()
                .into_iter()
                .next()
                .unwrap(),
        )
        .unwrap()
    };
    assert!(
        build("").wants_updates(),
        "PagerDuty takes updates by default"
    );
    assert!(!build("send_updates = false\n").wants_updates());
    let wrong = load(
        &format!(
            "[segment]\ntoken = \"t\"\n[[sinks]]\nname = \"pager\"\ntype = \"pagerduty\"\n\
             routing_key = \"{KEY}\"\nsend_updates = \"maybe\"\n"
        ),
        &[],
    )
    .map(|_| ())
    .expect_err("not a boolean")
    .to_string();
    assert!(wrong.contains("send_updates"), "{wrong}");
}
