use super::*;
use crate::render::fixtures::finding;
use crate::{SinkConfig, SinkFilter, SinkTarget};

fn webhook(max_message_bytes: usize) -> Sink {
    sink(
        max_message_bytes,
        SinkTarget::Webhook {
            // Never contacted: these tests only measure.
            url: "http://127.0.0.1:9/hook".to_owned().into(),
            secret: None,
        },
    )
}

fn sink(max_message_bytes: usize, target: SinkTarget) -> Sink {
    Sink::new(SinkConfig {
        name: "test".into(),
        filter: SinkFilter::default(),
        digest_threshold: 1,
        max_message_bytes,
        max_messages_per_run: 20,
        max_attempts: 3,
        retry_backoff: RetryBackoff::default(),
        target,
        send_updates: None,
        app_base: None,
        templates: None,
    })
    .unwrap()
}

/// `count` findings of varied sizes (summaries of 0 to ~2,000 characters).
fn storm(count: usize) -> Vec<AlertRecord> {
    (0..count)
        .map(|i| {
            let mut a = finding();
            a.id = segwatch_core::ids::AlertId(i as i64 + 1);
            a.resource_name = format!("user-{i}@example.com");
            a.summary = "x".repeat((i * 7919) % 2000);
            a
        })
        .collect()
}

/// Cuts `alerts` into messages the way the worker does; each as a range of `alerts`.
fn split(sink: &Sink, alerts: &[AlertRecord]) -> Vec<std::ops::Range<usize>> {
    let mut out = Vec::new();
    let mut at = 0;
    while at < alerts.len() {
        let (n, measure) = first_fit(sink, SnapshotId(7), &alerts[at..]).unwrap();
        assert!(n > 0, "alert {at} alone does not fit: {measure:?}");
        out.push(at..at + n);
        at += n;
    }
    out
}

fn assert_covers_in_order(parts: &[std::ops::Range<usize>], len: usize) {
    let flat: Vec<usize> = parts.iter().flat_map(|r| r.clone()).collect();
    assert_eq!(
        flat,
        (0..len).collect::<Vec<_>>(),
        "each alert once, in order"
    );
}

#[test]
fn webhook_digests_are_cut_to_the_body_limit() {
    let limit = 64 * 1024;
    let hook = webhook(limit);
    let alerts = storm(600);
    let whole = super::super::webhook::body_len(&Message::Digest {
        alerts: &alerts,
        snapshot_id: SnapshotId(7),
    });
    assert!(whole > 5 * limit, "the storm is large: {whole}");
    let parts = split(&hook, &alerts);
    assert_covers_in_order(&parts, alerts.len());
    for part in &parts {
        let len = super::super::webhook::body_len(&Message::Digest {
            alerts: &alerts[part.clone()],
            snapshot_id: SnapshotId(7),
        });
        assert!(len <= limit, "{part:?}: {len} bytes");
    }
    // Not one alert a message: the parts are reasonably full.
    assert!(
        parts.len() <= whole / (limit * 8 / 10) + 1,
        "{} parts",
        parts.len()
    );
}

#[test]
fn webhook_digests_list_at_most_the_memory_bound() {
    let hook = webhook(100 * 1024 * 1024);
    let mut alerts = storm(2500);
    for a in &mut alerts {
        a.summary.clear();
    }
    let parts = split(&hook, &alerts);
    assert_covers_in_order(&parts, alerts.len());
    assert_eq!(
        parts.iter().map(|p| p.len()).collect::<Vec<_>>(),
        vec![1000, 1000, 500]
    );
}

#[test]
fn slack_digests_keep_to_slack_limits() {
    let slack = sink(
        crate::DEFAULT_MAX_MESSAGE_BYTES,
        SinkTarget::Slack {
            url: "http://127.0.0.1:9/services/T/B/X".to_owned().into(),
        },
    );
    let mut alerts = storm(230);
    for (i, a) in alerts.iter_mut().enumerate() {
        a.title = format!("{} {}", "Long title".repeat(1 + i % 20), i);
    }
    let parts = split(&slack, &alerts);
    assert_covers_in_order(&parts, alerts.len());
    for part in &parts {
        assert!(part.len() <= crate::render::DIGEST_LIMIT, "{part:?}");
        let m = slack
            .measure(&Message::Digest {
                alerts: &alerts[part.clone()],
                snapshot_id: SnapshotId(7),
            })
            .unwrap();
        assert!(m.fits(), "{part:?}: {m:?}");
    }
}

#[test]
fn an_alert_too_large_alone_is_reported_not_split() {
    let hook = webhook(16 * 1024);
    let mut alerts = storm(3);
    alerts[0].summary = "y".repeat(20_000);
    let (n, measure) = first_fit(&hook, SnapshotId(7), &alerts).unwrap();
    assert_eq!(n, 0);
    let measure = measure.unwrap();
    assert!(
        measure.size > 20_000 && measure.limit == 16 * 1024,
        "{measure:?}"
    );
    assert!(describe(&measure).contains("body bytes (max_body_bytes)"));
    // The next ones fit.
    assert_eq!(first_fit(&hook, SnapshotId(7), &alerts[1..]).unwrap().0, 2);
}

#[test]
fn largest_fit_finds_a_fitting_count_in_few_measures() {
    let mut calls = 0;
    let (n, _) = largest_fit(1000, |n| {
        calls += 1;
        Ok(Measure {
            size: 300 + 1700 * n,
            limit: 1_000_000,
            what: "bytes",
        })
    })
    .unwrap();
    assert!(300 + 1700 * n <= 1_000_000 && n >= 550, "{n}");
    assert!(calls <= 3, "{calls} measures");
}

#[test]
fn a_summary_counts_and_says_how_to_list() {
    let key = |id, rule: &str, severity| Key {
        id,
        attempts: 0,
        rule_id: rule.to_owned(),
        severity,
        status: AlertStatus::Open,
    };
    let mut keys: Vec<Key> = (0..150)
        .map(|i| key(i, "every-user", Severity::High))
        .collect();
    let summary = summary_of(&keys);
    assert_eq!(summary.count, 150);
    assert_eq!(summary.severities, vec![(Severity::High, 150)]);
    assert_eq!(
        summary.command,
        "segwatch alerts --status open --rule every-user --limit 150"
    );
    assert!(
        crate::render::summary_text(&summary).ends_with(
            "150 alerts not listed; list them with: segwatch alerts --status open --rule every-user --limit 150"
        )
    );
    for i in 0..30 {
        keys.push(key(1000 + i, &format!("rule-{i:02}"), Severity::Critical));
    }
    keys[0].status = AlertStatus::Fired;
    let summary = summary_of(&keys);
    assert_eq!(summary.command, "segwatch alerts --limit 180");
    assert_eq!(summary.rules.len(), SUMMARY_RULES);
    assert_eq!(summary.rules[0], ("every-user".to_owned(), 150));
    assert_eq!(summary.more_rules, 31 - SUMMARY_RULES);
    assert_eq!(
        summary.severities,
        vec![(Severity::Critical, 30), (Severity::High, 150)]
    );
}

#[test]
fn backoff_doubles_and_is_capped() {
    let backoff = |attempt| RetryBackoff::default().after(attempt);
    assert_eq!(backoff(1), Duration::from_secs(30));
    assert_eq!(backoff(2), Duration::from_secs(60));
    assert_eq!(backoff(4), Duration::from_secs(240));
    assert_eq!(backoff(30), BACKOFF_MAX);
}

#[test]
fn a_configured_backoff_doubles_from_its_base_up_to_its_cap() {
    let short = RetryBackoff {
        base: Duration::from_secs(1),
        max: Duration::from_secs(8),
    };
    let waits: Vec<u64> = (1..=6).map(|a| short.after(a).as_secs()).collect();
    assert_eq!(waits, [1, 2, 4, 8, 8, 8]);
    assert_eq!(short.after(u32::MAX), Duration::from_secs(8));
}
