//! The flows stage of a poll: each data flow's personal fields (docs/FLOWS.md), kept in
//! `flow_personal_fields` so that the `audit_data_flows` view can say them in SQL.
//!
//! The map is computed from the snapshot as stored: this poll's resources, and those of kinds
//! it could not read in full as last seen. It is computed only when something it reads
//! changed, when the patterns changed, or the first time; rows change only where a flow's
//! fields did.

use segwatch_api::collect::Collection;
use segwatch_core::diff::{CurrentVersion, SnapshotDelta};
use segwatch_core::flows::stored::{self, FLOW_KINDS, FlowFieldsUpdate};
use segwatch_core::flows::{FlowMap, PersonalPatterns};
use segwatch_core::model::{Resource, ResourceKind};
use segwatch_store::{PollLookup, StoreError};

/// Whether the flow map reads this kind.
pub(super) fn read_by_flows(kind: ResourceKind) -> bool {
    FLOW_KINDS.contains(&kind)
}

/// What this snapshot changes of its flows' personal fields; `None` when nothing it reads
/// changed and the patterns are those the stored rows were matched with.
pub(super) fn flow_fields(
    collection: &Collection,
    carried: &[(ResourceKind, String, CurrentVersion)],
    tracked_patterns: Option<&str>,
    delta: &SnapshotDelta<'_>,
    patterns: &PersonalPatterns,
    stored: &PollLookup<'_>,
) -> Result<Option<FlowFieldsUpdate>, StoreError> {
    let text = stored::patterns_text(patterns);
    let needed = match tracked_patterns {
        None => true,
        Some(p) => p != text || delta.changes.iter().any(|c| read_by_flows(c.change.kind)),
    };
    if !needed {
        return Ok(None);
    }
    let tracked = stored.tracked_flow_fields()?;
    let mut carried_bodies: Vec<Resource> = Vec::new();
    for (kind, id, version) in carried.iter().filter(|(k, ..)| read_by_flows(*k)) {
        let body = stored.version_value(version.version_id)?;
        carried_bodies.push(Resource::new(*kind, id.clone(), version.name.clone(), body));
    }
    let resources: Vec<&Resource> = collection
        .resources
        .iter()
        .filter(|r| read_by_flows(r.kind))
        .chain(&carried_bodies)
        .collect();
    let now = stored::facts_by_flow(&FlowMap::compute(&resources, patterns));
    Ok(Some(stored::update(tracked.as_ref(), &now, text)))
}
