//! Pipeline steps on what the store already holds: who made the changes since a stored
//! snapshot ([`attribute_since`]), the diff between two stored snapshots
//! ([`diff_snapshots`]), and a stored snapshot's resources ([`state_at`]).
//!
//! The logic is segwatch_core's (`trail::attribute`, `diff::between`); this module only reads
//! their inputs from the store, so that a poll and `segwatch diff` attribute and diff alike.

use chrono::{DateTime, Utc};

use segwatch_core::diff::{self, ResourceChange};
use segwatch_core::ids::SnapshotId;
use segwatch_core::model::Resource;
use segwatch_core::trail::{self, AuditEvent};
use segwatch_store::{Store, StoreError, StoredResource};

/// Gives each change the latest audit event on its resource between the start of snapshot
/// `base` (when it began reading the trail) and `end`: the events stored over that window, plus
/// `unstored` ones (a poll's new events, not yet committed). Reads nothing when there is no
/// change.
pub fn attribute_since<'c>(
    store: &Store,
    workspace_id: i64,
    base: SnapshotId,
    end: DateTime<Utc>,
    unstored: &[AuditEvent],
    changes: impl IntoIterator<Item = &'c mut ResourceChange>,
) -> Result<(), StoreError> {
    let changes: Vec<&mut ResourceChange> = changes.into_iter().collect();
    if changes.is_empty() {
        return Ok(());
    }
    let (from, stored) = store.events_since_snapshot(workspace_id, base, end)?;
    trail::attribute(changes, stored.iter().chain(unstored), from, end);
    Ok(())
}

/// Why two stored snapshots could not be diffed.
#[derive(Debug, thiserror::Error)]
pub enum DiffError {
    /// Reading the database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A stored body is not JSON.
    #[error(transparent)]
    Corrupt(#[from] serde_json::Error),
}

/// Every change from snapshot `from` to snapshot `to` (both complete), diffed from their
/// reconstructed states and sorted by kind and id, without attribution.
pub fn diff_snapshots(
    store: &Store,
    workspace_id: i64,
    from: SnapshotId,
    to: SnapshotId,
) -> Result<Vec<ResourceChange>, DiffError> {
    let before = state_at(store, workspace_id, from)?;
    let after = state_at(store, workspace_id, to)?;
    Ok(diff::between(&before, &after)?)
}

/// The resources of stored snapshot `snapshot` (complete), reconstructed from its versions, as
/// they were collected.
pub fn state_at(
    store: &Store,
    workspace_id: i64,
    snapshot: SnapshotId,
) -> Result<Vec<Resource>, StoreError> {
    Ok(store
        .resources_at(workspace_id, snapshot)?
        .into_iter()
        .map(resource)
        .collect())
}

/// A stored version as the resource it was collected as.
pub fn resource(stored: StoredResource) -> Resource {
    Resource {
        kind: stored.kind,
        id: stored.id,
        name: stored.name,
        body: stored.body,
        hash: stored.hash,
    }
}
