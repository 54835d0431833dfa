//! The API half of a poll after `collect`: confirming what vanished from a list against the
//! stored base, and reading the audit trail from where the last complete poll stopped.

use std::collections::HashMap;

use segwatch_api::collect::{self, CollectError, Collection, Confirmation};
use segwatch_api::trail::TrailError;
use segwatch_core::diff;
use segwatch_core::model::{KindStatus, ResourceKind};
use segwatch_core::trail::Mark;

use super::Poller;
use super::stages::{TrailWindow, contains};

impl Poller {
    /// Settles this poll's view of each kind against the base: an unavailable kind is
    /// `carried` when the base vouched for it, and resources the base holds that a complete
    /// kind's list did not return are confirmed gone or put back ([`collect::confirm_missing`]).
    pub(super) async fn confirm(
        &self,
        known: &[ResourceKind],
        current: &HashMap<(ResourceKind, String), diff::CurrentVersion>,
        collection: &mut Collection,
    ) -> Result<Confirmation, CollectError> {
        for (kind, status) in collection.kind_status.iter_mut() {
            if let KindStatus::Unavailable { carried, .. } = status {
                *carried = known.contains(kind);
            }
        }
        let mut missing: Vec<(ResourceKind, String)> = current
            .keys()
            .filter(|(kind, id)| {
                self.options.collects(*kind)
                    && collection.is_complete(*kind)
                    && known.contains(kind)
                    && !contains(&collection.resources, *kind, id)
            })
            .cloned()
            .collect();
        if missing.is_empty() {
            return Ok(Confirmation::default());
        }
        missing.sort();
        let confirmation =
            collect::confirm_missing(&self.client, &self.policy, collection, &missing).await?;
        tracing::info!(
            missing = confirmation.checked,
            still_there = confirmation.found,
            requests = confirmation.requests,
            "confirmed resources missing from their lists"
        );
        Ok(confirmation)
    }

    /// Reads the audit trail from `mark` (the first time, from the lookback) until now; `None`
    /// when this poller does not read it, or when the workspace's plan does not include it
    /// (then the trail is recorded unavailable in `collection`).
    pub(super) async fn read_trail(
        &self,
        mark: Option<&Mark>,
        collection: &mut Collection,
    ) -> Result<Option<TrailWindow>, TrailError> {
        let Some(lookback) = self.audit_lookback else {
            return Ok(None);
        };
        let end = chrono::Utc::now();
        let start = mark.map_or(end - lookback, |m| m.at);
        match segwatch_api::trail::read(&self.client, &self.policy, start, end).await {
            Ok((events, mut bad)) => {
                collection.quarantine.append(&mut bad);
                Ok(Some(TrailWindow { start, end, events }))
            }
            // Not on this workspace's plan: failing every poll would stop the watch over
            // everything else, so the poll goes on with "actor unknown".
            Err(TrailError::Api(e)) if e.refusal().is_some() => {
                let (http_status, reason) = e.refusal().expect("checked just above");
                tracing::warn!(
                    reason = %reason,
                    "the audit trail is not available to this workspace; changes are \
                     recorded with actor unknown (set [collect] audit_events = false to \
                     stop reading it)"
                );
                collection.kind_status.insert(
                    ResourceKind::AuditEvent,
                    KindStatus::Unavailable {
                        http_status,
                        reason,
                        carried: false,
                    },
                );
                Ok(None)
            }
            Err(cause) => Err(cause),
        }
    }
}
