//! One poll cycle: collect the workspace, diff it against the last complete snapshot, store both.
//!
//! This module only wires stages together; it owns no logic of its own beyond the order of
//! operations that makes a poll all-or-nothing: the snapshot row is created `running` first (so a
//! failed or killed poll leaves a trace), and everything else lands in one transaction at the end.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::collect::{CollectError, collect};
use crate::diff::{self, ResourceChange};
use crate::model::ResourceKind;
use crate::redact::SecretPolicy;
use crate::segment::SegmentClient;
use crate::store::{PollStats, Store, StoreError};

/// Why a poll failed. The snapshot is recorded as failed in every case the database allows.
#[derive(Debug, thiserror::Error)]
pub enum PollError {
    /// The workspace could not be read in full.
    #[error("poll (snapshot {snapshot_id}) failed: {cause}")]
    Collect {
        /// The failed snapshot's id.
        snapshot_id: i64,
        /// What went wrong (part of the message, so not chained again).
        cause: CollectError,
    },
    /// The database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What a successful poll found.
#[derive(Debug, Clone, Serialize)]
pub struct PollOutcome {
    /// The new complete snapshot.
    pub snapshot_id: i64,
    /// The snapshot it was diffed against; `None` for a baseline.
    pub base_snapshot_id: Option<i64>,
    /// Resources per kind.
    pub resource_counts: BTreeMap<ResourceKind, usize>,
    /// Changes since the base, sorted by kind and id.
    pub changes: Vec<ResourceChange>,
    /// HTTP requests made.
    pub api_requests: u64,
    /// Wall time in milliseconds.
    pub duration_ms: u64,
    /// Of which: reading the API (collect).
    pub fetch_ms: u64,
    /// Of which: diffing and writing the snapshot.
    pub store_ms: u64,
}

impl PollOutcome {
    /// Whether this was the workspace's first complete snapshot.
    pub fn is_baseline(&self) -> bool {
        self.base_snapshot_id.is_none()
    }

    /// Total resources.
    pub fn resource_count(&self) -> usize {
        self.resource_counts.values().sum()
    }
}

/// Polls one workspace into a store.
#[derive(Debug, Clone)]
pub struct Poller {
    client: SegmentClient,
    policy: SecretPolicy,
    workspace: String,
}

impl Poller {
    /// A poller for the workspace labelled `workspace` in the database.
    pub fn new(client: SegmentClient, policy: SecretPolicy, workspace: impl Into<String>) -> Self {
        Poller {
            client,
            policy,
            workspace: workspace.into(),
        }
    }

    /// Runs one cycle. On error the snapshot is marked failed and nothing else is written.
    pub async fn poll(&self, store: &mut Store) -> Result<PollOutcome, PollError> {
        let started = Instant::now();
        let requests_before = self.client.stats().requests;
        let workspace_id = store.workspace_id(&self.workspace)?;
        let interrupted = store.mark_interrupted(workspace_id)?;
        if interrupted > 0 {
            tracing::warn!(
                interrupted,
                "found polls left running by a stopped process; marked them failed"
            );
        }
        let snapshot_id = store.begin_snapshot(workspace_id)?;
        let span = tracing::info_span!("poll", workspace = %self.workspace, snapshot = snapshot_id);
        let _enter = span.enter();
        tracing::info!("poll started");

        let requests = || self.client.stats().requests - requests_before;
        let collection = match collect(&self.client, &self.policy).await {
            Ok(c) => c,
            Err(cause) => {
                let message = cause.to_string();
                tracing::error!(error = %message, "poll failed; snapshot recorded as failed");
                store.fail_snapshot(snapshot_id, &message, requests(), started.elapsed())?;
                return Err(PollError::Collect { snapshot_id, cause });
            }
        };

        let fetched = started.elapsed();
        let result = (|| {
            let base = store.latest_complete(workspace_id)?;
            let current = store.current_versions(workspace_id)?;
            let delta = diff::plan(&collection.resources, &current, base.is_none(), |id| {
                store.version_value(id)
            })?;
            let stats = PollStats {
                resource_count: collection.resources.len(),
                api_requests: requests(),
                duration: started.elapsed(),
            };
            store.commit_snapshot(
                workspace_id,
                snapshot_id,
                base,
                &collection.workspace_id,
                &delta,
                stats,
            )?;
            Ok::<_, StoreError>((base, delta.changes, stats))
        })();
        let (base, changes, stats) = match result {
            Ok(r) => r,
            Err(e) => {
                let _ =
                    store.fail_snapshot(snapshot_id, &e.to_string(), requests(), started.elapsed());
                return Err(e.into());
            }
        };

        let mut resource_counts = BTreeMap::new();
        for r in &collection.resources {
            *resource_counts.entry(r.kind).or_default() += 1;
        }
        tracing::info!(
            resources = stats.resource_count,
            changes = changes.len(),
            requests = stats.api_requests,
            ms = started.elapsed().as_millis() as u64,
            "poll complete"
        );
        Ok(PollOutcome {
            snapshot_id,
            base_snapshot_id: base,
            resource_counts,
            changes,
            api_requests: stats.api_requests,
            duration_ms: duration_ms(started.elapsed()),
            fetch_ms: duration_ms(fetched),
            store_ms: duration_ms(started.elapsed() - fetched),
        })
    }
}

fn duration_ms(d: Duration) -> u64 {
    d.as_millis().try_into().unwrap_or(u64::MAX)
}
