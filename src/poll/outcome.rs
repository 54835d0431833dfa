//! What a poll hands back: the outcome of a complete snapshot, or why it failed.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Serialize;

use segwatch_api::collect::{CollectError, Confirmation};
use segwatch_api::trail::TrailError;
use segwatch_core::alerts::{AlertPlan, AlertRecord, AlertStatus, EvalProblem};
use segwatch_core::diff::ResourceChange;
use segwatch_core::ids::{AlertId, SnapshotId};
use segwatch_core::model::{KindStatuses, Quarantined, ResourceKind};
use segwatch_sinks::outbox::DeliveryReport;
use segwatch_store::StoreError;

/// Why a poll failed. The snapshot is recorded as failed in every case the database allows.
#[derive(Debug, thiserror::Error)]
pub enum PollError {
    /// The workspace could not be read in full.
    #[error("poll (snapshot {snapshot_id}) failed: {cause}")]
    Collect {
        /// The failed snapshot's id.
        snapshot_id: SnapshotId,
        /// What went wrong (part of the message, so not chained again).
        cause: CollectError,
    },
    /// The audit trail could not be read in full.
    #[error("poll (snapshot {snapshot_id}) failed: {cause}")]
    Trail {
        /// The failed snapshot's id.
        snapshot_id: SnapshotId,
        /// What went wrong (part of the message, so not chained again).
        cause: TrailError,
    },
    /// Another configured workspace of the same database already watches this Segment
    /// workspace: two labels would record every change, and alert, twice.
    #[error(
        "poll (snapshot {snapshot_id}) failed: workspaces `{workspace}` and `{other}` both \
         reach Segment workspace `{segment_id}`; remove one of the two `[[workspaces]]` \
         entries (or give it the token of another workspace)"
    )]
    SameSegmentWorkspace {
        /// The failed snapshot's id.
        snapshot_id: SnapshotId,
        /// The label being polled.
        workspace: String,
        /// The configured label that already recorded the Segment workspace.
        other: String,
        /// Segment's workspace id, as `GET /` returned it.
        segment_id: String,
    },
    /// The database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What a successful poll found.
#[derive(Debug, Clone, Serialize)]
pub struct PollOutcome {
    /// The new complete snapshot.
    pub snapshot_id: SnapshotId,
    /// The snapshot it was diffed against; `None` for a baseline.
    pub base_snapshot_id: Option<SnapshotId>,
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
    /// Of which: diffing and writing the snapshot (rule evaluation included).
    pub store_ms: u64,
    /// Of which: evaluating rules.
    pub rules_ms: u64,
    /// Rule evaluations performed (one rule on one resource or change).
    pub rule_evaluations: usize,
    /// Alerts this poll raised (`fired`, `open`) and findings it resolved (`resolved`).
    pub alerts: Vec<AlertRecord>,
    /// Rules that failed to evaluate on some resource (they did not fire there).
    pub rule_problems: Vec<EvalProblem>,
    /// Audit trail events this poll stored for the first time (`None` when it does not read
    /// the trail).
    pub audit_events: Option<usize>,
    /// Of the wall time: reading the audit trail and attributing the changes.
    pub audit_ms: u64,
    /// What the outbox worker did after the poll, when the caller delivered
    /// ([`super::Poller::deliver_queued`]; none without sinks).
    pub deliveries: Option<DeliveryReport>,
    /// Kinds this poll could not read in full (unavailable or incomplete), with why; the audit
    /// trail is `audit_event`.
    pub kind_status: KindStatuses,
    /// Items it could not understand, kept in the `quarantine` table (an item already
    /// quarantined by an earlier poll is counted again but stored once).
    pub quarantined: Vec<Quarantined>,
    /// How resources missing from their lists were confirmed gone (or found).
    pub confirmation: Confirmation,
    /// Fields Segment's API started or stopped returning, one per kind and path: recorded in
    /// the changes but raising no alert (see [`segwatch_core::drift`]).
    pub api_drift: Vec<segwatch_core::drift::DriftSummary>,
    /// Effective access gained and lost with this snapshot, with causes (docs/ACCESS.md): the
    /// first [`ACCESS_CHANGES_KEPT`]; every one is stored (`audit_access_changes`).
    pub access_changes: Vec<segwatch_core::access::AttributedAccessChange>,
    /// How many there are in all.
    pub access_changes_total: usize,
    /// Of the wall time: computing the access changes.
    pub access_ms: u64,
    /// Of the wall time: matching the flows' personal fields (`flow_personal_fields`).
    pub flows_ms: u64,
}

/// Access changes a poll's outcome carries (its output lists them); one change can move many
/// more grants, which the store keeps without holding them all in memory.
pub const ACCESS_CHANGES_KEPT: usize = 1000;

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

/// The stored form of what a plan opened and resolved, for output.
pub(super) fn alert_records(
    workspace: &str,
    snapshot_id: SnapshotId,
    plan: AlertPlan,
    ids: &[AlertId],
) -> (Vec<AlertRecord>, Vec<EvalProblem>, usize) {
    let now = segwatch_core::time::Timestamp::now();
    let mut out = Vec::with_capacity(plan.opened.len() + plan.resolved.len());
    for (a, id) in plan.opened.into_iter().zip(ids) {
        out.push(AlertRecord {
            id: *id,
            status: if a.rule_kind == "change" {
                AlertStatus::Fired
            } else {
                AlertStatus::Open
            },
            rule_id: a.rule_id,
            rule_kind: a.rule_kind.to_string(),
            severity: a.severity,
            title: a.title,
            resource_kind: a.resource_kind,
            resource_id: a.resource_id,
            resource_name: a.resource_name,
            snapshot_id,
            change_id: None,
            opened_at: now,
            resolved_at: None,
            resolved_snapshot_id: None,
            resolution: None,
            summary: a.summary,
            explanation: a.explanation,
            remediation: a.remediation,
            tags: a.tags,
            attribution: a.attribution,
            workspace: workspace.to_owned(),
        });
    }
    for r in plan.resolved {
        out.push(AlertRecord {
            status: AlertStatus::Resolved,
            resolved_at: Some(now),
            resolved_snapshot_id: Some(snapshot_id),
            resolution: Some(r.resolution.as_str().to_string()),
            ..r.alert
        });
    }
    (out, plan.problems, plan.evaluations)
}

pub(super) fn duration_ms(d: Duration) -> u64 {
    d.as_millis().try_into().unwrap_or(u64::MAX)
}
