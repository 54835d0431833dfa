use super::*;

use std::collections::BTreeSet;
use std::path::Path;

use crate::render::fixtures::{change_alert, finding, resolved_finding};
use file::{FileConfig, FileSink, rotated};

/// Versions and times vary; snapshots hold a fixed product version.
fn stable(mut v: Value) -> Value {
    v["metadata"]["product"]["version"] = json!("[version]");
    v
}

#[test]
fn a_finding_is_a_compliance_finding_created_then_closed_under_one_uid() {
    let raised = event(&finding());
    let closed = event(&resolved_finding());
    insta::assert_json_snapshot!("ocsf_finding_raised", stable(raised.clone()));
    insta::assert_json_snapshot!("ocsf_finding_resolved", stable(closed.clone()));
    assert_eq!(raised["class_uid"], 2003);
    assert_eq!(
        (
            &raised["activity_id"],
            &raised["type_uid"],
            &raised["status_id"]
        ),
        (&json!(1), &json!(200301), &json!(1))
    );
    assert_eq!(
        (
            &closed["activity_id"],
            &closed["type_uid"],
            &closed["status_id"]
        ),
        (&json!(3), &json!(200303), &json!(4))
    );
    assert_eq!(raised["finding_info"]["uid"], closed["finding_info"]["uid"]);
    assert_ne!(raised["metadata"]["uid"], closed["metadata"]["uid"]);
    assert_eq!(raised["compliance"]["status_id"], 3, "Fail");
    assert_eq!(closed["compliance"]["status_id"], 1, "Pass");
    assert_eq!(
        closed["time"],
        json!(
            Timestamp::parse("2026-03-02T10:15:00Z")
                .unwrap()
                .as_datetime()
                .timestamp_millis()
        )
    );
}

#[test]
fn an_update_is_an_update_activity_of_the_same_finding() {
    let raised = event(&finding());
    let updated = update_event(
        &crate::render::fixtures::updated_finding(),
        crate::render::fixtures::update(),
    );
    insta::assert_json_snapshot!("ocsf_finding_updated", stable(updated.clone()));
    assert_eq!(
        (
            &updated["activity_id"],
            &updated["type_uid"],
            &updated["status_id"],
            &updated["activity_name"],
        ),
        (&json!(2), &json!(200302), &json!(1), &json!("Update"))
    );
    assert_eq!(
        raised["finding_info"]["uid"],
        updated["finding_info"]["uid"]
    );
    assert_eq!(
        raised["finding_info"]["created_time"],
        updated["finding_info"]["created_time"]
    );
    let at = Timestamp::parse("2026-03-02T09:45:00Z")
        .unwrap()
        .as_datetime()
        .timestamp_millis();
    assert_eq!(updated["finding_info"]["modified_time"], json!(at));
    assert_eq!(updated["time"], json!(at));
    assert_eq!(updated["metadata"]["uid"], "segwatch-alert-42-updated-3");
    assert_eq!(updated["compliance"]["status_id"], 3, "still Fail");
    assert_eq!(
        updated["evidences"][0]["actor"]["user"]["email_addr"],
        "bob@example.com"
    );
}

#[test]
fn an_exempted_finding_is_closed_as_suppressed() {
    let exempted = AlertRecord {
        resolution: Some("exempted".into()),
        ..resolved_finding()
    };
    let e = event(&exempted);
    assert_eq!(
        (&e["activity_id"], &e["status_id"], &e["status"]),
        (&json!(3), &json!(3), &json!("Suppressed"))
    );
    assert_eq!(e["compliance"]["status_id"], 99);
    assert_eq!(e["compliance"]["status"], "exempted");
    // The raise of a resolved record is announced as it was.
    let raised = event(&as_raised(&exempted));
    assert_eq!(
        (&raised["activity_id"], &raised["status_id"]),
        (&json!(1), &json!(1))
    );
}

#[test]
fn a_change_alert_is_a_detection_finding_with_its_actor_and_controls() {
    let change = event(&change_alert());
    insta::assert_json_snapshot!("ocsf_change", stable(change.clone()));
    assert_eq!(
        (&change["class_uid"], &change["type_uid"]),
        (&json!(2004), &json!(200401))
    );
    assert_eq!(
        change["evidences"][0]["actor"]["user"]["email_addr"],
        "bob@example.com"
    );
    assert_eq!(change["evidences"][0]["actor"]["user"]["uid"], "usr_9Bq3Zt");
    assert_eq!(
        change["metadata"]["labels"],
        json!(["soc2:CC6.3", "iso27001:A.5.18"])
    );
    assert!(
        change.get("compliance").is_none(),
        "2004 has no compliance object"
    );
    assert_eq!(change["severity_id"], 4);
    assert_eq!(
        change["unmapped"]["segwatch"]["explanation"]["changes"][0]["path"],
        "permissions[0].roleName"
    );
}

#[test]
fn severities_map_one_to_one() {
    let ids: Vec<u32> = Severity::ALL.iter().map(|s| severity(*s).0).collect();
    assert_eq!(ids, vec![1, 2, 3, 4, 5]);
}

#[test]
fn backfill_events_are_in_time_order_within_the_window() {
    let change = change_alert(); // 09:15
    let resolved = resolved_finding(); // raised 09:15, resolved 10:15
    let all = [resolved.clone(), change.clone()];
    let t = |s: &str| Timestamp::parse(s).unwrap().as_datetime();
    let events = events_between(&all, t("2026-03-02T00:00:00Z"), t("2026-03-03T00:00:00Z"));
    let kinds: Vec<(i64, bool)> = events
        .iter()
        .map(|a| (a.id.get(), is_resolution(a)))
        .collect();
    assert_eq!(kinds, vec![(41, false), (42, false), (42, true)]);
    let later = events_between(&all, t("2026-03-02T10:00:00Z"), t("2026-03-03T00:00:00Z"));
    assert_eq!(later.len(), 1);
    assert!(is_resolution(&later[0]));
}

#[test]
fn a_backfill_puts_an_update_between_the_raising_and_the_resolution() {
    let t = |s: &str| Timestamp::parse(s).unwrap().as_datetime();
    // Raised 09:15, updated 09:45, resolved 10:15.
    let all = [resolved_finding()];
    let updates = [(
        crate::render::fixtures::updated_finding(),
        crate::render::fixtures::update(),
    )];
    let activities = |since: &str| -> Vec<Value> {
        backfill(&all, &updates, t(since), t("2026-03-03T00:00:00Z"))
            .iter()
            .map(|e| e["activity_id"].clone())
            .collect()
    };
    assert_eq!(
        activities("2026-03-02T00:00:00Z"),
        [json!(1), json!(2), json!(3)]
    );
    assert_eq!(activities("2026-03-02T09:30:00Z"), [json!(2), json!(3)]);
    assert_eq!(activities("2026-03-02T10:00:00Z"), [json!(3)]);
}

#[test]
fn hec_and_ndjson_bodies() {
    let events = vec![event(&change_alert()), event(&finding())];
    let hec = String::from_utf8(http::body(http::HttpFormat::SplunkHec, &events)).unwrap();
    let lines: Vec<Value> = hec
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[0]["sourcetype"], "ocsf");
    assert_eq!(lines[0]["event"]["class_uid"], 2004);
    assert_eq!(
        lines[0]["time"].as_f64().unwrap(),
        events[0]["time"].as_i64().unwrap() as f64 / 1000.0
    );
    let nd = String::from_utf8(http::body(http::HttpFormat::Ndjson, &events)).unwrap();
    let parsed: Vec<Value> = nd
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(parsed, events);
}

#[test]
fn the_file_rotates_before_a_write_that_would_pass_the_limit() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("findings.ocsf.jsonl");
    let sink = FileSink::new(FileConfig {
        path: path.clone(),
        max_file_bytes: 100,
        max_files: 2,
    });
    let line = |c: char| format!("{}\n", c.to_string().repeat(39)).into_bytes(); // 40 bytes
    sink.append_blocking(&line('a')).unwrap();
    sink.append_blocking(&line('b')).unwrap();
    // 80 + 40 > 100: rotate first.
    sink.append_blocking(&line('c')).unwrap();
    let read = |p: &Path| std::fs::read_to_string(p).unwrap();
    assert_eq!(read(&path), String::from_utf8(line('c')).unwrap());
    assert_eq!(read(&rotated(&path, 1)).len(), 80);
    sink.append_blocking(&line('d')).unwrap();
    sink.append_blocking(&line('e')).unwrap();
    sink.append_blocking(&line('f')).unwrap();
    sink.append_blocking(&line('g')).unwrap();
    // Two more rotations: `a b` is dropped (max_files 2), `c d` is .2, `e f` is .1.
    assert!(read(&path).starts_with('g'));
    assert!(read(&rotated(&path, 1)).starts_with('e'));
    assert!(read(&rotated(&path, 2)).starts_with('c'));
    assert!(!rotated(&path, 3).exists());
}

#[test]
fn a_torn_line_left_by_a_crash_is_cut_before_the_next_append() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("f.jsonl");
    std::fs::write(&path, "{\"a\":1}\n{\"b\":").unwrap();
    let sink = FileSink::new(FileConfig {
        path: path.clone(),
        max_file_bytes: 1 << 20,
        max_files: 1,
    });
    sink.append_blocking(b"{\"c\":3}\n").unwrap();
    assert_eq!(
        std::fs::read_to_string(&path).unwrap(),
        "{\"a\":1}\n{\"c\":3}\n"
    );
}

/// Thousands of events from concurrent writers, a small `max_file_bytes`: every line is in
/// exactly one file, whole, and none is lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rotation_under_load_loses_and_tears_no_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("findings.ocsf.jsonl");
    let config = FileConfig {
        path: path.clone(),
        max_file_bytes: 16 * 1024,
        max_files: 10_000,
    };
    const WRITERS: usize = 8;
    const PER_WRITER: usize = 200;
    let mut tasks = Vec::new();
    for w in 0..WRITERS {
        // A sink of its own per writer, as two sinks on one path would be: only the file lock
        // keeps them apart.
        let sink = FileSink::new(config.clone());
        tasks.push(tokio::spawn(async move {
            let mut alert = finding();
            for i in 0..PER_WRITER {
                alert.id = segwatch_core::ids::AlertId((w * PER_WRITER + i) as i64);
                // Every other write a digest of five events, the others single events.
                if i % 2 == 0 {
                    let mut bytes = Vec::new();
                    for k in 0..5 {
                        let mut a = alert.clone();
                        a.id = segwatch_core::ids::AlertId(
                            1_000_000 + (w * PER_WRITER + i) as i64 * 5 + k,
                        );
                        bytes.extend(line(&a));
                    }
                    sink.append(bytes).await.unwrap();
                } else {
                    sink.append(line(&alert)).await.unwrap();
                }
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let mut files = vec![path.clone()];
    let mut n = 1;
    while rotated(&path, n).exists() {
        files.push(rotated(&path, n));
        n += 1;
    }
    assert!(files.len() > 50, "it rotated ({} files)", files.len());
    let mut ids = BTreeSet::new();
    let mut lines = 0;
    for f in &files {
        let text = std::fs::read_to_string(f).unwrap();
        assert!(
            text.len() as u64 <= config.max_file_bytes,
            "{} is over the limit",
            f.display()
        );
        assert!(text.ends_with('\n'), "{} ends in a whole line", f.display());
        for l in text.lines() {
            let v: Value = serde_json::from_str(l)
                .unwrap_or_else(|e| panic!("{}: a torn line: {e}: {l}", f.display()));
            assert!(ids.insert(v["unmapped"]["segwatch"]["alert_id"].as_i64().unwrap()));
            lines += 1;
        }
    }
    let digests = WRITERS * PER_WRITER / 2;
    assert_eq!(lines, WRITERS * PER_WRITER - digests + digests * 5);
    assert_eq!(lines, 4800);
}
