use std::fs;

use insta::{assert_json_snapshot, assert_snapshot};
use serde_json::Value;

use super::*;
use crate::render::fixtures::{APP_BASE, change_alert, finding, resolved_finding};
use segwatch_core::alerts::AlertRecord;
use segwatch_core::ids::AlertId;

fn texts(blocks: &Value) -> String {
    blocks.to_string()
}

#[test]
fn subjects() {
    let t = Templates::builtin();
    let change = change_alert();
    assert_eq!(
        t.subject(&Message::Alert(&change), None).unwrap(),
        "[segwatch][HIGH] Workspace Owner granted: alice@example.com"
    );
    let resolved = resolved_finding();
    assert_eq!(
        t.subject(&Message::Alert(&resolved), None).unwrap(),
        "[segwatch][RESOLVED][MEDIUM] Source has no environment label: ios-app"
    );
    assert_eq!(
        t.subject(&Message::Test, None).unwrap(),
        "[segwatch] Test message"
    );

    let mut alerts: Vec<AlertRecord> = Vec::new();
    for i in 0..37 {
        let mut a = if i % 2 == 0 {
            change_alert()
        } else {
            finding()
        };
        a.severity = match i {
            0..2 => Severity::Critical,
            2..7 => Severity::High,
            _ => Severity::Low,
        };
        alerts.push(a);
    }
    let digest = Message::Digest {
        alerts: &alerts,
        snapshot_id: SnapshotId(12),
    };
    assert_eq!(
        t.subject(&digest, None).unwrap(),
        "[segwatch] 37 alerts from snapshot 12 (2 critical, 5 high, 30 low)"
    );
}

#[test]
fn subject_is_one_line_even_with_newlines_in_names() {
    let mut a = change_alert();
    a.resource_name = "evil\r\nBcc: victim@example.com".to_owned();
    let s = Templates::builtin()
        .subject(&Message::Alert(&a), None)
        .unwrap();
    assert!(!s.contains('\n') && !s.contains('\r'), "{s}");
}

#[test]
fn change_alert_snapshots() {
    let t = Templates::builtin();
    let a = change_alert();
    let msg = Message::Alert(&a);
    assert_snapshot!("change_subject", t.subject(&msg, Some(APP_BASE)).unwrap());
    assert_snapshot!("change_text", t.text(&msg, Some(APP_BASE)).unwrap());
    assert_json_snapshot!("change_slack", t.slack(&msg, Some(APP_BASE)).unwrap());
}

#[test]
fn finding_snapshots() {
    let t = Templates::builtin();
    let a = finding();
    let msg = Message::Alert(&a);
    assert_snapshot!("finding_subject", t.subject(&msg, Some(APP_BASE)).unwrap());
    assert_snapshot!("finding_text", t.text(&msg, Some(APP_BASE)).unwrap());
    assert_json_snapshot!("finding_slack", t.slack(&msg, Some(APP_BASE)).unwrap());
}

#[test]
fn resolution_snapshots() {
    let t = Templates::builtin();
    let a = resolved_finding();
    let msg = Message::Alert(&a);
    assert_snapshot!("resolved_text", t.text(&msg, None).unwrap());
    assert_json_snapshot!("resolved_slack", t.slack(&msg, None).unwrap());
}

#[test]
fn change_alert_slack_shows_before_and_after() {
    let a = change_alert();
    let payload = Templates::builtin()
        .slack(&Message::Alert(&a), None)
        .unwrap();
    let s = texts(&payload["blocks"]);
    assert!(s.contains("`Read-Only Member` → `Workspace Owner`"), "{s}");
    assert!(
        s.contains("`(none)` → `[{\\\"id\\\":\\\"ws_1\\\",\\\"type\\\":\\\"WORKSPACE\\\"}]`"),
        "{s}"
    );
    // No link without an app base.
    assert!(!s.contains("Open in Segment"), "{s}");
}

#[test]
fn links_need_an_app_base() {
    assert_eq!(
        resource_link(APP_BASE, ResourceKind::Source, "src_9f3K2a").as_deref(),
        Some("https://app.segment.com/acme-analytics/sources/src_9f3K2a/overview")
    );
    assert_eq!(
        resource_link(
            "https://app.segment.com/acme-analytics/",
            ResourceKind::Invite,
            "a@b.c"
        )
        .as_deref(),
        Some("https://app.segment.com/acme-analytics/settings/access-management")
    );
    assert_eq!(resource_link(APP_BASE, ResourceKind::Source, "../x"), None);
    assert_eq!(
        resource_link(APP_BASE, ResourceKind::Label, "env:prod"),
        None
    );
    assert_eq!(resource_link("", ResourceKind::User, "u1"), None);
}

#[test]
fn html_is_escaped_everywhere() {
    let mut a = finding();
    a.resource_name = "<script>alert(1)</script>".to_owned();
    a.summary = "Source <b>x</b> & co".to_owned();
    let t = Templates::builtin();
    let html = t.html(&Message::Alert(&a), Some(APP_BASE)).unwrap();
    assert!(!html.contains("<script>"), "{html}");
    assert!(
        html.contains("&lt;script&gt;alert(1)&lt;&#x2f;script&gt;"),
        "{html}"
    );
    assert!(
        html.contains("Source &lt;b&gt;x&lt;&#x2f;b&gt; &amp; co"),
        "{html}"
    );
    // Slack mrkdwn is escaped too: no link or mention can be smuggled in.
    a.resource_name = "<!channel> <https://evil.example|click>".to_owned();
    let slack = t.slack(&Message::Alert(&a), None).unwrap().to_string();
    assert!(!slack.contains("<!channel>"), "{slack}");
    assert!(slack.contains("&lt;!channel&gt;"), "{slack}");
}

#[test]
fn html_body_has_the_content() {
    let a = change_alert();
    let html = Templates::builtin()
        .html(&Message::Alert(&a), Some(APP_BASE))
        .unwrap();
    assert!(html.contains("Workspace Owner granted"));
    assert!(html.contains("alice@example.com"));
    assert!(html.contains("Read-Only Member"));
    // minijinja escapes `/` too, which attributes decode.
    assert!(html.contains(
        r#"<a href="https:&#x2f;&#x2f;app.segment.com&#x2f;acme-analytics&#x2f;settings&#x2f;access-management">"#
    ), "{html}");
}

#[test]
fn digest_caps_the_list() {
    let alerts: Vec<AlertRecord> = (0..120)
        .map(|i| {
            let mut a = finding();
            a.id = AlertId(i);
            a.resource_name = format!("source-{i:03}-{}", "x".repeat(200));
            a.title = "t".repeat(400);
            a
        })
        .collect();
    let msg = Message::Digest {
        alerts: &alerts,
        snapshot_id: SnapshotId(7),
    };
    let t = Templates::builtin();
    let text = t.text(&msg, None).unwrap();
    assert!(text.contains("source-049"));
    assert!(!text.contains("source-050"));
    assert!(text.contains("...and 70 more."), "{text}");

    let payload = t.slack(&msg, Some(APP_BASE)).unwrap();
    let blocks = payload["blocks"].as_array().unwrap();
    assert!(blocks.len() <= 50);
    for b in blocks {
        if let Some(text) = b["text"]["text"].as_str() {
            assert!(text.chars().count() <= 3000);
        }
    }
    let all = payload.to_string();
    assert!(all.contains("source-049"));
    assert!(!all.contains("source-050"));
    assert!(all.contains("…and 70 more"));
    assert!(
        payload["text"]
            .as_str()
            .unwrap()
            .starts_with("[segwatch] 120 alerts from snapshot 7 (120 medium)")
    );
}

#[test]
fn slack_limits_hold_for_huge_alerts() {
    let mut a = change_alert();
    a.title = "T".repeat(1000);
    a.summary = "S".repeat(10_000);
    a.remediation = "R".repeat(10_000);
    a.explanation["changes"] = (0..500)
        .map(|i| serde_json::json!({"path": format!("p{i}"), "old": "o".repeat(500), "new": "n"}))
        .collect();
    let payload = Templates::builtin()
        .slack(&Message::Alert(&a), Some(APP_BASE))
        .unwrap();
    let blocks = payload["blocks"].as_array().unwrap();
    assert!(blocks.len() <= 50, "{}", blocks.len());
    assert!(blocks[0]["text"]["text"].as_str().unwrap().chars().count() <= 150);
    assert!(payload.to_string().contains("…and 480 more changes"));
    for b in blocks {
        if let Some(text) = b["text"]["text"].as_str() {
            assert!(text.chars().count() <= 3000);
        }
    }
}

#[test]
fn test_message() {
    let t = Templates::builtin();
    assert!(
        t.text(&Message::Test, None)
            .unwrap()
            .contains("test message")
    );
    let payload = t.slack(&Message::Test, None).unwrap();
    assert_eq!(payload["text"], "[segwatch] Test message");
}

#[test]
fn overrides_replace_builtins() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(
        dir.path().join(SUBJECT_FILE),
        "ALERT {{ alert.rule_id }} on {{ alert.resource_name }}",
    )
    .unwrap();
    fs::write(dir.path().join("README.md"), "not a template").unwrap();
    let t = Templates::with_overrides(dir.path()).unwrap();
    let a = change_alert();
    assert_eq!(
        t.subject(&Message::Alert(&a), None).unwrap(),
        "ALERT owner-granted on alice@example.com"
    );
    // The others stay built in.
    assert_eq!(
        t.text(&Message::Alert(&a), None).unwrap(),
        Templates::builtin()
            .text(&Message::Alert(&a), None)
            .unwrap()
    );
}

#[test]
fn broken_override_names_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(HTML_FILE);
    fs::write(&path, "<p>{% if alert %}unclosed</p>").unwrap();
    let err = Templates::with_overrides(dir.path()).unwrap_err();
    assert!(matches!(err, RenderError::Compile { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(msg.contains(&path.display().to_string()), "{msg}");
    assert!(msg.contains("does not compile"), "{msg}");
}

#[test]
fn misspelt_override_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("emial.txt.j2"), "x").unwrap();
    let err = Templates::with_overrides(dir.path()).unwrap_err();
    assert!(err.to_string().contains("emial.txt.j2"), "{err}");
    let missing = Templates::with_overrides(&dir.path().join("nope")).unwrap_err();
    assert!(missing.to_string().contains("nope"), "{missing}");
}

#[test]
fn runtime_errors_name_the_template() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(
        dir.path().join(TEXT_FILE),
        "{{ alert.title | nosuchfilter }}",
    )
    .unwrap();
    let err = match Templates::with_overrides(dir.path()) {
        Err(e) => e,
        Ok(t) => {
            let a = change_alert();
            t.text(&Message::Alert(&a), None).unwrap_err()
        }
    };
    assert!(err.to_string().contains(TEXT_FILE), "{err}");
}

#[test]
fn html_snapshot() {
    let a = change_alert();
    let html = Templates::builtin()
        .html(&Message::Alert(&a), Some(APP_BASE))
        .unwrap();
    assert_snapshot!("change_html", html);
}

#[test]
fn digest_snapshots() {
    let alerts = [change_alert(), finding(), resolved_finding()];
    let msg = Message::Digest {
        alerts: &alerts,
        snapshot_id: SnapshotId(12),
    };
    let t = Templates::builtin();
    assert_snapshot!("digest_subject", t.subject(&msg, Some(APP_BASE)).unwrap());
    assert_snapshot!("digest_text", t.text(&msg, Some(APP_BASE)).unwrap());
    assert_json_snapshot!("digest_slack", t.slack(&msg, Some(APP_BASE)).unwrap());
}

#[test]
fn a_slack_override_renders_the_whole_payload() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(
        dir.path().join(SLACK_FILE),
        r#"{"text": {{ alert.title|tojson }}, "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": {{ ("*" ~ alert.label ~ "* " ~ alert.resource_name)|tojson }}}}]}"#,
    )
    .unwrap();
    let t = Templates::with_overrides(dir.path()).unwrap();
    let alert = change_alert();
    let payload = t.slack(&Message::Alert(&alert), None).unwrap();
    assert_eq!(payload["text"], alert.title.as_str());
    assert!(
        payload["blocks"][0]["text"]["text"]
            .as_str()
            .unwrap()
            .contains(&alert.resource_name)
    );

    // Output that is not a JSON object is an error naming the template.
    fs::write(dir.path().join(SLACK_FILE), "not json {{ alert.title }}").unwrap();
    let t = Templates::with_overrides(dir.path()).unwrap();
    let err = t
        .slack(&Message::Alert(&alert), None)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains(SLACK_FILE) && err.contains("not JSON"),
        "{err}"
    );
}

#[test]
fn every_message_says_who_made_a_change_or_that_nobody_is_known() {
    let t = Templates::builtin();
    let known = change_alert();
    let mut unknown = change_alert();
    unknown.attribution = segwatch_core::model::Attribution::default();
    let mut attributed_finding = finding();
    attributed_finding.attribution = known.attribution.clone();
    let cases = [
        (
            &known,
            Some("Made by bob@example.com (User Policy Updated)"),
        ),
        (
            &unknown,
            Some("Actor unknown: no audit trail event matched"),
        ),
        (
            &attributed_finding,
            Some("Made by bob@example.com (User Policy Updated)"),
        ),
        // A finding no known change opened (e.g. on the baseline) names nobody.
        (&finding(), None),
    ];
    for (alert, line) in cases {
        let msg = Message::Alert(alert);
        let text = t.text(&msg, None).unwrap();
        let html = t.html(&msg, None).unwrap();
        let slack = texts(&t.slack(&msg, None).unwrap());
        let teams = t.teams(&msg, None).to_string();
        match line {
            Some(line) => {
                for (what, body) in [
                    ("text", &text),
                    ("html", &html),
                    ("slack", &slack),
                    ("teams", &teams),
                ] {
                    assert!(body.contains(line), "{what} lacks {line:?}:\n{body}");
                }
            }
            None => {
                for body in [&text, &html, &slack, &teams] {
                    assert!(
                        !body.contains("Made by") && !body.contains("Actor unknown"),
                        "{body}"
                    );
                }
            }
        }
    }
}

#[test]
fn teams_card_snapshots() {
    let t = Templates::builtin();
    let change = change_alert();
    assert_json_snapshot!(
        "change_teams",
        t.teams(&Message::Alert(&change), Some(APP_BASE))
    );
    let found = finding();
    assert_json_snapshot!(
        "finding_teams",
        t.teams(&Message::Alert(&found), Some(APP_BASE))
    );
    let resolved = resolved_finding();
    assert_json_snapshot!("resolved_teams", t.teams(&Message::Alert(&resolved), None));
    let alerts = [change_alert(), finding(), resolved_finding()];
    let digest = Message::Digest {
        alerts: &alerts,
        snapshot_id: SnapshotId(12),
    };
    assert_json_snapshot!("digest_teams", t.teams(&digest, Some(APP_BASE)));
    let summary = Summary {
        count: 1234,
        severities: vec![(Severity::High, 1000), (Severity::Low, 234)],
        rules: vec![("every-user".into(), 1200), ("owner-granted".into(), 34)],
        more_rules: 0,
        command: "segwatch alerts --limit 1234".into(),
    };
    assert_json_snapshot!("summary_teams", t.teams(&Message::Summary(&summary), None));
}

#[test]
fn teams_text_cannot_form_links_or_markup() {
    let mut a = change_alert();
    a.resource_name = "[click](https://evil.example) **bold** <at>x</at>".to_owned();
    let card = Templates::builtin().teams(&Message::Alert(&a), None);
    let text = card.to_string();
    assert!(!text.contains("[click](https"), "{text}");
    assert!(
        text.contains(r"\\[click\\](https://evil.example) **bold** \\<at\\>x\\</at\\>"),
        "{text}"
    );
}

/// A digest of a change alert with many changed fields, a finding, and a resolution.
fn digest_alerts() -> Vec<AlertRecord> {
    let mut change = change_alert();
    change.explanation["changes"] = (0..7)
        .map(|i| serde_json::json!({"path": format!("settings.field{i}"), "old": format!("before-{i}-{}", "o".repeat(100)), "new": format!("after-{i}")}))
        .collect();
    let mut other = change_alert();
    other.id = AlertId(43);
    other.resource_name = "carol@example.com".into();
    other.attribution.actor_email = Some("dave@example.com".into());
    vec![change, other, finding(), resolved_finding()]
}

#[test]
fn every_digest_keeps_each_alerts_actor_changes_and_where_to_see_it() {
    let t = Templates::builtin();
    let alerts = digest_alerts();
    let msg = Message::Digest {
        alerts: &alerts,
        snapshot_id: SnapshotId(12),
    };
    let html = t.html(&msg, None).unwrap();
    let text = t.text(&msg, None).unwrap();
    let slack = texts(&t.slack(&msg, None).unwrap());
    let teams = t.teams(&msg, None).to_string();
    for (what, body) in [
        ("html", &html),
        ("text", &text),
        ("slack", &slack),
        ("teams", &teams),
    ] {
        // Who, for each change alert.
        assert!(
            body.contains("Made by bob@example.com (User Policy Updated)"),
            "{what}:\n{body}"
        );
        assert!(
            body.contains("Made by dave@example.com (User Policy Updated)"),
            "{what}:\n{body}"
        );
        // A changed field, its value shortened, before and after.
        assert!(body.contains("settings.field0"), "{what}:\n{body}");
        assert!(body.contains("after-0"), "{what}:\n{body}");
        assert!(body.contains("Workspace Owner"), "{what}:\n{body}");
        assert!(
            body.contains(&format!("before-0-{}…", "o".repeat(50))),
            "{what}: values are shortened to 60 characters:\n{body}"
        );
        assert!(
            !body.contains(&"o".repeat(60)),
            "{what}: values are shortened:\n{body}"
        );
        // At most three fields per alert, the rest counted.
        assert!(body.contains("settings.field2"), "{what}:\n{body}");
        assert!(!body.contains("settings.field3"), "{what}:\n{body}");
        assert!(body.contains("and 4 more changes"), "{what}:\n{body}");
        // Where to see each one whole.
        for command in [
            "segwatch --workspace acme alerts --rule owner-granted --status fired --format json",
            "segwatch --workspace acme alerts --rule source-labelled --status open --format json",
            "segwatch --workspace acme alerts --rule source-labelled --status resolved --format json",
        ] {
            assert!(body.contains(command), "{what} lacks {command}:\n{body}");
        }
    }
    // With an app base, the app link too.
    let html = t.html(&msg, Some(APP_BASE)).unwrap();
    assert!(html.contains("Open in Segment"), "{html}");
    let teams = t.teams(&msg, Some(APP_BASE)).to_string();
    assert!(
        teams.contains(
            "[Open in Segment](https://app.segment.com/acme-analytics/settings/access-management)"
        ),
        "{teams}"
    );
}

#[test]
fn digest_html_lists_each_alerts_actor_and_a_changed_field() {
    // One entry per alert: each <li> has its own actor and changed field.
    let alerts = digest_alerts();
    let msg = Message::Digest {
        alerts: &alerts,
        snapshot_id: SnapshotId(12),
    };
    let html = Templates::builtin().html(&msg, None).unwrap();
    let items: Vec<&str> = html.split("<li").skip(1).collect();
    assert_eq!(items.len(), 4, "{html}");
    assert!(items[0].contains("Made by bob@example.com") && items[0].contains("settings.field0"));
    assert!(
        items[1].contains("Made by dave@example.com")
            && items[1].contains("permissions[0].roleName")
    );
    assert!(items[1].contains("Read-Only Member") && items[1].contains("Workspace Owner"));
    // A finding no change opened names nobody and has no changes.
    assert!(!items[2].contains("Made by") && !items[2].contains("&rarr;"));
}

#[test]
fn digest_html_snapshot() {
    let alerts = [change_alert(), finding(), resolved_finding()];
    let msg = Message::Digest {
        alerts: &alerts,
        snapshot_id: SnapshotId(12),
    };
    assert_snapshot!(
        "digest_html",
        Templates::builtin().html(&msg, Some(APP_BASE)).unwrap()
    );
}

#[test]
fn an_update_is_worded_as_changed_while_open() {
    let t = Templates::builtin();
    let a = crate::render::fixtures::updated_finding();
    let msg = Message::Update {
        alert: &a,
        update: crate::render::fixtures::update(),
    };
    let subject = t.subject(&msg, Some(APP_BASE)).unwrap();
    assert!(subject.contains("[UPDATED]"), "{subject}");
    assert_snapshot!("updated_subject", subject);
    assert_snapshot!("updated_text", t.text(&msg, Some(APP_BASE)).unwrap());
    let html = t.html(&msg, Some(APP_BASE)).unwrap();
    assert!(html.contains("UPDATED"), "{html}");
    assert_json_snapshot!("updated_slack", t.slack(&msg, Some(APP_BASE)).unwrap());
    assert_json_snapshot!("updated_teams", t.teams(&msg, Some(APP_BASE)));
}
