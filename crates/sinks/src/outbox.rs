//! The outbox worker: sends due deliveries, retries failures with exponential backoff, and gives
//! up (status `dead`, error kept) after a sink's `max_attempts` or at once on a permanent error.
//! Messages keep to each sink's size limits, and a run sends a sink at most its
//! `max_messages_per_run`, the last a summary of what is left (status `summarised`; an OCSF
//! sink summarises nothing: the rest waits for the next run): see
//! [`deliver_due`].
//!
//! A sink that tracks findings ([`Sink::tracks_findings`]: an incident, a ticket per finding)
//! gets every alert event on its own, never a digest or a summary; past its
//! `max_messages_per_run` the rest waits, due, for the next run; and one finding's events reach
//! it in order: an event waits while an earlier one of the same finding (workspace, rule,
//! resource) to that sink is not yet sent or dead.
//!
//! Guarantee: **at least once per (sink, alert event)**. A delivery row exists from the moment
//! its alert is committed; it is marked `sent` only after the sink confirmed. A crash between
//! the two sends it again on the next run, so receivers may see a duplicate (the webhook's
//! `X-Segwatch-Event` header lets them drop it); a delivery is never lost.

use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::{Measure, Message, SUMMARY_RULES, SendError, Sink, Summary};
use segwatch_core::alerts::{AlertRecord, AlertStatus};
use segwatch_core::ids::SnapshotId;
use segwatch_core::rules::Severity;
use segwatch_core::time::Timestamp;
use segwatch_store::{DeliveryEvent, DeliveryOutcome, DueDelivery, DueKey, Store, StoreError};

/// First retry delay by default (`retry_base_secs`); doubles per attempt.
pub const BACKOFF_BASE: Duration = Duration::from_secs(30);
/// Longest delay between two attempts by default (`retry_max_secs`).
pub const BACKOFF_MAX: Duration = Duration::from_secs(3600);

/// How long a failed delivery waits before its next attempt: `base`, doubling per attempt, at
/// most `max` (a sink's `retry_base_secs` and `retry_max_secs`). A receiver's `Retry-After` can
/// only lengthen the wait.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryBackoff {
    /// Wait after the first failed attempt.
    pub base: Duration,
    /// Longest wait.
    pub max: Duration,
}

impl Default for RetryBackoff {
    fn default() -> Self {
        RetryBackoff {
            base: BACKOFF_BASE,
            max: BACKOFF_MAX,
        }
    }
}

impl RetryBackoff {
    /// The wait after the attempt just failed (1-based).
    pub fn after(&self, attempt: u32) -> Duration {
        self.base
            .saturating_mul(1u32 << attempt.saturating_sub(1).min(16))
            .min(self.max)
    }
}

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
    /// Deliveries counted, not listed, in a summary the sink confirmed (status `summarised`).
    pub summarised: usize,
    /// Messages the sinks confirmed, summaries included.
    pub messages: usize,
}

/// Sends every delivery of the workspace that is due at `now`.
///
/// Per sink, in one run: deliveries of one poll that number more than the sink's
/// `digest_threshold` go out as digests, each as large as fits the sink's limits
/// ([`Sink::measure`]), most severe first; the others one message each. A message refused as too
/// large (HTTP 413) is split in halves, down to one alert. Once the sink's
/// `max_messages_per_run` is about to be reached with alerts left, the last message is a
/// [`Summary`] of all of them, and they are marked `summarised` when the sink confirms it.
///
/// Only light keys of the due deliveries are held for the whole run; alerts are loaded for one
/// message at a time, so memory does not grow with the size of the storm.
pub async fn deliver_due(
    store: &mut Store,
    sinks: &[Sink],
    workspace_id: i64,
    now: DateTime<Utc>,
) -> Result<DeliveryReport, StoreError> {
    deliver_due_to(store, sinks, workspace_id, now, SinkScope::All).await
}

/// Which sinks' deliveries one pass of the outbox handles.
#[derive(Debug, Clone, Copy)]
pub enum SinkScope<'a> {
    /// Every sink's.
    All,
    /// One sink's (the daemon runs a pass per sink, so a silent sink holds only its own).
    One(&'a str),
    /// Those of sinks not among these names: sinks removed from the configuration, whose
    /// deliveries are marked dead.
    NotIn(&'a [String]),
}

/// [`deliver_due`] for the deliveries in `scope`, each pass on its own connection when run
/// side by side. A sink in scope that is not among `sinks` (removed from the configuration)
/// has its deliveries marked dead.
pub async fn deliver_due_to(
    store: &mut Store,
    sinks: &[Sink],
    workspace_id: i64,
    now: DateTime<Utc>,
    scope: SinkScope<'_>,
) -> Result<DeliveryReport, StoreError> {
    let one = match scope {
        SinkScope::One(name) => Some(name),
        SinkScope::All | SinkScope::NotIn(_) => None,
    };
    let mut keys = store.due_delivery_keys(workspace_id, &stamp(now), one)?;
    if let SinkScope::NotIn(names) = scope {
        keys.retain(|k| !names.contains(&k.sink));
    }
    let mut by_sink: BTreeMap<String, BTreeMap<SnapshotId, Vec<DueKey>>> = BTreeMap::new();
    for k in keys {
        by_sink
            .entry(k.sink.clone())
            .or_default()
            .entry(k.snapshot_id)
            .or_default()
            .push(k);
    }
    let mut report = DeliveryReport::default();
    for (sink_name, groups) in by_sink {
        let Some(sink) = sinks.iter().find(|s| s.name() == sink_name) else {
            let error = format!("sink `{sink_name}` is no longer configured");
            let ids: Vec<i64> = groups.values().flatten().map(|d| d.id).collect();
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
        let mut work = VecDeque::new();
        for (snapshot_id, keys) in groups {
            // An update is a message of its own: a digest lists alerts, not what changed.
            let (updates, mut keys): (Vec<DueKey>, Vec<DueKey>) = keys
                .into_iter()
                .partition(|k| k.event == DeliveryEvent::Updated);
            if sink.tracks_findings() {
                // One message per event: a ticket or an incident is about one finding.
                work.extend(keys.into_iter().map(Work::Single));
            } else if keys.len() > sink.config.digest_threshold {
                keys.sort_by(|a, b| {
                    b.severity
                        .cmp(&a.severity)
                        .then(a.alert_id.cmp(&b.alert_id))
                });
                work.push_back(Work::Digest {
                    snapshot_id,
                    keys: keys.into(),
                });
            } else {
                work.extend(keys.into_iter().map(Work::Single));
            }
            work.extend(updates.into_iter().map(Work::Single));
        }
        deliver_to_sink(store, sink, work, now, &mut report).await?;
    }
    Ok(report)
}

/// What is left to send to one sink in this run.
enum Work {
    /// One alert, on its own.
    Single(DueKey),
    /// Alerts of one poll, most severe first, still to be cut into digests.
    Digest {
        snapshot_id: SnapshotId,
        keys: VecDeque<DueKey>,
    },
    /// Half of a digest refused as too large, loaded.
    Part {
        snapshot_id: SnapshotId,
        deliveries: Vec<DueDelivery>,
    },
}

impl Work {
    fn keys(&self) -> Vec<Key> {
        match self {
            Work::Single(k) => vec![Key::of(k)],
            Work::Digest { keys, .. } => keys.iter().map(Key::of).collect(),
            Work::Part { deliveries, .. } => deliveries.iter().map(Key::of_delivery).collect(),
        }
    }
}

/// What a summary needs of a delivery.
struct Key {
    id: i64,
    attempts: u32,
    rule_id: String,
    severity: Severity,
    status: AlertStatus,
}

impl Key {
    fn of(k: &DueKey) -> Key {
        Key {
            id: k.id,
            attempts: k.attempts,
            rule_id: k.rule_id.clone(),
            severity: k.severity,
            status: k.status,
        }
    }

    fn of_delivery(d: &DueDelivery) -> Key {
        let alert = as_of_event(d);
        Key {
            id: d.id,
            attempts: d.attempts,
            rule_id: alert.rule_id,
            severity: alert.severity,
            status: alert.status,
        }
    }
}

/// The next message for one sink, alerts loaded.
struct Batch {
    /// `None`: a single alert sent on its own.
    snapshot_id: Option<SnapshotId>,
    deliveries: Vec<DueDelivery>,
    alerts: Vec<AlertRecord>,
}

impl Batch {
    fn message(&self) -> Message<'_> {
        match self.snapshot_id {
            Some(snapshot_id) => Message::Digest {
                alerts: &self.alerts,
                snapshot_id,
            },
            None => single(&self.deliveries[0], &self.alerts[0]),
        }
    }

    fn ids(&self) -> Vec<i64> {
        self.deliveries.iter().map(|d| d.id).collect()
    }

    fn attempts(&self) -> u32 {
        self.deliveries
            .iter()
            .map(|d| d.attempts)
            .max()
            .unwrap_or(0)
    }
}

async fn deliver_to_sink(
    store: &mut Store,
    sink: &Sink,
    mut work: VecDeque<Work>,
    now: DateTime<Utc>,
    report: &mut DeliveryReport,
) -> Result<(), StoreError> {
    let mut budget = sink.config.max_messages_per_run.max(1);
    while let Some(item) = work.pop_front() {
        // A sink that tracks findings gets singles only; one whose finding's earlier event is
        // not sent yet (failed, or waiting for its retry) follows it at a later run, before
        // anything is loaded or rendered for it.
        if let Work::Single(key) = &item
            && sink.tracks_findings()
            && store.waits_on_earlier_delivery(key.id)?
        {
            tracing::debug!(sink = %sink.name(), delivery = key.id, "waiting for the finding's earlier event");
            continue;
        }
        let batch = match next_batch(store, sink, item, &mut work)? {
            Ok(batch) if batch.deliveries.is_empty() => continue,
            Ok(batch) => batch,
            Err((delivery, reason)) => {
                // One alert whose message alone is over the limit: it can never be sent.
                let error = format!(
                    "the message for alert {} is too large: {reason}",
                    delivery.alert.id
                );
                let result = Err(SendError::Permanent { message: error });
                record(
                    store,
                    sink,
                    &[delivery.id],
                    delivery.attempts,
                    result,
                    now,
                    report,
                )?;
                continue;
            }
        };
        // The last message the run may send, and alerts would be left after it: a summary of
        // all of them instead. (Budget 0 with alerts left happens only when the last message was
        // refused as too large and split: the summary is then one message over the cap.)
        if budget <= 1 && !work.is_empty() && sink.summarises() {
            let keys: Vec<Key> = batch
                .deliveries
                .iter()
                .map(Key::of_delivery)
                .chain(work.iter().flat_map(Work::keys))
                .collect();
            drop(batch);
            return summarise(store, sink, &keys, now, report).await;
        }
        let result = sink.send(&batch.message()).await;
        budget = budget.saturating_sub(1);
        match result {
            Err(SendError::TooLarge { message }) if batch.deliveries.len() > 1 => {
                // Not the alerts' fault: send each half on its own (two messages more).
                tracing::info!(sink = %sink.name(), alerts = batch.deliveries.len(), error = %message, "message refused as too large; splitting it");
                let snapshot_id = batch.snapshot_id.unwrap_or_default();
                let mut first = batch.deliveries;
                let second = first.split_off(first.len() / 2);
                work.push_front(Work::Part {
                    snapshot_id,
                    deliveries: second,
                });
                work.push_front(Work::Part {
                    snapshot_id,
                    deliveries: first,
                });
            }
            Err(SendError::TooLarge { message }) => {
                let error = format!(
                    "{message}; the receiver refuses even this one alert's message as too large"
                );
                let result = Err(SendError::Permanent { message: error });
                record(
                    store,
                    sink,
                    &batch.ids(),
                    batch.attempts(),
                    result,
                    now,
                    report,
                )?;
            }
            result => {
                let ok = result.is_ok();
                record(
                    store,
                    sink,
                    &batch.ids(),
                    batch.attempts(),
                    result,
                    now,
                    report,
                )?;
                if ok {
                    report.messages += 1;
                    if batch.snapshot_id.is_some() {
                        report.digests += 1;
                    }
                }
            }
        }
        if budget == 0 && !sink.summarises() && !work.is_empty() {
            // A summary cannot stand for a ticket, an incident or a SIEM's event: the rest stays
            // due and the next run sends it.
            tracing::info!(sink = %sink.name(), waiting = work.len(), "message limit of the run reached; the rest is sent in the next runs");
            break;
        }
    }
    Ok(())
}

/// Loads the next message of `item`, putting back what it does not take; `Err` with the
/// delivery and the reason when a single alert's message is over the sink's limit.
#[allow(clippy::type_complexity)]
fn next_batch(
    store: &Store,
    sink: &Sink,
    item: Work,
    work: &mut VecDeque<Work>,
) -> Result<Result<Batch, (DueDelivery, String)>, StoreError> {
    let (snapshot_id, deliveries) = match item {
        Work::Single(key) => (None, store.due_deliveries_by_id(&[key.id])?),
        Work::Part {
            snapshot_id,
            deliveries,
        } => (Some(snapshot_id), deliveries),
        Work::Digest {
            snapshot_id,
            mut keys,
        } => {
            let take = keys.len().min(sink.max_alerts_per_digest());
            let ids: Vec<i64> = keys.drain(..take).map(|k| k.id).collect();
            if !keys.is_empty() {
                work.push_front(Work::Digest { snapshot_id, keys });
            }
            (Some(snapshot_id), store.due_deliveries_by_id(&ids)?)
        }
    };
    if deliveries.is_empty() {
        // No longer due (sent or changed elsewhere since the keys were read).
        return Ok(Ok(Batch {
            snapshot_id,
            deliveries: Vec::new(),
            alerts: Vec::new(),
        }));
    }
    let mut alerts: Vec<AlertRecord> = deliveries.iter().map(as_of_event).collect();
    // A delivery sent on its own is measured as the message it is (an update is not an alert).
    let fit = match snapshot_id {
        None => largest_fit(1, |_| sink.measure(&single(&deliveries[0], &alerts[0]))),
        Some(snapshot_id) => first_fit(sink, snapshot_id, &alerts),
    };
    let (n, measure) = match fit {
        Ok(fit) => fit,
        // Cannot even be rendered: sending fails the same way and records why.
        Err(_) => (alerts.len(), None),
    };
    let mut deliveries = deliveries;
    if n == 0 {
        let measure = measure.expect("a measure when nothing fits");
        let rest = deliveries.split_off(1);
        if !rest.is_empty() {
            work.push_front(Work::Part {
                snapshot_id: snapshot_id.unwrap_or_default(),
                deliveries: rest,
            });
        }
        let delivery = deliveries.pop().expect("one delivery");
        return Ok(Err((delivery, describe(&measure))));
    }
    if n < deliveries.len() {
        let rest = deliveries.split_off(n);
        alerts.truncate(n);
        work.push_front(Work::Part {
            snapshot_id: snapshot_id.unwrap_or_default(),
            deliveries: rest,
        });
    }
    Ok(Ok(Batch {
        snapshot_id,
        deliveries,
        alerts,
    }))
}

/// How many of `alerts` (from the first) the next digest of `snapshot_id` takes; `(0,
/// measure)` when even one is over the limit.
fn first_fit(
    sink: &Sink,
    snapshot_id: SnapshotId,
    alerts: &[AlertRecord],
) -> Result<(usize, Option<Measure>), SendError> {
    largest_fit(alerts.len().min(sink.max_alerts_per_digest()), |n| {
        sink.measure(&Message::Digest {
            alerts: &alerts[..n],
            snapshot_id,
        })
    })
}

/// The message of one delivery sent on its own; `alert` is its alert as of the event.
fn single<'a>(delivery: &DueDelivery, alert: &'a AlertRecord) -> Message<'a> {
    match &delivery.update {
        Some(update) if delivery.event == DeliveryEvent::Updated => Message::Update {
            alert,
            update: crate::Update {
                id: update.id,
                at: update.created_at,
            },
        },
        _ => Message::Alert(alert),
    }
}

fn describe(m: &Measure) -> String {
    format!("{} {} over the limit of {}", m.size, m.what, m.limit)
}

/// The largest `n` in `1..=max` whose message fits (`measure(n)`), and that measure; `(0, the
/// measure of one)` when even one alert does not fit. Sizes grow about linearly with the
/// number of alerts, so each miss shrinks `n` in proportion to the excess (with 5% to spare)
/// rather than by halves: a few renders per message even for a thousand alerts.
pub(crate) fn largest_fit(
    max: usize,
    mut measure: impl FnMut(usize) -> Result<Measure, SendError>,
) -> Result<(usize, Option<Measure>), SendError> {
    let mut n = max.max(1);
    loop {
        let m = measure(n)?;
        if m.fits() {
            return Ok((n, Some(m)));
        }
        if n == 1 {
            return Ok((0, Some(m)));
        }
        let scaled = (n as u128 * m.limit as u128 * 95 / (m.size as u128 * 100)) as usize;
        n = scaled.clamp(1, n - 1);
    }
}

/// Sends one summary of `keys` and records its outcome for all of them.
async fn summarise(
    store: &mut Store,
    sink: &Sink,
    keys: &[Key],
    now: DateTime<Utc>,
    report: &mut DeliveryReport,
) -> Result<(), StoreError> {
    let summary = summary_of(keys);
    tracing::info!(sink = %sink.name(), alerts = keys.len(), "message limit of the run reached; sending a summary");
    let ids: Vec<i64> = keys.iter().map(|k| k.id).collect();
    match sink.send(&Message::Summary(&summary)).await {
        Ok(()) => {
            store.record_summarised(&ids)?;
            report.summarised += ids.len();
            report.messages += 1;
            Ok(())
        }
        Err(error) => {
            let attempts = keys.iter().map(|k| k.attempts).max().unwrap_or(0);
            let error = match error {
                SendError::TooLarge { message } => SendError::Permanent { message },
                other => other,
            };
            record(store, sink, &ids, attempts, Err(error), now, report)
        }
    }
}

/// Counts per severity and rule, and the `segwatch alerts` command listing them.
fn summary_of(keys: &[Key]) -> Summary {
    let mut severities: BTreeMap<Severity, usize> = BTreeMap::new();
    let mut rules: BTreeMap<&str, usize> = BTreeMap::new();
    for k in keys {
        *severities.entry(k.severity).or_default() += 1;
        *rules.entry(&k.rule_id).or_default() += 1;
    }
    let mut rules: Vec<(String, usize)> =
        rules.into_iter().map(|(r, n)| (r.to_owned(), n)).collect();
    rules.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    let more_rules = rules.len().saturating_sub(SUMMARY_RULES);
    let mut command = "segwatch alerts".to_owned();
    if let Some(first) = keys.first()
        && keys.iter().all(|k| k.status == first.status)
    {
        command.push_str(&format!(" --status {}", first.status.as_str()));
    }
    if rules.len() == 1 {
        command.push_str(&format!(" --rule {}", rules[0].0));
    }
    // `segwatch alerts` lists 100 by default, newest first.
    if keys.len() > 100 {
        command.push_str(&format!(" --limit {}", keys.len()));
    }
    rules.truncate(SUMMARY_RULES);
    Summary {
        count: keys.len(),
        severities: severities.into_iter().rev().collect(),
        rules,
        more_rules,
        command,
    }
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
                SendError::Permanent { .. } | SendError::TooLarge { .. } => (true, Duration::ZERO),
                SendError::Retryable { retry_after, .. } => (
                    attempt >= sink.config.max_attempts,
                    sink.config
                        .retry_backoff
                        .after(attempt)
                        .max(retry_after.unwrap_or_default()),
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

/// The alert as it was at the event being delivered: a finding raised then already resolved
/// is still announced as raised; an update is the open finding with the update's summary,
/// explanation and who made the change.
fn as_of_event(d: &DueDelivery) -> AlertRecord {
    let mut alert = d.alert.clone();
    if d.event != DeliveryEvent::Resolved && alert.status == AlertStatus::Resolved {
        alert.status = AlertStatus::Open;
        alert.resolved_at = None;
        alert.resolved_snapshot_id = None;
        alert.resolution = None;
    }
    if let (DeliveryEvent::Updated, Some(update)) = (d.event, &d.update) {
        alert = as_of_update(&alert, update);
    }
    alert
}

/// An open finding as of one of its updates: the update's summary, explanation and who made
/// the change (what [`Message::Update`] carries).
pub fn as_of_update(finding: &AlertRecord, update: &segwatch_store::FindingUpdate) -> AlertRecord {
    AlertRecord {
        summary: update.summary.clone(),
        explanation: update.explanation.clone(),
        attribution: update.attribution.clone(),
        ..finding.clone()
    }
}

fn stamp(t: DateTime<Utc>) -> String {
    Timestamp::from(t).to_string()
}

#[cfg(test)]
mod tests;
