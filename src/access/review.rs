//! Access reviews (`segwatch access review`): every grant of the snapshot at an instant, one row
//! each, for a reviewer to approve or revoke; the import of the filled-in file as sealed
//! evidence ([`import`]); and the follow-up of earlier revocations ([`follow_up`]).
//!
//! One row per grant of [`EffectiveAccess::grants`]: a user holding one role on one resource
//! through two routes (directly and through a group, or through two groups) gets two rows, one
//! per route, because revoking one route leaves the other. The columns are [`COLUMNS`], in that
//! order: the four of Vanta's access file first, then segwatch's own (docs/ACCESS.md, *Access
//! reviews*). History comes from the store: `granted_since` from `access_changes`, `last seen
//! acting` from the audit trail ([`segwatch_store::ReviewFacts`]).

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;

use segwatch_core::access::domains::{AccountType, account_type};
use segwatch_core::access::{EffectiveAccess, Grant, Via};
use segwatch_core::ids::SnapshotId;
use segwatch_core::model::{Resource, ResourceKind};
use segwatch_core::time::Timestamp;
use segwatch_store::audit::{self, AuditError};
use segwatch_store::{GrantIdentity, ReviewFacts, Store, StoreError};

mod html;
mod import;

pub use html::{render_follow_up_html, render_html};
pub use import::{ImportError, import};

/// The review file's columns, in order. The first four are Vanta's access file's (*Account
/// name*, *Account owner*, *Role*, *Status*); the last four are for the reviewer to fill in.
pub const COLUMNS: [&str; 24] = [
    "Account name",
    "Account owner",
    "Role",
    "Status",
    "workspace",
    "snapshot_id",
    "user_email",
    "user_name",
    "user_id",
    "user_type",
    "role_id",
    "resource_type",
    "resource_id",
    "resource_name",
    "resource_labels",
    "via",
    "via_group_id",
    "label_filter",
    "granted_since",
    "last_seen_acting",
    "decision",
    "reviewer",
    "reviewed_at",
    "comment",
];

/// Why an export or a follow-up has no answer.
#[derive(Debug, thiserror::Error)]
pub enum ReviewError {
    /// No snapshot at that instant, or the database failed.
    #[error(transparent)]
    Audit(#[from] AuditError),
    /// Reading the snapshot's resources failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// One grant to review, as a row of [`COLUMNS`] (JSON: the same in snake case).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReviewRow {
    /// Vanta's *Account name*: the user's email.
    pub account_name: String,
    /// Vanta's *Account owner*: the email of an internal (or unclassified) account, `External
    /// user` for an external one.
    pub account_owner: String,
    /// Vanta's *Role*: the role's name.
    pub role: String,
    /// Vanta's *Status*: `Active` for a user, `Invited` for a pending group invite.
    pub status: String,
    /// The workspace's label.
    pub workspace: String,
    /// The reviewed snapshot.
    pub snapshot_id: i64,
    /// The user's (or invitee's) email.
    pub user_email: String,
    /// The user's name (the user resource's `name`); empty for an invite.
    pub user_name: String,
    /// The user's id; empty for an invite.
    pub user_id: String,
    /// `internal`, `external` or `unknown` (`[access] internal_domains`).
    pub user_type: String,
    /// The role's id.
    pub role_id: String,
    /// `WORKSPACE`, `SOURCE`, `WAREHOUSE`, `FUNCTION` or `SPACE`.
    pub resource_type: String,
    /// The resource's id.
    pub resource_id: String,
    /// The resource's name.
    pub resource_name: String,
    /// The resource's own labels, `key:value, …` (sources).
    pub resource_labels: String,
    /// `direct`, or the group's name.
    pub via: String,
    /// The group's id; empty when direct.
    pub via_group_id: String,
    /// The permission's label filter, `key:value, …`; empty if none.
    pub label_filter: String,
    /// When the grant was added (a time), or `<=` a time it was held since at least.
    pub granted_since: String,
    /// The latest audit event the user made at or before the instant; empty if none.
    pub last_seen_acting: String,
    /// For the reviewer: `approve` or `revoke`.
    pub decision: String,
    /// For the reviewer: who decided.
    pub reviewer: String,
    /// For the reviewer: when.
    pub reviewed_at: String,
    /// For the reviewer: why.
    pub comment: String,
}

impl ReviewRow {
    /// The row's values in [`COLUMNS`] order.
    pub fn fields(&self) -> [String; 24] {
        [
            self.account_name.clone(),
            self.account_owner.clone(),
            self.role.clone(),
            self.status.clone(),
            self.workspace.clone(),
            self.snapshot_id.to_string(),
            self.user_email.clone(),
            self.user_name.clone(),
            self.user_id.clone(),
            self.user_type.clone(),
            self.role_id.clone(),
            self.resource_type.clone(),
            self.resource_id.clone(),
            self.resource_name.clone(),
            self.resource_labels.clone(),
            self.via.clone(),
            self.via_group_id.clone(),
            self.label_filter.clone(),
            self.granted_since.clone(),
            self.last_seen_acting.clone(),
            self.decision.clone(),
            self.reviewer.clone(),
            self.reviewed_at.clone(),
            self.comment.clone(),
        ]
    }
}

/// An export: the snapshot reviewed and its grants.
#[derive(Debug, Clone, Serialize)]
pub struct ReviewExport {
    /// The workspace's label.
    pub workspace: String,
    /// The instant asked for.
    pub at: String,
    /// The latest complete snapshot observed at or before it.
    pub snapshot_id: i64,
    /// When it was observed.
    pub observed_at: Timestamp,
    /// One row per grant.
    pub rows: Vec<ReviewRow>,
}

/// The grants of the snapshot at `at`, one row each, with their history.
pub fn export(
    store: &Store,
    workspace_id: i64,
    workspace: &str,
    at: DateTime<Utc>,
    internal_domains: &[String],
) -> Result<ReviewExport, ReviewError> {
    let at = audit::format_instant(at);
    let (snapshot_id, observed_at) = audit::snapshot_at(store, workspace_id, &at)?;
    let resources = crate::stored::state_at(store, workspace_id, SnapshotId(snapshot_id))?;
    let facts = store.access_review_facts(workspace_id, snapshot_id, &at)?;
    let access = EffectiveAccess::compute(&resources);
    let names = user_names(&resources);
    let labels = source_labels(&resources);
    let rows = access
        .grants()
        .map(|g| {
            let identity = identity(&g);
            let kind = account_type(&g.user.email, internal_domains);
            let owner = match kind {
                AccountType::External => "External user".into(),
                _ => g.user.email.clone(),
            };
            let (via, via_group_id) = via_columns(&g.via);
            ReviewRow {
                account_name: g.user.email.clone(),
                account_owner: owner,
                role: g.role_name.clone(),
                status: if g.invite { "Invited" } else { "Active" }.into(),
                workspace: workspace.to_string(),
                snapshot_id,
                user_name: names.get(g.user.id.as_str()).cloned().unwrap_or_default(),
                user_type: kind.as_str().into(),
                role_id: g.role_id.clone(),
                resource_labels: labels
                    .get(&(g.resource.kind.as_str(), g.resource.id.as_str()))
                    .cloned()
                    .unwrap_or_default(),
                via,
                via_group_id,
                label_filter: label_text(&g),
                granted_since: granted_since(&facts, &identity),
                last_seen_acting: facts
                    .last_acting
                    .get(&g.user.email.to_ascii_lowercase())
                    .cloned()
                    .unwrap_or_default(),
                decision: String::new(),
                reviewer: String::new(),
                reviewed_at: String::new(),
                comment: String::new(),
                user_email: g.user.email,
                user_id: g.user.id,
                resource_type: g.resource.kind,
                resource_id: g.resource.id,
                resource_name: g.resource.name,
            }
        })
        .collect();
    Ok(ReviewExport {
        workspace: workspace.to_string(),
        at,
        snapshot_id,
        observed_at,
        rows,
    })
}

/// `granted_since`: the latest recorded addition, else `<=` when recording started, else `<=`
/// the first snapshot.
fn granted_since(facts: &ReviewFacts, identity: &GrantIdentity) -> String {
    if let Some(at) = facts.added_at.get(identity) {
        return at.clone();
    }
    match (&facts.tracking_since, &facts.first_snapshot_at) {
        (Some(since), _) | (None, Some(since)) => format!("<={since}"),
        (None, None) => String::new(),
    }
}

/// `(via, via_group_id)`: `direct` and empty, or the group's name and id.
fn via_columns(via: &Via) -> (String, String) {
    match via {
        Via::Direct => ("direct".into(), String::new()),
        Via::Group { id, name } => (name.clone(), id.clone()),
    }
}

/// A grant's label filter as the review shows it: `key:value, …`.
fn label_text(g: &Grant) -> String {
    g.label_filter
        .iter()
        .map(|(k, v)| format!("{k}:{v}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A grant's identity as `access_changes` and the decisions store it.
pub(crate) fn identity(g: &Grant) -> GrantIdentity {
    let filter: Vec<String> = g
        .label_filter
        .iter()
        .map(|(k, v)| format!("{k}:{v}"))
        .collect();
    GrantIdentity {
        user_id: g.user.id.clone(),
        invite_email: if g.user.id.is_empty() {
            g.user.email.clone()
        } else {
            String::new()
        },
        resource_type: g.resource.kind.clone(),
        resource_id: g.resource.id.clone(),
        role_id: g.role_id.clone(),
        via_group_id: match &g.via {
            Via::Direct => None,
            Via::Group { id, .. } => Some(id.clone()),
        },
        label_filter: (!filter.is_empty())
            .then(|| serde_json::to_string(&filter).expect("strings serialise")),
    }
}

/// User id → the user's `name`.
fn user_names(resources: &[Resource]) -> HashMap<&str, String> {
    resources
        .iter()
        .filter(|r| r.kind == ResourceKind::User)
        .filter_map(|r| {
            let body: Value = serde_json::from_str(&r.body).ok()?;
            let name = body.get("name")?.as_str()?.to_string();
            Some((r.id.as_str(), name))
        })
        .collect()
}

/// `(SOURCE, id)` → the source's labels, `key:value, …`.
fn source_labels(resources: &[Resource]) -> HashMap<(&'static str, &str), String> {
    resources
        .iter()
        .filter(|r| r.kind == ResourceKind::Source)
        .filter_map(|r| {
            let body: Value = serde_json::from_str(&r.body).ok()?;
            let mut labels: Vec<String> = body
                .get("labels")?
                .as_array()?
                .iter()
                .filter_map(|l| {
                    Some(format!(
                        "{}:{}",
                        l.get("key")?.as_str()?,
                        l.get("value")?.as_str()?
                    ))
                })
                .collect();
            labels.sort();
            labels.dedup();
            Some((("SOURCE", r.id.as_str()), labels.join(", ")))
        })
        .collect()
}

/// The follow-up's columns, in order.
pub const FOLLOW_UP_COLUMNS: [&str; 18] = [
    "workspace",
    "review_id",
    "reviewed_snapshot_id",
    "reviewer",
    "user_email",
    "user_id",
    "role",
    "role_id",
    "resource_type",
    "resource_id",
    "resource_name",
    "via",
    "via_group_id",
    "label_filter",
    "comment",
    "outcome",
    "gone_in_snapshot",
    "gone_at",
];

/// One `revoke` decision, and whether it was carried out by the follow-up's snapshot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FollowUpRow {
    /// The workspace's label.
    pub workspace: String,
    /// The review that decided it.
    pub review_id: i64,
    /// The snapshot it reviewed.
    pub reviewed_snapshot_id: i64,
    /// Who decided.
    pub reviewer: String,
    /// The user's (or invitee's) email.
    pub user_email: String,
    /// The user's id; empty for an invite.
    pub user_id: String,
    /// The role's name.
    pub role: String,
    /// The role's id.
    pub role_id: String,
    /// The resource's type.
    pub resource_type: String,
    /// Its id.
    pub resource_id: String,
    /// Its name at the reviewed snapshot.
    pub resource_name: String,
    /// `direct`, or the group's name.
    pub via: String,
    /// The group's id; empty when direct.
    pub via_group_id: String,
    /// The label filter, `key:value, …`.
    pub label_filter: String,
    /// The reviewer's comment.
    pub comment: String,
    /// `carried out` (the grant is gone) or `not carried out` (still held).
    pub outcome: String,
    /// The snapshot whose access changes recorded its removal, when recorded.
    pub gone_in_snapshot: Option<i64>,
    /// When that snapshot was observed.
    pub gone_at: Option<String>,
}

impl FollowUpRow {
    /// The row's values in [`FOLLOW_UP_COLUMNS`] order.
    pub fn fields(&self) -> [String; 18] {
        [
            self.workspace.clone(),
            self.review_id.to_string(),
            self.reviewed_snapshot_id.to_string(),
            self.reviewer.clone(),
            self.user_email.clone(),
            self.user_id.clone(),
            self.role.clone(),
            self.role_id.clone(),
            self.resource_type.clone(),
            self.resource_id.clone(),
            self.resource_name.clone(),
            self.via.clone(),
            self.via_group_id.clone(),
            self.label_filter.clone(),
            self.comment.clone(),
            self.outcome.clone(),
            self.gone_in_snapshot
                .map(|s| s.to_string())
                .unwrap_or_default(),
            self.gone_at.clone().unwrap_or_default(),
        ]
    }
}

/// The follow-up at an instant: each revocation of the reviews of snapshots up to then.
#[derive(Debug, Clone, Serialize)]
pub struct FollowUp {
    /// The workspace's label.
    pub workspace: String,
    /// The instant asked for.
    pub at: String,
    /// The snapshot the revocations are checked against.
    pub snapshot_id: i64,
    /// When it was observed.
    pub observed_at: Timestamp,
    /// How many were carried out.
    pub carried_out: usize,
    /// How many were not.
    pub not_carried_out: usize,
    /// One row per `revoke` decision, oldest review first.
    pub revocations: Vec<FollowUpRow>,
}

/// For each `revoke` decision of the reviews of snapshots up to the one at `at`: whether that
/// grant is still held in that snapshot, and when it went if `access_changes` recorded it.
pub fn follow_up(
    store: &Store,
    workspace_id: i64,
    workspace: &str,
    at: DateTime<Utc>,
) -> Result<FollowUp, ReviewError> {
    let at = audit::format_instant(at);
    let (snapshot_id, observed_at) = audit::snapshot_at(store, workspace_id, &at)?;
    let decisions = store.revoke_decisions(workspace_id, snapshot_id)?;
    let access = if decisions.is_empty() {
        EffectiveAccess::default()
    } else {
        let resources = crate::stored::state_at(store, workspace_id, SnapshotId(snapshot_id))?;
        EffectiveAccess::compute(&resources)
    };
    let mut held: HashMap<String, Vec<GrantIdentity>> = HashMap::new();
    let mut revocations = Vec::with_capacity(decisions.len());
    for d in decisions {
        let subject = if d.grant.user_id.is_empty() {
            d.email.clone()
        } else {
            d.grant.user_id.clone()
        };
        let holds = held
            .entry(subject.clone())
            .or_insert_with(|| {
                access
                    .held_by(&subject)
                    .filter(|g| g.invite == d.grant.user_id.is_empty())
                    .map(|g| identity(&g))
                    .collect()
            })
            .contains(&d.grant);
        let gone = if holds {
            None
        } else {
            store.access_removed(workspace_id, &d.grant, d.reviewed_snapshot_id, snapshot_id)?
        };
        let label_filter = d
            .grant
            .label_filter
            .as_deref()
            .and_then(|f| serde_json::from_str::<Vec<String>>(f).ok())
            .unwrap_or_default()
            .join(", ");
        revocations.push(FollowUpRow {
            workspace: workspace.to_string(),
            review_id: d.review_id,
            reviewed_snapshot_id: d.reviewed_snapshot_id,
            reviewer: d.reviewer.unwrap_or_default(),
            user_email: d.email,
            user_id: d.grant.user_id,
            role: d.role_name,
            role_id: d.grant.role_id,
            resource_type: d.grant.resource_type,
            resource_id: d.grant.resource_id,
            resource_name: d.resource_name,
            via: d.via_group_name.clone().unwrap_or_else(|| "direct".into()),
            via_group_id: d.grant.via_group_id.unwrap_or_default(),
            label_filter,
            comment: d.comment.unwrap_or_default(),
            outcome: if holds {
                "not carried out"
            } else {
                "carried out"
            }
            .into(),
            gone_in_snapshot: gone.as_ref().map(|g| g.0),
            gone_at: gone.map(|g| g.1),
        });
    }
    let carried_out = revocations
        .iter()
        .filter(|r| r.outcome == "carried out")
        .count();
    Ok(FollowUp {
        workspace: workspace.to_string(),
        at,
        snapshot_id,
        observed_at,
        carried_out,
        not_carried_out: revocations.len() - carried_out,
        revocations,
    })
}
