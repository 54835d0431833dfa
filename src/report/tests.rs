use chrono::{TimeZone, Utc};

use super::gather::natural_cmp;
use super::render::{escape_markdown, format_duration, format_percent, group_thousands};
use super::*;

fn compliance(id: &str, tags: &[&str], pass: u64, fail: u64) -> ComplianceRuleResult {
    ComplianceRuleResult {
        id: id.into(),
        title: format!("title of {id}"),
        severity: Severity::Medium,
        resource_kind: ResourceKind::Source,
        tags: tags.iter().map(|t| t.to_string()).collect(),
        tally: Tally {
            pass,
            fail,
            ..Tally::default()
        },
        recorded_open: fail as usize,
        first_error: None,
    }
}

fn change(id: &str, tags: &[&str], alerts: usize) -> ChangeRuleResult {
    ChangeRuleResult {
        id: id.into(),
        title: format!("title of {id}"),
        severity: Severity::High,
        resource_kind: ResourceKind::User,
        on: vec![ChangeOp::Added],
        tags: tags.iter().map(|t| t.to_string()).collect(),
        alerts,
    }
}

#[test]
fn pass_rate_counts_errors_as_not_passing_and_leaves_exemptions_out() {
    let t = Tally {
        pass: 6,
        fail: 1,
        exempt: 5,
        error: 1,
    };
    assert_eq!(t.checks(), 8);
    assert_eq!(t.pass_rate(), Some(75.0));
    assert_eq!(Tally::default().pass_rate(), None, "no checks, no rate");
    let all_exempt = Tally {
        exempt: 3,
        ..Tally::default()
    };
    assert_eq!(all_exempt.pass_rate(), None);
    let json = serde_json::to_value(t).unwrap();
    assert_eq!(json["checks"], 8);
    assert_eq!(json["pass_rate"], 75.0);
}

#[test]
fn frameworks_group_by_prefix_and_count_each_rule_once() {
    let compliance = [
        // Carries two SOC 2 controls: counted once in SOC 2's rate.
        compliance("a", &["soc2:CC6.1", "soc2:CC6.3", "iso27001:A.5.18"], 8, 2),
        compliance("b", &["soc2:CC6.1"], 3, 7),
        compliance("c", &["iso27001:A.5.9", "internal"], 5, 0),
    ];
    let change = [
        change("x", &["soc2:CC6.1", "soc2:CC7.2"], 4),
        change("y", &["soc2:CC7.2"], 1),
    ];
    let frameworks = frameworks(&compliance, &change);
    let names: Vec<&str> = frameworks.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(names, ["ISO/IEC 27001", "SOC 2", "Other tags"]);

    let soc2 = &frameworks[1];
    assert_eq!(soc2.key, "soc2");
    assert_eq!(
        (soc2.tally.pass, soc2.tally.fail),
        (11, 9),
        "a once, b once"
    );
    assert_eq!(soc2.tally.pass_rate(), Some(55.0));
    assert_eq!((soc2.compliance_rules, soc2.change_rules), (2, 2));
    assert_eq!(soc2.change_alerts, 5, "x once, y once");
    let controls: Vec<(&str, Option<f64>, usize)> = soc2
        .controls
        .iter()
        .map(|c| (c.control.as_str(), c.tally.pass_rate(), c.change_alerts))
        .collect();
    assert_eq!(
        controls,
        [
            ("CC6.1", Some(55.0), 4),
            ("CC6.3", Some(80.0), 0),
            ("CC7.2", None, 5)
        ]
    );
    assert_eq!(soc2.controls[0].compliance_rules, ["a", "b"]);
    assert_eq!(soc2.controls[0].change_rules, ["x"]);

    let iso = &frameworks[0];
    let controls: Vec<&str> = iso.controls.iter().map(|c| c.control.as_str()).collect();
    assert_eq!(controls, ["A.5.9", "A.5.18"], "natural order");
    assert_eq!(iso.tally.pass_rate(), Some(13.0 * 100.0 / 15.0));

    let other = &frameworks[2];
    assert_eq!(
        (other.key.as_str(), other.controls[0].tag.as_str()),
        ("", "internal")
    );
}

#[test]
fn controls_sort_naturally() {
    let mut controls = vec![
        "CC6.10", "AC-6", "CC6.2", "AC-2(7)", "AC-2", "A.8.32", "A.8.9",
    ];
    controls.sort_by(|a, b| natural_cmp(a, b));
    assert_eq!(
        controls,
        [
            "A.8.9", "A.8.32", "AC-2", "AC-2(7)", "AC-6", "CC6.2", "CC6.10"
        ]
    );
}

#[test]
fn times_are_rfc3339_or_utc_dates() {
    let at = |y, m, d, h| Utc.with_ymd_and_hms(y, m, d, h, 0, 0).unwrap();
    assert_eq!(
        parse_time("2026-11-01T09:00:00+02:00", Bound::Since),
        Ok(at(2026, 11, 1, 7))
    );
    assert_eq!(
        parse_time("2026-11-01", Bound::Since),
        Ok(at(2026, 11, 1, 0))
    );
    assert_eq!(
        parse_time("2026-11-30", Bound::Until),
        Ok(at(2026, 12, 1, 0)),
        "an end date includes its whole day"
    );
    let err = parse_time("last tuesday", Bound::Since).unwrap_err();
    assert!(
        err.contains("`last tuesday`") && err.contains("RFC 3339"),
        "{err}"
    );
    assert!(parse_time("2026-02-30", Bound::Until).is_err());
}

#[test]
fn percentages_never_round_to_a_clean_sheet() {
    assert_eq!(format_percent(Some(100.0)), "100.0%");
    assert_eq!(format_percent(Some(99.96)), "99.9%");
    assert_eq!(format_percent(Some(87.54)), "87.5%");
    assert_eq!(format_percent(Some(0.01)), "0.1%");
    assert_eq!(format_percent(Some(0.0)), "0.0%");
    assert_eq!(format_percent(None), "—");
}

#[test]
fn numbers_and_durations_read_well() {
    assert_eq!(group_thousands(0), "0");
    assert_eq!(group_thousands(999), "999");
    assert_eq!(group_thousands(1_234_567), "1,234,567");
    assert_eq!(group_thousands(-4_000), "-4,000");
    assert_eq!(format_duration(42), "42s");
    assert_eq!(format_duration(7 * 60 + 3), "7m 3s");
    assert_eq!(format_duration(5 * 3600 + 12 * 60 + 9), "5h 12m");
    assert_eq!(format_duration(3 * 86_400 + 4 * 3600 + 59), "3d 4h");
}

#[test]
fn markdown_escaping_keeps_tables_and_markup_intact() {
    assert_eq!(
        escape_markdown("<script>x</script> | *a* [l](u)\nnext"),
        r"\<script\>x\</script\> \| \*a\* \[l\](u) next"
    );
}

#[test]
fn markdown_escaping_escapes_terminal_escapes_and_bidi_overrides() {
    assert_eq!(
        escape_markdown("a\u{1b}[31m\u{202e}b"),
        r"a\u{1b}\[31m\u{202e}b"
    );
}

fn sample_report(name: &str, chain_head_hash: Option<&str>) -> Report {
    let snapshot = SnapshotRef {
        id: segwatch_core::ids::SnapshotId(7),
        started_at: "2026-11-24T12:00:00.000Z".parse().unwrap(),
        finished_at: Some("2026-11-24T12:00:02.000Z".parse().unwrap()),
        resource_count: Some(12),
    };
    let rules = vec![compliance(
        "source-missing-environment-label",
        &["soc2:CC6.1"],
        3,
        1,
    )];
    let changes = vec![change("user-added", &["soc2:CC6.2"], 1)];
    Report {
        header: Header {
            workspace: "acme".into(),
            segment_workspace_id: Some("ws1".into()),
            since: "2026-11-01T00:00:00.000Z".into(),
            until: "2026-12-01T00:00:00.000Z".into(),
            generated_at: "2026-11-24T13:00:00.000Z".into(),
            generator: "segwatch test".into(),
            first_snapshot: snapshot.clone(),
            last_snapshot: snapshot,
            complete_polls: 1,
            failed_polls: 0,
            running_polls: 0,
            rule_set: RuleSetInfo {
                source: "rules".into(),
                compliance: 1,
                change: 1,
                disabled: 0,
                fingerprint: "sha256:00".into(),
            },
            chain_head_hash: chain_head_hash.map(str::to_string),
        },
        summary: Summary {
            resources: 12,
            checks: rules[0].tally,
            failing_rules: 1,
            open_findings: 1,
            open_by_severity: vec![SeverityCount {
                severity: Severity::Medium,
                count: 1,
            }],
            resolved_findings: 0,
            change_alerts: 1,
            change_alerts_by_severity: vec![],
            changes: 1,
        },
        frameworks: frameworks(&rules, &changes),
        open_findings: Listing {
            total: 1,
            rows: vec![OpenFinding {
                alert_id: segwatch_core::ids::AlertId(1),
                rule_id: rules[0].id.clone(),
                title: rules[0].title.clone(),
                severity: Severity::Medium,
                resource_kind: ResourceKind::Source,
                resource_id: "s1".into(),
                resource_name: name.into(),
                summary: format!("Source {name} has no environment label"),
                opened_at: "2026-11-24T11:00:00.000Z".parse().unwrap(),
                opened_snapshot_id: segwatch_core::ids::SnapshotId(6),
                age_secs: 3602,
            }],
        },
        resolved_findings: Listing {
            rows: vec![],
            total: 0,
        },
        change_alerts: Listing {
            rows: vec![],
            total: 0,
        },
        changes: vec![KindChanges {
            kind: "source".into(),
            modified: 1,
            total: 1,
            ..KindChanges::default()
        }],
        compliance_rules: rules,
        change_rules: changes,
        data_flows: sample_flows(name),
    }
}

/// A production source named `name` feeding a destination (also named `name`) that maps an
/// email, and a warehouse.
fn sample_flows(name: &str) -> DataFlows {
    use segwatch_core::flows::{FlowMap, PersonalPatterns};
    use segwatch_core::model::Resource;
    let resources = [
        Resource::new(
            ResourceKind::Source,
            "s1".into(),
            name.into(),
            serde_json::json!({"id": "s1", "enabled": true,
                "labels": [{"key": "environment", "value": "prod"}]}),
        ),
        Resource::new(
            ResourceKind::Destination,
            "d1".into(),
            name.into(),
            serde_json::json!({"id": "d1", "sourceId": "s1", "enabled": true,
                "settings": {"traitMapping": {"email": "Email"}}}),
        ),
        Resource::new(
            ResourceKind::Warehouse,
            "w1".into(),
            "Snowflake".into(),
            serde_json::json!({"id": "w1", "enabled": false, "connectedSourceIds": ["s1"]}),
        ),
    ];
    let patterns = PersonalPatterns::default();
    DataFlows::new(
        segwatch_core::ids::SnapshotId(7),
        &patterns,
        FlowMap::compute(&resources, &patterns),
    )
}

#[test]
fn the_data_flow_section_draws_the_map_in_html_and_lists_it_in_markdown_and_json() {
    let report = sample_report("Web <prod>", None);
    assert_eq!(
        (
            report.data_flows.production_flows,
            report.data_flows.personal_flows
        ),
        (2, 1)
    );
    let html = render(&report, Format::Html).unwrap();
    let svg = &html[html.find("<svg").unwrap()..html.find("</svg>").unwrap()];
    for needle in [
        r#"data-node="source:s1""#,
        r#"data-node="destination:d1""#,
        r#"data-node="warehouse:w1""#,
        r#"data-edge="s1-&gt;d1""#,
        r#"data-edge="s1-&gt;w1""#,
        "Web &lt;prod&gt;",
        "personal: email",
    ] {
        assert!(svg.contains(needle), "{needle} in {svg}");
    }
    assert_eq!(svg.matches("data-node=").count(), 3);
    assert_eq!(svg.matches("data-edge=").count(), 2);
    assert!(svg.contains(r#"class="node source prod""#), "{svg}");
    assert!(svg.contains(r#"class="edge prod off""#), "{svg}");
    assert!(svg.contains(r#"class="edge prod pii""#), "{svg}");
    assert!(html.contains(r#"<section id="data-flows""#));
    let md = render(&report, Format::Markdown).unwrap();
    assert!(md.contains("## 7. Data flows"), "{md}");
    assert!(md.contains(r"| Web \<prod\> (production) |"), "{md}");
    assert!(!md.contains("<svg"));
    let json: serde_json::Value =
        serde_json::from_str(&render(&report, Format::Json).unwrap()).unwrap();
    assert_eq!(
        json["data_flows"]["flows"][0]["personal_fields"][0]["field"],
        "email"
    );
    assert_eq!(json["data_flows"]["snapshot_id"], 7);
}

#[test]
fn every_value_is_escaped_in_html_and_markdown() {
    let name = "<img src=x onerror=alert(1)> | *Web*";
    let report = sample_report(name, None);
    let html = render(&report, Format::Html).unwrap();
    assert!(!html.contains("<img"), "unescaped markup in the HTML");
    assert!(html.contains("&lt;img src=x onerror=alert(1)&gt; | *Web*"));
    assert!(html.contains("1h 0m"), "ages are readable");
    let md = render(&report, Format::Markdown).unwrap();
    assert!(
        md.contains(r"\<img src=x onerror=alert(1)\> \| \*Web\*"),
        "{md}"
    );
    assert!(
        !md.replace(r"\<", "").contains("<img"),
        "unescaped markup in the Markdown"
    );
    let json: serde_json::Value =
        serde_json::from_str(&render(&report, Format::Json).unwrap()).unwrap();
    assert_eq!(json["open_findings"]["rows"][0]["resource_name"], name);
}

#[test]
fn the_chain_head_hash_is_shown_only_when_known() {
    for format in [Format::Html, Format::Markdown] {
        let without = render(&sample_report("web", None), format).unwrap();
        assert!(!without.contains("Chain head hash"), "{format:?}");
        let with = render(&sample_report("web", Some("sha256:feedface")), format).unwrap();
        assert!(
            with.contains("Chain head hash") && with.contains("sha256:feedface"),
            "{format:?}"
        );
    }
}
