//! Effective access at an instant, from what the store holds: who can reach a resource, what a
//! user can reach (`segwatch access`).
//!
//! The state is the latest complete snapshot observed at or before the instant
//! ([`segwatch_store::audit::snapshot_at`], then its resources as [`crate::stored`] reads them);
//! the access is `segwatch_core::access` ([`EffectiveAccess`]): this module only selects the
//! snapshot, resolves the `--user` and `--resource` arguments against it and flattens the grants
//! into rows. docs/ACCESS.md gives the semantics.

use chrono::{DateTime, Utc};
use serde::Serialize;

pub mod review;

use segwatch_core::access::{EffectiveAccess, Grant, Via};
use segwatch_core::ids::SnapshotId;
use segwatch_core::model::{Resource, ResourceKind};
use segwatch_core::time::Timestamp;
use segwatch_store::audit::{self, AuditError};
use segwatch_store::{Store, StoreError};

/// What to ask: grants at `at`, narrowed to a user and/or a resource (both optional).
#[derive(Debug, Clone)]
pub struct AccessQuery {
    /// The instant: the state observed by the latest complete poll at or before it.
    pub at: DateTime<Utc>,
    /// A user's id or email (or the email of a pending group invite).
    pub user: Option<String>,
    /// A resource's id or name: the workspace, a source, a warehouse or a function.
    pub resource: Option<String>,
}

/// Why the question has no answer.
#[derive(Debug, thiserror::Error)]
pub enum AccessError {
    /// No snapshot at that instant, or the database failed.
    #[error(transparent)]
    Audit(#[from] AuditError),
    /// Reading the snapshot's resources failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// `--user` names no user or pending invite of the snapshot.
    #[error(
        "--user: no user or pending invite with id or email `{key}` at {at} (snapshot {snapshot_id}, observed at {observed_at})"
    )]
    UnknownUser {
        /// The id or email given.
        key: String,
        /// The instant asked for.
        at: String,
        /// The snapshot searched.
        snapshot_id: i64,
        /// When it was observed.
        observed_at: Timestamp,
    },
    /// `--resource` names no workspace, source, warehouse or function of the snapshot.
    #[error(
        "--resource: no workspace, source, warehouse or function with id or name `{key}` at {at} (snapshot {snapshot_id}, observed at {observed_at})"
    )]
    UnknownResource {
        /// The id or name given.
        key: String,
        /// The instant asked for.
        at: String,
        /// The snapshot searched.
        snapshot_id: i64,
        /// When it was observed.
        observed_at: Timestamp,
    },
    /// `--resource` names several resources.
    #[error("--resource: {} resources are named `{key}` at {at}; name one by id: {}", candidates.len(), candidates.join(", "))]
    AmbiguousResource {
        /// The name given.
        key: String,
        /// The instant asked for.
        at: String,
        /// `kind id` of each.
        candidates: Vec<String>,
    },
}

/// One grant, flattened for a table, CSV or JSON.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AccessRow {
    /// The user's (or invitee's) email.
    pub user_email: String,
    /// The user's id; empty for a pending invite.
    pub user_id: String,
    /// The role's name.
    pub role: String,
    /// The role's id.
    pub role_id: String,
    /// `WORKSPACE`, `SOURCE`, `WAREHOUSE`, `FUNCTION` or `SPACE`, as Segment gives it.
    pub resource_kind: String,
    /// The resource's id.
    pub resource_id: String,
    /// The resource's name (its id when the snapshot does not hold it).
    pub resource_name: String,
    /// `direct`, or `group NAME`.
    pub via: String,
    /// The group's id when held through a group; empty otherwise.
    pub group_id: String,
    /// The labels of a label-restricted workspace-level permission, `key=value,...`; empty
    /// otherwise.
    pub label_filter: String,
    /// Held by a pending group invite rather than a user.
    pub invite: bool,
}

impl From<Grant> for AccessRow {
    fn from(g: Grant) -> AccessRow {
        let (via, group_id) = match g.via {
            Via::Direct => ("direct".to_string(), String::new()),
            Via::Group { id, name } => (format!("group {name}"), id),
        };
        AccessRow {
            user_email: g.user.email,
            user_id: g.user.id,
            role: g.role_name,
            role_id: g.role_id,
            resource_kind: g.resource.kind,
            resource_id: g.resource.id,
            resource_name: g.resource.name,
            via,
            group_id,
            label_filter: g
                .label_filter
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(","),
            invite: g.invite,
        }
    }
}

/// The answer: the snapshot it was read from and the grants.
#[derive(Debug, Clone, Serialize)]
pub struct AccessReport {
    /// The instant asked for.
    pub at: String,
    /// The latest complete snapshot observed at or before it.
    pub snapshot_id: i64,
    /// When that snapshot was observed.
    pub observed_at: Timestamp,
    /// The grants, in [`EffectiveAccess::grants`] order.
    pub grants: Vec<AccessRow>,
}

/// The grants at `query.at`: all of them, a user's, those reaching a resource, or a user's on a
/// resource. A `--user` or `--resource` unknown in that snapshot is an error, not an empty list.
pub fn access_at(
    store: &Store,
    workspace_id: i64,
    query: &AccessQuery,
) -> Result<AccessReport, AccessError> {
    let at = audit::format_instant(query.at);
    let (snapshot_id, observed_at) = audit::snapshot_at(store, workspace_id, &at)?;
    let resources = crate::stored::state_at(store, workspace_id, SnapshotId(snapshot_id))?;
    let access = EffectiveAccess::compute(&resources);

    let user = match &query.user {
        Some(key) => {
            let known = resources.iter().any(|r| {
                r.kind == ResourceKind::User && (r.id == *key || r.name.eq_ignore_ascii_case(key))
            }) || access.held_by(key).next().is_some();
            if !known {
                return Err(AccessError::UnknownUser {
                    key: key.clone(),
                    at,
                    snapshot_id,
                    observed_at,
                });
            }
            Some(key.as_str())
        }
        None => None,
    };
    let target = match &query.resource {
        Some(key) => Some(resolve_resource(
            &resources,
            key,
            &at,
            snapshot_id,
            observed_at,
        )?),
        None => None,
    };
    let keep_user = |g: &Grant| {
        user.is_none_or(|u| {
            (!g.user.id.is_empty() && g.user.id == u) || g.user.email.eq_ignore_ascii_case(u)
        })
    };
    let grants: Vec<AccessRow> = match (&target, user) {
        (Some((kind, id)), _) => access
            .reaching(kind, id)
            .filter(keep_user)
            .map(AccessRow::from)
            .collect(),
        (None, Some(u)) => access.held_by(u).map(AccessRow::from).collect(),
        // Every grant of the workspace: tens of millions at 100k users, so the CLI asks for a
        // user or a resource.
        (None, None) => access.grants().map(AccessRow::from).collect(),
    };
    Ok(AccessReport {
        at,
        snapshot_id,
        observed_at,
        grants,
    })
}

/// The `(PermissionResourceV1.type, id)` of the resource named `key` (id first, then exact
/// name) among the kinds a permission can reach.
fn resolve_resource(
    resources: &[Resource],
    key: &str,
    at: &str,
    snapshot_id: i64,
    observed_at: Timestamp,
) -> Result<(&'static str, String), AccessError> {
    let reachable = |r: &&Resource| permission_type(r.kind).is_some();
    let by_id: Vec<&Resource> = resources
        .iter()
        .filter(reachable)
        .filter(|r| r.id == key)
        .collect();
    let found = if by_id.is_empty() {
        resources
            .iter()
            .filter(reachable)
            .filter(|r| r.name == key)
            .collect()
    } else {
        by_id
    };
    match found.as_slice() {
        [] => Err(AccessError::UnknownResource {
            key: key.to_string(),
            at: at.to_string(),
            snapshot_id,
            observed_at,
        }),
        [r] => Ok((permission_type(r.kind).expect("reachable"), r.id.clone())),
        many => Err(AccessError::AmbiguousResource {
            key: key.to_string(),
            at: at.to_string(),
            candidates: many
                .iter()
                .map(|r| format!("{} {}", r.kind.as_str(), r.id))
                .collect(),
        }),
    }
}

/// Segment's `PermissionResourceV1.type` of a collected kind a permission can name.
fn permission_type(kind: ResourceKind) -> Option<&'static str> {
    match kind {
        ResourceKind::Workspace => Some("WORKSPACE"),
        ResourceKind::Source => Some("SOURCE"),
        ResourceKind::Warehouse => Some("WAREHOUSE"),
        ResourceKind::Function => Some("FUNCTION"),
        _ => None,
    }
}
