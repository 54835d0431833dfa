//! The outbox worker: sends due deliveries, retries failures with exponential backoff, and gives
//! up (status `dead`, error kept) after a sink's `max_attempts` or at once on a permanent error.
//!
//! Guarantee: **at least once per (sink, alert event)**. A delivery row exists from the moment
//! its alert is committed; it is marked `sent` only after the sink confirmed. A crash between
//! the two sends it again on the next run, so receivers may see a duplicate (the webhook's
//! `X-Segwatch-Event` header lets them drop it); a delivery is never lost.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;

use super::{Message, SendError, Sink};
use crate::alerts::{AlertRecord, AlertStatus};
use crate::store::{DeliveryOutcome, DueDelivery, Store, StoreError};

/// First retry delay; doubles per attempt.
const BACKOFF_BASE: Duration = Duration::from_secs(30);
/// Longest delay between two attempts.
const BACKOFF_MAX: Duration = Duration::from_secs(3600);

/// What one run of the worker did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct DeliveryReport {
    /// Deliveries confirmed by their sink.
    pub sent: usize,
    /// Deliveries that failed and will be retried.
    pub failed: usize,
    /// Deliveries given up.
    pub dead: usize,
    /// Digest messages sent (each covers several deliveries).
    pub digests: usize,
}

/// Sends every delivery of the workspace that is due at `now`. Deliveries of one poll to one
/// sink that number more than the sink's `digest_threshold` go out as one digest.
pub async fn deliver_due(
    store: &mut Store,
    sinks: &[Sink],
    workspace_id: i64,
    now: DateTime<Utc>,
) -> Result<DeliveryReport, StoreError> {
    let due = store.due_deliveries(workspace_id, &stamp(now))?;
    let mut groups: BTreeMap<(String, i64), Vec<DueDelivery>> = BTreeMap::new();
    for d in due {
        groups
            .entry((d.sink.clone(), d.snapshot_id))
            .or_default()
            .push(d);
    }
    let mut report = DeliveryReport::default();
    for ((sink_name, snapshot_id), deliveries) in groups {
        let Some(sink) = sinks.iter().find(|s| s.name() == sink_name) else {
            let error = format!("sink `{sink_name}` is no longer configured");
            let ids: Vec<i64> = deliveries.iter().map(|d| d.id).collect();
            store.record_delivery(
                &ids,
                &DeliveryOutcome::Failed {
                    next_attempt_at: &stamp(now),
                    dead: true,
                    error: &error,
                },
            )?;
            report.dead += ids.len();
            continue;
        };
        let alerts: Vec<AlertRecord> = deliveries.iter().map(as_of_event).collect();
        if deliveries.len() > sink.config.digest_threshold {
            let mut sorted = alerts.clone();
            sorted.sort_by(|a, b| b.severity.cmp(&a.severity).then(a.id.cmp(&b.id)));
            let result = sink
                .send(&Message::Digest {
                    alerts: &sorted,
                    snapshot_id,
                })
                .await;
            let ids: Vec<i64> = deliveries.iter().map(|d| d.id).collect();
            let attempts = deliveries.iter().map(|d| d.attempts).max().unwrap_or(0);
            record(store, sink, &ids, attempts, result, now, &mut report)?;
            report.digests += 1;
        } else {
            for (delivery, alert) in deliveries.iter().zip(&alerts) {
                let result = sink.send(&Message::Alert(alert)).await;
                record(
                    store,
                    sink,
                    &[delivery.id],
                    delivery.attempts,
                    result,
                    now,
                    &mut report,
                )?;
            }
        }
    }
    Ok(report)
}

fn record(
    store: &mut Store,
    sink: &Sink,
    ids: &[i64],
    attempts: u32,
    result: Result<(), SendError>,
    now: DateTime<Utc>,
    report: &mut DeliveryReport,
) -> Result<(), StoreError> {
    match result {
        Ok(()) => {
            store.record_delivery(ids, &DeliveryOutcome::Sent)?;
            report.sent += ids.len();
        }
        Err(error) => {
            let attempt = attempts + 1;
            let (dead, wait) = match &error {
                SendError::Permanent { .. } => (true, Duration::ZERO),
                SendError::Retryable { retry_after, .. } => (
                    attempt >= sink.config.max_attempts,
                    backoff(attempt).max(retry_after.unwrap_or_default()),
                ),
            };
            let next = now + chrono::Duration::from_std(wait).unwrap_or(chrono::Duration::MAX);
            let message = error.to_string();
            tracing::warn!(sink = %sink.name(), attempt, dead, error = %message, "delivery failed");
            store.record_delivery(
                ids,
                &DeliveryOutcome::Failed {
                    next_attempt_at: &stamp(next),
                    dead,
                    error: &message,
                },
            )?;
            if dead {
                report.dead += ids.len();
            } else {
                report.failed += ids.len();
            }
        }
    }
    Ok(())
}

/// Exponential backoff for the attempt just failed (1-based).
fn backoff(attempt: u32) -> Duration {
    BACKOFF_BASE
        .saturating_mul(1u32 << attempt.saturating_sub(1).min(16))
        .min(BACKOFF_MAX)
}

/// The alert as it was at the event being delivered: a finding raised then already resolved
/// is still announced as raised.
fn as_of_event(d: &DueDelivery) -> AlertRecord {
    let mut alert = d.alert.clone();
    if !d.resolved && alert.status == AlertStatus::Resolved {
        alert.status = AlertStatus::Open;
        alert.resolved_at = None;
        alert.resolved_snapshot_id = None;
        alert.resolution = None;
    }
    alert
}

fn stamp(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_is_capped() {
        assert_eq!(backoff(1), Duration::from_secs(30));
        assert_eq!(backoff(2), Duration::from_secs(60));
        assert_eq!(backoff(4), Duration::from_secs(240));
        assert_eq!(backoff(30), BACKOFF_MAX);
    }
}
