//! Sinks: workspace limits, plain-HTTP webhooks, message limits and retry backoff.

use super::*;

#[test]
fn a_sink_limited_to_an_unknown_workspace_is_refused() {
    let toml = "[[workspaces]]\nname = \"prod\"\ntoken = \"t\"\n\
        [[workspaces]]\nname = \"eu\"\ntoken = \"u\"\n\
        [[sinks]]\nname = \"hook\"\ntype = \"webhook\"\nurl = \"https://example.com/h\"\nworkspaces = [\"prd\"]\n";
    let err = load(toml, &[]).unwrap().sinks().unwrap_err().to_string();
    assert!(
        err.contains("`sinks.workspaces`") && err.contains("`prd`"),
        "{err}"
    );
    // Narrowed to one workspace with --workspace, the sink may still name the other.
    let ok = toml.replace("\"prd\"", "\"eu\"");
    let mut settings = load(&ok, &[]).unwrap();
    settings.select_workspace(Some("prod")).unwrap();
    assert_eq!(settings.sinks().unwrap()[0].filter.workspaces, ["eu"]);
}

#[test]
fn plain_http_webhooks_only_to_loopback_unless_allowed() {
    let sink = |url: &str, extra: &str| {
        load(
            &format!(
                "[segment]\ntoken = \"t\"\n[[sinks]]\nname = \"hook\"\ntype = \"webhook\"\nurl = \"{url}\"\n{extra}"
            ),
            &[],
        )
        .unwrap()
        .sinks()
    };
    for ok in [
        "https://hooks.example.com/h",
        "http://127.0.0.1:9000/h",
        "http://127.8.0.1/h",
        "http://localhost:8080/h",
        "http://[::1]:8080/h",
    ] {
        assert!(sink(ok, "").is_ok(), "{ok}");
    }
    for refused in [
        "http://hooks.example.com/h",
        "http://10.0.0.5/h",
        "http://[fd00::1]/h",
    ] {
        let err = sink(refused, "").unwrap_err().to_string();
        for needle in ["`sinks.url`", "sink `hook`", "allow_insecure_http = true"] {
            assert!(err.contains(needle), "{refused}: {err}");
        }
        // The URL is a secret and stays out of the message.
        assert!(!err.contains(refused), "{err}");
        assert!(
            sink(refused, "allow_insecure_http = true\n").is_ok(),
            "{refused}"
        );
    }
    let err = sink("ftp://hooks.example.com/h", "")
        .unwrap_err()
        .to_string();
    assert!(err.contains("`ftp` is not a webhook scheme"), "{err}");
}

#[test]
fn message_limits_are_read_defaulted_and_validated_per_sink_type() {
    let base = "[segment]\ntoken = \"t\"\n[[sinks]]\nname = \"hook\"\ntype = \"webhook\"\nurl = \"https://example.com/h\"\n";
    let sinks = load(base, &[]).unwrap().sinks().unwrap();
    assert_eq!(sinks[0].max_message_bytes, 1024 * 1024);
    assert_eq!(sinks[0].max_messages_per_run, 20);
    let set = format!("{base}max_body_bytes = 65536\nmax_messages_per_run = 5\n");
    let sinks = load(&set, &[]).unwrap().sinks().unwrap();
    assert_eq!(
        (sinks[0].max_message_bytes, sinks[0].max_messages_per_run),
        (65536, 5)
    );
    for (extra, needles) in [
        (
            "max_body_bytes = 100\n",
            &[
                "`sinks.max_body_bytes`",
                "sink `hook`",
                "100 is out of range",
                "16384",
            ][..],
        ),
        (
            "max_body_bytes = 200000000\n",
            &["`sinks.max_body_bytes`", "104857600"],
        ),
        (
            "max_message_bytes = 65536\n",
            &[
                "`sinks.max_message_bytes`",
                "does not apply to a `webhook` sink",
            ],
        ),
        (
            "max_messages_per_run = 0\n",
            &[
                "`sinks.max_messages_per_run`",
                "0 is out of range; expected 1 to 10000",
            ],
        ),
    ] {
        let err = load(&format!("{base}{extra}"), &[])
            .unwrap()
            .sinks()
            .unwrap_err()
            .to_string();
        for needle in needles {
            assert!(err.contains(needle), "{extra}: {err}");
        }
    }
}

#[test]
fn retry_backoff_is_read_defaulted_and_validated_per_sink() {
    let base = "[segment]\ntoken = \"t\"\n[[sinks]]\nname = \"hook\"\ntype = \"webhook\"\nurl = \"https://example.com/h\"\n";
    let sinks = load(base, &[]).unwrap().sinks().unwrap();
    assert_eq!(
        sinks[0].retry_backoff,
        segwatch_sinks::outbox::RetryBackoff {
            base: std::time::Duration::from_secs(30),
            max: std::time::Duration::from_secs(3600),
        }
    );
    let set = format!("{base}retry_base_secs = 1\nretry_max_secs = 4\n");
    let sinks = load(&set, &[]).unwrap().sinks().unwrap();
    assert_eq!(
        (sinks[0].retry_backoff.base, sinks[0].retry_backoff.max),
        (
            std::time::Duration::from_secs(1),
            std::time::Duration::from_secs(4)
        )
    );
    for (extra, needles) in [
        (
            "retry_base_secs = 0\n",
            &[
                "`sinks.retry_base_secs`",
                "sink `hook`",
                "0 is out of range; expected 1 to 3600 seconds",
            ][..],
        ),
        (
            "retry_base_secs = 3601\n",
            &["`sinks.retry_base_secs`", "3601 is out of range"],
        ),
        (
            "retry_base_secs = 60\nretry_max_secs = 30\n",
            &[
                "`sinks.retry_max_secs`",
                "30 is out of range; expected `retry_base_secs` (60) to 86400 seconds",
            ],
        ),
        (
            "retry_max_secs = 86401\n",
            &["`sinks.retry_max_secs`", "86401 is out of range"],
        ),
    ] {
        let err = load(&format!("{base}{extra}"), &[])
            .unwrap()
            .sinks()
            .unwrap_err()
            .to_string();
        for needle in needles {
            assert!(err.contains(needle), "{extra}: {err}");
        }
    }
}
