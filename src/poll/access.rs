//! The access stage of a poll: the effective access gained and lost with this snapshot
//! (docs/ACCESS.md), from what changed.
//!
//! The earlier side is this snapshot with its changes undone (each changed user, group and
//! source back to the version it replaced), so no stored body is read but those the changes
//! name and those of kinds this poll could not read in full (kept as last seen, as the
//! snapshot keeps them).

use std::collections::{HashMap, HashSet};

use segwatch_api::collect::Collection;
use segwatch_core::access::{EffectiveAccess, PolledAccess};
use segwatch_core::diff::ChangeOp;
use segwatch_core::diff::{CurrentVersion, SnapshotDelta};
use segwatch_core::drift::is_drift_only;
use segwatch_core::model::{Resource, ResourceKind};
use segwatch_store::{PollLookup, StoreError};

/// Whether a change of this kind can change effective access.
pub(super) fn changes_access(kind: ResourceKind) -> bool {
    matches!(
        kind,
        ResourceKind::User | ResourceKind::Group | ResourceKind::Source
    )
}

/// Whether effective access reads this kind (for access or for names).
pub(super) fn read_by_access(kind: ResourceKind) -> bool {
    changes_access(kind)
        || matches!(
            kind,
            ResourceKind::Workspace | ResourceKind::Warehouse | ResourceKind::Function
        )
}

/// The access changes of a snapshot against its base. `carried` are the resources this poll
/// did not read that the snapshot keeps as last seen; `base` the base's current versions (for
/// the names of what changed). Empty for a baseline and when nothing access depends on changed.
pub(super) fn access_changes(
    collection: &Collection,
    carried: &[(ResourceKind, String, CurrentVersion)],
    base: &HashMap<(ResourceKind, String), CurrentVersion>,
    delta: &SnapshotDelta<'_>,
    baseline: bool,
    stored: &PollLookup<'_>,
) -> Result<PolledAccess, StoreError> {
    let relevant = |c: &&segwatch_core::diff::PlannedChange<'_>| {
        changes_access(c.change.kind) && !is_drift_only(&c.change)
    };
    if baseline || !delta.changes.iter().any(|c| relevant(&c)) {
        return Ok(PolledAccess::empty());
    }
    // Borrowed: the snapshot's own resources are not copied, only what is read back.
    let mut carried_bodies: Vec<Resource> = Vec::with_capacity(carried.len());
    for (kind, id, version) in carried.iter().filter(|(k, ..)| read_by_access(*k)) {
        let body = stored.version_value(version.version_id)?;
        carried_bodies.push(Resource::new(*kind, id.clone(), version.name.clone(), body));
    }
    let after: Vec<&Resource> = collection
        .resources
        .iter()
        .filter(|r| read_by_access(r.kind))
        .chain(&carried_bodies)
        .collect();
    let changed: HashSet<(ResourceKind, &str)> = delta
        .changes
        .iter()
        .filter(|c| changes_access(c.change.kind))
        .map(|c| (c.change.kind, c.change.resource_id.as_str()))
        .collect();
    let mut undone: Vec<Resource> = Vec::new();
    for planned in delta
        .changes
        .iter()
        .filter(|c| changes_access(c.change.kind))
    {
        let c = &planned.change;
        if c.op == ChangeOp::Added {
            continue;
        }
        let Some(version) = planned.before_version else {
            continue;
        };
        let name = base
            .get(&(c.kind, c.resource_id.clone()))
            .map_or_else(|| c.name.clone(), |v| v.name.clone());
        let body = stored.version_value(version)?;
        undone.push(Resource::new(c.kind, c.resource_id.clone(), name, body));
    }
    let before: Vec<&Resource> = after
        .iter()
        .copied()
        .filter(|r| !changed.contains(&(r.kind, r.id.as_str())))
        .chain(&undone)
        .collect();
    let before_access = EffectiveAccess::compute_refs(&before);
    drop(before);
    drop(undone);
    let after_access = EffectiveAccess::compute_refs(&after);
    drop(after);
    Ok(PolledAccess::between(before_access, after_access))
}
