//! Where a poll's alerts go: which sinks each alert event is queued for (in the snapshot's
//! transaction), and sending what the outbox has due afterwards: a step of its own after the
//! poll's commit (a one-shot poll's next call; the daemon's delivery task).

use std::time::Duration;

use segwatch_core::alerts::{AlertEvent, AlertPlan, AlertStatus};
use segwatch_sinks::outbox::{DeliveryReport, deliver_due};
use segwatch_sinks::route;
use segwatch_store::{Store, StoreError};

use super::Poller;

impl Poller {
    /// Sends what the outbox has due for this workspace (what the last poll queued, and earlier
    /// retries) within the delivery deadline: a one-shot `segwatch poll`'s step after the poll.
    pub async fn deliver_queued(
        &self,
        store: &mut Store,
    ) -> Result<Option<DeliveryReport>, StoreError> {
        self.deliver_within(store, self.delivery_deadline).await
    }

    /// [`Poller::deliver`], given at most `limit`: what is not sent by then stays queued (a
    /// send cut short is not recorded, so it is sent again: at least once) and a warning says
    /// so. A one-shot `segwatch poll` must end even when a sink never answers.
    pub async fn deliver_within(
        &self,
        store: &mut Store,
        limit: Duration,
    ) -> Result<Option<DeliveryReport>, StoreError> {
        match tokio::time::timeout(limit, self.deliver(store)).await {
            Ok(report) => report,
            Err(_) => {
                tracing::warn!(
                    workspace = %self.workspace,
                    limit_secs = limit.as_secs(),
                    "delivery deadline reached; what was not sent stays queued for the next run"
                );
                Ok(None)
            }
        }
    }

    /// The names of the sinks this poller queues deliveries for.
    pub fn sink_names(&self) -> Vec<String> {
        self.sinks.iter().map(|s| s.name().to_string()).collect()
    }

    /// Sends what the outbox has due for this workspace to the sinks in `scope` (see
    /// [`segwatch_sinks::outbox::deliver_due_to`]).
    pub async fn deliver_to(
        &self,
        store: &mut Store,
        scope: segwatch_sinks::outbox::SinkScope<'_>,
    ) -> Result<DeliveryReport, StoreError> {
        let workspace_id = store.workspace_id(&self.workspace)?;
        segwatch_sinks::outbox::deliver_due_to(
            store,
            &self.sinks,
            workspace_id,
            chrono::Utc::now(),
            scope,
        )
        .await
    }

    /// Sends what the outbox has due for this workspace (this poll's alerts and earlier
    /// failures). A sink that fails does not fail the poll: its deliveries wait for a retry.
    pub async fn deliver(&self, store: &mut Store) -> Result<Option<DeliveryReport>, StoreError> {
        if self.sinks.is_empty() {
            return Ok(None);
        }
        let workspace_id = store.workspace_id(&self.workspace)?;
        let report = deliver_due(store, &self.sinks, workspace_id, chrono::Utc::now()).await?;
        Ok(Some(report))
    }

    /// Queues each alert event for the sinks that want it.
    pub(super) fn route(&self, plan: &mut AlertPlan) {
        let mut deliveries = Vec::new();
        let named = |rule_id: &str| -> Vec<String> {
            self.rules
                .as_ref()
                .and_then(|r| r.get(rule_id))
                .map(|r| r.sinks.clone())
                .unwrap_or_default()
        };
        for (i, a) in plan.opened.iter().enumerate() {
            let status = if a.rule_kind == "change" {
                AlertStatus::Fired
            } else {
                AlertStatus::Open
            };
            for sink in route(
                &self.sinks,
                &self.workspace,
                &named(&a.rule_id),
                &a.rule_id,
                a.severity,
                &a.tags,
                status,
            ) {
                deliveries.push((AlertEvent::Opened(i), sink));
            }
        }
        for (i, r) in plan.resolved.iter().enumerate() {
            for sink in route(
                &self.sinks,
                &self.workspace,
                &named(&r.alert.rule_id),
                &r.alert.rule_id,
                r.alert.severity,
                &r.alert.tags,
                AlertStatus::Resolved,
            ) {
                deliveries.push((AlertEvent::Resolved(i), sink));
            }
        }
        // An update goes where its finding's raising would, to the sinks that want updates.
        for (i, u) in plan.updated.iter().enumerate() {
            for sink in route(
                &self.sinks,
                &self.workspace,
                &named(&u.alert.rule_id),
                &u.alert.rule_id,
                u.alert.severity,
                &u.alert.tags,
                AlertStatus::Open,
            ) {
                if self
                    .sinks
                    .iter()
                    .any(|s| s.name() == sink && s.wants_updates())
                {
                    deliveries.push((AlertEvent::Updated(i), sink));
                }
            }
        }
        plan.deliveries = deliveries;
    }
}
