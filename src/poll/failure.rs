//! What a failed poll leaves: its `running` snapshot marked failed with the error, and, after
//! enough failures, segwatch's own failing-polls alert.

use std::time::{Duration, Instant};

use segwatch_api::segment::SegmentClient;
use segwatch_core::alerts::{self, AlertPlan, AlertRecord};
use segwatch_core::ids::SnapshotId;
use segwatch_sinks::outbox::DeliveryReport;
use segwatch_store::{Store, StoreError};

use super::outcome::alert_records;
use super::{PollError, Poller};

/// A poll whose `running` snapshot row exists: from then on every error must leave that row
/// failed, not running (a running row would only be marked "interrupted" by the next poll).
pub(super) struct Running<'p> {
    /// The snapshot's id.
    pub(super) snapshot_id: SnapshotId,
    /// When the poll started.
    pub(super) started: Instant,
    client: &'p SegmentClient,
    requests_before: u64,
}

impl<'p> Running<'p> {
    /// A poll started at `started`, counting `client`'s requests from `requests_before`.
    pub(super) fn new(
        snapshot_id: SnapshotId,
        started: Instant,
        client: &'p SegmentClient,
        requests_before: u64,
    ) -> Self {
        Running {
            snapshot_id,
            started,
            client,
            requests_before,
        }
    }

    /// HTTP requests the poll made so far.
    pub(super) fn requests(&self) -> u64 {
        self.client.stats().requests - self.requests_before
    }

    /// Records the snapshot failed with `message`.
    pub(super) fn fail(&self, store: &mut Store, message: &str) -> Result<(), StoreError> {
        tracing::error!(error = %message, "poll failed; snapshot recorded as failed");
        store.fail_snapshot(
            self.snapshot_id,
            message,
            self.requests(),
            self.started.elapsed(),
        )
    }

    /// A database error: recorded on the snapshot if the database still allows it, and
    /// handed back as the poll's error.
    pub(super) fn failed_store(&self, store: &mut Store, error: StoreError) -> PollError {
        if let Err(f) = self.fail(store, &error.to_string()) {
            tracing::error!(error = %f, "cannot record the poll as failed");
        }
        error.into()
    }
}

impl Poller {
    /// After a failed poll: raises segwatch's own alert when the workspace's polls have failed
    /// for at least `threshold`, if set (once per run of failures; the next complete poll
    /// resolves it),
    /// then sends what the outbox has due (within the delivery deadline), so
    /// deliveries and their retries go on while the API is unreachable.
    pub async fn after_failure(
        &self,
        store: &mut Store,
        threshold: Option<Duration>,
    ) -> Result<(Option<AlertRecord>, Option<DeliveryReport>), StoreError> {
        let raised = self.raise_failing_alert(store, threshold)?;
        Ok((raised, self.deliver_queued(store).await?))
    }

    /// The first half of [`Poller::after_failure`]: raises (queues) segwatch's own alert when
    /// due, without delivering (the daemon's delivery task does).
    pub fn raise_failing_alert(
        &self,
        store: &mut Store,
        threshold: Option<Duration>,
    ) -> Result<Option<AlertRecord>, StoreError> {
        let workspace_id = store.workspace_id(&self.workspace)?;
        let mut raised = None;
        let failing = match threshold {
            Some(_) => store.failing_since(workspace_id)?,
            None => None,
        };
        if let (Some(failing), Some(threshold)) = (failing, threshold) {
            let since = chrono::DateTime::parse_from_rfc3339(&failing.since)
                .map(|t| t.with_timezone(&chrono::Utc))
                .unwrap_or_else(|_| chrono::Utc::now());
            let failing_for = (chrono::Utc::now() - since).to_std().unwrap_or_default();
            if failing_for >= threshold
                && store
                    .open_alert_of_rule(workspace_id, alerts::POLLS_FAILING_RULE)?
                    .is_none()
            {
                let alert = alerts::polls_failing_alert(
                    &self.workspace,
                    store.workspace_segment_id(workspace_id)?.as_deref(),
                    &failing.since,
                    failing_for,
                    &failing.error,
                );
                let mut plan = AlertPlan {
                    opened: vec![alert],
                    ..AlertPlan::default()
                };
                self.route(&mut plan);
                let ids = store.record_alerts(workspace_id, failing.snapshot_id, &plan)?;
                tracing::error!(
                    workspace = %self.workspace,
                    since = %failing.since,
                    "polls have failed for longer than the alert threshold; alert raised"
                );
                let (mut records, _, _) =
                    alert_records(&self.workspace, failing.snapshot_id, plan, &ids);
                raised = records.pop();
            }
        }
        Ok(raised)
    }
}
